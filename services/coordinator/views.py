"""What `drctl` shows of the coordinator beyond `drcore.state.read_operation`: who chose the
approval mode, who approved or rejected what and when (and what was refused), the hooks' runs,
pause and abort, and a regional operation's children. Read-only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from .adapters import DynamoRepository
from .domain import OperationRecord, WaveRecord


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class RefusalView(_View):
    at: datetime
    event_at: datetime
    approver: str
    decision: str
    code: str
    reason: str


class ApprovalView(_View):
    wave: int
    wave_state: str
    requested_at: datetime
    notifications: int
    expires_at: datetime | None = None
    decision: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_event_at: datetime | None = None
    comment: str | None = None
    refused: list[RefusalView] = []


class HookView(_View):
    wave: int
    phase: str
    attempt: int
    document_name: str
    execution_id: str | None = None
    status: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    failure_message: str | None = None


class WaveDetail(_View):
    wave: int
    state: str
    attempt: int
    approval_required: bool
    failed_phase: str | None = None
    failures_accepted_by: str | None = None


class ChildView(_View):
    operation_id: str
    customer: str
    environment: str
    state: str
    current_wave: int | None = None
    waves: int = 0
    expected: int = 0
    recovered: int = 0
    failed: int = 0
    reason: str | None = None


class OperationDetails(_View):
    operation_id: str
    approval_mode: str
    approval_mode_chosen_by: str | None = None
    paused_wave: int | None = None
    cancelled_by: str | None = None
    parent_operation_id: str | None = None
    # The final event is out (and, after an abort, nothing is in flight any more).
    ended: bool = False
    wave_runs: list[WaveDetail] = []
    approvals: list[ApprovalView] = []
    hooks: list[HookView] = []
    children: list[ChildView] = []


def read_details(table: Any, operation_id: str) -> OperationDetails | None:
    repo = DynamoRepository(table)
    meta = repo.get_operation(operation_id)
    if meta is None:
        return None
    waves = repo.list_waves(operation_id)
    return details(meta, waves, [_child(repo, c.operation_id) for c in meta.children])


def details(
    meta: OperationRecord, waves: list[WaveRecord], children: list[ChildView | None]
) -> OperationDetails:
    approvals = [
        ApprovalView(
            wave=w.number,
            wave_state=w.state.value,
            requested_at=w.approval.requested_at,
            notifications=w.approval.notifications,
            expires_at=w.approval.expires_at,
            decision=w.approval.decision.value if w.approval.decision else None,
            decided_by=w.approval.decided_by,
            decided_at=w.approval.decided_at,
            decision_event_at=w.approval.decision_event_at,
            comment=w.approval.comment,
            refused=[
                RefusalView(
                    at=r.at,
                    event_at=r.event_at,
                    approver=r.approver,
                    decision=r.decision.value,
                    code=r.code.value,
                    reason=r.reason,
                )
                for r in w.refusals
            ],
        )
        for w in waves
        if w.approval is not None
    ]
    hooks = [
        HookView(
            wave=w.number,
            phase=run.phase.value,
            attempt=run.attempt,
            document_name=run.document_name,
            execution_id=run.execution_id,
            status=run.status,
            started_at=run.started_at,
            ended_at=run.ended_at,
            failure_message=run.failure_message,
        )
        for w in waves
        for run in (w.pre_hook, w.post_hook)
        if run is not None
    ]
    return OperationDetails(
        operation_id=meta.operation_id,
        approval_mode=meta.approval_mode.value,
        approval_mode_chosen_by=meta.approval_mode_chosen_by,
        paused_wave=meta.paused_wave,
        cancelled_by=meta.cancelled_by,
        parent_operation_id=meta.parent_operation_id,
        ended=meta.state.terminal and meta.announced == meta.state,
        wave_runs=[
            WaveDetail(
                wave=w.number,
                state=w.state.value,
                attempt=w.attempt,
                approval_required=w.approval_required,
                failed_phase=w.failed_phase.value if w.failed_phase else None,
                failures_accepted_by=w.failures_accepted_by,
            )
            for w in waves
        ],
        approvals=approvals,
        hooks=hooks,
        children=[c for c in children if c is not None],
    )


def _child(repo: DynamoRepository, operation_id: str) -> ChildView | None:
    meta = repo.get_operation(operation_id)
    if meta is None:
        return None
    waves = repo.list_waves(operation_id)
    return ChildView(
        operation_id=meta.operation_id,
        customer=meta.customer,
        environment=meta.environment,
        state=meta.state.value,
        current_wave=meta.current_wave,
        waves=len(waves),
        expected=sum(w.expected for w in waves),
        recovered=sum(w.recovered for w in waves),
        failed=sum(w.failed for w in waves),
        reason=meta.reason,
    )
