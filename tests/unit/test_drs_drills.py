"""Bubble-test drills: launch into the bubble (never a production twin), restoration of the
launch settings, guaranteed teardown, --keep and cleanup, and the janitor."""

from __future__ import annotations

from datetime import timedelta

from drcore import tags as T
from events.schemas import (
    OperationCompleted,
    OperationType,
    ResourceRecovered,
    ResourceRecoveryStarted,
)
from events.schemas.models import DrillCleanupRequested, DrillResourcesKept, DrillTeardownCompleted
from events.schemas.names import TeardownTrigger
from services.drs.lifecycle import Lifecycle
from services.drs.readiness import Bubble
from services.drs.records import TeardownCheck, TeardownState

from .test_drs_fakes import ACCOUNT, DR, GLOBEX, T0, World, part, ref

OP = "op-drill-0001"
BUBBLE = OperationType.BUBBLE_TEST


def drilled(world: World, count: int = 2, twin: bool = True) -> list[str]:
    """A drill of `count` servers whose job launched; returns the job ids."""
    refs = []
    for n in range(count):
        iid = f"i-{n}"
        world.drs.add_server(iid, ip=f"10.1.0.{10 + n}")
        if twin:
            world.drs.add_instance(f"srv-{iid}", f"10.101.0.{10 + n}")
            world.drs.launch_config[f"s-{iid}"] = world.drs.add_instance(
                f"old-{iid}", "10.101.9.9"
            ).instance_id  # a launch-into target left by an earlier failover
        refs.append(ref(iid))
    world.service.recover_part(part(*refs, operation=BUBBLE, operation_id=OP))
    return sorted({s.job_id or "" for s in world.results.of(ResourceRecoveryStarted)})


def finish(world: World, job_id: str) -> None:
    job = world.drs.jobs_by_id[job_id]
    world.drs.finish(job_id, {s.source_server_id: ("LAUNCHED", None) for s in job.servers})
    world.service.begin_batch()
    world.service.reconcile_job(job_id, ACCOUNT, DR)


def lifecycle(world: World) -> Lifecycle:
    return Lifecycle(
        recovery=world.service,
        drills=world.drills,
        protection=world.protection,
        operations=world.operations,
        log=world.log,
        now=world.clock,
    )


def ended(operation_id: str = OP) -> OperationCompleted:
    return OperationCompleted(
        operation_id=operation_id,
        customer="acme",
        environment="production",
        operation=BUBBLE,
        waves=1,
        recovered=2,
        failed=0,
        started_at=T0,
        completed_at=T0,
        duration_seconds=1,
    )


# --- launching into the bubble --------------------------------------------------------------------


def test_given_a_drill_then_servers_launch_in_the_bubble_never_into_a_production_twin() -> None:
    world = World()

    (job_id,) = drilled(world)

    job = world.drs.jobs_by_id[job_id]
    assert world.drs.drills == [True]  # StartRecovery(isDrill=True)
    assert job.tags[T.JOB_OPERATION] == "bubble-test"
    assert world.drs.launch_config == {}  # the twins are no launch target during the drill
    assert world.drs.copy_ip == {"s-i-0": True, "s-i-1": True}  # the bubble mirrors the CIDR
    template = world.drs.templates_by_id["lt-s-i-0"]
    assert template.default_version == 2
    assert template.tags[T.BUBBLE_ID] == OP and template.tags[T.BUBBLE_RESTORE_VERSION] == "1"
    data = world.drs.template_versions["lt-s-i-0"][-1]
    nic = data["NetworkInterfaces"][0]
    assert (nic["SubnetId"], nic["Groups"]) == ("subnet-bubble", ["sg-drill"])
    tags = {t["Key"]: t["Value"] for t in data["TagSpecifications"][0]["Tags"]}
    assert tags[T.BUBBLE_ENABLED] == "true" and tags[T.BUBBLE_ID] == OP
    assert tags[T.BUBBLE_TIMESTAMP].startswith("2026-11-01T12:05")
    assert tags[T.CUSTOMER] == "acme" and tags[T.ENVIRONMENT] == "production"


