"""Coordinator repository against DynamoDB semantics (moto): conditions, transactions, the lock,
and the items the CLI's read model (`drcore.state.read_operation`) reads back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from drcore.settings import Settings
from drcore.state import (
    OperationState,
    PlanStore,
    ResourceState,
    list_operations,
    read_operation,
)
from events.schemas import (
    Detail,
    OperationCompleted,
    OperationFailed,
    OperationResumeRequested,
    OperationType,
    ResumeMode,
    Source,
    Strategy,
    WaveStarted,
)

# Imported at collection: X-Ray's SDK opens its UDP socket on import, before sockets are blocked.
from services.coordinator import handler
from services.coordinator.adapters import DynamoRepository
from services.coordinator.domain import (
    Coordinator,
    ErrorCode,
    LockRecord,
    ResourceResult,
    ResultOutcome,
    WavePhase,
    WaveRecord,
    record_from_request,
    resource_record,
)
from tests.unit.test_coordinator_domain import (
    CUSTOMER,
    ENVIRONMENT,
    T0,
    Clock,
    FakePublisher,
    failed,
    plan,
    plan_ready,
    recovered,
    request,
    resource,
    three_waves,
)

OP = "op-000001"
WaveState = WavePhase  # the coordinator's wave states (drcore.state.WaveState's values and more)


def resume(mode: ResumeMode) -> OperationResumeRequested:
    return OperationResumeRequested(
        operation_id=OP,
        customer=CUSTOMER,
        environment=ENVIRONMENT,
        operation=OperationType.FAILOVER,
        requested_by="sre@example.com",
        mode=mode,
    )


@pytest.fixture
def table(tables: dict[str, Any]) -> Any:
    return tables["operations"]


@pytest.fixture
def repo(table: Any) -> DynamoRepository:
    return DynamoRepository(table, sleep=lambda _: None)


class Running:
    def __init__(self, table: Any, repo: DynamoRepository) -> None:
        self.table = table
        self.repo = repo
        self.publisher = FakePublisher()
        self.clock = Clock()
        self.coordinator = Coordinator(repo, self.publisher, part_size=3, clock=self.clock)

    def start(self, op: str = OP, **fields: Any) -> None:
        PlanStore(self.table).put(op, fields.pop("the_plan", None) or three_waves())
        self.coordinator.on_operation_requested(request(op, **fields))
        self.coordinator.on_plan_ready(plan_ready(op))


@pytest.fixture
def running(table: Any, repo: DynamoRepository) -> Iterator[Running]:
    yield Running(table, repo)


def result(rid: str, wave: int, recovered: bool = True) -> ResourceResult:
    return ResourceResult(
        operation_id=OP,
        resource_id=rid,
        wave=wave,
        strategy=Strategy.DRS,
        recovered=recovered,
        started_at=T0,
        completed_at=T0 + timedelta(minutes=2),
        dr_resource_id=f"dr-{rid}" if recovered else None,
        error=None if recovered else "boom",
        error_code=None if recovered else "LAUNCH_FAILED",
    )


def seed_wave(repo: DynamoRepository, state: WaveState = WaveState.RECOVERING) -> None:
    repo.create_operation(record_from_request(request(), OperationState.RUNNING, T0))
    repo.put_plan_items(
        OP,
        [WaveRecord(number=1, state=state, expected=2, remaining=2, updated_at=T0)],
        [resource_record(resource("i-1", 1), 1), resource_record(resource("i-2", 1), 1)],
        overwrite=True,
    )


# --- end to end on DynamoDB --------------------------------------------------------------------


def test_given_a_three_wave_plan_when_run_on_dynamodb_then_read_operation_shows_what_happened(
    running: Running, table: Any
):
    # Given an operation whose plan is stored
    running.start()

    # When every wave's resources recover (each result delivered twice)
    for _ in range(3):
        started = running.publisher.of(WaveStarted)
        running.publisher.take()
        for event in started:
            for ref in event.resources:
                running.clock.tick()
                for _dup in range(2):
                    running.coordinator.on_resource_recovered(
                        recovered(OP, ref.resource_id, event.wave, event.strategy)
                    )

    # Then the read model shows the completed operation, its waves and resources
    view = read_operation(table, OP)
    assert view is not None
    assert (view.state, view.customer, view.environment, view.operation) == (
        OperationState.COMPLETED,
        CUSTOMER,
        ENVIRONMENT,
        "failover",
    )
    assert view.requested_by == "sre@example.com" and view.current_wave == 5
    assert view.created_at == T0 and view.completed_at is not None
    assert [(w.number, w.state, w.expected, w.recovered, w.failed) for w in view.waves] == [
        (1, WaveState.COMPLETED, 2, 2, 0),
        (2, WaveState.COMPLETED, 6, 6, 0),
        (5, WaveState.COMPLETED, 1, 1, 0),
    ]
    assert view.waves[0].rto_target_minutes == 30
    assert all(w.started_at and w.completed_at for w in view.waves)
    assert len(view.resources) == 9
    assert {r.state for r in view.resources} == {ResourceState.RECOVERED}
    app = next(r for r in view.resources if r.resource_id == "i-app0")
    assert (app.dr_resource_id, app.dr_private_ip, app.strategy, app.wave) == (
        "dr-i-app0",
        "10.2.10.10",
        "drs",
        2,
    )
    assert app.private_ip == "10.1.10.10" and app.completed_at is not None
    [done] = running.publisher.of(OperationCompleted)
    assert (done.recovered, done.failed, done.waves) == (9, 0, 3)
    # the lock is gone and the operation is listed for its scope (GSI "by-scope")
    assert "Item" not in table.get_item(Key={"pk": f"LOCK#{CUSTOMER}#{ENVIRONMENT}", "sk": "LOCK"})
    assert [o["operation_id"] for o in list_operations(table, CUSTOMER, ENVIRONMENT)] == [OP]


def test_given_a_failed_resource_on_dynamodb_when_retried_then_only_the_new_attempt_counts(
    running: Running, table: Any
):
    running.start(the_plan=plan({1: [resource("i-1", 1), resource("i-2", 1)]}))
    running.coordinator.on_resource_recovered(recovered(OP, "i-1", 1))
    running.coordinator.on_resource_recovery_failed(failed(OP, "i-2", 1))

    # Then the operation is PAUSED with the failure readable
    view = read_operation(table, OP)
    assert view is not None
    assert view.state == OperationState.PAUSED
    assert view.reason is not None and "i-2" in view.reason
    failed_view = next(r for r in view.resources if r.resource_id == "i-2")
    assert (failed_view.state, failed_view.error_code, failed_view.error) == (
        ResourceState.FAILED,
        "LAUNCH_FAILED",
        "launch failed: no capacity",
    )
    wave = running.repo.get_wave(OP, 1)
    assert wave is not None and wave.failed_resources == frozenset({"i-2"})
    assert running.publisher.of(OperationFailed) == []

    # When retried, the old failure delivered again is not counted; the new result is
    running.clock.tick(600)
    running.coordinator.on_resume_requested(resume(ResumeMode.RETRY_FAILED))
    item = running.repo.get_resource(OP, "i-2")
    assert item is not None and (item.state, item.attempt, item.error) == (
        ResourceState.RECOVERING,
        2,
        None,
    )
    running.coordinator.on_resource_recovery_failed(failed(OP, "i-2", 1))
    assert running.repo.get_wave(OP, 1).failed == 0  # type: ignore[union-attr]
    later = recovered(OP, "i-2", 1).model_copy(
        update={"completed_at": running.clock.now + timedelta(minutes=1)}
    )
    running.coordinator.on_resource_recovered(later)
    view = read_operation(table, OP)
    assert view is not None and view.state == OperationState.COMPLETED
    assert [w.recovered for w in view.waves] == [2]


def test_given_an_active_operation_on_dynamodb_when_another_is_requested_then_it_is_rejected(
    running: Running, table: Any
):
    running.coordinator.on_operation_requested(request("op-000001"))
    running.coordinator.on_operation_requested(request("op-000002"))
    second = read_operation(table, "op-000002")
    assert second is not None
    assert (second.state, second.error_code) == (
        OperationState.FAILED,
        ErrorCode.OPERATION_IN_PROGRESS,
    )
    assert second.reason is not None and "op-000001" in second.reason
    first = read_operation(table, "op-000001")
    assert first is not None and first.state == OperationState.DISCOVERING
    lock = table.get_item(Key={"pk": f"LOCK#{CUSTOMER}#{ENVIRONMENT}", "sk": "LOCK"})["Item"]
    assert lock["operation_id"] == "op-000001"


# --- the transaction ---------------------------------------------------------------------------


def test_given_a_recovering_resource_when_its_result_is_recorded_twice_then_counted_once(
    repo: DynamoRepository,
):
    seed_wave(repo)
    assert repo.record_result(result("i-1", 1)) == ResultOutcome.APPLIED
    assert repo.record_result(result("i-1", 1)) == ResultOutcome.DUPLICATE
    assert repo.record_result(result("i-1", 1, recovered=False)) == ResultOutcome.DUPLICATE
    # the wave's last result: it may complete the wave
    assert repo.record_result(result("i-2", 1, recovered=False)) == ResultOutcome.COMPLETING
    wave = repo.get_wave(OP, 1)
    assert wave is not None
    assert (wave.recovered, wave.failed, wave.failed_resources) == (1, 1, frozenset({"i-2"}))
    item = repo.get_resource(OP, "i-1")
    assert item is not None
    assert (item.state, item.dr_resource_id, item.started_at) == (
        ResourceState.RECOVERED,
        "dr-i-1",
        T0,
    )


def test_given_a_result_for_the_wrong_wave_or_an_idle_wave_then_nothing_moves(
    repo: DynamoRepository,
):
    seed_wave(repo, WaveState.PENDING)
    # wave not RECOVERING: the resource must not move either (one transaction)
    assert repo.record_result(result("i-1", 1)) == ResultOutcome.REJECTED
    item = repo.get_resource(OP, "i-1")
    assert item is not None and item.state == ResourceState.PENDING
    # a wave number that is not the resource's
    repo.update_wave(OP, 1, [WaveState.PENDING], {"state": WaveState.RECOVERING})
    assert repo.record_result(result("i-1", 2)) == ResultOutcome.REJECTED
    other_strategy = replace(result("i-1", 1), strategy=Strategy.SQL_AG)
    assert repo.record_result(other_strategy) == ResultOutcome.REJECTED
    wave = repo.get_wave(OP, 1)
    assert wave is not None and wave.counted == 0


def test_given_an_unknown_resource_when_its_result_arrives_then_no_item_is_created(
    repo: DynamoRepository, table: Any
):
    assert repo.record_result(result("i-ghost", 1)) == ResultOutcome.UNKNOWN
    assert table.scan()["Items"] == []


def test_given_concurrent_results_when_the_transaction_conflicts_then_it_is_retried(
    repo: DynamoRepository, monkeypatch: pytest.MonkeyPatch
):
    seed_wave(repo)
    real = repo._client.transact_write_items
    calls = {"n": 0}

    def conflicting(**kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ClientError(
                {
                    "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                    "CancellationReasons": [{"Code": "None"}, {"Code": "TransactionConflict"}],
                },
                "TransactWriteItems",
            )
        return real(**kwargs)

    monkeypatch.setattr(repo._client, "transact_write_items", conflicting)
    assert repo.record_result(result("i-1", 1)) == ResultOutcome.APPLIED
    assert calls["n"] == 2
    wave = repo.get_wave(OP, 1)
    assert wave is not None and wave.recovered == 1


# --- conditions and the lock -------------------------------------------------------------------


def test_given_an_operation_item_when_written_again_or_from_the_wrong_state_then_refused(
    repo: DynamoRepository, table: Any
):
    record = record_from_request(
        request(wave_filter=[3, 1], region_map={"us-east-1": "us-east-2"}, ticket="CHG-1"),
        OperationState.DISCOVERING,
        T0,
    )
    assert repo.create_operation(record)
    assert not repo.create_operation(replace(record, state=OperationState.FAILED))
    assert repo.get_operation(OP) == record
    assert not repo.update_operation(OP, [OperationState.RUNNING], {"current_wave": 2})
    assert repo.update_operation(
        OP,
        [OperationState.DISCOVERING],
        {"state": OperationState.PLANNED, "announced": None, "wave_count": 2},
    )
    stored = repo.get_operation(OP)
    assert stored is not None
    assert (stored.state, stored.wave_count, stored.wave_filter, stored.ticket) == (
        OperationState.PLANNED,
        2,
        (1, 3),
        "CHG-1",
    )
    item = table.get_item(Key={"pk": f"OP#{OP}", "sk": "META"})["Item"]
    assert item["scope"] == f"{CUSTOMER}#{ENVIRONMENT}"
    assert item["created_at"] == "2025-03-01T12:00:00.000Z"
    assert not repo.update_operation("op-nothere", [OperationState.PLANNED], {"current_wave": 1})


def test_given_a_lock_when_others_try_then_only_its_holder_reenters_or_releases(
    repo: DynamoRepository,
):
    mine = LockRecord(CUSTOMER, ENVIRONMENT, "op-000001", OperationType.FAILOVER, T0)
    theirs = LockRecord(CUSTOMER, ENVIRONMENT, "op-000002", OperationType.BUBBLE_TEST, T0)
    assert repo.acquire_lock(mine) == mine
    assert repo.acquire_lock(mine) == mine  # redelivery is idempotent
    assert repo.acquire_lock(theirs) == mine  # held: the holder is reported
    assert not repo.release_lock(CUSTOMER, ENVIRONMENT, "op-000002")
    assert repo.release_lock(CUSTOMER, ENVIRONMENT, "op-000001")
    assert not repo.release_lock(CUSTOMER, ENVIRONMENT, "op-000001")
    assert repo.acquire_lock(theirs) == theirs
    other_env = replace(mine, environment="staging")
    assert repo.acquire_lock(other_env) == other_env


def test_given_absent_only_writes_when_items_exist_then_they_are_kept(repo: DynamoRepository):
    seed_wave(repo)
    repo.record_result(result("i-1", 1))
    repo.put_plan_items(
        OP,
        [WaveRecord(number=1, state=WaveState.PENDING, expected=2, updated_at=T0)],
        [resource_record(resource("i-1", 1), 1)],
        overwrite=False,
    )
    wave = repo.get_wave(OP, 1)
    item = repo.get_resource(OP, "i-1")
    assert wave is not None and (wave.state, wave.recovered) == (WaveState.RECOVERING, 1)
    assert item is not None and item.state == ResourceState.RECOVERED
    repo.start_resources(OP, ["i-1", "i-2"], T0)
    states = {r.resource_id: r.state for r in repo.list_resources(OP)}
    assert states == {"i-1": ResourceState.RECOVERED, "i-2": ResourceState.RECOVERING}


# --- the Lambda handler ------------------------------------------------------------------------


class LambdaContext:
    function_name = "dr-coordinator"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-2:123456789012:function:dr-coordinator"
    aws_request_id = "req-1"


def sqs_event(*bodies: dict[str, Any]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m-{index}",
                "receiptHandle": "r",
                "body": json.dumps(body),
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-2:123456789012:dr-coordinator",
                "awsRegion": "us-east-2",
            }
            for index, body in enumerate(bodies)
        ]
    }


def envelope(detail: Detail, source: Source, **extra: Any) -> dict[str, Any]:
    return {
        "id": "evt-1",
        "detail-type": type(detail).DETAIL_TYPE.value,
        "source": source.value,
        "account": "123456789012",
        "region": "us-east-2",
        "resources": [],
        "detail": json.loads(detail.model_dump_json()),
        **extra,
    }


def test_given_sqs_records_when_the_handler_runs_then_requests_are_recorded_and_early_plans_retried(
    table: Any, settings: Settings
):
    boto3.client("events", region_name=settings.orchestration_region).create_event_bus(
        Name=settings.bus_name
    )
    handler._local.__dict__.clear()
    try:
        response = handler.handler(
            sqs_event(
                envelope(request(), Source.CLI),
                envelope(plan_ready("op-000009"), Source.DISCOVERY),  # before its request
                envelope(request("op-000008"), Source.CLI, **{"replay-name": "audit"}),
            ),
            LambdaContext(),
        )
    finally:
        handler._local.__dict__.clear()

    assert response == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    view = read_operation(table, OP)
    assert view is not None and view.state == OperationState.DISCOVERING
    assert read_operation(table, "op-000008") is None  # replays never act
