"""Properties of the coordinator under duplicated and reordered deliveries (in-memory fakes),
including failures that pause the operation and the operator resuming it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drcore.state import OperationState, ResourceState
from events.schemas import (
    OperationCompleted,
    OperationFailed,
    OperationResumeRequested,
    OperationType,
    ResumeMode,
    Strategy,
    WaveCompleted,
    WaveFailed,
    WaveStarted,
)
from services.coordinator.domain import WavePhase
from tests.unit.test_coordinator_domain import (
    CUSTOMER,
    ENVIRONMENT,
    Harness,
    failed,
    plan,
    plan_ready,
    recovered,
    request,
    resource,
)

OP = "op-000001"


@st.composite
def scenarios(draw: Any) -> tuple[Any, set[str], int]:
    numbers = sorted(draw(st.sets(st.integers(1, 9), min_size=1, max_size=4)))
    waves = {}
    for n in numbers:
        count = draw(st.integers(1, 5))
        strategies = draw(st.lists(st.sampled_from(list(Strategy)), min_size=count, max_size=count))
        waves[n] = [resource(f"r{n}-{k}", n, s) for k, s in enumerate(strategies)]
    ids = [r.resource_id for rs in waves.values() for r in rs]
    failing = draw(st.sets(st.sampled_from(ids), max_size=2)) if draw(st.booleans()) else set()
    return plan(waves), failing, draw(st.integers(1, 3))


def resume(mode: ResumeMode) -> OperationResumeRequested:
    return OperationResumeRequested(
        operation_id=OP,
        customer=CUSTOMER,
        environment=ENVIRONMENT,
        operation=OperationType.FAILOVER,
        requested_by="sre@example.com",
        mode=mode,
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios(), data=st.data())
def test_given_duplicated_reordered_deliveries_then_every_resource_is_accounted_once(
    scenario: tuple[Any, set[str], int], data: st.DataObject
):
    the_plan, failing, part_size = scenario
    h = Harness(part_size=part_size)
    h.repo.plans[OP] = the_plan
    pending: list[Any] = [request(OP), plan_ready(OP), request(OP)]
    seen_parts = 0
    redeliveries = 0
    still_failing = set(failing)  # a retried resource recovers on its next attempt
    skipped: set[str] = set()
    handlers: dict[str, Callable[[Any], None]] = {
        "OperationRequested": h.coordinator.on_operation_requested,
        "PlanReady": h.coordinator.on_plan_ready,
        "ResourceRecovered": h.coordinator.on_resource_recovered,
        "ResourceRecoveryFailed": h.coordinator.on_resource_recovery_failed,
        "OperationResumeRequested": h.coordinator.on_resume_requested,
    }

    # Deliver messages in a random order, each possibly more than once, until none is left;
    # whenever the operation pauses, the operator resumes it (retry-failed or skip-failed).
    while True:
        while pending:
            message = pending.pop(data.draw(st.integers(0, len(pending) - 1)))
            if redeliveries < 30 and data.draw(st.integers(0, 4)) == 4:
                redeliveries += 1
                pending.append(message)  # it will come again
            handle = handlers[type(message).__name__]
            try:
                handle(message)
            except Exception as error:  # a predecessor is missing: the queue redelivers it
                assert type(error).__name__ == "PredecessorMissing"
                pending.append(message)
            parts = h.publisher.of(WaveStarted)
            for event in parts[seen_parts:]:
                for ref in event.resources:
                    rid = ref.resource_id
                    args = (OP, rid, event.wave, event.strategy)
                    if event.attempt == 1 and rid in still_failing:
                        pending.append(failed(*args))
                    else:
                        done = recovered(*args)
                        at = h.clock.now + timedelta(minutes=1)
                        pending.append(done.model_copy(update={"completed_at": at}))
            seen_parts = len(parts)
        meta = h.repo.get_operation(OP)
        assert meta is not None
        if meta.state != OperationState.PAUSED:
            break
        h.clock.tick(600)  # the operator takes a while
        mode = data.draw(st.sampled_from(list(ResumeMode)))
        paused = h.repo.waves[OP][meta.paused_wave or 0]
        if mode == ResumeMode.SKIP_FAILED:
            skipped |= set(paused.failed_resources)
        pending.append(resume(mode))

    waves = {w.number: w for w in h.repo.list_waves(OP)}
    resources = h.repo.resources[OP]
    # Every resource is accounted for exactly once per attempt: recovered, or failed and skipped.
    for wave in waves.values():
        mine = [r for r in resources.values() if r.wave == wave.number]
        assert wave.expected == len(mine)
        assert wave.state == WavePhase.COMPLETED
        assert wave.recovered == sum(r.state == ResourceState.RECOVERED for r in mine)
        assert wave.failed == sum(r.state == ResourceState.FAILED for r in mine)
        assert wave.counted == wave.expected
    assert {r.resource_id for r in resources.values() if r.state == ResourceState.FAILED} == skipped
    # Waves started strictly in order (a retry starts its wave again, nothing later first).
    first_seen = list(dict.fromkeys(e.wave for e in h.publisher.of(WaveStarted)))
    assert first_seen == sorted(first_seen) == sorted(waves)
    assert sorted(e.wave for e in h.publisher.of(WaveCompleted)) == sorted(waves)
    assert {e.wave for e in h.publisher.of(WaveFailed)} <= set(waves)
    # The operation completed once, released its lock, and counted the skipped failures.
    meta = h.repo.get_operation(OP)
    assert meta is not None and meta.state == OperationState.COMPLETED
    assert meta.announced == meta.state
    finals = h.publisher.of(OperationCompleted) + h.publisher.of(OperationFailed)
    assert len(finals) == 1
    assert isinstance(finals[0], OperationCompleted) and finals[0].failed == len(skipped)
    assert (CUSTOMER, ENVIRONMENT) not in h.repo.locks
