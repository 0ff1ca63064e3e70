"""End to end in the sandbox for managed services: EFS replication and Route 53 failover of load
balancer names, through discovery, the coordinator's waves and the managed service, with `drctl`
as the operator runs it.

- failover then failback of an environment with an EFS file system, an ALB whose name fails over
  (PRIMARY/SECONDARY records, health check on the primary) and a drs server that owns an A record
  in the environment's private zone: the record follows the server (choreography drs -> managed);
- a drill: everything validated, nothing flipped or deleted;
- EFS replication lag over the RPO: a clear failure, the replication left as it was.

Each scenario has its own customer (seeded into the package's sandbox) so nothing is shared.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from drcore.aws import AccountAccess, AwsClients
from drcore.state import read_operation
from sandbox.daemon import Sandbox
from sandbox.estate import Estate, parse_estate
from sandbox.seed import seed_estate

pytestmark = pytest.mark.sandbox

PRIMARY, DR = "us-east-1", "us-east-2"
ROUND, DRILL, LATE, CHAIN = "mgd-round", "mgd-drill", "mgd-late", "mgd-chain"
ACCOUNTS = {
    ROUND: "444444444441",
    DRILL: "444444444442",
    LATE: "444444444443",
    CHAIN: "444444444444",
}


def estate_yaml() -> str:
    return f"""
regions: {{{PRIMARY}: {DR}}}
timing: {{drs_launch_seconds: [0.2, 0.5]}}
customers:
  - name: {ROUND}
    account: "{ACCOUNTS[ROUND]}"
    region: {PRIMARY}
    environments:
      - name: staging
        bubble_network: false
        servers:
          - name: {ROUND}-app-01
            wave: 1
            ip: 10.61.10.20
            tags: {{dr:managed:dns-record: "{ROUND}.internal/app01.{ROUND}.internal"}}
        private_zone: {ROUND}.internal
        efs: [{{name: {ROUND}-files, wave: 1}}]
        load_balancers: [{{name: {ROUND}-web, wave: 1}}]
  - name: {DRILL}
    account: "{ACCOUNTS[DRILL]}"
    region: {PRIMARY}
    environments:
      - name: staging
        bubble_network: false
        efs: [{{name: {DRILL}-files, wave: 1}}]
        load_balancers: [{{name: {DRILL}-web, wave: 1}}]
        caches: [{{name: {DRILL}-sessions, wave: 1}}]
  - name: {LATE}
    account: "{ACCOUNTS[LATE]}"
    region: {PRIMARY}
    environments:
      - name: staging
        bubble_network: false
        efs: [{{name: {LATE}-files, wave: 1, lag_seconds: 7200}}]
  - name: {CHAIN}
    account: "{ACCOUNTS[CHAIN]}"
    region: {PRIMARY}
    environments:
      - name: staging
        bubble_network: false
        servers:
          - name: {CHAIN}-db-01
            wave: 1
            ip: 10.62.10.30
            tags: {{dr:managed:dns-record: "{CHAIN}.internal/db01.{CHAIN}.internal"}}
        private_zone: {CHAIN}.internal
        efs: [{{name: {CHAIN}-files, wave: 1}}]
        caches: [{{name: {CHAIN}-sessions, wave: 1}}]
