"""Discovery handler: `OperationRequested` → stored plan + `PlanReady` (or `DiscoveryFailed`)."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from drcore.consumer import EventRouter
from drcore.observability import observability
from events.schemas import DetailType, EventEnvelope, OperationRequested
from services.discovery.messages import InventoryRefreshMessage
from services.discovery.subscriptions import INVENTORY_REFRESH

if TYPE_CHECKING:
    from services.discovery.app import DiscoveryService
    from services.discovery.refresh import InventoryRefresher

obs = observability("discovery")
router = EventRouter(obs.logger)


@lru_cache(maxsize=1)
def _service() -> DiscoveryService:
    # Built on first use, once per process: importing the handler stays cheap and reads no
    # environment.
    from services.discovery.app import DiscoveryService

    return DiscoveryService.from_settings(obs.logger)


@lru_cache(maxsize=1)
def _refresher() -> InventoryRefresher:
    from services.discovery.refresh import InventoryRefresher

    return InventoryRefresher.from_settings(obs.logger)


@router.on(DetailType.OPERATION_REQUESTED)
def _requested(detail: OperationRequested, envelope: EventEnvelope) -> None:
    _service().on_operation_requested(detail)


@router.on_message(INVENTORY_REFRESH, InventoryRefreshMessage)
def _refresh(message: InventoryRefreshMessage) -> None:
    _refresher().on_request(message)


@obs.logger.inject_lambda_context
@obs.tracer.capture_lambda_handler
@obs.metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return router.handle_batch(event, context)
