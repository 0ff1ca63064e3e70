"""End to end in the sandbox: SQL Server availability groups through discovery, the coordinator's
waves and the sqlag service (SQL Server emulated behind SSM Run Command).

- a drill on the clone leaves production alone; failover moves the AG and its listener to the DR
  replica; failback brings both back with synchronization resumed;
- a group that is not synchronized is refused (nothing flipped) until the operator allows data
  loss; then it is forced, with the estimated data loss in its result, and never onto a REVERTING
  group; a drill without a clone fails with NO_CLONE_CONFIGURED.

Each scenario has its own customer (seeded into the package's sandbox).
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
from drcore.publisher import EventPublisher
from drcore.state import OperationView, read_operation
from events.schemas import Detail, OperationRequested, OperationType, Source
from events.schemas.models import OperationCancelRequested
from sandbox.daemon import Sandbox
from sandbox.estate import Estate, parse_estate
from sandbox.seed import seed_estate
from sandbox.seed_sqlag import listener_name, zone_name
from services.sqlag.commands import STATUS, AgStatus, build_commands, parse_output

pytestmark = pytest.mark.sandbox

PRIMARY, DR = "us-east-1", "us-east-2"
HEALTHY, LAGGING = "sqlhealthy", "sqllagging"
ACCOUNTS = {HEALTHY: "555555555531", LAGGING: "555555555532"}
ENV = "staging"

ESTATE = f"""
regions: {{{PRIMARY}: {DR}}}
customers:
  - name: {HEALTHY}
    account: "{ACCOUNTS[HEALTHY]}"
    region: {PRIMARY}
    environments:
      - name: {ENV}
        # Not DR-enabled: it only gives the environment its bubble-test network.
        servers: [{{name: {HEALTHY}-util-01, wave: 1, ip: 10.71.10.10,
                    tags: {{"dr:enabled": "false"}}}}]
        sql_ags: [{{name: orders-ag, wave: 1, clone: true, command_seconds: 0.1,
                    resync_seconds: 0.5}}]
  - name: {LAGGING}
    account: "{ACCOUNTS[LAGGING]}"
    region: {PRIMARY}
    environments:
      - name: {ENV}
        sql_ags:
          - {{name: billing-ag, wave: 1, sync_state: SYNCHRONIZING, lag_seconds: 90,
              command_seconds: 0.1}}
          - {{name: audit-ag, wave: 1, sync_state: REVERTING, command_seconds: 0.1}}
