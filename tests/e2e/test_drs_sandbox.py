"""End to end in the sandbox: bubble-test drills with their teardown, the janitor after a crash,
failover -> failback (-> failover), and quota-limited failovers of several customers at once.

Each scenario has its own customers (estates below, seeded into the package's sandbox), so the
scenarios and the other end-to-end tests never share a server.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import datetime
from typing import Any

import boto3
import pytest

from drcore import tags as T
from drcore.aws import AccountAccess, AwsClients
from sandbox.daemon import Sandbox
from sandbox.estate import Estate, parse_estate
from sandbox.seed import seed_estate

pytestmark = pytest.mark.sandbox

DR, PRIMARY = "us-east-2", "us-east-1"
FAST = [0.2, 0.6]


def estate_yaml(customers: str, quotas: str = "") -> str:
    return f"""
regions: {{{PRIMARY}: {DR}}}
timing: {{drs_launch_seconds: {FAST}}}
{quotas}
customers:
{customers}
"""


def customer_yaml(name: str, account: str, servers: int = 4, waves: int = 2) -> str:
    return f"""
  - name: {name}
    account: "{account}"
    region: {PRIMARY}
    environments:
      - name: staging
        generate: {{servers: {servers}, waves: {waves}}}
"""


# --- helpers --------------------------------------------------------------------------------------


def admin(sandbox: Sandbox, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        sandbox.url + path,
        data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def drctl(sandbox: Sandbox, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """drctl as an operator runs it: its own process, talking to the sandbox endpoint."""
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "--endpoint-url", sandbox.url, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def drctl_json(sandbox: Sandbox, *args: str) -> tuple[int, dict[str, Any]]:
    done = drctl(sandbox, *args, "-o", "json")
    try:
        return done.returncode, json.loads(done.stdout)
    except json.JSONDecodeError:
        raise AssertionError(
            f"drctl {args}: {done.returncode}\n{done.stdout}\n{done.stderr}"
        ) from None


def seed(sandbox: Sandbox, text: str) -> Estate:
    estate = parse_estate(text, "<drs e2e estate>")
    summary = seed_estate(estate, sandbox.url, orchestration_region=DR)
    sandbox.connect(summary.customers)
    return estate


def workload(sandbox: Sandbox, customer: str, account: str, service: str, region: str) -> Any:
    clients = AwsClients(sandbox.settings)
    return clients.workload_client(
        service, region, AccountAccess(account, "dr-orchestrator-workload", f"dr-{customer}")
    )


def eventually(check: Callable[[], Any], timeout: float = 120, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s: {check.__doc__ or check}")
        time.sleep(every)


def service_calls(sandbox: Sandbox) -> dict[str, dict[str, int]]:
    calls: dict[str, dict[str, int]] = admin(sandbox, "/_sandbox/stats")["calls_by_caller"].get(
        "services", {}
    )
    return calls


def calls_since(sandbox: Sandbox, before: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """The orchestration services' AWS calls since `before` (a `service_calls` snapshot)."""
    now = service_calls(sandbox)
    out: dict[str, dict[str, int]] = {}
    for service, ops in now.items():
        delta = {op: n - before.get(service, {}).get(op, 0) for op, n in ops.items()}
        if any(delta.values()):
            out[service] = {op: n for op, n in sorted(delta.items()) if n}
    return out


def per_server(calls: dict[str, dict[str, int]], servers: int) -> dict[str, float]:
    """AWS calls per server: by service, and all of them."""
    totals = {service: sum(ops.values()) for service, ops in calls.items()}
    out = {service: round(n / servers, 2) for service, n in sorted(totals.items())}
    return out | {"all": round(sum(totals.values()) / servers, 2)}


def instances(ec2: Any, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        i
        for page in ec2.get_paginator("describe_instances").paginate(Filters=filters)
        for r in page["Reservations"]
        for i in r["Instances"]
    ]


def launch_settings(drs: Any, source_server_id: str) -> dict[str, Any]:
    config = drs.get_launch_configuration(sourceServerID=source_server_id)
    config.pop("ResponseMetadata", None)
    return dict(config)


def tag(instance: dict[str, Any], key: str) -> str | None:
    return next((t["Value"] for t in instance.get("Tags", []) if t["Key"] == key), None)