"""


@pytest.fixture(scope="module")
def estate(sandbox: Sandbox) -> Estate:
    parsed = parse_estate(estate_yaml(), "<managed e2e estate>")
    summary = seed_estate(parsed, sandbox.url, orchestration_region=DR)
    sandbox.connect(summary.customers)
    return parsed


def drctl_json(sandbox: Sandbox, *args: str) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "--endpoint-url", sandbox.url, *args, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    try:
        return done.returncode, json.loads(done.stdout)
    except json.JSONDecodeError:
        message = f"drctl {args}: {done.returncode}\n{done.stdout}\n{done.stderr}"
        raise AssertionError(message) from None


def workload(sandbox: Sandbox, customer: str, service: str, region: str) -> Any:
    access = AccountAccess(ACCOUNTS[customer], "dr-orchestrator-workload", f"dr-{customer}")
    return AwsClients(sandbox.settings).workload_client(service, region, access)


def eventually(check: Callable[[], Any], timeout: float = 30, every: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


def efs_state(sandbox: Sandbox, customer: str) -> dict[str, Any]:
    efs_p, efs_d = (workload(sandbox, customer, "efs", r) for r in (PRIMARY, DR))
    [source] = efs_p.describe_file_systems(CreationToken=f"{customer}-staging-{customer}-files")[
        "FileSystems"
    ]
    [replica] = efs_d.describe_file_systems(
        CreationToken=f"{customer}-staging-{customer}-files-dr"
    )["FileSystems"]
    try:
        replications = efs_p.describe_replication_configurations(
            FileSystemId=source["FileSystemId"]
        )["Replications"]
    except efs_p.exceptions.ReplicationNotFound:
        replications = []
    return {
        "source": source["FileSystemId"],
        "replica": replica["FileSystemId"],
        "replica_protection": replica["FileSystemProtection"]["ReplicationOverwriteProtection"],
        "source_protection": source["FileSystemProtection"]["ReplicationOverwriteProtection"],
        "directions": [
            (r["SourceFileSystemId"], r["Destinations"][0]["FileSystemId"]) for r in replications
        ],
    }


def inverted(sandbox: Sandbox, customer: str) -> bool:
    route53 = workload(sandbox, customer, "route53", DR)
    checks = route53.list_health_checks()["HealthChecks"]
    [mine] = [c for c in checks if c["CallerReference"].startswith(f"dr-sandbox-{customer}-")]
    return bool(mine["HealthCheckConfig"].get("Inverted"))


def a_record(sandbox: Sandbox, customer: str, name: str) -> list[str]:
    route53 = workload(sandbox, customer, "route53", DR)
    zones = route53.list_hosted_zones_by_name(DNSName=f"{customer}.internal.")["HostedZones"]
    zone = zones[0]["Id"].split("/")[-1]
    sets = route53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    return [
        r["Value"]
        for s in sets
        if s["Name"] == name and s["Type"] == "A"
        for r in s["ResourceRecords"]
    ]


def cname(sandbox: Sandbox, customer: str, name: str) -> list[str]:
    route53 = workload(sandbox, customer, "route53", DR)
    zone_name = f"{customer}-staging.svc.sandbox.example."
    zones = route53.list_hosted_zones_by_name(DNSName=zone_name)["HostedZones"]
    zone = zones[0]["Id"].split("/")[-1]
    sets = route53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    return [r["Value"] for s in sets if s["Name"] == name for r in s.get("ResourceRecords", [])]


def by_strategy(status: dict[str, Any]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for resource in status["resources"]:
        out.setdefault(resource["strategy"], set()).add(resource["state"])
    return out


def test_given_a_server_owning_a_record_when_drs_recovers_it_then_the_record_follows(
    sandbox: Sandbox, estate: Estate
) -> None:
    # Given a server whose A record lives in the environment's private zone, and a file system
    record = f"db01.{CHAIN}.internal."
    assert a_record(sandbox, CHAIN, record) == ["10.62.10.30"]

    # When the environment fails over
    code, failover = drctl_json(
        sandbox, "failover", "-c", CHAIN, "-e", "staging", "--yes", "--wait"
    )

    # Then drs recovered the server, the managed service moved its record to the DR address
    # (on drs's ResourceRecovered: choreography) and made the file system's replica writable
    assert code == 0, failover
    assert by_strategy(failover) == {"drs": {"RECOVERED"}, "managed-service": {"RECOVERED"}}
    assert eventually(lambda: a_record(sandbox, CHAIN, record) == ["10.162.10.30"])
    after = efs_state(sandbox, CHAIN)
    assert after["directions"] == [] and after["replica_protection"] == "ENABLED"
    # and switched the cache's endpoint record to the DR twin
    cache = workload(sandbox, CHAIN, "elasticache", DR)
    [twin] = cache.describe_replication_groups(ReplicationGroupId=f"{CHAIN}-sessions-dr")[
        "ReplicationGroups"
    ]
    endpoint = twin["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
    assert cname(sandbox, CHAIN, f"{CHAIN}-sessions.{CHAIN}-staging.svc.sandbox.example.") == [
        endpoint
    ]


@pytest.mark.slow
def test_given_managed_resources_when_failing_over_and_back_then_each_follows(
    sandbox: Sandbox, estate: Estate
) -> None:
    record = f"app01.{ROUND}.internal."
    # Given a replicating file system, a load balancer name on its primary, a server's record
    before = efs_state(sandbox, ROUND)
    assert before["directions"] == [(before["source"], before["replica"])]
    assert before["replica_protection"] == "REPLICATING" and not inverted(sandbox, ROUND)
    assert a_record(sandbox, ROUND, record) == ["10.61.10.20"]

    # When the environment fails over
    code, failover = drctl_json(
        sandbox, "failover", "-c", ROUND, "-e", "staging", "--yes", "--wait"
    )

    # Then every resource recovered: the replica is writable, the name answers the DR load
    # balancer, and the server's A record follows it to its DR address (drs -> managed)
    assert code == 0, failover
    assert by_strategy(failover) == {"drs": {"RECOVERED"}, "managed-service": {"RECOVERED"}}
    after = efs_state(sandbox, ROUND)
    assert after["directions"] == [] and after["replica_protection"] == "ENABLED"
    assert inverted(sandbox, ROUND)
    assert eventually(lambda: a_record(sandbox, ROUND, record) == ["10.161.10.20"])

    # When it fails back
    code, failback = drctl_json(
        sandbox, "failback", "-c", ROUND, "-e", "staging", "--yes", "--wait"
    )

    # Then the original file system is writable and replicates to the DR region again, the name
    # answers the primary, and the record is back at the primary address
    assert code == 0, failback
    assert by_strategy(failback) == {"drs": {"RECOVERED"}, "managed-service": {"RECOVERED"}}
    back = efs_state(sandbox, ROUND)
    assert back["directions"] == [(before["source"], before["replica"])]
    assert back["source_protection"] != "REPLICATING"
    assert not inverted(sandbox, ROUND)
    assert eventually(lambda: a_record(sandbox, ROUND, record) == ["10.61.10.20"])


def test_given_a_drill_then_managed_resources_are_validated_and_nothing_flips(
    sandbox: Sandbox, estate: Estate
) -> None:
    before = efs_state(sandbox, DRILL)
    code, drill = drctl_json(sandbox, "drill", "-c", DRILL, "-e", "staging", "--wait")
    assert code == 0, drill
    assert by_strategy(drill) == {"managed-service": {"RECOVERED"}}
    assert efs_state(sandbox, DRILL) == before
    assert not inverted(sandbox, DRILL)


def test_given_efs_lag_over_rpo_when_failing_over_then_it_fails_clearly_and_keeps_replicating(
    sandbox: Sandbox, estate: Estate
) -> None:
    before = efs_state(sandbox, LATE)
    code, started = drctl_json(sandbox, "failover", "-c", LATE, "-e", "staging", "--yes")
    assert code == 0, started
    operation_id = started["operation_id"]
    table = boto3.resource("dynamodb", endpoint_url=sandbox.url, region_name=DR).Table(
        sandbox.settings.operations_table
    )

    def ended() -> bool:
        view = read_operation(table, operation_id)
        return view is not None and view.state in ("PAUSED", "FAILED", "COMPLETED")

    assert eventually(ended, timeout=60), f"{operation_id} did not stop"
    _, status = drctl_json(sandbox, "status", operation_id)
    assert status["state"] in ("PAUSED", "FAILED"), status
    [resource] = status["resources"]
    assert resource["state"] == "FAILED"
    assert "EFS_LAG_OVER_RPO" in json.dumps(resource), resource
    assert efs_state(sandbox, LATE) == before  # nothing deleted, the replica still read-only
