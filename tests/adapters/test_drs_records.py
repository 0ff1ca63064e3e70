"""The drs service's DynamoDB adapters under moto: the quota budget (holds counted once, FIFO
queue, claims), the per-operation records, the ledger's restore claim."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from drcore.settings import Settings
from events.schemas import OperationType, ResourceRecovered, ResourceRecoveryFailed, Strategy
from events.schemas.names import TeardownTrigger
from services.drs.adapters import DynamoBudget, DynamoLedger, DynamoOperations, limits_from_quotas
from services.drs.records import (
    DrsLimits,
    Hold,
    LaunchBatch,
    LaunchContext,
    LaunchMember,
    OperationOptions,
    OpJob,
    RecordedResult,
    TeardownRecord,
    TeardownState,
)

ACCOUNT, REGION = "111111111111", "us-east-2"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
LIMITS = DrsLimits(servers_per_job=3, concurrent_jobs=2, servers_in_active_jobs=5)


@pytest.fixture
def dynamodb(tables: dict[str, Any], settings: Settings) -> Any:
    return boto3.client("dynamodb", region_name=settings.orchestration_region)


@pytest.fixture
def budget(dynamodb: Any, settings: Settings) -> DynamoBudget:
    return DynamoBudget(dynamodb, settings.operations_table)


def batch(batch_id: str, at: datetime = T0, servers: int = 2) -> LaunchBatch:
    return LaunchBatch(
        batch_id=batch_id,
        account=ACCOUNT,
        region=REGION,
        operation_id="op-000001",
        customer="acme",
        environment="production",
        operation=OperationType.FAILOVER,
        wave=1,
        enqueued_at=at,
        members=[
            LaunchMember(
                source_server_id=f"s-{batch_id}-{n}",
                context=LaunchContext(resource_id=f"i-{n}", name=f"srv-{n}"),
            )
            for n in range(servers)
        ],
    )


def hold(hold_id: str, servers: int = 2) -> Hold:
    return Hold(hold_id=hold_id, servers=servers, created_at=T0)


def test_given_the_budget_when_holds_are_reserved_then_the_quotas_are_never_exceeded(
    budget: DynamoBudget,
) -> None:
    assert budget.reserve(ACCOUNT, REGION, hold("a", 3), LIMITS)
    assert not budget.reserve(ACCOUNT, REGION, hold("b", 3), LIMITS)  # 6 servers > 5
    assert budget.reserve(ACCOUNT, REGION, hold("c", 2), LIMITS)
    assert not budget.reserve(ACCOUNT, REGION, hold("d", 0), LIMITS)  # 2 jobs already
    assert budget.usage(ACCOUNT, REGION) == (2, 5)

    assert budget.release(ACCOUNT, REGION, "a")
    assert not budget.release(ACCOUNT, REGION, "a")  # a duplicate release counts nothing
    assert budget.usage(ACCOUNT, REGION) == (1, 2)


def test_given_a_redelivered_reservation_then_it_is_counted_once(budget: DynamoBudget) -> None:
    assert budget.reserve(ACCOUNT, REGION, hold("a"), LIMITS)
    assert budget.reserve(ACCOUNT, REGION, hold("a"), LIMITS)  # the same hold: already ours
    assert budget.usage(ACCOUNT, REGION) == (1, 2)
    budget.attach(ACCOUNT, REGION, "a", "drsjob-1")
    assert [(h.hold_id, h.job_id) for h in budget.holds(ACCOUNT, REGION)] == [("a", "drsjob-1")]


def test_given_waiting_batches_then_they_come_oldest_first_and_one_claim_wins(
    budget: DynamoBudget,
) -> None:
    assert budget.enqueue(batch("b2", T0 + timedelta(seconds=2)))
    assert budget.enqueue(batch("b1", T0))
    assert not budget.enqueue(batch("b1", T0 + timedelta(seconds=9)))  # the same batch again

    assert [b.batch_id for b in budget.waiting(ACCOUNT, REGION)] == ["b1", "b2"]
    first = budget.waiting(ACCOUNT, REGION)[0]
    assert budget.claim(first, T0)
    assert not budget.claim(first, T0 + timedelta(seconds=30))  # another worker has it
    assert budget.claim(first, T0 + timedelta(minutes=5))  # its worker died: the lease expired
    budget.unclaim(first)
    assert budget.claim(first, T0)
    budget.done(first)
    assert [b.batch_id for b in budget.waiting(ACCOUNT, REGION)] == ["b2"]


def test_given_an_operation_then_its_records_round_trip(dynamodb: Any, settings: Settings) -> None:
    records = DynamoOperations(dynamodb, settings.operations_table)
    options = OperationOptions(
        operation_id="op-000001",
        customer="acme",
        environment="production",
        operation=OperationType.BUBBLE_TEST,
        keep_drill_resources=True,
        requested_at=T0,
    )
    records.save_options(options)
    records.save_options(options.model_copy(update={"keep_drill_resources": False}))  # first wins
    records.record_job(
        "op-000001",
        OpJob(job_id="drsjob-1", account=ACCOUNT, region=REGION, kind="launch", created_at=T0),
    )
    assert records.mark_ended("op-000001", "COMPLETED", T0)
    assert not records.mark_ended("op-000001", "FAILED", T0)
    teardown = TeardownRecord(
        operation_id="op-000001",
        customer="acme",
        environment="production",
        state=TeardownState.IN_PROGRESS,
        trigger=TeardownTrigger.OPERATION_END,
        started_at=T0,
    )
    assert records.put_teardown(teardown, new=True)
    assert not records.put_teardown(teardown, new=True)

    loaded = records.load("op-000001")

    assert loaded.options is not None and loaded.options.keep_drill_resources
    assert [j.job_id for j in loaded.jobs] == ["drsjob-1"]
    assert loaded.ended == "COMPLETED"
    assert loaded.teardown == teardown
    assert records.load("op-unknown1").options is None


def test_given_a_drill_job_then_one_worker_claims_its_restoration(
    dynamodb: Any, settings: Settings
) -> None:
    ledger = DynamoLedger(dynamodb, settings.operations_table)
    assert ledger.mark_restored("drsjob-1")
    assert not ledger.mark_restored("drsjob-1")
    assert ledger.load("drsjob-1").restored


def _recovered(resource_id: str) -> ResourceRecovered:
    return ResourceRecovered(
        operation_id="op-000001",
        customer="acme",
        environment="production",
        operation=OperationType.FAILOVER,
        occurred_at=T0,
        resource_id=resource_id,
        wave=2,
        strategy=Strategy.DRS,
        dr_resource_id=f"i-dr-{resource_id}",
        dr_private_ip="10.2.0.10",
        dr_region=REGION,
        started_at=T0,
        completed_at=T0 + timedelta(seconds=30),
        details={"twin": f"i-dr-{resource_id}", "ip_last_octet": "preserved"},
    )


def test_given_reported_servers_then_their_results_are_kept_beside_the_reported_set(
    dynamodb: Any, settings: Settings
) -> None:
    ledger = DynamoLedger(dynamodb, settings.operations_table)
    # Given two reconciliations of one job (the second one also hands a server to a relaunch)
    ledger.mark_reported("drsjob-1", ["s-1"], {"s-1": RecordedResult.of(_recovered("i-1"), 1)})
    ledger.mark_reported(
        "drsjob-1", ["s-2", "s-3"], {"s-2": RecordedResult.of(_recovered("i-2"), 1)}
    )

    loaded = ledger.load("drsjob-1")

    # Then every server is reported, and each published result reads back as the same event
    assert loaded.reported == {"s-1", "s-2", "s-3"}
    assert sorted(loaded.results) == ["s-1", "s-2"]
    assert loaded.results["s-2"].event() == _recovered("i-2")


def test_given_failures_outside_jobs_then_they_are_kept_per_wave_attempt_and_resource(
    dynamodb: Any, settings: Settings
) -> None:
    records = DynamoOperations(dynamodb, settings.operations_table)
    failures = [
        ResourceRecoveryFailed(
            operation_id="op-000001",
            customer="acme",
            environment="production",
            operation=OperationType.FAILOVER,
            occurred_at=T0,
            resource_id=f"i-{n}",
            wave=1,
            strategy=Strategy.DRS,
            error_code="NO_SOURCE_SERVER",
            error=f"srv-{n}: no DRS source server",
            failed_at=T0,
        )
        for n in range(30)  # more than one BatchWriteItem
    ]
    records.record_results("op-000001", [RecordedResult.of(f, 1) for f in failures])
    records.record_results("op-000001", [RecordedResult.of(failures[0], 2)])  # a later attempt

    kept = records.load("op-000001").results

    assert len(kept) == 31
    assert {(r.attempt, r.resource_id) for r in kept if r.resource_id == "i-0"} == {
        (1, "i-0"),
        (2, "i-0"),
    }
    by_id = {r.resource_id: r.event() for r in kept if r.attempt == 1}
    assert by_id == {f.resource_id: f for f in failures}


def test_given_service_quotas_then_applied_values_win_over_defaults_matched_by_name() -> None:
    quotas = [
        {"QuotaName": "Max source servers in a single Drill or Recovery job", "Value": 100.0},
        {"QuotaName": "Max concurrent Jobs in progress", "Value": 20.0},
        {"QuotaName": "Max source servers in all Drill or Recovery jobs", "Value": 500.0},
        {"QuotaName": "Max replicating source servers", "Value": 300.0},
        {"QuotaName": "Max concurrent Jobs in progress", "Value": 4.0},  # applied
    ]
    limits = limits_from_quotas(quotas)
    assert (limits.servers_per_job, limits.concurrent_jobs, limits.servers_in_active_jobs) == (
        100,
        4,
        500,
    )
    assert limits.source == "service-quotas"
    assert limits_from_quotas([]).source == "defaults"
