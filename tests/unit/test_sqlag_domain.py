"""The sqlag domain with in-memory fakes: scope and tags first, readiness before acting, one
result per resource, nothing acted on twice, drills only on the clone."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from drcore.registry import CustomerEntry, EnvironmentEntry
from events.schemas import OperationType, ResourceRecovered, ResourceRecoveryFailed, ResourceRef
from services.sqlag import config as C
from services.sqlag import readiness as R
from services.sqlag.domain import SqlAgRecovery, Task, Tuning, command_comment, result_detail
from services.sqlag.ports import ARecord, AwsError, Instance, Invocation

ACCOUNT = "111111111111"
PRIMARY, DR = "us-east-1", "us-east-2"
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
ENTRY = CustomerEntry(
    name="acme",
    account=ACCOUNT,
    regions={PRIMARY: DR},
    environments=[EnvironmentEntry(name="prod", production=True)],
    external_id="dr-acme",
)
SCOPE = {"Customer": "acme", "Environment": "prod"}
PRIMARY_TAGS = SCOPE | {
    "Name": "ag1-sql1",
    "dr:recovery-strategy": "sql-ag",
    C.AG_NAME: "ag1",
    C.DR_REPLICA: "ag1-sql2",
    C.LISTENER: "ag1.sql.prod.acme.internal",
    C.HOSTED_ZONE: "ZONE1",
}
_ARGS = re.compile(r" -(\w+) '((?:[^']|'')*)'")


def db_rows(server: str, states: Mapping[str, str], *, primary: bool = False) -> list[Any]:
    return [
        {
            "name": name,
            "replica_server": server,
            "is_local": True,
            "is_primary_replica": primary,
            "sync_state": state,
            "database_state": "ONLINE" if primary else None,
            "is_suspended": state == "NOT SYNCHRONIZING",
            "last_commit_time": "2026-11-26T09:59:00Z" if not primary else "2026-11-26T10:00:00Z",
        }
        for name, state in states.items()
    ]


def status_doc(server: str, role: str, states: Mapping[str, str]) -> dict[str, Any]:
    return {
        "script": "Get-SqlAgStatus",
        "ok": True,
        "ag_name": "ag1",
        "server": server,
        "ag_found": True,
        "collected_at": "2026-11-26T10:00:00Z",
        "replicas": [{"server": server, "role": role, "is_local": True}],
        "databases": db_rows(server, states, primary=role == "PRIMARY"),
    }


@dataclass
class Sql:
    """A tiny availability group: roles and the DR replica's database states."""

    roles: dict[str, str] = field(
        default_factory=lambda: {"ag1-sql1": "PRIMARY", "ag1-sql2": "SECONDARY"}
    )
    states: dict[str, dict[str, str]] = field(
        default_factory=lambda: {
            "ag1-sql1": {"AppDb": "SYNCHRONIZED"},
            "ag1-sql2": {"AppDb": "SYNCHRONIZED"},
        }
    )
    clone_online: bool = False

    def run(self, server: str, script: str, args: dict[str, str]) -> tuple[bool, dict[str, Any]]:
        if script == "Get-SqlAgStatus":
            return True, status_doc(server, self.roles[server], self.states[server])
        if script == "Invoke-SqlAgFailover":
            base = {"script": script, "ok": True, "ag_name": "ag1", "mode": args["Mode"]}
            if self.roles[server] == "PRIMARY":
                return True, base | {"action": "none", "role_after": "PRIMARY"}
            for name in self.roles:
                self.roles[name] = "PRIMARY" if name == server else "SECONDARY"
            for name in self.states:
                for db in self.states[name]:
                    forced = args["Mode"] == "Forced" and name != server
                    self.states[name][db] = "NOT SYNCHRONIZING" if forced else "SYNCHRONIZED"
            return True, base | {
                "action": args["Mode"].lower() + "-failover",
                "role_after": "PRIMARY",
            }
        if script == "Resume-SqlAgDataMovement":
            for db in self.states[server]:
                self.states[server][db] = "SYNCHRONIZED"
            return True, {"script": script, "ok": True, "ag_name": "ag1", "resumed": ["AppDb"]}
        if script == "Test-SqlAgClone":
            self.clone_online = True
            return True, {
                "script": script,
                "ok": True,
                "ag_name": "ag1",
                "action": "clone-brought-online",
                "role_after": "PRIMARY",
                "databases": [
                    {
                        "name": "AppDb",
                        "database_state": "ONLINE",
                        "readable": True,
                        "last_commit_time": "2026-11-26T09:50:00Z",
                    }
                ],
            }
        raise AssertionError(script)


