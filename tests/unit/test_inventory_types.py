"""The inventory cache with resources beyond DRS-recovered instances: EKS clusters, managed
services and SQL Server AG primaries are cached (and planned from the cache) without twins,
replication or IP checks; snapshots of the first format stay readable."""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from drcore import tags as T
from drcore.registry import CustomerEntry, EnvironmentEntry
from events.schemas import OperationType, PlanSource
from services.discovery.domain import DiscoveredResource, build_plan, parse_arn
from services.discovery.inventory import (
    COUNT_MISMATCH,
    SNAPSHOT_FORMAT,
    InstanceRecord,
    ScopeSummary,
    SourceServerRecord,
    assemble,
    cache_plan_notes,
    check_refresh,
    pack,
    unpack,
)

ACCOUNT = "111111111111"
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
ENTRY = CustomerEntry(
    name="acme",
    account=ACCOUNT,
    regions={"us-east-1": "us-east-2"},
    environments=[EnvironmentEntry(name="production")],
    external_id="ext-acme",
)


def dr_tags(name: str, strategy: str) -> dict[str, str]:
    return {
        T.ENABLED: "true",
        T.PRIORITY: "critical",
        T.WAVE: "1",
        T.STRATEGY: strategy,
        T.RTO_TARGET: "30",
        T.RPO_TARGET: "5",
        T.CUSTOMER: "acme",
        T.ENVIRONMENT: "production",
        T.NAME: name,
    }


def found(service: str, resource: str, tags: dict[str, str]) -> DiscoveredResource:
    arn = f"arn:aws:{service}:us-east-1:{ACCOUNT}:{resource}"
    parts = parse_arn(arn)
    return DiscoveredResource(
        arn=arn,
        resource_id=parts.resource_id,
        account=ACCOUNT,
        region="us-east-1",
        tags=tags,
        resource_type=parts.resource_type,
    )


def instance(instance_id: str, region: str, tags: Mapping[str, str], ip: str) -> InstanceRecord:
    return InstanceRecord(
        instance_id=instance_id,
        region=region,
        tags=tags,
        private_ip=ip,
        state="running",
        platform="windows",
    )


def mixed_inventory() -> tuple[list[DiscoveredResource], InstanceRecord, SourceServerRecord]:
    eks = found("eks", "cluster/acme-eks", dr_tags("acme-eks", "eks-dns"))
    efs = found("elasticfilesystem", "file-system/fs-1", dr_tags("acme-files", "managed-service"))
    sql = found("ec2", "instance/i-sql", dr_tags("acme-sql-01", "sql-ag"))
    web = found("ec2", "instance/i-web", dr_tags("acme-web-01", "drs"))
    # The SQL secondary in the DR region carries the primary's Name: it is no DRS twin.
    dr_replica = instance(
        "i-sql-dr",
        "us-east-2",
        {T.NAME: "acme-sql-01", T.CUSTOMER: "acme", T.ENVIRONMENT: "production"},
        "10.2.0.5",
    )
    source = SourceServerRecord(
        source_server_id="s-web",
        region="us-east-2",
        instance_id="i-web",
        replication_state="CONTINUOUS",
    )
    return [eks, efs, sql, web], dr_replica, source


def test_given_mixed_types_when_assembling_then_only_drs_instances_get_twins_and_replication() -> (
    None
):
    resources, dr_replica, source = mixed_inventory()
    primary = {
        "i-sql": instance("i-sql", "us-east-1", resources[2].tags, "10.1.0.5"),
        "i-web": instance("i-web", "us-east-1", resources[3].tags, "10.1.0.6"),
    }

    inventory = assemble(
        ENTRY,
        {"production": (resources, PlanSource.RESOURCE_EXPLORER, [])},
        primary,
        [dr_replica],
        [source],
        NOW,
    )

    (snap,) = inventory.snapshots
    by_id = {r.resource_id: r for r in snap.resources}
    assert {rid: r.resource_type for rid, r in by_id.items()} == {
        "acme-eks": "eks:cluster",
        "fs-1": "elasticfilesystem:file-system",
        "i-sql": "ec2:instance",
        "i-web": "ec2:instance",
    }
    assert by_id["i-sql"].twin is None and by_id["i-sql"].twin_candidates == 0
    assert by_id["i-sql"].private_ip == "10.1.0.5" and not by_id["i-sql"].uses_drs
    assert by_id["i-web"].replication is not None and by_id["i-web"].uses_drs
    assert by_id["acme-eks"].private_ip is None and by_id["acme-eks"].dr_region == "us-east-2"
    assert not by_id["acme-eks"].uses_drs and not by_id["fs-1"].uses_drs


