"""The inventory cache's pure logic: assembling snapshots (scoped, twins, replication), packing,
refresh checks (completeness, consistency), age thresholds and plans made from the cache."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from drcore import tags as T
from drcore.registry import CustomerEntry, EnvironmentEntry
from events.schemas import PlanSource
from services.discovery.domain import DiscoveredResource
from services.discovery.inventory import (
    CACHE_AGE_CRITICAL,
    CACHE_AGE_WARNING,
    COUNT_MISMATCH,
    PLANNED_FROM_CACHE,
    RESOURCE_INCOMPLETE,
    SCOPE_MISSING,
    SCOPE_NOT_REFRESHED,
    SCOPE_REMOVED,
    SUDDEN_DROP,
    InstanceRecord,
    ScopeSnapshot,
    ScopeSummary,
    Severity,
    SourceServerRecord,
    VersionManifest,
    age_severity,
    assemble,
    cache_plan_notes,
    check_refresh,
    chunked,
    pack,
    parse_iso_duration,
    platform_of,
    unpack,
    version_id,
)

ACCOUNT = "111111111111"
OTHER_ACCOUNT = "222222222222"
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
ENTRY = CustomerEntry(
    name="acme",
    account=ACCOUNT,
    regions={"us-east-1": "us-east-2"},
    environments=[EnvironmentEntry(name="production"), EnvironmentEntry(name="staging")],
    external_id="ext-acme",
)


def dr_tags(name: str, environment: str = "production", customer: str = "acme") -> dict[str, str]:
    return {
        T.ENABLED: "true",
        T.PRIORITY: "high",
        T.WAVE: "1",
        T.STRATEGY: "drs",
        T.RTO_TARGET: "60",
        T.RPO_TARGET: "15",
        T.CUSTOMER: customer,
        T.ENVIRONMENT: environment,
        T.NAME: name,
    }


def found(instance_id: str, tags: dict[str, str], account: str = ACCOUNT) -> DiscoveredResource:
    return DiscoveredResource(
        arn=f"arn:aws:ec2:us-east-1:{account}:instance/{instance_id}",
        resource_id=instance_id,
        account=account,
        region="us-east-1",
        tags=tags,
    )


def primary(instance_id: str, ip: str, tags: dict[str, str] | None = None) -> InstanceRecord:
    return InstanceRecord(
        instance_id=instance_id,
        region="us-east-1",
        tags=tags or {},
        private_ip=ip,
        state="running",
        platform="windows",
        boot_mode="uefi",
        architecture="x86_64",
    )


def twin(
    instance_id: str,
    name: str,
    ip: str,
    environment: str = "production",
    customer: str = "acme",
    state: str = "stopped",
) -> InstanceRecord:
    return InstanceRecord(
        instance_id=instance_id,
        region="us-east-2",
        tags={
            T.NAME: name,
            T.CUSTOMER: customer,
            T.ENVIRONMENT: environment,
            T.DRS_LAUNCH_INTO: T.DRS_LAUNCH_INTO_VALUE,
        },
        private_ip=ip,
        state=state,
        platform="windows",
        boot_mode="uefi",
        architecture="x86_64",
    )


def server(sid: str, instance_id: str, tags: dict[str, str] | None = None) -> SourceServerRecord:
    return SourceServerRecord(
        source_server_id=sid,
        region="us-east-2",
        instance_id=instance_id,
        origin_region="us-east-1",
        tags=tags or {},
        replication_state="CONTINUOUS",
        lag_seconds=30.0,
        os="Microsoft Windows Server 2022",
        primary_ip=None,
    )


def snapshot_of(**discovered: list[DiscoveredResource]) -> dict[str, ScopeSnapshot]:
    inventory = assemble(
        ENTRY,
        {env: (items, PlanSource.RESOURCE_EXPLORER, []) for env, items in discovered.items()},
        {},
        [],
        [],
        NOW,
    )
    return {s.environment: s for s in inventory.snapshots}


# --- assembling -----------------------------------------------------------------------------------


def test_given_every_api_answer_when_assembling_then_resource_twin_and_replication_join() -> None:
    # Given a DR-tagged server, its primary facts, its twin and its DRS source server
    inventory = assemble(
        ENTRY,
        {"production": ([found("i-1", dr_tags("web-01"))], PlanSource.RESOURCE_EXPLORER, [])},
        {"i-1": primary("i-1", "10.1.0.23")},
        [twin("i-t1", "web-01", "10.101.0.23")],
        [server("s-1", "i-1")],
        NOW,
    )

    # Then one snapshot holds all of it
    (snap,) = inventory.snapshots
    (resource,) = snap.resources
    assert (snap.customer, snap.environment, snap.captured_at) == ("acme", "production", NOW)
    assert resource.dr_region == "us-east-2" and resource.private_ip == "10.1.0.23"
    assert resource.twin is not None and resource.twin.instance_id == "i-t1"
    assert resource.twin.launch_target and resource.twin_candidates == 1
    assert resource.replication is not None and resource.replication.source_server_id == "s-1"
    assert resource.replication.replicating and snap.replicating_count == 1


def test_given_a_same_named_instance_of_another_tenant_or_env_then_it_is_never_the_twin() -> None:
    # Given instances named like the server in another customer, another environment, and a
    # terminated one of the right scope
    inventory = assemble(
        ENTRY,
        {"production": ([found("i-1", dr_tags("web-01"))], PlanSource.RESOURCE_EXPLORER, [])},
        {},
        [
            twin("i-globex", "web-01", "10.101.0.23", customer="globex"),
            twin("i-staging", "web-01", "10.101.0.23", environment="staging"),
            twin("i-gone", "web-01", "10.101.0.23", state="terminated"),
        ],
        [],
        NOW,
    )

    # Then no twin is matched
    resource = inventory.snapshots[0].resources[0]
    assert resource.twin is None and resource.twin_candidates == 0


def test_given_two_twin_candidates_then_none_is_chosen_and_both_are_counted() -> None:
    inventory = assemble(
        ENTRY,
        {"production": ([found("i-1", dr_tags("web-01"))], PlanSource.RESOURCE_EXPLORER, [])},
        {},
        [twin("i-a", "web-01", "10.101.0.23"), twin("i-b", "web-01", "10.101.0.24")],
        [],
        NOW,
    )

    resource = inventory.snapshots[0].resources[0]
    assert resource.twin is None and resource.twin_candidates == 2


def test_given_another_tenants_resource_in_the_answer_then_it_is_dropped_from_the_cache() -> None:
    # Given an inventory answer that (wrongly) holds another tenant's and another env's resource
    inventory = assemble(
        ENTRY,
        {
            "production": (
                [
                    found("i-1", dr_tags("web-01")),
                    found("i-2", dr_tags("web-02", customer="globex")),
                    found("i-3", dr_tags("web-03", environment="staging")),
                    found("i-4", dr_tags("web-04"), account=OTHER_ACCOUNT),
                ],
                PlanSource.RESOURCE_EXPLORER,
                [],
            )
        },
        {},
        [],
        [],
        NOW,
    )

    # Then only the scope's own resource is cached
    snap = inventory.snapshots[0]
    assert [r.resource_id for r in snap.resources] == ["i-1"]
    assert snap.dropped_out_of_scope == 3


def test_given_source_servers_without_dr_tags_then_attributed_by_their_instance_tags() -> None:
    # Given DRS replicating a tagged server, an untagged production server, an untagged staging
    # server (tags known only from the source server) and one no environment claims
    untagged_prod = {T.NAME: "tmp-01", T.CUSTOMER: "acme", T.ENVIRONMENT: "production"}
    inventory = assemble(
        ENTRY,
        {
            "production": ([found("i-1", dr_tags("web-01"))], PlanSource.RESOURCE_EXPLORER, []),
            "staging": ([], PlanSource.RESOURCE_EXPLORER, []),
        },
        {"i-2": primary("i-2", "10.1.0.2", untagged_prod)},
        [],
        [
            server("s-1", "i-1"),
            server("s-2", "i-2"),
            server("s-3", "i-3", {T.CUSTOMER: "acme", T.ENVIRONMENT: "staging", T.NAME: "x"}),
            server("s-4", "i-4", {T.CUSTOMER: "acme", T.ENVIRONMENT: "qa"}),
        ],
        NOW,
    )

    # Then each lands in its environment, and the last one is unattributed
    by_env = {s.environment: s for s in inventory.snapshots}
    assert [r.source_server_id for r in by_env["production"].untagged_replicating] == ["s-2"]
    assert by_env["production"].untagged_replicating[0].name == "tmp-01"
    assert [r.source_server_id for r in by_env["staging"].untagged_replicating] == ["s-3"]
    assert [r.source_server_id for r in inventory.unattributed] == ["s-4"]
    assert by_env["production"].replicating_count == 2


# --- packing --------------------------------------------------------------------------------------


def test_given_a_snapshot_when_packed_then_it_is_compressed_and_round_trips() -> None:
    items = [found(f"i-{n:04d}", dr_tags(f"app-{n:04d}")) for n in range(200)]
    snap = snapshot_of(production=items)["production"].model_copy(update={"version": "v1"})

    data, raw = pack(snap)

    assert len(data) < raw / 4  # tags repeat a lot: compression pays
    assert unpack(data) == snap
    pieces = chunked(data, size=1000)
    assert b"".join(pieces) == data and all(len(p) <= 1000 for p in pieces)


def test_version_ids_sort_like_their_times() -> None:
    times = [NOW, NOW + timedelta(milliseconds=1), NOW + timedelta(minutes=15)]
    assert sorted(version_id(t) for t in reversed(times)) == [version_id(t) for t in times]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("PT30S", 30), ("PT1H2M3S", 3723), ("P1DT1S", 86401), ("PT0S", 0), ("", None), ("x", None)],
)
def test_drs_lag_durations_are_read_as_seconds(text: str, seconds: float | None) -> None:
    assert parse_iso_duration(text) == seconds


def test_platforms_are_normalized() -> None:
    assert platform_of("Microsoft Windows Server 2022 Datacenter") == "windows"
    assert platform_of("windows") == "windows"
    assert platform_of("Ubuntu 22.04 LTS") == "linux"
    assert platform_of(None) is None


# --- checks ---------------------------------------------------------------------------------------


def summary(
    env: str,
    resources: int,
    refreshed: bool = True,
    version: str | None = "v2",
    error: str | None = None,
) -> ScopeSummary:
    return ScopeSummary(
        customer="acme",
        environment=env,
        refreshed=refreshed,
        resources=resources,
        version=version,
        error=error,
    )


def test_given_a_failed_scope_when_checking_then_missing_or_kept_is_reported() -> None:
    scopes = [
        summary("production", 10, refreshed=False, version="v1", error="503"),
        summary("staging", 0, refreshed=False, version=None, error="AccessDenied"),
    ]

    findings = check_refresh(scopes, {}, None, drop_ratio=0.1)

    assert [(f.code, f.severity, f.environment) for f in findings] == [
        (SCOPE_MISSING, Severity.CRITICAL, "staging"),
        (SCOPE_NOT_REFRESHED, Severity.WARNING, "production"),
    ]
    assert "AccessDenied" in findings[0].message and "v1" in findings[1].message


def test_given_drs_replicating_more_than_is_tagged_then_counts_mismatch_is_reported() -> None:
    # Given a scope whose DRS replicates an untagged server, and a resource without IP
    inventory = assemble(
        ENTRY,
        {"production": ([found("i-1", dr_tags("web-01"))], PlanSource.RESOURCE_EXPLORER, [])},
        {},
        [],
        [
            server("s-1", "i-1"),
            server("s-2", "i-2", {T.CUSTOMER: "acme", T.ENVIRONMENT: "production"}),
        ],
        NOW,
    )
    snap = inventory.snapshots[0]

    findings = check_refresh([summary("production", 1)], {snap.key: snap}, None, drop_ratio=0.1)

    assert {f.code for f in findings} == {COUNT_MISMATCH, RESOURCE_INCOMPLETE}
    assert "DRS replicates 2" in next(f for f in findings if f.code == COUNT_MISMATCH).message


def test_given_a_sudden_drop_or_a_removed_scope_then_consistency_findings() -> None:
    # Given a previous version with 100 production and 5 qa resources
    previous = VersionManifest(
        version="v1",
        captured_at=NOW - timedelta(minutes=15),
        scopes=[summary("production", 100, version="v1"), summary("qa", 5, version="v1")],
    )
    snap = snapshot_of(production=[])["production"]

    # When production now has 80 (20% gone) and qa is no longer registered
    findings = check_refresh(
        [summary("production", 80)], {snap.key: snap}, previous, drop_ratio=0.1
    )

    codes = {(f.code, f.environment) for f in findings}
    assert (SUDDEN_DROP, "production") in codes and (SCOPE_REMOVED, "qa") in codes
    # And a drop within the ratio is not flagged
    quiet = check_refresh([summary("production", 95)], {snap.key: snap}, previous, 0.1)
    assert SUDDEN_DROP not in {f.code for f in quiet}


def test_manifest_outcome_says_whether_every_scope_was_refreshed() -> None:
    def manifest(*refreshed: bool) -> VersionManifest:
        return VersionManifest(
            version="v",
            captured_at=NOW,
            scopes=[summary(f"e{i}", 1, refreshed=r) for i, r in enumerate(refreshed)],
        )

    assert manifest(True, True).outcome == "complete"
    assert manifest(True, False).outcome == "partial"
    assert manifest(False).outcome == "failed"


# --- age and plans from the cache ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (0, Severity.INFO),
        (20 * 60, Severity.INFO),
        (20 * 60 + 1, Severity.WARNING),
        (30 * 60, Severity.WARNING),
        (30 * 60 + 1, Severity.CRITICAL),
        (None, Severity.CRITICAL),
    ],
)
def test_cache_age_is_a_warning_past_20_minutes_and_critical_past_30(
    age: int | None, expected: Severity
) -> None:
    assert age_severity(age, 20 * 60, 30 * 60) is expected


@pytest.mark.parametrize(
    ("minutes", "codes"),
    [
        (5, [PLANNED_FROM_CACHE]),
        (25, [PLANNED_FROM_CACHE, CACHE_AGE_WARNING]),
        (45, [PLANNED_FROM_CACHE, CACHE_AGE_CRITICAL]),
    ],
)
def test_given_a_cached_snapshot_when_planning_from_it_then_source_age_and_staleness_are_stated(
    minutes: int, codes: list[str]
) -> None:
    snap = snapshot_of(production=[found("i-1", dr_tags("web-01"))])["production"]
    snap = snap.model_copy(update={"version": "v7"})

    resources, notes, age = cache_plan_notes(
        snap, NOW + timedelta(minutes=minutes), "primary region down", 20 * 60, 30 * 60
    )

    assert [r.resource_id for r in resources] == ["i-1"]
    assert age == minutes * 60
    assert [n.code for n in notes] == codes
    assert "v7" in notes[0].message and "primary region down" in notes[0].message
