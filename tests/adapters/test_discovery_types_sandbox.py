"""Discovery of resources beyond DRS servers against the sandbox endpoint (moto + the Resource
Explorer emulator): an environment with an EKS cluster, an EFS file system and the EC2 instance
of a SQL Server AG's primary replica is planned with the right strategy and type, live and
from the inventory cache when the primary region is down."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from drcore import tags as T
from drcore.aws import AccountAccess, AwsClients
from drcore.registry import CustomerEntry
from drcore.settings import Settings
from drcore.tables import TABLES, create_table, table_name
from events.schemas import PlanSource
from services.discovery.adapters import InventoryTable
from services.discovery.app import build_plan_for
from services.discovery.collect import InventoryCollector
from services.discovery.inventory import pack

pytestmark = pytest.mark.sandbox

PRIMARY = "us-east-1"
DR = "us-east-2"
EVERY_STRATEGY = ("drs", "sql-ag", "eks-dns", "managed-service")
ESTATE = """
regions: {us-east-1: us-east-2}
timing: {drs_launch_seconds: [0.3, 1.2]}
faults: {drs_launch_failure_rate: 0, throttle_rate: 0, drop_native_event_rate: 0}
customers:
  - name: umbrella
    account: "444444444444"
    region: us-east-1
    environments:
      - name: production
        servers:
          - {name: umbrella-prod-web-01, wave: 2, ip: 10.4.10.10}
          - {name: umbrella-prod-sql-01, wave: 1, priority: critical, ip: 10.4.10.20,
             twin: false, tags: {"dr:recovery-strategy": sql-ag}}
"""


def dr_tags(name: str, strategy: str, wave: str = "1") -> dict[str, str]:
    return {
        T.ENABLED: "true",
        T.PRIORITY: "critical",
        T.WAVE: wave,
        T.STRATEGY: strategy,
        T.RTO_TARGET: "30",
        T.RPO_TARGET: "5",
        T.CUSTOMER: "umbrella",
        T.ENVIRONMENT: "production",
        T.NAME: name,
    }


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, CustomerEntry]]:
    from sandbox.endpoint import SandboxEndpoint
    from sandbox.estate import load_estate
    from sandbox.seed import seed_estate

    estate = Path(tmp_path_factory.mktemp("estate")) / "umbrella.yaml"
    estate.write_text(ESTATE)
    server = SandboxEndpoint()
    url = server.start(port=0)
    summary = seed_estate(load_estate(estate), url)
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
    return AwsClients(Settings().model_copy(update={"enabled_strategies": EVERY_STRATEGY}))


@pytest.fixture
def workload(sandbox: tuple[str, CustomerEntry], clients: AwsClients) -> dict[str, str]:
    """An EKS cluster and an EFS file system in the customer's account (created once)."""
    entry = sandbox[1]
    access = AccountAccess(entry.account, entry.role_name, entry.external_id)
    eks = clients.workload_client("eks", PRIMARY, access)
    if "umbrella-prod-eks" not in eks.list_clusters()["clusters"]:
        ec2 = clients.workload_client("ec2", PRIMARY, access)
        vpc = ec2.create_vpc(CidrBlock="10.44.0.0/16")["Vpc"]["VpcId"]
        subnets = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.44.{n}.0/24")["Subnet"]["SubnetId"]
            for n in (1, 2)
        ]
        eks.create_cluster(
            name="umbrella-prod-eks",
            roleArn=f"arn:aws:iam::{entry.account}:role/eks",
            resourcesVpcConfig={"subnetIds": subnets},
            tags=dr_tags("umbrella-prod-eks", "eks-dns", wave="2"),
        )
        clients.workload_client("efs", PRIMARY, access).create_file_system(
            CreationToken="umbrella-prod-files",
            Tags=[
                {"Key": k, "Value": v}
                for k, v in dr_tags("umbrella-prod-files", "managed-service").items()
            ],
        )
    files = clients.workload_client("efs", PRIMARY, access).describe_file_systems()
    (fs,) = files["FileSystems"]
    return {"eks": "umbrella-prod-eks", "efs": fs["FileSystemId"]}


def planned_types(plan: Any) -> dict[str, tuple[str, str, int]]:
    return {
        r.name: (r.resource_type, r.strategy.value, w.number)
        for w in plan.waves
        for r in w.resources
    }


EXPECTED = {
    "umbrella-prod-eks": ("eks:cluster", "eks-dns", 2),
    "umbrella-prod-files": ("elasticfilesystem:file-system", "managed-service", 1),
    "umbrella-prod-sql-01": ("ec2:instance", "sql-ag", 1),
    "umbrella-prod-web-01": ("ec2:instance", "drs", 2),
}


def test_given_eks_efs_and_a_sql_primary_when_planning_then_each_has_strategy_and_type(
    sandbox: tuple[str, CustomerEntry], clients: AwsClients, workload: dict[str, str]
) -> None:
    # When the plan is made live (Resource Explorer in the DR region, EC2 in the primary)
    plan = build_plan_for("umbrella", "production", "failover", clients, clients.settings)

    # Then the cluster, the file system and both instances are in it, typed, with natural ids
    assert plan.plan_source is PlanSource.RESOURCE_EXPLORER
    assert planned_types(plan) == EXPECTED
    by_name = {r.name: r for w in plan.waves for r in w.resources}
    assert by_name["umbrella-prod-eks"].resource_id == workload["eks"]
    assert by_name["umbrella-prod-files"].resource_id == workload["efs"]
    assert by_name["umbrella-prod-sql-01"].private_ip == "10.4.10.20"
    assert all(r.dr_region == DR for r in by_name.values())
    # And no twin is asked of the SQL primary, the cluster or the file system
    assert [w.code for w in plan.warnings] == []


def test_given_the_primary_region_down_when_planning_then_the_cache_still_plans_them(
    sandbox: tuple[str, CustomerEntry], clients: AwsClients, workload: dict[str, str]
) -> None:
    # Given a snapshot collected while the region was up
    entry = sandbox[1]
    inventory = InventoryCollector(clients, clients.settings).collect(entry)
    (snap,) = inventory.snapshots
    snap = snap.model_copy(update={"version": "v-types"})
    data, _ = pack(snap)
    table = InventoryTable(clients.client("dynamodb"), clients.settings.inventory_table)
    table.put_snapshot(snap, data, expires_at=2_000_000_000)
    assert {r.resource_type for r in snap.resources} == {
        "eks:cluster",
        "elasticfilesystem:file-system",
        "ec2:instance",
    }

    # When the primary region stops answering and a plan is asked for
    admin(sandbox[0], {"regions_down": [PRIMARY]})
    try:
        plan = build_plan_for("umbrella", "production", "failover", clients, clients.settings)
    finally:
        admin(sandbox[0], {"regions_down": []})

    # Then it comes from the cache with the same resources, strategies and types
    assert plan.plan_source is PlanSource.INVENTORY_CACHE
    assert planned_types(plan) == EXPECTED


def admin(url: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        url + "/_sandbox/config",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
