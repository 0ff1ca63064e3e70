"""The sqlag service around the domain: one result published per resource, a repeated task
publishes the stored result again, work in flight is left alone, a crash fails the record."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
)

from events.schemas import (
    Detail,
    OperationType,
    ResourceRecovered,
    ResourceRef,
    Strategy,
    WaveStarted,
)
from events.schemas.models import ResourceCheckRequested
from services.sqlag.app import SqlAgService, tasks_of
from services.sqlag.domain import Task

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def ref(instance_id: str) -> ResourceRef:
    return ResourceRef(
        resource_id=instance_id,
        arn=f"arn:aws:ec2:us-east-1:111111111111:instance/{instance_id}",
        name=instance_id,
        account="111111111111",
        region="us-east-1",
        dr_region="us-east-2",
        rto_target_minutes=60,
        rpo_target_minutes=15,
    )


HEADER: dict[str, Any] = {
    "operation_id": "op-acme-000001",
    "customer": "acme",
    "environment": "prod",
    "operation": OperationType.FAILOVER,
    "occurred_at": NOW,
    "wave": 2,
}


def part(*ids: str) -> WaveStarted:
    return WaveStarted(
        **HEADER,
        strategy=Strategy.SQL_AG,
        part=1,
        part_count=1,
        resources=[ref(i) for i in ids],
    )


def recovered(task: Task) -> dict[str, Any]:
    event = ResourceRecovered(
        **HEADER,
        resource_id=task.resource_id,
        strategy=Strategy.SQL_AG,
        dr_resource_id="i-dr",
        dr_region="us-east-2",
        started_at=NOW,
        completed_at=NOW,
    )
    return {"kind": "recovered", "detail": event.model_dump(mode="json")}


class Published:
    def __init__(self) -> None:
        self.events: list[Detail] = []

    def publish(self, details: Any) -> None:
        self.events += list(details)


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, msg: str, *a: Any, **k: Any) -> None:
        self.lines.append(msg)

    warning = exception = info


def service(run: Any) -> tuple[SqlAgService, Published, Log]:
    published, log = Published(), Log()
    svc = SqlAgService(
        run=run, results=published, log=log, idempotency=IdempotencyConfig(), parallel=4
    )
    return svc, published, log


def test_one_result_per_resource_and_duplicates_in_a_part_count_once() -> None:
    calls: list[str] = []

    def run(task: Task) -> dict[str, Any]:
        calls.append(task.resource_id)
        return recovered(task)

    svc, published, _ = service(run)
    svc.recover_part(part("i-1", "i-2", "i-1"))
    assert sorted(calls) == ["i-1", "i-2"]
    assert sorted(e.resource_id for e in published.events) == ["i-1", "i-2"]  # type: ignore[attr-defined]


def test_a_recheck_publishes_the_stored_result_again_with_the_same_content() -> None:
    stored: dict[str, dict[str, Any]] = {}

    def run(task: Task) -> dict[str, Any]:  # what the idempotency layer does
        return stored.setdefault(task.resource_id, recovered(task))

    svc, published, _ = service(run)
    svc.recover_part(part("i-1"))
    check = ResourceCheckRequested(
        **HEADER,
        strategy=Strategy.SQL_AG,
        part=1,
        part_count=1,
        resources=[ref("i-1")],
        in_flight_since=NOW,
        reason="in flight longer than the resource's RTO target",
    )
    svc.check(check)
    first, again = published.events
    assert first == again


def test_work_in_flight_is_left_to_its_worker() -> None:
    def run(task: Task) -> dict[str, Any]:
        raise IdempotencyAlreadyInProgressError("in progress")

    svc, published, log = service(run)
    svc.recover_part(part("i-1"))
    assert published.events == []
    assert "Resource in flight: its worker publishes the result" in log.lines


def test_a_crash_on_one_resource_still_publishes_the_others_and_fails_the_record() -> None:
    def run(task: Task) -> dict[str, Any]:
        if task.resource_id == "i-2":
            raise RuntimeError("boom")
        return recovered(task)

    svc, published, _ = service(run)
    with pytest.raises(RuntimeError, match="boom"):
        svc.recover_part(part("i-1", "i-2"))
    assert [e.resource_id for e in published.events] == ["i-1"]  # type: ignore[attr-defined]


def test_tasks_carry_the_idempotency_key_fields() -> None:
    [task] = tasks_of(part("i-1"))
    assert (task.operation_id, task.resource_id, task.step, task.attempt) == (
        "op-acme-000001",
        "i-1",
        "recover",
        1,
    )
