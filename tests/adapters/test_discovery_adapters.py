"""Discovery adapters under moto (SSM registry, tagging-API fallback, EC2 enrichment, the whole
`build_plan_for` and the service), and Resource Explorer through botocore's Stubber (moto has no
Resource Explorer; the Stubber checks every call against botocore's model)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from drcore import tags as T
from drcore.aws import AwsClients
from drcore.publisher import EventPublisher
from drcore.registry import CustomerEntry, EnvironmentEntry, parameter_name
from drcore.settings import Settings
from drcore.state import PlanStore
from events.schemas import DetailType, OperationRequested, OperationType, PlanSource
from services.discovery.adapters import (
    Ec2Facts,
    ResourceExplorerSearch,
    SsmRegistry,
    TaggingApiInventory,
)
from services.discovery.app import DiscoveryService, build_plan_for
from services.discovery.domain import InventoryUnavailable, UnknownScope

PRIMARY = "us-east-1"
DR = "us-east-2"
IMAGE = "ami-12c6146b"


@pytest.fixture
def account(settings: Settings) -> str:
    # The registry's account is moto's default account: no AssumeRole needed in-process.
    return settings.orchestration_account


@pytest.fixture
def registry(moto_aws: None, settings: Settings, account: str) -> SsmRegistry:
    ssm = boto3.client("ssm", region_name=settings.orchestration_region)
    for name, envs in (("acme", ["production", "staging"]), ("globex", ["production"])):
        entry = CustomerEntry(
            name=name,
            account=account,
            regions={PRIMARY: DR},
            environments=[EnvironmentEntry(name=e) for e in envs],
            external_id=f"ext-{name}",
        )
        ssm.put_parameter(Name=parameter_name(name), Value=entry.model_dump_json(), Type="String")
    return SsmRegistry(ssm)


def run_instance(name: str, ip: str, customer: str = "acme", **extra: str) -> str:
    ec2 = boto3.client("ec2", region_name=PRIMARY)
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=f"{ip.rsplit('.', 1)[0]}.0/24")
    tag_map = {
        T.ENABLED: "true",
        T.PRIORITY: "high",
        T.WAVE: "1",
        T.STRATEGY: "drs",
        T.RTO_TARGET: "60",
        T.RPO_TARGET: "15",
        T.CUSTOMER: customer,
        T.ENVIRONMENT: "production",
        T.NAME: name,
        **extra,
    }
    response = ec2.run_instances(
        ImageId=IMAGE,
        MinCount=1,
        MaxCount=1,
        SubnetId=subnet["Subnet"]["SubnetId"],
        PrivateIpAddress=ip,
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [{"Key": k, "Value": v} for k, v in tag_map.items()],
            }
        ],
    )
    return str(response["Instances"][0]["InstanceId"])


# --- SSM registry ---------------------------------------------------------------------------------


def test_given_registered_customers_when_reading_the_registry_then_entries_and_names(
    registry: SsmRegistry,
) -> None:
    acme = registry.get("acme")

    assert acme is not None and acme.dr_region == DR and acme.external_id == "ext-acme"
    assert registry.get("initech") is None
    assert registry.names() == ["acme", "globex"]


# --- tagging API fallback and EC2 enrichment ------------------------------------------------------


def test_given_instances_of_two_tenants_when_using_the_tagging_api_then_only_the_scope(
    moto_aws: None,
) -> None:
    mine = run_instance("web-01", "10.1.1.10")
    run_instance("web-01", "10.1.2.10", customer="globex")
    run_instance("off-01", "10.1.3.10", **{T.ENABLED: "false"})

    found = TaggingApiInventory(
        {PRIMARY: boto3.client("resourcegroupstaggingapi", region_name=PRIMARY)}
    ).resources("acme", "production")

    assert [r.resource_id for r in found] == [mine]
    assert found[0].region == PRIMARY and found[0].tags[T.NAME] == "web-01"


def test_given_instances_when_enriching_then_private_ip_and_unknown_ids_skipped(
    moto_aws: None,
) -> None:
    known = run_instance("web-01", "10.1.1.23")

    facts = Ec2Facts(boto3.client("ec2", region_name=PRIMARY))([known, "i-0123456789abcdef0"])

    assert set(facts) == {known}
    assert facts[known].private_ip == "10.1.1.23" and facts[known].state == "running"


# --- Resource Explorer (Stubber) ------------------------------------------------------------------


def explorer_item(instance_id: str, tag_map: dict[str, str] | None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "Arn": f"arn:aws:ec2:{PRIMARY}:111111111111:instance/{instance_id}",
        "OwningAccountId": "111111111111",
        "Region": PRIMARY,
        "ResourceType": "ec2:instance",
        "Service": "ec2",
        "Properties": [],
    }
    if tag_map is not None:
        item["Properties"] = [
            {"Name": "tags", "Data": [{"Key": k, "Value": v} for k, v in tag_map.items()]}
        ]
    return item


def test_given_paged_results_when_searching_then_tags_parsed_and_completeness_kept() -> None:
    client = boto3.client("resource-explorer-2", region_name=DR)
    query = "tag:dr:enabled=true"
    with Stubber(client) as stub:
        stub.add_response(
            "search",
            {
                "Resources": [explorer_item("i-1", {T.NAME: "web-01"})],
                "NextToken": "page-2",
                "Count": {"TotalResources": 2, "Complete": True},
            },
            {"QueryString": query, "MaxResults": 1000},
        )
        stub.add_response(
            "search",
            {"Resources": [explorer_item("i-2", {T.NAME: "web-02"})]},
            {"QueryString": query, "MaxResults": 1000, "NextToken": "page-2"},
        )
        result = ResourceExplorerSearch(client)(query)

    assert result.complete is True
    assert [(r.resource_id, r.tags[T.NAME], r.account) for r in result.resources] == [
        ("i-1", "web-01", "111111111111"),
        ("i-2", "web-02", "111111111111"),
    ]


def test_given_no_default_view_when_searching_then_inventory_unavailable() -> None:
    client = boto3.client("resource-explorer-2", region_name=DR)
    with Stubber(client) as stub:
        stub.add_client_error("search", "UnauthorizedException", "no default view", 401)
        with pytest.raises(InventoryUnavailable, match="UnauthorizedException"):
            ResourceExplorerSearch(client)("tag:dr:enabled=true")


def test_given_a_view_without_tags_when_searching_then_inventory_unavailable() -> None:
    client = boto3.client("resource-explorer-2", region_name=DR)
    with Stubber(client) as stub:
        stub.add_response(
            "search",
            {"Resources": [explorer_item("i-1", None)], "Count": {"Complete": True}},
        )
        with pytest.raises(InventoryUnavailable, match="tags"):
            ResourceExplorerSearch(client)("tag:dr:enabled=true")


# --- the whole plan, and the service --------------------------------------------------------------


def test_given_explorer_missing_when_building_a_plan_then_tagging_api_plan_with_ips(
    registry: SsmRegistry, settings: Settings
) -> None:
    web = run_instance("web-01", "10.1.1.10")
    run_instance("db-01", "10.1.1.20", **{T.WAVE: "0"})
    run_instance("k8s-01", "10.1.1.30", **{T.STRATEGY: "eks-dns"})
    drs_only = settings.model_copy(update={"enabled_strategies": ("drs",)})

    plan = build_plan_for("acme", "production", "failover", AwsClients(drs_only), drs_only)

    assert plan.plan_source is PlanSource.TAGGING_API
    assert [(r.resource_id, r.private_ip) for w in plan.waves for r in w.resources] == [
        (web, "10.1.1.10")
    ]
    assert {w.code for w in plan.warnings} == {
        "RESOURCE_EXPLORER_UNAVAILABLE",
        "INVALID_TAG",
        "STRATEGY_NOT_AVAILABLE",
    }


def test_given_an_unknown_environment_when_building_a_plan_then_unknown_scope(
    registry: SsmRegistry, settings: Settings
) -> None:
    with pytest.raises(UnknownScope) as caught:
        build_plan_for("acme", "prod", OperationType.FAILOVER, AwsClients(settings), settings)

    assert caught.value.code == "UNKNOWN_ENVIRONMENT"
    assert caught.value.known == ["production", "staging"]


class Recorder:
    def __init__(self) -> None:
        self.records: list[tuple[str, str]] = []

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.records.append(("info", msg))

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.records.append(("warning", msg))


@pytest.fixture
def bus_events(moto_aws: None, settings: Settings) -> Any:
    """Everything published on the bus lands in an SQS queue; returns a reader."""
    events = boto3.client("events", region_name=settings.orchestration_region)
    sqs = boto3.client("sqs", region_name=settings.orchestration_region)
    events.create_event_bus(Name=settings.bus_name)
    url = sqs.create_queue(QueueName="capture")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="all",
        EventBusName=settings.bus_name,
        EventPattern=json.dumps({"source": ["dr.discovery"]}),
    )
    events.put_targets(
        Rule="all", EventBusName=settings.bus_name, Targets=[{"Id": "q", "Arn": arn}]
    )

    def read() -> list[dict[str, Any]]:
        out = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in out]

    return read


def service(settings: Settings, tables: dict[str, Any], log: Recorder) -> DiscoveryService:
    clients = AwsClients(settings)
    return DiscoveryService(
        clients=clients,
        settings=settings,
        plans=PlanStore(tables["operations"]),
        publisher=EventPublisher(clients.client("events"), settings.bus_name),
        logger=log,
    )


def request(customer: str = "acme", environment: str = "production") -> OperationRequested:
    return OperationRequested(
        operation_id="op-123456",
        customer=customer,
        environment=environment,
        operation=OperationType.FAILOVER,
        requested_by="sre@example.com",
    )


def test_given_a_request_when_discovering_then_plan_stored_and_plan_ready_published(
    registry: SsmRegistry, settings: Settings, tables: dict[str, Any], bus_events: Any
) -> None:
    web = run_instance("web-01", "10.1.1.10")
    svc = service(settings, tables, Recorder())

    svc.on_operation_requested(request())
    svc.on_operation_requested(request())  # redelivered: the stored plan is announced again

    stored = PlanStore(tables["operations"]).get("op-123456")
    assert stored is not None and stored.waves[0].resources[0].resource_id == web
    published = bus_events()
    assert [e["detail-type"] for e in published] == [DetailType.PLAN_READY.value] * 2
    detail = published[0]["detail"]
    assert detail["plan_key"] == "OP#op-123456" and detail["resource_count"] == 1
    assert detail["plan_source"] == "tagging-api"


def test_given_an_unknown_customer_when_discovering_then_discovery_failed_lists_known(
    registry: SsmRegistry, settings: Settings, tables: dict[str, Any], bus_events: Any
) -> None:
    service(settings, tables, Recorder()).on_operation_requested(request(customer="acmee"))

    [event] = bus_events()
    assert event["detail-type"] == DetailType.DISCOVERY_FAILED.value
    assert event["detail"]["code"] == "UNKNOWN_CUSTOMER"
    assert "'acmee'" in event["detail"]["reason"] and "acme, globex" in event["detail"]["reason"]


def test_given_all_customers_when_discovering_then_ignored_with_a_log_line(
    registry: SsmRegistry, settings: Settings, tables: dict[str, Any], bus_events: Any
) -> None:
    log = Recorder()

    service(settings, tables, log).on_operation_requested(request(customer="*"))

    assert bus_events() == []
    assert log.records and log.records[0][0] == "info"


# --- resource types beyond EC2 --------------------------------------------------------------------


def dr_tags(name: str, strategy: str, customer: str = "acme") -> list[dict[str, str]]:
    tag_map = {
        T.ENABLED: "true",
        T.PRIORITY: "critical",
        T.WAVE: "1",
        T.STRATEGY: strategy,
        T.RTO_TARGET: "30",
        T.RPO_TARGET: "5",
        T.CUSTOMER: customer,
        T.ENVIRONMENT: "production",
        T.NAME: name,
    }
    return [{"Key": k, "Value": v} for k, v in tag_map.items()]


def managed_resources(customer: str = "acme") -> dict[str, str]:
    """An EFS and an FSx ONTAP file system and an ALB (what moto's tagging API reports)."""
    ec2 = boto3.client("ec2", region_name=PRIMARY)
    vpc = ec2.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.7.{n}.0/24", AvailabilityZone=f"{PRIMARY}{z}")[
            "Subnet"
        ]["SubnetId"]
        for n, z in ((1, "a"), (2, "b"))
    ]
    efs = boto3.client("efs", region_name=PRIMARY).create_file_system(
        CreationToken=f"{customer}-files",
        Tags=dr_tags(f"{customer}-files", "managed-service", customer),
    )
    fsx = boto3.client("fsx", region_name=PRIMARY).create_file_system(
        FileSystemType="ONTAP",
        StorageCapacity=1024,
        SubnetIds=subnets[:1],
        OntapConfiguration={"DeploymentType": "SINGLE_AZ_1", "ThroughputCapacity": 128},
        Tags=dr_tags(f"{customer}-ontap", "managed-service", customer),
    )["FileSystem"]
    alb = boto3.client("elbv2", region_name=PRIMARY).create_load_balancer(
        Name=f"{customer}-web",
        Subnets=subnets,
        Tags=dr_tags(f"{customer}-web", "managed-service", customer),
    )["LoadBalancers"][0]
    return {
        efs["FileSystemArn"]: efs["FileSystemId"],
        fsx["ResourceARN"]: fsx["FileSystemId"],
        alb["LoadBalancerArn"]: f"{customer}-web",
    }


