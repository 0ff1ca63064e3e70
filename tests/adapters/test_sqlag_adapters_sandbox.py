"""sqlag adapters against the sandbox endpoint (SSM Run Command emulator + moto), with the real
assembly `SqlAgService.build`: registry, operation record, idempotency table, bus."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from drcore.aws import AccountAccess, AwsClients
from drcore.settings import Settings
from drcore.state import META, op_pk
from drcore.tables import TABLES, create_table, table_name
from events.schemas import OperationType, ResourceRef, Strategy, WaveStarted
from services.sqlag.adapters import BotoDns, BotoWorkloads, CoordinatorOptions
from services.sqlag.app import SqlAgService

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.filterwarnings("ignore:Couldn't determine the remaining time"),
]

ACCOUNT, CUSTOMER, ENV = "555555555541", "sqladapt", "staging"
PRIMARY, DR = "us-east-1", "us-east-2"
WEST, WEST_DR, WEST_ACCOUNT, WEST_CUSTOMER = "us-west-2", "us-west-1", "555555555542", "sqlwest"
ESTATE = f"""
regions: {{{PRIMARY}: {DR}, {WEST}: {WEST_DR}}}
customers:
  - name: {WEST_CUSTOMER}
    account: "{WEST_ACCOUNT}"
    region: {WEST}
    environments:
      - name: {ENV}
        sql_ags: [{{name: ledger-ag, wave: 1, command_seconds: 0.05}}]
  - name: {CUSTOMER}
    account: "{ACCOUNT}"
    region: {PRIMARY}
    environments:
      - name: {ENV}
        sql_ags: [{{name: pay-ag, wave: 1, command_seconds: 0.05}}]
