"""Managed adapters against the sandbox endpoint (EFS replication emulator + moto for ELBv2,
Route 53, EC2, DynamoDB, SQS, EventBridge), with the real assembly `ManagedService.build`: wave
parts are given straight to the service, results are read from a queue on the bus.

One small estate is seeded for the module; each test uses its own resources and operation id."""

from __future__ import annotations

import json
import os
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from drcore.aws import AccountAccess, AwsClients
from drcore.settings import Settings
from drcore.tables import TABLES, create_table, table_name
from events.schemas import (
    OperationType,
    ResourceRecovered,
    ResourceRef,
    Strategy,
    WaveStarted,
)
from sandbox.seed import DEFAULT_IMAGE
from services.managed.app import ManagedService

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.filterwarnings("ignore:Couldn't determine the remaining time"),
]

ACCOUNT = "333333333333"
CUSTOMER = "mgd-adapters"
PRIMARY, DR = "us-east-1", "us-east-2"
ESTATE = f"""
regions: {{{PRIMARY}: {DR}}}
customers:
  - name: {CUSTOMER}
    account: "{ACCOUNT}"
    region: {PRIMARY}
    environments:
      - name: production
        bubble_network: false
        servers:
          - name: {CUSTOMER}-prod-app-01
            wave: 1
            ip: 10.7.10.50
            tags: {{dr:managed:dns-record: "{CUSTOMER}.internal/app01.{CUSTOMER}.internal"}}
        private_zone: {CUSTOMER}.internal
        efs:
          - {{name: files-ok, wave: 1}}
          - {{name: files-late, wave: 1, lag_seconds: 7200}}
          - {{name: files-drill, wave: 1}}
          - {{name: files-back, wave: 1}}
          - {{name: files-outage, wave: 1}}
        load_balancers:
          - {{name: web-pair, wave: 1}}
          - {{name: api-plain, wave: 1, type: network, mode: simple}}
          - {{name: bad-tags, wave: 1, tags: {{dr:managed:dns-record: "not a record"}}}}
        caches: [{{name: sessions, wave: 1}}]
"""


@dataclass
class Env:
    url: str
    results_queue: str
    service: Any = None


class Log:
    def info(self, *args: Any, **kwargs: Any) -> None: ...
    def warning(self, *args: Any, **kwargs: Any) -> None: ...
    def error(self, *args: Any, **kwargs: Any) -> None: ...


@pytest.fixture(scope="module")
def endpoint() -> Iterator[Any]:
    from sandbox.endpoint import SandboxEndpoint
    from sandbox.estate import parse_estate
    from sandbox.seed import seed_estate

    server = SandboxEndpoint()
    url = server.start(port=0)
    seed_estate(parse_estate(ESTATE, "<managed adapters>"), url)
    settings = Settings()
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
    dynamodb = session.client("dynamodb", region_name=DR, endpoint_url=url)
    for spec in TABLES:
        create_table(dynamodb, spec, table_name(spec, settings))
    events = session.client("events", region_name=DR, endpoint_url=url)
    sqs = session.client("sqs", region_name=DR, endpoint_url=url)
    events.create_event_bus(Name=settings.bus_name)
    queue = sqs.create_queue(QueueName="managed-results")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="managed-results",
        EventBusName=settings.bus_name,
        EventPattern=json.dumps({"source": ["dr.managed"]}),
    )
    events.put_targets(
        Rule="managed-results", EventBusName=settings.bus_name, Targets=[{"Id": "q", "Arn": arn}]
    )
    yield Env(url=url, results_queue=queue)
    server.stop()


@pytest.fixture(scope="module")
def env(endpoint: Any) -> Iterator[Any]:
    keys = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint.url, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing"
    )
    os.environ.pop("AWS_SESSION_TOKEN", None)
    endpoint.service = ManagedService.build(Log())
    yield endpoint
    _CLIENTS.clear()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


_CLIENTS: dict[str, AwsClients] = {}


def workload(service: str, region: str) -> Any:
    access = AccountAccess(ACCOUNT, "dr-orchestrator-workload", f"dr-{CUSTOMER}")
    clients = _CLIENTS.setdefault("clients", AwsClients(Settings()))
    return clients.workload_client(service, region, access)


def drain(endpoint: Any) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name=DR, endpoint_url=endpoint.url)
    out: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(QueueUrl=endpoint.results_queue, MaxNumberOfMessages=10)
        messages = got.get("Messages", [])
        if not messages:
            return out
        for message in messages:
            out.append(json.loads(message["Body"]))
            sqs.delete_message(
                QueueUrl=endpoint.results_queue, ReceiptHandle=message["ReceiptHandle"]
            )