def test_given_managed_resources_when_using_the_tagging_api_then_typed_and_scoped(
    moto_aws: None,
) -> None:
    # Given the scope's file systems and load balancer, another tenant's, and a SQL primary
    mine = managed_resources()
    managed_resources("globex")
    sql = run_instance("sql-01", "10.1.4.10", **{T.STRATEGY: "sql-ag"})

    # When the tagging API lists the scope
    found = TaggingApiInventory(
        {PRIMARY: boto3.client("resourcegroupstaggingapi", region_name=PRIMARY)}
    ).resources("acme", "production")

    # Then every supported type comes back with its natural id and type, and nothing of globex
    assert {(r.arn, r.resource_id, r.resource_type) for r in found if r.resource_id != sql} == {
        (arn, rid, kind)
        for arn, rid in mine.items()
        for kind in [
            "elasticfilesystem:file-system"
            if ":elasticfilesystem:" in arn
            else "fsx:file-system"
            if ":fsx:" in arn
            else "elasticloadbalancing:loadbalancer"
        ]
    }
    assert [r.resource_type for r in found if r.resource_id == sql] == ["ec2:instance"]


def explorer_entry(arn: str, resource_type: str, tag_map: dict[str, str]) -> dict[str, Any]:
    return {
        "Arn": arn,
        "OwningAccountId": "111111111111",
        "Region": PRIMARY,
        "ResourceType": resource_type,
        "Service": resource_type.split(":", 1)[0],
        "Properties": [
            {"Name": "tags", "Data": [{"Key": k, "Value": v} for k, v in tag_map.items()]}
        ],
    }


