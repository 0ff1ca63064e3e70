"""The quota scheduler: launches within the DRS quotas of an account + region, shared by every
operation, waiting batches resumed as jobs finish (in-memory budget with DynamoDB semantics)."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from drcore import tags as T
from events.schemas import ResourceRecovered, ResourceRecoveryStarted
from services.drs.ports import AwsError
from services.drs.records import DrsLimits, Hold, QuotaWake

from .test_drs_fakes import ACCOUNT, DR, T0, World, part, ref

LOW = DrsLimits(servers_per_job=3, concurrent_jobs=2, servers_in_active_jobs=4)


def servers(world: World, count: int, prefix: str = "i-") -> list:
    refs = []
    for n in range(count):
        iid = f"{prefix}{n:03d}"
        world.drs.add_server(iid, ip=f"10.1.0.{10 + n}")
        world.drs.add_instance(f"srv-{iid}", f"10.2.0.{10 + n}")
        refs.append(ref(iid, f"srv-{iid}"))
    return refs


def finish_all(world: World) -> list[str]:
    """Every running job's servers launch; returns the jobs reconciled."""
    done = []
    for job_id, job in list(world.drs.jobs_by_id.items()):
        if job.completed:
            continue
        world.drs.finish(job_id, {s.source_server_id: ("LAUNCHED", None) for s in job.servers})
        world.service.begin_batch()
        world.service.reconcile_job(job_id, ACCOUNT, DR)
        done.append(job_id)
    return done


def test_given_low_quotas_when_a_part_is_larger_then_jobs_stay_within_them_and_the_rest_waits() -> (
    None
):
    world = World(limits=LOW)
    refs = servers(world, 10)

    summary = world.service.recover_part(part(*refs))

    # Jobs of at most 3 servers, at most 2 at once, at most 4 servers in them
    assert [len(s) for s in world.drs.started] == [3]  # the second (3) would exceed 4 servers
    assert summary["launched"] == 3 and summary["waiting"] == 7
    assert world.budget.usage() == (1, 3)
    wakes = world.checks.of(QuotaWake)
    assert len(wakes) == 1 and wakes[0][1] == 5  # a wake-up as a safety net


def test_given_waiting_batches_when_jobs_finish_then_they_launch_until_all_are_recovered() -> None:
    world = World(limits=LOW)
    refs = servers(world, 10)
    world.service.recover_part(part(*refs))

    for _ in range(10):
        if not finish_all(world):
            break

    assert sorted(r.resource_id for r in world.results.of(ResourceRecovered)) == sorted(
        r.resource_id for r in refs
    )
    assert world.budget.peaks["jobs"] <= 2 and world.budget.peaks["servers"] <= 4
    assert all(len(s) <= 3 for s in world.drs.started)
    assert sum(len(s) for s in world.drs.started) == 10  # every server launched once
    assert world.budget.usage() == (0, 0)  # every hold given back
    assert world.budget.waiting(ACCOUNT, DR) == []


def test_given_two_operations_then_the_budget_is_shared_and_the_oldest_batch_goes_first() -> None:
    world = World(limits=DrsLimits(servers_per_job=4, concurrent_jobs=1, servers_in_active_jobs=4))
    first = servers(world, 4, "i-a")
    second = servers(world, 4, "i-b")
    world.service.recover_part(part(*first, operation_id="op-first1"))
    world.clock.advance(1)
    world.service.recover_part(part(*second, operation_id="op-second"))
    assert len(world.drs.started) == 1  # one job at a time in this account + region

    finish_all(world)  # the first operation's job ends: the waiting one starts

    assert len(world.drs.started) == 2
    second_job = world.drs.jobs_by_id[list(world.drs.jobs_by_id)[-1]]
    assert second_job.tags[T.JOB_OPERATION_ID] == "op-second"


def test_given_the_queue_when_a_wake_comes_and_the_budget_has_room_then_batches_launch() -> None:
    world = World(limits=LOW)
    refs = servers(world, 5)
    world.service.recover_part(part(*refs))
    # another process frees the budget (its job completed) without draining
    for hold in world.budget.holds(ACCOUNT, DR):
        world.budget.release(ACCOUNT, DR, hold.hold_id)

    world.service.begin_batch()
    world.service.on_wake(QuotaWake(account=ACCOUNT, region=DR))

    assert [len(s) for s in world.drs.started] == [3, 2]