@dataclass
class FakeWorkload:
    region: str
    sql: Sql
    instances: list[Instance]
    vpcs: dict[str, str] = field(default_factory=dict)
    sent: list[tuple[str, str, dict[str, str], str]] = field(default_factory=list)
    earlier: dict[str, Invocation] = field(default_factory=dict)
    outputs: dict[str, Invocation] = field(default_factory=dict)
    down: bool = False
    on_wait: dict[str, Any] = field(default_factory=dict)  # command id -> effect when awaited

    def _check(self) -> None:
        if self.down:
            raise AwsError("EndpointError", f"{self.region} does not answer")

    def instance(self, instance_id: str) -> Instance | None:
        self._check()
        return next((i for i in self.instances if i.instance_id == instance_id), None)

    def instances_tagged(
        self, customer: str, environment: str, tags: Mapping[str, str]
    ) -> list[Instance]:
        self._check()
        wanted = {"Customer": customer, "Environment": environment, **tags}
        return [i for i in self.instances if all(i.tags.get(k) == v for k, v in wanted.items())]

    def vpc_name(self, vpc_id: str) -> str | None:
        return self.vpcs.get(vpc_id)

    def send_command(
        self, instance_id: str, commands: Sequence[str], comment: str, timeout_seconds: int
    ) -> str:
        self._check()
        script = commands[0].split(": ")[1].split(" ")[0]
        args = {k: v.replace("''", "'") for k, v in _ARGS.findall(commands[-1])}
        server = next(i.name for i in self.instances if i.instance_id == instance_id)
        ok, doc = self.sql.run(server, script, args)
        command_id = f"cmd-{len(self.sent)}"
        self.sent.append((instance_id, script, args, comment))
        self.outputs[command_id] = Invocation(
            command_id, instance_id, "Success" if ok else "Failed", comment, 0, json.dumps(doc)
        )
        return command_id

    def wait_command(self, command_id: str, instance_id: str) -> Invocation:
        if command_id in self.on_wait:
            self.on_wait.pop(command_id)()
        return self.outputs.get(command_id) or self.earlier[command_id]

    def find_command(self, instance_id: str, comment: str, since: datetime) -> Invocation | None:
        return next((i for i in self.earlier.values() if i.comment == comment), None)

    def actions(self) -> list[str]:
        return [script for _, script, _, _ in self.sent if script != "Get-SqlAgStatus"]


@dataclass
class FakeDns:
    records: dict[str, ARecord] = field(default_factory=dict)
    changes: int = 0

    def a_record(self, zone_id: str, name: str) -> ARecord | None:
        return self.records.get(name)

    def upsert_a(
        self, zone_id: str, name: str, values: Sequence[str], ttl: int, comment: str
    ) -> str:
        self.records[name] = ARecord(tuple(values), ttl)
        self.changes += 1
        return "change-1"

    def wait_in_sync(self, change_id: str) -> None:
        return None


