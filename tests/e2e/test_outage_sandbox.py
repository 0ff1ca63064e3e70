"""Primary-region outage and DR posture, end to end in the sandbox.

- The `regions_down` knob fails every call to a region that is down (moto and the emulators,
  HTTP 503 or a dropped connection), from `POST /_sandbox/config` or an estate's `faults`.
- With the primary region down, `drctl failover` plans from the DR-region inventory cache and
  completes; a stale cache is warned about; nothing after discovery's one probe calls the
  primary region, and with `--use-cached-inventory` nothing at all does.
- A refresh during the outage keeps the last snapshot and says so; `drctl inventory show` lists
  the versions and their ages; the discovery service's schedule refreshes the cache.
- `drctl readiness` over an estate seeded with one of each problem finds each, and nothing else.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError

from drcore import tags as T
from drcore.aws import AwsClients
from events.schemas.models import utc_now
from sandbox.daemon import Sandbox
from sandbox.estate import load_estate, parse_estate
from sandbox.seed import seed_estate
from services.discovery.adapters import InventoryTable
from services.discovery.metrics import RecordingSink
from services.discovery.refresh import InventoryRefresher

from .conftest import ESTATES, FAST_LAUNCH

pytestmark = pytest.mark.sandbox

PRIMARY, DR = "us-east-1", "us-east-2"
OUTAGE_ESTATE = """
regions: {us-east-1: us-east-2}
timing: {drs_launch_seconds: [0.3, 1.2]}
customers:
  - name: hooli
    account: "777777777701"
    region: us-east-1
    environments:
      - name: production
        generate: {servers: 8, waves: 2}
      - name: staging
        generate: {servers: 6, waves: 2}
"""
# A customer of the other region pair, seeded while its own primary region is down: the seeder
# builds the world whatever the outage knob says.
WEST_ESTATE = """
regions: {us-west-2: us-west-1}
timing: {drs_launch_seconds: [0.3, 1.2]}
faults: {regions_down: [us-west-2]}
customers:
  - name: wayne
    account: "777777777702"
    region: us-west-2
    environments:
      - name: production
        generate: {servers: 2, waves: 1}
"""
SOUND_ESTATE = """
regions: {us-east-1: us-east-2}
timing: {drs_launch_seconds: [0.3, 1.2]}
customers:
  - name: stark
    account: "777777777703"
    region: us-east-1
    environments:
      - name: production
        generate: {servers: 4, waves: 2}
"""
ONE_TRY = Config(retries={"mode": "standard", "total_max_attempts": 1})


class Log:
    def info(self, *args: Any, **kwargs: Any) -> None: ...
    def warning(self, *args: Any, **kwargs: Any) -> None: ...
    def error(self, *args: Any, **kwargs: Any) -> None: ...


def admin(sandbox: Sandbox, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        sandbox.url + path,
        data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def drctl(sandbox: Sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "--endpoint-url", sandbox.url, *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def set_down(sandbox: Sandbox, *regions: str) -> None:
    admin(sandbox, "/_sandbox/config", {"regions_down": list(regions)})


def refused(sandbox: Sandbox) -> dict[str, Any]:
    return dict(admin(sandbox, "/_sandbox/stats").get("refused", {}).get(PRIMARY, {}))


def delta(after: dict[str, Any], before: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Refused calls by 'caller/service' -> operation -> count, new since `before`."""
    out: dict[str, dict[str, int]] = {}
    for caller, services in after.items():
        for service, operations in services.items():
            for operation, count in operations.items():
                old = before.get(caller, {}).get(service, {}).get(operation, 0)
                if count > old:
                    out.setdefault(f"{caller}/{service}", {})[operation] = count - old
    return out


def workload(sandbox: Sandbox, service: str, account: str, customer: str, region: str) -> Any:
    creds = boto3.client("sts", endpoint_url=sandbox.url, region_name=DR).assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/dr-orchestrator-workload",
        RoleSessionName="e2e-outage",
        ExternalId=f"dr-{customer}",
    )["Credentials"]
    return boto3.client(
        service,
        endpoint_url=sandbox.url,
        region_name=region,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        config=ONE_TRY,
    )


@pytest.fixture(scope="module")
def seeded(sandbox: Sandbox) -> Sandbox:
    summary = seed_estate(parse_estate(OUTAGE_ESTATE, "outage.yaml"), sandbox.url)
    sandbox.connect(summary.customers)
    admin(sandbox, "/_sandbox/config", {"drs_launch_seconds": FAST_LAUNCH})
    return sandbox


@pytest.fixture
def no_outage_after(sandbox: Sandbox) -> Iterator[None]:
    yield
    set_down(sandbox)