def test_given_a_drill_job_over_then_launch_settings_come_back_and_results_say_drill() -> None:
    world = World()
    old_targets = dict(world.drs.launch_config)
    (job_id,) = drilled(world)
    old_targets = dict(world.drs.launch_config) or old_targets

    finish(world, job_id)

    recovered = world.results.of(ResourceRecovered)
    assert {r.details["drill"] for r in recovered} == {"true"}
    assert {r.details["bubble_vpc"] for r in recovered} == {"vpc-bubble"}
    assert world.drs.templates_by_id["lt-s-i-0"].default_version == 1
    assert T.BUBBLE_ID not in world.drs.templates_by_id["lt-s-i-0"].tags
    assert set(world.drs.launch_config) == {"s-i-0", "s-i-1"}  # launch-into targets restored
    assert world.drs.copy_ip == {"s-i-0": False, "s-i-1": False}
    assert world.ledger.restored == {job_id}


def test_given_no_bubble_network_then_the_drill_fails_and_nothing_launches() -> None:
    world = World()
    world.drs.bubble = Bubble(None, problem="NO_BUBBLE_NETWORK", reason="no VPC named x")
    world.drs.add_server("i-0")

    world.service.recover_part(part(ref("i-0"), operation=BUBBLE, operation_id=OP))

    assert world.failed_codes() == {"i-0": "NO_BUBBLE_NETWORK"}
    assert world.drs.calls["StartRecovery"] == 0
    assert world.drs.calls["CreateLaunchTemplateVersion"] == 0


def test_given_a_drill_instance_outside_the_bubble_then_isolation_breach() -> None:
    world = World()
    (job_id,) = drilled(world, count=1, twin=False)
    job = world.drs.jobs_by_id[job_id]

    world.drs.finish(
        job_id, {s.source_server_id: ("LAUNCHED", None) for s in job.servers}, vpc="vpc-prod"
    )
    world.service.reconcile_job(job_id, ACCOUNT, DR)

    assert world.failed_codes() == {"i-0": "BUBBLE_ISOLATION_BREACH"}


def test_given_a_template_left_switched_by_a_crashed_drill_then_the_next_restores_it() -> None:
    world = World()
    world.drs.add_server("i-0")
    template = world.drs.templates_by_id["lt-s-i-0"]
    world.drs.templates_by_id["lt-s-i-0"] = template.__class__(
        "lt-s-i-0", 7, {T.BUBBLE_ID: "op-old", T.BUBBLE_RESTORE_VERSION: "3"}
    )

    world.service.recover_part(part(ref("i-0"), operation=BUBBLE, operation_id=OP))
    finish(world, list(world.drs.jobs_by_id)[-1])

    assert world.drs.templates_by_id["lt-s-i-0"].default_version == 3


# --- teardown -------------------------------------------------------------------------------------


def test_given_a_drill_that_ended_then_its_instances_are_terminated_and_the_teardown_recorded() -> (
    None
):
    world = World()
    (job_id,) = drilled(world)
    finish(world, job_id)
    instances = sorted(world.drs.recovery)

    lifecycle(world).ended(ended())

    record = world.operations.load(OP).teardown
    assert record is not None and record.state == TeardownState.IN_PROGRESS
    terminate = [j for j in world.drs.jobs_by_id.values() if j.type == "TERMINATE"]
    assert len(terminate) == 1
    assert sorted(s.recovery_instance_id or "" for s in terminate[0].servers) == instances
    assert world.budget.usage()[0] == 1  # the terminate job holds budget too
    check, delay = world.checks.of(TeardownCheck)[-1]
    assert delay == 5

    world.drs.complete_termination(terminate[0].job_id)
    world.drills.on_check(check)

    record = world.operations.load(OP).teardown
    assert record is not None and record.state == TeardownState.COMPLETED
    assert sorted(record.terminated) == instances
    (event,) = world.results.of(DrillTeardownCompleted)
    assert event.terminated == 2 and event.trigger.value == "operation-end"
    assert world.budget.usage() == (0, 0)
    assert not [r for r in world.drs.recovery.values() if r.is_drill]


def test_given_a_duplicate_end_event_then_no_second_termination() -> None:
    world = World()
    (job_id,) = drilled(world)
    finish(world, job_id)
    life = lifecycle(world)

    life.ended(ended())
    life.ended(ended())

    assert world.drs.calls["TerminateRecoveryInstances"] == 1