class World:
    def __init__(self, **primary_tags: str | None) -> None:
        self.sql = Sql()
        tags = {k: v for k, v in (PRIMARY_TAGS | primary_tags).items() if v is not None}
        self.primary_instance = Instance(
            "i-0000000000000aaa1", PRIMARY, "running", "10.1.0.10", "vpc-p", tags
        )
        self.dr_instance = Instance(
            "i-0000000000000bbb2",
            DR,
            "running",
            "10.101.0.10",
            "vpc-d",
            SCOPE
            | {
                "Name": "ag1-sql2",
                C.AG_NAME: "ag1",
                C.PRIMARY_REPLICA: "ag1-sql1",
                C.LISTENER: "ag1.sql.prod.acme.internal",
                C.HOSTED_ZONE: "ZONE1",
            },
        )
        self.clone = Instance(
            "i-0000000000000ccc3",
            DR,
            "running",
            "10.101.0.99",
            "vpc-bubble",
            SCOPE | {"Name": "ag1-clone"},
        )
        self.primary = FakeWorkload(PRIMARY, self.sql, [self.primary_instance])
        self.dr = FakeWorkload(
            DR,
            self.sql,
            [self.dr_instance, self.clone],
            vpcs={"vpc-bubble": "dr-bubble-acme-prod", "vpc-d": "prod"},
        )
        self.dns = FakeDns({"ag1.sql.prod.acme.internal": ARecord(("10.1.0.10",), 60)})
        self.allow = False

    def get(self, entry: CustomerEntry, region: str, *, primary: bool = False) -> FakeWorkload:
        return self.primary if region == PRIMARY else self.dr

    def dns_of(self, entry: CustomerEntry) -> FakeDns:
        return self.dns

    def recovery(self) -> SqlAgRecovery:
        world = self

        class Workloads:
            def get(self, entry: CustomerEntry, region: str, *, primary: bool = False) -> Any:
                return world.get(entry, region, primary=primary)

            def dns(self, entry: CustomerEntry) -> Any:
                return world.dns

        class Registry:
            def customer(self, name: str) -> CustomerEntry | None:
                return ENTRY if name == "acme" else None

        class Options:
            def allow_data_loss(self, operation_id: str) -> bool:
                return world.allow

        class Log:
            def info(self, *a: Any, **k: Any) -> None: ...
            def warning(self, *a: Any, **k: Any) -> None: ...
            def exception(self, *a: Any, **k: Any) -> None: ...

        return SqlAgRecovery(
            registry=Registry(),
            workloads=Workloads(),
            options=Options(),
            log=Log(),
            tuning=Tuning(sync_wait_seconds=4, sync_poll_seconds=1),
            now=lambda: NOW,
        )

    def task(self, operation: OperationType = OperationType.FAILOVER, attempt: int = 1) -> Task:
        ref = ResourceRef(
            resource_id=self.primary_instance.instance_id,
            arn=f"arn:aws:ec2:{PRIMARY}:{ACCOUNT}:instance/{self.primary_instance.instance_id}",
            name="ag1-sql1",
            account=ACCOUNT,
            region=PRIMARY,
            dr_region=DR,
            rto_target_minutes=60,
            rpo_target_minutes=15,
        )
        return Task(
            operation_id="op-acme-000001",
            customer="acme",
            environment="prod",
            operation=operation,
            wave=2,
            attempt=attempt,
            step="recover",
            resource=ref,
            occurred_at=NOW,
        )

    def run(self, operation: OperationType = OperationType.FAILOVER) -> Any:
        return result_detail(self.recovery().recover(self.task(operation)))


def test_given_a_synchronized_group_when_failing_over_then_planned_and_the_listener_follows() -> (
    None
):
    world = World()
    result = world.run()
    assert isinstance(result, ResourceRecovered)
    assert result.dr_resource_id == world.dr_instance.instance_id and result.dr_region == DR
    assert world.dr.actions() == ["Invoke-SqlAgFailover"]
    assert world.dr.sent[1][2] == {"AgName": "ag1", "Mode": "Planned"}
    assert world.sql.roles["ag1-sql2"] == "PRIMARY"
    assert world.dns.records["ag1.sql.prod.acme.internal"].values == ("10.101.0.10",)
    assert result.details["estimated_data_loss_seconds"] == "0"
    assert result.details["dns_answer"] == "10.101.0.10"
    assert result.details["before_sync"] == "AppDb=SYNCHRONIZED"