def in_process_refresh(sandbox: Sandbox, minutes_ago: float = 0) -> None:
    """A refresh as the discovery service runs it, dated `minutes_ago` (a cache that old)."""
    at = utc_now() - timedelta(minutes=minutes_ago)
    refresher = InventoryRefresher.from_settings(
        Log(),
        sandbox.settings,
        clients=AwsClients(sandbox.settings),
        metrics=RecordingSink(),
        now=lambda: at,
    )
    assert refresher.refresh(requested_by="e2e").manifest is not None


# --- the knob -----------------------------------------------------------------------------------


def test_a_region_down_fails_every_service_there_and_nothing_elsewhere(
    sandbox: Sandbox, no_outage_after: None
) -> None:
    # Given an estate whose faults take its primary region down, seeded all the same
    summary = seed_estate(parse_estate(WEST_ESTATE, "west.yaml"), sandbox.url)
    assert summary.primary_instances == 2
    assert admin(sandbox, "/_sandbox/config")["regions_down"] == ["us-west-2"]

    # When clients call services of the region that is down: moto's and the emulators' alike
    calls = {
        "ec2": lambda c: c.describe_instances(),
        "sqs": lambda c: c.list_queues(),
        "dynamodb": lambda c: c.list_tables(),
        "resourcegroupstaggingapi": lambda c: c.get_resources(),
        "drs": lambda c: c.describe_jobs(filters={}),
        "resource-explorer-2": lambda c: c.list_indexes(),
    }
    for service, call in calls.items():
        client = workload(sandbox, service, "777777777702", "wayne", "us-west-2")
        # Then each answers 503 Service Unavailable, as an AWS front end with nothing behind
        with pytest.raises(ClientError) as failed:
            call(client)
        assert failed.value.response["Error"]["Code"] == "503", service
        assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    # while its DR region answers
    dr = workload(sandbox, "drs", "777777777702", "wayne", "us-west-1")
    assert len(dr.describe_source_servers(filters={})["items"]) == 2

    # When the outage drops connections instead
    admin(sandbox, "/_sandbox/config", {"outage_mode": "connection"})
    with pytest.raises(ConnectionClosedError):
        workload(sandbox, "ec2", "777777777702", "wayne", "us-west-2").describe_instances()

    # Then every refused call is counted, and a bad region name is refused naming it
    stats = admin(sandbox, "/_sandbox/stats")["refused"]["us-west-2"]["services"]
    assert stats["ec2"]["DescribeInstances"] >= 2 and stats["drs"]["DescribeJobs"] == 1
    with pytest.raises(urllib.error.HTTPError) as bad:
        admin(sandbox, "/_sandbox/config", {"regions_down": ["mars-north-1x"]})
    assert "regions_down" in bad.value.read().decode()

    # And once the region is back, its calls succeed again
    set_down(sandbox)
    assert "regions_down" not in admin(sandbox, "/_sandbox/config")
    ec2 = workload(sandbox, "ec2", "777777777702", "wayne", "us-west-2")
    assert len(ec2.describe_instances()["Reservations"]) == 2


# --- failover during an outage -----------------------------------------------------------------


def test_given_the_primary_region_down_then_failover_plans_from_the_cache_and_completes(
    seeded: Sandbox, no_outage_after: None
) -> None:
    sandbox = seeded
    # Given a cache refreshed 45 minutes ago, then the primary region goes down
    in_process_refresh(sandbox, minutes_ago=45)
    set_down(sandbox, PRIMARY)
    before = refused(sandbox)

    # When staging is failed over (no flag: discovery finds the region down by itself)
    # (without re-protection: reverse replication targets the region that is down)
    stale = drctl(
        sandbox,
        "failover",
        "-c",
        "hooli",
        "-e",
        "staging",
        "--no-reprotect",
        "--wait",
        "-o",
        "json",
    )

    # Then it completes from the cache, and the operator is warned that the cache is stale
    assert stale.returncode == 0, stale.stderr
    status = json.loads(stale.stdout)
    assert status["state"] == "COMPLETED"
    assert {r["state"] for r in status["resources"]} == {"RECOVERED"}
    assert len(status["resources"]) == 6
    assert all(
        r["private_ip"].split(".")[-1] == r["dr_private_ip"].split(".")[-1]
        for r in status["resources"]
    )
    assert status["plan"]["plan_source"] == "inventory-cache"
    assert status["plan"]["inventory_age_seconds"] >= 45 * 60
    codes = {w["code"] for w in status["plan"]["warnings"]}
    assert {"PLANNED_FROM_CACHE", "CACHE_AGE_CRITICAL"} <= codes
    assert "CACHE_AGE_CRITICAL" in stale.stderr and "inventory-cache" in stale.stderr
    # and the primary region saw only best-effort EC2 reads (discovery's probe, the drs
    # service's boot-mode check): nothing in the recovery path needs the primary region
    assert set(delta(refused(sandbox), before)) == {"services/ec2"}
    assert set(delta(refused(sandbox), before)["services/ec2"]) == {"DescribeInstances"}

    # Given a fresh cache (refreshed before the outage)
    set_down(sandbox)
    in_process_refresh(sandbox)
    set_down(sandbox, PRIMARY)
    before = refused(sandbox)

    # When production is failed over from the cache on purpose
    fresh = drctl(
        sandbox,
        "failover",
        "-c",
        "hooli",
        "-e",
        "production",
        "--yes",
        "--approval",
        "none",
        "--use-cached-inventory",
        "--no-reprotect",
        "--wait",
        "-o",
        "json",
    )

    # Then it completes without a staleness warning, and discovery never called the primary
    # region (what remains is the drs service's best-effort boot-mode read)
    assert fresh.returncode == 0, fresh.stderr
    status = json.loads(fresh.stdout)
    assert status["state"] == "COMPLETED" and len(status["resources"]) == 8
    assert status["plan"]["plan_source"] == "inventory-cache"
    assert status["plan"]["inventory_age_seconds"] < 20 * 60
    assert not {"CACHE_AGE_WARNING", "CACHE_AGE_CRITICAL"} & {
        w["code"] for w in status["plan"]["warnings"]
    }
    assert set(delta(refused(sandbox), before)) <= {"services/ec2"}
    assert set(delta(refused(sandbox), before).get("services/ec2", {})) <= {"DescribeInstances"}


