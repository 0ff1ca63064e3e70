"""Coordinator Lambda: SQS batches of requests, plans, results, hook status, approvals, operator
controls, and its own messages (hook checks, the scheduled reconciliation)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit

from drcore.consumer import EventRouter
from drcore.observability import observability
from events.schemas import (
    ApprovalGranted,
    ApprovalRejected,
    DetailType,
    DiscoveryFailed,
    EventEnvelope,
    NativeDetailType,
    OperationCancelRequested,
    OperationRequested,
    OperationResumeRequested,
    PlanReady,
    ResourceRecovered,
    ResourceRecoveryFailed,
)
from events.schemas.models import SsmAutomationStatusChange

from .hooks import HOOK_CHECK_KIND, RECONCILE_KIND, HookCheck, ReconcileRequest

if TYPE_CHECKING:
    from .domain import Coordinator

obs = observability("coordinator")
router = EventRouter(obs.logger)


_local = threading.local()  # boto3 resources are not thread-safe (the sandbox runs 2 workers)


def _service() -> Coordinator:
    """Built on first use, once per process (per thread when a runtime shares the process): the
    AWS wiring (boto3, clients) is imported then, not when the module loads."""
    if not hasattr(_local, "service"):
        from .adapters import build_coordinator

        _local.service = build_coordinator(obs.logger)
    service: Coordinator = _local.service
    return service


@router.on(DetailType.OPERATION_REQUESTED)
def _requested(detail: OperationRequested, envelope: EventEnvelope) -> None:
    _service().on_operation_requested(detail)


@router.on(DetailType.PLAN_READY)
def _plan_ready(detail: PlanReady, envelope: EventEnvelope) -> None:
    _service().on_plan_ready(detail)


@router.on(DetailType.DISCOVERY_FAILED)
def _discovery_failed(detail: DiscoveryFailed, envelope: EventEnvelope) -> None:
    _service().on_discovery_failed(detail)


@router.on_many(DetailType.RESOURCE_RECOVERED, DetailType.RESOURCE_RECOVERY_FAILED)
def _results(
    items: list[tuple[ResourceRecovered | ResourceRecoveryFailed, EventEnvelope]],
) -> None:
    # The results of a batch are counted together (one transaction per wave, one read).
    _service().on_results([detail for detail, _ in items])


@router.on(DetailType.OPERATION_CANCEL_REQUESTED)
def _cancel(detail: OperationCancelRequested, envelope: EventEnvelope) -> None:
    _service().on_cancel_requested(detail)


@router.on(DetailType.OPERATION_RESUME_REQUESTED)
def _resume(detail: OperationResumeRequested, envelope: EventEnvelope) -> None:
    _service().on_resume_requested(detail)


@router.on(DetailType.APPROVAL_GRANTED)
def _granted(detail: ApprovalGranted, envelope: EventEnvelope) -> None:
    _service().on_approval_granted(detail)


@router.on(DetailType.APPROVAL_REJECTED)
def _rejected(detail: ApprovalRejected, envelope: EventEnvelope) -> None:
    _service().on_approval_rejected(detail)


@router.on(NativeDetailType.SSM_AUTOMATION_STATUS, SsmAutomationStatusChange)
def _hook_status(detail: SsmAutomationStatusChange, envelope: EventEnvelope) -> None:
    _service().on_hook_status(detail.execution_id, detail.status)


@router.on_message(HOOK_CHECK_KIND, HookCheck)
def _hook_check(message: HookCheck) -> None:
    _service().on_hook_check(message)


@router.on_message(RECONCILE_KIND, ReconcileRequest)
def _reconcile(message: ReconcileRequest) -> None:
    _service().reconcile(message.operation_id, message.force)


@obs.logger.inject_lambda_context
@obs.tracer.capture_lambda_handler
@obs.metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    obs.metrics.add_metric(
        name="EventsReceived", unit=MetricUnit.Count, value=len(event.get("Records", []))
    )
    return router.handle_batch(event, context)