def efs_ref(name: str) -> ResourceRef:
    efs = workload("efs", PRIMARY)
    token = f"{CUSTOMER}-production-{name}"
    [fs] = efs.describe_file_systems(CreationToken=token)["FileSystems"]
    return ResourceRef(
        resource_id=fs["FileSystemId"],
        arn=fs["FileSystemArn"],
        name=name,
        account=ACCOUNT,
        region=PRIMARY,
        dr_region=DR,
        rto_target_minutes=60,
        rpo_target_minutes=15,
        resource_type="elasticfilesystem:file-system",
    )


def lb_ref(name: str) -> ResourceRef:
    [lb] = workload("elbv2", PRIMARY).describe_load_balancers(Names=[name])["LoadBalancers"]
    return ResourceRef(
        resource_id=name,
        arn=lb["LoadBalancerArn"],
        name=name,
        account=ACCOUNT,
        region=PRIMARY,
        dr_region=DR,
        rto_target_minutes=60,
        rpo_target_minutes=15,
        resource_type="elasticloadbalancing:loadbalancer",
    )


def part(operation: OperationType, *refs: ResourceRef) -> WaveStarted:
    return WaveStarted(
        operation_id=f"op-{uuid.uuid4().hex[:12]}",
        customer=CUSTOMER,
        environment="production",
        operation=operation,
        wave=1,
        strategy=Strategy.MANAGED_SERVICE,
        part=1,
        part_count=1,
        resources=list(refs),
    )


def results(endpoint: Any, operation_id: str) -> dict[str, dict[str, Any]]:
    return {
        e["detail"]["resource_id"]: e
        for e in drain(endpoint)
        if e["detail"]["operation_id"] == operation_id
    }


def test_given_a_healthy_efs_when_failing_over_then_the_replica_is_writable(env: Any) -> None:
    service = env.service
    ref = efs_ref("files-ok")
    wave = part(OperationType.FAILOVER, ref)
    service.recover_part(wave)
    [event] = results(env, wave.operation_id).values()
    assert event["detail-type"] == "ResourceRecovered", event["detail"].get("error")
    details = event["detail"]["details"]
    assert details["deletion_mode"] == "ALL_CONFIGURATIONS"
    assert 50 <= int(details["lag_seconds"]) <= 120
    efs_dr = workload("efs", DR)
    [replica] = efs_dr.describe_file_systems(FileSystemId=event["detail"]["dr_resource_id"])[
        "FileSystems"
    ]
    assert replica["FileSystemProtection"]["ReplicationOverwriteProtection"] == "ENABLED"


def test_given_lag_over_rpo_when_failing_over_then_it_fails_and_nothing_is_deleted(
    env: Any,
) -> None:
    service = env.service
    ref = efs_ref("files-late")
    wave = part(OperationType.FAILOVER, ref)
    service.recover_part(wave)
    [event] = results(env, wave.operation_id).values()
    assert event["detail-type"] == "ResourceRecoveryFailed"
    assert event["detail"]["error_code"] == "EFS_LAG_OVER_RPO"
    assert "7200 s" in event["detail"]["error"] or "720" in event["detail"]["error"]
    still = workload("efs", PRIMARY).describe_replication_configurations(
        FileSystemId=ref.resource_id
    )["Replications"]
    assert still[0]["Destinations"][0]["Status"] == "ENABLED"


def test_given_a_drill_then_efs_is_validated_and_left_replicating(env: Any) -> None:
    service = env.service
    ref = efs_ref("files-drill")
    wave = part(OperationType.BUBBLE_TEST, ref)
    service.recover_part(wave)
    [event] = results(env, wave.operation_id).values()
    assert event["detail-type"] == "ResourceRecovered"
    assert "drill" in event["detail"]["details"]
    assert workload("efs", PRIMARY).describe_replication_configurations(
        FileSystemId=ref.resource_id
    )["Replications"]


def test_given_a_failed_over_efs_when_failing_back_then_replication_runs_primary_to_dr(
    env: Any,
) -> None:
    service = env.service
    ref = efs_ref("files-back")
    over = part(OperationType.FAILOVER, ref)
    service.recover_part(over)
    assert [e["detail-type"] for e in results(env, over.operation_id).values()] == [
        "ResourceRecovered"
    ]
    back = part(OperationType.FAILBACK, ref)
    service.recover_part(back)
    [event] = results(env, back.operation_id).values()
    assert event["detail-type"] == "ResourceRecovered", event["detail"].get("error")
    assert event["detail"]["dr_resource_id"] == ref.resource_id
    [again] = workload("efs", PRIMARY).describe_replication_configurations(
        FileSystemId=ref.resource_id
    )["Replications"]
    assert again["SourceFileSystemId"] == ref.resource_id
    assert again["Destinations"][0]["Region"] == DR


