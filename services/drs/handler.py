"""DRS handler: wave parts, DRS's native launch results, operation life events and the service's
own messages (job checks, quota wake-ups, teardown and re-protection checks, the janitor)."""

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
    OperationRequested,
    WaveStarted,
)
from events.schemas.models import (
    DrillCleanupRequested,
    RegionalOperationStarted,
    ResourceCheckRequested,
)
from services.drs.records import (
    JANITOR_KIND,
    JOB_CHECK_KIND,
    PROTECT_CHECK_KIND,
    QUOTA_WAKE_KIND,
    TEARDOWN_CHECK_KIND,
    JanitorRun,
    JobCheck,
    ProtectCheck,
    QuotaWake,
    TeardownCheck,
)

if TYPE_CHECKING:
    from services.drs.adapters import DrsService
    from services.drs.lifecycle import OperationEnded

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


@router.on(DetailType.RESOURCE_CHECK_REQUESTED)
def _recheck(detail: ResourceCheckRequested, envelope: EventEnvelope) -> None:
    _service().domain.recheck(detail)


@router.on(NativeDetailType.DRS_LAUNCH_RESULT, DrsLaunchResult)
def _launch_result(detail: DrsLaunchResult, envelope: EventEnvelope) -> None:
    # Best-effort native event: the job checks reach the same result if it never arrives.
    account, region = envelope.origin()
    _service().reconcile_job(detail.job_id, account, region)


@router.on(DetailType.OPERATION_REQUESTED)
def _requested(detail: OperationRequested, envelope: EventEnvelope) -> None:
    _service().lifecycle.requested(detail)


@router.on(DetailType.OPERATION_COMPLETED)
@router.on(DetailType.OPERATION_FAILED)
@router.on(DetailType.OPERATION_CANCELLED)
def _ended(detail: OperationEnded, envelope: EventEnvelope) -> None:
    _service().lifecycle.ended(detail)


@router.on(DetailType.DRILL_CLEANUP_REQUESTED)
def _cleanup(detail: DrillCleanupRequested, envelope: EventEnvelope) -> None:
    _service().lifecycle.cleanup(detail)


@router.on(DetailType.REGIONAL_OPERATION_STARTED)
def _regional(detail: RegionalOperationStarted, envelope: EventEnvelope) -> None:
    _service().lifecycle.regional(detail)


@router.on_message(JOB_CHECK_KIND, JobCheck)
def _job_check(message: JobCheck) -> None:
    _service().reconcile_job(message.job_id, message.account, message.region, message.attempt)


@router.on_message(QUOTA_WAKE_KIND, QuotaWake)
def _wake(message: QuotaWake) -> None:
    _service().domain.on_wake(message)


@router.on_message(TEARDOWN_CHECK_KIND, TeardownCheck)
def _teardown(message: TeardownCheck) -> None:
    _service().drills.on_check(message)


@router.on_message(PROTECT_CHECK_KIND, ProtectCheck)
def _protect(message: ProtectCheck) -> None:
    _service().protection.check(message)


@router.on_message(JANITOR_KIND, JanitorRun)
def _janitor(message: JanitorRun) -> None:
    _service().drills.janitor(message.max_age_seconds)


@obs.logger.inject_lambda_context
@obs.tracer.capture_lambda_handler
@obs.metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    _service().begin_batch(context)
    return router.handle_batch(event, context)