def test_given_mixed_types_when_checking_a_refresh_then_drs_counts_only_drs_instances() -> None:
    resources, dr_replica, source = mixed_inventory()
    inventory = assemble(
        ENTRY,
        {"production": (resources, PlanSource.RESOURCE_EXPLORER, [])},
        {
            "i-web": instance("i-web", "us-east-1", resources[3].tags, "10.1.0.6"),
            "i-sql": instance("i-sql", "us-east-1", resources[2].tags, "10.1.0.5"),
        },
        [dr_replica],
        [source],
        NOW,
    )
    snap = inventory.snapshots[0]
    scope = ScopeSummary(customer="acme", environment="production", refreshed=True, resources=4)

    findings = check_refresh([scope], {snap.key: snap}, None, drop_ratio=0.1)

    # DRS replicates the one DRS server: no count mismatch; clusters have no IP to miss
    assert findings == []
    # And a second DRS-tagged server DRS does not replicate is still caught
    extra = found("ec2", "instance/i-new", dr_tags("acme-web-02", "drs"))
    more = assemble(
        ENTRY,
        {"production": ([*resources, extra], PlanSource.RESOURCE_EXPLORER, [])},
        {},
        [],
        [source],
        NOW,
    ).snapshots[0]
    codes = {f.code for f in check_refresh([scope], {more.key: more}, None, drop_ratio=0.1)}
    assert COUNT_MISMATCH in codes


def test_given_a_cached_mixed_snapshot_when_planning_from_it_then_types_survive() -> None:
    resources, _, _ = mixed_inventory()
    snap = (
        assemble(ENTRY, {"production": (resources, PlanSource.TAGGING_API, [])}, {}, [], [], NOW)
        .snapshots[0]
        .model_copy(update={"version": "v1"})
    )

    data, _ = pack(snap)
    restored = unpack(data)
    inputs, notes, age = cache_plan_notes(
        restored, NOW + timedelta(minutes=5), "region down", 1200, 1800
    )
    plan = build_plan(
        customer="acme",
        environment="production",
        operation=OperationType.FAILOVER,
        account=ACCOUNT,
        region_map=ENTRY.regions,
        resources=inputs,
        plan_source=PlanSource.INVENTORY_CACHE,
        enabled_strategies=("drs", "sql-ag", "eks-dns", "managed-service"),
        created_at=NOW,
        notes=notes,
        inventory_age_seconds=age,
    )

    assert restored == snap and restored.format == SNAPSHOT_FORMAT
    assert {
        (r.resource_id, r.resource_type, r.strategy.value) for w in plan.waves for r in w.resources
    } == {
        ("acme-eks", "eks:cluster", "eks-dns"),
        ("fs-1", "elasticfilesystem:file-system", "managed-service"),
        ("i-sql", "ec2:instance", "sql-ag"),
        ("i-web", "ec2:instance", "drs"),
    }


def test_a_snapshot_of_the_first_format_reads_as_ec2_instances() -> None:
    # Given a format-1 snapshot as the previous release stored it (no resource_type at all)
    first = {
        "format": 1,
        "customer": "acme",
        "environment": "production",
        "account": ACCOUNT,
        "regions": {"us-east-1": "us-east-2"},
        "captured_at": NOW.isoformat(),
        "version": "20261101T120000.000Z",
        "source": "resource-explorer",
        "resources": [
            {
                "arn": f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-1",
                "resource_id": "i-1",
                "account": ACCOUNT,
                "region": "us-east-1",
                "dr_region": "us-east-2",
                "tags": dr_tags("web-01", "drs"),
                "private_ip": "10.1.0.9",
            }
        ],
    }

    snap = unpack(zlib.compress(json.dumps(first).encode()))

    (resource,) = snap.resources
    assert snap.format == 1 and resource.resource_type == "ec2:instance" and resource.uses_drs
    assert resource.discovered().resource_type == "ec2:instance"
