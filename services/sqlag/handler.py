"""sqlag handler: `WaveStarted` parts and `ResourceCheckRequested` for the `sql-ag` strategy."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from drcore.consumer import EventRouter
from drcore.observability import observability
from events.schemas import DetailType, EventEnvelope, WaveStarted
from events.schemas.models import ResourceCheckRequested

if TYPE_CHECKING:
    from services.sqlag.app import SqlAgService

obs = observability("sqlag")
router = EventRouter(obs.logger)


@lru_cache(maxsize=1)
def _service() -> SqlAgService:
    # Built on first use, once per process: importing the handler stays cheap.
    from services.sqlag.app import SqlAgService

    return SqlAgService.build(obs.logger)


@router.on(DetailType.WAVE_STARTED)
def _wave(detail: WaveStarted, envelope: EventEnvelope) -> None:
    _service().recover_part(detail)


@router.on(DetailType.RESOURCE_CHECK_REQUESTED)
def _check(detail: ResourceCheckRequested, envelope: EventEnvelope) -> None:
    _service().check(detail)


@obs.logger.inject_lambda_context
@obs.tracer.capture_lambda_handler
@obs.metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    _service().begin_batch(context)
    return router.handle_batch(event, context)
