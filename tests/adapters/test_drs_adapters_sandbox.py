"""DRS adapters against the sandbox endpoint (DRS emulator + moto), with the real assembly:
`DrsService.build` (idempotency table, operations table ledger, own queue, bus). The demo estate
is seeded once for the module; each test uses its own wave or operation id."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from drcore import tags as T
from drcore.aws import AccountAccess, AwsClients
from drcore.plan import Plan
from drcore.settings import Settings
from drcore.tables import TABLES, create_table, table_name
from events.schemas import OperationType, ResourceRef, Strategy, WaveStarted
from services.discovery.app import build_plan_for
from services.drs.adapters import DrsService
from services.drs.subscriptions import SERVICE

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.filterwarnings("ignore:Couldn't determine the remaining time"),
]

ESTATE = Path(__file__).parents[2] / "examples" / "estates" / "demo.yaml"
ACCOUNT = "111111111111"
DR = "us-east-2"


class Log:
    def info(self, *args: Any, **kwargs: Any) -> None: ...
    def warning(self, *args: Any, **kwargs: Any) -> None: ...
    def error(self, *args: Any, **kwargs: Any) -> None: ...


@pytest.fixture(scope="module")
def endpoint() -> Iterator[Any]:
    from sandbox.endpoint import SandboxEndpoint
    from sandbox.estate import load_estate
    from sandbox.seed import seed_estate

    server = SandboxEndpoint()
    url = server.start(port=0)
    estate = load_estate(ESTATE)
    fast = estate.timing.model_copy(update={"drs_launch_seconds": (0.1, 0.3)})
    seed_estate(estate.model_copy(update={"timing": fast}), url)
    settings = Settings()
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
    dynamodb = session.client("dynamodb", region_name=DR, endpoint_url=url)
    for spec in TABLES:
        create_table(dynamodb, spec, table_name(spec, settings))
    session.client("sqs", region_name=DR, endpoint_url=url).create_queue(
        QueueName=SERVICE.queue_name()
    )
    session.client("events", region_name=DR, endpoint_url=url).create_event_bus(
        Name=settings.bus_name
    )
    yield server
    server.stop()


@pytest.fixture
def clients(endpoint: Any, monkeypatch: pytest.MonkeyPatch) -> AwsClients:
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint.url)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    return AwsClients(Settings())


_PLANS: dict[str, Plan] = {}


def wave_part(clients: AwsClients, wave: int, operation_id: str) -> WaveStarted:
    if "acme" not in _PLANS:  # one plan for the module (no retries: a preview needs none)
        settings = Settings(max_attempts=1)
        _PLANS["acme"] = build_plan_for(
            "acme", "production", OperationType.FAILOVER, AwsClients(settings), settings
        )
    plan = _PLANS["acme"]
    return WaveStarted(
        operation_id=operation_id,
        customer="acme",
        environment="production",
        operation=OperationType.FAILOVER,
        wave=wave,
        strategy=Strategy.DRS,
        part=1,
        part_count=1,
        resources=[
            ResourceRef.model_validate(r.model_dump())
            for r in plan.wave(wave).resources
            if r.strategy == Strategy.DRS
        ],
    )


def drain(service: DrsService, jobs: list[str], expected: int) -> int:
    """Reconcile the part's jobs (as the native events would) until every server has a result."""
    reported = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        service.domain.begin_batch()
        reported += sum(
            service.domain.reconcile_job(job_id, ACCOUNT, DR).reported for job_id in jobs
        )
        if reported >= expected:
            return reported
        time.sleep(0.3)
    raise AssertionError(f"only {reported} of {expected} servers reported")


def delayed_checks(clients: AwsClients) -> int:
    sqs = clients.client("sqs")
    url = sqs.get_queue_url(QueueName=SERVICE.queue_name())["QueueUrl"]
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessagesDelayed"])


def calls(endpoint: Any) -> dict[str, dict[str, int]]:
    snapshot: dict[str, dict[str, int]] = endpoint.app.stats.snapshot()["calls"]
    return snapshot