# --- drills ---------------------------------------------------------------------------------------

DRILL_ACCOUNT = "444444444401"


@pytest.fixture(scope="module")
def drill_estate(sandbox: Sandbox) -> Estate:
    return seed(sandbox, estate_yaml(customer_yaml("bravo", DRILL_ACCOUNT, servers=6)))


def test_given_a_drill_when_it_ends_then_no_drill_instance_remains_and_production_is_untouched(
    sandbox: Sandbox, drill_estate: Estate
) -> None:
    drs = workload(sandbox, "bravo", DRILL_ACCOUNT, "drs", DR)
    ec2 = workload(sandbox, "bravo", DRILL_ACCOUNT, "ec2", DR)
    twins_before = {
        i["InstanceId"]: i["State"]["Name"]
        for i in instances(ec2, [{"Name": f"tag:{T.DRS_LAUNCH_INTO}", "Values": ["*"]}])
    }
    configs_before = {
        s["sourceServerID"]: launch_settings(drs, s["sourceServerID"])
        for s in drs.describe_source_servers()["items"]
    }
    before = service_calls(sandbox)

    # When the operator runs a drill and waits for it
    code, status = drctl_json(sandbox, "drill", "-c", "bravo", "-e", "staging", "--wait")

    # Then every server was recovered in drill mode inside the bubble, and torn down
    assert code == 0, status
    assert status["state"] == "COMPLETED"
    assert {r["state"] for r in status["resources"]} == {"RECOVERED"}
    teardown = status["drs"]["teardown"]
    assert teardown["state"] == "COMPLETED" and teardown["trigger"] == "operation-end"
    assert teardown["terminated"] == 6 and teardown["terminate_jobs"]
    operation_id = status["operation_id"]
    calls = calls_since(sandbox, before)

    bubble = ec2.describe_vpcs(
        Filters=[{"Name": "tag:Name", "Values": [T.bubble_network_name("bravo", "staging")]}]
    )["Vpcs"][0]["VpcId"]
    drilled = instances(ec2, [{"Name": f"tag:{T.BUBBLE_ID}", "Values": [operation_id]}])
    assert len(drilled) == 6
    for instance in drilled:
        assert instance["VpcId"] == bubble  # launched into the bubble network, nowhere else
        assert tag(instance, T.BUBBLE_ENABLED) == "true"
        assert datetime.fromisoformat(str(tag(instance, T.BUBBLE_TIMESTAMP)).replace("Z", "+00:00"))
        assert tag(instance, T.CUSTOMER) == "bravo"
        assert instance["State"]["Name"] in ("terminated", "shutting-down")
    assert {r["dr_resource_id"] for r in status["resources"]} == {i["InstanceId"] for i in drilled}
    # no drill recovery instance is left in DRS
    left = [r for r in drs.describe_recovery_instances()["items"] if r["isDrill"]]
    assert left == []
    # the jobs: drills, tagged for the operation, then TerminateRecoveryInstances
    jobs = drs.describe_jobs(filters={})["items"]
    launches = [j for j in jobs if j.get("tags", {}).get(T.JOB_OPERATION_ID) == operation_id]
    assert {j["initiatedBy"] for j in launches} == {"START_DRILL"}
    assert sum(len(j["participatingServers"]) for j in launches) == 6  # each server once
    terminated = [j for j in jobs if j["jobID"] in teardown["terminate_jobs"]]
    assert {j["type"] for j in terminated} == {"TERMINATE"}
    assert all(j["status"] == "COMPLETED" for j in terminated)

    # And production is as it was: twins never touched, launch settings and templates restored
    twins_after = {
        i["InstanceId"]: i["State"]["Name"]
        for i in instances(ec2, [{"Name": f"tag:{T.DRS_LAUNCH_INTO}", "Values": ["*"]}])
    }
    assert twins_after == twins_before
    for sid, before in configs_before.items():
        after = launch_settings(drs, sid)
        assert after == before
        template = ec2.describe_launch_templates(LaunchTemplateIds=[after["ec2LaunchTemplateID"]])
        assert template["LaunchTemplates"][0]["DefaultVersionNumber"] == 1
    tags_left = ec2.describe_tags(
        Filters=[{"Name": "resource-type", "Values": ["launch-template"]}]
    )["Tags"]
    assert not [t for t in tags_left if t["Key"].startswith("bubble-test:")]

    # And `drctl drill status` shows the teardown as completed
    status_code, shown = drctl_json(sandbox, "drill", "status", operation_id)
    assert status_code == 0 and shown["drs"]["teardown"]["state"] == "COMPLETED"
    print(f"\ndrill, AWS calls per server (services): {per_server(calls, 6)} {calls.get('drs')}")


