"""Coordinator domain against an in-memory repository with the same conditional semantics as
DynamoDB, and a publisher that captures events. No network."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from drcore.plan import Plan, PlannedResource, PlanWave
from drcore.registry import CustomerEntry, EnvironmentEntry
from drcore.state import OperationState, ResourceState
from events.schemas import (
    ApprovalMode,
    Detail,
    DiscoveryFailed,
    OperationCompleted,
    OperationFailed,
    OperationPaused,
    OperationRequested,
    OperationType,
    PlanReady,
    PlanSource,
    ResourceRecovered,
    ResourceRecoveryFailed,
    Source,
    Strategy,
    WaveCompleted,
    WaveFailed,
    WaveStarted,
)
from services.coordinator.domain import (
    DRY_RUN_REASON,
    ApprovalRefusal,
    Coordinator,
    ErrorCode,
    LockRecord,
    OperationRecord,
    PredecessorMissing,
    ResourceRecord,
    ResourceResult,
    ResultOutcome,
    RetryLater,
    WavePhase,
    WaveRecord,
    executable_waves,
    split_wave,
    wave_outcome,
)
from services.coordinator.hooks import (
    HookConfig,
    HookRef,
    HookSpec,
    HookStartFailed,
    HookStatus,
    WorkloadTarget,
)
from services.coordinator.regional import ChildOutcome

WaveState = WavePhase  # the wave states these tests were written with are its first four

T = TypeVar("T", bound=Detail)
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
CUSTOMER, ENVIRONMENT = "acme", "production"
ACCOUNT = "111111111111"


def _path(record: Any, dotted: str) -> Any:
    value = record
    for part in dotted.split("."):
        if value is None:
            return None
        value = value.get(part) if isinstance(value, Mapping) else getattr(value, part, None)
    return value


def _holds(record: Any, where: Mapping[str, Any] | None) -> bool:
    return all(_path(record, k) == v for k, v in (where or {}).items())


def _set(record: Any, changes: Mapping[str, Any]) -> Any:
    """Apply changes; dotted names set a key of a mapping field (child_outcomes.<id>)."""
    plain = {k: v for k, v in changes.items() if "." not in k}
    for key, value in changes.items():
        if "." in key:
            name, child = key.split(".", 1)
            plain[name] = {**getattr(record, name), child: value}
    return replace(record, **plain)


# --- fakes -----------------------------------------------------------------------------------


class FakeRepository:
    """`Repository` in memory, with DynamoDB's conditional semantics."""

    def __init__(self) -> None:
        self.operations: dict[str, OperationRecord] = {}
        self.waves: dict[str, dict[int, WaveRecord]] = {}
        self.resources: dict[str, dict[str, ResourceRecord]] = {}
        self.locks: dict[tuple[str, str], LockRecord] = {}
        self.plans: dict[str, Plan] = {}
        self.hook_refs: dict[str, HookRef] = {}
        self.active: dict[str, datetime] = {}
        self.result_batches: list[int] = []

    def get_operation(self, operation_id: str) -> OperationRecord | None:
        return self.operations.get(operation_id)

    def create_operation(self, record: OperationRecord) -> bool:
        if record.operation_id in self.operations:
            return False
        self.operations[record.operation_id] = record
        return True

    def update_operation(
        self,
        operation_id: str,
        expect: Iterable[OperationState],
        changes: Mapping[str, Any],
        where: Mapping[str, Any] | None = None,
    ) -> bool:
        current = self.operations.get(operation_id)
        if current is None or current.state not in set(expect) or not _holds(current, where):
            return False
        self.operations[operation_id] = _set(current, changes)
        return True

    def record_child_outcome(self, parent_id: str, child_id: str, outcome: ChildOutcome) -> None:
        parent = self.operations[parent_id]
        self.operations[parent_id] = replace(
            parent, child_outcomes={**parent.child_outcomes, child_id: outcome}
        )

    def mark_active(self, operation_id: str, at: datetime) -> None:
        self.active[operation_id] = at

    def clear_active(self, operation_id: str) -> None:
        self.active.pop(operation_id, None)

    def list_active(self) -> list[tuple[str, datetime]]:
        return sorted(self.active.items())

    def put_hook_ref(self, execution_id: str, ref: HookRef) -> None:
        self.hook_refs[execution_id] = ref

    def get_hook_ref(self, execution_id: str) -> HookRef | None:
        return self.hook_refs.get(execution_id)

    def acquire_lock(self, lock: LockRecord) -> LockRecord:
        key = (lock.customer, lock.environment)
        holder = self.locks.get(key)
        if holder is None or holder.operation_id == lock.operation_id:
            self.locks[key] = lock
            return lock
        return holder

    def release_lock(self, customer: str, environment: str, operation_id: str) -> bool:
        holder = self.locks.get((customer, environment))
        if holder is None or holder.operation_id != operation_id:
            return False
        del self.locks[(customer, environment)]
        return True

    def load_plan(self, operation_id: str) -> Plan | None:
        return self.plans.get(operation_id)

    def put_plan_items(
        self,
        operation_id: str,
        waves: Sequence[WaveRecord],
        resources: Sequence[ResourceRecord],
        overwrite: bool,
    ) -> None:
        stored_waves = self.waves.setdefault(operation_id, {})
        stored_resources = self.resources.setdefault(operation_id, {})
        for wave in waves:
            if overwrite or wave.number not in stored_waves:
                stored_waves[wave.number] = wave
        for resource in resources:
            if overwrite or resource.resource_id not in stored_resources:
                stored_resources[resource.resource_id] = resource

    def list_waves(self, operation_id: str) -> list[WaveRecord]:
        return sorted(self.waves.get(operation_id, {}).values(), key=lambda w: w.number)

    def get_wave(self, operation_id: str, number: int) -> WaveRecord | None:
        return self.waves.get(operation_id, {}).get(number)

    def update_wave(
        self,
        operation_id: str,
        number: int,
        expect: Iterable[WaveState],
        changes: Mapping[str, Any],
        where: Mapping[str, Any] | None = None,
    ) -> bool:
        current = self.get_wave(operation_id, number)
        if current is None or current.state not in set(expect) or not _holds(current, where):
            return False
        self.waves[operation_id][number] = replace(current, **changes)
        return True

    def append_refusal(self, operation_id: str, number: int, refusal: ApprovalRefusal) -> None:
        wave = self.waves[operation_id][number]
        self.waves[operation_id][number] = replace(wave, refusals=(*wave.refusals, refusal))

    def list_resources(self, operation_id: str) -> list[ResourceRecord]:
        return list(self.resources.get(operation_id, {}).values())

    def retry_resources(
        self, operation_id: str, resource_ids: Sequence[str], attempt: int, started_at: datetime
    ) -> None:
        stored = self.resources.get(operation_id, {})
        for resource_id in resource_ids:
            current = stored.get(resource_id)
            failed = current is not None and current.state == ResourceState.FAILED
            if current is not None and failed and current.attempt < attempt:
                stored[resource_id] = replace(
                    current,
                    state=ResourceState.RECOVERING,
                    attempt=attempt,
                    attempt_started_at=started_at,
                    started_at=started_at,
                    completed_at=None,
                    error=None,
                    error_code=None,
                    dr_resource_id=None,
                    dr_private_ip=None,
                )

    def mark_checked(self, operation_id: str, resource_ids: Sequence[str], at: datetime) -> None:
        stored = self.resources.get(operation_id, {})
        for resource_id in resource_ids:
            current = stored[resource_id]
            stored[resource_id] = replace(current, checks=current.checks + 1, last_check_at=at)

    def put_resources(self, operation_id: str, resources: Sequence[ResourceRecord]) -> None:
        for resource in resources:
            self.resources.setdefault(operation_id, {})[resource.resource_id] = resource

    def start_resources(
        self, operation_id: str, resource_ids: Sequence[str], started_at: datetime
    ) -> None:
        stored = self.resources.get(operation_id, {})
        for resource_id in resource_ids:
            current = stored.get(resource_id)
            if current is not None and current.state == ResourceState.PENDING:
                stored[resource_id] = replace(
                    current, state=ResourceState.RECOVERING, started_at=started_at
                )

    def record_results(self, results: Sequence[ResourceResult]) -> list[ResultOutcome]:
        self.result_batches.append(len(results))
        return [self.record_result(r) for r in results]

    def record_result(self, result: ResourceResult) -> ResultOutcome:
        resource = self.resources.get(result.operation_id, {}).get(result.resource_id)
        wave = self.get_wave(result.operation_id, result.wave)
        if resource is None:
            return ResultOutcome.UNKNOWN
        if resource.state in (ResourceState.RECOVERED, ResourceState.FAILED):
            return ResultOutcome.DUPLICATE
        if (
            (resource.wave, resource.strategy) != (result.wave, result.strategy)
            or wave is None
            or wave.state != WaveState.RECOVERING
            or (
                resource.attempt_started_at is not None
                and result.completed_at < resource.attempt_started_at
            )
        ):
            return ResultOutcome.REJECTED
        self.resources[result.operation_id][result.resource_id] = replace(
            resource,
            state=ResourceState.RECOVERED if result.recovered else ResourceState.FAILED,
            completed_at=result.completed_at,
            started_at=result.started_at or resource.started_at,
            dr_resource_id=result.dr_resource_id,
            dr_private_ip=result.dr_private_ip,
            error=result.error,
            error_code=result.error_code,
        )
        remaining = None if wave.remaining is None else wave.remaining - 1
        if result.recovered:
            counted = replace(wave, recovered=wave.recovered + 1, remaining=remaining)
        else:
            counted = replace(
                wave,
                failed=wave.failed + 1,
                failed_resources=wave.failed_resources | {result.resource_id},
                remaining=remaining,
            )
        self.waves[result.operation_id][result.wave] = counted
        if counted.remaining is not None and counted.remaining > 0:
            return ResultOutcome.APPLIED
        return ResultOutcome.COMPLETING