def test_given_an_outage_a_refresh_keeps_the_last_snapshot_and_show_lists_versions(
    seeded: Sandbox, no_outage_after: None
) -> None:
    sandbox = seeded
    # Given a cache refreshed by the discovery service's own schedule
    table = InventoryTable(
        boto3.client("dynamodb", endpoint_url=sandbox.url, region_name=DR),
        sandbox.settings.inventory_table,
    )
    started = utc_now()
    sandbox.runtime.send_scheduled("discovery", "inventory-refresh")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        latest = next(iter(table.manifests(limit=1)), None)
        if latest is not None and latest.captured_at >= started:
            break
        time.sleep(0.5)
    else:
        pytest.fail("the scheduled refresh did not run")
    kept = {(s.customer, s.environment): s for s in latest.scopes}[("hooli", "production")]
    assert kept.refreshed and kept.resources == 8

    # When the primary region goes down and an operator refreshes
    set_down(sandbox, PRIMARY)
    result = drctl(sandbox, "inventory", "refresh", "-o", "json")

    # Then the refresh is not complete and hooli's snapshot is kept, flagged with the reason
    assert result.returncode == 1, result.stderr
    manifest = json.loads(result.stdout)
    assert manifest["outcome"] in ("partial", "failed")  # partial: the us-west-2 pair is up
    hooli = {s["environment"]: s for s in manifest["scopes"] if s["customer"] == "hooli"}
    assert not hooli["production"]["refreshed"]
    assert hooli["production"]["version"] == latest.version
    assert "503" in hooli["production"]["error"]
    assert ("SCOPE_NOT_REFRESHED", "production") in {
        (f["code"], f["environment"]) for f in manifest["findings"] if f["customer"] == "hooli"
    }

    # And `inventory show` lists the versions with their ages, and the scope's current one
    shown = drctl(sandbox, "inventory", "show", "-c", "hooli", "-o", "json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert [c["version"] for c in data["current"]] == [latest.version, latest.version]
    assert all(c["age_seconds"] is not None and c["status"] == "ok" for c in data["current"])
    versions = [v["version"] for v in data["versions"]]
    assert versions == sorted(versions, reverse=True) and latest.version in versions
    assert data["versions"][0]["outcome"] == manifest["outcome"]
    assert all(v["age_seconds"] >= 0 for v in data["versions"])
    assert data["status"]["last_error"] and "503" in data["status"]["last_error"]
    text = drctl(sandbox, "inventory", "show", "-c", "hooli")
    assert text.returncode == 0 and "Versions" in text.stdout


# --- readiness ----------------------------------------------------------------------------------

INITECH = "333333333333"


def break_twins(sandbox: Sandbox) -> None:
    """The problems the estate format cannot express, made through the EC2 API."""
    dr = workload(sandbox, "ec2", INITECH, "initech", DR)
    primary = workload(sandbox, "ec2", INITECH, "initech", PRIMARY)
    twins = {
        _tag(i, T.NAME): i["InstanceId"]
        for r in dr.describe_instances(
            Filters=[{"Name": "instance-state-name", "Values": ["stopped", "running"]}]
        )["Reservations"]
        for i in r["Instances"]
    }
    # app-06: its twin no longer allows DRS to launch into it
    dr.delete_tags(Resources=[twins["initech-prod-app-06"]], Tags=[{"Key": T.DRS_LAUNCH_INTO}])
    # app-07: its twin replaced by one with another last octet
    dr.terminate_instances(InstanceIds=[twins["initech-prod-app-07"]])
    _run(dr, "initech-prod-app-07", "10.103.10.207", twin=True)
    # app-09: a new DR-tagged server with a twin, but no DRS agent (no source server)
    _run(primary, "initech-prod-app-09", "10.3.10.39", twin=False)
    _run(dr, "initech-prod-app-09", "10.103.10.39", twin=True)


def _run(ec2: Any, name: str, ip: str, twin: bool) -> None:
    subnet = ec2.describe_subnets(Filters=[{"Name": "tag:Name", "Values": ["initech-dr-sandbox"]}])
    tags = {T.NAME: name, T.CUSTOMER: "initech", T.ENVIRONMENT: "production"}
    if twin:
        tags[T.DRS_LAUNCH_INTO] = T.DRS_LAUNCH_INTO_VALUE
    else:
        tags |= {
            T.ENABLED: "true",
            T.PRIORITY: "medium",
            T.WAVE: "4",
            T.STRATEGY: "drs",
            T.RTO_TARGET: "240",
            T.RPO_TARGET: "15",
        }
    ec2.run_instances(
        ImageId="ami-12c6146b",
        MinCount=1,
        MaxCount=1,
        SubnetId=subnet["Subnets"][0]["SubnetId"],
        PrivateIpAddress=ip,
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        ],
    )