def _answer(zone_name: str, record: str) -> dict[str, Any]:
    route53 = workload("route53", DR)
    zones = route53.list_hosted_zones_by_name(DNSName=zone_name)["HostedZones"]
    zone = zones[0]["Id"].split("/")[-1]
    sets = route53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    return {s.get("SetIdentifier", "plain"): s for s in sets if s["Name"] == record}


def test_given_a_failover_pair_when_failing_over_and_back_then_the_health_check_flips(
    env: Any,
) -> None:
    service = env.service
    ref = lb_ref("web-pair")
    over = part(OperationType.FAILOVER, ref)
    service.recover_part(over)
    [event] = results(env, over.operation_id).values()
    assert event["detail-type"] == "ResourceRecovered", event["detail"].get("error")
    details = event["detail"]["details"]
    assert (details["mode"], details["answer"]) == ("health-check-inversion", "SECONDARY")
    check = workload("route53", DR).get_health_check(HealthCheckId=details["health_check_id"])
    assert check["HealthCheck"]["HealthCheckConfig"]["Inverted"] is True
    back = part(OperationType.FAILBACK, ref)
    service.recover_part(back)
    [event] = results(env, back.operation_id).values()
    assert event["detail"]["details"]["answer"] == "PRIMARY"
    check = workload("route53", DR).get_health_check(HealthCheckId=details["health_check_id"])
    assert check["HealthCheck"]["HealthCheckConfig"]["Inverted"] is False


def test_given_a_plain_record_when_failing_over_then_it_is_upserted_to_the_dr_lb(
    env: Any,
) -> None:
    service = env.service
    ref = lb_ref("api-plain")
    wave = part(OperationType.FAILOVER, ref)
    service.recover_part(wave)
    [event] = results(env, wave.operation_id).values()
    assert event["detail-type"] == "ResourceRecovered", event["detail"].get("error")
    [dr_lb] = workload("elbv2", DR).describe_load_balancers(Names=["api-plain-dr"])["LoadBalancers"]
    record = _answer(
        f"{CUSTOMER}-production.svc.sandbox.example.", event["detail"]["details"]["record"]
    )
    assert record["plain"]["ResourceRecords"] == [{"Value": dr_lb["DNSName"]}]
    assert event["detail"]["details"]["change_status"] == "INSYNC"


def test_given_a_bad_module_tag_then_it_fails_naming_the_tag(env: Any) -> None:
    service = env.service
    wave = part(OperationType.FAILOVER, lb_ref("bad-tags"))
    service.recover_part(wave)
    [event] = results(env, wave.operation_id).values()
    assert event["detail"]["error_code"] == "INVALID_MODULE_TAG"
    assert "dr:managed:dns-record='not a record'" in event["detail"]["error"]


def test_given_a_drs_recovered_server_then_its_a_record_follows_it(env: Any) -> None:
    service = env.service
    [reservation] = workload("ec2", PRIMARY).describe_instances(
        Filters=[{"Name": "tag:Name", "Values": [f"{CUSTOMER}-prod-app-01"]}]
    )["Reservations"]
    instance = reservation["Instances"][0]["InstanceId"]
    event = ResourceRecovered(
        operation_id=f"op-{uuid.uuid4().hex[:12]}",
        customer=CUSTOMER,
        environment="production",
        operation=OperationType.FAILOVER,
        resource_id=instance,
        wave=1,
        strategy=Strategy.DRS,
        dr_resource_id="i-0123456789abcdef0",
        dr_private_ip="10.107.10.50",
        dr_region=DR,
        started_at=datetime.now(UTC),
        completed_at=datetime.now(UTC),
    )
    first = service.domain.server_recovered(event)
    again = service.domain.server_recovered(event)
    assert first is not None and first.changed and first.previous_values == ["10.7.10.50"]
    assert again == first  # the stored record, published again: nothing changed twice
    record = _answer(f"{CUSTOMER}.internal.", f"app01.{CUSTOMER}.internal.")
    assert record["plain"]["ResourceRecords"] == [{"Value": "10.107.10.50"}]
    published = [e for e in drain(env) if e["detail-type"] == "DnsRecordUpdated"]
    assert len(published) == 2 and published[0]["detail"] == published[1]["detail"]