class FakePublisher:
    def __init__(self) -> None:
        self.published: list[tuple[Source, Detail]] = []
        self.fail_next = 0

    def publish(self, source: Source, details: Iterable[Detail]) -> int:
        batch = list(details)
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("PutEvents failed")
        self.published.extend((source, d) for d in batch)
        return 1

    def of(self, kind: type[T]) -> list[T]:
        return [d for _, d in self.published if isinstance(d, kind)]

    def take(self) -> list[Detail]:
        out = [d for _, d in self.published]
        self.published.clear()
        return out


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float = 1.0) -> None:
        self.now += timedelta(seconds=seconds)


class FakeMetrics:
    def __init__(self) -> None:
        self.records: list[tuple[str, float, dict[str, str]]] = []

    def record(self, name: str, unit: str, value: float, dimensions: Mapping[str, str]) -> None:
        self.records.append((name, value, dict(dimensions)))


# --- builders --------------------------------------------------------------------------------


def resource(
    rid: str,
    wave: int,
    strategy: Strategy = Strategy.DRS,
    rto: int = 60,
    customer: str = CUSTOMER,
) -> PlannedResource:
    return PlannedResource(
        resource_id=rid,
        arn=f"arn:aws:ec2:us-east-1:111111111111:instance/{rid}",
        name=f"{customer}-{rid}",
        account="111111111111",
        region="us-east-1",
        dr_region="us-east-2",
        private_ip="10.1.10.10",
        rto_target_minutes=rto,
        rpo_target_minutes=15,
        wave=wave,
        strategy=strategy,
    )