def _tag(instance: dict[str, Any], key: str) -> str:
    return next((t["Value"] for t in instance.get("Tags", []) if t["Key"] == key), "")


def test_given_an_estate_with_one_of_each_problem_then_readiness_finds_each_and_nothing_else(
    sandbox: Sandbox,
) -> None:
    # Given the readiness-problems estate, three more problems made through EC2, a fresh cache
    summary = seed_estate(load_estate(ESTATES / "readiness-problems.yaml"), sandbox.url)
    sandbox.connect(summary.customers)
    break_twins(sandbox)
    assert drctl(sandbox, "inventory", "refresh").returncode in (0, 1)

    # When the readiness report runs (nothing is started)
    result = drctl(
        sandbox, "readiness", "-c", "initech", "-e", "production", "-o", "json", "--emit-metrics"
    )

    # Then it exits 1 (critical findings) and lists exactly the problems, one per server
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    found = sorted((f["code"], f["name"] or f["resource_id"]) for f in report["findings"])
    assert found == sorted(
        [
            ("NOT_REPLICATING", "initech-prod-db-01"),
            ("LAG_OVER_RPO", "initech-prod-db-02"),
            ("MISSING_TWIN", "initech-prod-app-01"),
            ("TWIN_OS_MISMATCH", "initech-prod-app-02"),
            ("MISSING_TAG", "initech-prod-app-03"),
            ("INVALID_TAG", "initech-prod-app-04"),
            ("REPLICATING_NOT_TAGGED", "initech-prod-app-05"),
            ("TWIN_NOT_LAUNCH_TARGET", "initech-prod-app-06"),
            ("TWIN_IP_MISMATCH", "initech-prod-app-07"),
            ("NOT_REPLICATING", "initech-prod-app-09"),
            ("WAVE_GAP", "*"),
        ]
    )
    assert report["ready"] is False and report["critical"] == 9 and report["warnings"] == 2
    (scope,) = report["scopes"]
    assert (scope["resources"], scope["waves"]) == (12, [1, 2, 4])
    # and the same findings went out as metrics (EMF on stderr)
    documents = [json.loads(line) for line in result.stderr.splitlines() if '"_aws"' in line]
    totals = next(d for d in documents if "ReadinessCriticalFindings" in d)
    assert totals["Customer"] == "initech" and totals["ReadinessCriticalFindings"] == [9.0]

    # And the terminal table says the same, while a sound estate is ready (exit 0)
    table = drctl(sandbox, "readiness", "-c", "initech")
    assert table.returncode == 1 and "NOT ready" in table.stdout
    sound = seed_estate(parse_estate(SOUND_ESTATE, "sound.yaml"), sandbox.url)
    sandbox.connect(sound.customers)
    assert drctl(sandbox, "inventory", "refresh").returncode == 0
    ready = drctl(sandbox, "readiness", "-c", "stark", "-o", "json")
    assert ready.returncode == 0, ready.stdout
    assert json.loads(ready.stdout)["findings"] == []
    bad = drctl(sandbox, "readiness", "-c", "nobody")
    assert bad.returncode == 2 and "'nobody'" in bad.stderr
