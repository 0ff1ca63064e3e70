"""The report rebuilt from events: later results win, duplicates change nothing, and the audit
comparison names every difference."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from drcore.report import audit_differences, parse_events, report_from_events

GOLDEN = Path(__file__).parents[2] / "events" / "schemas" / "golden"
OP = "op-20261126-acme-0001"


def event(name: str, **changes: Any) -> dict[str, Any]:
    body = json.loads((GOLDEN / f"{name}.v1.json").read_text())
    body["detail"] = body["detail"] | changes
    return body


def stream() -> list[dict[str, Any]]:
    return [
        event("OperationRequested"),
        event("PlanReady"),
        event("WaveStarted", occurred_at="2026-11-26T10:01:00Z"),
        event(
            "ResourceRecoveryFailed",
            occurred_at="2026-11-26T10:04:00Z",
        ),
        # a retry recovered it later, and its result was delivered twice
        event("ResourceRecovered", occurred_at="2026-11-26T10:06:00Z"),
        event("ResourceRecovered", occurred_at="2026-11-26T10:06:00Z"),
        event(
            "WaveCompleted",
            recovered=1,
            failed=0,
            occurred_at="2026-11-26T10:06:01Z",
            started_at="2026-11-26T10:01:00Z",
            completed_at="2026-11-26T10:06:00Z",
        ),
        event(
            "OperationCompleted",
            waves=1,
            recovered=1,
            occurred_at="2026-11-26T10:06:02Z",
            started_at="2026-11-26T10:00:05Z",
            completed_at="2026-11-26T10:06:01Z",
        ),
        event("OperationFailed", operation_id="op-someone-else-01"),
    ]


def test_given_retries_and_duplicates_then_the_last_result_is_the_outcome() -> None:
    report = report_from_events(parse_events(stream(), OP))
    assert report.state == "COMPLETED"
    [resource] = report.resources
    assert resource.state == "RECOVERED" and resource.dr_resource_id == "i-0f9e8d7c6b5a40312"
    [wave] = report.waves
    assert (wave.expected, wave.recovered, wave.failed, wave.state) == (1, 1, 0, "COMPLETED")
    assert report.requested_by == "alice@example.com" and report.ticket == "CHG-1042"
    assert report.achieved_seconds(wave) == 360.0 and report.rto_met(wave) is True


def test_given_the_same_events_then_no_difference_and_a_change_is_named() -> None:
    report = report_from_events(parse_events(stream(), OP))
    assert audit_differences(report, report) == []
    tampered_resource = report.resources[0].model_copy(update={"dr_private_ip": "10.9.9.9"})
    tampered_wave = report.waves[0].model_copy(
        update={"completed_at": report.waves[0].completed_at + timedelta(minutes=1)}  # type: ignore[operator]
    )
    tampered = report.model_copy(
        update={"resources": [tampered_resource], "waves": [tampered_wave], "state": "FAILED"}
    )
    differences = audit_differences(tampered, report)
    assert any("operation.state" in d for d in differences)
    assert any("dr_private_ip" in d and "10.9.9.9" in d for d in differences)
    assert any("wave 1.completed_at" in d for d in differences)