def test_given_a_drill_cancelled_mid_launch_then_the_teardown_waits_for_the_job() -> None:
    world = World()
    (job_id,) = drilled(world)

    lifecycle(world).ended(ended())  # the launch job still runs

    assert world.drs.calls["TerminateRecoveryInstances"] == 0
    finish(world, job_id)
    world.drills.on_check(TeardownCheck(operation_id=OP, attempt=1))
    assert world.drs.calls["TerminateRecoveryInstances"] == 1


def test_given_keep_then_the_instances_stay_until_a_cleanup_request() -> None:
    world = World()
    world.options(OP, operation=BUBBLE, keep_drill_resources=True)
    (job_id,) = drilled(world)
    finish(world, job_id)
    life = lifecycle(world)

    life.ended(ended())

    record = world.operations.load(OP).teardown
    assert record is not None and record.state == TeardownState.KEPT and len(record.kept) == 2
    assert record.expires_at == world.clock.now + timedelta(hours=8)
    assert world.results.of(DrillResourcesKept)
    assert world.drs.calls["TerminateRecoveryInstances"] == 0

    life.cleanup(
        DrillCleanupRequested(
            operation_id=OP,
            customer="acme",
            environment="production",
            operation=BUBBLE,
            requested_by="sre",
        )
    )

    assert world.drs.calls["TerminateRecoveryInstances"] == 1
    record = world.operations.load(OP).teardown
    assert record is not None and record.trigger.value == "cleanup-request"


def test_given_a_drill_whose_records_were_lost_then_the_sweep_finds_it_by_its_tags() -> None:
    world = World()
    (job_id,) = drilled(world)
    finish(world, job_id)
    world.operations.records.clear()  # a crash before anything was recorded
    orphan = world.drs.add_instance(
        "orphan", "10.1.0.99", allow=False, tags={T.BUBBLE_ID: OP, T.BUBBLE_ENABLED: "true"}
    )

    world.drills.teardown(OP, "acme", "production", _trigger("janitor"))

    assert world.drs.calls["TerminateRecoveryInstances"] == 1  # the two DRS knows
    assert world.drs.terminated_ec2 == [orphan.instance_id]  # the one it does not: EC2


# --- the janitor ----------------------------------------------------------------------------------


def _trigger(value: str) -> TeardownTrigger:
    return TeardownTrigger(value)


def test_given_drill_resources_older_than_8_hours_then_the_janitor_removes_them() -> None:
    world = World()
    (job_id,) = drilled(world)
    finish(world, job_id)
    world.operations.records.clear()  # the drill's service crashed: no teardown will come

    world.clock.advance(3600)
    assert world.drills.janitor() == {"drills": 0, "templates_restored": 0}  # too young
    assert world.drs.calls["TerminateRecoveryInstances"] == 0

    world.clock.advance(8 * 3600)
    summary = world.drills.janitor()

    assert summary["drills"] == 1
    assert world.drs.calls["TerminateRecoveryInstances"] == 1
    record = world.operations.load(OP).teardown
    assert record is not None and record.trigger.value == "janitor"


def test_given_a_template_left_switched_for_8_hours_then_the_janitor_restores_it() -> None:
    world = World()
    world.drs.add_server("i-0")
    template = world.drs.templates_by_id["lt-s-i-0"]
    stamp = (T0 - timedelta(hours=9)).strftime("%Y-%m-%dT%H:%M:%SZ")
    world.drs.templates_by_id["lt-s-i-0"] = template.__class__(
        "lt-s-i-0",
        2,
        {T.BUBBLE_ID: "op-old", T.BUBBLE_RESTORE_VERSION: "1", T.BUBBLE_TIMESTAMP: stamp},
    )

    assert world.drills.janitor()["templates_restored"] == 1
    assert world.drs.templates_by_id["lt-s-i-0"].default_version == 1


def test_given_another_tenants_drill_instance_in_the_account_then_the_janitor_leaves_it() -> None:
    world = World()  # only acme is registered for this account
    world.drs.add_instance(
        "foreign",
        "10.5.0.5",
        customer="globex",
        allow=False,
        tags={
            T.BUBBLE_ID: "op-foreign",
            T.BUBBLE_ENABLED: "true",
            T.BUBBLE_TIMESTAMP: "2026-10-01T00:00:00Z",
        },
    )

    assert world.drills.janitor()["drills"] == 0
    assert world.drs.terminated_ec2 == []
    assert GLOBEX.account != ACCOUNT
