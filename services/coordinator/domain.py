"""Coordinator domain: operation, wave and resource state transitions, and what to announce.

Pure: no boto3. Storage goes through `Repository` (DynamoDB in `adapters.py`, in memory in tests),
events through `Publisher`, the rest through small ports (`Registry`, `HookConfigs`,
`HookRunner`, `Notifier`, `SelfScheduler`). Every transition is a conditional write, so exactly
one writer wins it; the winner announces what follows and then records that it did
(`announced`). A transition whose announcement is missing (its writer crashed) is taken over by
the next delivery (or the reconciler) that sees it once `takeover_after` has passed; a younger one
makes that delivery retry later. So a lost worker never stalls an operation, and duplicates never
double count. There is no central state machine: each event moves what it is about.

Operation: DISCOVERING -> PLANNED -> RUNNING <-> PAUSED -> COMPLETED | FAILED | CANCELLED.
Wave:      PENDING -> [PRE_HOOKS] -> [AWAITING_APPROVAL] -> RECOVERING -> [POST_HOOKS]
           -> COMPLETED, or FAILED (resources or a hook failed: the operation PAUSES; the operator
           resumes with retry-failed / skip-failed, or aborts), or CANCELLED.

  OperationRequested -> lock customer+environment -> DISCOVERING  (customer `*`: one child
                        operation per customer + environment of the region, see regional.py)
  PlanReady          -> PLANNED (wave + resource items) -> RUNNING -> wave 1 begins
  hook status        -> next phase, or the wave FAILS
  ApprovalGranted    -> RECOVERING: WaveStarted (per strategy, in parts); Rejected -> CANCELLED
  resource results   -> one transaction: resource -> RECOVERED/FAILED + wave counter
                        -> the last result closes the wave -> post hook / next wave / PAUSED
  OperationResumeRequested -> the failed wave again (only what failed) or its failures accepted
  OperationCancelRequested -> CANCELLED: nothing new starts, what is in flight is recorded, then
                        the lock is released and OperationCancelled published
  reconcile (scheduled) -> takeovers, stuck resources re-checked by their owner
                        (ResourceCheckRequested), hooks polled, approvals escalated
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from drcore.plan import Plan, PlannedResource, PlanWave
from drcore.registry import CustomerEntry
from drcore.state import OperationState, ResourceState
from events.schemas import (
    ALL_CUSTOMERS,
    ApprovalGranted,
    ApprovalMode,
    ApprovalRejected,
    ApprovalRequested,
    Detail,
    DiscoveryFailed,
    OperationCancelled,
    OperationCancelRequested,
    OperationCompleted,
    OperationFailed,
    OperationPaused,
    OperationRequested,
    OperationResumeRequested,
    PlanReady,
    ResourceRecovered,
    ResourceRecoveryFailed,
    ResourceRef,
    ResumeMode,
    Source,
    Strategy,
    WaveCompleted,
    WaveFailed,
    WaveStarted,
)
from events.schemas.models import (
    ApprovalRefused,
    ChildOperation,
    HookFinished,
    HookStarted,
    OperationResumed,
    RegionalOperationStarted,
    ResourceCheckRequested,
    utc_now,
)
from events.schemas.names import ApprovalDecision, ApprovalRefusalCode, HookPhase

from .approvals import (
    Approval,
    approval_notification,
    check_token,
    default_approval_mode,
    hash_token,
    needs_approval,
    new_token,
)
from .hooks import (
    FAILED,
    SUCCEEDED_STATUSES,
    TIMED_OUT,
    HookCheck,
    HookConfigInvalid,
    HookRef,
    HookRun,
    HookStartFailed,
    HookStatus,
    WorkloadTarget,
    client_token,
    hook_parameters,
)
from .ports import (
    HookConfigs,
    HookRunner,
    LogSink,
    MetricsSink,
    NoHooks,
    NoMetrics,
    NoNotifier,
    NoScheduler,
    Notifier,
    Publisher,
    Registry,
    Repository,
    SelfScheduler,
)
from .records import (
    ACTIVE_STATES,
    HOOK_FAILURES,
    ApprovalRefusal,
    ErrorCode,
    FailedPhase,
    LockRecord,
    OperationRecord,
    Policy,
    PredecessorMissing,
    ResourceRecord,
    ResourceResult,
    ResultOutcome,
    RetryLater,
    WavePhase,
    WaveRecord,
)
from .regional import ChildOutcome, ChildPlan, regional_outcome, select_children

DRY_RUN_REASON = "dry run: plan only"
DEFAULT_TAKEOVER_AFTER = timedelta(seconds=30)
APPROVAL_RACE_ATTEMPTS = 3


# --- pure decisions --------------------------------------------------------------------------


def executable_waves(plan: Plan, wave_filter: Iterable[int] | None = None) -> list[PlanWave]:
    """The waves to run, in order: filtered, without empty waves, each resource once only
    (its first wave wins), so every wave's expected count can actually be reached."""
    wanted = set(wave_filter) if wave_filter is not None else None
    seen: set[str] = set()
    waves: list[PlanWave] = []
    for wave in sorted(plan.waves, key=lambda w: w.number):
        if wanted is not None and wave.number not in wanted:
            continue
        resources = []
        for resource in wave.resources:
            if resource.resource_id in seen:
                continue
            seen.add(resource.resource_id)
            resources.append(resource)
        if resources:
            waves.append(PlanWave(number=wave.number, resources=resources))
    return waves


def wave_records(
    waves: Sequence[PlanWave], now: datetime, approval_mode: ApprovalMode = ApprovalMode.NONE
) -> list[WaveRecord]:
    first = min((w.number for w in waves), default=0)
    return [
        WaveRecord(
            number=w.number,
            state=WavePhase.PENDING,
            expected=len(w.resources),
            remaining=len(w.resources),
            rto_target_minutes=w.rto_target_minutes,
            updated_at=now,
            approval_required=needs_approval(approval_mode, w.number, first),
        )
        for w in waves
    ]


def resource_record(
    resource: PlannedResource,
    wave: int,
    state: ResourceState = ResourceState.PENDING,
    started_at: datetime | None = None,
) -> ResourceRecord:
    return ResourceRecord(
        resource_id=resource.resource_id,
        name=resource.name,
        arn=resource.arn,
        account=resource.account,
        region=resource.region,
        dr_region=resource.dr_region,
        strategy=resource.strategy,
        wave=wave,
        state=state,
        priority=resource.priority,
        rto_target_minutes=resource.rto_target_minutes,
        rpo_target_minutes=resource.rpo_target_minutes,
        private_ip=resource.private_ip,
        started_at=started_at,
        resource_type=resource.resource_type,
    )


def _parts(refs: Sequence[ResourceRef], part_size: int) -> list[list[ResourceRef]]:
    if part_size < 1:
        raise ValueError("part_size must be at least 1")
    return [list(refs[i : i + part_size]) for i in range(0, len(refs), part_size)]


def split_wave(
    operation: OperationRecord,
    wave: PlanWave,
    part_size: int,
    now: datetime,
    attempt: int = 1,
) -> list[WaveStarted]:
    """`WaveStarted` events for a wave: one group per strategy, each split into numbered parts
    of at most `part_size` resources (plan order kept)."""
    by_strategy: dict[Strategy, list[ResourceRef]] = {}
    for resource in wave.resources:
        ref = ResourceRef.model_validate(resource.model_dump(include=_REF_FIELDS))
        by_strategy.setdefault(resource.strategy, []).append(ref)
    events: list[WaveStarted] = []
    for strategy in Strategy:
        parts = _parts(by_strategy.get(strategy, []), part_size)
        for index, part in enumerate(parts, start=1):
            events.append(
                WaveStarted(
                    **_header(operation, now),
                    wave=wave.number,
                    strategy=strategy,
                    part=index,
                    part_count=len(parts),
                    attempt=attempt,
                    resources=part,
                )
            )
    return events


_REF_FIELDS = set(ResourceRef.model_fields)


def resource_ref(record: ResourceRecord) -> ResourceRef:
    return ResourceRef(
        resource_id=record.resource_id,
        arn=record.arn,
        name=record.name,
        account=record.account,
        region=record.region,
        dr_region=record.dr_region,
        private_ip=record.private_ip,
        priority=record.priority,
        rto_target_minutes=record.rto_target_minutes,
        rpo_target_minutes=record.rpo_target_minutes,
        resource_type=record.resource_type,
    )


def wave_outcome(wave: WaveRecord) -> WavePhase | None:
    """None while results are missing; COMPLETED when all recovered; FAILED otherwise."""
    if wave.counted < wave.expected:
        return None
    return WavePhase.COMPLETED if wave.failed == 0 else WavePhase.FAILED


def lock_conflict_reason(holder: LockRecord) -> str:
    return (
        f"{holder.customer}/{holder.environment} already has an active operation: "
        f"{holder.operation} {holder.operation_id} since {holder.acquired_at.isoformat()}; "
        "wait for it to end (drctl status) or abort it"
    )


