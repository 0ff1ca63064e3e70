"""Results of one delivery batch counted together: the router hands them over at once, the
coordinator records them in one repository call, reads each wave once, and advances once."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import BaseModel

from drcore.consumer import EventRouter
from events.schemas import (
    DetailType,
    EventEnvelope,
    ResourceRecovered,
    Source,
    WaveCompleted,
    WaveStarted,
)

from .test_coordinator_domain import Harness, failed, recovered


class Check(BaseModel):
    kind: str


def sqs(body: dict[str, Any], message_id: str) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": f"rh-{message_id}",
        "body": json.dumps(body),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-2:123456789012:dr-coordinator",
        "awsRegion": "us-east-2",
    }


def bus_event(detail: ResourceRecovered, **extra: Any) -> dict[str, Any]:
    return {
        "version": "0",
        "id": f"ev-{detail.resource_id}",
        "detail-type": detail.DETAIL_TYPE.value,
        "source": Source.DRS.value,
        "account": "123456789012",
        "time": "2026-11-26T10:00:00Z",
        "region": "us-east-2",
        "resources": [],
        "detail": json.loads(detail.model_dump_json()),
        **extra,
    }


def test_given_a_wave_answered_in_one_batch_then_one_record_call_and_the_next_wave_starts() -> None:
    h = Harness()
    h.start()
    [part] = h.publisher.of(WaveStarted)
    results = [
        recovered(part.operation_id, r.resource_id, part.wave, part.strategy)
        for r in part.resources
    ]

    h.coordinator.on_results(results + results[:1])  # one of them delivered twice

    assert h.repo.result_batches == [len(results) + 1]
    assert [e.wave for e in h.publisher.of(WaveCompleted)] == [1]
    assert h.wave(1).recovered == len(results) and h.wave(1).failed == 0
    assert [e.wave for e in h.publisher.of(WaveStarted)][-1] == 2


def test_given_part_of_a_wave_in_a_batch_then_nothing_advances_yet() -> None:
    h = Harness()
    h.start()
    [part] = h.publisher.of(WaveStarted)
    first, second = part.resources
    published = len(h.publisher.published)

    h.coordinator.on_results([failed(part.operation_id, first.resource_id, 1)])

    assert len(h.publisher.published) == published  # the wave still misses a result
    h.coordinator.on_results([recovered(part.operation_id, second.resource_id, 1)])
    assert h.wave(1).counted == 2 and h.meta().state == "PAUSED"


def test_given_a_batch_then_results_go_together_and_the_rest_one_by_one() -> None:
    router = EventRouter(Logger(service="test")).without_dead_letter()
    together: list[list[str]] = []
    alone: list[str] = []

    @router.on_many(DetailType.RESOURCE_RECOVERED, DetailType.RESOURCE_RECOVERY_FAILED)
    def _results(items: list[tuple[Any, EventEnvelope]]) -> None:
        together.append([detail.resource_id for detail, _ in items])

    @router.on_message("check", Check)
    def _check(message: Check) -> None:
        alone.append("check")

    a = recovered("op-000001", "i-1", 1)
    b = recovered("op-000001", "i-2", 1)
    replayed = bus_event(b, **{"replay-name": "audit-1"})
    response = router.handle_batch(
        {
            "Records": [
                sqs(bus_event(a), "m1"),
                sqs({"kind": "check"}, "m2"),
                sqs(bus_event(b), "m3"),
                sqs(replayed, "m4"),  # refused on the one-by-one path, never counted
            ]
        },
        None,
    )

    assert together == [["i-1", "i-2"]]
    assert alone == ["check"]
    assert response == {"batchItemFailures": []}


def test_given_the_batch_handler_fails_then_every_record_of_it_is_redelivered() -> None:
    router = EventRouter(Logger(service="test")).without_dead_letter()

    @router.on_many(DetailType.RESOURCE_RECOVERED)
    def _results(items: list[tuple[Any, EventEnvelope]]) -> None:
        raise RuntimeError("DynamoDB unavailable")

    response = router.handle_batch(
        {
            "Records": [
                sqs(bus_event(recovered("op-000001", "i-1", 1)), "m1"),
                sqs(bus_event(recovered("op-000001", "i-2", 1)), "m2"),
            ]
        },
        None,
    )

    assert response == {"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m2"}]}