"""


@pytest.fixture(scope="module")
def estate(sandbox: Sandbox) -> Estate:
    parsed = parse_estate(ESTATE, "<sqlag e2e estate>")
    summary = seed_estate(parsed, sandbox.url, orchestration_region=DR)
    sandbox.connect(summary.customers)
    return parsed


# --- helpers --------------------------------------------------------------------------------------


def drctl(sandbox: Sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "--endpoint-url", sandbox.url, *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def start(sandbox: Sandbox, command: str, customer: str, *extra: str) -> str:
    confirm = () if command == "drill" else ("--yes",)
    done = drctl(sandbox, command, "-c", customer, "-e", ENV, *confirm, "-o", "json", *extra)
    assert done.returncode == 0, done.stdout + done.stderr
    return str(json.loads(done.stdout)["operation_id"])


def request(sandbox: Sandbox, customer: str, operation: OperationType) -> str:
    """An operation request put on the bus as `aws events put-events` would (faster than a
    drctl process; `drctl failback` also checks DRS servers first, and these have none)."""
    detail = OperationRequested(
        operation_id=f"op-{time.time_ns() // 1000}-{customer}",
        customer=customer,
        environment=ENV,
        operation=operation,
        requested_by="sqlag-e2e",
        region_map={PRIMARY: DR},
    )
    publish(sandbox, detail)
    return detail.operation_id


def publish(sandbox: Sandbox, detail: Detail) -> None:
    events = boto3.client("events", endpoint_url=sandbox.url, region_name=DR)
    EventPublisher(events, sandbox.settings.bus_name).publish(Source.CLI, [detail])


def view(sandbox: Sandbox, op: str) -> OperationView | None:
    table = boto3.resource("dynamodb", endpoint_url=sandbox.url, region_name=DR).Table(
        sandbox.settings.operations_table
    )
    return read_operation(table, op)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def settle(sandbox: Sandbox, op: str, *states: str) -> OperationView:
    def reached() -> OperationView | None:
        found = view(sandbox, op)
        return found if found is not None and found.state in states else None

    found: OperationView = wait_for(f"{op} in {states}", reached)
    return found


def abort(sandbox: Sandbox, done: OperationView) -> None:
    publish(
        sandbox,
        OperationCancelRequested(
            operation_id=done.operation_id,
            customer=done.customer,
            environment=done.environment,
            operation=OperationType(done.operation),
            requested_by="sqlag-e2e",
            reason="scenario over",
        ),
    )
    settle(sandbox, done.operation_id, "CANCELLED")


_CLIENTS: dict[str, AwsClients] = {}


def workload(sandbox: Sandbox, customer: str, service: str, region: str) -> Any:
    access = AccountAccess(ACCOUNTS[customer], "dr-orchestrator-workload", f"dr-{customer}")
    clients = _CLIENTS.setdefault(sandbox.url, AwsClients(sandbox.settings))
    return clients.workload_client(service, region, access)


def instance(sandbox: Sandbox, customer: str, region: str, name: str) -> dict[str, Any]:
    ec2 = workload(sandbox, customer, "ec2", region)
    found = ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": [name]}])
    [item] = [i for r in found["Reservations"] for i in r["Instances"]]
    return dict(item)


def listener(sandbox: Sandbox, customer: str, ag: str) -> str:
    route53 = workload(sandbox, customer, "route53", "us-east-1")
    zone = route53.list_hosted_zones_by_name(DNSName=zone_name(customer, ENV))["HostedZones"][0]
    name = listener_name_of(customer, ag)
    records = route53.list_resource_record_sets(
        HostedZoneId=zone["Id"], StartRecordName=name, StartRecordType="A", MaxItems="1"
    )["ResourceRecordSets"]
    return str(records[0]["ResourceRecords"][0]["Value"])


def listener_name_of(customer: str, ag: str) -> str:
    from sandbox.estate_sqlag import SqlAgSpec

    return listener_name(SqlAgSpec(name=ag, wave=1), customer, ENV)


def sql_status(sandbox: Sandbox, customer: str, region: str, name: str, ag: str) -> AgStatus:
    """What the replica reports (the same status script, sent by the test)."""
    ssm = workload(sandbox, customer, "ssm", region)
    instance_id = instance(sandbox, customer, region, name)["InstanceId"]
    command_id = ssm.send_command(
        InstanceIds=[instance_id],
        DocumentName="AWS-RunPowerShellScript",
        Parameters={"commands": build_commands(STATUS, AgName=ag)},
    )["Command"]["CommandId"]

    def ended() -> dict[str, Any] | None:
        try:
            found = ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
        except ssm.exceptions.InvocationDoesNotExist:
            return None
        return found if found["Status"] not in ("Pending", "InProgress") else None

    return parse_output(AgStatus, wait_for("status", ended, 10)["StandardOutputContent"])


def role(sandbox: Sandbox, customer: str, region: str, name: str, ag: str) -> str | None:
    local = sql_status(sandbox, customer, region, name, ag).local
    return local.role if local else None


def results_probe(sandbox: Sandbox, name: str) -> tuple[Any, str]:
    """A queue receiving every sqlag result on the bus."""
    sqs = boto3.client("sqs", endpoint_url=sandbox.url, region_name=DR)
    events = boto3.client("events", endpoint_url=sandbox.url, region_name=DR)
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    bus = sandbox.settings.bus_name
    events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps({"source": ["dr.sqlag"]}))
    events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "probe", "Arn": arn}])
    return sqs, url


def drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return out
        for message in messages:
            out.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def by_resource(events: list[dict[str, Any]], op: str) -> dict[str, dict[str, Any]]:
    mine = [e for e in events if e["detail"]["operation_id"] == op]
    return {e["detail"]["resource_id"]: e for e in mine}


# --- scenarios ------------------------------------------------------------------------------------


def test_drill_on_the_clone_then_failover_then_failback_of_a_healthy_group(
    sandbox: Sandbox, estate: Estate
) -> None:
    primary = instance(sandbox, HEALTHY, PRIMARY, "orders-ag-sql1")
    dr = instance(sandbox, HEALTHY, DR, "orders-ag-sql2")
    clone = instance(sandbox, HEALTHY, DR, "orders-ag-clone")
    sqs, url = results_probe(sandbox, "sqlag-e2e-healthy")

    # Given a SYNCHRONIZED group with a clone in the bubble network, when the operator drills
    drill = start(sandbox, "drill", HEALTHY)
    done = settle(sandbox, drill, "COMPLETED", "FAILED", "PAUSED")
    # Then the clone is brought up and checked, and production is untouched
    assert done.state == "COMPLETED", done
    [resource] = done.resources
    assert resource.state == "RECOVERED" and resource.dr_resource_id == clone["InstanceId"]
    assert role(sandbox, HEALTHY, DR, "orders-ag-sql2", "orders-ag") == "SECONDARY"
    assert listener(sandbox, HEALTHY, "orders-ag") == primary["PrivateIpAddress"]

    # When the operator fails over
    failover = request(sandbox, HEALTHY, OperationType.FAILOVER)
    done = settle(sandbox, failover, "COMPLETED", "FAILED", "PAUSED")
    # Then a planned failover made the DR replica primary and the listener follows it
    assert done.state == "COMPLETED", done
    [resource] = done.resources
    assert resource.dr_resource_id == dr["InstanceId"]
    assert role(sandbox, HEALTHY, DR, "orders-ag-sql2", "orders-ag") == "PRIMARY"
    assert listener(sandbox, HEALTHY, "orders-ag") == dr["PrivateIpAddress"]

    # When the operator fails back
    failback = request(sandbox, HEALTHY, OperationType.FAILBACK)
    done = settle(sandbox, failback, "COMPLETED", "FAILED", "PAUSED")
    # Then the original primary is primary again, the DR replica synchronizes, DNS is back
    assert done.state == "COMPLETED", done
    assert role(sandbox, HEALTHY, PRIMARY, "orders-ag-sql1", "orders-ag") == "PRIMARY"
    back = sql_status(sandbox, HEALTHY, DR, "orders-ag-sql2", "orders-ag")
    assert back.local is not None and back.local.role == "SECONDARY"
    assert {d.sync_state for d in back.local_databases} <= {"SYNCHRONIZED", "SYNCHRONIZING"}
    assert listener(sandbox, HEALTHY, "orders-ag") == primary["PrivateIpAddress"]

    results = drain(sqs, url)
    drilled = by_resource(results, drill)[primary["InstanceId"]]["detail"]
    assert drilled["details"]["production_ag_touched"] == "no"
    assert drilled["details"]["clone_action"] == "clone-brought-online"
    moved = by_resource(results, failover)[primary["InstanceId"]]
    assert moved["detail-type"] == "ResourceRecovered"
    assert moved["detail"]["details"]["failover_mode"] == "planned"
    assert moved["detail"]["details"]["estimated_data_loss_seconds"] == "0"
    returned = by_resource(results, failback)[primary["InstanceId"]]["detail"]["details"]
    assert returned["dns_answer"] == primary["PrivateIpAddress"]


def test_not_synchronized_groups_are_refused_until_data_loss_is_allowed_never_onto_reverting(
    sandbox: Sandbox, estate: Estate
) -> None:
    billing = instance(sandbox, LAGGING, PRIMARY, "billing-ag-sql1")
    billing_dr = instance(sandbox, LAGGING, DR, "billing-ag-sql2")
    audit = instance(sandbox, LAGGING, PRIMARY, "audit-ag-sql1")
    sqs, url = results_probe(sandbox, "sqlag-e2e-lagging")

    # Given groups that are not SYNCHRONIZED, when the operator fails over without permission
    refused = request(sandbox, LAGGING, OperationType.FAILOVER)
    done = settle(sandbox, refused, "PAUSED", "FAILED")
    # Then both fail with a clear code and nothing flipped
    codes = {r.resource_id: r.error_code for r in done.resources}
    assert codes == {
        billing["InstanceId"]: "NOT_SYNCHRONIZED",
        audit["InstanceId"]: "NOT_SYNCHRONIZED",
    }
    assert role(sandbox, LAGGING, DR, "billing-ag-sql2", "billing-ag") == "SECONDARY"
    assert listener(sandbox, LAGGING, "billing-ag") == billing["PrivateIpAddress"]
    abort(sandbox, done)

    # When the operator drills (no clone configured)
    drill = request(sandbox, LAGGING, OperationType.BUBBLE_TEST)
    done = settle(sandbox, drill, "PAUSED", "FAILED")
    assert {r.error_code for r in done.resources} == {"NO_CLONE_CONFIGURED"}
    abort(sandbox, done)

    # When the operator allows data loss (drctl failover --allow-data-loss)
    forced = start(sandbox, "failover", LAGGING, "--allow-data-loss")
    done = settle(sandbox, forced, "PAUSED", "FAILED", "COMPLETED")
    states = {r.resource_id: (r.state, r.error_code) for r in done.resources}
    # Then the lagging group is forced over; the REVERTING one is still refused
    assert states[billing["InstanceId"]] == ("RECOVERED", None)
    assert states[audit["InstanceId"]] == ("FAILED", "UNSAFE_SYNC_STATE")
    assert role(sandbox, LAGGING, DR, "billing-ag-sql2", "billing-ag") == "PRIMARY"
    assert role(sandbox, LAGGING, DR, "audit-ag-sql2", "audit-ag") == "SECONDARY"
    assert listener(sandbox, LAGGING, "billing-ag") == billing_dr["PrivateIpAddress"]
    abort(sandbox, done)

    results = drain(sqs, url)
    first = by_resource(results, refused)[billing["InstanceId"]]["detail"]
    assert "--allow-data-loss" in first["error"]
    details = by_resource(results, forced)[billing["InstanceId"]]["detail"]["details"]
    assert details["failover_mode"] == "forced"
    assert 85 <= float(details["estimated_data_loss_seconds"]) <= 120  # lag 90 s
    # One outcome per resource and operation (a repeated delivery repeats the same result).
    for op in (refused, drill, forced):
        outcomes: dict[str, set[str]] = {}
        for event in results:
            if event["detail"]["operation_id"] == op:
                kinds = outcomes.setdefault(event["detail"]["resource_id"], set())
                kinds.add(event["detail-type"])
        assert set(outcomes) == {billing["InstanceId"], audit["InstanceId"]}
        assert all(len(kinds) == 1 for kinds in outcomes.values()), outcomes
