"""How drs reports a job's results: grouped, yet the last server of a job at once.

Native launch-result events arrive one per server. Launched servers wait for the rest of their
group (the job's last event, a full group of 10, or the next job check); a failed launch never
waits; job checks report everything final.
"""

from __future__ import annotations

from events.schemas import ResourceRecovered, ResourceRecoveryFailed
from services.drs.domain import REPORT_GROUP

from .test_drs_fakes import ACCOUNT, DR, World, part, ref


def launched(world: World, count: int) -> str:
    for n in range(1, count + 1):
        world.drs.add_server(f"i-{n}", ip=f"10.1.0.{n}")
        world.drs.add_instance(f"srv-i-{n}", f"10.2.0.{n}")
    world.service.recover_part(part(*(ref(f"i-{n}") for n in range(1, count + 1))))
    world.results.published.clear()
    return next(iter(world.drs.jobs_by_id))


def event(world: World, job_id: str) -> None:
    """One native event: a batch of its own."""
    world.service.begin_batch()
    world.service.reconcile_job(job_id, ACCOUNT, DR)


def test_given_launches_ending_one_by_one_then_the_last_event_reports_the_whole_job() -> None:
    world = World()
    job_id = launched(world, 3)
    describes = world.drs.calls["DescribeJobs"]

    world.drs.finish(job_id, {"s-i-1": ("LAUNCHED", None)}, done=False)
    event(world, job_id)
    world.drs.finish(job_id, {"s-i-2": ("LAUNCHED", None)}, done=False)
    event(world, job_id)
    assert world.results.published == []  # two of three launched: they wait

    world.drs.finish(job_id, {"s-i-3": ("LAUNCHED", None)})
    event(world, job_id)

    recovered = world.results.of(ResourceRecovered)
    assert sorted(r.resource_id for r in recovered) == ["i-1", "i-2", "i-3"]
    assert world.drs.calls["DescribeJobs"] - describes == 3  # one look per event
    assert world.drs.calls["DescribeInstances"] >= 1
    assert world.ledger.reported[job_id] == {"s-i-1", "s-i-2", "s-i-3"}


def test_given_a_full_group_launched_then_it_is_reported_without_waiting_for_the_rest() -> None:
    world = World()
    job_id = launched(world, REPORT_GROUP + 2)
    world.drs.finish(
        job_id, {f"s-i-{n}": ("LAUNCHED", None) for n in range(1, REPORT_GROUP + 1)}, done=False
    )

    event(world, job_id)

    assert len(world.results.of(ResourceRecovered)) == REPORT_GROUP


def test_given_a_failed_launch_then_it_is_relaunched_without_waiting_for_the_job() -> None:
    world = World()
    job_id = launched(world, 3)
    world.drs.finish(job_id, {"s-i-1": ("FAILED", "capacity")}, done=False)

    event(world, job_id)

    assert world.ledger.relaunched == {(job_id, "s-i-1")}
    assert world.budget.waiting(ACCOUNT, DR)  # queued again, after its backoff
    assert world.results.of(ResourceRecoveryFailed) == []


def test_given_launched_servers_waiting_then_the_job_check_reports_them() -> None:
    world = World()
    job_id = launched(world, 3)
    world.drs.finish(job_id, {"s-i-1": ("LAUNCHED", None)}, done=False)
    world.service.begin_batch()
    world.service.reconcile_job(job_id, ACCOUNT, DR)  # the native event: held
    world.service.reconcile_job(job_id, ACCOUNT, DR, attempt=2)  # a check in the same batch

    assert [r.resource_id for r in world.results.of(ResourceRecovered)] == ["i-1"]
    assert [c.attempt for c, _ in world.checks.sent if getattr(c, "job_id", "") == job_id][-1] == 3


def test_given_a_job_over_and_reported_then_a_later_check_asks_drs_nothing() -> None:
    world = World()
    job_id = launched(world, 2)
    world.drs.finish(job_id, {"s-i-1": ("LAUNCHED", None), "s-i-2": ("LAUNCHED", None)})
    event(world, job_id)
    assert len(world.results.of(ResourceRecovered)) == 2
    describes = world.drs.calls["DescribeJobs"]
    world.checks.sent.clear()

    world.service.begin_batch()
    outcome = world.service.reconcile_job(job_id, ACCOUNT, DR, attempt=3)  # the pending check

    assert outcome.done and world.drs.calls["DescribeJobs"] == describes
    assert world.checks.sent == []  # the checks end there
    # another process, which does not know, looks and finds nothing new to report
    world.recovery().reconcile_job(job_id, ACCOUNT, DR, attempt=3)
    assert world.drs.calls["DescribeJobs"] == describes + 1
    assert len(world.results.of(ResourceRecovered)) == 2
