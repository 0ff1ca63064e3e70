"""The SSM Run Command emulator and its emulated availability groups, through real boto3 `ssm`
clients (botocore's model is the truth), with the sqlag service's own commands."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from services.sqlag.commands import (
    FAILOVER,
    RESUME,
    STATUS,
    AgStatus,
    FailoverOutput,
    ResumeOutput,
    build_commands,
    parse_output,
)

from .conftest import Admin, ClientFactory, assume

pytestmark = pytest.mark.sandbox

ACCOUNT = "555555555511"
PRIMARY, DR = "us-east-1", "us-east-2"


@pytest.fixture(scope="module", autouse=True)
def _fresh(admin: Admin) -> None:
    admin.reset()  # once: every test makes its own instances and group


class Group:
    def __init__(self, client: ClientFactory, admin: Admin, **spec: Any) -> None:
        self.creds = assume(client, ACCOUNT)
        self.ssm = {r: client("ssm", region=r, creds=self.creds) for r in (PRIMARY, DR)}
        self.ec2 = {r: client("ec2", region=r, creds=self.creds) for r in (PRIMARY, DR)}
        self.primary = self.run(PRIMARY, "ag1-sql1")
        self.dr = self.run(DR, "ag1-sql2")
        body = {
            "name": "ag1",
            "databases": ["AppDb", "ReportingDb"],
            "replicas": [
                {
                    "instance_id": self.primary,
                    "region": PRIMARY,
                    "server": "ag1-sql1",
                    "role": "PRIMARY",
                },
                {"instance_id": self.dr, "region": DR, "server": "ag1-sql2", "role": "SECONDARY"},
            ],
            "command_seconds": 0.05,
            "resync_seconds": 0.3,
        } | spec
        admin.post("/_sandbox/ssm/sql-ags", {"account": ACCOUNT, "ags": [body]})

    def run(self, region: str, name: str) -> str:
        instance = self.ec2[region].run_instances(
            ImageId="ami-12c6146b",
            MinCount=1,
            MaxCount=1,
            TagSpecifications=[
                {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}
            ],
        )["Instances"][0]
        return str(instance["InstanceId"])

    def send(self, region: str, instance: str, commands: list[str], comment: str = "t") -> str:
        return str(
            self.ssm[region].send_command(
                InstanceIds=[instance],
                DocumentName="AWS-RunPowerShellScript",
                Comment=comment,
                Parameters={"commands": commands},
            )["Command"]["CommandId"]
        )

    def wait(self, region: str, command_id: str, instance: str) -> dict[str, Any]:
        deadline = time.monotonic() + 10
        while True:
            try:
                found: dict[str, Any] = self.ssm[region].get_command_invocation(
                    CommandId=command_id, InstanceId=instance
                )
                if found["Status"] not in ("Pending", "InProgress", "Delayed"):
                    return found
            except ClientError as err:
                assert err.response["Error"]["Code"] == "InvocationDoesNotExist"
            assert time.monotonic() < deadline, "command did not end"
            time.sleep(0.05)

    def script(self, region: str, instance: str, commands: list[str]) -> dict[str, Any]:
        return self.wait(region, self.send(region, instance, commands), instance)

    def status(self, region: str, instance: str) -> AgStatus:
        found = self.script(region, instance, build_commands(STATUS, AgName="ag1"))
        assert found["Status"] == "Success", found
        return parse_output(AgStatus, found["StandardOutputContent"])


def test_given_a_status_command_then_in_progress_then_the_json_the_script_writes(
    client: ClientFactory, admin: Admin
) -> None:
    group = Group(client, admin)
    command_id = group.send(DR, group.dr, build_commands(STATUS, AgName="ag1"), "dr-orchestrator x")
    first = group.ssm[DR].get_command_invocation(CommandId=command_id, InstanceId=group.dr)
    assert first["Status"] == "InProgress" and first["ResponseCode"] == -1
    done = group.wait(DR, command_id, group.dr)
    assert done["Status"] == "Success" and done["ResponseCode"] == 0
    status = parse_output(AgStatus, done["StandardOutputContent"])
    assert status.local is not None and status.local.role == "SECONDARY"
    # A secondary lists only its own databases.
    assert {(d.name, d.replica_server, d.sync_state) for d in status.databases} == {
        ("AppDb", "ag1-sql2", "SYNCHRONIZED"),
        ("ReportingDb", "ag1-sql2", "SYNCHRONIZED"),
    }
    listed = group.ssm[DR].list_command_invocations(
        InstanceId=group.dr, Details=True, Filters=[{"key": "Status", "value": "Success"}]
    )
    [item] = listed["CommandInvocations"]
    assert item["Comment"] == "dr-orchestrator x" and item["CommandPlugins"][0]["ResponseCode"] == 0


def test_the_primary_sees_every_copy_and_other_commands_run_nothing(
    client: ClientFactory, admin: Admin
) -> None:
    group = Group(client, admin, sync_state="SYNCHRONIZING", lag_seconds=120)
    status = group.status(PRIMARY, group.primary)
    assert len(status.databases) == 4
    remote = [d for d in status.databases if not d.is_local]
    assert {d.sync_state for d in remote} == {"SYNCHRONIZING"}
    other = group.script(PRIMARY, group.primary, ["Get-Date"])
    assert other["Status"] == "Success" and other["StandardOutputContent"] == ""


def test_send_command_is_validated_like_ssm(client: ClientFactory, admin: Admin) -> None:
    group = Group(client, admin)
    ssm = group.ssm[DR]
    with pytest.raises(ClientError) as bad_document:
        ssm.send_command(
            InstanceIds=[group.dr],
            DocumentName="AWS-ApplyPatchBaseline",
            Parameters={"commands": ["x"]},
        )
    assert bad_document.value.response["Error"]["Code"] == "InvalidDocument"
    with pytest.raises(ClientError) as no_commands:
        ssm.send_command(
            InstanceIds=[group.dr],
            DocumentName="AWS-RunPowerShellScript",
            Parameters={"script": ["x"]},
        )
    assert no_commands.value.response["Error"]["Code"] == "InvalidParameters"
    command_id = group.send(DR, group.dr, ["Get-Date"])
    with pytest.raises(ClientError) as elsewhere:  # SSM is regional
        group.ssm[PRIMARY].get_command_invocation(CommandId=command_id, InstanceId=group.dr)
    assert elsewhere.value.response["Error"]["Code"] == "InvocationDoesNotExist"
    group.ec2[DR].stop_instances(InstanceIds=[group.dr])
    with pytest.raises(ClientError) as stopped:
        ssm.send_command(
            InstanceIds=[group.dr],
            DocumentName="AWS-RunPowerShellScript",
            Parameters={"commands": ["x"]},
        )
    assert stopped.value.response["Error"]["Code"] == "InvalidInstanceId"
    assert group.dr in stopped.value.response["Error"]["Message"]
    status, body = admin.call(
        "/_sandbox/ssm/sql-ags", {"account": ACCOUNT, "ags": [{"name": "x y"}]}
    )
    assert status == 400 and "ags.0.name='x y'" in body["message"]


def test_planned_failover_refused_unless_synchronized_and_nothing_changes(
    client: ClientFactory, admin: Admin
) -> None:
    group = Group(client, admin, sync_state="SYNCHRONIZING", lag_seconds=30)
    found = group.script(DR, group.dr, build_commands(FAILOVER, AgName="ag1", Mode="Planned"))
    assert found["Status"] == "Failed" and found["ResponseCode"] == 1
    out = parse_output(FailoverOutput, found["StandardOutputContent"])
    assert not out.ok and out.error_code == "NOT_SYNCHRONIZED"
    assert group.status(DR, group.dr).local.role == "SECONDARY"  # type: ignore[union-attr]


def test_forced_failover_never_onto_reverting(client: ClientFactory, admin: Admin) -> None:
    group = Group(client, admin, sync_state="REVERTING")
    found = group.script(DR, group.dr, build_commands(FAILOVER, AgName="ag1", Mode="Forced"))
    out = parse_output(FailoverOutput, found["StandardOutputContent"])
    assert found["Status"] == "Failed" and out.error_code == "UNSAFE_SYNC_STATE"


def test_forced_failover_then_resume_then_planned_failback_as_sql_server_does(
    client: ClientFactory, admin: Admin
) -> None:
    group = Group(client, admin, sync_state="SYNCHRONIZING", lag_seconds=60)
    found = group.script(DR, group.dr, build_commands(FAILOVER, AgName="ag1", Mode="Forced"))
    assert parse_output(FailoverOutput, found["StandardOutputContent"]).action == "forced-failover"
    old = group.status(PRIMARY, group.primary)
    assert old.local is not None and old.local.role == "SECONDARY"
    assert {(d.sync_state, d.is_suspended, d.suspend_reason) for d in old.local_databases} == {
        ("NOT SYNCHRONIZING", True, "SUSPEND_FROM_PARTNER")
    }
    resumed = group.script(PRIMARY, group.primary, build_commands(RESUME, AgName="ag1"))
    assert parse_output(ResumeOutput, resumed["StandardOutputContent"]).resumed == [
        "AppDb",
        "ReportingDb",
    ]
    assert {d.sync_state for d in group.status(PRIMARY, group.primary).local_databases} == {
        "SYNCHRONIZING"
    }
    time.sleep(0.35)  # the group's resync_seconds
    assert {d.sync_state for d in group.status(PRIMARY, group.primary).local_databases} == {
        "SYNCHRONIZED"
    }
    back = group.script(
        PRIMARY, group.primary, build_commands(FAILOVER, AgName="ag1", Mode="Planned")
    )
    assert back["Status"] == "Success"
    assert group.status(DR, group.dr).local.role == "SECONDARY"  # type: ignore[union-attr]


def test_a_region_down_disconnects_the_dr_replica(client: ClientFactory, admin: Admin) -> None:
    group = Group(client, admin)
    admin.post("/_sandbox/config", {"regions_down": [PRIMARY]})
    try:
        status = group.status(DR, group.dr)
    finally:
        admin.post("/_sandbox/config", {"regions_down": []})
    assert status.local is not None and status.local.connected_state == "DISCONNECTED"
    assert {d.sync_state for d in status.local_databases} == {"NOT SYNCHRONIZING"}
