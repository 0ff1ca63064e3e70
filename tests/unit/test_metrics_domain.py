"""Events become metrics with per-tenant dimensions; EMF lines become CloudWatch data."""

from __future__ import annotations

import json
from pathlib import Path

from events.schemas import MODEL_BY_DETAIL_TYPE
from sandbox.emf import parse_emf
from services.metrics.domain import metrics_for

GOLDEN = Path(__file__).parents[2] / "events" / "schemas" / "golden"


def detail(name: str) -> object:
    event = json.loads((GOLDEN / f"{name}.v1.json").read_text())
    return MODEL_BY_DETAIL_TYPE[name].model_validate(event["detail"])


def test_given_a_completed_wave_then_duration_and_rto_target_with_tenant_dimensions() -> None:
    points = {p.name: p for p in metrics_for(detail("WaveCompleted"))}  # type: ignore[arg-type]
    assert points["WaveDurationSeconds"].value == 510.0
    assert points["WaveRtoTargetSeconds"].value == 900.0
    assert points["WaveOverRtoTarget"].value == 0.0
    assert dict(points["WavesCompleted"].dimensions) == {
        "Customer": "acme",
        "Environment": "production",
        "Operation": "failover",
    }


def test_given_results_then_counts_and_recovery_time() -> None:
    recovered = {p.name: p.value for p in metrics_for(detail("ResourceRecovered"))}  # type: ignore[arg-type]
    assert recovered == {"ResourcesRecovered": 1.0, "ResourceRecoverySeconds": 278.0}
    failed = [p.name for p in metrics_for(detail("ResourceRecoveryFailed"))]  # type: ignore[arg-type]
    assert failed == ["ResourcesFailed"]


def test_given_an_event_with_nothing_to_measure_then_no_metric() -> None:
    assert metrics_for(detail("WaveStarted")) == []  # type: ignore[arg-type]


def test_given_an_emf_line_then_one_datum_per_metric_and_dimension_set() -> None:
    line = json.dumps(
        {
            "_aws": {
                "Timestamp": 1795653622565,
                "CloudWatchMetrics": [
                    {
                        "Namespace": "DrOrchestrator",
                        "Dimensions": [["Customer", "Environment"]],
                        "Metrics": [{"Name": "ResourcesRecovered", "Unit": "Count"}],
                    }
                ],
            },
            "Customer": "acme",
            "Environment": "production",
            "ResourcesRecovered": [4.0, 1.0],
        }
    )
    [(namespace, datum)] = parse_emf(line)
    assert namespace == "DrOrchestrator"
    assert datum["MetricName"] == "ResourcesRecovered" and datum["Values"] == [4.0, 1.0]
    assert datum["Dimensions"] == [
        {"Name": "Customer", "Value": "acme"},
        {"Name": "Environment", "Value": "production"},
    ]
    assert parse_emf('{"level": "INFO", "message": "a log line"}') == []
    assert parse_emf("not json") == []