def test_given_a_lagging_group_without_permission_then_refused_and_nothing_changes() -> None:
    world = World()
    world.sql.states["ag1-sql2"]["AppDb"] = "SYNCHRONIZING"
    result = world.run()
    assert isinstance(result, ResourceRecoveryFailed)
    assert result.error_code == R.NOT_SYNCHRONIZED and "--allow-data-loss" in result.error
    assert world.dr.actions() == [] and world.dns.changes == 0
    assert world.sql.roles["ag1-sql1"] == "PRIMARY"


def test_given_permission_then_forced_with_the_estimated_data_loss_recorded() -> None:
    world = World()
    world.sql.states["ag1-sql2"]["AppDb"] = "SYNCHRONIZING"
    world.allow = True
    result = world.run()
    assert isinstance(result, ResourceRecovered)
    assert world.dr.sent[1][2]["Mode"] == "Forced"
    assert result.details["failover_mode"] == "forced"
    # The primary commits at 10:00:00, the DR replica at 09:59:00.
    assert result.details["estimated_data_loss_seconds"] == "60"
    assert world.primary.actions() == []  # the primary is only read


def test_given_permission_then_never_forced_onto_a_reverting_database() -> None:
    world = World()
    world.sql.states["ag1-sql2"]["AppDb"] = "REVERTING"
    world.allow = True
    result = world.run()
    assert isinstance(result, ResourceRecoveryFailed) and result.error_code == R.UNSAFE_SYNC_STATE
    assert world.dr.actions() == [] and world.dns.changes == 0


def test_given_the_primary_region_down_then_the_dr_replica_tags_configure_a_forced_failover() -> (
    None
):
    world = World()
    world.primary.down = True
    world.sql.states["ag1-sql2"]["AppDb"] = "NOT SYNCHRONIZING"
    world.allow = True
    result = world.run()
    assert isinstance(result, ResourceRecovered)
    assert result.details["config_source"].startswith("DR replica tags")
    assert result.details["estimated_data_loss_seconds"].startswith("unknown")
    assert result.details["dr_last_commit_time"].startswith("2026-11-26T09:59")


def test_given_another_tenants_instance_then_scope_mismatch_and_no_command() -> None:
    world = World(Customer="globex")
    result = world.run()
    assert isinstance(result, ResourceRecoveryFailed) and result.error_code == R.SCOPE_MISMATCH
    assert "Customer='globex'" in result.error
    assert world.dr.sent == [] and world.primary.sent == []


def test_given_a_bad_module_tag_then_it_fails_naming_the_tag_and_value() -> None:
    world = World(**{C.AG_NAME: "ag1'; DROP"})
    result = world.run()
    assert isinstance(result, ResourceRecoveryFailed)
    assert result.error_code == C.INVALID_MODULE_TAG and "ag1'; DROP" in result.error
    assert world.dr.sent == []


def test_given_the_failover_already_sent_for_this_step_then_it_is_awaited_not_sent_again() -> None:
    world = World()
    task = world.task()
    comment = command_comment(task, "failover")
    done = {
        "script": "Invoke-SqlAgFailover",
        "ok": True,
        "ag_name": "ag1",
        "mode": "Planned",
        "action": "planned-failover",
        "role_after": "PRIMARY",
    }
    # A worker sent the failover and died: the command is still running on the replica.
    world.dr.earlier["cmd-old"] = Invocation(
        "cmd-old", world.dr_instance.instance_id, "Success", comment, 0, json.dumps(done)
    )
    world.dr.on_wait["cmd-old"] = lambda: world.sql.roles.update(
        {"ag1-sql1": "SECONDARY", "ag1-sql2": "PRIMARY"}
    )
    result = result_detail(world.recovery().recover(task))
    assert isinstance(result, ResourceRecovered)
    assert world.dr.actions() == []  # adopted, not sent
    assert result.details["command_failover"] == "cmd-old"


def test_given_no_clone_configured_then_a_drill_fails_clearly_and_touches_nothing() -> None:
    world = World()
    result = world.run(OperationType.BUBBLE_TEST)
    assert isinstance(result, ResourceRecoveryFailed) and result.error_code == R.NO_CLONE_CONFIGURED
    assert world.dr.sent == [] and world.dns.changes == 0


