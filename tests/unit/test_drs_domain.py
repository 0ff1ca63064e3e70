"""DRS domain with in-memory fakes: scope, twins, IP rule, batching, idempotency, reconciliation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from drcore import tags as T
from drcore.tags import JOB_ATTEMPT
from events.schemas import (
    Detail,
    ResourceRecovered,
    ResourceRecoveryFailed,
    ResourceRecoveryStarted,
    WaveStarted,
)
from services.drs.domain import (
    AwsError,
    Job,
    JobServer,
    parse_duration,
)

from .test_drs_fakes import ACCOUNT, ACME, DR, GLOBEX, OTHER_ACCOUNT, T0, World, part, ref

# --- readiness and scope --------------------------------------------------------------------------


def test_given_a_healthy_server_and_its_twin_when_recovering_then_launched_into_the_twin() -> None:
    world = World()
    world.drs.add_server("i-1", ip="10.1.0.10")
    twin = world.drs.add_instance("web-01", "10.2.0.10")

    summary = world.service.recover_part(part(ref("i-1", "web-01")))

    assert summary["launched"] == 1
    assert world.drs.launch_config == {"s-i-1": twin.instance_id}
    started = world.results.of(ResourceRecoveryStarted)
    assert [(s.resource_id, s.job_id is not None) for s in started] == [("i-1", True)]
    job = world.drs.jobs_by_id[started[0].job_id]
    batch = job.tags[T.JOB_BATCH]
    assert job.tags == {
        T.JOB_OPERATION_ID: "op-000001",
        T.JOB_WAVE: "1",
        T.JOB_CUSTOMER: "acme",
        T.JOB_ENVIRONMENT: "production",
        T.JOB_OPERATION: "failover",
        JOB_ATTEMPT: "1",
        T.JOB_BATCH: batch,
        T.JOB_LAUNCH_TRY: "1",
        T.JOB_HOLD: batch,
        T.JOB_HOLD_SERVERS: "1",
    }
    assert world.drs.drills == [False]
    assert [(c.job_id, c.attempt, delay) for c, delay in world.checks.sent] == [(job.job_id, 0, 5)]


def test_given_no_source_server_when_recovering_then_failed_no_source_server() -> None:
    world = World()

    world.service.recover_part(part(ref("i-missing")))

    assert world.failed_codes() == {"i-missing": "NO_SOURCE_SERVER"}
    assert world.drs.calls["StartRecovery"] == 0


def test_given_source_server_of_another_customer_when_recovering_then_never_acted_on() -> None:
    world = World()
    world.drs.add_server("i-1", customer="globex")
    world.drs.add_instance("web-01", "10.2.0.10")

    world.service.recover_part(part(ref("i-1", "web-01")))

    assert world.failed_codes() == {"i-1": "SCOPE_MISMATCH"}
    assert world.drs.calls["UpdateLaunchConfiguration"] == 0
    assert world.drs.calls["StartRecovery"] == 0


def test_given_a_resource_of_another_account_when_recovering_then_scope_mismatch() -> None:
    world = World(ACME, GLOBEX)

    world.service.recover_part(part(ref("i-9", account=OTHER_ACCOUNT)))

    assert world.failed_codes() == {"i-9": "SCOPE_MISMATCH"}
    assert not world.workloads.by_account


@pytest.mark.parametrize(
    "state", ["STALLED", "DISCONNECTED", "STOPPED", "PAUSED", "INITIAL_SYNC", "INITIATING"]
)
def test_given_unhealthy_replication_when_recovering_then_replication_not_ready(state: str) -> None:
    world = World()
    world.drs.add_server("i-1", state=state)

    world.service.recover_part(part(ref("i-1")))

    assert world.failed_codes() == {"i-1": "REPLICATION_NOT_READY"}
    assert world.drs.calls["StartRecovery"] == 0


def test_given_lag_over_the_rpo_when_recovering_then_refused_with_lag_over_rpo() -> None:
    world = World()
    world.drs.add_server("i-1", lag="PT20M")
    world.drs.add_instance("web-01", "10.2.0.10")

    world.service.recover_part(part(ref("i-1", "web-01", rpo=15)))

    failed = world.results.of(ResourceRecoveryFailed)
    assert [(f.error_code, f.retryable) for f in failed] == [("LAG_OVER_RPO", True)]
    assert "--force" in failed[0].error
    assert world.drs.calls["StartRecovery"] == 0


def test_given_lag_over_rpo_and_force_when_recovering_then_launched_and_recorded_as_forced() -> (
    None
):
    world = World()
    world.options(allow_data_loss=True)  # drctl failover --force
    world.drs.add_server("i-1", lag="PT20M")
    world.drs.add_instance("web-01", "10.2.0.10")
    world.service.recover_part(part(ref("i-1", "web-01", rpo=15)))
    job_id = world.results.of(ResourceRecoveryStarted)[0].job_id

    world.drs.finish(job_id, {"s-i-1": ("LAUNCHED", None)})
    world.service.reconcile_job(job_id, ACCOUNT, DR)

    recovered = world.results.of(ResourceRecovered)[0]
    assert recovered.details["rpo_exceeded"] == "true"
    assert recovered.details["lag_seconds"] == "1200"
    assert recovered.details["forced"] == "true"


@pytest.mark.parametrize("state", ["STALLED", "DISCONNECTED"])
def test_given_broken_replication_and_force_then_the_last_snapshot_is_launched(state: str) -> None:
    world = World()
    world.options(allow_data_loss=True)
    world.drs.add_server("i-1", state=state, lag="PT2H")
    world.drs.add_instance("web-01", "10.2.0.10")

    world.service.recover_part(part(ref("i-1", "web-01")))

    assert world.drs.calls["StartRecovery"] == 1 and not world.failed_codes()


def test_given_force_then_a_server_without_snapshot_is_still_refused() -> None:
    world = World()
    world.options(allow_data_loss=True)
    world.drs.add_server("i-1", state="INITIAL_SYNC")

    world.service.recover_part(part(ref("i-1")))

    assert world.failed_codes() == {"i-1": "REPLICATION_NOT_READY"}


def test_given_a_failed_over_server_when_failing_over_again_then_refused_even_with_force() -> None:
    world = World()
    world.options(allow_data_loss=True)
    world.drs.add_server(
        "i-1", state="STOPPED", reversed_arn="arn:aws:drs:us-east-1:1:source-server/s-x"
    )
    world.drs.add_instance("web-01", "10.2.0.10")

    world.service.recover_part(part(ref("i-1", "web-01")))

    assert world.failed_codes() == {"i-1": "ALREADY_FAILED_OVER"}
    assert world.drs.calls["StartRecovery"] == 0


def test_given_a_server_in_another_drs_job_when_recovering_then_job_in_progress() -> None:
    world = World()
    world.drs.add_server("i-1", last_launch_status="IN_PROGRESS", last_launch_job="drsjob-x")

    world.service.recover_part(part(ref("i-1")))

    assert world.failed_codes() == {"i-1": "JOB_IN_PROGRESS"}


# --- twins ----------------------------------------------------------------------------------------


def test_given_same_name_twin_of_another_customer_when_recovering_then_it_is_never_used() -> None:
    world = World()
    world.drs.add_server("i-1", ip="10.1.0.10")
    # Another tenant's instance with the same Name and even the right IP; the lookup leaks it.
    foreign = world.drs.add_instance("web-01", "10.2.0.10", customer="globex")
    world.drs.twins_leak = [foreign]

    world.service.recover_part(part(ref("i-1", "web-01")))

    assert foreign.instance_id not in world.drs.launch_config.values()
    assert world.drs.launch_config == {}  # launch-into cleared: a standard launch
    assert world.drs.started == [["s-i-1"]]  # a standard launch, not into the foreign twin


def test_given_twin_with_another_last_octet_when_recovering_then_failed_before_launching() -> None:
    world = World()
    world.drs.add_server("i-1", ip="10.1.0.10")
    world.drs.add_instance("web-01", "10.2.0.11")

    world.service.recover_part(part(ref("i-1", "web-01")))

    assert world.failed_codes() == {"i-1": "TWIN_IP_MISMATCH"}
    assert world.drs.calls["UpdateLaunchConfiguration"] == 0
    assert world.drs.calls["StartRecovery"] == 0


def test_given_resource_ref_ip_when_checking_the_twin_then_it_is_the_primary_ip() -> None:
    world = World()
    world.drs.add_server("i-1", ip=None)
    world.drs.add_instance("web-01", "10.2.0.44")

    world.service.recover_part(part(ref("i-1", "web-01", ip="10.1.0.44")))

    assert world.drs.calls["StartRecovery"] == 1 and not world.failed_codes()


def test_given_two_twins_with_the_same_name_when_recovering_then_ambiguous_twin() -> None:
    world = World()
    world.drs.add_server("i-1")
    world.drs.add_instance("web-01", "10.2.0.10")
    world.drs.add_instance("web-01", "10.3.0.10")

    world.service.recover_part(part(ref("i-1", "web-01")))

    assert world.failed_codes() == {"i-1": "AMBIGUOUS_TWIN"}


def test_given_twin_without_the_awsdrs_tag_when_recovering_then_not_launched_into() -> None:
    world = World()
    world.drs.add_server("i-1")
    world.drs.add_instance("web-01", "10.2.0.10", allow=False)

    world.service.recover_part(part(ref("i-1", "web-01")))

    assert world.failed_codes() == {"i-1": "TWIN_NOT_LAUNCH_TARGET"}
    assert world.drs.calls["StartRecovery"] == 0


def test_given_no_twin_when_recovered_then_standard_launch_with_twin_none_warning() -> None:
    world = World()
    world.drs.add_server("i-1", ip="10.1.0.10")
    world.service.recover_part(part(ref("i-1", "web-01")))
    job_id = world.results.of(ResourceRecoveryStarted)[0].job_id

    world.drs.finish(job_id, {"s-i-1": ("LAUNCHED", "10.7.7.7")})
    world.service.reconcile_job(job_id, ACCOUNT, DR)

    recovered = world.results.of(ResourceRecovered)[0]
    assert recovered.details["twin"] == "none"
    assert "warning" in recovered.details
    assert recovered.details["ip_last_octet"] == "changed"


# --- launching ------------------------------------------------------------------------------------


def test_given_250_servers_when_recovering_then_3_start_recovery_calls_of_at_most_100() -> None:
    world = World()
    refs = []
    for n in range(250):
        world.drs.add_server(f"i-{n:04d}", ip=f"10.1.{n // 200}.{n % 200 + 10}")
        world.drs.add_instance(f"srv-{n:04d}", f"10.2.{n // 200}.{n % 200 + 10}")
        refs.append(ref(f"i-{n:04d}", f"srv-{n:04d}"))

    summary = world.service.recover_part(part(*refs))

    assert [len(batch) for batch in world.drs.started] == [100, 100, 50]
    assert summary["launched"] == 250 and summary["failed"] == 0
    assert len(world.results.of(ResourceRecoveryStarted)) == 250
    assert len(world.checks.sent) == 3
    # Reads are batched per part: source servers, earlier jobs, twins and the primary instances
    # (boot mode) once each.
    assert world.drs.calls["DescribeSourceServers"] == 1
    assert world.drs.calls["DescribeJobs"] == 1
    assert world.drs.calls["DescribeInstances"] == 1
    assert world.primary.calls["DescribeInstances"] == 1


def test_given_a_conflict_when_starting_recovery_then_failed_results_with_the_aws_code() -> None:
    world = World()
    world.drs.add_server("i-1")
    world.drs.start_error = AwsError("ConflictException", "server is in another job")

    world.service.recover_part(part(ref("i-1")))

    failed = world.results.of(ResourceRecoveryFailed)
    assert [(f.error_code, f.retryable) for f in failed] == [("ConflictException", True)]
    assert world.checks.sent == []


def test_given_a_part_that_crashed_after_launching_when_redone_then_nothing_launches_twice() -> (
    None
):
    world = World()
    world.drs.add_server("i-1")
    world.results.fail_next = True  # publishing fails after StartRecovery succeeded
    with pytest.raises(RuntimeError):
        world.service.recover_part(part(ref("i-1")))

    summary = world.service.recover_part(part(ref("i-1")))

    assert world.drs.calls["StartRecovery"] == 1
    assert summary["adopted"] == 1
    assert len(world.results.of(ResourceRecoveryStarted)) == 1


def test_given_a_retry_attempt_when_recovering_then_servers_launch_again() -> None:
    world = World()
    world.drs.add_server("i-1")
    world.service.recover_part(part(ref("i-1"), attempt=1))

    world.service.recover_part(part(ref("i-1"), attempt=2))

    assert world.drs.calls["StartRecovery"] == 2


@pytest.mark.filterwarnings("ignore:Couldn't determine the remaining time")
def test_given_a_redelivered_part_when_idempotent_then_second_delivery_launches_nothing(
    tables: dict[str, Any], settings: Any
) -> None:
    import boto3
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    from drcore.idempotency import idempotent_parts

    world = World()
    world.drs.add_server("i-1")
    persistence = DynamoDBPersistenceLayer(
        table_name=settings.idempotency_table,
        boto3_client=boto3.client("dynamodb", region_name=settings.orchestration_region),
    )
    recover, _ = idempotent_parts(
        world.service.recover_part, persistence, settings, key_prefix="drs-part"
    )

    first = recover(part(ref("i-1")))
    again = recover(part(ref("i-1")))
    other_part = recover(part(ref("i-1"), part=2))

    assert first == again
    assert world.drs.calls["StartRecovery"] == 1 + 0  # the other part adopts, never relaunches
    assert other_part["adopted"] == 1


# --- reconciliation -------------------------------------------------------------------------------


def launched_job(world: World, *instance_ids: str) -> str:
    for iid in instance_ids:
        world.drs.add_server(iid, ip=f"10.1.0.{10 + int(iid.split('-')[1])}")
        world.drs.add_instance(f"srv-{iid}", f"10.2.0.{10 + int(iid.split('-')[1])}")
    world.service.recover_part(part(*(ref(i) for i in instance_ids)))
    return world.results.of(ResourceRecoveryStarted)[0].job_id or ""


def test_given_native_event_and_poll_when_reconciling_then_one_result_per_server() -> None:
    world = World()
    job_id = launched_job(world, "i-1", "i-2")
    world.drs.finish(job_id, {"s-i-1": ("LAUNCHED", None), "s-i-2": ("LAUNCHED", None)})

    world.service.begin_batch()
    world.service.reconcile_job(job_id, ACCOUNT, DR)  # native event
    world.service.begin_batch()
    world.service.reconcile_job(job_id, ACCOUNT, DR, attempt=0)  # the poll, later

    recovered = world.results.of(ResourceRecovered)
    assert sorted(r.resource_id for r in recovered) == ["i-1", "i-2"]
    first = recovered[0]
    assert first.dr_region == DR and first.started_at == T0 + timedelta(seconds=1)
    assert first.details["job_id"] == job_id and first.details["twin"].startswith("i-dr")
    assert first.details["ip_last_octet"] == "preserved"


def test_given_many_events_of_one_job_in_a_batch_when_reconciling_then_one_describe_jobs() -> None:
    world = World()
    job_id = launched_job(world, "i-1", "i-2", "i-3")
    world.drs.finish(job_id, {f"s-i-{n}": ("LAUNCHED", None) for n in (1, 2, 3)})
    before = world.drs.calls["DescribeJobs"]

    world.service.begin_batch()
    for _ in range(3):
        world.service.reconcile_job(job_id, ACCOUNT, DR)

    assert world.drs.calls["DescribeJobs"] - before == 1
    assert len(world.results.of(ResourceRecovered)) == 3


def test_given_a_job_still_running_when_polled_then_next_check_with_backoff() -> None:
    world = World()
    job_id = launched_job(world, "i-1", "i-2")
    world.drs.finish(job_id, {"s-i-1": ("LAUNCHED", None)}, done=False)
    world.checks.sent.clear()

    for attempt in range(6):
        world.service.begin_batch()
        world.service.reconcile_job(job_id, ACCOUNT, DR, attempt=attempt)

    assert [delay for _, delay in world.checks.sent] == [10, 20, 40, 60, 60, 60]
    assert [c.attempt for c, _ in world.checks.sent] == [1, 2, 3, 4, 5, 6]
    assert [r.resource_id for r in world.results.of(ResourceRecovered)] == ["i-1"]

    world.drs.finish(job_id, {"s-i-2": ("LAUNCHED", None)})
    world.checks.sent.clear()
    world.service.begin_batch()
    world.service.reconcile_job(job_id, ACCOUNT, DR, attempt=6)

    assert world.checks.sent == []  # completed and all reported: the checks stop
    assert len(world.results.of(ResourceRecovered)) == 2


def test_given_a_failed_launch_then_it_is_launched_again_and_reported_after_the_last_try() -> None:
    world = World()
    job_id = launched_job(world, "i-1")
    jobs = [job_id]
    # Given every launch fails: three more tries, each after its backoff
    for launch_try in range(1, 5):
        world.drs.finish(jobs[-1], {"s-i-1": ("FAILED", "InsufficientInstanceCapacity in 2a")})
        world.service.begin_batch()
        world.service.reconcile_job(jobs[-1], ACCOUNT, DR)
        if launch_try == 4:
            break
        assert world.results.of(ResourceRecoveryFailed) == []  # not reported yet
        wakes = [d for m, d in world.checks.sent if getattr(m, "kind", "") == "drs-quota-wake"]
        assert wakes[-1] >= (10, 30, 60)[launch_try - 1]
        world.clock.advance(120)
        world.service.begin_batch()
        world.service.drain(ACCOUNT, DR)  # the wake-up
        jobs.append(list(world.drs.jobs_by_id)[-1])

    # Then DRS's own error is reported, after 4 tries, one job each
    failed = world.results.of(ResourceRecoveryFailed)
    assert [(f.resource_id, f.error_code) for f in failed] == [("i-1", "LAUNCH_FAILED")]
    assert "InsufficientInstanceCapacity" in failed[0].error and "4 tries" in failed[0].error
    assert world.drs.started == [["s-i-1"]] * 4
    tries = [world.drs.jobs_by_id[j].tags[T.JOB_LAUNCH_TRY] for j in jobs]
    assert tries == ["1", "2", "3", "4"]


def test_given_a_failed_launch_when_the_next_try_succeeds_then_recovered_once() -> None:
    world = World()
    job_id = launched_job(world, "i-1")
    world.drs.finish(job_id, {"s-i-1": ("FAILED", "capacity")})
    world.service.reconcile_job(job_id, ACCOUNT, DR)
    world.clock.advance(15)
    world.service.begin_batch()
    world.service.drain(ACCOUNT, DR)
    second = list(world.drs.jobs_by_id)[-1]

    world.drs.finish(second, {"s-i-1": ("LAUNCHED", None)})
    world.service.reconcile_job(second, ACCOUNT, DR)
    world.service.reconcile_job(job_id, ACCOUNT, DR, attempt=3)  # a late check of the first job

    recovered = world.results.of(ResourceRecovered)
    assert [r.resource_id for r in recovered] == ["i-1"]
    assert recovered[0].details["launch_try"] == "2"
    assert world.results.of(ResourceRecoveryFailed) == []


def test_given_dr_ip_with_another_last_octet_when_reconciling_then_ip_last_octet_mismatch() -> None:
    world = World()
    job_id = launched_job(world, "i-1")  # primary 10.1.0.11, twin 10.2.0.11
    world.drs.finish(job_id, {"s-i-1": ("LAUNCHED", "10.2.0.99")})

    world.service.reconcile_job(job_id, ACCOUNT, DR)

    assert world.failed_codes() == {"i-1": "IP_LAST_OCTET_MISMATCH"}
    assert world.results.of(ResourceRecovered) == []


def test_given_job_without_our_tags_when_reconciling_then_ignored() -> None:
    world = World()
    world.drs.add_server("i-1")
    world.drs.jobs_by_id["drsjob-00000000000000099"] = Job(
        job_id="drsjob-00000000000000099",
        status="COMPLETED",
        tags={},
        servers=(JobServer("s-i-1", "LAUNCHED", "ri-x"),),
    )

    outcome = world.service.reconcile_job("drsjob-00000000000000099", ACCOUNT, DR, attempt=0)

    assert outcome.ours is False and world.results.published == []
    assert world.checks.sent == []


def test_given_missing_recovery_instance_id_when_reconciling_then_looked_up_by_source() -> None:
    world = World()
    job_id = launched_job(world, "i-1")
    world.drs.finish(job_id, {"s-i-1": ("LAUNCHED", None)}, drop_recovery_id=True)

    world.service.reconcile_job(job_id, ACCOUNT, DR)

    assert [r.resource_id for r in world.results.of(ResourceRecovered)] == ["i-1"]


def test_given_recovery_ids_that_are_not_ec2_ids_when_reconciling_then_looked_up() -> None:
    world = World()
    world.drs.opaque_ids = True
    job_id = launched_job(world, "i-1")
    world.drs.finish(job_id, {"s-i-1": ("LAUNCHED", None)})

    world.service.reconcile_job(job_id, ACCOUNT, DR)

    assert [r.resource_id for r in world.results.of(ResourceRecovered)] == ["i-1"]
    assert world.drs.calls["DescribeRecoveryInstances"] == 1


def test_given_another_process_when_it_reconciles_the_same_job_then_no_duplicate() -> None:
    world = World()
    job_id = launched_job(world, "i-1")
    world.drs.finish(job_id, {"s-i-1": ("LAUNCHED", None)})
    world.service.reconcile_job(job_id, ACCOUNT, DR)
    # A second Lambda container: the same AWS and ledger table, nothing cached.
    other = world.recovery()

    other.reconcile_job(job_id, ACCOUNT, DR, attempt=0)

    assert len(world.results.of(ResourceRecovered)) == 1


def test_given_launch_context_lost_when_reconciling_then_rebuilt_from_drs() -> None:
    world = World()
    job_id = launched_job(world, "i-1")
    world.ledger.launches.clear()
    world.drs.finish(job_id, {"s-i-1": ("LAUNCHED", None)})

    world.service.reconcile_job(job_id, ACCOUNT, DR)

    recovered = world.results.of(ResourceRecovered)[0]
    assert recovered.resource_id == "i-1"  # awsInstanceID of the source server
    assert recovered.details["twin"] != "none"  # known from the AWSDRS tag on the target


def test_given_an_unregistered_account_when_reconciling_then_ignored() -> None:
    world = World()

    outcome = world.service.reconcile_job("drsjob-00000000000000001", "333333333333", DR)

    assert outcome.ours is False and world.results.published == []


def test_given_an_event_naming_the_wrong_account_in_the_batch_then_the_job_checks_go_on() -> None:
    world = World()
    job_id = launched_job(world, "i-1")
    world.drs.finish(job_id, {"s-i-1": ("IN_PROGRESS", None)}, done=False)
    world.checks.sent.clear()

    world.service.begin_batch()
    world.service.reconcile_job(job_id, "333333333333", DR)  # an event with a wrong account
    world.service.reconcile_job(job_id, ACCOUNT, DR, attempt=0)  # the real check, same batch

    assert [c.attempt for c, _ in world.checks.sent] == [1]


def test_given_iso_durations_when_parsing_then_seconds() -> None:
    assert parse_duration("PT1H2M3S") == 3723
    assert parse_duration("P1DT1S") == 86401
    assert parse_duration("PT0.5S") == 0.5
    assert parse_duration("garbage") is None and parse_duration(None) is None


# --- handler --------------------------------------------------------------------------------------


class LambdaContext:
    function_name = "dr-drs"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-2:123456789012:function:dr-drs"
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


class StubService:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def begin_batch(self, context: Any) -> None:
        self.calls.append(("begin_batch", None))

    def recover_part(self, part: WaveStarted) -> dict[str, Any]:
        self.calls.append(("recover_part", (part.operation_id, part.wave, part.part)))
        return {}

    def reconcile_job(
        self, job_id: str, account: str, region: str, attempt: int | None = None
    ) -> None:
        self.calls.append(("reconcile_job", (job_id, account, region, attempt)))


def sqs_event(*bodies: dict[str, Any]) -> dict[str, Any]:
    import json

    return {
        "Records": [
            {
                "messageId": f"m-{n}",
                "receiptHandle": f"r-{n}",
                "body": json.dumps(body),
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-2:123456789012:dr-drs",
                "awsRegion": "us-east-2",
            }
            for n, body in enumerate(bodies)
        ]
    }


def envelope(detail_type: str, source: str, detail: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": "e-1",
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT,
        "region": DR,
        "time": "2026-11-01T12:00:00Z",
        "resources": [],
        "detail": detail,
        **extra,
    }


@pytest.mark.filterwarnings("ignore:No application metrics")
def test_given_a_batch_when_the_handler_runs_then_each_record_reaches_its_use_case(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from events.schemas import DetailType, NativeDetailType, Source
    from services.drs import handler

    stub = StubService()
    monkeypatch.setattr(handler, "_service", lambda: stub)
    wave = json_detail(part(ref("i-1")))
    event = sqs_event(
        envelope(DetailType.WAVE_STARTED, Source.COORDINATOR, wave),
        envelope(
            NativeDetailType.DRS_LAUNCH_RESULT,
            Source.AWS_DRS,
            {"state": "RECOVERY_LAUNCH_SUCCEEDED", "job-id": "drsjob-1"},
        ),
        {
            "kind": "drs-job-check",
            "job_id": "drsjob-1",
            "account": ACCOUNT,
            "region": DR,
            "attempt": 3,
        },
        envelope(DetailType.WAVE_STARTED, Source.COORDINATOR, wave, **{"replay-name": "audit"}),
    )

    response = handler.handler(event, LambdaContext())

    assert response == {"batchItemFailures": []}
    assert stub.calls == [
        ("begin_batch", None),
        ("recover_part", ("op-000001", 1, 1)),
        ("reconcile_job", ("drsjob-1", ACCOUNT, DR, None)),
        ("reconcile_job", ("drsjob-1", ACCOUNT, DR, 3)),
    ]


def json_detail(detail: Detail) -> dict[str, Any]:
    import json

    loaded: dict[str, Any] = json.loads(detail.model_dump_json())
    return loaded


# --- tenant isolation (property) ------------------------------------------------------------------


@hypothesis_settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["acme", "globex"]), st.integers(0, 3), st.booleans()),
        max_size=12,
    )
)
def test_given_any_dr_instances_when_recovering_then_only_acme_twins_are_launched_into(
    instances: list[tuple[str, int, bool]],
) -> None:
    world = World()
    for n in range(4):
        world.drs.add_server(f"i-{n}", ip=f"10.1.0.{10 + n}")
    for customer, n, leak in instances:
        twin = world.drs.add_instance(f"srv-i-{n}", f"10.2.0.{10 + n}", customer=customer)
        if leak:
            world.drs.twins_leak.append(twin)

    world.service.recover_part(part(*(ref(f"i-{n}") for n in range(4))))

    used = set(world.drs.launch_config.values())
    assert all(world.drs.instances_by_id[i].tags[T.CUSTOMER] == "acme" for i in used)


def test_given_two_workers_reconciling_a_failed_launch_then_it_is_relaunched_once() -> None:
    world = World()
    job_id = launched_job(world, "i-1", "i-2")
    world.drs.finish(job_id, {"s-i-1": ("FAILED", "capacity")}, done=False)
    other = world.recovery()  # another Lambda container, nothing cached

    world.service.reconcile_job(job_id, ACCOUNT, DR)
    world.drs.finish(job_id, {"s-i-2": ("FAILED", "capacity")})
    other.reconcile_job(job_id, ACCOUNT, DR)  # sees both failed; i-1 was taken by the first
    world.clock.advance(60)
    world.service.begin_batch()
    world.service.drain(ACCOUNT, DR)

    relaunched = [s for batch in world.drs.started[1:] for s in batch]
    assert sorted(relaunched) == ["s-i-1", "s-i-2"]  # each failed server launched again once