def test_given_drs_says_quota_exceeded_then_the_batch_keeps_waiting_and_nothing_fails() -> None:
    world = World()
    refs = servers(world, 2)
    world.drs.start_errors = [AwsError("ServiceQuotaExceededException", "20 jobs are active")]

    summary = world.service.recover_part(part(*refs))

    assert summary["waiting"] == 2 and world.failed_codes() == {}
    assert world.budget.usage() == (0, 0)  # the hold was given back
    world.service.begin_batch()
    world.service.on_wake(QuotaWake(account=ACCOUNT, region=DR))
    assert world.drs.started == [["s-i-000", "s-i-001"]]


def test_given_a_hold_left_by_a_dead_worker_then_it_is_reclaimed_when_the_budget_is_full() -> None:
    world = World(limits=DrsLimits(servers_per_job=2, concurrent_jobs=1, servers_in_active_jobs=2))
    refs = servers(world, 2)
    world.budget.reserve(
        ACCOUNT,
        DR,
        Hold(hold_id="dead", servers=2, created_at=T0 - timedelta(hours=1)),
        world.quotas.value,
    )

    world.service.recover_part(part(*refs))

    assert len(world.drs.started) == 1  # the dead worker's hold (no job, past its lease) freed
    assert "dead" not in {h.hold_id for h in world.budget.holds(ACCOUNT, DR)}


def test_given_a_queued_batch_launched_before_a_crash_then_the_queue_adopts_its_job() -> None:
    world = World(limits=LOW)
    refs = servers(world, 5)
    world.service.recover_part(part(*refs))  # 3 launch, 2 wait
    (waiting,) = world.budget.waiting(ACCOUNT, DR)
    finish_all(world)  # room again: the waiting batch launches...
    assert len(world.drs.started) == 2
    # ...but say its worker died right after StartRecovery: the batch is still queued, claimed
    world.budget.enqueue(waiting)
    world.clock.advance(300)

    world.service.begin_batch()
    world.service.on_wake(QuotaWake(account=ACCOUNT, region=DR))

    assert len(world.drs.started) == 2  # adopted by its job's batch tag: never launched twice
    assert world.budget.waiting(ACCOUNT, DR) == []
    started = world.results.of(ResourceRecoveryStarted)
    assert {s.resource_id for s in started} == {r.resource_id for r in refs}


def test_given_an_operation_that_ended_then_its_waiting_batches_never_launch() -> None:
    world = World(limits=DrsLimits(servers_per_job=2, concurrent_jobs=1, servers_in_active_jobs=2))
    refs = servers(world, 4)
    world.service.recover_part(part(*refs))
    world.operations.mark_ended("op-000001", "CANCELLED", T0)

    finish_all(world)

    assert len(world.drs.started) == 1
    assert world.budget.waiting(ACCOUNT, DR) == []


@hypothesis_settings(max_examples=30, deadline=None)
@given(
    per_job=st.integers(1, 5),
    concurrent=st.integers(1, 3),
    in_jobs=st.integers(1, 8),
    sizes=st.lists(st.integers(1, 6), min_size=1, max_size=4),
)
def test_given_any_quotas_and_operations_then_no_job_ever_exceeds_them_and_all_finish(
    per_job: int, concurrent: int, in_jobs: int, sizes: list[int]
) -> None:
    limits = DrsLimits(
        servers_per_job=per_job, concurrent_jobs=concurrent, servers_in_active_jobs=in_jobs
    )
    world = World(limits=limits)
    total = 0
    for index, size in enumerate(sizes):
        refs = servers(world, size, f"i-{index}x")
        world.service.recover_part(part(*refs, operation_id=f"op-prop{index:03d}"))
        total += size
    for _ in range(total + 2):
        if not finish_all(world):
            break

    assert len(world.results.of(ResourceRecovered)) == total
    assert all(len(s) <= min(per_job, in_jobs) for s in world.drs.started)
    assert world.budget.peaks["jobs"] <= concurrent
    assert world.budget.peaks["servers"] <= in_jobs
    assert world.budget.usage() == (0, 0)
