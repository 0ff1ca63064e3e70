"""Operator controls and the reconciler: resume (retry-failed / skip-failed), abort mid-wave,
stuck resources re-checked by their owner, lost discovery answers. In-memory fakes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from drcore.state import OperationState, ResourceState
from events.schemas import (
    OperationCancelled,
    OperationCancelRequested,
    OperationCompleted,
    OperationRequested,
    OperationResumeRequested,
    OperationType,
    ResumeMode,
    Source,
    Strategy,
    WaveCompleted,
    WaveStarted,
)
from events.schemas.models import OperationResumed, ResourceCheckRequested
from services.coordinator.domain import PredecessorMissing, WavePhase
from tests.unit.test_coordinator_domain import (
    CUSTOMER,
    ENVIRONMENT,
    Harness,
    failed,
    plan,
    recovered,
    request,
    resource,
)

OP = "op-000001"


def three() -> Any:
    return plan(
        {
            1: [resource("i-1", 1, rto=15), resource("i-2", 1, rto=15), resource("i-3", 1)],
            2: [resource("i-4", 2)],
            3: [resource("i-5", 3)],
        }
    )


def resume(mode: ResumeMode, **fields: Any) -> OperationResumeRequested:
    values: dict[str, Any] = {
        "operation_id": OP,
        "customer": CUSTOMER,
        "environment": ENVIRONMENT,
        "operation": OperationType.FAILOVER,
        "requested_by": "sre@example.com",
        "mode": mode,
    }
    return OperationResumeRequested.model_validate(values | fields)


def cancel(**fields: Any) -> OperationCancelRequested:
    values: dict[str, Any] = {
        "operation_id": OP,
        "customer": CUSTOMER,
        "environment": ENVIRONMENT,
        "operation": OperationType.FAILOVER,
        "requested_by": "sre@example.com",
        "reason": "primary is back",
    }
    return OperationCancelRequested.model_validate(values | fields)


def paused_on_wave_1(h: Harness) -> None:
    h.start(the_plan=three())
    h.answer(h.publisher.of(WaveStarted), fail={"i-2", "i-3"})
    assert h.meta().state == OperationState.PAUSED


# --- resume ----------------------------------------------------------------------------------


def test_given_a_paused_wave_when_retry_failed_then_only_the_failed_resources_start_again():
    h = Harness()
    paused_on_wave_1(h)
    h.clock.tick(600)
    h.publisher.take()

    h.coordinator.on_resume_requested(resume(ResumeMode.RETRY_FAILED))

    # Then a second attempt of wave 1 starts for i-2 and i-3 only
    [again] = h.publisher.of(WaveStarted)
    assert (again.wave, again.attempt) == (1, 2)
    assert sorted(r.resource_id for r in again.resources) == ["i-2", "i-3"]
    [resumed] = h.publisher.of(OperationResumed)
    assert (resumed.mode, resumed.attempt, resumed.requested_by) == (
        ResumeMode.RETRY_FAILED,
        2,
        "sre@example.com",
    )
    wave = h.wave(1)
    assert (wave.state, wave.recovered, wave.failed, wave.attempt) == (
        WavePhase.RECOVERING,
        1,
        0,
        2,
    )
    retried = h.repo.resources[OP]["i-2"]
    assert (retried.state, retried.attempt, retried.error) == (ResourceState.RECOVERING, 2, None)
    assert h.meta().state == OperationState.RUNNING

    # When a late duplicate of the first attempt's failure arrives, it is not counted
    h.coordinator.on_resource_recovery_failed(failed(OP, "i-2", 1))
    assert h.wave(1).failed == 0

    # When the retried resources recover, the wave completes and wave 2 starts
    for rid in ("i-2", "i-3"):
        result = recovered(OP, rid, 1)
        h.coordinator.on_resource_recovered(
            result.model_copy(update={"completed_at": h.clock.now + timedelta(minutes=2)})
        )
    assert h.wave(1).state == WavePhase.COMPLETED
    assert [e.wave for e in h.publisher.of(WaveStarted)] == [1, 2]


def test_given_a_paused_wave_when_skip_failed_then_the_failures_stay_and_the_next_wave_starts():
    h = Harness()
    paused_on_wave_1(h)
    h.publisher.take()

    h.coordinator.on_resume_requested(resume(ResumeMode.SKIP_FAILED))
    h.coordinator.on_resume_requested(resume(ResumeMode.SKIP_FAILED))  # twice: nothing more

    wave = h.wave(1)
    assert (wave.state, wave.failed, wave.failures_accepted_by) == (
        WavePhase.COMPLETED,
        2,
        "sre@example.com",
    )
    [done] = h.publisher.of(WaveCompleted)
    assert (done.wave, done.recovered, done.failed) == (1, 1, 2)
    assert [e.wave for e in h.publisher.of(WaveStarted)] == [2]
    for later in (2, 3):
        h.answer([e for e in h.publisher.of(WaveStarted) if e.wave == later])
    [final] = h.publisher.of(OperationCompleted)
    assert (final.recovered, final.failed) == (3, 2)


def test_given_a_running_operation_when_resumed_then_nothing_changes():
    h = Harness()
    h.start(the_plan=three())
    before = dict(h.repo.waves[OP])
    h.coordinator.on_resume_requested(resume(ResumeMode.RETRY_FAILED))
    assert h.repo.waves[OP] == before and h.publisher.of(OperationResumed) == []


def test_given_a_resume_for_another_scope_then_refused():
    h = Harness()
    paused_on_wave_1(h)
    h.coordinator.on_resume_requested(resume(ResumeMode.SKIP_FAILED, customer="globex"))
    assert h.meta().state == OperationState.PAUSED


def test_given_a_control_before_its_operation_then_retried_later():
    h = Harness()
    with pytest.raises(PredecessorMissing):
        h.coordinator.on_cancel_requested(cancel())


# --- abort -------------------------------------------------------------------------------------


def test_given_a_wave_in_flight_when_aborted_then_nothing_new_starts_and_in_flight_is_recorded():
    h = Harness()
    h.start(the_plan=three())
    first = h.publisher.of(WaveStarted)
    h.coordinator.on_resource_recovered(recovered(OP, "i-1", 1))

    # When the operator aborts while i-2 and i-3 are still launching
    h.coordinator.on_cancel_requested(cancel())

    # Then the operation is CANCELLED at once but keeps its lock while work is in flight
    meta = h.meta()
    assert (meta.state, meta.cancelled_by) == (OperationState.CANCELLED, "sre@example.com")
    assert meta.reason == "aborted by sre@example.com: primary is back"
    assert h.repo.locks[(CUSTOMER, ENVIRONMENT)].operation_id == OP
    assert h.publisher.of(OperationCancelled) == []

    # When the in-flight results arrive, they are recorded; nothing else starts
    h.coordinator.on_resource_recovery_failed(failed(OP, "i-2", 1))
    h.coordinator.on_resource_recovered(recovered(OP, "i-3", 1))
    assert [e.wave for e in h.publisher.of(WaveStarted)] == [e.wave for e in first]
    wave = h.wave(1)
    assert (wave.state, wave.recovered, wave.failed) == (WavePhase.FAILED, 2, 1)
    assert {h.wave(2).state, h.wave(3).state} == {WavePhase.CANCELLED}
    # and then the operation ends: lock released, OperationCancelled once
    [cancelled] = h.publisher.of(OperationCancelled)
    assert cancelled.requested_by == "sre@example.com"
    assert h.repo.locks == {} and h.meta().announced == OperationState.CANCELLED
    h.coordinator.on_cancel_requested(cancel())
    assert len(h.publisher.of(OperationCancelled)) == 1


def test_given_a_paused_operation_when_aborted_then_it_ends_at_once():
    h = Harness()
    paused_on_wave_1(h)
    h.coordinator.on_cancel_requested(cancel())
    assert h.meta().announced == OperationState.CANCELLED
    assert h.repo.locks == {}


def test_given_an_operation_still_discovering_when_aborted_then_the_plan_is_ignored():
    h = Harness()
    h.repo.plans[OP] = three()
    h.coordinator.on_operation_requested(request())
    h.coordinator.on_cancel_requested(cancel())
    from tests.unit.test_coordinator_domain import plan_ready

    h.coordinator.on_plan_ready(plan_ready())
    assert OP not in h.repo.waves and h.publisher.of(WaveStarted) == []
    assert len(h.publisher.of(OperationCancelled)) == 1


# --- the reconciler ----------------------------------------------------------------------------


def test_given_a_lost_result_when_past_the_rto_target_then_the_owner_is_asked_to_check_again():
    h = Harness(part_size=1)
    h.start(the_plan=three())
    h.coordinator.on_resource_recovered(recovered(OP, "i-1", 1))
    h.publisher.take()

    # Before the RTO target (15 min for i-2, 60 for i-3), nothing is asked
    h.clock.tick(10 * 60)
    h.coordinator.reconcile()
    assert h.publisher.of(ResourceCheckRequested) == []

    # Past i-2's target, only i-2 is asked about (one part per resource here)
    h.clock.tick(6 * 60)
    h.coordinator.reconcile()
    [check] = h.publisher.of(ResourceCheckRequested)
    assert (check.wave, check.strategy, check.attempt) == (1, Strategy.DRS, 1)
    assert [r.resource_id for r in check.resources] == ["i-2"]
    assert check.in_flight_since < h.clock.now
    assert h.repo.resources[OP]["i-2"].checks == 1

    # Asked again only after the re-check interval
    h.clock.tick(60)
    h.coordinator.reconcile()
    assert len(h.publisher.of(ResourceCheckRequested)) == 1
    h.clock.tick(5 * 60)
    h.coordinator.reconcile()
    assert len(h.publisher.of(ResourceCheckRequested)) == 2

    # When the owner publishes the result again, the wave goes on
    h.coordinator.on_resource_recovered(recovered(OP, "i-2", 1))
    h.coordinator.on_resource_recovered(recovered(OP, "i-3", 1))
    assert h.wave(1).state == WavePhase.COMPLETED


def test_given_force_then_every_resource_in_flight_is_rechecked_now():
    h = Harness()
    h.start(the_plan=three())
    h.coordinator.reconcile(OP, force=True)
    [check] = h.publisher.of(ResourceCheckRequested)
    assert sorted(r.resource_id for r in check.resources) == ["i-1", "i-2", "i-3"]


def test_given_an_unannounced_transition_when_reconciled_then_it_is_taken_over():
    h = Harness()
    h.start(the_plan=plan({1: [resource("i-1", 1)], 2: [resource("i-2", 2)]}))
    h.publisher.fail_next = 1  # WaveCompleted cannot be published: the worker dies
    with pytest.raises(RuntimeError):
        h.coordinator.on_resource_recovered(recovered(OP, "i-1", 1))

    h.clock.tick(10)
    h.coordinator.reconcile()  # too young: left to its own worker
    assert h.publisher.of(WaveCompleted) == []
    h.clock.tick(60)
    h.coordinator.reconcile()
    assert [e.wave for e in h.publisher.of(WaveCompleted)] == [1]
    assert [e.wave for e in h.publisher.of(WaveStarted)] == [1, 2]


def test_given_no_plan_after_a_while_then_discovery_is_asked_again():
    h = Harness()
    h.coordinator.on_operation_requested(request())
    h.clock.tick(6 * 60)
    h.coordinator.reconcile()
    [(source, again)] = h.publisher.published
    assert source == Source.CLI and isinstance(again, OperationRequested)
    assert again.operation_id == OP and again.approval_mode == request().approval_mode


def test_given_finished_operations_then_they_leave_the_active_list():
    h = Harness()
    h.start(the_plan=plan({1: [resource("i-1", 1)]}))
    assert OP in h.repo.active
    h.answer(h.publisher.of(WaveStarted))
    assert h.repo.active == {}
    h.repo.active["op-ghost1"] = h.clock.now
    h.clock.tick(60)
    assert h.coordinator.reconcile() == 1
    assert h.repo.active == {}
