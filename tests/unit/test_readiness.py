"""Readiness findings from inventory snapshots (pure): each problem found once, nothing else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from drcore import tags as T
from drcore.registry import CustomerEntry, EnvironmentEntry
from events.schemas import PlanSource
from services.discovery.domain import UnknownScope
from services.discovery.inventory import (
    CachedResource,
    ReplicationFacts,
    ScopeSnapshot,
    Severity,
    TwinFacts,
)
from services.discovery.metrics import RecordingSink
from services.readiness.app import select_scopes
from services.readiness.domain import (
    CACHE_MISSING,
    NO_ENVIRONMENT,
    REPLICATING_NOT_TAGGED,
    cache_findings,
    evaluate,
    summarize,
    unattributed,
    wave_gaps,
)
from services.readiness.metrics import metric_sets

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def healthy(name: str, octet: int = 23, wave: int = 1, **changes: Any) -> CachedResource:
    """A server that is ready: tagged, replicating within RPO, with a matching twin."""
    base = CachedResource(
        arn=f"arn:aws:ec2:us-east-1:111111111111:instance/i-{name}",
        resource_id=f"i-{name}",
        account="111111111111",
        region="us-east-1",
        dr_region="us-east-2",
        tags={
            T.ENABLED: "true",
            T.PRIORITY: "high",
            T.WAVE: str(wave),
            T.STRATEGY: "drs",
            T.RTO_TARGET: "60",
            T.RPO_TARGET: "15",
            T.CUSTOMER: "acme",
            T.ENVIRONMENT: "production",
            T.NAME: name,
        },
        private_ip=f"10.1.0.{octet}",
        state="running",
        platform="windows",
        boot_mode="uefi",
        architecture="x86_64",
        twin=TwinFacts(
            instance_id=f"i-twin-{name}",
            private_ip=f"10.101.0.{octet}",
            state="stopped",
            platform="windows",
            boot_mode="uefi",
            architecture="x86_64",
            launch_target=True,
        ),
        twin_candidates=1,
        replication=ReplicationFacts(
            source_server_id=f"s-{name}",
            instance_id=f"i-{name}",
            state="CONTINUOUS",
            lag_seconds=30,
            os="Microsoft Windows Server 2022",
        ),
    )
    return base.model_copy(update=changes)


def snapshot(
    *resources: CachedResource, untagged: list[ReplicationFacts] | None = None
) -> ScopeSnapshot:
    return ScopeSnapshot(
        customer="acme",
        environment="production",
        account="111111111111",
        regions={"us-east-1": "us-east-2"},
        captured_at=NOW,
        source=PlanSource.RESOURCE_EXPLORER,
        resources=list(resources),
        untagged_replicating=untagged or [],
    )


def codes(snap: ScopeSnapshot) -> list[tuple[str, str]]:
    return [(f.code, f.name) for f in evaluate(snap)]


def twin_of(resource: CachedResource, **changes: Any) -> CachedResource:
    assert resource.twin is not None
    return resource.model_copy(update={"twin": resource.twin.model_copy(update=changes)})


def replication_of(resource: CachedResource, **changes: Any) -> CachedResource:
    assert resource.replication is not None
    return resource.model_copy(
        update={"replication": resource.replication.model_copy(update=changes)}
    )


def test_given_a_ready_scope_then_there_is_no_finding() -> None:
    assert evaluate(snapshot(healthy("a"), healthy("b", octet=24, wave=2))) == []


@pytest.mark.parametrize(
    ("broken", "code", "severity"),
    [
        (replication_of(healthy("x"), state="STALLED"), "NOT_REPLICATING", Severity.CRITICAL),
        (healthy("x", replication=None), "NOT_REPLICATING", Severity.CRITICAL),
        (replication_of(healthy("x"), lag_seconds=16 * 60), "LAG_OVER_RPO", Severity.CRITICAL),
        (healthy("x", twin=None, twin_candidates=0), "MISSING_TWIN", Severity.CRITICAL),
        (healthy("x", twin=None, twin_candidates=2), "AMBIGUOUS_TWIN", Severity.CRITICAL),
        (twin_of(healthy("x"), launch_target=False), "TWIN_NOT_LAUNCH_TARGET", Severity.CRITICAL),
        (twin_of(healthy("x"), private_ip="10.101.0.99"), "TWIN_IP_MISMATCH", Severity.CRITICAL),
        (twin_of(healthy("x"), platform="linux"), "TWIN_OS_MISMATCH", Severity.CRITICAL),
        (replication_of(healthy("x"), os="Ubuntu 22.04"), "TWIN_OS_MISMATCH", Severity.CRITICAL),
        (
            twin_of(healthy("x"), boot_mode="legacy-bios"),
            "TWIN_BOOT_MODE_MISMATCH",
            Severity.CRITICAL,
        ),
        (
            twin_of(healthy("x"), architecture="arm64"),
            "TWIN_ARCHITECTURE_MISMATCH",
            Severity.CRITICAL,
        ),
        (twin_of(healthy("x"), private_ip=None), "PRIMARY_IP_UNKNOWN", Severity.WARNING),
    ],
)
def test_given_one_problem_then_exactly_that_finding(
    broken: CachedResource, code: str, severity: Severity
) -> None:
    # Given a ready server and one with a single problem, when evaluated
    findings = evaluate(snapshot(healthy("ok", octet=10), broken))

    # Then the one finding names the broken server
    assert [(f.code, f.severity, f.name) for f in findings] == [(code, severity, "x")]


def test_given_lag_within_rpo_or_uefi_preferred_twin_then_no_finding() -> None:
    within = replication_of(healthy("a"), lag_seconds=15 * 60)
    flexible = twin_of(healthy("b", octet=24), boot_mode="uefi-preferred")
    legacy_primary = healthy("c", octet=25, boot_mode="legacy-bios")
    legacy_both = twin_of(legacy_primary, boot_mode="legacy-bios")

    assert evaluate(snapshot(within, flexible, legacy_both)) == []


def test_given_bad_dr_tags_then_every_tag_problem_is_critical() -> None:
    tags = dict(healthy("x").tags)
    tags[T.PRIORITY] = "urgent"
    del tags[T.RPO_TARGET]

    findings = evaluate(snapshot(healthy("x", tags=tags)))

    assert sorted((f.code, f.severity) for f in findings) == [
        ("INVALID_TAG", Severity.CRITICAL),
        ("MISSING_TAG", Severity.CRITICAL),
    ]


def test_given_no_name_tag_then_missing_name_and_no_twin_findings() -> None:
    tags = {k: v for k, v in healthy("x").tags.items() if k != T.NAME}

    findings = evaluate(snapshot(healthy("x", tags=tags, twin=None, twin_candidates=0)))

    assert [f.code for f in findings] == ["MISSING_NAME"]


def test_given_waves_1_2_and_4_then_a_wave_gap_is_reported_once() -> None:
    snap = snapshot(healthy("a", wave=1), healthy("b", 24, wave=2), healthy("c", 25, wave=4))

    findings = evaluate(snap)

    assert [(f.code, f.resource_id) for f in findings] == [("WAVE_GAP", "*")]
    assert "skip 3" in findings[0].message
    assert wave_gaps([2, 5]) == [1, 3, 4] and wave_gaps([]) == []


def test_given_replicated_servers_without_dr_tags_then_warnings_per_server() -> None:
    untagged = ReplicationFacts(
        source_server_id="s-tmp",
        instance_id="i-tmp",
        state="CONTINUOUS",
        name="tmp-01",
        tags={T.ENABLED: "false"},
    )

    scoped = evaluate(snapshot(healthy("a"), untagged=[untagged]))
    loose = unattributed("acme", [untagged])

    assert [(f.code, f.severity, f.name) for f in scoped] == [
        (REPLICATING_NOT_TAGGED, Severity.WARNING, "tmp-01")
    ]
    assert [(f.code, f.environment) for f in loose] == [(REPLICATING_NOT_TAGGED, NO_ENVIRONMENT)]


@pytest.mark.parametrize(
    ("captured", "expected"),
    [
        (None, [("CACHE_MISSING", Severity.CRITICAL)]),
        (NOW - timedelta(minutes=10), []),
        (NOW - timedelta(minutes=25), [("CACHE_AGE_WARNING", Severity.WARNING)]),
        (NOW - timedelta(minutes=31), [("CACHE_AGE_CRITICAL", Severity.CRITICAL)]),
    ],
)
def test_the_cache_of_a_scope_is_part_of_its_readiness(
    captured: datetime | None, expected: list[tuple[str, Severity]]
) -> None:
    findings = cache_findings("acme", "production", captured, NOW, 20 * 60, 30 * 60)

    assert [(f.code, f.severity) for f in findings] == expected


def test_given_findings_then_metrics_per_scope_and_per_code() -> None:
    snap = snapshot(healthy("a"), twin_of(healthy("b", 24), launch_target=False))
    findings = evaluate(snap) + cache_findings("acme", "production", None, NOW, 1200, 1800)
    sink = RecordingSink()

    sink.emit(metric_sets([summarize(snap, findings)], findings))

    scope = {"Customer": "acme", "Environment": "production"}
    assert sink.value("ReadinessCriticalFindings", **scope) == 2
    assert sink.value("ReadinessWarningFindings", **scope) == 0
    assert sink.value("ReadinessResources", **scope) == 2
    assert sink.value("ReadinessFindings", **scope, Code=CACHE_MISSING) == 1
    assert sink.value("ReadinessFindings", **scope, Code="TWIN_NOT_LAUNCH_TARGET") == 1


def test_scopes_are_chosen_by_customer_and_environment_and_bad_names_are_refused() -> None:
    entries = [
        CustomerEntry(
            name=name,
            account="111111111111",
            regions={"us-east-1": "us-east-2"},
            environments=[EnvironmentEntry(name=e) for e in envs],
            external_id="x-" + name,
        )
        for name, envs in (("acme", ["production", "staging"]), ("globex", ["production"]))
    ]

    assert [(e.name, n) for e, n in select_scopes(entries, None, "production")] == [
        ("acme", ["production"]),
        ("globex", ["production"]),
    ]
    assert [(e.name, n) for e, n in select_scopes(entries, "acme", None)] == [
        ("acme", ["production", "staging"])
    ]
    with pytest.raises(UnknownScope, match="'initech'"):
        select_scopes(entries, "initech", None)
    with pytest.raises(UnknownScope, match=r"'qa'.*production, staging"):
        select_scopes(entries, "acme", "qa")
