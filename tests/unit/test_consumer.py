"""EventRouter: typed dispatch, replay refusal, malformed records failed alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import BaseModel

from drcore.consumer import EventRouter
from events.schemas import DetailType, PlanReady

GOLDEN = Path(__file__).parents[2] / "events" / "schemas" / "golden"


def record(body: Any, message_id: str) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": f"rh-{message_id}",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-2:123456789012:dr-test",
        "awsRegion": "us-east-2",
    }


class Check(BaseModel):
    kind: str
    job_id: str


def build(dead_letters: list[tuple[str, str]] | None = None) -> tuple[EventRouter, list[Any]]:
    seen: list[Any] = []
    if dead_letters is None:
        router = EventRouter(Logger(service="test")).without_dead_letter()
    else:

        def dead_letter(rec: Any, reason: str) -> bool:
            dead_letters.append((rec.message_id, reason))
            return True

        router = EventRouter(Logger(service="test"), dead_letter=dead_letter)

    @router.on(DetailType.PLAN_READY)
    def _plan(detail: PlanReady, envelope: Any) -> None:
        seen.append(detail)

    @router.on_message("check", Check)
    def _check(message: Check) -> None:
        seen.append(message)

    return router, seen


def test_given_a_mixed_batch_then_good_records_are_handled_and_only_bad_ones_fail() -> None:
    router, seen = build()
    plan_ready = json.loads((GOLDEN / "PlanReady.v1.json").read_text())
    broken = plan_ready | {"detail": plan_ready["detail"] | {"wave_count": "many"}}
    unknown = plan_ready | {"detail-type": "SomethingElse"}
    batch = {
        "Records": [
            record(plan_ready, "ok-1"),
            record("{not json", "bad-json"),
            record(broken, "bad-detail"),
            record(unknown, "bad-type"),
            record({"kind": "check", "job_id": "drsjob-1"}, "ok-2"),
            record({"hello": "world"}, "bad-shape"),
        ]
    }
    response = router.handle_batch(batch, None)
    failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    assert failed == {"bad-json", "bad-detail", "bad-type", "bad-shape"}
    assert [type(s).__name__ for s in seen] == ["PlanReady", "Check"]


def test_given_a_replayed_event_then_no_handler_runs_and_the_record_is_consumed() -> None:
    router, seen = build()
    replayed = json.loads((GOLDEN / "PlanReady.v1.json").read_text()) | {"replay-name": "audit-1"}
    response = router.handle_batch({"Records": [record(replayed, "r-1")]}, None)
    assert response["batchItemFailures"] == []
    assert seen == []


def test_given_a_malformed_record_and_a_dead_letter_queue_then_it_goes_there_with_its_reason() -> (
    None
):
    dead: list[tuple[str, str]] = []
    router, seen = build(dead)
    plan_ready = json.loads((GOLDEN / "PlanReady.v1.json").read_text())
    broken = plan_ready | {"detail": plan_ready["detail"] | {"wave_count": "many"}}
    response = router.handle_batch({"Records": [record(broken, "bad-detail")]}, None)
    assert response["batchItemFailures"] == []
    assert dead == [("bad-detail", dead[0][1])]
    assert "wave_count" in dead[0][1] and "'many'" in dead[0][1]
    assert seen == []


def test_given_a_native_event_then_its_origin_comes_from_the_resource_arn() -> None:
    from events.schemas import EventEnvelope

    native = json.loads((GOLDEN / "native" / "drs-source-server-launch-result.json").read_text())
    assert EventEnvelope.model_validate(native).origin() == ("111111111111", "us-east-2")
    stripped = {k: v for k, v in native.items() if k not in ("account", "region")}
    assert EventEnvelope.model_validate(stripped).origin() == ("111111111111", "us-east-2")
    forwarded = native | {"account": "123456789012"}  # rewritten by the receiving bus
    assert EventEnvelope.model_validate(forwarded).origin() == ("111111111111", "us-east-2")
