"""Seeding an estate into the sandbox: what it creates, where, in whose account, and twice."""

from __future__ import annotations

from typing import Any

import pytest

from drcore.registry import CustomerEntry, parameter_name
from sandbox.estate import Estate, parse_estate
from sandbox.seed import SeedSummary, seed_estate

from .conftest import DEFAULT_ACCOUNT, Admin, ClientFactory, assume

pytestmark = pytest.mark.sandbox

ESTATE = """\
regions: {us-east-1: us-east-2, us-west-2: us-west-1}
timing: {drs_launch_seconds: [0.1, 0.3]}
faults: {drs_launch_failure_rate: 0.1, throttle_rate: 0, drop_native_event_rate: 0}
customers:
  - name: acme
    account: "111111111111"
    region: us-east-1
    environments:
      - name: production
        generate: {servers: 6, waves: 2}
        servers:
          - {name: acme-prod-legacy-01, wave: 2, ip: 10.1.10.200, twin: false,
             replication: {state: STALLED, lag_seconds: 4000}}
  - name: globex
    account: "222222222222"
    region: us-west-2
    environments:
      - name: staging
        generate: {servers: 4, waves: 2}
"""


@pytest.fixture(scope="module")
def estate() -> Estate:
    return parse_estate(ESTATE)


@pytest.fixture(scope="module")
def seeded(admin: Admin, estate: Estate) -> SeedSummary:
    admin.post("/_sandbox/reset")
    return seed_estate(estate, admin.url, orchestration_region="us-east-2")


def instances(ec2: Any) -> dict[str, dict[str, Any]]:
    out = {}
    for reservation in ec2.describe_instances()["Reservations"]:
        for instance in reservation["Instances"]:
            tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
            out[tags["Name"]] = {**instance, "TagMap": tags}
    return out


def test_seeding_creates_the_expected_counts(seeded: SeedSummary) -> None:
    assert [c.name for c in seeded.customers] == ["acme", "globex"]
    assert seeded.counts() == {
        "customers": 2,
        "registry_parameters": 2,
        "vpcs": 4,
        "subnets": 4,
        "primary_instances": 11,
        "twins": 10,
        "existing_instances": 0,
        "source_servers": 11,
        "indexes": 4,
        "views": 2,
    }


def test_the_registry_lives_in_the_orchestration_account(
    seeded: SeedSummary, client: ClientFactory, estate: Estate
) -> None:
    ssm = client("ssm", region="us-east-2")
    entry = CustomerEntry.model_validate_json(
        ssm.get_parameter(Name=parameter_name("acme"))["Parameter"]["Value"]
    )
    assert entry.account == "111111111111"
    assert entry.regions == {"us-east-1": "us-east-2"}
    assert [(e.name, e.production) for e in entry.environments] == [("production", True)]
    assert entry.external_id == "dr-acme" and entry.role_name == "dr-orchestrator-workload"
    assert seeded.customers[0] == entry
    globex = CustomerEntry.model_validate_json(
        ssm.get_parameter(Name=parameter_name("globex"))["Parameter"]["Value"]
    )
    assert globex.regions == {"us-west-2": "us-west-1"}
    assert globex.environments[0].production is False


def test_instances_are_attributed_to_the_customer_account(
    seeded: SeedSummary, client: ClientFactory, estate: Estate
) -> None:
    from moto.ec2.models import ec2_backends

    # moto itself holds acme's instances under acme's account, not the default one
    assert len(ec2_backends["111111111111"]["us-east-1"].all_instances()) == 7
    assert len(ec2_backends["111111111111"]["us-east-2"].all_instances()) == 6
    default = ec2_backends[DEFAULT_ACCOUNT]
    assert all(not backend.all_instances() for backend in default.values())

    creds = assume(client, "111111111111", "dr-acme")
    primary = instances(client("ec2", region="us-east-1", creds=creds))
    dr = instances(client("ec2", region="us-east-2", creds=creds))
    servers = {s.name: s for s in estate.servers() if s.customer == "acme"}
    assert set(primary) == set(servers)
    assert set(dr) == {n for n, s in servers.items() if s.twin}
    for name, server in servers.items():
        assert primary[name]["State"]["Name"] == "running"
        assert primary[name]["PrivateIpAddress"] == server.ip
        assert primary[name]["TagMap"] == server.tags
        if not server.twin:
            continue
        twin = dr[name]
        assert twin["State"]["Name"] == "stopped"
        assert twin["PrivateIpAddress"] == server.dr_ip
        assert twin["PrivateIpAddress"].split(".")[-1] == server.ip.split(".")[-1]
        assert twin["TagMap"] == {
            "Name": name,
            "Customer": "acme",
            "Environment": "production",
            "AWSDRS": "AllowLaunchingIntoThisInstance",
        }


def test_drs_replicates_every_server_into_the_dr_region(
    seeded: SeedSummary, client: ClientFactory, estate: Estate
) -> None:
    creds = assume(client, "111111111111", "dr-acme")
    primary = instances(client("ec2", region="us-east-1", creds=creds))
    items = client("drs", region="us-east-2", creds=creds).describe_source_servers()["items"]
    by_instance = {s["sourceProperties"]["identificationHints"]["awsInstanceID"]: s for s in items}
    assert set(by_instance) == {i["InstanceId"] for i in primary.values()}
    legacy = by_instance[primary["acme-prod-legacy-01"]["InstanceId"]]
    assert legacy["dataReplicationInfo"]["dataReplicationState"] == "STALLED"
    assert legacy["dataReplicationInfo"]["lagDuration"] == "PT1H6M40S"
    assert legacy["sourceCloudProperties"]["originRegion"] == "us-east-1"
    assert legacy["sourceProperties"]["identificationHints"]["hostname"] == "acme-prod-legacy-01"
    # Nothing in the default account, nor in the primary region
    assert client("drs", region="us-east-2").describe_source_servers()["items"] == []
    assert client("drs", region="us-east-1", creds=creds).describe_source_servers()["items"] == []


def test_resource_explorer_finds_the_servers_but_never_a_twin(
    seeded: SeedSummary, client: ClientFactory
) -> None:
    creds = assume(client, "111111111111", "dr-acme")
    rex = client("resource-explorer-2", region="us-east-2", creds=creds)
    found = rex.search(
        QueryString="tag:dr:enabled=true tag:Customer=acme tag:Environment=production"
    )
    assert found["Count"] == {"TotalResources": 7, "Complete": True}
    assert {r["Region"] for r in found["Resources"]} == {"us-east-1"}
    assert all(r["Properties"][0]["Name"] == "tags" for r in found["Resources"])


def test_timing_and_faults_are_applied(seeded: SeedSummary, admin: Admin) -> None:
    config = admin.get("/_sandbox/config")
    assert config["drs_launch_seconds"] == [0.1, 0.3]
    assert config["drs_launch_failure_rate"] == 0.1


def test_seeding_again_creates_nothing_new(
    seeded: SeedSummary, admin: Admin, client: ClientFactory, estate: Estate
) -> None:
    again = seed_estate(estate, admin.url, orchestration_region="us-east-2")
    assert again.counts() == {
        "customers": 2,
        "registry_parameters": 2,
        "vpcs": 0,
        "subnets": 0,
        "primary_instances": 0,
        "twins": 0,
        "existing_instances": 21,
        "source_servers": 11,
        "indexes": 0,
        "views": 0,
    }
    creds = assume(client, "111111111111", "dr-acme")
    assert (
        len(client("drs", region="us-east-2", creds=creds).describe_source_servers()["items"]) == 7
    )
    assert len(instances(client("ec2", region="us-east-1", creds=creds))) == 7