def test_given_a_clone_in_the_bubble_then_the_drill_acts_on_the_clone_only() -> None:
    world = World(**{C.CLONE: "ag1-clone"})
    result = world.run(OperationType.BUBBLE_TEST)
    assert isinstance(result, ResourceRecovered)
    assert result.dr_resource_id == world.clone.instance_id
    assert [(i, s) for i, s, _, _ in world.dr.sent if s != "Get-SqlAgStatus"] == [
        (world.clone.instance_id, "Test-SqlAgClone")
    ]
    assert world.sql.roles == {"ag1-sql1": "PRIMARY", "ag1-sql2": "SECONDARY"}
    assert world.dns.changes == 0
    assert result.details["clone_data_age_seconds"] == "600"
    assert result.details["dr_replica_failover_ready"] == "planned"


def test_given_a_clone_outside_the_bubble_then_the_drill_refuses() -> None:
    world = World(**{C.CLONE: "ag1-clone"})
    world.dr.vpcs["vpc-bubble"] = "acme-prod-vpc"
    result = world.run(OperationType.BUBBLE_TEST)
    assert isinstance(result, ResourceRecoveryFailed) and result.error_code == R.CLONE_NOT_ISOLATED
    assert world.dr.actions() == []


def test_given_a_clone_tag_naming_the_dr_replica_then_the_drill_refuses() -> None:
    world = World(**{C.CLONE: "ag1-sql2"})
    result = world.run(OperationType.BUBBLE_TEST)
    assert isinstance(result, ResourceRecoveryFailed) and result.error_code == R.CLONE_NOT_ISOLATED
    assert world.dr.actions() == []


def test_after_a_forced_failover_failback_resumes_waits_and_fails_back_planned() -> None:
    world = World()
    world.allow = True
    world.sql.states["ag1-sql2"]["AppDb"] = "SYNCHRONIZING"
    assert isinstance(world.run(), ResourceRecovered)
    assert world.sql.states["ag1-sql1"]["AppDb"] == "NOT SYNCHRONIZING"
    result = world.run(OperationType.FAILBACK)
    assert isinstance(result, ResourceRecovered)
    assert result.dr_resource_id == world.primary_instance.instance_id
    assert world.primary.actions() == ["Resume-SqlAgDataMovement", "Invoke-SqlAgFailover"]
    assert world.primary.sent[-2][2] == {"AgName": "ag1", "Mode": "Planned"}
    assert world.sql.roles["ag1-sql1"] == "PRIMARY"
    assert world.dns.records["ag1.sql.prod.acme.internal"].values == ("10.1.0.10",)
    assert result.details["dr_replica_sync_after"] == "AppDb=SYNCHRONIZED"


def test_given_failback_when_the_primary_never_catches_up_then_a_retryable_failure() -> None:
    world = World()
    world.sql.roles.update({"ag1-sql1": "SECONDARY", "ag1-sql2": "PRIMARY"})
    world.sql.states["ag1-sql1"]["AppDb"] = "SYNCHRONIZING"  # never SYNCHRONIZED in this fake
    result = world.run(OperationType.FAILBACK)
    assert isinstance(result, ResourceRecoveryFailed)
    assert result.error_code == R.PRIMARY_REPLICA_NOT_READY and result.retryable
    assert world.primary.actions() == []


def test_a_non_instance_resource_is_refused() -> None:
    world = World()
    task = world.task()
    ref = task.resource.model_copy(
        update={
            "arn": "arn:aws:eks:us-east-1:111111111111:cluster/x",
            "resource_type": "eks:cluster",
        }
    )
    result = result_detail(world.recovery().recover(task.model_copy(update={"resource": ref})))
    assert isinstance(result, ResourceRecoveryFailed)
    assert result.error_code == R.UNSUPPORTED_RESOURCE_TYPE


@pytest.mark.parametrize("attempt", [1, 2])
def test_command_comments_fit_ssm_and_differ_by_attempt(attempt: int) -> None:
    task = World().task(attempt=attempt)
    comment = command_comment(task, "failover")
    assert len(comment) <= 100
    assert comment != command_comment(World().task(attempt=attempt + 1), "failover")