def plan(waves: Mapping[int, Sequence[PlannedResource]], customer: str = CUSTOMER) -> Plan:
    return Plan(
        customer=customer,
        environment=ENVIRONMENT,
        operation=OperationType.FAILOVER,
        created_at=T0,
        plan_source=PlanSource.RESOURCE_EXPLORER,
        waves=[PlanWave(number=n, resources=list(rs)) for n, rs in waves.items()],
    )


def three_waves() -> Plan:
    return plan(
        {
            1: [resource("i-ad1", 1, rto=30), resource("i-ad2", 1, rto=45)],
            2: [resource(f"i-app{k}", 2) for k in range(5)]
            + [resource("ag-1", 2, Strategy.SQL_AG)],
            5: [resource("i-web1", 5, rto=90)],
        }
    )


def request(op: str = "op-000001", **fields: Any) -> OperationRequested:
    values: dict[str, Any] = {
        "operation_id": op,
        "customer": CUSTOMER,
        "environment": ENVIRONMENT,
        "operation": OperationType.FAILOVER,
        "requested_by": "sre@example.com",
        "approval_mode": ApprovalMode.NONE,
        "occurred_at": T0,
    }
    return OperationRequested.model_validate(values | fields)


def plan_ready(op: str = "op-000001", customer: str = CUSTOMER) -> PlanReady:
    return PlanReady(
        operation_id=op,
        customer=customer,
        environment=ENVIRONMENT,
        operation=OperationType.FAILOVER,
        plan_key=f"OP#{op}",
        wave_count=3,
        resource_count=9,
        warning_count=0,
        plan_source=PlanSource.RESOURCE_EXPLORER,
    )


def recovered(op: str, rid: str, wave: int, strategy: Strategy = Strategy.DRS) -> ResourceRecovered:
    return ResourceRecovered(
        operation_id=op,
        customer=CUSTOMER,
        environment=ENVIRONMENT,
        operation=OperationType.FAILOVER,
        resource_id=rid,
        wave=wave,
        strategy=strategy,
        dr_resource_id=f"dr-{rid}",
        dr_private_ip="10.2.10.10",
        dr_region="us-east-2",
        started_at=T0,
        completed_at=T0 + timedelta(minutes=3),
    )


def failed(
    op: str, rid: str, wave: int, strategy: Strategy = Strategy.DRS
) -> ResourceRecoveryFailed:
    return ResourceRecoveryFailed(
        operation_id=op,
        customer=CUSTOMER,
        environment=ENVIRONMENT,
        operation=OperationType.FAILOVER,
        resource_id=rid,
        wave=wave,
        strategy=strategy,
        error_code="LAUNCH_FAILED",
        error="launch failed: no capacity",
        failed_at=T0 + timedelta(minutes=4),
    )


class FakeRegistry:
    def __init__(self, *entries: CustomerEntry) -> None:
        self.entries = {e.name: e for e in entries}

    def customer(self, name: str) -> CustomerEntry | None:
        return self.entries.get(name)

    def customers(self) -> list[CustomerEntry]:
        return list(self.entries.values())


