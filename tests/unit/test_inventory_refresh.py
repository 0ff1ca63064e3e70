"""The refresh use case with in-memory fakes: one version per refresh, failed customers keep their
snapshot, checks and metrics, the lease, and coalescing of operator requests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from drcore import tags as T
from drcore.registry import CustomerEntry, EnvironmentEntry
from drcore.settings import Settings
from events.schemas import PlanSource
from services.discovery.collect import CollectionFailed
from services.discovery.domain import DiscoveredResource
from services.discovery.inventory import (
    CacheStatus,
    CustomerInventory,
    InstanceRecord,
    ScopeSnapshot,
    SourceServerRecord,
    VersionManifest,
    assemble,
    unpack,
)
from services.discovery.messages import InventoryRefreshMessage
from services.discovery.metrics import RecordingSink
from services.discovery.refresh import BUSY, InventoryRefresher, RefreshBusy

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str, **_: Any) -> None:
        self.lines.append(message)

    warning = error = info


class FakeTable:
    def __init__(self) -> None:
        self.current: dict[tuple[str, str], tuple[ScopeSnapshot, bytes]] = {}
        self.history: list[tuple[str, str, str, int]] = []
        self.versions: list[VersionManifest] = []
        self.state = CacheStatus()
        self.leased = False

    def put_snapshot(self, snapshot: ScopeSnapshot, data: bytes, expires_at: int) -> None:
        self.current[snapshot.key] = (snapshot, data)
        self.history.append((snapshot.customer, snapshot.environment, snapshot.version, expires_at))

    def put_manifest(self, manifest: VersionManifest, expires_at: int) -> None:
        self.versions.insert(0, manifest)

    def manifests(self, limit: int | None = None) -> list[VersionManifest]:
        return self.versions[:limit]

    def current_summary(self, customer: str, environment: str) -> tuple[str, datetime, int] | None:
        found = self.current.get((customer, environment))
        if found is None:
            return None
        snap = found[0]
        return snap.version, snap.captured_at, len(snap.resources)

    def status(self) -> CacheStatus:
        return self.state

    def begin_refresh(self, now: datetime, lease_seconds: int, request_id: str | None) -> bool:
        if self.leased:
            return False
        self.leased = True
        self.state = self.state.model_copy(update={"last_attempt_at": now})
        return True

    def end_refresh(self, manifest: VersionManifest | None, error: str | None) -> None:
        self.leased = False
        update: dict[str, Any] = {"last_error": error}
        if manifest is not None and manifest.outcome != "failed":
            update |= {"last_success_at": manifest.captured_at, "last_version": manifest.version}
        self.state = self.state.model_copy(update=update)


def entry(name: str, account: str, environments: Sequence[str] = ("production",)) -> CustomerEntry:
    return CustomerEntry(
        name=name,
        account=account,
        regions={"us-east-1": "us-east-2"},
        environments=[EnvironmentEntry(name=e) for e in environments],
        external_id=f"ext-{name}",
    )


ACME = entry("acme", "111111111111", ("production", "staging"))
GLOBEX = entry("globex", "222222222222")


def tagged(customer: CustomerEntry, environment: str, n: int) -> list[DiscoveredResource]:
    return [
        DiscoveredResource(
            arn=f"arn:aws:ec2:us-east-1:{customer.account}:instance/i-{customer.name}{i}",
            resource_id=f"i-{customer.name}{i}",
            account=customer.account,
            region="us-east-1",
            tags={
                T.ENABLED: "true",
                T.PRIORITY: "high",
                T.WAVE: "1",
                T.STRATEGY: "drs",
                T.RTO_TARGET: "60",
                T.RPO_TARGET: "15",
                T.CUSTOMER: customer.name,
                T.ENVIRONMENT: environment,
                T.NAME: f"{customer.name}-{environment}-{i}",
            },
        )
        for i in range(n)
    ]


class FakeCollector:
    """Answers with `counts[(customer, env)]` tagged servers, all replicated by DRS; customers
    in `down` fail as during an outage."""

    def __init__(self, counts: dict[tuple[str, str], int], clock: list[datetime]) -> None:
        self.counts = counts
        self.down: set[str] = set()
        self.clock = clock

    def collect(
        self, entry: CustomerEntry, environments: Sequence[str] | None = None
    ) -> CustomerInventory:
        if entry.name in self.down:
            raise CollectionFailed(entry.name, "us-east-1: 503: Service Unavailable", True)
        discovered: dict[str, tuple[list[DiscoveredResource], PlanSource, list[str]]] = {
            env.name: (
                tagged(entry, env.name, self.counts[(entry.name, env.name)]),
                PlanSource.RESOURCE_EXPLORER,
                [],
            )
            for env in entry.environments
        }
        servers = [
            SourceServerRecord(
                source_server_id=f"s-{r.resource_id}",
                region="us-east-2",
                instance_id=r.resource_id,
                replication_state="CONTINUOUS",
                lag_seconds=30,
            )
            for items, _, _ in discovered.values()
            for r in items
        ]
        primary = {
            r.resource_id: InstanceRecord(r.resource_id, "us-east-1", private_ip=f"10.0.0.{i}")
            for items, _, _ in discovered.values()
            for i, r in enumerate(items)
        }
        return assemble(entry, discovered, primary, [], servers, self.clock[0])


@pytest.fixture
def world() -> dict[str, Any]:
    clock = [T0]
    table = FakeTable()
    collector = FakeCollector(
        {("acme", "production"): 10, ("acme", "staging"): 4, ("globex", "production"): 6}, clock
    )
    sink = RecordingSink()
    refresher = InventoryRefresher(
        customers=lambda: [ACME, GLOBEX],
        collector=collector,
        table=table,
        settings=Settings(),
        metrics=sink,
        logger=Log(),
        now=lambda: clock[0],
    )
    return {
        "clock": clock,
        "table": table,
        "collector": collector,
        "sink": sink,
        "refresher": refresher,
    }


def test_given_registered_scopes_when_refreshing_then_one_version_with_every_scope(
    world: dict[str, Any],
) -> None:
    # When the cache is refreshed
    result = world["refresher"].refresh(request_id="r-1", requested_by="ops")

    # Then each scope's current snapshot is stored (compressed) with history kept 24 h
    manifest = result.manifest
    table: FakeTable = world["table"]
    assert manifest.outcome == "complete" and manifest.requested_by == "ops"
    assert {(s.customer, s.environment, s.resources) for s in manifest.scopes} == {
        ("acme", "production", 10),
        ("acme", "staging", 4),
        ("globex", "production", 6),
    }
    snapshot, data = table.current[("acme", "production")]
    assert unpack(data) == snapshot and snapshot.version == manifest.version
    assert {expiry for *_, expiry in table.history} == {int((T0 + timedelta(hours=24)).timestamp())}
    assert manifest.findings == []
    assert table.state.last_success_at == T0 and not table.leased


def test_given_a_customer_whose_region_is_down_then_its_snapshot_is_kept_and_ages(
    world: dict[str, Any],
) -> None:
    # Given a first refresh, then the customer's primary region goes down
    world["refresher"].refresh()
    world["collector"].down.add("acme")
    world["clock"][0] = T0 + timedelta(minutes=25)

    # When refreshing again
    manifest = world["refresher"].refresh().manifest

    # Then acme's scopes keep the first version (flagged), globex is refreshed
    kept = {s.environment: s for s in manifest.scopes if s.customer == "acme"}
    assert manifest.outcome == "partial"
    assert all(not s.refreshed and s.captured_at == T0 for s in kept.values())
    assert kept["production"].resources == 10
    assert {(f.code, f.environment) for f in manifest.findings if f.customer == "acme"} == {
        ("SCOPE_NOT_REFRESHED", "production"),
        ("SCOPE_NOT_REFRESHED", "staging"),
    }
    assert world["table"].current[("acme", "production")][0].captured_at == T0
    # and the cache age metric says how old acme's snapshot is
    sink: RecordingSink = world["sink"]
    age = sink.value("InventoryAgeSeconds", Customer="acme", Environment="production")
    assert age == 25 * 60
    assert sink.value("InventoryRefreshSucceeded") == 0
    assert "503" in (world["table"].state.last_error or "")


def test_given_a_sudden_drop_when_refreshing_then_it_is_flagged(world: dict[str, Any]) -> None:
    world["refresher"].refresh()
    world["collector"].counts[("acme", "production")] = 5
    world["clock"][0] = T0 + timedelta(minutes=15)

    manifest = world["refresher"].refresh().manifest

    assert [(f.code, f.customer, f.environment) for f in manifest.findings] == [
        ("SUDDEN_DROP", "acme", "production")
    ]


def test_refresh_emits_inventory_and_readiness_metrics(world: dict[str, Any]) -> None:
    world["refresher"].refresh()

    sink: RecordingSink = world["sink"]
    assert sink.value("InventoryRefreshSucceeded") == 1
    assert sink.value("InventoryResources") == 20
    assert sink.value("InventoryResources", Customer="globex", Environment="production") == 6
    assert sink.value("InventoryAgeSeconds", Customer="globex", Environment="production") == 0
    # no twins in this fake world: every server lacks one
    scope = {"Customer": "acme", "Environment": "staging"}
    assert sink.value("ReadinessCriticalFindings", **scope) == 4
    assert sink.value("ReadinessFindings", **scope, Code="MISSING_TWIN") == 4


def test_given_a_refresh_running_then_another_is_skipped_and_an_operator_request_retried(
    world: dict[str, Any],
) -> None:
    # Given a refresh holding the lease
    world["table"].leased = True

    # Then the schedule's message is skipped, and an operator's request fails to be redelivered
    assert world["refresher"].on_request(InventoryRefreshMessage()).skipped == BUSY
    with pytest.raises(RefreshBusy):
        world["refresher"].on_request(
            InventoryRefreshMessage(request_id="r-2", requested_at=T0 - timedelta(seconds=1))
        )
    assert world["table"].versions == []


def test_given_a_request_older_than_the_last_refresh_then_it_is_answered_by_it(
    world: dict[str, Any],
) -> None:
    world["refresher"].refresh()

    result = world["refresher"].on_request(
        InventoryRefreshMessage(request_id="r-3", requested_at=T0 - timedelta(seconds=5))
    )

    assert result.manifest is None and result.skipped
    assert len(world["table"].versions) == 1