def test_given_a_drill_kept_when_cleaned_up_then_its_instances_go(
    sandbox: Sandbox, drill_estate: Estate
) -> None:
    # Given a drill run with --keep
    code, status = drctl_json(sandbox, "drill", "-c", "bravo", "-e", "staging", "--keep", "--wait")
    assert code == 0, status
    operation_id = status["operation_id"]
    kept = status["drs"]["teardown"]
    assert kept["state"] == "KEPT" and kept["kept"] == 6
    drs = workload(sandbox, "bravo", DRILL_ACCOUNT, "drs", DR)
    assert len([r for r in drs.describe_recovery_instances()["items"] if r["isDrill"]]) == 6

    # When the operator cleans it up
    code, cleaned = drctl_json(sandbox, "drill", "cleanup", operation_id, "--wait")

    # Then the drill's instances are terminated and the teardown recorded
    assert code == 0, cleaned
    assert cleaned["drs"]["teardown"]["state"] == "COMPLETED"
    assert cleaned["drs"]["teardown"]["trigger"] == "cleanup-request"
    assert [r for r in drs.describe_recovery_instances()["items"] if r["isDrill"]] == []
    # a cleanup of something that is not a drill is refused
    refused = drctl(sandbox, "drill", "cleanup", "op-does-not-exist")
    assert refused.returncode == 2 and "op-does-not-exist" in refused.stderr


def test_given_a_drill_whose_service_crashed_mid_drill_then_the_janitor_cleans_up(
    sandbox: Sandbox, drill_estate: Estate
) -> None:
    from events.schemas import OperationType
    from services.drs.adapters import BotoWorkload
    from services.drs.drills import DrillLaunches
    from services.drs.records import LaunchBatch, LaunchContext, LaunchMember

    drs = workload(sandbox, "bravo", DRILL_ACCOUNT, "drs", DR)
    ec2 = workload(sandbox, "bravo", DRILL_ACCOUNT, "ec2", DR)
    port = BotoWorkload(drs, ec2)
    bubble = port.bubble_network(T.bubble_network_name("bravo", "staging"))
    servers = drs.describe_source_servers()["items"][:2]
    operation_id = "op-crashed-drill-0001"
    # Given a drill the service launched, then crashed: launch settings switched to the bubble,
    # StartRecovery called, nothing recorded, no teardown will ever come from the operation.
    members = []
    for server in servers:
        ip = server["sourceProperties"]["networkInterfaces"][0]["ips"][0]
        subnet, keeps = bubble.placement(ip)
        context = LaunchContext(
            resource_id=server["sourceProperties"]["identificationHints"]["awsInstanceID"],
            name=server["sourceProperties"]["identificationHints"]["hostname"],
            bubble_vpc=bubble.vpc_id,
            bubble_subnet=subnet.subnet_id,
            bubble_groups=bubble.security_groups,
            copy_private_ip=keeps,
        )
        members.append(LaunchMember(source_server_id=server["sourceServerID"], context=context))
    batch = LaunchBatch(
        batch_id="bcrashed",
        account=DRILL_ACCOUNT,
        region=DR,
        operation_id=operation_id,
        customer="bravo",
        environment="staging",
        operation=OperationType.BUBBLE_TEST,
        wave=1,
        enqueued_at=datetime.now().astimezone(),
        members=members,
    )
    DrillLaunches().prepare(port, batch, batch.enqueued_at)
    job = port.start_recovery([m.source_server_id for m in members], batch.job_tags(), drill=True)
    eventually(lambda: port.job(job.job_id).completed)  # type: ignore[union-attr]
    assert len([r for r in drs.describe_recovery_instances()["items"] if r["isDrill"]]) == 2

    # When the janitor runs with the default age limit, a drill this young is left alone
    janitor(sandbox, max_age_seconds=None)
    time.sleep(2)
    assert len([r for r in drs.describe_recovery_instances()["items"] if r["isDrill"]]) == 2

    # When the janitor runs once the drill is older than the limit
    janitor(sandbox, max_age_seconds=0)

    # Then the drill's instances are terminated and the launch templates restored
    def clean() -> bool:
        """no drill instance, no bubble-tagged template"""
        drills = [r for r in drs.describe_recovery_instances()["items"] if r["isDrill"]]
        templates = ec2.describe_tags(
            Filters=[
                {"Name": "resource-type", "Values": ["launch-template"]},
                {"Name": "key", "Values": [T.BUBBLE_ID]},
            ]
        )["Tags"]
        return not drills and not templates

    eventually(clean, timeout=60)
    alive = instances(
        ec2,
        [
            {"Name": f"tag:{T.BUBBLE_ID}", "Values": [operation_id]},
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopped"]},
        ],
    )
    assert alive == []
    for server in servers:
        config = drs.get_launch_configuration(sourceServerID=server["sourceServerID"])
        template = ec2.describe_launch_templates(LaunchTemplateIds=[config["ec2LaunchTemplateID"]])
        assert template["LaunchTemplates"][0]["DefaultVersionNumber"] == 1
    # and the teardown is on record, as the janitor's
    from services.drs.app import operation_records

    clients = AwsClients(sandbox.settings)
    table = sandbox.settings.operations_table

    def recorded() -> Any:
        """the janitor's teardown completed"""
        teardown = operation_records(clients, table, operation_id).teardown
        return teardown if teardown is not None and teardown.state == "COMPLETED" else None

    assert eventually(recorded, timeout=60).trigger == "janitor"