def entry(
    name: str = CUSTOMER,
    environments: Mapping[str, bool] | None = None,
    regions: Mapping[str, str] | None = None,
    account: str = ACCOUNT,
) -> CustomerEntry:
    envs = environments if environments is not None else {ENVIRONMENT: True}
    return CustomerEntry(
        name=name,
        account=account,
        regions=dict(regions or {"us-east-1": "us-east-2"}),
        environments=[EnvironmentEntry(name=n, production=p) for n, p in envs.items()],
        external_id=f"dr-{name}",
    )


class FakeHooks:
    """Hook configuration and an SSM Automation stand-in: executions run until `complete`."""

    def __init__(self) -> None:
        self.configs: dict[tuple[str, str], HookConfig] = {}
        self.started: list[tuple[WorkloadTarget, HookSpec, dict[str, list[str]], str]] = []
        self.by_token: dict[str, str] = {}
        self.statuses: dict[str, HookStatus] = {}
        self.stopped: list[str] = []
        self.refuse: str | None = None

    def get(self, customer: str, environment: str) -> HookConfig | None:
        return self.configs.get((customer, environment))

    def start(
        self,
        target: WorkloadTarget,
        spec: HookSpec,
        parameters: Mapping[str, list[str]],
        token: str,
    ) -> str:
        if self.refuse:
            raise HookStartFailed(self.refuse)
        if token in self.by_token:
            return self.by_token[token]
        execution_id = f"exec-{len(self.by_token) + 1:04d}"
        self.by_token[token] = execution_id
        self.started.append((target, spec, dict(parameters), execution_id))
        self.statuses[execution_id] = HookStatus("InProgress")
        return execution_id

    def status(self, target: WorkloadTarget, execution_id: str) -> HookStatus | None:
        return self.statuses.get(execution_id)

    def stop(self, target: WorkloadTarget, execution_id: str) -> None:
        self.stopped.append(execution_id)
        self.statuses[execution_id] = HookStatus("Cancelled")

    def complete(self, execution_id: str, status: str = "Success", message: str | None = None):
        self.statuses[execution_id] = HookStatus(status, message)


class FakeNotifier:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, str]]] = []

    def notify(self, subject: str, message: str, attributes: Mapping[str, str]) -> None:
        self.sent.append((subject, message, dict(attributes)))


class FakeScheduler:
    def __init__(self) -> None:
        self.scheduled: list[tuple[Any, int]] = []

    def schedule(self, message: Any, delay_seconds: int) -> None:
        self.scheduled.append((message, delay_seconds))


class Tokens:
    def __init__(self) -> None:
        self.issued: list[str] = []

    def __call__(self) -> str:
        self.issued.append(f"apv-token-{len(self.issued) + 1:04d}")
        return self.issued[-1]


class Harness:
    def __init__(self, part_size: int = 100, registry: FakeRegistry | None = None) -> None:
        self.repo = FakeRepository()
        self.publisher = FakePublisher()
        self.clock = Clock()
        self.metrics = FakeMetrics()
        self.registry = registry or FakeRegistry(entry())
        self.hooks = FakeHooks()
        self.notifier = FakeNotifier()
        self.scheduler = FakeScheduler()
        self.tokens = Tokens()
        self.coordinator = Coordinator(
            self.repo,
            self.publisher,
            part_size=part_size,
            clock=self.clock,
            metrics=self.metrics,
            registry=self.registry,
            hook_configs=self.hooks,
            hooks=self.hooks,
            notifier=self.notifier,
            scheduler=self.scheduler,
            tokens=self.tokens,
        )

    def start(self, op: str = "op-000001", the_plan: Plan | None = None, **fields: Any) -> None:
        self.repo.plans[op] = the_plan or three_waves()
        self.coordinator.on_operation_requested(request(op, **fields))
        self.coordinator.on_plan_ready(plan_ready(op))

    def answer(self, started: Iterable[WaveStarted], fail: Iterable[str] = ()) -> None:
        """Recover (or fail) every resource of the given WaveStarted parts."""
        failing = set(fail)
        for event in list(started):
            for ref in event.resources:
                self.clock.tick()
                args = (event.operation_id, ref.resource_id, event.wave, event.strategy)
                if ref.resource_id in failing:
                    self.coordinator.on_resource_recovery_failed(failed(*args))
                else:
                    self.coordinator.on_resource_recovered(recovered(*args))

    def meta(self, op: str = "op-000001") -> OperationRecord:
        record = self.repo.get_operation(op)
        assert record is not None
        return record

    def wave(self, number: int, op: str = "op-000001") -> WaveRecord:
        return self.repo.waves[op][number]


# --- pure functions --------------------------------------------------------------------------


