"""Failback and re-protection: reverse replication after a failover, the failback part (into the
original primary instances, from the reversed source servers), re-protection after it."""

from __future__ import annotations

from dataclasses import replace

from drcore import tags as T
from events.schemas import (
    OperationCompleted,
    OperationFailed,
    OperationRequested,
    OperationType,
    ResourceRecovered,
    ResourceRecoveryStarted,
)
from events.schemas.models import (
    ChildOperation,
    RegionalOperationStarted,
    ReprotectCompleted,
    ReprotectStarted,
)
from services.drs.ports import AwsError
from services.drs.records import ProtectCheck, ProtectState

from .test_drs_drills import lifecycle
from .test_drs_fakes import ACCOUNT, DR, PRIMARY, T0, World, part, ref

FAILOVER_OP = "op-failover-0001"
FAILBACK_OP = "op-failback-0001"


def reversed_arn(sid: str) -> str:
    return f"arn:aws:drs:{PRIMARY}:{ACCOUNT}:source-server/{sid}"


def failed_over(world: World, count: int = 2) -> list[str]:
    """A completed failover of `count` servers into their twins; returns the resource ids."""
    refs = []
    for n in range(count):
        iid = f"i-{n}"
        world.drs.add_server(iid, ip=f"10.1.0.{10 + n}")
        world.drs.add_instance(f"srv-{iid}", f"10.101.0.{10 + n}")
        world.primary.add_instance(f"srv-{iid}", f"10.1.0.{10 + n}", allow=False, instance_id=iid)
        refs.append(ref(iid))
    world.service.recover_part(part(*refs, operation_id=FAILOVER_OP))
    for job_id, job in list(world.drs.jobs_by_id.items()):
        world.drs.finish(job_id, {s.source_server_id: ("LAUNCHED", None) for s in job.servers})
        world.service.reconcile_job(job_id, ACCOUNT, DR)
    for rid, record in world.drs.recovery.items():
        world.drs.reversed_arns[rid] = reversed_arn(f"r-{record.source_server_id}")
    return [r.resource_id for r in refs]


def ended(
    operation_id: str, operation: OperationType, failed: bool = False
) -> OperationCompleted | OperationFailed:
    if failed:
        return OperationFailed(
            operation_id=operation_id,
            customer="acme",
            environment="production",
            operation=operation,
            code="WAVE_FAILED",
            reason="wave 2 failed",
            wave=2,
        )
    return OperationCompleted(
        operation_id=operation_id,
        customer="acme",
        environment="production",
        operation=operation,
        waves=1,
        recovered=2,
        failed=0,
        started_at=T0,
        completed_at=T0,
        duration_seconds=1,
    )


# --- re-protection after a failover ---------------------------------------------------------------


def test_given_a_failover_that_ended_then_each_recovered_server_replicates_back() -> None:
    world = World()
    failed_over(world)

    lifecycle(world).ended(ended(FAILOVER_OP, OperationType.FAILOVER))

    assert world.drs.calls["ReverseReplication"] == 2
    record = world.operations.load(FAILOVER_OP).reprotect
    assert record is not None and record.state == ProtectState.IN_PROGRESS
    assert {s.resource_id for s in record.servers} == {"i-0", "i-1"}
    assert {s.region for s in record.servers} == {PRIMARY}
    (started,) = world.results.of(ReprotectStarted)
    assert started.servers == 2 and started.target_region == PRIMARY
    check, delay = world.checks.of(ProtectCheck)[-1]
    assert delay == 5

    # progress: the reversed servers sync, then are continuous
    world.primary.add_server("x", state="INITIAL_SYNC")
    for n in range(2):
        world.primary.servers[f"r-s-i-{n}"] = replace(
            world.primary.servers["s-x"], source_server_id=f"r-s-i-{n}"
        )
    world.protection.check(check)
    record = world.operations.load(FAILOVER_OP).reprotect
    assert record is not None and {s.state for s in record.servers} == {"INITIAL_SYNC"}
    assert world.results.of(ReprotectCompleted) == []
    for n in range(2):
        world.primary.servers[f"r-s-i-{n}"] = replace(
            world.primary.servers[f"r-s-i-{n}"], replication_state="CONTINUOUS"
        )
    world.protection.check(ProtectCheck(operation_id=FAILOVER_OP, attempt=1))

    record = world.operations.load(FAILOVER_OP).reprotect
    assert record is not None and record.state == ProtectState.COMPLETED
    (done,) = world.results.of(ReprotectCompleted)
    assert done.continuous == 2 and done.not_continuous == []


def test_given_a_failover_that_failed_after_some_waves_then_what_runs_in_dr_is_protected() -> None:
    world = World()
    failed_over(world)

    lifecycle(world).ended(ended(FAILOVER_OP, OperationType.FAILOVER, failed=True))

    assert world.drs.calls["ReverseReplication"] == 2


def test_given_no_reprotect_then_nothing_is_reversed_and_the_record_says_skipped() -> None:
    world = World()
    world.options(FAILOVER_OP, reprotect=False)
    failed_over(world)

    lifecycle(world).ended(ended(FAILOVER_OP, OperationType.FAILOVER))

    assert world.drs.calls["ReverseReplication"] == 0
    record = world.operations.load(FAILOVER_OP).reprotect
    assert record is not None and record.state == ProtectState.SKIPPED


def test_given_reverse_replication_refused_then_the_server_is_named_with_the_aws_code() -> None:
    world = World()
    failed_over(world)
    world.drs.reverse_error = AwsError("ValidationException", "instance not available")

    lifecycle(world).ended(ended(FAILOVER_OP, OperationType.FAILOVER))

    (started,) = world.results.of(ReprotectStarted)
    assert {(f.resource_id, f.code) for f in started.failures} == {
        ("i-0", "ValidationException"),
        ("i-1", "ValidationException"),
    }
    assert world.results.of(ReprotectCompleted)[0].continuous == 0


