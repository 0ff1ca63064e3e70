"""Managed handler: wave parts for `managed-service`, the reconciler's checks, and servers
recovered by drs whose DNS records this service keeps."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from drcore.consumer import EventRouter
from drcore.observability import observability
from events.schemas import DetailType, EventEnvelope, ResourceRecovered, WaveStarted
from events.schemas.models import ResourceCheckRequested

if TYPE_CHECKING:
    from services.managed.app import ManagedService

obs = observability("managed")
router = EventRouter(obs.logger)


@lru_cache(maxsize=1)
def _service() -> ManagedService:
    # Built on first use, once per process: importing the handler stays cheap.
    from services.managed.app import ManagedService

    return ManagedService.build(obs.logger)


@router.on(DetailType.WAVE_STARTED)
def _wave(detail: WaveStarted, envelope: EventEnvelope) -> None:
    _service().recover_part(detail)


@router.on(DetailType.RESOURCE_CHECK_REQUESTED)
def _check(detail: ResourceCheckRequested, envelope: EventEnvelope) -> None:
    _service().domain.check(detail)


@router.on(DetailType.RESOURCE_RECOVERED)
def _server_recovered(detail: ResourceRecovered, envelope: EventEnvelope) -> None:
    _service().domain.server_recovered(detail)


@obs.logger.inject_lambda_context
@obs.tracer.capture_lambda_handler
@obs.metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    _service().begin_batch(context)
    return router.handle_batch(event, context)