def test_given_a_wave_larger_than_the_part_size_when_split_then_parts_per_strategy_are_numbered():
    # Given a wave with 5 DRS servers and 1 SQL AG, parts of at most 2 resources
    wave = PlanWave(
        number=2,
        resources=[resource(f"i-{k}", 2) for k in range(5)]
        + [resource("ag-1", 2, Strategy.SQL_AG)],
    )
    record = OperationRecord(
        operation_id="op-000001",
        operation=OperationType.FAILOVER,
        customer=CUSTOMER,
        environment=ENVIRONMENT,
        state=OperationState.RUNNING,
        requested_by="sre",
        created_at=T0,
        updated_at=T0,
    )

    # When it is split
    events = split_wave(record, wave, part_size=2, now=T0)

    # Then DRS gets parts 1..3 of 3 (2, 2, 1 resources) and SQL AG part 1 of 1, in plan order
    drs = [e for e in events if e.strategy == Strategy.DRS]
    assert [(e.part, e.part_count, len(e.resources)) for e in drs] == [
        (1, 3, 2),
        (2, 3, 2),
        (3, 3, 1),
    ]
    assert [r.resource_id for e in drs for r in e.resources] == [f"i-{k}" for k in range(5)]
    sql = [e for e in events if e.strategy == Strategy.SQL_AG]
    assert [(e.part, e.part_count, [r.resource_id for r in e.resources]) for e in sql] == [
        (1, 1, ["ag-1"])
    ]
    assert all(e.wave == 2 and e.operation_id == "op-000001" for e in events)


def test_given_counts_when_judging_a_wave_then_outcome_only_when_every_resource_is_counted():
    wave = WaveRecord(number=1, state=WaveState.RECOVERING, expected=3, updated_at=T0)
    assert wave_outcome(replace(wave, recovered=2)) is None
    assert wave_outcome(replace(wave, recovered=3)) == WaveState.COMPLETED
    assert wave_outcome(replace(wave, recovered=2, failed=1)) == WaveState.FAILED


def test_given_filter_empty_waves_and_repeats_when_planning_then_only_runnable_waves_remain():
    the_plan = plan(
        {
            3: [resource("i-c", 3)],
            1: [resource("i-a", 1), resource("i-b", 1)],
            2: [],
            4: [resource("i-a", 4), resource("i-d", 4)],
        }
    )
    assert [
        (w.number, [r.resource_id for r in w.resources]) for w in executable_waves(the_plan)
    ] == [
        (1, ["i-a", "i-b"]),
        (3, ["i-c"]),
        (4, ["i-d"]),
    ]
    assert [w.number for w in executable_waves(the_plan, [1, 4, 9])] == [1, 4]


# --- lifecycle -------------------------------------------------------------------------------


def test_given_a_three_wave_plan_when_every_resource_recovers_then_waves_run_strictly_in_order():
    h = Harness(part_size=4)

    # Given an accepted operation whose plan is ready
    h.start()
    assert h.meta().state == OperationState.RUNNING
    assert h.repo.locks[(CUSTOMER, ENVIRONMENT)].operation_id == "op-000001"

    # Then only wave 1 started, with its resources marked RECOVERING
    first = h.publisher.of(WaveStarted)
    assert {e.wave for e in first} == {1}
    assert h.repo.waves["op-000001"][1].state == WaveState.RECOVERING
    assert {h.repo.waves["op-000001"][n].state for n in (2, 5)} == {WaveState.PENDING}
    assert {r.state for r in h.repo.resources["op-000001"].values() if r.wave == 1} == {
        ResourceState.RECOVERING
    }
    assert h.meta().current_wave == 1

    # When wave 1 recovers, then wave 2 starts (grouped by strategy, DRS split in 2 parts of ≤4)
    h.publisher.take()
    h.answer(first)
    events = h.publisher.take()
    assert isinstance(events[0], WaveCompleted) and events[0].wave == 1
    assert events[0].rto_target_minutes == 30 and events[0].recovered == 2
    second = [e for e in events if isinstance(e, WaveStarted)]
    assert [(e.wave, e.strategy, e.part, e.part_count, len(e.resources)) for e in second] == [
        (2, Strategy.DRS, 1, 2, 4),
        (2, Strategy.DRS, 2, 2, 1),
        (2, Strategy.SQL_AG, 1, 1, 1),
    ]
    assert h.repo.waves["op-000001"][5].state == WaveState.PENDING

    # When wave 2 recovers, then wave 5 (the gap is fine) starts; then the operation completes
    h.answer(second)
    third = h.publisher.of(WaveStarted)
    assert [e.wave for e in third] == [5]
    h.publisher.take()
    h.answer(third)
    events = h.publisher.take()
    assert [type(e) for e in events] == [WaveCompleted, OperationCompleted]
    done = events[1]
    assert isinstance(done, OperationCompleted)
    assert (done.waves, done.recovered, done.failed) == (3, 9, 0)
    assert done.duration_seconds > 0
    assert h.meta().state == OperationState.COMPLETED
    assert h.meta().announced == OperationState.COMPLETED
    assert (CUSTOMER, ENVIRONMENT) not in h.repo.locks
    assert {r.state for r in h.repo.resources["op-000001"].values()} == {ResourceState.RECOVERED}
    assert all(
        r.dr_resource_id == f"dr-{r.resource_id}" for r in h.repo.resources["op-000001"].values()
    )
    assert all(s == Source.COORDINATOR for s, _ in h.publisher.published)
    names = {name for name, _, _ in h.metrics.records}
    assert names == {"ResourcesRecovered", "ResourcesFailed", "WaveDurationSeconds"}
    assert h.metrics.records[0][2] == {
        "Customer": CUSTOMER,
        "Environment": ENVIRONMENT,
        "Operation": "failover",
    }


