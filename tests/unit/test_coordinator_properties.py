"""Properties of the coordinator under duplicated and reordered deliveries (in-memory fakes)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drcore.state import OperationState, ResourceState, WaveState
from events.schemas import (
    OperationCompleted,
    OperationFailed,
    Strategy,
    WaveCompleted,
    WaveFailed,
    WaveStarted,
)
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
    handlers: dict[str, Callable[[Any], None]] = {
        "OperationRequested": h.coordinator.on_operation_requested,
        "PlanReady": h.coordinator.on_plan_ready,
        "ResourceRecovered": h.coordinator.on_resource_recovered,
        "ResourceRecoveryFailed": h.coordinator.on_resource_recovery_failed,
    }

    # Deliver messages in a random order, each possibly more than once, until none is left.
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
                result = failed(*args) if rid in failing else recovered(*args)
                pending.append(result)
        seen_parts = len(parts)

    waves = {w.number: w for w in h.repo.list_waves(OP)}
    started = [w for w in waves.values() if w.state != WaveState.PENDING]
    resources = h.repo.resources[OP]
    # Every resource of a started wave is accounted for exactly once; the others never started.
    for wave in waves.values():
        mine = [r for r in resources.values() if r.wave == wave.number]
        assert wave.expected == len(mine)
        if wave.state == WaveState.PENDING:
            assert {r.state for r in mine} == {ResourceState.PENDING}
            continue
        assert wave.recovered == sum(r.state == ResourceState.RECOVERED for r in mine)
        assert wave.failed == sum(r.state == ResourceState.FAILED for r in mine)
        assert wave.counted == wave.expected
    # Waves started strictly in order, each announced once; the operation ended once.
    first_seen = list(dict.fromkeys(e.wave for e in h.publisher.of(WaveStarted)))
    assert first_seen == sorted(first_seen) == [w.number for w in started]
    ended = [e.wave for e in h.publisher.of(WaveCompleted)] + [
        e.wave for e in h.publisher.of(WaveFailed)
    ]
    assert sorted(ended) == [w.number for w in started]
    meta = h.repo.get_operation(OP)
    assert meta is not None and meta.announced == meta.state
    finals = h.publisher.of(OperationCompleted) + h.publisher.of(OperationFailed)
    assert len(finals) == 1
    if failing:
        assert meta.state == OperationState.FAILED
        assert waves[max(w.number for w in started)].state == WaveState.FAILED
    else:
        assert meta.state == OperationState.COMPLETED
        assert len(started) == len(waves)
    assert (CUSTOMER, ENVIRONMENT) not in h.repo.locks
