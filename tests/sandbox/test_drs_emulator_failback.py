"""The DRS emulator's launch templates, drills into another network, reverse replication and
failback, through real boto3 clients (botocore's `drs` model is the truth)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from drcore import tags as T

from .conftest import DEFAULT_ACCOUNT, DR, Admin, ClientFactory
from .test_drs_emulator import launch_into, twin, wait_job

pytestmark = pytest.mark.sandbox

PRIMARY = "us-east-1"


@pytest.fixture(autouse=True)
def _fresh(admin: Admin) -> None:
    admin.reset()


def primary_instance(client: ClientFactory, ip: str) -> str:
    ec2 = client("ec2", region=PRIMARY)
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.1.0.0/16")["Subnet"]["SubnetId"]
    return str(
        ec2.run_instances(
            ImageId="ami-12c6146b",
            MinCount=1,
            MaxCount=1,
            SubnetId=subnet,
            PrivateIpAddress=ip,
            TagSpecifications=[
                {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web-01"}]}
            ],
        )["Instances"][0]["InstanceId"]
    )


def register(admin: Admin, instance_id: str, ip: str = "10.1.10.10") -> str:
    answer = admin.post(
        "/_sandbox/drs/source-servers",
        {
            "account": DEFAULT_ACCOUNT,
            "region": DR,
            "source_servers": [
                {
                    "instance_id": instance_id,
                    "hostname": "web-01",
                    "private_ip": ip,
                    "tags": {"Customer": "acme", "Environment": "production"},
                    "origin_region": PRIMARY,
                }
            ],
        },
    )
    return str(answer["source_server_ids"][0])


def replication(drs: Any, sid: str) -> dict[str, Any]:
    server = drs.describe_source_servers(filters={"sourceServerIDs": [sid]})["items"][0]
    return dict(server)


def wait_state(drs: Any, sid: str, state: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server = replication(drs, sid)
        if server["dataReplicationInfo"]["dataReplicationState"] == state:
            return server
        time.sleep(0.05)
    raise AssertionError(f"{sid} never reached {state}")


def test_given_a_template_in_another_subnet_then_a_drill_launches_there_keeping_the_ip(
    admin: Admin, client: ClientFactory
) -> None:
    drs, ec2 = client("drs"), client("ec2")
    sid = register(admin, "i-00000000000000001")
    # Given an isolated VPC mirroring the production CIDR, and the server's template using it
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.1.0.0/16")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="drill", Description="drill", VpcId=vpc)["GroupId"]
    template = drs.get_launch_configuration(sourceServerID=sid)["ec2LaunchTemplateID"]
    assert ec2.describe_launch_templates(LaunchTemplateIds=[template])["LaunchTemplates"]
    version = ec2.create_launch_template_version(
        LaunchTemplateId=template,
        SourceVersion="$Default",
        LaunchTemplateData={
            "NetworkInterfaces": [{"DeviceIndex": 0, "SubnetId": subnet, "Groups": [group]}],
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": [{"Key": T.BUBBLE_ID, "Value": "op-1"}]}
            ],
        },
    )["LaunchTemplateVersion"]["VersionNumber"]
    ec2.modify_launch_template(LaunchTemplateId=template, DefaultVersion=str(version))
    drs.update_launch_configuration(sourceServerID=sid, copyPrivateIp=True)

    # When a drill starts, twice (the first drill's instance terminated in between)
    first = wait_job(
        drs,
        drs.start_recovery(sourceServers=[{"sourceServerID": sid}], isDrill=True)["job"]["jobID"],
    )[0]
    rid = first["participatingServers"][0]["recoveryInstanceID"]
    wait_job(drs, drs.terminate_recovery_instances(recoveryInstanceIDs=[rid])["job"]["jobID"])
    second = wait_job(
        drs,
        drs.start_recovery(sourceServers=[{"sourceServerID": sid}], isDrill=True)["job"]["jobID"],
    )[0]

    # Then each came up in the isolated subnet with the server's own IP and the template's tags
    assert second["participatingServers"][0]["launchStatus"] == "LAUNCHED"
    new = second["participatingServers"][0]["recoveryInstanceID"]
    instance = ec2.describe_instances(InstanceIds=[new])["Reservations"][0]["Instances"][0]
    assert (instance["VpcId"], instance["SubnetId"]) == (vpc, subnet)
    assert instance["PrivateIpAddress"] == "10.1.10.10"
    assert {g["GroupId"] for g in instance["SecurityGroups"]} == {group}
    assert {"Key": T.BUBBLE_ID, "Value": "op-1"} in instance["Tags"]
    recovery = drs.describe_recovery_instances(filters={"recoveryInstanceIDs": [new]})["items"][0]
    assert recovery["isDrill"] is True


def test_given_copy_private_ip_outside_the_template_subnet_then_the_launch_fails_clearly(
    admin: Admin, client: ClientFactory
) -> None:
    drs, ec2 = client("drs"), client("ec2")
    sid = register(admin, "i-00000000000000002")
    vpc = ec2.create_vpc(CidrBlock="10.99.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.99.0.0/24")["Subnet"]["SubnetId"]
    template = drs.get_launch_configuration(sourceServerID=sid)["ec2LaunchTemplateID"]
    version = ec2.create_launch_template_version(
        LaunchTemplateId=template,
        LaunchTemplateData={"NetworkInterfaces": [{"DeviceIndex": 0, "SubnetId": subnet}]},
    )["LaunchTemplateVersion"]["VersionNumber"]
    ec2.modify_launch_template(LaunchTemplateId=template, DefaultVersion=str(version))
    drs.update_launch_configuration(sourceServerID=sid, copyPrivateIp=True)

    job = drs.start_recovery(sourceServers=[{"sourceServerID": sid}], isDrill=True)["job"]
    done, _ = wait_job(drs, job["jobID"])

    assert done["participatingServers"][0]["launchStatus"] == "FAILED"
    (failed,) = [
        i
        for i in drs.describe_job_log_items(jobID=job["jobID"])["items"]
        if i["event"] == "LAUNCH_FAILED"
    ]
    assert "copyPrivateIp" in failed["eventData"]["rawError"]


def test_given_a_recovery_when_replication_is_reversed_then_failback_and_reprotect_work(
    admin: Admin, client: ClientFactory
) -> None:
    drs, drs_primary = client("drs"), client("drs", region=PRIMARY)
    original = primary_instance(client, "10.1.10.10")
    sid = register(admin, original)
    dr_twin = twin(client, "10.101.10.10")
    launch_into(drs, sid, dr_twin)
    job = drs.start_recovery(sourceServers=[{"sourceServerID": sid}])["job"]
    wait_job(drs, job["jobID"])

    # When replication of the recovery instance is reversed
    arn = drs.reverse_replication(recoveryInstanceID=dr_twin)["reversedDirectionSourceServerArn"]

    # Then DRS replicates it back from the primary region through a new source server
    assert arn.startswith(f"arn:aws:drs:{PRIMARY}:{DEFAULT_ACCOUNT}:source-server/s-")
    reversed_sid = arn.rsplit("/", 1)[1]
    reversed_server = replication(drs_primary, reversed_sid)
    assert reversed_server["replicationDirection"] == "FAILBACK"
    assert reversed_server["sourceProperties"]["identificationHints"]["awsInstanceID"] == dr_twin
    assert reversed_server["tags"]["Customer"] == "acme"
    assert reversed_server["dataReplicationInfo"]["dataReplicationState"] == "INITIATING"
    source = replication(drs, sid)
    assert source["reversedDirectionSourceServerArn"] == arn
    assert source["dataReplicationInfo"]["dataReplicationState"] == "STOPPED"
    wait_state(drs_primary, reversed_sid, "CONTINUOUS")

    # When the failback launches back into the original instance (it allows it)
    client("ec2", region=PRIMARY).create_tags(
        Resources=[original],
        Tags=[{"Key": T.DRS_LAUNCH_INTO, "Value": T.DRS_LAUNCH_INTO_VALUE}],
    )
    launch_into(drs_primary, reversed_sid, original)
    back = drs_primary.start_recovery(sourceServers=[{"sourceServerID": reversed_sid}])["job"]
    done, _ = wait_job(drs_primary, back["jobID"])
    assert done["participatingServers"][0]["recoveryInstanceID"] == original

    # and replication is reversed again: the original source server resyncs (re-protection)
    again = drs_primary.reverse_replication(recoveryInstanceID=original)
    assert again["reversedDirectionSourceServerArn"] == source["arn"]
    resynced = wait_state(drs, sid, "CONTINUOUS")
    assert resynced["replicationDirection"] == "FAILOVER"
    assert (
        replication(drs_primary, reversed_sid)["dataReplicationInfo"]["dataReplicationState"]
        == "STOPPED"
    )
    assert len(drs.describe_source_servers()["items"]) == 1  # no new server in the DR region


def test_reverse_replication_refuses_drills_and_unknown_instances(
    admin: Admin, client: ClientFactory
) -> None:
    drs = client("drs")
    sid = register(admin, "i-00000000000000003")
    job = drs.start_recovery(sourceServers=[{"sourceServerID": sid}], isDrill=True)["job"]
    done, _ = wait_job(drs, job["jobID"])
    drill = done["participatingServers"][0]["recoveryInstanceID"]

    with pytest.raises(ClientError) as refused:
        drs.reverse_replication(recoveryInstanceID=drill)
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as unknown:
        drs.reverse_replication(recoveryInstanceID="i-0123456789abcdef0")
    assert unknown.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_the_emulator_records_quota_peaks_and_refusals(
    admin: Admin, client: ClientFactory, endpoint: Any
) -> None:
    admin.post(
        "/_sandbox/service-quotas",
        {"account": DEFAULT_ACCOUNT, "region": DR, "quotas": {"MaxConcurrentJobs": 1}},
    )
    drs = client("drs", retries=1)
    first = register(admin, "i-00000000000000004")
    second = register(admin, "i-00000000000000005", ip="10.1.10.11")
    drs.start_recovery(sourceServers=[{"sourceServerID": first}])
    with pytest.raises(ClientError):
        drs.start_recovery(sourceServers=[{"sourceServerID": second}])

    usage = endpoint.app.drs.quota_usage()[f"{DEFAULT_ACCOUNT}/{DR}"]
    assert usage == {"peak_jobs": 1, "peak_servers_in_jobs": 1, "largest_job": 1, "refusals": 1}
