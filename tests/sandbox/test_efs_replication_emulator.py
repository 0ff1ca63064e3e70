"""The EFS replication emulator behind the sandbox endpoint: replication configurations seen from
both regions, lag, deletion (both sides or local only), overwrite protection, and that other EFS
calls still reach moto."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.sandbox.conftest import Admin, ClientFactory

pytestmark = pytest.mark.sandbox

ACCOUNT = "123456789012"
PRIMARY, DR = "us-east-1", "us-east-2"


def make_pair(client: ClientFactory, name: str) -> tuple[Any, Any, str, str]:
    efs_p, efs_d = client("efs", PRIMARY), client("efs", DR)
    source = efs_p.create_file_system(
        CreationToken=f"{name}-p", Tags=[{"Key": "Name", "Value": name}]
    )["FileSystemId"]
    target = efs_d.create_file_system(CreationToken=f"{name}-d")["FileSystemId"]
    return efs_p, efs_d, source, target


def test_given_protection_enabled_when_replicating_into_it_then_refused(
    admin: Admin, client: ClientFactory
) -> None:
    efs_p, _, source, target = make_pair(client, "refused")
    with pytest.raises(ClientError) as err:
        efs_p.create_replication_configuration(
            SourceFileSystemId=source, Destinations=[{"Region": DR, "FileSystemId": target}]
        )
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert target in err.value.response["Error"]["Message"]


def test_given_a_replication_then_both_regions_see_it_and_the_replica_is_read_only(
    admin: Admin, client: ClientFactory
) -> None:
    efs_p, efs_d, source, target = make_pair(client, "both")
    assert (
        efs_d.update_file_system_protection(
            FileSystemId=target, ReplicationOverwriteProtection="DISABLED"
        )["ReplicationOverwriteProtection"]
        == "DISABLED"
    )
    efs_p.create_replication_configuration(
        SourceFileSystemId=source, Destinations=[{"Region": DR, "FileSystemId": target}]
    )
    admin.post(
        "/_sandbox/efs/replication",
        {"account": ACCOUNT, "region": PRIMARY, "file_system_id": source, "lag_seconds": 600},
    )
    from_source = efs_p.describe_replication_configurations(FileSystemId=source)["Replications"]
    from_dr = efs_d.describe_replication_configurations(FileSystemId=target)["Replications"]
    assert from_source[0]["SourceFileSystemId"] == from_dr[0]["SourceFileSystemId"] == source
    destination = from_dr[0]["Destinations"][0]
    assert (destination["FileSystemId"], destination["Status"]) == (target, "ENABLED")
    lag = (datetime.now(UTC) - destination["LastReplicatedTimestamp"]).total_seconds()
    assert 590 <= lag <= 700
    [replica] = efs_d.describe_file_systems(FileSystemId=target)["FileSystems"]
    assert replica["FileSystemProtection"]["ReplicationOverwriteProtection"] == "REPLICATING"
    with pytest.raises(ClientError) as err:
        efs_d.update_file_system_protection(
            FileSystemId=target, ReplicationOverwriteProtection="DISABLED"
        )
    assert err.value.response["Error"]["Code"] == "ReplicationAlreadyExists"


def test_given_local_only_deletion_in_the_dr_region_then_the_replica_is_writable(
    admin: Admin, client: ClientFactory
) -> None:
    efs_p, efs_d, source, target = make_pair(client, "local")
    efs_d.update_file_system_protection(
        FileSystemId=target, ReplicationOverwriteProtection="DISABLED"
    )
    efs_p.create_replication_configuration(
        SourceFileSystemId=source, Destinations=[{"Region": DR, "FileSystemId": target}]
    )
    # When the destination's side is deleted alone (the source region is down)
    efs_d.delete_replication_configuration(
        SourceFileSystemId=target, DeletionMode="LOCAL_CONFIGURATION_ONLY"
    )
    # Then the DR side has none, the replica is writable, the source side keeps an ERROR one
    with pytest.raises(ClientError) as err:
        efs_d.describe_replication_configurations(FileSystemId=target)
    assert err.value.response["Error"]["Code"] == "ReplicationNotFound"
    [replica] = efs_d.describe_file_systems(FileSystemId=target)["FileSystems"]
    assert replica["FileSystemProtection"]["ReplicationOverwriteProtection"] == "ENABLED"
    [left] = efs_p.describe_replication_configurations(FileSystemId=source)["Replications"]
    assert left["Destinations"][0]["Status"] == "ERROR"


def test_given_bad_requests_then_modelled_errors_name_the_value(
    admin: Admin, client: ClientFactory
) -> None:
    efs_p = client("efs", PRIMARY)
    with pytest.raises(ClientError) as err:
        efs_p.describe_replication_configurations(FileSystemId="fs-0000000000000000")
    assert err.value.response["Error"]["Code"] == "FileSystemNotFound"
    assert "fs-0000000000000000" in err.value.response["Error"]["Message"]
    status, body = admin.call(
        "/_sandbox/efs/replication", {"account": ACCOUNT, "region": PRIMARY, "file_system_id": "x"}
    )
    assert status == 400 and "file_system_id='x'" in body["message"]


def test_given_other_efs_calls_then_moto_answers(client: ClientFactory) -> None:
    efs_p = client("efs", PRIMARY)
    fs = efs_p.create_file_system(CreationToken="moto-still")["FileSystemId"]
    efs_p.tag_resource(ResourceId=fs, Tags=[{"Key": "Customer", "Value": "acme"}])
    tags = efs_p.list_tags_for_resource(ResourceId=fs)["Tags"]
    assert {"Key": "Customer", "Value": "acme"} in tags
    [described] = efs_p.describe_file_systems(FileSystemId=fs)["FileSystems"]
    assert {"Key": "Customer", "Value": "acme"} in described["Tags"]
