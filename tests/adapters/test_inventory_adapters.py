"""The inventory cache's adapters against the sandbox endpoint (moto + the DRS and Resource
Explorer emulators): collection in a workload account, the DynamoDB table, the refresh, and
plans that fall back to the cache when the primary region is down (the `regions_down` knob).

The readiness-problems estate (one customer, 12 servers) is seeded once for the module."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from drcore.aws import AwsClients
from drcore.registry import CustomerEntry
from drcore.settings import Settings
from drcore.tables import TABLES, create_table, table_name
from events.schemas import OperationType, PlanSource
from events.schemas.models import utc_now
from services.discovery.adapters import InventoryTable
from services.discovery.app import build_plan_for
from services.discovery.collect import CollectionFailed, InventoryCollector
from services.discovery.domain import DiscoveryUnavailable
from services.discovery.inventory import VersionManifest, pack
from services.discovery.metrics import RecordingSink
from services.discovery.refresh import InventoryRefresher

pytestmark = pytest.mark.sandbox

ESTATE = Path(__file__).parents[2] / "examples" / "estates" / "readiness-problems.yaml"
PRIMARY = "us-east-1"


class Log:
    def info(self, *args: Any, **kwargs: Any) -> None: ...
    def warning(self, *args: Any, **kwargs: Any) -> None: ...
    def error(self, *args: Any, **kwargs: Any) -> None: ...


def admin(url: str, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        url + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def sandbox() -> Iterator[tuple[str, CustomerEntry]]:
    from sandbox.endpoint import SandboxEndpoint
    from sandbox.estate import load_estate
    from sandbox.seed import seed_estate

    server = SandboxEndpoint()
    url = server.start(port=0)
    summary = seed_estate(load_estate(ESTATE), url)
    settings = Settings()
    dynamodb = boto3.client(
        "dynamodb",
        region_name=settings.orchestration_region,
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    for spec in TABLES:
        create_table(dynamodb, spec, table_name(spec, settings))
    yield url, summary.customers[0]
    server.stop()


@pytest.fixture
def clients(sandbox: tuple[str, CustomerEntry], monkeypatch: pytest.MonkeyPatch) -> AwsClients:
    monkeypatch.setenv("AWS_ENDPOINT_URL", sandbox[0])
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    return AwsClients(Settings())


@pytest.fixture
def outage(sandbox: tuple[str, CustomerEntry]) -> Iterator[None]:
    admin(sandbox[0], "/_sandbox/config", {"regions_down": [PRIMARY]})
    yield
    admin(sandbox[0], "/_sandbox/config", {"regions_down": []})


def table(clients: AwsClients) -> InventoryTable:
    settings = clients.settings
    return InventoryTable(clients.client("dynamodb"), settings.inventory_table)


# --- collection ------------------------------------------------------------------------------


def test_given_a_workload_account_when_collecting_then_twins_and_replication_are_joined(
    sandbox: tuple[str, CustomerEntry], clients: AwsClients
) -> None:
    # When initech's inventory is collected (Resource Explorer, DRS, EC2 in both regions)
    inventory = InventoryCollector(clients, clients.settings).collect(sandbox[1])

    # Then its one scope holds the 11 DR-tagged servers (app-05 is dr:enabled=false)
    (snap,) = inventory.snapshots
    by_name = {r.name: r for r in snap.resources}
    assert snap.source is PlanSource.RESOURCE_EXPLORER and len(by_name) == 11
    ad = by_name["initech-prod-ad-01"]
    assert ad.private_ip == "10.3.10.10" and ad.dr_region == "us-east-2"
    assert ad.platform == "windows" and ad.boot_mode == "uefi" and ad.architecture == "x86_64"
    assert ad.twin is not None and ad.twin.private_ip == "10.103.10.10" and ad.twin.launch_target
    assert ad.replication is not None and ad.replication.state == "CONTINUOUS"
    assert ad.replication.lag_seconds == 30
    # with what the estate broke on purpose
    assert by_name["initech-prod-app-01"].twin is None
    assert by_name["initech-prod-db-01"].replication.state == "STALLED"  # type: ignore[union-attr]
    assert by_name["initech-prod-db-02"].replication.lag_seconds == 3600  # type: ignore[union-attr]
    assert by_name["initech-prod-app-02"].replication.os == "Ubuntu 22.04 LTS"  # type: ignore[union-attr]
    assert [s.name for s in snap.untagged_replicating] == ["initech-prod-app-05"]
    assert inventory.unattributed == []


def test_given_the_primary_region_down_when_collecting_then_it_fails_as_an_outage(
    sandbox: tuple[str, CustomerEntry], clients: AwsClients, outage: None
) -> None:
    with pytest.raises(CollectionFailed) as failed:
        InventoryCollector(clients, clients.settings).collect(sandbox[1])

    assert failed.value.region_down and "503" in failed.value.reason


# --- the table -------------------------------------------------------------------------------


def test_given_a_snapshot_in_chunks_when_stored_then_current_and_history_read_back(
    sandbox: tuple[str, CustomerEntry], clients: AwsClients
) -> None:
    # Given a collected snapshot stored in several chunks
    inventory = InventoryCollector(clients, clients.settings).collect(sandbox[1])
    snap = inventory.snapshots[0].model_copy(update={"version": "20261101T000000.000Z"})
    data, _ = pack(snap)
    store = table(clients)
    store.put_snapshot(snap, data, expires_at=2_000_000_000, chunk_bytes=len(data) // 3 + 1)

    # Then the current snapshot reads back whole, and its summary without the data
    assert store.current("initech", "production") == snap
    assert store.current_summary("initech", "production") == (
        snap.version,
        snap.captured_at,
        len(snap.resources),
    )
    assert store.current("initech", "staging") is None


def test_given_chunks_of_two_versions_then_the_current_snapshot_is_not_trusted(
    sandbox: tuple[str, CustomerEntry], clients: AwsClients
) -> None:
    inventory = InventoryCollector(clients, clients.settings).collect(sandbox[1])
    first = inventory.snapshots[0].model_copy(update={"version": "v-a"})
    data, _ = pack(first)
    store = table(clients)
    store.put_snapshot(first, data, 2_000_000_000, chunk_bytes=len(data) // 2 + 1)
    # A second writer caught half-way: chunk 0 of another version only
    client = clients.client("dynamodb")
    client.update_item(
        TableName=clients.settings.inventory_table,
        Key={"pk": {"S": "SCOPE#initech#production"}, "sk": {"S": "CURRENT#0000"}},
        UpdateExpression="SET version = :v",
        ExpressionAttributeValues={":v": {"S": "v-b"}},
    )

    assert store.current("initech", "production") is None


def test_the_refresh_lease_admits_one_refresh_at_a_time(
    sandbox: tuple[str, CustomerEntry], clients: AwsClients
) -> None:
    store = table(clients)
    now = utc_now()

    assert store.begin_refresh(now, 600, "r-1")
    assert not store.begin_refresh(now + timedelta(seconds=5), 600, "r-2")
    assert store.begin_refresh(now + timedelta(seconds=601), 600, "r-3")  # a crashed one expires
    store.end_refresh(None, "boom")
    assert store.begin_refresh(now + timedelta(seconds=602), 600, None)
    store.end_refresh(None, None)
    status = store.status()
    assert status.last_outcome == "failed" and status.last_request_id == "r-3"


# --- refresh and plans from the cache -----------------------------------------------------------


def refresh(clients: AwsClients, **kwargs: Any) -> VersionManifest:
    refresher = InventoryRefresher.from_settings(
        Log(), clients.settings, clients=clients, metrics=RecordingSink(), **kwargs
    )
    manifest = refresher.refresh(requested_by="test").manifest
    assert manifest is not None
    return manifest


def test_given_a_refresh_then_versions_are_listed_newest_first_with_their_checks(
    sandbox: tuple[str, CustomerEntry], clients: AwsClients
) -> None:
    first = refresh(clients)
    second = refresh(clients)

    versions = table(clients).manifests(limit=2)
    assert [v.version for v in versions] == [second.version, first.version]
    assert second.outcome == "complete" and second.resources == 11
    # DRS replicates app-05 too (not DR-tagged): the counts disagree and it is flagged
    assert [f.code for f in second.findings] == ["COUNT_MISMATCH"]
    assert table(clients).status().last_version == second.version


def test_given_the_primary_region_down_when_planning_then_the_plan_comes_from_the_cache(
    sandbox: tuple[str, CustomerEntry], clients: AwsClients, outage: None
) -> None:
    # Given a cache refreshed 25 minutes ago (before the outage)
    admin(sandbox[0], "/_sandbox/config", {"regions_down": []})
    past = utc_now() - timedelta(minutes=25)
    refresh(clients, now=lambda: past)
    admin(sandbox[0], "/_sandbox/config", {"regions_down": [PRIMARY]})

    # When a failover is planned with the primary region down
    plan = build_plan_for(
        "initech", "production", OperationType.FAILOVER, clients, clients.settings
    )

    # Then it comes from the cache, says how old it is and warns that it is stale
    assert plan.plan_source is PlanSource.INVENTORY_CACHE
    assert plan.inventory_age_seconds is not None and plan.inventory_age_seconds >= 25 * 60
    codes = [w.code for w in plan.warnings if w.resource_id == "*"]
    assert codes[:2] == ["CACHE_AGE_WARNING", "PLANNED_FROM_CACHE"]
    assert "us-east-1" in next(w.message for w in plan.warnings if w.code == "PLANNED_FROM_CACHE")
    # with the cached IPs, so the drs service can check the last octet without the primary
    ad = next(r for w in plan.waves for r in w.resources if r.name == "initech-prod-ad-01")
    assert ad.private_ip == "10.3.10.10"


def test_given_use_cached_inventory_then_the_cache_is_used_while_the_region_is_up(
    sandbox: tuple[str, CustomerEntry], clients: AwsClients
) -> None:
    refresh(clients)

    plan = build_plan_for(
        "initech",
        "production",
        OperationType.FAILOVER,
        clients,
        clients.settings,
        use_cached_inventory=True,
    )
    live = build_plan_for(
        "initech", "production", OperationType.FAILOVER, clients, clients.settings
    )

    assert plan.plan_source is PlanSource.INVENTORY_CACHE
    assert plan.inventory_age_seconds is not None and plan.inventory_age_seconds < 20 * 60
    assert live.plan_source is PlanSource.RESOURCE_EXPLORER and live.inventory_age_seconds is None
    assert {r.resource_id for w in plan.waves for r in w.resources} == {
        r.resource_id for w in live.waves for r in w.resources
    }


def test_given_use_cached_inventory_during_an_outage_then_no_primary_region_call_is_made(
    sandbox: tuple[str, CustomerEntry], clients: AwsClients, outage: None
) -> None:
    before = stats(sandbox[0]).get("refused", {})

    plan = build_plan_for(
        "initech",
        "production",
        OperationType.FAILOVER,
        clients,
        clients.settings,
        use_cached_inventory=True,
    )

    assert plan.plan_source is PlanSource.INVENTORY_CACHE and plan.resource_count > 0
    assert stats(sandbox[0]).get("refused", {}) == before


def stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/_sandbox/stats", timeout=10) as response:
        return dict(json.loads(response.read()))


def test_given_no_cache_of_the_scope_when_the_region_is_down_then_discovery_is_unavailable(
    sandbox: tuple[str, CustomerEntry], clients: AwsClients, outage: None
) -> None:
    client = clients.client("dynamodb")
    for index in range(4):
        client.delete_item(
            TableName=clients.settings.inventory_table,
            Key={"pk": {"S": "SCOPE#initech#production"}, "sk": {"S": f"CURRENT#{index:04d}"}},
        )

    with pytest.raises(DiscoveryUnavailable, match="no snapshot of initech/production"):
        build_plan_for("initech", "production", OperationType.FAILOVER, clients, clients.settings)