def wave_failure_reason(wave: WaveRecord) -> str:
    if wave.failed_phase in (FailedPhase.PRE_WAVE_HOOK, FailedPhase.POST_WAVE_HOOK):
        run = wave.pre_hook if wave.failed_phase == FailedPhase.PRE_WAVE_HOOK else wave.post_hook
        if run is not None:
            detail = f": {run.failure_message}" if run.failure_message else ""
            return (
                f"wave {wave.number}: {run.phase.value} hook {run.document_name} "
                f"(attempt {run.attempt}) ended {run.status}{detail}"
            )
    ids = sorted(wave.failed_resources)
    shown = ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
    return f"wave {wave.number}: {wave.failed} of {wave.expected} resource(s) failed ({shown})"


def to_millis(moment: datetime) -> datetime:
    """The precision times are stored with."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _seconds(start: datetime | None, end: datetime | None) -> float:
    if start is None or end is None:
        return 0.0
    return max((end - start).total_seconds(), 0.0)


def _header(operation: OperationRecord, now: datetime) -> dict[str, Any]:
    return {
        "operation_id": operation.operation_id,
        "customer": operation.customer,
        "environment": operation.environment,
        "operation": operation.operation,
        "occurred_at": now,
    }


def record_from_request(
    request: OperationRequested, state: OperationState, now: datetime, **changes: Any
) -> OperationRecord:
    record = OperationRecord(
        operation_id=request.operation_id,
        operation=request.operation,
        customer=request.customer,
        environment=request.environment,
        state=state,
        requested_by=request.requested_by,
        created_at=request.occurred_at,
        updated_at=now,
        started_at=now,
        request_reason=request.reason,
        ticket=request.ticket,
        approval_mode=request.approval_mode or ApprovalMode.NONE,
        approval_mode_chosen_by=request.requested_by if request.approval_mode else None,
        wave_filter=tuple(sorted(set(request.wave_filter)))
        if request.wave_filter is not None
        else None,
        dry_run=request.dry_run,
        allow_data_loss=request.allow_data_loss,
        use_cached_inventory=request.use_cached_inventory,
        region_map=dict(request.region_map),
        request=request,
    )
    return replace(record, **changes)


def request_from_record(meta: OperationRecord, now: datetime) -> OperationRequested:
    """The request an operation was made from (to ask discovery again, or to derive children):
    the stored request itself, whatever fields it carries; rebuilt from the record otherwise."""
    if meta.request is not None:
        return meta.request.model_copy(update={"occurred_at": now})
    chosen = meta.approval_mode_chosen_by
    return OperationRequested(
        operation_id=meta.operation_id,
        customer=meta.customer,
        environment=meta.environment,
        operation=meta.operation,
        occurred_at=now,
        requested_by=meta.requested_by,
        region_map=dict(meta.region_map),
        approval_mode=meta.approval_mode if chosen == meta.requested_by else None,
        wave_filter=list(meta.wave_filter) if meta.wave_filter is not None else None,
        dry_run=meta.dry_run,
        use_cached_inventory=meta.use_cached_inventory,
        allow_data_loss=meta.allow_data_loss,
        reason=meta.request_reason,
        ticket=meta.ticket,
    )


def _result_of(event: ResourceRecovered | ResourceRecoveryFailed) -> ResourceResult:
    if isinstance(event, ResourceRecovered):
        return ResourceResult(
            operation_id=event.operation_id,
            resource_id=event.resource_id,
            wave=event.wave,
            strategy=event.strategy,
            recovered=True,
            started_at=event.started_at,
            completed_at=event.completed_at,
            dr_resource_id=event.dr_resource_id,
            dr_private_ip=event.dr_private_ip,
        )
    return ResourceResult(
        operation_id=event.operation_id,
        resource_id=event.resource_id,
        wave=event.wave,
        strategy=event.strategy,
        recovered=False,
        started_at=event.started_at,
        completed_at=event.failed_at,
        error=event.error,
        error_code=event.error_code,
    )


# --- the service -----------------------------------------------------------------------------


class Coordinator:
    """Reacts to requests, plans, results, hooks, approvals and operator controls; keeps state;
    announces the next step."""

    def __init__(
        self,
        repository: Repository,
        publisher: Publisher,
        *,
        part_size: int,
        clock: Callable[[], datetime] = utc_now,
        metrics: MetricsSink | None = None,
        logger: LogSink | None = None,
        takeover_after: timedelta = DEFAULT_TAKEOVER_AFTER,
        registry: Registry | None = None,
        hook_configs: HookConfigs | None = None,
        hooks: HookRunner | None = None,
        notifier: Notifier | None = None,
        scheduler: SelfScheduler | None = None,
        policy: Policy | None = None,
        tokens: Callable[[], str] = new_token,
    ) -> None:
        self._repo = repository
        self._publisher = publisher
        self._part_size = part_size
        self._clock = clock
        self._metrics = metrics or NoMetrics()
        self._log: LogSink = logger or logging.getLogger(__name__)
        self._takeover_after = takeover_after
        self._registry = registry
        self._hook_configs: HookConfigs = hook_configs or NoHooks()
        self._hooks: HookRunner = hooks or NoHooks()
        self._notifier: Notifier = notifier or NoNotifier()
        self._scheduler: SelfScheduler = scheduler or NoScheduler()
        self._policy = policy or Policy()
        self._tokens = tokens

    # --- OperationRequested ------------------------------------------------------------------

    def on_operation_requested(self, request: OperationRequested) -> None:
        if self._repo.get_operation(request.operation_id) is not None:
            self._log.info(
                "Duplicate OperationRequested", extra={"operation_id": request.operation_id}
            )
            self.advance(request.operation_id)
            return
        now = self._clock()
        if request.customer == ALL_CUSTOMERS:
            self._start_regional(request, now)
            return
        self._accept(request, now)

    def _accept(
        self, request: OperationRequested, now: datetime, parent: str | None = None
    ) -> bool:
        """Record the operation DISCOVERING under its lock; False when it was refused."""
        entry = self._registry.customer(request.customer) if self._registry else None
        try:
            hooks = self._hook_setup(request, entry)
        except HookConfigInvalid as error:
            self._reject(request, now, ErrorCode.HOOK_CONFIG_INVALID, str(error), parent=parent)
            return False
        record = record_from_request(
            request,
            OperationState.DISCOVERING,
            now,
            parent_operation_id=parent,
            **self._approval_choice(request, entry),
            **hooks,
        )
        if request.dry_run:  # a plan preview changes nothing: no lock
            self._repo.create_operation(record)
            return True
        self._repo.mark_active(request.operation_id, now)
        wanted = LockRecord(
            customer=request.customer,
            environment=request.environment,
            operation_id=request.operation_id,
            operation=request.operation,
            acquired_at=now,
        )
        holder = self._repo.acquire_lock(wanted)
        if holder.operation_id != request.operation_id:
            self._reject(
                request,
                now,
                ErrorCode.OPERATION_IN_PROGRESS,
                lock_conflict_reason(holder),
                parent=parent,
            )
            return False
        if self._repo.create_operation(record):
            self._log.info(
                "Operation accepted",
                extra={
                    "operation_id": request.operation_id,
                    "approval_mode": record.approval_mode.value,
                    "approval_mode_chosen_by": record.approval_mode_chosen_by,
                    "hooks": record.hooks is not None,
                },
            )
            return True
        # A concurrent delivery wrote the item first; if it ended the operation, give the lock back.
        existing = self._repo.get_operation(request.operation_id)
        if existing is not None and existing.state.terminal:
            self._repo.release_lock(request.customer, request.environment, request.operation_id)
        self.advance(request.operation_id)
        return existing is not None and not existing.state.terminal

    @staticmethod
    def _approval_choice(
        request: OperationRequested, entry: CustomerEntry | None
    ) -> dict[str, Any]:
        if request.approval_mode is not None:
            return {
                "approval_mode": request.approval_mode,
                "approval_mode_chosen_by": request.requested_by,
            }
        env = entry.environment(request.environment) if entry is not None else None
        mode, why = default_approval_mode(request.operation, env.production if env else None)
        return {"approval_mode": mode, "approval_mode_chosen_by": f"default: {why}"}

    def _hook_setup(
        self, request: OperationRequested, entry: CustomerEntry | None
    ) -> dict[str, Any]:
        if request.dry_run:
            return {}
        config = self._hook_configs.get(request.customer, request.environment)
        if config is None or (config.pre_wave is None and config.post_wave is None):
            return {}
        workload = None
        if entry is not None:
            region = next(iter(request.region_map.values()), entry.dr_region)
            workload = WorkloadTarget(
                account=entry.account,
                region=region,
                role_name=entry.role_name,
                external_id=entry.external_id,
            )
        return {"hooks": config, "workload": workload}

    def _reject(
        self,
        request: OperationRequested,
        now: datetime,
        code: ErrorCode,
        reason: str,
        parent: str | None = None,
    ) -> None:
        record = record_from_request(
            request,
            OperationState.FAILED,
            now,
            error_code=code.value,
            reason=reason,
            completed_at=now,
            parent_operation_id=parent,
        )
        self._log.warning(
            "Operation rejected",
            extra={"operation_id": request.operation_id, "code": code.value, "reason": reason},
        )
        if self._repo.create_operation(record):
            self._announce_terminal(record)
        else:
            self.advance(request.operation_id)

    # --- regional (customer `*`) -----------------------------------------------------------------

    def _start_regional(self, request: OperationRequested, now: datetime) -> None:
        if not request.region_map:
            self._reject(
                request,
                now,
                ErrorCode.REGION_REQUIRED,
                "a regional request (customer '*') needs region_map: the primary region(s) "
                "in outage and their DR regions",
            )
            return
        customers = self._registry.customers() if self._registry else []
        children = select_children(
            request.operation_id, customers, request.region_map, request.environment
        )
        if not children:
            self._reject(
                request,
                now,
                ErrorCode.NO_CUSTOMERS_IN_REGION,
                f"no customer has environment {request.environment!r} in "
                f"{', '.join(sorted(request.region_map))}",
            )
            return
        record = record_from_request(request, OperationState.RUNNING, now, children=tuple(children))
        self._repo.mark_active(request.operation_id, now)
        if not self._repo.create_operation(record):
            self.advance(request.operation_id)
            return
        self._log.info(
            "Regional operation accepted",
            extra={"operation_id": request.operation_id, "children": len(children)},
        )
        self._advance(request.operation_id, ours=True)

    def _advance_parent(self, meta: OperationRecord, ours: bool) -> None:
        op = meta.operation_id
        if meta.state == OperationState.RUNNING:
            if meta.announced != OperationState.RUNNING:
                if not ours:
                    self._require_stale(meta.updated_at, f"regional {op} is starting children")
                self._spawn_children(meta)
            ending = regional_outcome((c.operation_id for c in meta.children), meta.child_outcomes)
            if ending is None:
                return
            state, reason = ending
            now = self._clock()
            changes: dict[str, Any] = {
                "state": state,
                "reason": reason,
                "completed_at": now,
                "updated_at": now,
            }
            if state == OperationState.FAILED:
                changes["error_code"] = ErrorCode.CHILD_OPERATIONS_FAILED.value
            if self._repo.update_operation(op, (OperationState.RUNNING,), changes):
                meta, ours = replace(meta, **changes), True
            else:
                meta = self._repo.get_operation(op) or meta
        if meta.state.terminal and meta.announced != meta.state:
            if not ours:
                self._require_stale(meta.updated_at, f"regional {op} is ending")
            self._announce_terminal(meta)

    def _spawn_children(self, meta: OperationRecord) -> None:
        """Accept each child (lock + record) and publish its request for discovery. Children are
        the operator's own request split up: published as `dr.cli`, requested by the operator."""
        now = self._clock()
        requests: list[Detail] = []
        for child in meta.children:
            request = self._child_request(meta, child, now)
            existing = self._repo.get_operation(child.operation_id)
            if existing is None:
                if self._accept(request, now, parent=meta.operation_id):
                    requests.append(request)
            elif existing.state == OperationState.DISCOVERING:
                requests.append(request)  # its request may not have been published
        started = RegionalOperationStarted(
            **_header(meta, now),
            region_map=dict(meta.region_map),
            children=[
                ChildOperation(
                    operation_id=c.operation_id, customer=c.customer, environment=c.environment
                )
                for c in meta.children
            ],
        )
        self._emit(started)
        self._publisher.publish(Source.CLI, requests)
        self._repo.update_operation(
            meta.operation_id, (OperationState.RUNNING,), {"announced": OperationState.RUNNING}
        )

    @staticmethod
    def _child_request(
        meta: OperationRecord, child: ChildPlan, now: datetime
    ) -> OperationRequested:
        reason = f"regional {meta.operation.value} {meta.operation_id}"
        if meta.request_reason:
            reason += f": {meta.request_reason}"
        # The operator's request, every option kept, narrowed to one customer + environment.
        # An explicit approval mode applies to every child; otherwise each takes its default.
        return request_from_record(meta, now).model_copy(
            update={
                "operation_id": child.operation_id,
                "customer": child.customer,
                "environment": child.environment,
                "region_map": dict(child.region_map),
                "approval_mode": meta.approval_mode if meta.approval_mode_chosen_by else None,
                "reason": reason[:1024],
            }
        )

    # --- discovery results -------------------------------------------------------------------

    def on_plan_ready(self, event: PlanReady) -> None:
        meta = self._require_operation(event.operation_id, "PlanReady")
        if meta.state == OperationState.DISCOVERING:
            self._take_plan(meta, event)
        else:
            self.advance(meta.operation_id)

    def _take_plan(self, meta: OperationRecord, event: PlanReady) -> None:
        plan = self._load_plan(meta.operation_id)
        expect = (OperationState.DISCOVERING,)
        if (plan.customer, plan.environment) != (meta.customer, meta.environment) or (
            event.customer,
            event.environment,
        ) != (meta.customer, meta.environment):
            self._fail(
                meta,
                expect,
                ErrorCode.PLAN_SCOPE_MISMATCH,
                f"plan is for {plan.customer}/{plan.environment} (event: {event.customer}/"
                f"{event.environment}), operation is for {meta.customer}/{meta.environment}",
            )
            return
        waves = executable_waves(plan, meta.wave_filter)
        if not waves:
            selected = f" in waves {list(meta.wave_filter)}" if meta.wave_filter is not None else ""
            self._fail(
                meta,
                expect,
                ErrorCode.EMPTY_PLAN,
                f"the plan has no resource to recover{selected} "
                f"({len(plan.warnings)} warning(s): see drctl plan)",
            )
            return
        now = self._clock()
        counts: dict[str, Any] = {
            "wave_count": len(waves),
            "resource_count": sum(len(w.resources) for w in waves),
        }
        if meta.dry_run:
            done: dict[str, Any] = {
                "state": OperationState.COMPLETED,
                "reason": DRY_RUN_REASON,
                "completed_at": now,
                "updated_at": now,
                **counts,
            }
            if self._repo.update_operation(meta.operation_id, expect, done):
                self._announce_terminal(replace(meta, **done))
            else:
                self.advance(meta.operation_id)
            return
        planned: dict[str, Any] = {"state": OperationState.PLANNED, "updated_at": now, **counts}
        if not self._repo.update_operation(meta.operation_id, expect, planned):
            self.advance(meta.operation_id)  # a concurrent delivery took the plan
            return
        self._materialize(replace(meta, **planned), waves, overwrite=True)

    def _materialize(
        self, meta: OperationRecord, waves: Sequence[PlanWave], overwrite: bool
    ) -> None:
        now = self._clock()
        resources = [resource_record(r, w.number) for w in waves for r in w.resources]
        self._repo.put_plan_items(
            meta.operation_id, wave_records(waves, now, meta.approval_mode), resources, overwrite
        )
        running: dict[str, Any] = {"state": OperationState.RUNNING, "updated_at": now}
        self._repo.update_operation(meta.operation_id, (OperationState.PLANNED,), running)
        self.advance(meta.operation_id)

    def on_discovery_failed(self, event: DiscoveryFailed) -> None:
        meta = self._require_operation(event.operation_id, "DiscoveryFailed")
        if meta.state != OperationState.DISCOVERING:
            self.advance(meta.operation_id)
            return
        self._fail(meta, (OperationState.DISCOVERING,), event.code, event.reason)

    # --- resource results --------------------------------------------------------------------

    def on_resource_recovered(self, event: ResourceRecovered) -> None:
        self.on_results([event])

    def on_resource_recovery_failed(self, event: ResourceRecoveryFailed) -> None:
        self.on_results([event])

    def on_results(self, events: Sequence[ResourceRecovered | ResourceRecoveryFailed]) -> None:
        """Results of one delivery batch, counted together: per operation + wave one
        conditional transaction moves every resource and the wave's counters (a duplicate is
        left out, never counted twice). The repository tells the results that may complete
        their wave (COMPLETING) from the others, without reading the wave; each operation is
        advanced once when a wave may be complete or when something was not counted (a crash
        after the first delivery was counted must never leave a wave without its next step)."""
        results = [_result_of(e) for e in events]
        outcomes = self._repo.record_results(results)
        advance: dict[str, None] = {}
        for result, outcome in zip(results, outcomes, strict=True):
            where = {
                "operation_id": result.operation_id,
                "resource_id": result.resource_id,
                "wave": result.wave,
                "outcome": outcome.value,
            }
            if outcome == ResultOutcome.UNKNOWN:
                self._log.warning(
                    "Result for an unknown operation or resource ignored", extra=where
                )
            elif outcome == ResultOutcome.COMPLETING:
                advance[result.operation_id] = None
            elif outcome != ResultOutcome.APPLIED:
                self._log.info("Duplicate or late result not counted", extra=where)
                advance[result.operation_id] = None
        for operation_id in advance:
            self.advance(operation_id)

    # --- hooks -------------------------------------------------------------------------------

    def on_hook_status(self, execution_id: str, status: str) -> None:
        """The native SSM status event of an automation execution (any execution of the account:
        those that are not one of our hooks are ignored)."""
        ref = self._repo.get_hook_ref(execution_id)
        if ref is None:
            self._log.info(
                "Automation execution is not a hook (or not recorded yet: polling will see it)",
                extra={"execution_id": execution_id, "status": status},
            )
            return
        meta = self._repo.get_operation(ref.operation_id)
        wave = self._repo.get_wave(ref.operation_id, ref.wave)
        if meta is None or wave is None or wave.hook_execution_id != execution_id:
            return  # an earlier attempt, or already applied
        reported = HookStatus(status=status, ended_at=self._clock())
        if not reported.terminal:
            return
        if reported.status not in SUCCEEDED_STATUSES:
            # The event carries no failure message: ask for it.
            fetched = self._hook_status(meta, execution_id)
            if fetched is not None and fetched.terminal:
                reported = fetched
        self._finish_hook(meta, wave, reported)

    def on_hook_check(self, check: HookCheck) -> None:
        meta = self._repo.get_operation(check.operation_id)
        wave = self._repo.get_wave(check.operation_id, check.wave)
        if meta is None or wave is None or wave.hook_execution_id != check.execution_id:
            return  # finished (or superseded): checks stop here
        self._poll_hook(meta, wave, check.check)

    def _poll_hook(self, meta: OperationRecord, wave: WaveRecord, check: int | None) -> None:
        run = wave.hook_run()
        if run is None or run.execution_id is None:
            return
        status = self._hook_status(meta, run.execution_id)
        now = self._clock()
        if status is None:
            status = HookStatus(FAILED, "SSM does not know the execution", ended_at=now)
        if status.terminal:
            self._finish_hook(meta, wave, status)
            return
        timeout = self._hook_timeout(meta, run.phase, wave.number)
        if run.started_at is not None and now - run.started_at >= timeout:
            if meta.workload is not None:
                self._hooks.stop(meta.workload, run.execution_id)
            seconds = int(timeout.total_seconds())
            self._finish_hook(
                meta,
                wave,
                HookStatus(TIMED_OUT, f"no result after {seconds} s: stopped", ended_at=now),
            )
            return
        if check is not None:
            self._schedule_hook_check(meta, wave.number, run.execution_id, check + 1)

    def _hook_status(self, meta: OperationRecord, execution_id: str) -> HookStatus | None:
        if meta.workload is None:
            return None
        return self._hooks.status(meta.workload, execution_id)

    def _hook_timeout(self, meta: OperationRecord, phase: HookPhase, wave: int) -> timedelta:
        spec = meta.hooks.spec(phase, wave) if meta.hooks else None
        if spec is not None and spec.timeout_seconds:
            return timedelta(seconds=spec.timeout_seconds)
        return self._policy.hook_timeout

    def _schedule_hook_check(
        self, meta: OperationRecord, wave: int, execution_id: str, check: int
    ) -> None:
        backoff = self._policy.hook_poll_backoff
        self._scheduler.schedule(
            HookCheck(
                operation_id=meta.operation_id,
                wave=wave,
                execution_id=execution_id,
                check=check,
            ),
            backoff[min(check, len(backoff) - 1)],
        )

    def _start_hook(self, meta: OperationRecord, wave: WaveRecord) -> None:
        """Start the wave's current hook (idempotent: the client token is per attempt)."""
        op, n = meta.operation_id, wave.number
        run = wave.hook_run()
        if run is None:
            return
        now = self._clock()
        spec = meta.hooks.spec(run.phase, n) if meta.hooks else None
        target = meta.workload
        if spec is None or target is None:
            missing = "configuration" if spec is None else "workload account (registry)"
            failure = f"no hook {missing} for {meta.customer}/{meta.environment}"
            self._finish_hook(meta, wave, HookStatus(FAILED, failure, now, now))
            return
        if run.execution_id is None:
            parameters = hook_parameters(
                spec,
                operation_id=op,
                operation=meta.operation.value,
                customer=meta.customer,
                environment=meta.environment,
                wave=n,
                phase=run.phase,
            )
            try:
                execution_id = self._hooks.start(
                    target, spec, parameters, client_token(op, n, run.phase, run.attempt)
                )
            except HookStartFailed as error:
                self._finish_hook(meta, wave, HookStatus(FAILED, str(error), now, now))
                return
            self._repo.put_hook_ref(execution_id, HookRef(op, n, run.phase, run.attempt))
            run = replace(run, execution_id=execution_id, started_at=now)
            key = "pre_hook" if run.phase == HookPhase.PRE_WAVE else "post_hook"
            recorded = self._repo.update_wave(
                op,
                n,
                (wave.state,),
                {key: run, "hook_execution_id": execution_id, "updated_at": now},
                where={"hook_execution_id": None},
            )
            if not recorded:
                return  # another delivery recorded it (the same execution, by the client token)
        assert run.execution_id is not None and run.started_at is not None
        self._emit(
            HookStarted(
                **_header(meta, now),
                wave=n,
                phase=run.phase,
                attempt=run.attempt,
                document_name=run.document_name,
                execution_id=run.execution_id,
                account=target.account,
                region=target.region,
                started_at=run.started_at,
            )
        )
        self._schedule_hook_check(meta, n, run.execution_id, 0)
        self._repo.update_wave(
            op,
            n,
            (wave.state,),
            {"announced": wave.state},
            where={"hook_execution_id": run.execution_id},
        )
        self._log.info(
            "Hook started",
            extra={"operation_id": op, "wave": n, "phase": run.phase.value, "run": run.attempt},
        )

    def _finish_hook(self, meta: OperationRecord, wave: WaveRecord, status: HookStatus) -> None:
        run = wave.hook_run()
        if run is None:
            return
        now = self._clock()
        finished = replace(
            run,
            status=status.status,
            started_at=run.started_at or status.started_at or now,
            ended_at=status.ended_at or now,
            failure_message=status.failure_message,
        )
        if meta.state == OperationState.CANCELLED:
            nxt = WavePhase.CANCELLED
        elif finished.succeeded:
            nxt = (
                self._after_pre_hooks(wave)
                if run.phase == HookPhase.PRE_WAVE
                else WavePhase.COMPLETED
            )
        else:
            nxt = WavePhase.FAILED
        key = "pre_hook" if run.phase == HookPhase.PRE_WAVE else "post_hook"
        changes: dict[str, Any] = {
            "state": nxt,
            key: finished,
            "hook_execution_id": None,
            "updated_at": now,
        } | self._entry(meta, wave, nxt, now)
        if nxt == WavePhase.FAILED:
            changes["failed_phase"] = HOOK_FAILURES[run.phase]
        if not self._repo.update_wave(
            meta.operation_id,
            wave.number,
            (wave.state,),
            changes,
            where={"hook_execution_id": run.execution_id},
        ):
            return  # applied by another delivery
        assert finished.started_at is not None and finished.ended_at is not None
        self._emit(
            HookFinished(
                **_header(meta, now),
                wave=wave.number,
                phase=run.phase,
                attempt=run.attempt,
                document_name=run.document_name,
                execution_id=run.execution_id,
                status=finished.status or FAILED,
                succeeded=finished.succeeded,
                started_at=finished.started_at,
                ended_at=finished.ended_at,
                duration_seconds=_seconds(finished.started_at, finished.ended_at),
                failure_message=finished.failure_message,
            )
        )
        log = self._log.info if finished.succeeded else self._log.warning
        log(
            "Hook finished",
            extra={
                "operation_id": meta.operation_id,
                "wave": wave.number,
                "phase": run.phase.value,
                "status": finished.status,
            },
        )
        self._advance(meta.operation_id, fresh=frozenset({wave.number}))

    # --- approvals ---------------------------------------------------------------------------

    def on_approval_granted(self, event: ApprovalGranted) -> None:
        self._on_decision(event, ApprovalDecision.GRANTED, event.comment)

    def on_approval_rejected(self, event: ApprovalRejected) -> None:
        self._on_decision(event, ApprovalDecision.REJECTED, event.reason)

    def _on_decision(
        self,
        event: ApprovalGranted | ApprovalRejected,
        decision: ApprovalDecision,
        note: str | None,
    ) -> None:
        # Stored times keep milliseconds: compare a redelivered decision at that precision.
        event = event.model_copy(update={"occurred_at": to_millis(event.occurred_at)})
        for _ in range(APPROVAL_RACE_ATTEMPTS):
            meta = self._repo.get_operation(event.operation_id)
            if meta is None:
                self._refuse(
                    event,
                    decision,
                    ApprovalRefusalCode.SCOPE_MISMATCH,
                    f"there is no operation {event.operation_id}",
                )
                return
            scope = (meta.customer, meta.environment, meta.operation)
            if (event.customer, event.environment, event.operation) != scope:
                self._refuse(
                    event,
                    decision,
                    ApprovalRefusalCode.SCOPE_MISMATCH,
                    f"the decision names {event.customer}/{event.environment} "
                    f"{event.operation.value}; {meta.operation_id} is {meta.customer}/"
                    f"{meta.environment} {meta.operation.value}",
                )
                return
            wave = self._repo.get_wave(meta.operation_id, event.wave)
            if wave is None:
                self._refuse(
                    event,
                    decision,
                    ApprovalRefusalCode.SCOPE_MISMATCH,
                    f"{meta.operation_id} has no wave {event.wave}",
                )
                return
            now = self._clock()
            verdict = check_token(
                wave.approval,
                wave=wave.number,
                awaiting=meta.state == OperationState.RUNNING
                and wave.state == WavePhase.AWAITING_APPROVAL,
                state=(
                    wave.state.value if meta.state == OperationState.RUNNING else meta.state.value
                ),
                token=event.token,
                approver=event.approver,
                event_at=event.occurred_at,
                decision=decision,
                now=now,
            )
            if verdict.duplicate:
                self._log.info(
                    "Decision delivered again", extra={"operation_id": meta.operation_id}
                )
                self.advance(meta.operation_id)
                return
            if not verdict.ok or wave.approval is None:
                assert verdict.code is not None
                self._refuse(event, decision, verdict.code, verdict.reason, wave)
                return
            if self._decide(meta, wave, wave.approval, event, decision, note, now):
                return
        raise RetryLater(f"the approval of {event.operation_id} wave {event.wave} keeps racing")

    def _decide(
        self,
        meta: OperationRecord,
        wave: WaveRecord,
        approval: Approval,
        event: ApprovalGranted | ApprovalRejected,
        decision: ApprovalDecision,
        note: str | None,
        now: datetime,
    ) -> bool:
        decided = approval.decide(
            decision, event.approver, now, hash_token(event.token), event.occurred_at, note
        )
        granted = decision == ApprovalDecision.GRANTED
        nxt = WavePhase.RECOVERING if granted else WavePhase.CANCELLED
        changes = {"state": nxt, "approval": decided, "updated_at": now} | self._entry(
            meta, wave, nxt, now
        )
        if not self._repo.update_wave(
            meta.operation_id,
            wave.number,
            (WavePhase.AWAITING_APPROVAL,),
            changes,
            where={"approval.notifications": approval.notifications},
        ):
            return False  # a re-notification or another decision came first: look again
        self._log.info(
            "Approval decided",
            extra={
                "operation_id": meta.operation_id,
                "wave": wave.number,
                "decision": decision.value,
                "approver": event.approver,
            },
        )
        self._metrics.record(
            "ApprovalWaitSeconds",
            "Seconds",
            _seconds(approval.requested_at, now),
            self._dimensions(meta),
        )
        if granted:
            self._advance(meta.operation_id, fresh=frozenset({wave.number}))
        else:
            reason = f"wave {wave.number} rejected by {event.approver}" + (
                f": {note}" if note else ""
            )
            self._cancel(meta, event.approver, reason, ErrorCode.APPROVAL_REJECTED)
        return True

    def _refuse(
        self,
        event: ApprovalGranted | ApprovalRejected,
        decision: ApprovalDecision,
        code: ApprovalRefusalCode,
        reason: str,
        wave: WaveRecord | None = None,
    ) -> None:
        now = self._clock()
        self._log.warning(
            "Approval refused",
            extra={
                "operation_id": event.operation_id,
                "wave": event.wave,
                "decision": decision.value,
                "approver": event.approver,
                "code": code.value,
                "reason": reason,
            },
        )
        refusal = ApprovalRefusal(now, event.approver, decision, code, reason, event.occurred_at)
        if wave is not None:
            again = any(
                (r.event_at, r.approver, r.decision)
                == (event.occurred_at, event.approver, decision)
                for r in wave.refusals
            )
            if again:
                return  # the same refused decision delivered again: refused once is enough
            self._repo.append_refusal(event.operation_id, wave.number, refusal)
        self._emit(
            ApprovalRefused(
                operation_id=event.operation_id,
                customer=event.customer,
                environment=event.environment,
                operation=event.operation,
                occurred_at=now,
                wave=event.wave,
                decision=decision,
                approver=event.approver,
                code=code,
                reason=reason,
            )
        )

    def _request_approval(self, meta: OperationRecord, wave: WaveRecord) -> None:
        """Issue a token for the wave and notify (first request, takeover and escalations)."""
        now = self._clock()
        approval = wave.approval or Approval(requested_at=now)
        token = self._tokens()
        issued = approval.issue(hash_token(token), now, now + self._policy.approval_ttl)
        where: dict[str, Any] = (
            {"approval.notifications": approval.notifications}
            if wave.approval is not None
            else {"approval": None}
        )
        if not self._repo.update_wave(
            meta.operation_id,
            wave.number,
            (WavePhase.AWAITING_APPROVAL,),
            {"approval": issued, "updated_at": now},
            where=where,
        ):
            return  # another delivery issued one
        plan_wave = self._plan_wave(meta, wave.number)
        strategies: dict[str, int] = {}
        for resource in plan_wave.resources:
            strategies[resource.strategy.value] = strategies.get(resource.strategy.value, 0) + 1
        pre = wave.pre_hook
        note = approval_notification(
            operation_id=meta.operation_id,
            operation=meta.operation.value,
            customer=meta.customer,
            environment=meta.environment,
            wave=wave.number,
            wave_count=meta.wave_count or 0,
            resources=strategies,
            rto_target_minutes=wave.rto_target_minutes,
            token=token,
            expires_at=now + self._policy.approval_ttl,
            notification=issued.notifications,
            pre_hook=f"{pre.document_name} {pre.status}" if pre and pre.status else None,
        )
        self._notifier.notify(note.subject, note.message, note.attributes)
        self._emit(
            ApprovalRequested(
                **_header(meta, now),
                wave=wave.number,
                token=token,
                resource_count=wave.expected,
                rto_target_minutes=wave.rto_target_minutes,
                expires_at=now + self._policy.approval_ttl,
            )
        )
        self._repo.update_wave(
            meta.operation_id,
            wave.number,
            (WavePhase.AWAITING_APPROVAL,),
            {"announced": WavePhase.AWAITING_APPROVAL},
        )
        self._log.info(
            "Approval requested",
            extra={
                "operation_id": meta.operation_id,
                "wave": wave.number,
                "notification": issued.notifications,
            },
        )

    # --- operator controls -------------------------------------------------------------------

    def on_cancel_requested(self, event: OperationCancelRequested) -> None:
        meta = self._require_operation(event.operation_id, "OperationCancelRequested")
        if (event.customer, event.environment) != (meta.customer, meta.environment):
            self._log.warning(
                "Cancel refused: scope does not match",
                extra={"operation_id": meta.operation_id, "requested_by": event.requested_by},
            )
            return
        reason = f"aborted by {event.requested_by}" + (f": {event.reason}" if event.reason else "")
        self._cancel(meta, event.requested_by, reason)

    def _cancel(
        self,
        meta: OperationRecord,
        by: str,
        reason: str,
        code: ErrorCode | None = None,
    ) -> None:
        if meta.regional:
            for child in meta.children:
                child_meta = self._repo.get_operation(child.operation_id)
                if child_meta is not None:
                    self._cancel(child_meta, by, reason, code)
            return
        if meta.state.terminal:
            self.advance(meta.operation_id)
            return
        now = self._clock()
        changes: dict[str, Any] = {
            "state": OperationState.CANCELLED,
            "cancelled_by": by,
            "reason": reason,
            "completed_at": now,
            "updated_at": now,
        }
        if code is not None:
            changes["error_code"] = code.value
        if self._repo.update_operation(meta.operation_id, ACTIVE_STATES, changes):
            self._log.warning(
                "Operation cancelled", extra={"operation_id": meta.operation_id, "by": by}
            )
            self._advance(meta.operation_id, ours=True)
        else:
            self.advance(meta.operation_id)

    def on_resume_requested(self, event: OperationResumeRequested) -> None:
        meta = self._require_operation(event.operation_id, "OperationResumeRequested")
        if (event.customer, event.environment) != (meta.customer, meta.environment):
            self._log.warning(
                "Resume refused: scope does not match",
                extra={"operation_id": meta.operation_id, "requested_by": event.requested_by},
            )
            return
        if meta.regional:
            for child in meta.children:
                child_meta = self._repo.get_operation(child.operation_id)
                if child_meta is not None and child_meta.state == OperationState.PAUSED:
                    self._resume(child_meta, event.mode, event.requested_by, event.occurred_at)
            return
        self._resume(meta, event.mode, event.requested_by, event.occurred_at)

    def _resume(
        self, meta: OperationRecord, mode: ResumeMode, by: str, requested_at: datetime
    ) -> None:
        op = meta.operation_id
        if meta.state != OperationState.PAUSED:
            self._log.info(
                "Resume ignored: not paused", extra={"operation_id": op, "state": meta.state}
            )
            self.advance(op)
            return
        request = f"{to_millis(requested_at).isoformat()}|{by}|{mode.value}"
        if meta.resumed_by_request == request:
            # The request that resumed the previous pause, delivered again: the new pause waits
            # for the operator's next request.
            self._log.warning(
                "Resume ignored: this request was applied already",
                extra={"operation_id": op, "paused_wave": meta.paused_wave, "mode": mode.value},
            )
            return
        now = self._clock()
        wave = self._repo.get_wave(op, meta.paused_wave) if meta.paused_wave else None
        won = False
        if wave is not None and wave.state == WavePhase.FAILED:
            changes = self._resumed_wave(meta, wave, mode, by, now)
            won = self._repo.update_wave(op, wave.number, (WavePhase.FAILED,), changes)
            if won:
                wave = replace(wave, **changes)
        resumed = self._repo.update_operation(
            op,
            (OperationState.PAUSED,),
            {
                "state": OperationState.RUNNING,
                "reason": None,
                "announced": None,
                "updated_at": now,
                "resumed_by_request": request,
            },
        )
        if won and wave is not None:
            self._emit(
                OperationResumed(
                    **_header(meta, now),
                    wave=wave.number,
                    mode=mode,
                    requested_by=by,
                    attempt=wave.attempt,
                )
            )
            self._log.info(
                "Operation resumed",
                extra={"operation_id": op, "wave": wave.number, "mode": mode.value, "by": by},
            )
        if won or resumed:
            fresh = frozenset({wave.number}) if won and wave is not None else frozenset()
            self._advance(op, fresh=fresh)

    def _resumed_wave(
        self, meta: OperationRecord, wave: WaveRecord, mode: ResumeMode, by: str, now: datetime
    ) -> dict[str, Any]:
        phase = wave.failed_phase or FailedPhase.RESOURCES
        changes: dict[str, Any] = {
            "failed_phase": None,
            "completed_at": None,
            "announced": None,
            "updated_at": now,
        }
        if mode == ResumeMode.RETRY_FAILED:
            if phase == FailedPhase.RESOURCES:
                nxt = WavePhase.RECOVERING
                changes |= {
                    "attempt": wave.attempt + 1,
                    "retry_resources": wave.failed_resources,
                    "failed": 0,
                    "failed_resources": frozenset(),
                    "remaining": wave.expected - wave.recovered,
                }
            elif phase == FailedPhase.PRE_WAVE_HOOK:
                nxt = WavePhase.PRE_HOOKS
            else:
                nxt = WavePhase.POST_HOOKS
        else:
            changes["failures_accepted_by"] = by
            if phase == FailedPhase.RESOURCES:
                nxt = self._after_recovery(meta, wave)
            elif phase == FailedPhase.PRE_WAVE_HOOK:
                nxt = self._after_pre_hooks(wave)
            else:
                nxt = WavePhase.COMPLETED
        return changes | {"state": nxt} | self._entry(meta, wave, nxt, now)

    # --- moving on -----------------------------------------------------------------------------

    def advance(self, operation_id: str) -> None:
        """Do whatever the operation's state calls for next; safe to call any number of times."""
        self._advance(operation_id)

    def _advance(
        self,
        operation_id: str,
        fresh: frozenset[int] = frozenset(),
        ours: bool = False,
        loaded: OperationRecord | None = None,
    ) -> OperationRecord | None:
        """`fresh`: waves whose last transition this call made (announced without waiting);
        `ours`: this call made the operation's last transition; `loaded`: the operation as just
        read (saves reading it again). Returns the running operation as this call left it
        (None when it did not follow it to the end: read it again for its state)."""
        meta = loaded or self._repo.get_operation(operation_id)
        if meta is None:
            return None
        if meta.regional:
            self._advance_parent(meta, ours)
            return None
        if meta.state == OperationState.PLANNED:
            self._require_stale(meta.updated_at, f"operation {operation_id} is being planned")
            self._log.warning(
                "Taking over an unfinished planning", extra={"operation_id": operation_id}
            )
            plan = self._load_plan(operation_id)
            self._materialize(meta, executable_waves(plan, meta.wave_filter), overwrite=False)
            return None
        if meta.state == OperationState.RUNNING:
            meta, ours = self._walk(meta, fresh)
            if meta.state == OperationState.RUNNING:
                return meta
        elif meta.state == OperationState.PAUSED:
            if meta.announced != OperationState.PAUSED:
                self._require_stale(meta.updated_at, f"operation {operation_id} is pausing")
                self._announce_pause(meta)
            return None
        elif meta.state == OperationState.CANCELLED and meta.announced != meta.state:
            drained, changed = self._drain(meta, fresh)
            if not drained:
                return None
            ours = ours or changed
        if meta.state.terminal and meta.announced != meta.state:
            if not ours:
                self._require_stale(meta.updated_at, f"operation {operation_id} is ending")
            self._announce_terminal(meta)
        return None

    def _walk(self, meta: OperationRecord, fresh: frozenset[int]) -> tuple[OperationRecord, bool]:
        """Walk the waves in order; returns the operation and whether this call ended it."""
        op = meta.operation_id
        for wave in self._repo.list_waves(op):
            mine = wave.number in fresh
            if wave.state == WavePhase.PENDING:
                self._begin_wave(meta, wave)
                return meta, False
            if wave.state in (
                WavePhase.PRE_HOOKS,
                WavePhase.AWAITING_APPROVAL,
                WavePhase.POST_HOOKS,
            ):
                if wave.announced != wave.state:
                    self._take(mine, wave)
                    self._announce_phase(meta, wave, takeover=not mine)
                return meta, False
            if wave.state == WavePhase.RECOVERING:
                outcome = wave_outcome(wave)
                if outcome is None:
                    if wave.announced != wave.state:
                        self._take(mine, wave)
                        self._announce_start(meta, wave, takeover=not mine)
                    return meta, False
                now = self._clock()
                nxt = (
                    WavePhase.FAILED
                    if outcome == WavePhase.FAILED
                    else self._after_recovery(meta, wave)
                )
                closing: dict[str, Any] = {"state": nxt, "updated_at": now} | self._entry(
                    meta, wave, nxt, now
                )
                if nxt == WavePhase.FAILED:
                    closing["failed_phase"] = FailedPhase.RESOURCES
                if not self._repo.update_wave(op, wave.number, (WavePhase.RECOVERING,), closing):
                    return meta, False  # another delivery closed it and announces it
                wave, mine = replace(wave, **closing), True
                if nxt == WavePhase.POST_HOOKS:
                    self._start_hook(meta, wave)
                    return meta, False
            if wave.state == WavePhase.CANCELLED:
                continue
            if wave.announced != wave.state:
                self._take(mine, wave)
                self._announce_outcome(meta, wave)
            if wave.state == WavePhase.FAILED:
                return self._pause(meta, wave), False
        return self._end(meta, OperationState.COMPLETED)

    def _take(self, mine: bool, wave: WaveRecord) -> None:
        if not mine:
            self._require_stale(wave.updated_at, f"wave {wave.number} is {wave.state.value}")
            self._log.warning(
                "Taking over a wave", extra={"wave": wave.number, "state": wave.state.value}
            )

    def _first_phase(self, meta: OperationRecord, wave: WaveRecord) -> WavePhase:
        if meta.hooks is not None and meta.hooks.spec(HookPhase.PRE_WAVE, wave.number):
            return WavePhase.PRE_HOOKS
        return self._after_pre_hooks(wave)

    @staticmethod
    def _after_pre_hooks(wave: WaveRecord) -> WavePhase:
        return WavePhase.AWAITING_APPROVAL if wave.approval_required else WavePhase.RECOVERING

    @staticmethod
    def _after_recovery(meta: OperationRecord, wave: WaveRecord) -> WavePhase:
        if meta.hooks is not None and meta.hooks.spec(HookPhase.POST_WAVE, wave.number):
            return WavePhase.POST_HOOKS
        return WavePhase.COMPLETED

    def _entry(
        self, meta: OperationRecord, wave: WaveRecord, phase: WavePhase, now: datetime
    ) -> dict[str, Any]:
        """What entering `phase` writes besides the state."""
        if phase in (WavePhase.PRE_HOOKS, WavePhase.POST_HOOKS):
            hook = HookPhase.PRE_WAVE if phase == WavePhase.PRE_HOOKS else HookPhase.POST_WAVE
            previous = wave.pre_hook if hook == HookPhase.PRE_WAVE else wave.post_hook
            spec = meta.hooks.spec(hook, wave.number) if meta.hooks else None
            run = HookRun(
                phase=hook,
                attempt=previous.attempt + 1 if previous else 1,
                document_name=spec.document_name if spec else "-",
            )
            key = "pre_hook" if hook == HookPhase.PRE_WAVE else "post_hook"
            return {key: run, "hook_execution_id": None}
        if phase == WavePhase.AWAITING_APPROVAL:
            return {"approval": Approval(requested_at=now)}
        if phase == WavePhase.RECOVERING:
            return {"recovery_started_at": now}
        if phase in (WavePhase.COMPLETED, WavePhase.FAILED, WavePhase.CANCELLED):
            return {"completed_at": now}
        return {}

    def _begin_wave(self, meta: OperationRecord, wave: WaveRecord) -> None:
        now = self._clock()
        nxt = self._first_phase(meta, wave)
        changes: dict[str, Any] = {
            "state": nxt,
            "started_at": now,
            "updated_at": now,
        } | self._entry(meta, wave, nxt, now)
        if self._repo.update_wave(meta.operation_id, wave.number, (WavePhase.PENDING,), changes):
            self._repo.update_operation(
                meta.operation_id, (OperationState.RUNNING,), {"current_wave": wave.number}
            )
            self._announce_phase(meta, replace(wave, **changes), takeover=False)

    def _announce_phase(self, meta: OperationRecord, wave: WaveRecord, takeover: bool) -> None:
        if wave.state in (WavePhase.PRE_HOOKS, WavePhase.POST_HOOKS):
            self._start_hook(meta, wave)
        elif wave.state == WavePhase.AWAITING_APPROVAL:
            self._request_approval(meta, wave)
        elif wave.state == WavePhase.RECOVERING:
            self._announce_start(meta, wave, takeover)

    def _announce_start(self, meta: OperationRecord, wave: WaveRecord, takeover: bool) -> None:
        op, n = meta.operation_id, wave.number
        plan_wave = self._plan_wave(meta, n)
        now = self._clock()
        resources = plan_wave.resources
        if wave.attempt > 1:
            resources = [r for r in resources if r.resource_id in wave.retry_resources]
            self._repo.retry_resources(op, [r.resource_id for r in resources], wave.attempt, now)
        elif takeover:
            self._repo.start_resources(op, [r.resource_id for r in resources], now)
        else:
            started = wave.recovery_started_at or now
            self._repo.put_resources(
                op, [resource_record(r, n, ResourceState.RECOVERING, started) for r in resources]
            )
        events = split_wave(
            meta, PlanWave(number=n, resources=resources), self._part_size, now, wave.attempt
        )
        self._emit(*events)
        self._repo.update_wave(op, n, (WavePhase.RECOVERING,), {"announced": WavePhase.RECOVERING})
        self._log.info(
            "Wave started",
            extra={
                "operation_id": op,
                "wave": n,
                "attempt": wave.attempt,
                "resources": len(resources),
                "parts": len(events),
            },
        )

    def _announce_outcome(self, meta: OperationRecord, wave: WaveRecord) -> None:
        now = self._clock()
        detail: Detail
        if wave.state == WavePhase.FAILED:
            detail = WaveFailed(
                **_header(meta, now),
                wave=wave.number,
                recovered=wave.recovered,
                failed=wave.failed,
                failed_resources=sorted(wave.failed_resources),
                reason=wave_failure_reason(wave),
            )
        else:
            detail = WaveCompleted(
                **_header(meta, now),
                wave=wave.number,
                recovered=wave.recovered,
                failed=wave.failed,
                started_at=wave.started_at or now,
                completed_at=wave.completed_at or now,
                duration_seconds=_seconds(wave.started_at, wave.completed_at),
                rto_target_minutes=wave.rto_target_minutes,
            )
        self._emit(detail)
        if wave.state != WavePhase.CANCELLED:
            dimensions = self._dimensions(meta)
            self._metrics.record("ResourcesRecovered", "Count", wave.recovered, dimensions)
            self._metrics.record("ResourcesFailed", "Count", wave.failed, dimensions)
            self._metrics.record(
                "WaveDurationSeconds",
                "Seconds",
                _seconds(wave.started_at, wave.completed_at),
                dimensions,
            )
        self._repo.update_wave(
            meta.operation_id, wave.number, (wave.state,), {"announced": wave.state}
        )
        self._log.info(
            "Wave ended",
            extra={
                "operation_id": meta.operation_id,
                "wave": wave.number,
                "state": wave.state.value,
            },
        )

    def _pause(self, meta: OperationRecord, wave: WaveRecord) -> OperationRecord:
        now = self._clock()
        changes: dict[str, Any] = {
            "state": OperationState.PAUSED,
            "paused_wave": wave.number,
            "reason": wave_failure_reason(wave),
            "updated_at": now,
        }
        if not self._repo.update_operation(meta.operation_id, (OperationState.RUNNING,), changes):
            return self._repo.get_operation(meta.operation_id) or meta
        meta = replace(meta, **changes)
        self._announce_pause(meta)
        return meta

    def _announce_pause(self, meta: OperationRecord) -> None:
        now = self._clock()
        self._emit(
            OperationPaused(
                **_header(meta, now),
                wave=meta.paused_wave or meta.current_wave or 1,
                reason=meta.reason or "paused",
            )
        )
        self._repo.update_operation(
            meta.operation_id, (OperationState.PAUSED,), {"announced": OperationState.PAUSED}
        )
        self._log.warning(
            "Operation paused: resume (retry-failed | skip-failed) or abort",
            extra={"operation_id": meta.operation_id, "reason": meta.reason},
        )

    def _drain(self, meta: OperationRecord, fresh: frozenset[int]) -> tuple[bool, bool]:
        """A cancelled operation: record what is still in flight, cancel what never started.
        Returns (nothing left in flight, this call changed something)."""
        op = meta.operation_id
        in_flight, changed = False, bool(fresh)
        for wave in self._repo.list_waves(op):
            mine = wave.number in fresh
            now = self._clock()
            if wave.state == WavePhase.RECOVERING:
                outcome = wave_outcome(wave)
                if outcome is None:
                    if wave.announced != wave.state:
                        self._take(mine, wave)
                        self._announce_start(meta, wave, takeover=not mine)
                    in_flight = True
                    continue
                closing: dict[str, Any] = {"state": outcome, "completed_at": now, "updated_at": now}
                if outcome == WavePhase.FAILED:
                    closing["failed_phase"] = FailedPhase.RESOURCES
                if not self._repo.update_wave(op, wave.number, (WavePhase.RECOVERING,), closing):
                    in_flight = True  # another delivery is closing it
                    continue
                wave, mine, changed = replace(wave, **closing), True, True
            run = wave.hook_run()
            if run is not None and run.execution_id is not None and run.running:
                in_flight = True  # the hook ends on its own; its result is recorded
                continue
            if wave.state in (
                WavePhase.PENDING,
                WavePhase.PRE_HOOKS,
                WavePhase.AWAITING_APPROVAL,
                WavePhase.POST_HOOKS,
            ):
                cancelled = {"state": WavePhase.CANCELLED, "completed_at": now, "updated_at": now}
                if self._repo.update_wave(op, wave.number, (wave.state,), cancelled):
                    changed = True
                continue
            if (
                wave.state in (WavePhase.COMPLETED, WavePhase.FAILED)
                and wave.announced != wave.state
            ):
                self._take(mine, wave)
                self._announce_outcome(meta, wave)
        return not in_flight, changed

    def _end(
        self, meta: OperationRecord, state: OperationState, **fields: Any
    ) -> tuple[OperationRecord, bool]:
        now = self._clock()
        ending: dict[str, Any] = {"state": state, "completed_at": now, "updated_at": now, **fields}
        if self._repo.update_operation(meta.operation_id, (OperationState.RUNNING,), ending):
            return replace(meta, **ending), True
        return self._repo.get_operation(meta.operation_id) or meta, False

    def _fail(
        self,
        meta: OperationRecord,
        expect: Iterable[OperationState],
        code: str,
        reason: str,
    ) -> None:
        now = self._clock()
        failing: dict[str, Any] = {
            "state": OperationState.FAILED,
            "error_code": code,
            "reason": reason,
            "completed_at": now,
            "updated_at": now,
        }
        if self._repo.update_operation(meta.operation_id, expect, failing):
            self._log.warning(
                "Operation failed", extra={"operation_id": meta.operation_id, "code": code}
            )
            self._announce_terminal(replace(meta, **failing))
        else:
            self.advance(meta.operation_id)

    def _announce_terminal(self, meta: OperationRecord) -> None:
        """Release the lock (only if this operation holds it), publish the final event, note it,
        and tell a regional parent."""
        op = meta.operation_id
        if not meta.regional:
            self._repo.release_lock(meta.customer, meta.environment, op)
        now = self._clock()
        waves = [] if meta.dry_run or meta.regional else self._repo.list_waves(op)
        detail: Detail | None
        try:
            detail = self._terminal_event(meta, waves, now)
        except ValidationError as error:
            self._log.warning(
                "Final event not publishable", extra={"operation_id": op, "error": str(error)}
            )
            detail = None
        if detail is not None:
            self._emit(detail)
        self._repo.update_operation(op, (meta.state,), {"announced": meta.state})
        self._repo.clear_active(op)
        if meta.parent_operation_id:
            outcome = ChildOutcome(
                state=meta.state,
                waves=(meta.wave_count or 0) if meta.dry_run else len(waves),
                recovered=sum(w.recovered for w in waves),
                failed=sum(w.failed for w in waves),
            )
            self._repo.record_child_outcome(meta.parent_operation_id, op, outcome)
            # The parent may be mid-transition: it (or the reconciler) finishes it then.
            with contextlib.suppress(RetryLater):
                self._advance(meta.parent_operation_id)

    def _terminal_event(
        self, meta: OperationRecord, waves: Sequence[WaveRecord], now: datetime
    ) -> Detail | None:
        header = _header(meta, now)
        started = meta.started_at or meta.created_at
        completed = meta.completed_at or now
        if meta.regional:
            outcomes = list(meta.child_outcomes.values())
            counts = (
                max((o.waves for o in outcomes), default=0),
                sum(o.recovered for o in outcomes),
                sum(o.failed for o in outcomes),
            )
        else:
            counts = (
                (meta.wave_count or 0) if meta.dry_run else len(waves),
                sum(w.recovered for w in waves),
                sum(w.failed for w in waves),
            )
        if meta.state == OperationState.COMPLETED:
            return OperationCompleted(
                **header,
                waves=counts[0],
                recovered=counts[1],
                failed=counts[2],
                started_at=started,
                completed_at=completed,
                duration_seconds=_seconds(started, completed),
            )
        if meta.state == OperationState.FAILED:
            return OperationFailed(
                **header,
                code=meta.error_code or "FAILED",
                reason=meta.reason or "operation failed",
            )
        if meta.state == OperationState.CANCELLED:
            return OperationCancelled(
                **header, requested_by=meta.cancelled_by or meta.requested_by, reason=meta.reason
            )
        return None

    # --- reconciliation ------------------------------------------------------------------------

    def reconcile(self, operation_id: str | None = None, force: bool = False) -> int:
        """The scheduled pass over active operations: take over unannounced transitions, ask
        owners to re-check resources stuck past their expected time (`dr:rto-target`; `force`:
        everything in flight), poll running hooks, escalate waiting approvals, ask discovery
        again for operations it never answered. Returns the number of operations looked at."""
        listed = [(operation_id, None)] if operation_id else self._repo.list_active()
        for op, since in listed:
            try:
                self._reconcile_one(op, since, force)
            except RetryLater:
                continue  # mid-transition elsewhere: next pass
        return len(listed)

    def _reconcile_one(self, op: str, listed_at: datetime | None, force: bool) -> None:
        meta = self._repo.get_operation(op)
        if meta is None:
            # Listed just before its item is written, or never written (refused): drop it once
            # it is old enough not to be an acceptance in progress.
            if listed_at is not None and self._clock() - listed_at >= self._takeover_after:
                self._repo.clear_active(op)
            return
        if meta.state.terminal and meta.announced == meta.state:
            self._repo.clear_active(op)
            return
        # A running operation comes back as advancing left it (no second read).
        meta = self._advance(op, loaded=meta) or self._repo.get_operation(op)
        if meta is None or meta.regional:
            return
        now = self._clock()
        if meta.state == OperationState.DISCOVERING:
            if force or now - meta.updated_at >= self._policy.recheck_every:
                self._rediscover(meta, now)
            return
        if meta.state not in (OperationState.RUNNING, OperationState.CANCELLED):
            return
        for wave in self._repo.list_waves(op):
            if wave.state == WavePhase.RECOVERING and wave.announced == WavePhase.RECOVERING:
                self._recheck(meta, wave, force, now)
            elif wave.hook_run() is not None and wave.hook_execution_id is not None:
                self._poll_hook(meta, wave, None)
            elif (
                wave.state == WavePhase.AWAITING_APPROVAL
                and wave.announced == WavePhase.AWAITING_APPROVAL
                and meta.state == OperationState.RUNNING
                and wave.approval is not None
                and wave.approval.notified_at is not None
                and now - wave.approval.notified_at >= self._policy.escalate_after
            ):
                self._log.warning(
                    "Approval still waiting: notifying again",
                    extra={"operation_id": op, "wave": wave.number},
                )
                self._request_approval(meta, wave)

    def _rediscover(self, meta: OperationRecord, now: datetime) -> None:
        if not self._repo.update_operation(
            meta.operation_id,
            (OperationState.DISCOVERING,),
            {"updated_at": now},
            where={"updated_at": meta.updated_at},
        ):
            return
        self._log.warning(
            "No plan yet: asking discovery again", extra={"operation_id": meta.operation_id}
        )
        self._publisher.publish(Source.CLI, [request_from_record(meta, now)])

    def _recheck(self, meta: OperationRecord, wave: WaveRecord, force: bool, now: datetime) -> None:
        began = wave.recovery_started_at or wave.started_at
        # The wave's target is its resources' smallest and none of them started before the wave
        # recovered: until that target has passed, no resource can be due (nothing to read).
        if (
            not force
            and wave.rto_target_minutes
            and began is not None
            and now - began < timedelta(minutes=wave.rto_target_minutes)
        ):
            return
        due: list[tuple[ResourceRecord, datetime]] = []
        for resource in self._repo.list_resources(meta.operation_id):
            if resource.wave != wave.number or resource.state != ResourceState.RECOVERING:
                continue
            since = (
                resource.attempt_started_at
                or resource.started_at
                or wave.recovery_started_at
                or wave.started_at
            )
            if since is None:
                continue
            if not force:
                if now - since < timedelta(minutes=resource.rto_target_minutes):
                    continue
                last = resource.last_check_at
                if last is not None and now - last < self._policy.recheck_every:
                    continue
            due.append((resource, since))
        if not due:
            return
        events: list[Detail] = []
        for strategy in Strategy:
            mine = [(r, s) for r, s in due if r.strategy == strategy]
            if not mine:
                continue
            parts = _parts([resource_ref(r) for r, _ in mine], self._part_size)
            for index, part in enumerate(parts, start=1):
                events.append(
                    ResourceCheckRequested(
                        **_header(meta, now),
                        wave=wave.number,
                        strategy=strategy,
                        attempt=wave.attempt,
                        part=index,
                        part_count=len(parts),
                        resources=part,
                        in_flight_since=min(s for _, s in mine),
                        reason="operator asked for a re-check"
                        if force
                        else "in flight longer than the resource's RTO target",
                    )
                )
        self._emit(*events)
        self._repo.mark_checked(meta.operation_id, [r.resource_id for r, _ in due], now)
        self._log.warning(
            "Asked owners to re-check resources in flight",
            extra={
                "operation_id": meta.operation_id,
                "wave": wave.number,
                "resources": len(due),
                "forced": force,
            },
        )

    # --- helpers -------------------------------------------------------------------------------

    def _emit(self, *details: Detail) -> None:
        """Publish the coordinator's own events."""
        self._publisher.publish(Source.COORDINATOR, details)

    def _require_operation(self, operation_id: str, what: str) -> OperationRecord:
        meta = self._repo.get_operation(operation_id)
        if meta is None:
            raise PredecessorMissing(
                f"{what} for operation {operation_id} arrived before its OperationRequested"
            )
        return meta

    def _require_stale(self, since: datetime, what: str) -> None:
        if self._clock() - since < self._takeover_after:
            raise RetryLater(f"{what} by another delivery; retry later")

    def _load_plan(self, operation_id: str) -> Plan:
        plan = self._repo.load_plan(operation_id)
        if plan is None:
            raise RetryLater(f"the plan of operation {operation_id} is not readable yet")
        return plan

    def _plan_wave(self, meta: OperationRecord, number: int) -> PlanWave:
        plan = self._load_plan(meta.operation_id)
        for wave in executable_waves(plan, meta.wave_filter):
            if wave.number == number:
                return wave
        raise RetryLater(f"wave {number} of {meta.operation_id} is not in its stored plan")

    @staticmethod
    def _dimensions(meta: OperationRecord) -> dict[str, str]:
        return {
            "Customer": meta.customer,
            "Environment": meta.environment,
            "Operation": meta.operation.value,
        }