def test_given_non_ec2_results_when_searching_then_natural_ids_and_plan_types() -> None:
    client = boto3.client("resource-explorer-2", region_name=DR)
    base = f"arn:aws:{{}}:{PRIMARY}:111111111111:{{}}"
    items = [
        (base.format("eks", "cluster/acme-prod"), "eks:cluster"),
        (
            base.format("elasticache", "replicationgroup:acme-sessions"),
            "elasticache:replicationgroup",
        ),
        (
            base.format("elasticloadbalancing", "loadbalancer/net/acme-nlb/0123456789abcdef"),
            "elasticloadbalancing:loadbalancer/net",
        ),
        (base.format("elasticfilesystem", "file-system/fs-0abc"), "elasticfilesystem:file-system"),
    ]
    with Stubber(client) as stub:
        stub.add_response(
            "search",
            {
                "Resources": [explorer_entry(a, t, {T.NAME: "x"}) for a, t in items],
                "Count": {"TotalResources": 4, "Complete": True},
            },
        )
        result = ResourceExplorerSearch(client)("tag:dr:enabled=true")

    assert [(r.resource_id, r.resource_type) for r in result.resources] == [
        ("acme-prod", "eks:cluster"),
        ("acme-sessions", "elasticache:replicationgroup"),
        ("acme-nlb", "elasticloadbalancing:loadbalancer"),
        ("fs-0abc", "elasticfilesystem:file-system"),
    ]


