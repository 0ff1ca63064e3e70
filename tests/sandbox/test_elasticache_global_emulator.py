"""The emulated ElastiCache Global Datastores through the sandbox endpoint (boto3), and FSx
DescribeFileSystems with the ONTAP endpoints moto lacks."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from .conftest import ClientFactory

P, D = "us-east-1", "us-east-2"


def test_a_global_datastore_fails_over_to_its_secondary_and_back(client: ClientFactory) -> None:
    primary, dr = client("elasticache", P), client("elasticache", D)
    primary.create_replication_group(
        ReplicationGroupId="gd-one",
        ReplicationGroupDescription="x",
        Engine="valkey",
        CacheNodeType="cache.t4g.micro",
        NumCacheClusters=1,
    )
    store = primary.create_global_replication_group(
        GlobalReplicationGroupIdSuffix="gd-one", PrimaryReplicationGroupId="gd-one"
    )["GlobalReplicationGroup"]
    gid = store["GlobalReplicationGroupId"]
    dr.create_replication_group(
        ReplicationGroupId="gd-one-dr",
        ReplicationGroupDescription="x",
        GlobalReplicationGroupId=gid,
    )

    def roles() -> dict[str, str]:
        [found] = dr.describe_global_replication_groups(
            GlobalReplicationGroupId=gid, ShowMemberInfo=True
        )["GlobalReplicationGroups"]
        return {m["ReplicationGroupId"]: m["Role"] for m in found["Members"]}

    assert roles() == {"gd-one": "PRIMARY", "gd-one-dr": "SECONDARY"}
    dr.failover_global_replication_group(
        GlobalReplicationGroupId=gid, PrimaryRegion=D, PrimaryReplicationGroupId="gd-one-dr"
    )
    assert roles() == {"gd-one": "SECONDARY", "gd-one-dr": "PRIMARY"}
    [group] = dr.describe_replication_groups(ReplicationGroupId="gd-one-dr")["ReplicationGroups"]
    assert group["GlobalReplicationGroupInfo"]["GlobalReplicationGroupMemberRole"] == "PRIMARY"
    with pytest.raises(ClientError, match="already the primary"):
        dr.failover_global_replication_group(
            GlobalReplicationGroupId=gid, PrimaryRegion=D, PrimaryReplicationGroupId="gd-one-dr"
        )
    primary.failover_global_replication_group(
        GlobalReplicationGroupId=gid, PrimaryRegion=P, PrimaryReplicationGroupId="gd-one"
    )
    assert roles() == {"gd-one": "PRIMARY", "gd-one-dr": "SECONDARY"}


def test_an_unknown_global_datastore_answers_not_found(client: ClientFactory) -> None:
    with pytest.raises(ClientError) as caught:
        client("elasticache", D).failover_global_replication_group(
            GlobalReplicationGroupId="sbxgd-nope", PrimaryRegion=D, PrimaryReplicationGroupId="x"
        )
    assert caught.value.response["Error"]["Code"] == "GlobalReplicationGroupNotFoundFault"


def test_fsx_ontap_file_systems_report_their_management_endpoint(client: ClientFactory) -> None:
    fsx = client("fsx", D)
    created = fsx.create_file_system(
        FileSystemType="ONTAP",
        StorageCapacity=1024,
        StorageType="SSD",
        SubnetIds=["subnet-0a1b2c3d4e5f60001"],
        OntapConfiguration={
            "DeploymentType": "SINGLE_AZ_1",
            "ThroughputCapacity": 128,
            "FsxAdminPassword": "secret-pw",
        },
    )["FileSystem"]
    fs_id = created["FileSystemId"]
    [found] = fsx.describe_file_systems(FileSystemIds=[fs_id])["FileSystems"]
    assert found["Lifecycle"] == "AVAILABLE"
    management = found["OntapConfiguration"]["Endpoints"]["Management"]
    assert management["DNSName"].startswith(f"{fs_id}.") and management["IpAddresses"]
    assert "FsxAdminPassword" not in found["OntapConfiguration"]
    with pytest.raises(ClientError, match="FileSystemNotFound"):
        fsx.describe_file_systems(FileSystemIds=["fs-0000000000000000f"])
