"""The Resource Explorer emulator through a real boto3 `resource-explorer-2` client."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sandbox.emulators.resource_explorer import IndexedResource, compile_query, tokenize

from .conftest import DEFAULT_ACCOUNT, DR, Admin, ClientFactory

pytestmark = pytest.mark.sandbox

PRIMARY = "us-east-1"


@pytest.fixture(autouse=True)
def _fresh(admin: Admin) -> None:
    admin.reset()


def instances(client: ClientFactory, region: str, count: int, **tags: str) -> list[str]:
    ec2 = client("ec2", region=region)
    created = ec2.run_instances(
        ImageId="ami-12c6146b",
        MinCount=count,
        MaxCount=count,
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        ],
    )["Instances"]
    return [i["InstanceId"] for i in created]


def aggregator(client: ClientFactory, *, tags_property: bool = True, filters: str = "") -> str:
    """A LOCAL index in the primary region, the AGGREGATOR and default view in the DR region."""
    client("resource-explorer-2", region=PRIMARY).create_index()
    rex = client("resource-explorer-2")
    arn = rex.create_index()["Arn"]
    assert rex.update_index_type(Arn=arn, Type="AGGREGATOR")["State"] == "UPDATING"
    kwargs: dict[str, Any] = {"ViewName": "all"}
    if tags_property:
        kwargs["IncludedProperties"] = [{"Name": "tags"}]
    if filters:
        kwargs["Filters"] = {"FilterString": filters}
    view = rex.create_view(**kwargs)["View"]["ViewArn"]
    rex.associate_default_view(ViewArn=view)
    return str(view)


def search(client: ClientFactory, query: str, **kwargs: Any) -> dict[str, Any]:
    result: dict[str, Any] = client("resource-explorer-2").search(QueryString=query, **kwargs)
    return result


def arns(result: dict[str, Any]) -> set[str]:
    return {r["Arn"] for r in result["Resources"]}


def test_without_a_default_view_search_is_unauthorized(client: ClientFactory) -> None:
    client("resource-explorer-2").create_index()
    with pytest.raises(ClientError) as caught:
        search(client, "tag:dr:enabled=true")
    assert caught.value.response["Error"]["Code"] == "UnauthorizedException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 401


def test_tag_filters_with_colon_keys_negation_and_wildcards(client: ClientFactory) -> None:
    # Given servers of two customers and a twin without dr tags, in the primary region
    prod = instances(
        client,
        PRIMARY,
        3,
        **{
            "dr:enabled": "true",
            "Customer": "acme",
            "Environment": "production",
            "Name": "acme-prod-app-017",
        },
    )
    staging = instances(
        client,
        PRIMARY,
        2,
        **{
            "dr:enabled": "true",
            "Customer": "acme",
            "Environment": "staging",
            "Name": "acme-stg-app-001",
        },
    )
    other = instances(client, PRIMARY, 2, **{"dr:enabled": "true", "Customer": "globex"})
    twins = instances(
        client, DR, 3, **{"Customer": "acme", "AWSDRS": "AllowLaunchingIntoThisInstance"}
    )
    view = aggregator(client)

    def ids(result: dict[str, Any]) -> set[str]:
        return {a.rsplit("/", 1)[1] for a in arns(result)}

    scoped = search(client, "tag:dr:enabled=true tag:Customer=acme tag:Environment=production")
    assert ids(scoped) == set(prod)
    assert scoped["Count"] == {"TotalResources": 3, "Complete": True}
    assert scoped["ViewArn"] == view
    assert ids(search(client, "tag:Customer=acme -tag:Environment=staging")) == set(prod) | set(
        twins
    )
    assert ids(search(client, "tag:Name=acme-*")) == set(prod) | set(staging)
    assert ids(search(client, "tag:dr:enabled=true -tag:Customer=acme")) == set(other)
    assert ids(search(client, f"region:{DR}")) == set(twins)
    assert ids(search(client, "tag.key:AWSDRS")) == set(twins)
    assert ids(search(client, "resourcetype:ec2:instance service:ec2 tag:Customer=globex")) == set(
        other
    )
    assert ids(search(client, "tag:Customer=ACME")) == set()

    # And tags come back as a property, the way the view includes them
    first = scoped["Resources"][0]
    assert first["ResourceType"] == "ec2:instance" and first["Service"] == "ec2"
    assert first["OwningAccountId"] == DEFAULT_ACCOUNT and first["Region"] == PRIMARY
    assert isinstance(first["LastReportedAt"], dt.datetime)
    (tags,) = first["Properties"]
    assert tags["Name"] == "tags"
    assert {"Key": "Customer", "Value": "acme"} in tags["Data"]


def test_search_pages_and_never_returns_more_than_1000(
    endpoint: Any, client: ClientFactory
) -> None:
    from moto.ec2.models import ec2_backends

    aggregator(client)
    instances(client, PRIMARY, 25, **{"dr:enabled": "true", "Customer": "acme"})
    pages = list(
        client("resource-explorer-2")
        .get_paginator("search")
        .paginate(QueryString="tag:Customer=acme", PaginationConfig={"PageSize": 10})
    )
    assert [len(p["Resources"]) for p in pages] == [10, 10, 5]
    assert all(p["Count"] == {"TotalResources": 25, "Complete": True} for p in pages)
    assert len({r["Arn"] for p in pages for r in p["Resources"]}) == 25

    # A token only works for the query that made it
    token = pages[0]["NextToken"]
    with pytest.raises(ClientError) as caught:
        search(client, "tag:Customer=other", NextToken=token, MaxResults=10)
    assert caught.value.response["Error"]["Code"] == "ValidationException"

    # Given more than 1,000 matches (made in-process: quicker than 1,000 calls)
    ec2_backends[DEFAULT_ACCOUNT][PRIMARY].run_instances(
        "ami-12c6146b",
        1000,
        None,
        [],
        instance_type="t3.micro",
        is_instance_type_default=True,
        region_name=PRIMARY,
        tags={"instance": {"Customer": "acme"}},
    )
    first = search(client, "tag:Customer=acme")
    assert first["Count"] == {"TotalResources": 1000, "Complete": False}
    assert len(first["Resources"]) == 1000 and "NextToken" not in first
    paged = list(
        client("resource-explorer-2")
        .get_paginator("search")
        .paginate(QueryString="tag:Customer=acme", PaginationConfig={"PageSize": 400})
    )
    assert sum(len(p["Resources"]) for p in paged) == 1000
    # Refining the query (here: by tag) makes it complete again
    narrow = search(client, "tag:dr:enabled=true tag:Customer=acme")
    assert narrow["Count"] == {"TotalResources": 25, "Complete": True}


def test_views_limit_what_search_sees(client: ClientFactory) -> None:
    instances(client, PRIMARY, 2, Customer="acme")
    instances(client, PRIMARY, 1, Customer="globex")
    aggregator(client, tags_property=False, filters="tag:Customer=acme")
    result = search(client, "service:ec2")
    assert result["Count"]["TotalResources"] == 2
    assert all(r["Properties"] == [] for r in result["Resources"])


def test_a_local_index_sees_only_its_region_and_terminated_instances_leave(
    client: ClientFactory,
) -> None:
    here = instances(client, DR, 2, Customer="acme")
    instances(client, PRIMARY, 2, Customer="acme")
    rex = client("resource-explorer-2")
    rex.create_index()
    view = rex.create_view(ViewName="local")["View"]["ViewArn"]
    result = search(client, "tag:Customer=acme", ViewArn=view)
    assert {a.rsplit("/", 1)[1] for a in arns(result)} == set(here)
    client("ec2").terminate_instances(InstanceIds=here[:1])
    assert search(client, "tag:Customer=acme", ViewArn=view)["Count"]["TotalResources"] == 1


def test_indexes_and_views_are_described(client: ClientFactory) -> None:
    view = aggregator(client)
    rex = client("resource-explorer-2")
    index = rex.get_index()
    assert index["Type"] == "AGGREGATOR" and index["State"] == "ACTIVE"
    assert index["ReplicatingFrom"] == [PRIMARY]
    assert client("resource-explorer-2", region=PRIMARY).get_index()["ReplicatingTo"] == [DR]
    listed = {(i["Region"], i["Type"]) for i in rex.list_indexes()["Indexes"]}
    assert listed == {(PRIMARY, "LOCAL"), (DR, "AGGREGATOR")}
    assert rex.get_default_view()["ViewArn"] == view
    assert rex.list_views()["Views"] == [view]
    assert rex.get_view(ViewArn=view)["View"]["IncludedProperties"] == [{"Name": "tags"}]
    local_arn = client("resource-explorer-2", region=PRIMARY).get_index()["Arn"]
    with pytest.raises(ClientError) as caught:
        rex.update_index_type(Arn=local_arn, Type="AGGREGATOR")
    assert caught.value.response["Error"]["Code"] == "ServiceQuotaExceededException"
    with pytest.raises(ClientError) as caught:
        rex.create_index()
    assert caught.value.response["Error"]["Code"] == "ConflictException"


def test_bad_queries_are_validation_errors(client: ClientFactory) -> None:
    aggregator(client)
    for query in ("x" * 1281, 'tag:Name="unbalanced'):
        with pytest.raises(ClientError) as caught:
            search(client, query)
        assert caught.value.response["Error"]["Code"] == "ValidationException"
        assert caught.value.response["Error"]["Message"]


def resource(**tags: str) -> IndexedResource:
    return IndexedResource(
        arn="arn:aws:ec2:us-east-1:111111111111:instance/i-0abc",
        account="111111111111",
        region="us-east-1",
        resource_type="ec2:instance",
        service="ec2",
        resource_id="i-0abc",
        tags=tags,
        last_reported_at=dt.datetime.now(dt.UTC),
    )


def test_query_language() -> None:
    assert tokenize('tag:Name="my server" region:us-east-1') == [
        "tag:Name=my server",
        "region:us-east-1",
    ]
    stack = resource(**{"aws:cloudformation:stack-name": "x", "token": "a=b", "Name": "my server"})
    assert compile_query("tag:aws:cloudformation:stack-name=x")(stack)
    assert compile_query("tag:token=a=b")(stack)  # the key ends at the first '='
    assert compile_query('tag:Name="my server"')(stack)
    assert compile_query("tag:Name=my*")(stack)
    assert not compile_query("-tag:Name=my*")(stack)
    assert compile_query("tag:all")(stack) and not compile_query("tag:none")(stack)
    assert compile_query("tag:none")(resource())
    assert compile_query("tag.value:a=b")(stack)
    assert compile_query("region:us-* accountid:111111111111 id:i-0abc")(stack)
    assert compile_query("server nothing")(stack)  # free text: any keyword
    assert not compile_query("nothing")(stack)


# --- resource types beyond EC2 --------------------------------------------------------------------


def dr_tag_list(name: str, strategy: str = "managed-service") -> list[dict[str, str]]:
    tags = {
        "dr:enabled": "true",
        "dr:recovery-strategy": strategy,
        "Customer": "acme",
        "Environment": "production",
        "Name": name,
    }
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def managed_estate(client: ClientFactory) -> dict[str, str]:
    """One resource of every indexed non-EC2 type in the primary region: name -> ARN."""
    ec2 = client("ec2", region=PRIMARY)
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{n}.0/24", AvailabilityZone=f"{PRIMARY}{z}")[
            "Subnet"
        ]["SubnetId"]
        for n, z in ((1, "a"), (2, "b"))
    ]
    eks = client("eks", region=PRIMARY).create_cluster(
        name="acme-prod-eks",
        roleArn=f"arn:aws:iam::{DEFAULT_ACCOUNT}:role/eks",
        resourcesVpcConfig={"subnetIds": subnets},
        tags={t["Key"]: t["Value"] for t in dr_tag_list("acme-prod-eks", "eks-dns")},
    )["cluster"]
    efs = client("efs", region=PRIMARY).create_file_system(
        CreationToken="acme-prod-files", Tags=dr_tag_list("acme-prod-files")
    )
    fsx = client("fsx", region=PRIMARY).create_file_system(
        FileSystemType="ONTAP",
        StorageCapacity=1024,
        SubnetIds=subnets[:1],
        OntapConfiguration={"DeploymentType": "SINGLE_AZ_1", "ThroughputCapacity": 128},
        Tags=dr_tag_list("acme-prod-ontap"),
    )["FileSystem"]
    cache = client("elasticache", region=PRIMARY).create_replication_group(
        ReplicationGroupId="acme-prod-cache",
        ReplicationGroupDescription="sessions",
        Engine="redis",
        CacheNodeType="cache.t3.micro",
        Tags=dr_tag_list("acme-prod-cache"),
    )["ReplicationGroup"]
    elbv2 = client("elbv2", region=PRIMARY)
    alb = elbv2.create_load_balancer(
        Name="acme-prod-alb", Subnets=subnets, Tags=dr_tag_list("acme-prod-alb")
    )["LoadBalancers"][0]
    nlb = elbv2.create_load_balancer(
        Name="acme-prod-nlb", Subnets=subnets, Type="network", Tags=dr_tag_list("acme-prod-nlb")
    )["LoadBalancers"][0]
    client("elb", region=PRIMARY).create_load_balancer(
        LoadBalancerName="acme-prod-clb",
        Listeners=[{"Protocol": "TCP", "LoadBalancerPort": 80, "InstancePort": 80}],
        AvailabilityZones=[f"{PRIMARY}a"],
        Tags=dr_tag_list("acme-prod-clb"),
    )
    return {
        "eks": eks["arn"],
        "efs": efs["FileSystemArn"],
        "fsx": fsx["ResourceARN"],
        "cache": cache["ARN"],
        "alb": alb["LoadBalancerArn"],
        "nlb": nlb["LoadBalancerArn"],
        "clb": f"arn:aws:elasticloadbalancing:{PRIMARY}:{DEFAULT_ACCOUNT}:"
        "loadbalancer/acme-prod-clb",
    }


def test_non_ec2_resources_are_indexed_with_their_resource_explorer_types(
    client: ClientFactory,
) -> None:
    # Given an EKS cluster, EFS and FSx file systems, a replication group and three load
    # balancers, all DR-tagged, and an aggregator index with a tags view
    made = managed_estate(client)
    aggregator(client)

    # When searching the scope
    result = search(client, "tag:dr:enabled=true tag:Customer=acme tag:Environment=production")

    # Then each comes back with Resource Explorer's type and service, and its tags
    types = {r["Arn"]: (r["ResourceType"], r["Service"]) for r in result["Resources"]}
    assert types == {
        made["eks"]: ("eks:cluster", "eks"),
        made["efs"]: ("elasticfilesystem:file-system", "elasticfilesystem"),
        made["fsx"]: ("fsx:file-system", "fsx"),
        made["cache"]: ("elasticache:replicationgroup", "elasticache"),
        made["alb"]: ("elasticloadbalancing:loadbalancer/app", "elasticloadbalancing"),
        made["nlb"]: ("elasticloadbalancing:loadbalancer/net", "elasticloadbalancing"),
        made["clb"]: ("elasticloadbalancing:loadbalancer", "elasticloadbalancing"),
    }
    for item in result["Resources"]:
        (tags,) = item["Properties"]
        assert {"Key": "Customer", "Value": "acme"} in tags["Data"]
        assert item["Region"] == PRIMARY and item["OwningAccountId"] == DEFAULT_ACCOUNT
    # And resourcetype filters pick one type; a trailing * takes every load balancer
    assert arns(search(client, "resourcetype:eks:cluster")) == {made["eks"]}
    assert arns(search(client, "resourcetype:elasticloadbalancing:loadbalancer*")) == {
        made["alb"],
        made["nlb"],
        made["clb"],
    }
    assert arns(search(client, "resourcetype:elasticfilesystem:file-system")) == {made["efs"]}
    # And a deleted file system leaves the index
    fs_id = made["efs"].rsplit("/", 1)[1]
    client("efs", region=PRIMARY).delete_file_system(FileSystemId=fs_id)
    assert arns(search(client, "resourcetype:elasticfilesystem:file-system")) == set()


def test_supported_resource_types_are_listed(client: ClientFactory) -> None:
    listed = client("resource-explorer-2").list_supported_resource_types()["ResourceTypes"]
    kinds = {t["ResourceType"] for t in listed}
    assert {"ec2:instance", "eks:cluster", "fsx:file-system"} <= kinds
    assert {"elasticloadbalancing:loadbalancer/app", "elasticache:replicationgroup"} <= kinds


def test_resources_registered_by_another_emulator_are_searchable(client: ClientFactory) -> None:
    from sandbox.emulators.resource_explorer import register_collector, unregister_collector

    # Given an emulator that registers a resource moto does not hold
    arn = f"arn:aws:eks:{PRIMARY}:{DEFAULT_ACCOUNT}:cluster/emulated-only"

    def collector(account: str, regions: list[str] | None) -> list[IndexedResource]:
        if account != DEFAULT_ACCOUNT or (regions is not None and PRIMARY not in regions):
            return []
        return [
            IndexedResource(
                arn=arn,
                account=account,
                region=PRIMARY,
                resource_type="eks:cluster",
                service="eks",
                resource_id="emulated-only",
                tags={"dr:enabled": "true", "Customer": "initech"},
                last_reported_at=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
            )
        ]

    aggregator(client)
    register_collector(collector)
    register_collector(collector)  # idempotent
    try:
        # When searching, then it is found once; once unregistered, it is gone
        result = search(client, "tag:Customer=initech")
        assert [r["Arn"] for r in result["Resources"]] == [arn]
    finally:
        unregister_collector(collector)
    assert arns(search(client, "tag:Customer=initech")) == set()