def test_given_a_wave_filter_when_the_plan_is_ready_then_only_those_waves_are_written_and_run():
    h = Harness()
    h.start(wave_filter=[5, 2])
    assert sorted(h.repo.waves["op-000001"]) == [2, 5]
    assert {e.wave for e in h.publisher.of(WaveStarted)} == {2}
    assert all(r.wave in (2, 5) for r in h.repo.resources["op-000001"].values())
    assert h.meta().wave_filter == (2, 5)


def test_given_duplicated_results_when_delivered_again_then_nothing_is_counted_twice():
    h = Harness()
    h.start()
    first = h.publisher.of(WaveStarted)

    # When every result of wave 1 is delivered twice (and a stale one again later)
    h.answer(first)
    h.answer(first)
    h.coordinator.on_resource_recovered(recovered("op-000001", "i-ad1", 1))

    # Then wave 1 counted each resource once and completed once; wave 2 started once
    wave = h.repo.waves["op-000001"][1]
    assert (wave.recovered, wave.failed, wave.state) == (2, 0, WaveState.COMPLETED)
    assert len(h.publisher.of(WaveCompleted)) == 1
    assert len([e for e in h.publisher.of(WaveStarted) if e.wave == 2]) == 2  # 2 strategies


def test_given_no_operation_when_a_result_arrives_then_it_is_ignored_and_nothing_is_created():
    h = Harness()
    h.coordinator.on_resource_recovered(recovered("op-unknown1", "i-ad1", 1))
    assert h.repo.operations == {} and h.repo.resources == {} and h.repo.waves == {}
    assert h.publisher.published == []


def test_given_a_running_operation_when_a_result_names_an_unknown_resource_then_ignored():
    h = Harness()
    h.start()
    before = dict(h.repo.waves["op-000001"])
    h.coordinator.on_resource_recovered(recovered("op-000001", "i-stranger", 1))
    h.coordinator.on_resource_recovered(recovered("op-000001", "i-app1", 1))  # wrong wave
    h.coordinator.on_resource_recovered(recovered("op-000001", "i-ad1", 1, Strategy.EKS_DNS))
    assert h.repo.waves["op-000001"] == before
    assert "i-stranger" not in h.repo.resources["op-000001"]


def test_given_a_plan_ready_before_its_request_when_handled_then_retried_later():
    h = Harness()
    with pytest.raises(PredecessorMissing):
        h.coordinator.on_plan_ready(plan_ready())
    with pytest.raises(PredecessorMissing):
        h.coordinator.on_discovery_failed(
            DiscoveryFailed(
                operation_id="op-000001",
                customer=CUSTOMER,
                environment=ENVIRONMENT,
                operation=OperationType.FAILOVER,
                code="X",
                reason="y",
            )
        )
    assert h.repo.operations == {}


def test_given_an_active_operation_when_another_is_requested_then_it_fails_with_a_clear_reason():
    h = Harness()
    h.repo.plans["op-000001"] = three_waves()
    h.coordinator.on_operation_requested(request("op-000001"))

    # When a second operation for the same customer + environment is requested
    h.clock.tick(60)
    h.coordinator.on_operation_requested(request("op-000002", operation=OperationType.BUBBLE_TEST))

    # Then it is FAILED with a reason naming the active one, its type and since when
    second = h.meta("op-000002")
    assert second.state == OperationState.FAILED
    assert second.error_code == ErrorCode.OPERATION_IN_PROGRESS
    assert second.reason is not None
    assert "op-000001" in second.reason and "failover" in second.reason
    assert T0.isoformat() in second.reason
    [event] = h.publisher.of(OperationFailed)
    assert (event.operation_id, event.code) == ("op-000002", ErrorCode.OPERATION_IN_PROGRESS)
    # and the first operation is untouched
    assert h.meta("op-000001").state == OperationState.DISCOVERING
    assert h.repo.locks[(CUSTOMER, ENVIRONMENT)].operation_id == "op-000001"

    # When the second one's PlanReady arrives anyway, then it is ignored
    h.repo.plans["op-000002"] = three_waves()
    h.coordinator.on_plan_ready(plan_ready("op-000002"))
    assert "op-000002" not in h.repo.waves
    assert len(h.publisher.of(OperationFailed)) == 1


def test_given_a_redelivered_request_when_handled_again_then_nothing_changes():
    h = Harness()
    h.coordinator.on_operation_requested(request())
    before = h.meta()
    h.clock.tick(5)
    h.coordinator.on_operation_requested(request())
    assert h.meta() == before
    assert h.publisher.published == []


