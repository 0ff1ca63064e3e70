"""End to end in the sandbox: the demo estate's failover through the real choreography.

Given the demo estate (acme/production: 50 servers in 4 waves, all with DR twins, plus an EKS
cluster, a SQL AG and managed services), when an operator runs `drctl failover --yes --wait
--output json`, then every resource is recovered, every server into its twin keeping the IP's
last octet, waves ran strictly in order, the operation COMPLETED, a
concurrent second failover was refused, and replaying the archive afterwards launches nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from typing import Any

import boto3
import pytest

from events.schemas import Strategy
from sandbox.daemon import Sandbox
from sandbox.estate import load_estate
from sandbox.seed import seed_estate
from services.catalog import SERVICES

from .conftest import ESTATES, FAST_LAUNCH

pytestmark = pytest.mark.sandbox


def admin(sandbox: Sandbox, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        sandbox.url + path,
        data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def customer_client(sandbox: Sandbox, service: str, account: str, region: str) -> Any:
    sts = boto3.client("sts", endpoint_url=sandbox.url, region_name="us-east-2")
    creds = sts.assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/dr-orchestrator-workload",
        RoleSessionName="e2e-check",
        ExternalId="dr-acme",
    )["Credentials"]
    return boto3.client(
        service,
        endpoint_url=sandbox.url,
        region_name=region,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def drctl(sandbox: Sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    """Run drctl as an operator would: its own process, talking to the sandbox endpoint."""
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "--endpoint-url", sandbox.url, *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def seeded(sandbox: Sandbox) -> Any:
    estate = load_estate(ESTATES / "demo.yaml")
    summary = seed_estate(
        estate, sandbox.url, orchestration_region=sandbox.settings.orchestration_region
    )
    sandbox.connect(summary.customers)
    admin(sandbox, "/_sandbox/config", {"drs_launch_seconds": FAST_LAUNCH})
    return estate


def test_demo_failover_recovers_every_server_into_its_twin_in_wave_order(
    sandbox: Sandbox, seeded: Any
) -> None:
    account, dr_region = "111111111111", "us-east-2"

    # Given a failover running, when a second one is requested for the same scope
    # (production: approval gates are on by default; this scenario runs without them)
    first = drctl(
        sandbox,
        "failover",
        "-c",
        "acme",
        "-e",
        "production",
        "--yes",
        "--approval",
        "none",
        "-o",
        "json",
    )
    assert first.returncode == 0, first.stderr
    first_id = json.loads(first.stdout)["operation_id"]
    # once the coordinator has accepted it (it holds the environment's lock)
    _accepted(sandbox, first_id)
    second = drctl(
        sandbox,
        "failover",
        "-c",
        "acme",
        "-e",
        "production",
        "--yes",
        "--wait",
        "-o",
        "json",
        "--timeout",
        "60",
    )
    # then it is refused with a reason naming the running operation
    assert second.returncode == 1, second.stderr
    refused = json.loads(second.stdout)
    assert refused["state"] == "FAILED"
    assert refused["error_code"] == "OPERATION_IN_PROGRESS"
    assert first_id in refused["reason"]

    # When the first one is followed to its end
    watched = drctl(sandbox, "watch", first_id, "-o", "json", "--timeout", "300")
    assert watched.returncode == 0, watched.stderr
    status = json.loads(drctl(sandbox, "status", first_id, "-o", "json").stdout)

    # Then the operation completed with every server recovered
    assert status["state"] == "COMPLETED"
    assert {r["state"] for r in status["resources"]} == {"RECOVERED"}
    # the demo has every strategy: 50 DRS servers plus EKS, a SQL AG and managed services
    assert {r["strategy"] for r in status["resources"]} == {s.value for s in Strategy}
    servers = [r for r in status["resources"] if r["strategy"] == Strategy.DRS]
    assert len(servers) == 50
    assert [w["number"] for w in status["waves"]] == [1, 2, 3, 4]

    # into its own twin (same Name, same customer + environment), keeping the IP's last octet
    ec2 = customer_client(sandbox, "ec2", account, dr_region)
    twins = {
        _tag(i, "Name"): i
        for r in ec2.describe_instances(
            Filters=[{"Name": "tag:AWSDRS", "Values": ["AllowLaunchingIntoThisInstance"]}]
        )["Reservations"]
        for i in r["Instances"]
    }
    for resource in servers:
        twin = twins[resource["name"]]
        assert resource["dr_resource_id"] == twin["InstanceId"]
        assert twin["State"]["Name"] == "running"
        assert resource["dr_private_ip"] == twin["PrivateIpAddress"]
        primary_ip = resource["private_ip"]
        assert primary_ip and primary_ip.split(".")[-1] == twin["PrivateIpAddress"].split(".")[-1]

    # and no launch of wave n+1 started before wave n completed
    drs = customer_client(sandbox, "drs", account, dr_region)
    jobs = [
        j
        for page in drs.get_paginator("describe_jobs").paginate(filters={})
        for j in page["items"]
        if j.get("tags", {}).get("dr:operation-id") == first_id
    ]
    completed = {w["number"]: datetime.fromisoformat(w["completed_at"]) for w in status["waves"]}
    assert {int(j["tags"]["dr:wave"]) for j in jobs} == {1, 2, 3, 4}
    for job in jobs:
        wave = int(job["tags"]["dr:wave"])
        if wave > 1:
            assert datetime.fromisoformat(job["creationDateTime"]) >= completed[wave - 1]
    launched = sum(len(j["participatingServers"]) for j in jobs)
    assert launched == 50  # never a server launched twice

    # When the whole archive is replayed onto the live bus (a probe rule sees the replayed events)
    actions_before = _drs_actions(sandbox)
    operations_before = _operations(sandbox)
    events = boto3.client("events", endpoint_url=sandbox.url, region_name="us-east-2")
    sqs = boto3.client("sqs", endpoint_url=sandbox.url, region_name="us-east-2")
    probe_url = sqs.create_queue(QueueName="e2e-replay-probe")["QueueUrl"]
    probe_arn = sqs.get_queue_attributes(QueueUrl=probe_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    bus = sandbox.settings.bus_name
    events.put_rule(
        Name="e2e-replay-probe",
        EventBusName=bus,
        EventPattern=json.dumps({"replay-name": [{"exists": True}]}),
    )
    events.put_targets(
        Rule="e2e-replay-probe", EventBusName=bus, Targets=[{"Id": "probe", "Arn": probe_arn}]
    )
    archive = events.describe_archive(ArchiveName="dr-orchestration-archive")
    assert archive["EventCount"] > 0
    events.start_replay(
        ReplayName=f"e2e-replay-{int(time.time())}",
        EventSourceArn=archive["ArchiveArn"],
        EventStartTime=datetime.fromtimestamp(0),
        EventEndTime=datetime.now(),
        Destination={"Arn": sandbox.deployed.bus_arn},
    )
    replayed = _drain(sqs, probe_url, expected=archive["EventCount"], timeout=30)
    time.sleep(2)  # give the runtime a chance to (wrongly) act on anything it received
    # Then the events were replayed, yet no service received one and nothing was launched again
    assert replayed >= archive["EventCount"]
    assert {n: s.replayed_records for n, s in sandbox.runtime.stats.items()} == {
        service.name: 0 for service in SERVICES
    }
    assert _drs_actions(sandbox) == actions_before
    assert _operations(sandbox) == operations_before
    assert (
        json.loads(drctl(sandbox, "status", first_id, "-o", "json").stdout)["state"] == "COMPLETED"
    )


def _drs_actions(sandbox: Sandbox) -> dict[str, int]:
    calls = admin(sandbox, "/_sandbox/stats")["calls"].get("drs", {})
    return {op: calls.get(op, 0) for op in ("StartRecovery", "UpdateLaunchConfiguration")}


def _operations(sandbox: Sandbox) -> list[dict[str, Any]]:
    """Every operation item (state included), to show a replay changed none."""
    table = boto3.resource("dynamodb", endpoint_url=sandbox.url, region_name="us-east-2").Table(
        sandbox.settings.operations_table
    )
    items = table.scan()["Items"]
    return sorted(
        ({"id": i["operation_id"], "state": i["state"]} for i in items if i["sk"] == "META"),
        key=lambda i: str(i["id"]),
    )


def _accepted(sandbox: Sandbox, operation_id: str, timeout: float = 60) -> None:
    """Wait until the coordinator has recorded the operation (accepted under its lock)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = drctl(sandbox, "status", operation_id, "-o", "json")
        if status.returncode == 0 and json.loads(status.stdout).get("state") != "FAILED":
            return
        time.sleep(0.5)
    raise AssertionError(f"{operation_id} was not accepted within {timeout:.0f} s")