def test_given_a_duplicate_end_event_then_replication_is_reversed_once() -> None:
    world = World()
    failed_over(world)
    life = lifecycle(world)

    life.ended(ended(FAILOVER_OP, OperationType.FAILOVER))
    life.ended(ended(FAILOVER_OP, OperationType.FAILOVER))

    assert world.drs.calls["ReverseReplication"] == 2


# --- the failback part ----------------------------------------------------------------------------


def ready_for_failback(world: World, state: str = "CONTINUOUS") -> list[str]:
    resources = failed_over(world)
    for sid, server in list(world.drs.servers.items()):
        world.drs.servers[sid] = replace(
            server,
            replication_state="STOPPED",
            recovery_instance_id=world.drs.launch_config[sid],
            reversed_arn=reversed_arn(f"r-{sid}"),
        )
        reversed_server = world.primary.add_server(f"r{sid}", state=state)
        world.primary.servers.pop(reversed_server.source_server_id)
        world.primary.servers[f"r-{sid}"] = replace(
            reversed_server, source_server_id=f"r-{sid}", primary_ip=server.primary_ip
        )
    return resources


def test_given_continuous_reverse_replication_then_failback_launches_into_the_originals() -> None:
    world = World()
    resources = ready_for_failback(world)

    summary = world.service.recover_part(
        part(
            *(ref(r) for r in resources), operation=OperationType.FAILBACK, operation_id=FAILBACK_OP
        )
    )

    assert summary["launched"] == 2
    # in the primary region, from the reversed source servers, into the original instances
    assert world.primary.started == [["r-s-i-0", "r-s-i-1"]]
    assert world.primary.launch_config == {"r-s-i-0": "i-0", "r-s-i-1": "i-1"}
    tagged = world.primary.instances_by_id["i-0"].tags
    assert tagged[T.DRS_LAUNCH_INTO] == T.DRS_LAUNCH_INTO_VALUE
    job_id = world.results.of(ResourceRecoveryStarted)[-1].job_id or ""
    job = world.primary.jobs_by_id[job_id]
    world.primary.finish(job_id, {s.source_server_id: ("LAUNCHED", None) for s in job.servers})

    world.service.reconcile_job(job_id, ACCOUNT, PRIMARY)

    recovered = [r for r in world.results.of(ResourceRecovered) if r.operation_id == FAILBACK_OP]
    assert sorted(r.resource_id for r in recovered) == ["i-0", "i-1"]
    for result in recovered:
        assert result.dr_resource_id == result.resource_id  # back in the original instance
        assert result.dr_region == PRIMARY
        assert result.details["direction"] == "failback"
        assert result.details["ip_last_octet"] == "preserved"


def test_given_reverse_replication_still_syncing_then_failback_waits_with_a_clear_reason() -> None:
    world = World()
    resources = ready_for_failback(world, state="INITIAL_SYNC")

    world.service.recover_part(
        part(
            *(ref(r) for r in resources), operation=OperationType.FAILBACK, operation_id=FAILBACK_OP
        )
    )

    assert world.failed_codes() == {
        "i-0": "REVERSE_REPLICATION_NOT_CONTINUOUS",
        "i-1": "REVERSE_REPLICATION_NOT_CONTINUOUS",
    }
    assert world.primary.calls["StartRecovery"] == 0


def test_given_a_failback_that_ended_then_replication_to_dr_is_restored_and_twins_stop() -> None:
    world = World()
    resources = ready_for_failback(world)
    world.service.recover_part(
        part(
            *(ref(r) for r in resources), operation=OperationType.FAILBACK, operation_id=FAILBACK_OP
        )
    )
    job_id = world.results.of(ResourceRecoveryStarted)[-1].job_id or ""
    job = world.primary.jobs_by_id[job_id]
    world.primary.finish(job_id, {s.source_server_id: ("LAUNCHED", None) for s in job.servers})
    world.service.reconcile_job(job_id, ACCOUNT, PRIMARY)
    for rid in world.primary.recovery:
        world.primary.reversed_arns[rid] = f"arn:aws:drs:{DR}:{ACCOUNT}:source-server/s-{rid}"
    twins = sorted(world.drs.launch_config.values())

    lifecycle(world).ended(ended(FAILBACK_OP, OperationType.FAILBACK))

    assert world.primary.calls["ReverseReplication"] == 2
    record = world.operations.load(FAILBACK_OP).reprotect
    assert record is not None and {s.region for s in record.servers} == {DR}
    assert sorted(world.drs.stopped) == twins  # the DR twins are standby again


# --- options --------------------------------------------------------------------------------------


def test_given_a_regional_request_then_its_children_get_its_options() -> None:
    world = World()
    life = lifecycle(world)
    life.requested(
        OperationRequested(
            operation_id="op-regional-01",
            customer="*",
            environment="production",
            operation=OperationType.FAILOVER,
            requested_by="sre",
            allow_data_loss=True,
        )
    )

    life.regional(
        RegionalOperationStarted(
            operation_id="op-regional-01",
            customer="*",
            environment="production",
            operation=OperationType.FAILOVER,
            region_map={PRIMARY: DR},
            children=[
                ChildOperation(operation_id="op-child-0001", customer="acme", environment="prod")
            ],
        )
    )

    child = world.operations.load("op-child-0001").options
    assert child is not None and child.allow_data_loss and child.customer == "acme"
