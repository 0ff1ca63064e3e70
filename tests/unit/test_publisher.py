"""EventPublisher: ≤10 entries per call, size limits, only failed entries resent."""

from __future__ import annotations

from typing import Any

import pytest

from drcore.publisher import (
    MAX_ENTRIES_PER_CALL,
    EventPublisher,
    EventTooLarge,
    Outgoing,
    PublishFailed,
)
from events.schemas import (
    OperationFailed,
    OperationType,
    ResourceRef,
    Source,
    Strategy,
    WaveStarted,
)

COMMON: dict[str, Any] = dict(
    operation_id="op-test-000001",
    customer="acme",
    environment="production",
    operation=OperationType.FAILOVER,
)


def failed(n: int) -> OperationFailed:
    return OperationFailed(**COMMON, code="TEST", reason=f"reason {n}")


class FakeEvents:
    """put_events that fails chosen entries on chosen calls."""

    def __init__(self, fail_plan: list[set[int]] | None = None) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self._fail_plan = fail_plan or []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        assert 1 <= len(Entries) <= MAX_ENTRIES_PER_CALL
        call = len(self.calls)
        self.calls.append(Entries)
        failing = self._fail_plan[call] if call < len(self._fail_plan) else set()
        results = [
            {"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}
            if i in failing
            else {"EventId": f"e-{call}-{i}"}
            for i in range(len(Entries))
        ]
        return {"FailedEntryCount": len(failing), "Entries": results}


def test_given_25_events_when_published_then_three_calls_of_at_most_ten() -> None:
    fake = FakeEvents()
    calls = EventPublisher(fake, "bus", sleep=lambda _: None).publish(
        Source.COORDINATOR, [failed(i) for i in range(25)]
    )
    assert calls == 3
    assert [len(c) for c in fake.calls] == [10, 10, 5]
    assert all(
        e["EventBusName"] == "bus" and e["Source"] == "dr.coordinator"
        for c in fake.calls
        for e in c
    )


def test_given_partial_failure_when_published_then_only_failed_entries_are_resent() -> None:
    fake = FakeEvents(fail_plan=[{1, 3}])
    EventPublisher(fake, "bus", sleep=lambda _: None).publish(
        Source.COORDINATOR, [failed(i) for i in range(5)]
    )
    assert len(fake.calls) == 2
    resent = [e["Detail"] for e in fake.calls[1]]
    assert resent == [fake.calls[0][1]["Detail"], fake.calls[0][3]["Detail"]]


def test_given_persistent_failure_then_publish_failed_names_the_error_code() -> None:
    fake = FakeEvents(fail_plan=[{0}] * 10)
    with pytest.raises(PublishFailed, match="ThrottlingException"):
        EventPublisher(fake, "bus", sleep=lambda _: None).publish(Source.COORDINATOR, [failed(0)])


def test_given_an_oversized_event_then_it_is_refused_before_any_call() -> None:
    ref: dict[str, Any] = dict(
        arn="arn:aws:ec2:us-east-1:111111111111:instance/i-1",
        account="111111111111",
        region="us-east-1",
        dr_region="us-east-2",
        rto_target_minutes=15,
        rpo_target_minutes=15,
    )
    resources = [ResourceRef(resource_id=f"i-{n:017x}", name="x" * 200, **ref) for n in range(1200)]
    huge = WaveStarted(
        **COMMON, wave=1, strategy=Strategy.DRS, part=1, part_count=1, resources=resources
    )
    fake = FakeEvents()
    with pytest.raises(EventTooLarge, match="split it or store it"):
        EventPublisher(fake, "bus").publish(Source.COORDINATOR, [huge])
    assert fake.calls == []


def test_given_a_source_not_allowed_for_the_event_then_it_is_refused() -> None:
    with pytest.raises(ValueError, match=r"may not be published by dr\.drs"):
        EventPublisher(FakeEvents(), "bus").publish_many([Outgoing(Source.DRS, failed(0))])
