"""Every subscription pattern matches exactly the golden events it should, and never a replay.

Patterns are evaluated with moto's EventBridge pattern matcher, the one the sandbox uses.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from moto.events.models import EventPattern

from drcore.subscriptions import ServiceSpec, Subscription
from events.schemas import RESULT_SOURCES, DetailType, Strategy
from services.catalog import SERVICES

GOLDEN_DIR = Path(__file__).parents[2] / "events" / "schemas" / "golden"


def _goldens() -> dict[str, dict[str, Any]]:
    events = {
        p.name.split(".v")[0]: json.loads(p.read_text()) for p in GOLDEN_DIR.glob("*.v1.json")
    }
    events["native:drs-launch-result"] = json.loads(
        (GOLDEN_DIR / "native" / "drs-source-server-launch-result.json").read_text()
    )
    events["native:ssm-automation-status"] = json.loads(
        (GOLDEN_DIR / "native" / "ssm-automation-execution-status-change.json").read_text()
    )
    running = copy.deepcopy(events["native:ssm-automation-status"])
    running["detail"]["Status"] = "InProgress"  # not an end: the coordinator ignores it
    events["native:ssm-automation-in-progress"] = running
    # Variants that must be told apart by detail conditions or by source.
    eks_wave = copy.deepcopy(events[DetailType.WAVE_STARTED.value])
    eks_wave["detail"]["strategy"] = Strategy.EKS_DNS.value
    events["WaveStarted:eks-dns"] = eks_wave
    eks_check = copy.deepcopy(events[DetailType.RESOURCE_CHECK_REQUESTED.value])
    eks_check["detail"]["strategy"] = Strategy.EKS_DNS.value  # another service's re-check
    events["ResourceCheckRequested:eks-dns"] = eks_check
    eks_check = copy.deepcopy(events[DetailType.RESOURCE_CHECK_REQUESTED.value])
    eks_check["detail"]["strategy"] = Strategy.EKS_DNS.value
    events["ResourceCheckRequested:eks-dns"] = eks_check
    for kind in (DetailType.WAVE_STARTED, DetailType.RESOURCE_CHECK_REQUESTED):
        managed = copy.deepcopy(events[kind.value])
        managed["detail"]["strategy"] = Strategy.MANAGED_SERVICE.value
        events[f"{kind.value}:managed-service"] = managed
        sqlag = copy.deepcopy(events[kind.value])
        sqlag["detail"]["strategy"] = Strategy.SQL_AG.value
        events[f"{kind.value}:sql-ag"] = sqlag
    for source in RESULT_SOURCES[1:]:
        for kind in (DetailType.RESOURCE_RECOVERED, DetailType.RESOURCE_RECOVERY_FAILED):
            variant = copy.deepcopy(events[kind.value])
            variant["source"] = source.value
            events[f"{kind.value}:{source.value}"] = variant
    forged = copy.deepcopy(events[DetailType.OPERATION_REQUESTED.value])
    forged["source"] = "dr.drs"  # only dr.cli may request operations
    events["OperationRequested:forged-source"] = forged
    forced = copy.deepcopy(events[DetailType.OPERATION_REQUESTED.value])
    forced["detail"]["allow_data_loss"] = True  # a request changing a drs default (--force)
    events["OperationRequested:forced"] = forced
    kept = copy.deepcopy(events[DetailType.OPERATION_REQUESTED.value])
    kept["detail"] |= {"operation": "bubble-test", "keep_drill_resources": True}  # --keep
    events["OperationRequested:kept"] = kept
    return events


GOLDEN = _goldens()
RESULTS = {
    f"{kind.value}:{source.value}" if source != RESULT_SOURCES[0] else kind.value
    for kind in (DetailType.RESOURCE_RECOVERED, DetailType.RESOURCE_RECOVERY_FAILED)
    for source in RESULT_SOURCES
}

REQUEST_VARIANTS = ("OperationRequested:forced", "OperationRequested:kept")
# Rule -> the golden events it must match (and nothing else).
EXPECTED: dict[str, set[str]] = {
    "dr-discovery-operation-requested": {"OperationRequested", *REQUEST_VARIANTS},
    "dr-coordinator-operation-requested": {"OperationRequested", *REQUEST_VARIANTS},
    "dr-coordinator-discovery-results": {"PlanReady", "DiscoveryFailed"},
    "dr-coordinator-resource-results": RESULTS,
    "dr-coordinator-operation-controls": {"OperationCancelRequested", "OperationResumeRequested"},
    "dr-coordinator-approvals": {"ApprovalGranted", "ApprovalRejected"},
    "dr-coordinator-hook-status": {"native:ssm-automation-status"},
    "dr-drs-wave-started": {"WaveStarted"},
    "dr-drs-launch-results": {"native:drs-launch-result"},
    "dr-drs-resource-checks": {"ResourceCheckRequested"},
    # Only requests that change a drs default (--force, --keep, --no-reprotect).
    "dr-drs-operation-requested": set(REQUEST_VARIANTS),
    "dr-drs-operation-lifecycle": {
        "OperationCompleted",
        "OperationFailed",
        "OperationCancelled",
        "RegionalOperationStarted",
    },
    "dr-drs-drill-cleanup": {"DrillCleanupRequested"},
    "dr-eks-wave-started": {"WaveStarted:eks-dns"},
    "dr-eks-resource-check": {"ResourceCheckRequested:eks-dns"},
    "dr-managed-wave-started": {"WaveStarted:managed-service"},
    "dr-managed-resource-checks": {"ResourceCheckRequested:managed-service"},
    "dr-sqlag-wave-started": {"WaveStarted:sql-ag"},
    "dr-sqlag-resource-check": {"ResourceCheckRequested:sql-ag"},
    # Servers drs recovered (failover or failback): their DNS records follow them.
    "dr-managed-drs-recovered": {"ResourceRecovered"},
    # Every orchestration event, whatever its source, and no AWS-native one.
    "dr-metrics-orchestration-events": {name for name in GOLDEN if not name.startswith("native:")},
}

RULES: list[tuple[ServiceSpec, Subscription]] = [
    (service, sub) for service in SERVICES for sub in service.subscriptions
]


def _matches(sub: Subscription, event: dict[str, Any]) -> bool:
    return EventPattern.load(json.dumps(sub.pattern())).matches_event(event)  # type: ignore[arg-type]


def test_every_declared_rule_has_an_expectation() -> None:
    assert {service.rule_name(sub) for service, sub in RULES} == set(EXPECTED)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r[0].rule_name(r[1]))
def test_given_the_golden_events_then_the_rule_matches_exactly_its_own(
    rule: tuple[ServiceSpec, Subscription],
) -> None:
    service, sub = rule
    matched = {name for name, event in GOLDEN.items() if _matches(sub, event)}
    assert matched == EXPECTED[service.rule_name(sub)]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r[0].rule_name(r[1]))
def test_given_a_replayed_event_then_no_rule_matches_it(
    rule: tuple[ServiceSpec, Subscription],
) -> None:
    _, sub = rule
    for name, event in GOLDEN.items():
        replayed = event | {"replay-name": "audit-replay-1"}
        assert not _matches(sub, replayed), f"{name} matched while replayed"


def test_patterns_fit_eventbridge_limits() -> None:
    for service, sub in RULES:
        assert len(json.dumps(sub.pattern())) <= 2048, service.rule_name(sub)