def _drain(sqs: Any, url: str, expected: int, timeout: float) -> int:
    count, deadline = 0, time.monotonic() + timeout
    while count < expected and time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        )
        count += len(messages)
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return count


def _tag(instance: dict[str, Any], key: str) -> str:
    return next(t["Value"] for t in instance.get("Tags", []) if t["Key"] == key)


def test_bad_input_is_refused_with_a_clear_error_and_disturbs_nothing(
    sandbox: Sandbox, seeded: Any
) -> None:
    # Unknown customer / environment: exit 2, naming the bad value and the known ones
    unknown = drctl(sandbox, "failover", "-c", "acme2", "-e", "production", "--yes")
    assert unknown.returncode == 2
    assert "'acme2'" in unknown.stderr and "acme" in unknown.stderr.split("known")[-1]
    bad_env = drctl(sandbox, "plan", "-c", "acme", "-e", "prod-eu", "-o", "json")
    assert bad_env.returncode == 2 and "'prod-eu'" in bad_env.stderr
    # A production failover without confirmation, from a script: refused
    unconfirmed = drctl(sandbox, "failover", "-c", "acme", "-e", "production")
    assert unconfirmed.returncode == 2 and "--yes" in unconfirmed.stderr
    # An unknown operation
    missing = drctl(sandbox, "status", "op-does-not-exist", "-o", "json")
    assert missing.returncode == 2 and "op-does-not-exist" in missing.stderr
    # watch waits a little for a just-requested operation to be recorded, then says unknown
    unwatched = drctl(sandbox, "watch", "op-does-not-exist", "-o", "json", "--timeout", "1")
    assert unwatched.returncode == 2 and "op-does-not-exist" in unwatched.stderr
    assert "not recorded after 1 s" in unwatched.stderr

    # A malformed event on the bus lands in the consumers' dead-letter queues with its reason
    events = boto3.client("events", endpoint_url=sandbox.url, region_name="us-east-2")
    sqs = boto3.client("sqs", endpoint_url=sandbox.url, region_name="us-east-2")
    events.put_events(
        Entries=[
            {
                "Source": "dr.cli",
                "DetailType": "OperationRequested",
                "EventBusName": sandbox.settings.bus_name,
                "Detail": json.dumps({"operation_id": "op-malformed-0001", "customer": "acme"}),
            }
        ]
    )
    for service in ("discovery", "coordinator"):
        message = _receive_one(sqs, sandbox.deployed.dlq_urls[service], timeout=20)
        assert message is not None, f"nothing in the {service} DLQ"
        reason = message["MessageAttributes"]["reason"]["StringValue"]
        assert "invalid OperationRequested detail" in reason and "environment" in reason
        assert json.loads(message["Body"])["detail"]["operation_id"] == "op-malformed-0001"
    # and nothing was started for it
    assert drctl(sandbox, "status", "op-malformed-0001").returncode == 2


def _receive_one(sqs: Any, url: str, timeout: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=1, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if messages:
            return dict(messages[0])
    return None