def test_given_tags_then_every_instance_carrying_them_and_no_other_is_listed(env: Any) -> None:
    ec2 = workload("ec2", PRIMARY)
    other_environment = [
        {"Key": "Customer", "Value": CUSTOMER},
        {"Key": "Environment", "Value": "staging"},
    ]
    ec2.run_instances(
        ImageId=DEFAULT_IMAGE,
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": other_environment}],
    )
    every = {
        i["InstanceId"]: {t["Key"]: t["Value"] for t in i.get("Tags", [])}
        for r in ec2.describe_instances()["Reservations"]
        for i in r["Instances"]
    }
    scope = {"Customer": CUSTOMER, "Environment": "production"}
    expected = {i for i, tags in every.items() if scope.items() <= tags.items()}
    service_workload = env.service.domain.workloads.get(
        env.service.domain.registry.customer(CUSTOMER), PRIMARY
    )
    listed = service_workload.instances_tagged(scope)
    assert expected and set(listed) == expected
    assert len(expected) < len(every)  # the staging server is left out
    assert all(listed[i].tags == every[i] for i in listed)


def test_given_a_regional_cache_when_failing_over_then_its_endpoint_record_switches(
    env: Any,
) -> None:
    service = env.service
    [group] = workload("elasticache", PRIMARY).describe_replication_groups(
        ReplicationGroupId="sessions"
    )["ReplicationGroups"]
    ref = ResourceRef(
        resource_id="sessions",
        arn=group["ARN"],
        name="sessions",
        account=ACCOUNT,
        region=PRIMARY,
        dr_region=DR,
        rto_target_minutes=60,
        rpo_target_minutes=15,
        resource_type="elasticache:replicationgroup",
    )
    wave = part(OperationType.FAILOVER, ref)
    service.recover_part(wave)
    [event] = results(env, wave.operation_id).values()
    assert event["detail-type"] == "ResourceRecovered", event["detail"].get("error")
    [dr_group] = workload("elasticache", DR).describe_replication_groups(
        ReplicationGroupId="sessions-dr"
    )["ReplicationGroups"]
    endpoint = dr_group["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
    record = _answer(
        f"{CUSTOMER}-production.svc.sandbox.example.", event["detail"]["details"]["record"]
    )
    assert record["plain"]["ResourceRecords"] == [{"Value": endpoint}]


def test_given_the_primary_region_down_when_failing_over_then_the_dr_side_is_deleted_locally(
    env: Any,
) -> None:
    ref = efs_ref("files-outage")
    admin = urllib.request.Request(
        env.url + "/_sandbox/config",
        data=json.dumps({"regions_down": [PRIMARY]}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(admin, timeout=10).close()
    try:
        service = env.service  # primary-region reads retry little (primary_region_retries)
        wave = part(OperationType.FAILOVER, ref)
        service.recover_part(wave)
    finally:
        admin.data = json.dumps({"regions_down": []}).encode()
        urllib.request.urlopen(admin, timeout=10).close()
    [event] = results(env, wave.operation_id).values()
    assert event["detail-type"] == "ResourceRecovered", event["detail"].get("error")
    details = event["detail"]["details"]
    assert details["deletion_mode"] == "LOCAL_CONFIGURATION_ONLY"
    assert details["source_region_down"] == "true"
    # The source side keeps its (now broken) configuration, as AWS leaves it
    [left] = workload("efs", PRIMARY).describe_replication_configurations(
        FileSystemId=ref.resource_id
    )["Replications"]
    assert left["Destinations"][0]["Status"] == "ERROR"


def test_given_a_held_claim_then_it_is_busy_until_the_hold_ends_and_the_note_is_handed_on(
    env: Any,
) -> None:
    from datetime import timedelta

    from services.managed.adapters import DynamoLedger

    ledger = DynamoLedger(
        boto3.client("dynamodb", region_name=DR, endpoint_url=env.url),
        Settings().operations_table,
    )
    op, key, now = f"op-{uuid.uuid4().hex[:12]}", "fs-0000000a#recover#1", datetime.now(UTC)
    assert ledger.claim(op, key, now, 300).state == "claimed"
    assert ledger.claim(op, key, now, 300).state == "busy"
    ledger.hold(op, key, now + timedelta(seconds=60), "fs-0000000b")
    assert ledger.claim(op, key, now + timedelta(seconds=30), 300).state == "busy"
    taken = ledger.claim(op, key, now + timedelta(seconds=61), 300)
    assert (taken.state, taken.note) == ("claimed", "fs-0000000b")
    ledger.finish(op, key, '{"x": 1}', now)
    assert ledger.claim(op, key, now + timedelta(days=1), 300).result == '{"x": 1}'