def test_given_managed_and_sql_resources_when_planning_from_the_tagging_api_then_planned(
    registry: SsmRegistry, settings: Settings
) -> None:
    # Given a DRS server, a SQL AG primary without a twin or source server, and managed resources
    web = run_instance("web-01", "10.1.1.10")
    sql = run_instance("sql-01", "10.1.5.10", **{T.STRATEGY: "sql-ag"})
    managed = managed_resources()
    every = settings.model_copy(
        update={"enabled_strategies": ("drs", "sql-ag", "eks-dns", "managed-service")}
    )

    # When planning (Resource Explorer is absent under moto: the tagging API answers)
    plan = build_plan_for("acme", "production", "failover", AwsClients(every), every)

    # Then each is planned with its strategy and type; only instances get EC2 facts
    planned = {r.resource_id: r for w in plan.waves for r in w.resources}
    assert set(planned) == {web, sql, *managed.values()}
    assert (planned[sql].strategy.value, planned[sql].resource_type) == ("sql-ag", "ec2:instance")
    assert planned[sql].private_ip == "10.1.5.10"
    assert {planned[i].resource_type for i in managed.values()} == {
        "elasticfilesystem:file-system",
        "fsx:file-system",
        "elasticloadbalancing:loadbalancer",
    }
    assert {planned[i].name for i in managed.values()} == {"acme-files", "acme-ontap", "acme-web"}
    assert all(planned[i].private_ip is None for i in managed.values())
    assert {w.code for w in plan.warnings} == {"RESOURCE_EXPLORER_UNAVAILABLE"}