def janitor(sandbox: Sandbox, max_age_seconds: int | None) -> None:
    """What the hourly schedule sends, with the age limit of the test."""
    sqs = boto3.client("sqs", endpoint_url=sandbox.url, region_name=DR)
    body: dict[str, Any] = {"kind": "drs-janitor"}
    if max_age_seconds is not None:
        body["max_age_seconds"] = max_age_seconds
    sqs.send_message(QueueUrl=sandbox.deployed.queue_urls["drs"], MessageBody=json.dumps(body))


# --- failover, failback ---------------------------------------------------------------------------

FAILBACK_ACCOUNT = "444444444402"


@pytest.fixture(scope="module")
def failback_estate(sandbox: Sandbox) -> Estate:
    return seed(sandbox, estate_yaml(customer_yaml("charlie", FAILBACK_ACCOUNT, servers=4)))


def reprotected(sandbox: Sandbox, operation_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        """re-protection completed"""
        _, status = drctl_json(sandbox, "status", operation_id)
        state = status.get("drs", {}).get("reprotect", {}).get("state")
        return status if state == "COMPLETED" else None

    result: dict[str, Any] = eventually(done, timeout=120)
    return result


def failover_round(sandbox: Sandbox) -> tuple[dict[str, Any], dict[str, Any]]:
    """failover, wait for its reverse replication, failback (with re-protection)."""
    before = service_calls(sandbox)
    code, failover = drctl_json(
        sandbox, "failover", "-c", "charlie", "-e", "staging", "--yes", "--wait"
    )
    assert code == 0, failover
    assert {r["state"] for r in failover["resources"]} == {"RECOVERED"}
    protected = reprotected(sandbox, failover["operation_id"])
    reprotect = protected["drs"]["reprotect"]
    assert reprotect["target_region"] == PRIMARY
    assert reprotect["continuous"] == reprotect["servers"] == 4
    failover_calls = calls_since(sandbox, before)
    # once reverse replication is continuous, `drctl plan --operation failback` says ready
    code, planned = drctl_json(
        sandbox, "plan", "-c", "charlie", "-e", "staging", "--operation", "failback"
    )
    assert code == 0 and all(c["ready"] for c in planned["readiness"]), planned["readiness"]
    print(
        f"\nfailover (4 servers) + re-protection, calls per server: {per_server(failover_calls, 4)}"
    )
    before = service_calls(sandbox)
    code, failback = drctl_json(
        sandbox, "failback", "-c", "charlie", "-e", "staging", "--yes", "--wait"
    )
    assert code == 0, failback
    failback_calls = calls_since(sandbox, before)
    print(
        f"failback (4 servers) + re-protection, calls per server: {per_server(failback_calls, 4)}"
    )
    print(f"failback drs calls: {failback_calls.get('drs')}")
    return failover, failback


def test_given_a_failed_over_environment_when_failing_back_then_the_primaries_serve_again(
    sandbox: Sandbox, failback_estate: Estate
) -> None:
    ec2_primary = workload(sandbox, "charlie", FAILBACK_ACCOUNT, "ec2", PRIMARY)
    primaries = {
        i["InstanceId"]: i
        for i in instances(ec2_primary, [{"Name": "tag:Customer", "Values": ["charlie"]}])
    }
    # Given an environment never failed over, a failback is refused with a reason per server
    refused = drctl(sandbox, "failback", "-c", "charlie", "-e", "staging", "--yes", "-o", "json")
    assert refused.returncode == 1
    checks = json.loads(refused.stdout)["readiness"]
    assert len(checks) == 4 and {c["code"] for c in checks} == {"NOT_FAILED_OVER"}
    # and `drctl plan` shows every server ready to fail over into its twin
    code, planned = drctl_json(sandbox, "plan", "-c", "charlie", "-e", "staging")
    assert code == 0 and len(planned["readiness"]) == 4
    assert all(c["ready"] and c["target"] for c in planned["readiness"]), planned["readiness"]
    before = service_calls(sandbox)

    # When it fails over, then back
    _, failback = failover_round(sandbox)

    # Then every server runs again in its original primary instance, same IP (last octet)
    assert failback["state"] == "COMPLETED"
    assert [w["number"] for w in failback["waves"]] == [1, 2]
    for resource in failback["resources"]:
        assert resource["state"] == "RECOVERED"
        assert resource["dr_resource_id"] == resource["resource_id"]  # the original instance
        primary = primaries[resource["resource_id"]]
        assert resource["dr_private_ip"] == primary["PrivateIpAddress"]
    # and replication primary -> DR is restored for the next failover
    protected = failback["drs"]["reprotect"]
    assert protected["state"] == "COMPLETED" and protected["target_region"] == DR
    assert protected["continuous"] == 4
    # and the DR twins are back to standby
    ec2_dr = workload(sandbox, "charlie", FAILBACK_ACCOUNT, "ec2", DR)
    twins = instances(ec2_dr, [{"Name": f"tag:{T.DRS_LAUNCH_INTO}", "Values": ["*"]}])
    assert {i["State"]["Name"] for i in twins} == {"stopped"}
    calls = calls_since(sandbox, before)
    print(f"\nfailover + failback, AWS calls per server (services): {per_server(calls, 4)}")
    print(f"drs calls: {calls.get('drs')}")


@pytest.mark.slow
def test_given_a_failback_when_failing_over_again_then_it_succeeds(
    sandbox: Sandbox, failback_estate: Estate
) -> None:
    # Given the environment failed over and back (the round above, or done here)
    listed = drctl(sandbox, "list", "-c", "charlie", "-e", "staging", "-o", "json")
    history: list[dict[str, Any]] = json.loads(listed.stdout)
    if not any(op["operation"] == "failback" and op["state"] == "COMPLETED" for op in history):
        failover_round(sandbox)

    # When it fails over again
    code, again = drctl_json(
        sandbox, "failover", "-c", "charlie", "-e", "staging", "--yes", "--wait"
    )

    # Then it succeeds into the same twins, keeping the IPs' last octet
    assert code == 0, again
    assert {r["state"] for r in again["resources"]} == {"RECOVERED"}
    for resource in again["resources"]:
        assert resource["private_ip"].split(".")[-1] == resource["dr_private_ip"].split(".")[-1]


# --- quotas across customers ----------------------------------------------------------------------

QUOTA_ACCOUNT = "444444444403"


@pytest.mark.slow
def test_given_low_quotas_when_three_customers_fail_over_at_once_then_no_job_exceeds_them(
    sandbox: Sandbox,
) -> None:
    # Given three customers sharing one DR account whose DRS quotas are low
    quotas = "quotas: {drs: {servers_per_job: 3, concurrent_jobs: 2, servers_in_active_jobs: 4}}"
    names = ("delta", "echo", "foxtrot")
    seed(
        sandbox,
        estate_yaml("".join(customer_yaml(n, QUOTA_ACCOUNT, servers=7) for n in names), quotas),
    )

    # When all three fail over at once
    before = service_calls(sandbox)
    started = [
        drctl_json(sandbox, "failover", "-c", name, "-e", "staging", "--yes")[1]["operation_id"]
        for name in names
    ]
    results = [drctl_json(sandbox, "watch", op, "--timeout", "600")[1] for op in started]

    # Then every server was recovered, and DRS never saw a job beyond the quotas
    for status in results:
        assert status["state"] == "COMPLETED", status
        assert {r["state"] for r in status["resources"]} == {"RECOVERED"}
    usage = sandbox.app.drs.quota_usage()[f"{QUOTA_ACCOUNT}/{DR}"]
    assert usage["refusals"] == 0
    assert usage["largest_job"] <= 3
    assert usage["peak_jobs"] <= 2
    assert usage["peak_servers_in_jobs"] <= 4
    print(
        f"\nquota usage: {usage}, calls per server: {per_server(calls_since(sandbox, before), 21)}"
    )


# --- faults ---------------------------------------------------------------------------------------

FAULTS_ACCOUNT = "444444444404"


@pytest.mark.slow
def test_given_throttling_and_no_native_events_then_every_server_still_completes(
    sandbox: Sandbox,
) -> None:
    # Given DRS (and Service Quotas) throttle a third of the calls and no native event arrives
    seed(sandbox, estate_yaml(customer_yaml("golf", FAULTS_ACCOUNT, servers=6)))
    admin(sandbox, "/_sandbox/config", {"throttle_rate": 0.3, "drop_native_event_rate": 1.0})
    try:
        # When the environment fails over
        code, status = drctl_json(
            sandbox, "failover", "-c", "golf", "-e", "staging", "--yes", "--wait"
        )
    finally:
        admin(sandbox, "/_sandbox/config", {"throttle_rate": 0.0, "drop_native_event_rate": 0.0})

    # Then botocore's retries and the job checks brought every server through
    assert code == 0, status
    assert {r["state"] for r in status["resources"]} == {"RECOVERED"}


@pytest.mark.slow
def test_given_launches_that_always_fail_then_each_is_tried_4_times_and_reported_with_drs_error(
    sandbox: Sandbox,
) -> None:
    seed(sandbox, estate_yaml(customer_yaml("hotel", "444444444405", servers=2, waves=1)))
    admin(sandbox, "/_sandbox/config", {"drs_launch_failure_rate": 1.0})
    try:
        started = drctl_json(sandbox, "failover", "-c", "hotel", "-e", "staging", "--yes")[1]
        operation_id = started["operation_id"]

        def failed() -> dict[str, Any] | None:
            """every resource reported failed"""
            shown = drctl(sandbox, "status", operation_id, "-o", "json")
            if not shown.stdout.strip():
                return None  # not recorded by the coordinator yet
            status: dict[str, Any] = json.loads(shown.stdout)
            states = {r["state"] for r in status.get("resources", [])}
            return status if states == {"FAILED"} else None

        status = eventually(failed, timeout=240, every=2)
    finally:
        admin(sandbox, "/_sandbox/config", {"drs_launch_failure_rate": 0.0})

    for resource in status["resources"]:
        assert resource["error_code"] == "LAUNCH_FAILED", resource
        assert "Insufficient capacity" in resource["error"]  # DRS's own rawError
        assert "after 4 tries" in resource["error"]
    drs = workload(sandbox, "hotel", "444444444405", "drs", DR)
    jobs = [
        j
        for j in drs.describe_jobs(filters={})["items"]
        if j.get("tags", {}).get(T.JOB_OPERATION_ID) == operation_id
    ]
    tries: dict[str, list[str]] = {}
    for job in jobs:  # a server failing apart from the others is launched again on its own
        for server in job["participatingServers"]:
            tries.setdefault(server["sourceServerID"], []).append(job["tags"][T.JOB_LAUNCH_TRY])
    assert len(tries) == 2
    assert all(sorted(t) == ["1", "2", "3", "4"] for t in tries.values())  # 4 tries, not more
