"""The coordinator's records: operation, wave, resource and lock items as the domain sees them,
their states, what its transitions raise, and the timings it follows. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from drcore.state import OperationState, ResourceState
from events.schemas import (
    ALL_CUSTOMERS,
    ApprovalMode,
    OperationRequested,
    OperationType,
    Priority,
    Strategy,
)
from events.schemas.names import ApprovalDecision, ApprovalRefusalCode, HookPhase

from .approvals import Approval
from .hooks import HookConfig, HookRun, WorkloadTarget
from .regional import ChildOutcome, ChildPlan


class ErrorCode(StrEnum):
    OPERATION_IN_PROGRESS = "OPERATION_IN_PROGRESS"
    EMPTY_PLAN = "EMPTY_PLAN"
    PLAN_SCOPE_MISMATCH = "PLAN_SCOPE_MISMATCH"
    APPROVAL_REJECTED = "APPROVAL_REJECTED"
    REGION_REQUIRED = "REGION_REQUIRED"
    NO_CUSTOMERS_IN_REGION = "NO_CUSTOMERS_IN_REGION"
    CHILD_OPERATIONS_FAILED = "CHILD_OPERATIONS_FAILED"
    HOOK_CONFIG_INVALID = "HOOK_CONFIG_INVALID"


class WavePhase(StrEnum):
    """A wave's state (the `state` of a wave item). Its first four values are
    `drcore.state.WaveState`'s; the others are the coordinator's gates."""

    PENDING = "PENDING"
    PRE_HOOKS = "PRE_HOOKS"
    AWAITING_APPROVAL = "AWAITING_APPROVAL"
    RECOVERING = "RECOVERING"
    POST_HOOKS = "POST_HOOKS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class FailedPhase(StrEnum):
    """What failed a wave (what retry-failed runs again)."""

    RESOURCES = "RESOURCES"
    PRE_WAVE_HOOK = "PRE_WAVE_HOOK"
    POST_WAVE_HOOK = "POST_WAVE_HOOK"


HOOK_FAILURES = {
    HookPhase.PRE_WAVE: FailedPhase.PRE_WAVE_HOOK,
    HookPhase.POST_WAVE: FailedPhase.POST_WAVE_HOOK,
}
ACTIVE_STATES = (
    OperationState.DISCOVERING,
    OperationState.PLANNED,
    OperationState.RUNNING,
    OperationState.PAUSED,
)


class RetryLater(RuntimeError):
    """Not processable yet (predecessor missing, or another worker is mid-transition).

    Raised to the handler so the queue redelivers the record after its visibility timeout.
    """


class PredecessorMissing(RetryLater):
    """An event arrived before the one it follows (e.g. PlanReady before OperationRequested)."""


# --- records ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class OperationRecord:
    """The operation item (pk=OP#id, sk=META)."""

    operation_id: str
    operation: OperationType
    customer: str
    environment: str
    state: OperationState
    requested_by: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    current_wave: int | None = None
    reason: str | None = None
    error_code: str | None = None
    request_reason: str | None = None
    ticket: str | None = None
    approval_mode: ApprovalMode = ApprovalMode.NONE
    # Who chose the approval mode: the requester, or `default: <why>`. A regional parent without
    # one lets each child take its own default.
    approval_mode_chosen_by: str | None = None
    wave_filter: tuple[int, ...] | None = None
    dry_run: bool = False
    allow_data_loss: bool = False
    use_cached_inventory: bool = False
    region_map: Mapping[str, str] = field(default_factory=dict)
    wave_count: int | None = None
    resource_count: int | None = None
    hooks: HookConfig | None = None
    workload: WorkloadTarget | None = None
    paused_wave: int | None = None
    # The last resume request applied (when, by whom, which mode): the same request delivered
    # again must not resume a later pause.
    resumed_by_request: str | None = None
    cancelled_by: str | None = None
    parent_operation_id: str | None = None
    children: tuple[ChildPlan, ...] = ()
    child_outcomes: Mapping[str, ChildOutcome] = field(default_factory=dict)
    # The request as received (every option, including those the coordinator does not read).
    request: OperationRequested | None = None
    # The state whose announcement is done: terminal (event published, lock released), PAUSED,
    # or RUNNING for a regional parent (children started).
    announced: OperationState | None = None

    @property
    def regional(self) -> bool:
        return self.customer == ALL_CUSTOMERS


@dataclass(frozen=True)
class ApprovalRefusal:
    at: datetime
    approver: str
    decision: ApprovalDecision
    code: ApprovalRefusalCode
    reason: str
    event_at: datetime


@dataclass(frozen=True)
class WaveRecord:
    """One wave item (pk=OP#id, sk=WAVE#0001)."""

    number: int
    state: WavePhase
    expected: int
    updated_at: datetime
    recovered: int = 0
    failed: int = 0
    # Results the current attempt still misses (expected - counted), kept by the result
    # transactions so that they can tell a wave's last results without reading the wave.
    remaining: int | None = None
    rto_target_minutes: int | None = None
    started_at: datetime | None = None
    recovery_started_at: datetime | None = None
    completed_at: datetime | None = None
    failed_resources: frozenset[str] = frozenset()
    # Resource attempt: 1, then + 1 per retry-failed; a retry re-runs only `retry_resources`.
    attempt: int = 1
    retry_resources: frozenset[str] = frozenset()
    failed_phase: FailedPhase | None = None
    failures_accepted_by: str | None = None
    approval_required: bool = False
    approval: Approval | None = None
    refusals: tuple[ApprovalRefusal, ...] = ()
    pre_hook: HookRun | None = None
    post_hook: HookRun | None = None
    # The execution of the hook running now (condition of every hook transition).
    hook_execution_id: str | None = None
    announced: WavePhase | None = None

    @property
    def counted(self) -> int:
        return self.recovered + self.failed

    def hook_run(self) -> HookRun | None:
        if self.state == WavePhase.PRE_HOOKS:
            return self.pre_hook
        if self.state == WavePhase.POST_HOOKS:
            return self.post_hook
        return None


@dataclass(frozen=True)
class ResourceRecord:
    """One resource item (pk=OP#id, sk=RES#<resource id>)."""

    resource_id: str
    name: str
    arn: str
    account: str
    region: str
    dr_region: str
    strategy: Strategy
    wave: int
    state: ResourceState
    priority: Priority
    rto_target_minutes: int
    rpo_target_minutes: int
    private_ip: str | None = None
    dr_resource_id: str | None = None
    dr_private_ip: str | None = None
    error: str | None = None
    error_code: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    attempt: int = 1
    # Set from the second attempt on: an older result (completed before it) is not counted.
    attempt_started_at: datetime | None = None
    checks: int = 0
    last_check_at: datetime | None = None
    resource_type: str = "ec2:instance"


@dataclass(frozen=True)
class LockRecord:
    """The one-active-operation lock of a customer + environment (pk=LOCK#c#e, sk=LOCK)."""

    customer: str
    environment: str
    operation_id: str
    operation: OperationType
    acquired_at: datetime


@dataclass(frozen=True)
class ResourceResult:
    """A recovery service's verdict on one resource, as the repository applies it."""

    operation_id: str
    resource_id: str
    wave: int
    strategy: Strategy
    recovered: bool
    completed_at: datetime
    started_at: datetime | None = None
    dr_resource_id: str | None = None
    dr_private_ip: str | None = None
    error: str | None = None
    error_code: str | None = None


class ResultOutcome(StrEnum):
    APPLIED = "APPLIED"  # resource moved and wave counter incremented, together
    COMPLETING = "COMPLETING"  # applied, and the wave may have all its results now
    DUPLICATE = "DUPLICATE"  # the resource already has a result: nothing changed
    REJECTED = "REJECTED"  # another wave/strategy, an older attempt, or the wave is not recovering
    UNKNOWN = "UNKNOWN"  # no such resource item (unknown operation or resource)


@dataclass(frozen=True)
class Policy:
    """Timings of approvals, hooks and the reconciler (from `Settings`)."""

    approval_ttl: timedelta = timedelta(hours=1)
    escalate_after: timedelta = timedelta(minutes=15)
    hook_timeout: timedelta = timedelta(minutes=30)
    hook_poll_backoff: tuple[int, ...] = (5, 10, 20, 40, 60)
    recheck_every: timedelta = timedelta(minutes=5)
