"""The documented put-events examples are valid requests."""

import json
from pathlib import Path

from events.schemas import MODEL_BY_DETAIL_TYPE, Source
from services.catalog import SERVICES

EXAMPLES = Path(__file__).parents[2] / "examples" / "events"


def test_given_the_failover_example_then_it_is_a_valid_operation_request_routed_to_services() -> (
    None
):
    from moto.events.models import EventPattern

    entries = json.loads((EXAMPLES / "failover.json").read_text())
    assert len(entries) == 1
    entry = entries[0]
    assert entry["Source"] == Source.CLI.value
    model = MODEL_BY_DETAIL_TYPE[entry["DetailType"]]
    detail = model.model_validate_json(entry["Detail"])
    event = {
        "source": entry["Source"],
        "detail-type": entry["DetailType"],
        "detail": json.loads(entry["Detail"]),
    }
    routed = {
        service.name
        for service in SERVICES
        for sub in service.subscriptions
        if EventPattern.load(json.dumps(sub.pattern())).matches_event(event)  # type: ignore[arg-type]
    }
    assert routed == {"discovery", "coordinator", "metrics"}
    assert detail.customer == "acme"
