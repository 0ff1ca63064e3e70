"""Coordinator domain: operation, wave and resource state transitions, and what to announce.

Pure: no boto3. Storage goes through `Repository` (DynamoDB in `adapters.py`, in memory in tests),
events through `Publisher`. Every transition is a conditional write, so exactly one writer wins
it; the winner publishes what follows and then records that it did (`announced`). A transition
whose announcement is missing (its writer crashed) is taken over by the next delivery that sees
it once `takeover_after` has passed; a younger one makes that delivery retry later. So a lost
worker never stalls an operation, and duplicates never double count.

Flow (approval mode `none`):
  OperationRequested -> lock customer+environment -> META DISCOVERING
  PlanReady          -> DISCOVERING -> PLANNED (write wave + resource items) -> RUNNING
                        -> wave 1 PENDING -> RECOVERING, WaveStarted (per strategy, in parts)
  Resource results   -> one transaction: resource -> RECOVERED/FAILED + wave counter
                        -> last result closes the wave: WaveCompleted, next wave starts ...
                        -> after the last wave: COMPLETED, lock released, OperationCompleted
  A wave with failures -> WaveFailed, operation FAILED (WAVE_FAILED), lock released.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from pydantic import ValidationError

from drcore.plan import Plan, PlannedResource, PlanWave
from drcore.state import OperationState, ResourceState, WaveState
from events.schemas import (
    ALL_CUSTOMERS,
    ApprovalMode,
    Detail,
    DiscoveryFailed,
    OperationCompleted,
    OperationFailed,
    OperationRequested,
    OperationType,
    PlanReady,
    Priority,
    ResourceRecovered,
    ResourceRecoveryFailed,
    ResourceRef,
    Source,
    Strategy,
    WaveCompleted,
    WaveFailed,
    WaveStarted,
)
from events.schemas.models import utc_now


class ErrorCode(StrEnum):
    REGIONAL_NOT_SUPPORTED = "REGIONAL_NOT_SUPPORTED"
    APPROVAL_NOT_SUPPORTED = "APPROVAL_NOT_SUPPORTED"
    OPERATION_IN_PROGRESS = "OPERATION_IN_PROGRESS"
    EMPTY_PLAN = "EMPTY_PLAN"
    PLAN_SCOPE_MISMATCH = "PLAN_SCOPE_MISMATCH"
    WAVE_FAILED = "WAVE_FAILED"


DRY_RUN_REASON = "dry run: plan only"
DEFAULT_TAKEOVER_AFTER = timedelta(seconds=30)


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
    wave_filter: tuple[int, ...] | None = None
    dry_run: bool = False
    allow_data_loss: bool = False
    use_cached_inventory: bool = False
    region_map: Mapping[str, str] = field(default_factory=dict)
    wave_count: int | None = None
    resource_count: int | None = None
    # The state whose event has been published (and lock released, when terminal).
    announced: OperationState | None = None


@dataclass(frozen=True)
class WaveRecord:
    """One wave item (pk=OP#id, sk=WAVE#0001)."""

    number: int
    state: WaveState
    expected: int
    updated_at: datetime
    recovered: int = 0
    failed: int = 0
    rto_target_minutes: int | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    failed_resources: frozenset[str] = frozenset()
    announced: WaveState | None = None

    @property
    def counted(self) -> int:
        return self.recovered + self.failed


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
    DUPLICATE = "DUPLICATE"  # the resource already has a result: nothing changed
    REJECTED = "REJECTED"  # resource known but another wave/strategy, or its wave is not recovering
    UNKNOWN = "UNKNOWN"  # no such resource item (unknown operation or resource)


# --- ports -----------------------------------------------------------------------------------


class Repository(Protocol):
    """Storage operations of the coordinator. Every `expect` is a condition on the current state;
    a method that returns bool returns False when that condition does not hold (nothing written)."""

    def get_operation(self, operation_id: str) -> OperationRecord | None: ...

    def create_operation(self, record: OperationRecord) -> bool:
        """Put the operation item only if none exists for that id."""
        ...

    def update_operation(
        self,
        operation_id: str,
        expect: Iterable[OperationState],
        changes: Mapping[str, Any],
    ) -> bool:
        """Set `changes` (OperationRecord field names; None removes) if the state is in `expect`."""
        ...

    def acquire_lock(self, lock: LockRecord) -> LockRecord:
        """Take the lock unless another operation holds it; returns the holder after the call
        (== `lock`'s operation when taken or already held by that same operation)."""
        ...

    def release_lock(self, customer: str, environment: str, operation_id: str) -> bool:
        """Delete the lock only if `operation_id` holds it."""
        ...

    def load_plan(self, operation_id: str) -> Plan | None: ...

    def put_plan_items(
        self,
        operation_id: str,
        waves: Sequence[WaveRecord],
        resources: Sequence[ResourceRecord],
        overwrite: bool,
    ) -> None:
        """Write wave and resource items (batched when `overwrite`, else only absent items)."""
        ...

    def list_waves(self, operation_id: str) -> list[WaveRecord]:
        """All waves of the operation, ordered by number (strongly consistent)."""
        ...

    def get_wave(self, operation_id: str, number: int) -> WaveRecord | None: ...

    def update_wave(
        self,
        operation_id: str,
        number: int,
        expect: Iterable[WaveState],
        changes: Mapping[str, Any],
    ) -> bool: ...

    def put_resources(self, operation_id: str, resources: Sequence[ResourceRecord]) -> None:
        """Overwrite resource items (batched); only safe before any result can exist for them."""
        ...

    def start_resources(
        self, operation_id: str, resource_ids: Sequence[str], started_at: datetime
    ) -> None:
        """Move each resource PENDING -> RECOVERING; resources in another state are left alone."""
        ...

    def record_result(self, result: ResourceResult) -> ResultOutcome:
        """In one transaction: the resource PENDING/RECOVERING -> RECOVERED/FAILED (same wave and
        strategy) and the wave's recovered/failed counter + 1 (wave RECOVERING)."""
        ...


class Publisher(Protocol):
    def publish(self, source: Source, details: Iterable[Detail]) -> int: ...


class MetricsSink(Protocol):
    def record(self, name: str, unit: str, value: float, dimensions: Mapping[str, str]) -> None: ...


class LogSink(Protocol):
    """What the domain needs of a logger (stdlib `logging.Logger` and Powertools `Logger` fit)."""

    def info(self, msg: str, *, extra: Mapping[str, object] | None = None) -> Any: ...

    def warning(self, msg: str, *, extra: Mapping[str, object] | None = None) -> Any: ...


class NoMetrics:
    def record(self, name: str, unit: str, value: float, dimensions: Mapping[str, str]) -> None:
        return None


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


def wave_records(waves: Sequence[PlanWave], now: datetime) -> list[WaveRecord]:
    return [
        WaveRecord(
            number=w.number,
            state=WaveState.PENDING,
            expected=len(w.resources),
            rto_target_minutes=w.rto_target_minutes,
            updated_at=now,
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
    )


def split_wave(
    operation: OperationRecord, wave: PlanWave, part_size: int, now: datetime
) -> list[WaveStarted]:
    """`WaveStarted` events for a wave: one group per strategy, each split into numbered parts
    of at most `part_size` resources (plan order kept)."""
    if part_size < 1:
        raise ValueError("part_size must be at least 1")
    by_strategy: dict[Strategy, list[ResourceRef]] = {}
    for resource in wave.resources:
        ref = ResourceRef.model_validate(resource.model_dump(include=_REF_FIELDS))
        by_strategy.setdefault(resource.strategy, []).append(ref)
    events: list[WaveStarted] = []
    for strategy in Strategy:
        refs = by_strategy.get(strategy, [])
        parts = [refs[i : i + part_size] for i in range(0, len(refs), part_size)]
        for index, part in enumerate(parts, start=1):
            events.append(
                WaveStarted(
                    **_header(operation, now),
                    wave=wave.number,
                    strategy=strategy,
                    part=index,
                    part_count=len(parts),
                    resources=part,
                )
            )
    return events


_REF_FIELDS = set(ResourceRef.model_fields)


def wave_outcome(wave: WaveRecord) -> WaveState | None:
    """None while results are missing; COMPLETED when all recovered; FAILED otherwise."""
    if wave.counted < wave.expected:
        return None
    return WaveState.COMPLETED if wave.failed == 0 else WaveState.FAILED


def lock_conflict_reason(holder: LockRecord) -> str:
    return (
        f"{holder.customer}/{holder.environment} already has an active operation: "
        f"{holder.operation} {holder.operation_id} since {holder.acquired_at.isoformat()}; "
        "wait for it to end (drctl status) or abort it"
    )


def wave_failure_reason(wave: WaveRecord) -> str:
    ids = sorted(wave.failed_resources)
    shown = ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
    return f"wave {wave.number}: {wave.failed} of {wave.expected} resource(s) failed ({shown})"


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
        wave_filter=tuple(sorted(set(request.wave_filter)))
        if request.wave_filter is not None
        else None,
        dry_run=request.dry_run,
        allow_data_loss=request.allow_data_loss,
        use_cached_inventory=request.use_cached_inventory,
        region_map=dict(request.region_map),
    )
    return replace(record, **changes)


# --- the service -----------------------------------------------------------------------------


class Coordinator:
    """Reacts to requests, plans and results; keeps state; announces the next step."""

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
    ) -> None:
        self._repo = repository
        self._publisher = publisher
        self._part_size = part_size
        self._clock = clock
        self._metrics = metrics or NoMetrics()
        self._log: LogSink = logger or logging.getLogger(__name__)
        self._takeover_after = takeover_after

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
            self._reject(
                request,
                now,
                ErrorCode.REGIONAL_NOT_SUPPORTED,
                "regional operations (customer '*') are not supported yet: "
                "request one operation per customer and environment",
            )
            return
        if request.approval_mode in (ApprovalMode.REQUIRED, ApprovalMode.FIRST_WAVE):
            self._reject(
                request,
                now,
                ErrorCode.APPROVAL_NOT_SUPPORTED,
                f"approval mode {request.approval_mode.value!r} is not supported yet: "
                f"request approval mode {ApprovalMode.NONE.value!r}",
            )
            return
        if request.dry_run:  # a plan preview changes nothing: no lock
            self._repo.create_operation(
                record_from_request(request, OperationState.DISCOVERING, now)
            )
            return
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
                request, now, ErrorCode.OPERATION_IN_PROGRESS, lock_conflict_reason(holder)
            )
            return
        record = record_from_request(request, OperationState.DISCOVERING, now)
        if self._repo.create_operation(record):
            self._log.info("Operation accepted", extra={"operation_id": request.operation_id})
            return
        # A concurrent delivery wrote the item first; if it ended the operation, give the lock back.
        existing = self._repo.get_operation(request.operation_id)
        if existing is not None and existing.state.terminal:
            self._repo.release_lock(request.customer, request.environment, request.operation_id)
        self.advance(request.operation_id)

    def _reject(
        self, request: OperationRequested, now: datetime, code: ErrorCode, reason: str
    ) -> None:
        record = record_from_request(
            request,
            OperationState.FAILED,
            now,
            error_code=code.value,
            reason=reason,
            completed_at=now,
        )
        self._log.warning(
            "Operation rejected",
            extra={"operation_id": request.operation_id, "code": code.value, "reason": reason},
        )
        if self._repo.create_operation(record):
            self._announce_terminal(record)
        else:
            self.advance(request.operation_id)

    # --- discovery results -------------------------------------------------------------------

    def on_plan_ready(self, event: PlanReady) -> None:
        meta = self._require_operation(event.operation_id, "PlanReady")
        if meta.state == OperationState.DISCOVERING:
            self._take_plan(meta, event)
        elif meta.state == OperationState.PLANNED:
            self._require_stale(meta.updated_at, f"operation {meta.operation_id} is being planned")
            self._log.warning(
                "Taking over an unfinished planning", extra={"operation_id": meta.operation_id}
            )
            plan = self._load_plan(meta.operation_id)
            self._materialize(meta, executable_waves(plan, meta.wave_filter), overwrite=False)
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
        self._repo.put_plan_items(meta.operation_id, wave_records(waves, now), resources, overwrite)
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
        self._on_result(
            ResourceResult(
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
        )

    def on_resource_recovery_failed(self, event: ResourceRecoveryFailed) -> None:
        self._on_result(
            ResourceResult(
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
        )

    def _on_result(self, result: ResourceResult) -> None:
        outcome = self._repo.record_result(result)
        where = {
            "operation_id": result.operation_id,
            "resource_id": result.resource_id,
            "wave": result.wave,
            "outcome": outcome.value,
        }
        if outcome == ResultOutcome.UNKNOWN:
            self._log.warning("Result for an unknown operation or resource ignored", extra=where)
            return
        if outcome == ResultOutcome.APPLIED:
            wave = self._repo.get_wave(result.operation_id, result.wave)
            if wave is not None and wave_outcome(wave) is None:
                return  # results still missing
        else:
            # Not counted again; still check the operation so that a crash after the first
            # delivery was counted never leaves the wave without its next step.
            self._log.info("Duplicate or late result not counted", extra=where)
        self.advance(result.operation_id)

    # --- moving on -----------------------------------------------------------------------------

    def advance(self, operation_id: str) -> None:
        """Do whatever the operation's state calls for next; safe to call any number of times."""
        meta = self._repo.get_operation(operation_id)
        if meta is None:
            return
        ours = False
        if meta.state == OperationState.RUNNING:
            meta, ours = self._run_waves(meta)
        if meta.state.terminal and meta.announced != meta.state:
            if not ours:
                self._require_stale(meta.updated_at, f"operation {operation_id} is ending")
            self._announce_terminal(meta)

    def _run_waves(self, meta: OperationRecord) -> tuple[OperationRecord, bool]:
        """Walk the waves in order; returns the operation and whether this call ended it."""
        op = meta.operation_id
        for wave in self._repo.list_waves(op):
            closed_here = False
            if wave.state == WaveState.PENDING:
                self._start_wave(meta, wave)
                return meta, False
            if wave.state == WaveState.RECOVERING:
                outcome = wave_outcome(wave)
                if outcome is None:
                    if wave.announced != WaveState.RECOVERING:
                        self._require_stale(wave.updated_at, f"wave {wave.number} is starting")
                        self._log.warning("Taking over a wave start", extra={"wave": wave.number})
                        self._announce_start(meta, wave, takeover=True)
                    return meta, False
                now = self._clock()
                closing: dict[str, Any] = {"state": outcome, "completed_at": now, "updated_at": now}
                if not self._repo.update_wave(op, wave.number, (WaveState.RECOVERING,), closing):
                    return meta, False  # another delivery closed it and announces it
                wave = replace(wave, **closing)
                closed_here = True
            if wave.announced != wave.state:
                if not closed_here:
                    self._require_stale(wave.updated_at, f"wave {wave.number} is closing")
                self._announce_outcome(meta, wave)
            if wave.state == WaveState.FAILED:
                return self._end(
                    meta,
                    OperationState.FAILED,
                    error_code=ErrorCode.WAVE_FAILED.value,
                    reason=wave_failure_reason(wave),
                    current_wave=wave.number,
                )
        return self._end(meta, OperationState.COMPLETED)

    def _start_wave(self, meta: OperationRecord, wave: WaveRecord) -> None:
        now = self._clock()
        starting: dict[str, Any] = {
            "state": WaveState.RECOVERING,
            "started_at": now,
            "updated_at": now,
        }
        if self._repo.update_wave(meta.operation_id, wave.number, (WaveState.PENDING,), starting):
            self._announce_start(meta, replace(wave, **starting), takeover=False)

    def _announce_start(self, meta: OperationRecord, wave: WaveRecord, takeover: bool) -> None:
        op = meta.operation_id
        plan_wave = next(
            (
                w
                for w in executable_waves(self._load_plan(op), meta.wave_filter)
                if w.number == wave.number
            ),
            None,
        )
        if plan_wave is None:
            raise RetryLater(f"wave {wave.number} of {op} is not in its stored plan")
        now = self._clock()
        if takeover:
            self._repo.start_resources(op, [r.resource_id for r in plan_wave.resources], now)
        else:
            started = wave.started_at or now
            self._repo.put_resources(
                op,
                [
                    resource_record(r, wave.number, ResourceState.RECOVERING, started)
                    for r in plan_wave.resources
                ],
            )
        self._repo.update_operation(op, (OperationState.RUNNING,), {"current_wave": wave.number})
        events = split_wave(meta, plan_wave, self._part_size, now)
        self._publisher.publish(Source.COORDINATOR, events)
        self._repo.update_wave(
            op, wave.number, (WaveState.RECOVERING,), {"announced": WaveState.RECOVERING}
        )
        self._log.info(
            "Wave started",
            extra={
                "operation_id": op,
                "wave": wave.number,
                "resources": wave.expected,
                "parts": len(events),
            },
        )

    def _announce_outcome(self, meta: OperationRecord, wave: WaveRecord) -> None:
        now = self._clock()
        detail: Detail
        if wave.state == WaveState.COMPLETED:
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
        else:
            detail = WaveFailed(
                **_header(meta, now),
                wave=wave.number,
                recovered=wave.recovered,
                failed=wave.failed,
                failed_resources=sorted(wave.failed_resources),
                reason=wave_failure_reason(wave),
            )
        self._publisher.publish(Source.COORDINATOR, [detail])
        dimensions = {
            "Customer": meta.customer,
            "Environment": meta.environment,
            "Operation": meta.operation.value,
        }
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
        """Release the lock (only if this operation holds it), publish the final event, note it."""
        op = meta.operation_id
        self._repo.release_lock(meta.customer, meta.environment, op)
        now = self._clock()
        detail: Detail | None
        try:
            detail = self._terminal_event(meta, now)
        except ValidationError as error:
            # e.g. customer '*' cannot be carried by the event contract: the item still says why.
            self._log.warning(
                "Final event not publishable", extra={"operation_id": op, "error": str(error)}
            )
            detail = None
        if detail is not None:
            self._publisher.publish(Source.COORDINATOR, [detail])
        self._repo.update_operation(op, (meta.state,), {"announced": meta.state})

    def _terminal_event(self, meta: OperationRecord, now: datetime) -> Detail | None:
        header = _header(meta, now)
        if meta.state == OperationState.COMPLETED:
            waves = [] if meta.dry_run else self._repo.list_waves(meta.operation_id)
            started = meta.started_at or meta.created_at
            completed = meta.completed_at or now
            return OperationCompleted(
                **header,
                waves=(meta.wave_count or 0) if meta.dry_run else len(waves),
                recovered=sum(w.recovered for w in waves),
                failed=sum(w.failed for w in waves),
                started_at=started,
                completed_at=completed,
                duration_seconds=_seconds(started, completed),
            )
        if meta.state == OperationState.FAILED:
            return OperationFailed(
                **header,
                code=meta.error_code or "FAILED",
                reason=meta.reason or "operation failed",
                wave=meta.current_wave if meta.error_code == ErrorCode.WAVE_FAILED else None,
            )
        return None  # CANCELLED comes with cancellation support

    # --- helpers -------------------------------------------------------------------------------

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