def test_given_a_finished_operation_when_its_request_is_redelivered_then_no_lock_is_taken():
    h = Harness()
    h.start(the_plan=plan({1: [resource("i-1", 1)]}))
    h.answer(h.publisher.of(WaveStarted))
    assert h.meta().state == OperationState.COMPLETED
    h.coordinator.on_operation_requested(request())
    assert h.repo.locks == {}


def test_given_a_dry_run_when_the_plan_is_ready_then_it_completes_without_lock_or_waves():
    h = Harness()
    h.repo.locks[(CUSTOMER, ENVIRONMENT)] = LockRecord(
        CUSTOMER, ENVIRONMENT, "op-busy01", OperationType.FAILOVER, T0
    )
    h.start(dry_run=True)
    meta = h.meta()
    assert (meta.state, meta.reason, meta.wave_count) == (
        OperationState.COMPLETED,
        DRY_RUN_REASON,
        3,
    )
    assert h.repo.locks[(CUSTOMER, ENVIRONMENT)].operation_id == "op-busy01"
    assert h.publisher.of(WaveStarted) == [] and "op-000001" not in h.repo.waves
    [done] = h.publisher.of(OperationCompleted)
    assert (done.waves, done.recovered) == (3, 0)


def test_given_an_empty_plan_when_ready_then_the_operation_fails_and_releases_the_lock():
    h = Harness()
    h.start(the_plan=plan({1: [], 2: []}))
    assert (h.meta().state, h.meta().error_code) == (OperationState.FAILED, ErrorCode.EMPTY_PLAN)
    assert h.repo.locks == {}
    [event] = h.publisher.of(OperationFailed)
    assert event.code == ErrorCode.EMPTY_PLAN


def test_given_a_filter_matching_no_wave_when_ready_then_empty_plan_names_the_filter():
    h = Harness()
    h.start(wave_filter=[7])
    assert h.meta().error_code == ErrorCode.EMPTY_PLAN
    assert "[7]" in (h.meta().reason or "")


def test_given_a_failed_resource_when_its_wave_ends_then_the_operation_pauses_and_waits():
    h = Harness()
    h.start()
    h.answer(h.publisher.of(WaveStarted))
    second = [e for e in h.publisher.of(WaveStarted) if e.wave == 2]

    # When one resource of wave 2 fails
    h.answer(second, fail={"i-app3"})

    # Then WaveFailed names it and the operation is PAUSED on wave 2, still holding its lock
    [wave_failed] = h.publisher.of(WaveFailed)
    assert (wave_failed.wave, wave_failed.failed, wave_failed.recovered) == (2, 1, 5)
    assert wave_failed.failed_resources == ["i-app3"]
    [paused] = h.publisher.of(OperationPaused)
    assert paused.wave == 2 and "i-app3" in paused.reason
    meta = h.meta()
    assert (meta.state, meta.paused_wave, meta.announced) == (
        OperationState.PAUSED,
        2,
        OperationState.PAUSED,
    )
    assert h.repo.locks[(CUSTOMER, ENVIRONMENT)].operation_id == "op-000001"
    assert h.publisher.of(OperationFailed) == []
    # and nothing further starts
    assert h.repo.waves["op-000001"][5].state == WaveState.PENDING
    assert not [e for e in h.publisher.of(WaveStarted) if e.wave == 5]
    failed_item = h.repo.resources["op-000001"]["i-app3"]
    assert (failed_item.state, failed_item.error_code) == (ResourceState.FAILED, "LAUNCH_FAILED")
    h.coordinator.advance("op-000001")  # nothing to do while paused
    assert len(h.publisher.of(OperationPaused)) == 1


def test_given_discovery_failed_when_handled_then_operation_fails_with_its_code():
    h = Harness()
    h.coordinator.on_operation_requested(request())
    h.coordinator.on_discovery_failed(
        DiscoveryFailed(
            operation_id="op-000001",
            customer=CUSTOMER,
            environment=ENVIRONMENT,
            operation=OperationType.FAILOVER,
            code="RESOURCE_EXPLORER_UNAVAILABLE",
            reason="no index in us-east-1",
        )
    )
    meta = h.meta()
    assert (meta.state, meta.error_code, meta.reason) == (
        OperationState.FAILED,
        "RESOURCE_EXPLORER_UNAVAILABLE",
        "no index in us-east-1",
    )
    assert h.repo.locks == {}
    assert [e.code for e in h.publisher.of(OperationFailed)] == ["RESOURCE_EXPLORER_UNAVAILABLE"]


def test_given_all_customers_without_a_region_when_requested_then_refused_without_lock():
    h = Harness()
    h.coordinator.on_operation_requested(request(customer="*", region_map={}))
    meta = h.meta()
    assert (meta.state, meta.error_code) == (OperationState.FAILED, ErrorCode.REGION_REQUIRED)
    assert meta.announced == OperationState.FAILED
    assert h.repo.locks == {}
    [event] = h.publisher.of(OperationFailed)
    assert (event.customer, event.code) == ("*", ErrorCode.REGION_REQUIRED)