"""


class Log:
    def info(self, *args: Any, **kwargs: Any) -> None: ...
    def warning(self, *args: Any, **kwargs: Any) -> None: ...
    def error(self, *args: Any, **kwargs: Any) -> None: ...
    def exception(self, *args: Any, **kwargs: Any) -> None: ...


@pytest.fixture(scope="module")
def endpoint() -> Iterator[Any]:
    from sandbox.endpoint import SandboxEndpoint
    from sandbox.estate import parse_estate
    from sandbox.seed import seed_estate

    server = SandboxEndpoint()
    url = server.start(port=0)
    seed_estate(parse_estate(ESTATE, "<sqlag adapters>"), url)
    settings = Settings()
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
    dynamodb = session.client("dynamodb", region_name=DR, endpoint_url=url)
    for spec in TABLES:
        create_table(dynamodb, spec, table_name(spec, settings))
    events = session.client("events", region_name=DR, endpoint_url=url)
    events.create_event_bus(Name=settings.bus_name)
    sqs = session.client("sqs", region_name=DR, endpoint_url=url)
    queue = sqs.create_queue(QueueName="sqlag-results")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="sqlag-results",
        EventBusName=settings.bus_name,
        EventPattern=json.dumps({"source": ["dr.sqlag"]}),
    )
    events.put_targets(
        Rule="sqlag-results", EventBusName=settings.bus_name, Targets=[{"Id": "q", "Arn": arn}]
    )
    server.results = (sqs, queue)  # type: ignore[attr-defined]
    yield server
    server.stop()


@pytest.fixture
def settings(endpoint: Any, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    return Settings(sqlag_poll_seconds=0.1)


def access() -> AccountAccess:
    return AccountAccess(ACCOUNT, "dr-orchestrator-workload", f"dr-{CUSTOMER}")


def primary_ref(clients: AwsClients) -> ResourceRef:
    ec2 = clients.workload_client("ec2", PRIMARY, access())
    [instance] = [
        i
        for r in ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": ["pay-ag-sql1"]}])[
            "Reservations"
        ]
        for i in r["Instances"]
    ]
    return ResourceRef(
        resource_id=instance["InstanceId"],
        arn=f"arn:aws:ec2:{PRIMARY}:{ACCOUNT}:instance/{instance['InstanceId']}",
        name="pay-ag-sql1",
        account=ACCOUNT,
        region=PRIMARY,
        dr_region=DR,
        rto_target_minutes=60,
        rpo_target_minutes=15,
    )


def received(endpoint: Any, count: int, timeout: float = 10) -> list[dict[str, Any]]:
    sqs, queue = endpoint.results
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(out) < count and time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            out.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    return out


def test_given_a_part_twice_then_one_failover_and_the_same_result_published_twice(
    endpoint: Any, settings: Settings
) -> None:
    clients = AwsClients(settings)
    service = SqlAgService.build(Log(), settings)
    ref = primary_ref(clients)
    part = WaveStarted(
        operation_id="op-sqladapt-000001",
        customer=CUSTOMER,
        environment=ENV,
        operation=OperationType.FAILOVER,
        wave=1,
        strategy=Strategy.SQL_AG,
        part=1,
        part_count=1,
        resources=[ref],
    )
    service.recover_part(part)
    service.recover_part(part)  # a duplicated delivery
    first, again = received(endpoint, 2)
    assert first["detail-type"] == "ResourceRecovered" and first["source"] == "dr.sqlag"
    assert first["detail"] == again["detail"]
    ssm = clients.workload_client("ssm", DR, access())
    dr_replica = first["detail"]["dr_resource_id"]
    commands = ssm.list_command_invocations(InstanceId=dr_replica)["CommandInvocations"]
    failovers = [c for c in commands if " failover " in c["Comment"]]
    assert len(failovers) == 1 and failovers[0]["Status"] == "Success"


def test_the_operation_record_says_whether_data_loss_is_allowed(
    endpoint: Any, settings: Settings
) -> None:
    clients = AwsClients(settings)
    dynamodb = clients.client("dynamodb")
    dynamodb.put_item(
        TableName=settings.operations_table,
        Item={
            "pk": {"S": op_pk("op-sqladapt-000002")},
            "sk": {"S": META},
            "allow_data_loss": {"BOOL": True},
        },
    )
    options = CoordinatorOptions(dynamodb, settings.operations_table)
    assert options.allow_data_loss("op-sqladapt-000002") is True
    assert options.allow_data_loss("op-sqladapt-unknown") is False


def test_listener_records_are_read_upserted_and_in_sync(endpoint: Any, settings: Settings) -> None:
    clients = AwsClients(settings)
    route53 = clients.workload_client("route53", "us-east-1", access())
    zone = route53.list_hosted_zones_by_name(DNSName=f"sql.{ENV}.{CUSTOMER}.internal")[
        "HostedZones"
    ][0]["Id"].removeprefix("/hostedzone/")
    dns = BotoDns(route53, 0.1)
    name = f"adapter-test.sql.{ENV}.{CUSTOMER}.internal"
    assert dns.a_record(zone, name) is None
    dns.wait_in_sync(dns.upsert_a(zone, name, ["10.9.9.9"], 30, "test"))
    record = dns.a_record(zone, name)
    assert record is not None and record.values == ("10.9.9.9",) and record.ttl == 30


def test_an_earlier_command_is_found_by_its_comment(endpoint: Any, settings: Settings) -> None:
    clients = AwsClients(settings)
    workload = BotoWorkloads(clients, clients, 0.1, 60).get(_entry(), DR)
    [replica] = workload.instances_tagged(CUSTOMER, ENV, {"Name": "pay-ag-sql2"})
    since = datetime.now(UTC) - timedelta(minutes=1)
    command_id = workload.send_command(replica.instance_id, ["Get-Date"], "dr-test find-me", 60)
    found = workload.find_command(replica.instance_id, "dr-test find-me", since)
    assert found is not None and found.command_id == command_id
    assert workload.find_command(replica.instance_id, "dr-test other", since) is None
    done = workload.wait_command(command_id, replica.instance_id)
    assert done.succeeded and done.stdout == ""


def _entry() -> Any:
    from drcore.registry import CustomerEntry, EnvironmentEntry

    return CustomerEntry(
        name=CUSTOMER,
        account=ACCOUNT,
        regions={PRIMARY: DR},
        environments=[EnvironmentEntry(name=ENV)],
        role_name="dr-orchestrator-workload",
        external_id=f"dr-{CUSTOMER}",
    )


def test_given_the_primary_region_down_then_the_dr_replica_tags_drive_a_forced_failover(
    endpoint: Any, settings: Settings
) -> None:
    """A regional outage: the primary replica cannot be read; the DR replica (disconnected, NOT
    SYNCHRONIZING) is forced over because the operator allowed data loss."""
    clients = AwsClients(settings)
    west = AccountAccess(WEST_ACCOUNT, "dr-orchestrator-workload", f"dr-{WEST_CUSTOMER}")
    ec2 = clients.workload_client("ec2", WEST, west)
    [instance] = [
        i
        for r in ec2.describe_instances(
            Filters=[{"Name": "tag:Name", "Values": ["ledger-ag-sql1"]}]
        )["Reservations"]
        for i in r["Instances"]
    ]
    ref = ResourceRef(
        resource_id=instance["InstanceId"],
        arn=f"arn:aws:ec2:{WEST}:{WEST_ACCOUNT}:instance/{instance['InstanceId']}",
        name="ledger-ag-sql1",
        account=WEST_ACCOUNT,
        region=WEST,
        dr_region=WEST_DR,
        rto_target_minutes=60,
        rpo_target_minutes=15,
    )
    operation_id = "op-sqlwest-000001"
    clients.client("dynamodb").put_item(
        TableName=settings.operations_table,
        Item={
            "pk": {"S": op_pk(operation_id)},
            "sk": {"S": META},
            "allow_data_loss": {"BOOL": True},  # drctl failover --allow-data-loss
        },
    )
    _admin(endpoint.url, {"regions_down": [WEST]})
    try:
        SqlAgService.build(Log(), settings).recover_part(
            WaveStarted(
                operation_id=operation_id,
                customer=WEST_CUSTOMER,
                environment=ENV,
                operation=OperationType.FAILOVER,
                wave=1,
                strategy=Strategy.SQL_AG,
                part=1,
                part_count=1,
                resources=[ref],
            )
        )
    finally:
        _admin(endpoint.url, {"regions_down": []})
    [result] = [e for e in received(endpoint, 1) if e["detail"]["operation_id"] == operation_id]
    assert result["detail-type"] == "ResourceRecovered", result["detail"]
    details = result["detail"]["details"]
    assert details["config_source"] == "DR replica tags (primary region unreachable)"
    assert details["before_sync"] == "AppDb=NOT SYNCHRONIZING,ReportingDb=NOT SYNCHRONIZING"
    assert details["failover_mode"] == "forced"
    assert details["estimated_data_loss_seconds"] == "unknown (primary replica unreachable)"
    assert result["detail"]["dr_region"] == WEST_DR


def _admin(url: str, config: dict[str, Any]) -> None:
    import urllib.request

    request = urllib.request.Request(
        url + "/_sandbox/config",
        data=json.dumps(config).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