def test_given_the_demo_estate_when_a_wave_is_recovered_then_all_into_twins_within_budget(
    endpoint: Any, clients: AwsClients
) -> None:
    part = wave_part(clients, 1, "op-sbx-000001")
    service = DrsService.build(Log(), clients.settings)
    endpoint.app.stats.reset()

    summary = service.recover_part(part)
    reported = drain(service, summary["jobs"], expected=len(part.resources))

    assert summary["launched"] == len(part.resources) and summary["failed"] == 0
    assert reported == len(part.resources)
    assert delayed_checks(clients) >= 1  # the job check waits on the service's own queue
    counted = calls(endpoint)
    drs = counted.get("drs", {})
    assert drs.get("StartRecovery") == 1
    assert drs.get("UpdateLaunchConfiguration") == len(part.resources)
    # Everything but the per-server launch configuration is batched: per part and per job.
    assert drs.get("DescribeSourceServers") == 1
    # twins, the primaries (boot mode), then the DR instances
    assert counted.get("ec2", {}).get("DescribeInstances") == 3
    # Within 8 calls per server, leaving out what a container looks up once and caches (role
    # credentials, registry, quotas, queue URL) and this test's own queue read.
    cached = {"sts", "ssm", "servicequotas"}
    once = {"GetQueueUrl", "GetQueueAttributes"}
    total = sum(
        n
        for service, ops in counted.items()
        if service not in cached
        for op, n in ops.items()
        if op not in once
    )
    assert total <= 8 * len(part.resources), counted


def test_given_a_redelivered_part_when_recovering_then_the_second_delivery_launches_nothing(
    endpoint: Any, clients: AwsClients
) -> None:
    part = wave_part(clients, 2, "op-sbx-000002")
    service = DrsService.build(Log(), clients.settings)
    first = service.recover_part(part)
    endpoint.app.stats.reset()

    again = service.recover_part(part)

    assert again == first
    assert "drs" not in calls(endpoint)  # answered from the idempotency record
    drain(service, first["jobs"], expected=len(part.resources))


def test_given_another_customers_same_name_instance_when_recovering_then_never_used(
    endpoint: Any, clients: AwsClients
) -> None:
    part = wave_part(clients, 3, "op-sbx-000003")
    target = part.resources[0]
    access = AccountAccess(ACCOUNT, "dr-orchestrator-workload", "dr-acme")
    ec2 = clients.workload_client("ec2", DR, access)
    twin = ec2.describe_instances(
        Filters=[
            {"Name": f"tag:{T.NAME}", "Values": [target.name]},
            {"Name": f"tag:{T.CUSTOMER}", "Values": ["acme"]},
        ]
    )["Reservations"][0]["Instances"][0]
    foreign = ec2.run_instances(
        ImageId="ami-12c6146b",
        MinCount=1,
        MaxCount=1,
        SubnetId=twin["SubnetId"],
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [
                    {"Key": T.NAME, "Value": target.name},
                    {"Key": T.CUSTOMER, "Value": "globex"},
                    {"Key": T.ENVIRONMENT, "Value": "production"},
                    {"Key": T.DRS_LAUNCH_INTO, "Value": T.DRS_LAUNCH_INTO_VALUE},
                ],
            }
        ],
    )["Instances"][0]["InstanceId"]
    service = DrsService.build(Log(), clients.settings)

    summary = service.recover_part(part)

    assert summary["failed"] == 0
    drs = clients.workload_client("drs", DR, access)
    servers = drs.describe_source_servers()["items"]
    source = next(
        s
        for s in servers
        if s["sourceProperties"]["identificationHints"]["awsInstanceID"] == target.resource_id
    )
    config = drs.get_launch_configuration(sourceServerID=source["sourceServerID"])
    assert config["launchIntoInstanceProperties"]["launchIntoEC2InstanceID"] == twin["InstanceId"]
    assert config["launchIntoInstanceProperties"]["launchIntoEC2InstanceID"] != foreign
    drain(service, summary["jobs"], expected=len(part.resources))