def test_given_no_approval_mode_when_requested_then_the_default_is_recorded_with_why():
    # Given production (registry) and a non-production environment
    h = Harness(registry=FakeRegistry(entry(environments={ENVIRONMENT: True, "staging": False})))

    # When requests name no approval mode
    h.coordinator.on_operation_requested(request(approval_mode=None))
    h.coordinator.on_operation_requested(
        request("op-000002", environment="staging", approval_mode=None)
    )
    h.coordinator.on_operation_requested(
        request(
            "op-000003",
            environment="staging",
            approval_mode=None,
            operation=OperationType.BUBBLE_TEST,
            dry_run=True,
        )
    )
    h.coordinator.on_operation_requested(
        request("op-000004", environment="dev", approval_mode=ApprovalMode.FIRST_WAVE)
    )

    # Then production failover requires approval, the others do not; an explicit mode wins
    assert (h.meta().approval_mode, h.meta().approval_mode_chosen_by) == (
        ApprovalMode.REQUIRED,
        "default: default for a production failover",
    )
    assert h.meta("op-000002").approval_mode == ApprovalMode.NONE
    assert "non-production" in (h.meta("op-000002").approval_mode_chosen_by or "")
    assert h.meta("op-000003").approval_mode == ApprovalMode.NONE
    assert (h.meta("op-000004").approval_mode, h.meta("op-000004").approval_mode_chosen_by) == (
        ApprovalMode.FIRST_WAVE,
        "sre@example.com",
    )


def test_given_a_plan_for_another_customer_when_ready_then_nothing_runs():
    h = Harness()
    h.repo.plans["op-000001"] = plan({1: [resource("i-x", 1, customer="other")]}, customer="other")
    h.coordinator.on_operation_requested(request())
    h.coordinator.on_plan_ready(plan_ready())
    assert h.meta().error_code == ErrorCode.PLAN_SCOPE_MISMATCH
    assert h.publisher.of(WaveStarted) == []


def test_given_a_duplicate_plan_ready_when_handled_then_the_wave_is_not_started_twice():
    h = Harness()
    h.start()
    h.coordinator.on_plan_ready(plan_ready())
    assert len(h.publisher.of(WaveStarted)) == 1


def test_given_the_lock_freed_when_a_new_operation_is_requested_then_it_takes_the_lock():
    h = Harness()
    h.start(the_plan=plan({1: [resource("i-1", 1)]}))
    h.answer(h.publisher.of(WaveStarted))
    h.coordinator.on_operation_requested(request("op-000002"))
    assert h.meta("op-000002").state == OperationState.DISCOVERING


# --- crashes ---------------------------------------------------------------------------------


def test_given_a_crash_while_announcing_a_wave_when_redelivered_then_taken_over_after_grace():
    h = Harness()
    h.repo.plans["op-000001"] = three_waves()
    h.coordinator.on_operation_requested(request())

    # Given publishing WaveStarted fails once (the worker dies after claiming the wave)
    h.publisher.fail_next = 1
    with pytest.raises(RuntimeError):
        h.coordinator.on_plan_ready(plan_ready())
    assert h.repo.waves["op-000001"][1].state == WaveState.RECOVERING
    assert h.publisher.of(WaveStarted) == []

    # When the event is redelivered soon, then it waits (another worker may still be on it)
    h.clock.tick(5)
    with pytest.raises(RetryLater):
        h.coordinator.on_plan_ready(plan_ready())

    # When it is redelivered after the grace period, then the wave start is announced once
    h.clock.tick(60)
    h.coordinator.on_plan_ready(plan_ready())
    assert [e.wave for e in h.publisher.of(WaveStarted)] == [1]
    assert h.repo.waves["op-000001"][1].announced == WaveState.RECOVERING
    h.coordinator.on_plan_ready(plan_ready())
    assert len(h.publisher.of(WaveStarted)) == 1


def test_given_a_crash_after_the_last_result_counted_when_redelivered_then_the_wave_still_ends():
    h = Harness()
    h.start(the_plan=plan({1: [resource("i-1", 1)], 2: [resource("i-2", 2)]}))
    h.publisher.fail_next = 1  # WaveCompleted cannot be published: worker dies

    # Given the last result of wave 1 is counted but its follow-up crashed
    with pytest.raises(RuntimeError):
        h.coordinator.on_resource_recovered(recovered("op-000001", "i-1", 1))
    assert h.repo.waves["op-000001"][1].state == WaveState.COMPLETED

    # When the same result is redelivered after the grace period
    h.clock.tick(120)
    h.coordinator.on_resource_recovered(recovered("op-000001", "i-1", 1))

    # Then it is not counted again, WaveCompleted is published and wave 2 starts
    assert h.repo.waves["op-000001"][1].recovered == 1
    assert [e.wave for e in h.publisher.of(WaveCompleted)] == [1]
    assert [e.wave for e in h.publisher.of(WaveStarted)] == [1, 2]
