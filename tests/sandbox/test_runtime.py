"""The local runtime runs a handler on its queue as Lambda does: batches, partial failures,
redelivery, the dead-letter queue, schedules, and rules built from the declarations."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from drcore.settings import Settings
from drcore.subscriptions import Schedule, ServiceSpec, Subscription
from events.schemas import DetailType, Source
from sandbox.endpoint import SandboxEndpoint
from sandbox.runtime import Runtime, build_orchestration

from . import recording_service

pytestmark = pytest.mark.sandbox

SPEC = ServiceSpec(
    name="recorder",
    handler="tests.sandbox.recording_service:handler",
    subscriptions=(
        Subscription(
            name="plans",
            sources=(Source.DISCOVERY,),
            detail_types=(DetailType.PLAN_READY,),
        ),
    ),
    visibility_timeout=1,
    max_receive_count=2,
    schedules=(Schedule(name="tick", rate_seconds=1, message={"kind": "tick"}),),
)


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[str, Runtime, Any]]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        yield from _running()


def _running() -> Iterator[tuple[str, Runtime, Any]]:
    endpoint = SandboxEndpoint()
    url = endpoint.start(port=0)
    settings = Settings()
    deployed = build_orchestration(url, settings, [SPEC])
    runtime = Runtime(url, settings, [SPEC], deployed, workers_per_service=1)
    runtime.start()
    try:
        yield url, runtime, deployed
    finally:
        runtime.stop()
        endpoint.stop()


def _wait_for(predicate: Any, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _put(url: str, detail: dict[str, Any], detail_type: str = "PlanReady") -> None:
    events = boto3.client("events", endpoint_url=url, region_name="us-east-2")
    events.put_events(
        Entries=[
            {
                "Source": Source.DISCOVERY.value,
                "DetailType": detail_type,
                "Detail": json.dumps(detail),
                "EventBusName": Settings().bus_name,
            }
        ]
    )


def test_given_a_matching_event_then_the_handler_gets_it_with_a_lambda_like_context(
    running: tuple[str, Runtime, Any],
) -> None:
    url, _, _ = running
    _put(url, {"marker": "hello"})
    assert _wait_for(
        lambda: any(b.get("detail", {}).get("marker") == "hello" for b in recording_service.SEEN)
    )
    context = recording_service.CONTEXTS[-1]
    assert context.function_name == "dr-recorder" and context.get_remaining_time_in_millis() > 0


def test_given_a_non_matching_event_then_the_handler_never_sees_it(
    running: tuple[str, Runtime, Any],
) -> None:
    url, _, _ = running
    _put(url, {"marker": "not-for-me"}, detail_type="DiscoveryFailed")
    _put(url, {"marker": "after"})
    assert _wait_for(
        lambda: any(b.get("detail", {}).get("marker") == "after" for b in recording_service.SEEN)
    )
    assert not any(
        b.get("detail", {}).get("marker") == "not-for-me" for b in recording_service.SEEN
    )


def test_given_a_failing_record_then_it_is_redelivered_then_dead_lettered(
    running: tuple[str, Runtime, Any],
) -> None:
    url, runtime, deployed = running
    sqs = boto3.client("sqs", endpoint_url=url, region_name="us-east-2")
    sqs.send_message(
        QueueUrl=deployed.queue_urls["recorder"],
        MessageBody=json.dumps({"fail": True, "id": "poison"}),
    )

    def deliveries() -> int:
        return sum(b.get("id") == "poison" for b in recording_service.SEEN)

    def in_dlq() -> bool:
        attrs = sqs.get_queue_attributes(
            QueueUrl=deployed.dlq_urls["recorder"], AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) == 1

    # max_receive_count=2: delivered twice, then moved to the dead-letter queue
    assert _wait_for(in_dlq, timeout=20)
    assert deliveries() == 2
    assert runtime.stats["recorder"].failed_records >= 2


def test_given_a_schedule_then_its_message_arrives_on_the_queue_repeatedly(
    running: tuple[str, Runtime, Any],
) -> None:
    assert _wait_for(lambda: sum(b.get("kind") == "tick" for b in recording_service.SEEN) >= 2)
