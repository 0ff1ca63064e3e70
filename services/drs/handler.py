"""DRS handler: `WaveStarted` parts, DRS's native launch results and the service's job checks."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from drcore.consumer import EventRouter
from drcore.observability import observability
from events.schemas import (
    DetailType,
    DrsLaunchResult,
    EventEnvelope,
    NativeDetailType,
    WaveStarted,
)
from services.drs.domain import JOB_CHECK_KIND, JobCheck

if TYPE_CHECKING:
    from services.drs.adapters import DrsService

obs = observability("drs")
router = EventRouter(obs.logger)


@lru_cache(maxsize=1)
def _service() -> DrsService:
    # Built on first use, once per process: importing the handler stays cheap and reads no
    # environment.
    from services.drs.adapters import DrsService

    return DrsService.build(obs.logger)


@router.on(DetailType.WAVE_STARTED)
def _wave(detail: WaveStarted, envelope: EventEnvelope) -> None:
    _service().recover_part(detail)


@router.on(NativeDetailType.DRS_LAUNCH_RESULT, DrsLaunchResult)
def _launch_result(detail: DrsLaunchResult, envelope: EventEnvelope) -> None:
    # Best-effort native event: the job checks reach the same result if it never arrives.
    account, region = envelope.origin()
    _service().reconcile_job(detail.job_id, account, region)


@router.on_message(JOB_CHECK_KIND, JobCheck)
def _job_check(message: JobCheck) -> None:
    _service().reconcile_job(message.job_id, message.account, message.region, message.attempt)


@obs.logger.inject_lambda_context
@obs.tracer.capture_lambda_handler
@obs.metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    _service().begin_batch(context)
    return router.handle_batch(event, context)
