"""The coordinator's reconciler asks drs to re-check resources in flight (ResourceCheckRequested):
a kept result is published again as it was, a job in flight is checked, nothing launches again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from events.schemas import (
    OperationType,
    ResourceRecovered,
    ResourceRecoveryFailed,
    ResourceRef,
    Strategy,
)
from events.schemas.models import ResourceCheckRequested
from services.drs.records import RecordedResult

from .test_drs_fakes import ACCOUNT, DR, OTHER_ACCOUNT, T0, World, part, ref


def check(*refs: ResourceRef, **kw: Any) -> ResourceCheckRequested:
    return ResourceCheckRequested(
        operation_id=kw.get("operation_id", "op-000001"),
        customer=kw.get("customer", "acme"),
        environment="production",
        operation=OperationType.FAILOVER,
        occurred_at=T0 + timedelta(minutes=30),
        wave=kw.get("wave", 1),
        strategy=kw.get("strategy", Strategy.DRS),
        attempt=kw.get("attempt", 1),
        part=1,
        part_count=1,
        resources=list(refs),
        in_flight_since=T0,
        reason="in flight longer than the resource's RTO target",
    )


def launched(world: World, *instance_ids: str) -> str:
    for n, instance_id in enumerate(instance_ids, start=1):
        world.drs.add_server(instance_id, ip=f"10.1.0.{n}")
        world.drs.add_instance(f"srv-{instance_id}", f"10.2.0.{n}")
    world.service.recover_part(part(*(ref(i) for i in instance_ids)))
    return next(iter(world.drs.jobs_by_id))


def test_given_a_published_result_when_rechecked_then_the_same_result_is_published_again() -> None:
    world = World()
    job_id = launched(world, "i-1", "i-2")
    world.drs.finish(job_id, {"s-i-1": ("LAUNCHED", None), "s-i-2": ("LAUNCHED", None)})
    world.service.reconcile_job(job_id, ACCOUNT, DR)
    [first, _] = world.results.of(ResourceRecovered)
    world.results.published.clear()
    starts, describes = world.drs.calls["StartRecovery"], world.drs.calls["DescribeJobs"]

    # When the reconciler asks about i-1 (its result was lost on the way to the coordinator)
    world.clock.advance(600)
    summary = world.recovery().recheck(check(ref("i-1")))

    # Then exactly that result is published again, unchanged, and DRS is neither asked nor used
    assert world.results.published == [first]
    assert summary == {"again": 1, "checked_jobs": 0, "waiting": 0, "unknown": 0}
    assert world.drs.calls["StartRecovery"] == starts
    assert world.drs.calls["DescribeJobs"] == describes


def test_given_a_job_in_flight_when_rechecked_then_the_job_is_checked_and_reported_when_final() -> (
    None
):
    world = World()
    job_id = launched(world, "i-1")
    world.results.published.clear()
    describes = world.drs.calls["DescribeJobs"]

    # While the launch is running, a re-check asks DRS and publishes nothing
    world.service.begin_batch()
    assert world.service.recheck(check(ref("i-1")))["checked_jobs"] == 1
    assert world.drs.calls["DescribeJobs"] == describes + 1
    assert world.results.published == []

    # Once the server is launched (its native event lost), the next re-check reports it
    world.drs.finish(job_id, {"s-i-1": ("LAUNCHED", None)})
    world.service.begin_batch()
    world.service.recheck(check(ref("i-1")))

    assert [r.resource_id for r in world.results.of(ResourceRecovered)] == ["i-1"]
    assert world.drs.started == [["s-i-1"]]  # never launched again


def test_given_a_failure_before_any_job_when_rechecked_then_the_same_failure_again() -> None:
    world = World()
    world.service.recover_part(part(ref("i-missing")))
    [failure] = world.results.of(ResourceRecoveryFailed)
    world.results.published.clear()

    world.recovery().recheck(check(ref("i-missing")))

    assert world.results.published == [failure]
    assert failure.error_code == "NO_SOURCE_SERVER"


def test_given_a_failure_of_another_attempt_when_rechecked_then_it_is_not_republished() -> None:
    world = World()
    world.service.recover_part(part(ref("i-missing")))
    world.results.published.clear()

    summary = world.recovery().recheck(check(ref("i-missing"), attempt=2))

    assert world.results.published == []
    assert summary["unknown"] == 1
    assert any("no launch or result recorded" in line for _, line in world.log.lines)


def test_given_a_relaunched_server_when_rechecked_then_the_newer_job_answers() -> None:
    world = World()
    job_id = launched(world, "i-1")
    world.drs.finish(job_id, {"s-i-1": ("FAILED", "capacity")})
    world.service.reconcile_job(job_id, ACCOUNT, DR)
    world.clock.advance(15)
    world.service.begin_batch()
    world.service.drain(ACCOUNT, DR)
    second = list(world.drs.jobs_by_id)[-1]
    world.drs.finish(second, {"s-i-1": ("LAUNCHED", None)})
    world.service.reconcile_job(second, ACCOUNT, DR)
    [recovered] = world.results.of(ResourceRecovered)
    world.results.published.clear()

    world.recovery().recheck(check(ref("i-1")))

    assert world.results.published == [recovered]
    assert len(world.drs.started) == 2


def test_given_a_batch_waiting_for_quota_when_rechecked_then_nothing_launches() -> None:
    world = World()
    world.drs.add_server("i-1")
    world.drs.add_instance("srv-i-1", "10.2.0.10")
    world.budget.reserve = lambda *args, **kwargs: False  # type: ignore[method-assign]
    world.service.recover_part(part(ref("i-1")))
    assert world.drs.started == [] and world.budget.waiting(ACCOUNT, DR)

    summary = world.recovery().recheck(check(ref("i-1")))

    assert summary == {"again": 0, "checked_jobs": 0, "waiting": 1, "unknown": 0}
    assert world.drs.started == [] and world.results.published == []


def test_given_a_launch_never_recorded_when_rechecked_then_its_tagged_job_is_checked() -> None:
    world = World()
    job_id = launched(world, "i-1")
    world.drs.finish(job_id, {"s-i-1": ("LAUNCHED", None)})
    # Given the worker died right after StartRecovery: neither the ledger nor the operation
    # records know the job
    world.ledger.launches.clear()
    world.operations.records.clear()
    world.results.published.clear()

    summary = world.recovery().recheck(check(ref("i-1")))

    assert summary["checked_jobs"] == 1 and summary["unknown"] == 0
    assert [r.resource_id for r in world.results.of(ResourceRecovered)] == ["i-1"]
    assert len(world.drs.started) == 1


def test_given_a_resource_of_another_account_when_rechecked_then_it_is_not_looked_at() -> None:
    world = World()
    job_id = launched(world, "i-1")
    world.drs.finish(job_id, {"s-i-1": ("LAUNCHED", None)})
    world.service.reconcile_job(job_id, ACCOUNT, DR)
    world.results.published.clear()
    loads = world.ledger.loads

    summary = world.recovery().recheck(check(ref("i-1", account=OTHER_ACCOUNT)))

    assert world.results.published == [] and summary["unknown"] == 0
    assert world.ledger.loads == loads


def test_given_a_result_kept_for_another_customer_when_rechecked_then_not_republished() -> None:
    world = World()
    job_id = launched(world, "i-1")
    world.drs.finish(job_id, {"s-i-1": ("LAUNCHED", None)})
    world.service.reconcile_job(job_id, ACCOUNT, DR)
    world.results.published.clear()

    # A re-check naming the same ids under another environment's operation id
    world.recovery().recheck(check(ref("i-1"), operation_id="op-000002"))

    assert world.results.published == []


def test_given_a_result_reported_before_results_were_kept_then_it_is_derived_again() -> None:
    world = World()
    job_id = launched(world, "i-1")
    world.drs.finish(job_id, {"s-i-1": ("LAUNCHED", None)})
    world.service.reconcile_job(job_id, ACCOUNT, DR)
    world.ledger.results.clear()  # a ledger written before results were kept
    world.results.published.clear()

    world.recovery().recheck(check(ref("i-1")))

    [again] = world.results.of(ResourceRecovered)
    assert again.resource_id == "i-1" and again.details["ip_last_octet"] == "preserved"
    assert len(world.drs.started) == 1


def test_given_another_strategy_when_rechecked_then_skipped() -> None:
    world = World()
    summary = world.recovery().recheck(check(ref("i-1"), strategy=Strategy.EKS_DNS))
    assert summary == {"skipped": "strategy eks-dns"}
    assert world.results.published == []


def test_given_a_kept_result_then_it_is_the_published_event_again() -> None:
    world = World()
    job_id = launched(world, "i-1")
    world.drs.finish(job_id, {"s-i-1": ("LAUNCHED", None)})
    world.service.reconcile_job(job_id, ACCOUNT, DR)
    [recovered] = world.results.of(ResourceRecovered)

    stored = world.ledger.results[job_id]["s-i-1"].model_dump_json()
    kept = RecordedResult.model_validate_json(stored)

    assert (kept.wave, kept.attempt, kept.resource_id) == (1, 1, "i-1")
    assert kept.event() == recovered
