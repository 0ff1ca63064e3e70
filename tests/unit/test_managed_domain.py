"""The managed domain with in-memory fakes: readiness rules, actions, idempotency, tag validation,
and the DNS record that follows a server recovered by drs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from drcore.registry import CustomerEntry, EnvironmentEntry
from events.schemas import (
    Detail,
    OperationType,
    ResourceRecovered,
    ResourceRecoveryFailed,
    ResourceRef,
    Strategy,
    WaveStarted,
)
from events.schemas.models import DnsRecordUpdated, ResourceCheckRequested
from services.managed import config as C
from services.managed.domain import Job, ManagedRecovery, Outcome, lb_name, only_twin, resource_type
from services.managed.ports import (
    AwsError,
    CacheGroup,
    Claim,
    EfsDestination,
    EfsReplication,
    FileSystem,
    FsxFileSystem,
    GlobalDatastore,
    GlobalMember,
    HealthCheck,
    Instance,
    LoadBalancer,
    RecordSet,
    Zone,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
P, D = "us-east-1", "us-east-2"
ACCOUNT = "111111111111"
SCOPE = {"Customer": "acme", "Environment": "production"}
ENTRY = CustomerEntry(
    name="acme",
    account=ACCOUNT,
    regions={P: D},
    environments=[EnvironmentEntry(name="production")],
    external_id="dr-acme",
)


@dataclass
class World:
    """Both regions of the customer's account, and what was called."""

    file_systems: dict[tuple[str, str], FileSystem] = field(default_factory=dict)
    replications: list[EfsReplication] = field(default_factory=list)
    lbs: dict[tuple[str, str], LoadBalancer] = field(default_factory=dict)
    zones: dict[str, Zone] = field(default_factory=dict)
    records: dict[str, list[RecordSet]] = field(default_factory=dict)
    checks: dict[str, HealthCheck] = field(default_factory=dict)
    instances: dict[tuple[str, str], Instance] = field(default_factory=dict)
    caches: dict[tuple[str, str], CacheGroup] = field(default_factory=dict)
    globals: dict[str, GlobalDatastore] = field(default_factory=dict)
    down: set[str] = field(default_factory=set)
    # EFS takes minutes to make a replica writable: deletions seen as still in progress.
    slow_delete: bool = False
    calls: list[tuple[str, ...]] = field(default_factory=list)
    instance_reads: list[tuple[str, str]] = field(default_factory=list)
    environment_reads: list[tuple[str, dict[str, str]]] = field(default_factory=list)


class FakeWorkload:
    def __init__(self, world: World, region: str) -> None:
        self.world = world
        self.region = region

    def _up(self) -> None:
        if self.region in self.world.down:
            raise AwsError("EndpointError", f"{self.region} does not answer")

    def file_system(self, file_system_id: str) -> FileSystem | None:
        self._up()
        fs = self.world.file_systems.get((self.region, file_system_id))
        if fs is None:
            return None
        replicating = any(
            r.destinations[0].file_system_id == file_system_id for r in self.world.replications
        )
        return replace(fs, protection="REPLICATING") if replicating else fs

    def file_systems(self) -> list[FileSystem]:
        self._up()
        return [fs for (r, _), fs in self.world.file_systems.items() if r == self.region]

    def replications(self, file_system_id: str | None = None) -> list[EfsReplication]:
        self._up()
        return [
            r
            for r in self.world.replications
            if file_system_id is None
            or file_system_id in (r.source_file_system_id, r.destinations[0].file_system_id)
        ]

    def delete_replication(self, file_system_id: str, local_only: bool) -> None:
        self._up()
        self.world.calls.append(("delete", self.region, file_system_id, str(local_only)))
        if self.world.slow_delete:
            self.world.replications = [
                EfsReplication(
                    r.source_file_system_id,
                    r.source_region,
                    (replace(r.destinations[0], status="DELETING"),),
                )
                for r in self.world.replications
            ]
            return
        self.world.replications = [
            r
            for r in self.world.replications
            if file_system_id not in (r.source_file_system_id, r.destinations[0].file_system_id)
        ]

    def create_replication(self, source: str, region: str, destination: str) -> EfsReplication:
        self._up()
        self.world.calls.append(("create", self.region, source, destination))
        made = EfsReplication(
            source, self.region, (EfsDestination(destination, region, "ENABLED", NOW),)
        )
        self.world.replications.append(made)
        return made

    def set_protection(self, file_system_id: str, protection: str) -> str:
        self.world.calls.append(("protect", self.region, file_system_id, protection))
        fs = self.world.file_systems[(self.region, file_system_id)]
        self.world.file_systems[(self.region, file_system_id)] = replace(fs, protection=protection)
        return protection

    def load_balancer(self, name: str) -> LoadBalancer | None:
        self._up()
        return self.world.lbs.get((self.region, name))

    def load_balancers_named(self, name_tag: str) -> list[LoadBalancer]:
        self._up()
        return [
            lb
            for (r, _), lb in self.world.lbs.items()
            if r == self.region and lb.tags.get("Name") == name_tag
        ]

    def replication_group(self, group_id: str) -> CacheGroup | None:
        self._up()
        return self.world.caches.get((self.region, group_id))

    def replication_groups_named(self, name_tag: str) -> list[CacheGroup]:
        self._up()
        return [
            g
            for (r, _), g in self.world.caches.items()
            if r == self.region and g.tags.get("Name") == name_tag
        ]

    def global_datastore(self, global_id: str) -> GlobalDatastore | None:
        self._up()
        return self.world.globals.get(global_id)

    def failover_global(self, global_id: str, primary_region: str, primary_group_id: str) -> None:
        self._up()
        self.world.calls.append(("failover-global", global_id, primary_region, primary_group_id))
        store = self.world.globals[global_id]
        members = tuple(
            replace(m, role="PRIMARY" if m.group_id == primary_group_id else "SECONDARY")
            for m in store.members
        )
        self.world.globals[global_id] = replace(store, members=members)

    def fsx_file_system(self, file_system_id: str) -> FsxFileSystem | None:
        self._up()
        return None

    def fsx_file_systems(self) -> list[FsxFileSystem]:
        self._up()
        return []

    def secret(self, secret_id: str) -> str | None:
        return None

    def instance(self, instance_id: str) -> Instance | None:
        self.world.instance_reads.append((self.region, instance_id))
        self._up()
        return self.world.instances.get((self.region, instance_id))

    def instances_tagged(self, tags: Mapping[str, str]) -> dict[str, Instance]:
        self.world.environment_reads.append((self.region, dict(tags)))
        self._up()
        return {
            instance_id: instance
            for (region, instance_id), instance in self.world.instances.items()
            if region == self.region and tags.items() <= instance.tags.items()
        }

    def zone(self, zone: str) -> Zone | None:
        return self.world.zones.get(zone)

    def record_sets(self, zone_id: str, name: str) -> list[RecordSet]:
        return [r for r in self.world.records.get(zone_id, []) if r.name == name]

    def upsert(self, zone_id: str, record: RecordSet, comment: str) -> str:
        self.world.calls.append(("upsert", zone_id, record.name, *record.values))
        kept = [r for r in self.world.records.get(zone_id, []) if r.name != record.name]
        self.world.records[zone_id] = [*kept, record]
        return "C1"

    def wait_insync(self, change_id: str) -> str:
        return "INSYNC"

    def health_check(self, health_check_id: str) -> HealthCheck | None:
        return self.world.checks.get(health_check_id)

    def set_inverted(self, health_check_id: str, inverted: bool) -> None:
        self.world.calls.append(("invert", health_check_id, str(inverted)))
        check = self.world.checks[health_check_id]
        self.world.checks[health_check_id] = replace(check, inverted=inverted)


class FakeWorkloads:
    def __init__(self, world: World) -> None:
        self.world = world

    def get(self, entry: CustomerEntry, region: str) -> FakeWorkload:
        return FakeWorkload(self.world, region)


class Registry:
    def customer(self, name: str) -> CustomerEntry | None:
        return ENTRY if name == "acme" else None


class Ledger:
    """state, result (done) or note (held), lease end."""

    def __init__(self) -> None:
        self.items: dict[str, tuple[str, str | None, datetime]] = {}

    def claim(self, operation_id: str, key: str, now: datetime, lease_seconds: int) -> Claim:
        found = self.items.get(f"{operation_id}/{key}")
        if found is not None and found[0] == "DONE":
            return Claim("done", found[1])
        if found is not None and found[2] > now:
            return Claim("busy")
        until = now + timedelta(seconds=lease_seconds)
        self.items[f"{operation_id}/{key}"] = ("CLAIMED", None, until)
        return Claim("claimed", note=found[1] if found else None)

    def finish(self, operation_id: str, key: str, result: str, now: datetime) -> None:
        self.items[f"{operation_id}/{key}"] = ("DONE", result, now)

    def hold(self, operation_id: str, key: str, until: datetime, note: str) -> None:
        self.items[f"{operation_id}/{key}"] = ("CLAIMED", note, until)


class Results:
    def __init__(self) -> None:
        self.published: list[Detail] = []

    def publish(self, details: Any) -> None:
        self.published += list(details)


class Log:
    def info(self, *args: Any, **kwargs: Any) -> None: ...
    def warning(self, *args: Any, **kwargs: Any) -> None: ...
    def error(self, *args: Any, **kwargs: Any) -> None: ...


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def harness(world: World, clock: Clock | None = None) -> tuple[ManagedRecovery, Results, Ledger]:
    results, ledger = Results(), Ledger()
    domain = ManagedRecovery(
        Registry(), FakeWorkloads(world), ledger, results, Log(), clock=clock or (lambda: NOW)
    )
    return domain, results, ledger


def efs_world(lag_seconds: int = 60, replica_scope: dict[str, str] | None = None) -> World:
    world = World()
    world.file_systems[(P, "fs-0000000a")] = FileSystem(
        "fs-0000000a", "arn", P, "available", "ENABLED", SCOPE | {C.DR_FILE_SYSTEM: "fs-0000000b"}
    )
    world.file_systems[(D, "fs-0000000b")] = FileSystem(
        "fs-0000000b", "arn", D, "available", "ENABLED", replica_scope or SCOPE
    )
    world.replications.append(
        EfsReplication(
            "fs-0000000a",
            P,
            (EfsDestination("fs-0000000b", D, "ENABLED", NOW - timedelta(seconds=lag_seconds)),),
        )
    )
    return world


def ref(resource_id: str, kind: str, rpo: int = 15) -> ResourceRef:
    return ResourceRef(
        resource_id=resource_id,
        arn=f"arn:aws:x:{P}:{ACCOUNT}:{resource_id}",
        name=resource_id,
        account=ACCOUNT,
        region=P,
        dr_region=D,
        rto_target_minutes=60,
        rpo_target_minutes=rpo,
        resource_type=kind,
    )


EFS = "elasticfilesystem:file-system"
LB = "elasticloadbalancing:loadbalancer"


def wave(operation: OperationType, *refs: ResourceRef, attempt: int = 1) -> WaveStarted:
    return WaveStarted(
        operation_id="op-unit-000001",
        customer="acme",
        environment="production",
        operation=operation,
        wave=1,
        strategy=Strategy.MANAGED_SERVICE,
        part=1,
        part_count=1,
        attempt=attempt,
        resources=list(refs),
    )


# --- EFS -----------------------------------------------------------------------------------------


def test_given_a_healthy_replication_when_failing_over_then_it_is_deleted_from_the_source() -> None:
    world = efs_world(lag_seconds=120)
    domain, results, _ = harness(world)
    domain.recover_part(wave(OperationType.FAILOVER, ref("fs-0000000a", EFS)))
    [result] = results.published
    assert isinstance(result, ResourceRecovered)
    assert result.dr_resource_id == "fs-0000000b"
    assert result.details["lag_seconds"] == "120"
    assert result.details["deletion_mode"] == "ALL_CONFIGURATIONS"
    assert world.calls == [("delete", P, "fs-0000000a", "False")]


def test_given_the_source_region_down_then_the_dr_side_is_deleted_locally() -> None:
    world = efs_world()
    world.down.add(P)
    domain, results, _ = harness(world)
    domain.recover_part(wave(OperationType.FAILOVER, ref("fs-0000000a", EFS)))
    [result] = results.published
    assert isinstance(result, ResourceRecovered)
    assert result.details["deletion_mode"] == "LOCAL_CONFIGURATION_ONLY"
    assert result.details["source_region_down"] == "true"
    assert world.calls == [("delete", D, "fs-0000000b", "True")]


def test_given_lag_over_rpo_then_it_fails_clearly_and_nothing_is_deleted() -> None:
    world = efs_world(lag_seconds=3600)
    domain, results, _ = harness(world)
    domain.recover_part(wave(OperationType.FAILOVER, ref("fs-0000000a", EFS, rpo=15)))
    [result] = results.published
    assert isinstance(result, ResourceRecoveryFailed)
    assert result.error_code == "EFS_LAG_OVER_RPO"
    assert "3600 s" in result.error and "15 min" in result.error
    assert world.calls == []


def test_given_a_replica_of_another_tenant_then_it_fails_and_nothing_is_deleted() -> None:
    world = efs_world(replica_scope={"Customer": "other", "Environment": "production"})
    domain, results, _ = harness(world)
    domain.recover_part(wave(OperationType.FAILOVER, ref("fs-0000000a", EFS)))
    [result] = results.published
    assert isinstance(result, ResourceRecoveryFailed) and result.error_code == "SCOPE_MISMATCH"
    assert "'other'" in result.error
    assert world.calls == []


def test_given_a_drill_then_efs_is_validated_and_nothing_changes() -> None:
    world = efs_world()
    domain, results, _ = harness(world)
    domain.recover_part(wave(OperationType.BUBBLE_TEST, ref("fs-0000000a", EFS)))
    [result] = results.published
    assert isinstance(result, ResourceRecovered) and "drill" in result.details
    assert world.calls == [] and len(world.replications) == 1


def test_given_a_failed_over_fs_when_failing_back_then_replicate_back_cut_over_reprotect() -> None:
    world = efs_world()
    domain, _, _ = harness(world)
    domain.recover_part(wave(OperationType.FAILOVER, ref("fs-0000000a", EFS)))
    world.calls.clear()
    domain2, results, _ = harness(world)
    domain2.recover_part(wave(OperationType.FAILBACK, ref("fs-0000000a", EFS)))
    [result] = results.published
    assert isinstance(result, ResourceRecovered), result
    assert world.calls == [
        ("protect", P, "fs-0000000a", "DISABLED"),
        ("create", D, "fs-0000000b", "fs-0000000a"),
        ("delete", D, "fs-0000000b", "False"),
        ("protect", D, "fs-0000000b", "DISABLED"),
        ("create", P, "fs-0000000a", "fs-0000000b"),
    ]
    [forward] = world.replications
    assert (forward.source_file_system_id, forward.destinations[0].file_system_id) == (
        "fs-0000000a",
        "fs-0000000b",
    )


# --- idempotency ------------------------------------------------------------------------------


def test_given_a_stored_result_when_asked_again_then_it_is_republished_without_acting() -> None:
    world = efs_world()
    domain, results, _ = harness(world)
    part = wave(OperationType.FAILOVER, ref("fs-0000000a", EFS))
    domain.recover_part(part)
    check = ResourceCheckRequested(
        **part.model_dump(include={"operation_id", "customer", "environment", "operation"}),
        wave=1,
        strategy=Strategy.MANAGED_SERVICE,
        part=1,
        part_count=1,
        resources=part.resources,
        in_flight_since=NOW,
        reason="stuck",
    )
    domain.check(check)
    domain.recover_part(part)
    first, *again = results.published
    assert again == [first, first]  # same content each time
    assert world.calls == [("delete", P, "fs-0000000a", "False")]  # acted once


def test_given_a_resource_in_flight_with_another_worker_then_nothing_is_done() -> None:
    world = efs_world()
    domain, results, ledger = harness(world)
    part = wave(OperationType.FAILOVER, ref("fs-0000000a", EFS))
    ledger.claim(part.operation_id, "fs-0000000a#recover#1", NOW - timedelta(seconds=1), 300)
    assert domain.recover_part(part)["skipped"] == 1
    assert results.published == [] and world.calls == []


# --- load balancers -------------------------------------------------------------------------------


def lb_world(disabled: bool = False, dr_state: str = "active") -> World:
    world = World()
    tags = SCOPE | {
        "Name": "web",
        C.DNS_RECORD: "Z1/web.acme.example",
        C.DR_LOAD_BALANCER: "web-dr",
    }
    world.lbs[(P, "web")] = LoadBalancer(
        "web", "arn-p", "web-p.elb.amazonaws.com", "active", "application", tags=tags
    )
    world.lbs[(D, "web-dr")] = LoadBalancer(
        "web-dr", "arn-d", "web-d.elb.amazonaws.com", dr_state, "application", tags=SCOPE
    )
    world.zones["Z1"] = Zone("Z1", "acme.example.", private=False)
    world.records["Z1"] = [
        RecordSet(
            "web.acme.example.", "CNAME", "p", "PRIMARY", "hc-1", ("web-p.elb.amazonaws.com",)
        ),
        RecordSet(
            "web.acme.example.", "CNAME", "s", "SECONDARY", None, ("web-d.elb.amazonaws.com",)
        ),
    ]
    world.checks["hc-1"] = HealthCheck("hc-1", inverted=False, disabled=disabled)
    return world


def test_given_a_failover_pair_when_failing_over_then_the_primary_check_is_inverted() -> None:
    world = lb_world()
    domain, results, _ = harness(world)
    domain.recover_part(wave(OperationType.FAILOVER, ref("web", LB)))
    [result] = results.published
    assert isinstance(result, ResourceRecovered)
    assert result.details["answer"] == "SECONDARY"
    assert result.details["answer_values"] == "web-d.elb.amazonaws.com"
    assert world.calls == [("invert", "hc-1", "True")]


def test_given_a_disabled_health_check_then_it_fails_since_it_would_count_healthy() -> None:
    world = lb_world(disabled=True)
    domain, results, _ = harness(world)
    domain.recover_part(wave(OperationType.FAILOVER, ref("web", LB)))
    [result] = results.published
    assert isinstance(result, ResourceRecoveryFailed)
    assert result.error_code == "R53_HEALTH_CHECK_DISABLED" and world.calls == []


def test_given_a_dr_load_balancer_not_active_then_it_fails_and_nothing_flips() -> None:
    world = lb_world(dr_state="provisioning")
    domain, results, _ = harness(world)
    domain.recover_part(wave(OperationType.FAILOVER, ref("web", LB)))
    [result] = results.published
    assert isinstance(result, ResourceRecoveryFailed)
    assert result.error_code == "LB_DR_NOT_ACTIVE" and world.calls == []


def test_given_a_plain_record_when_failing_over_then_it_is_upserted() -> None:
    world = lb_world()
    world.records["Z1"] = [
        RecordSet("web.acme.example.", "CNAME", values=("web-p.elb.amazonaws.com",), ttl=30)
    ]
    domain, results, _ = harness(world)
    domain.recover_part(wave(OperationType.FAILOVER, ref("web", LB)))
    [result] = results.published
    assert isinstance(result, ResourceRecovered), result
    assert world.calls == [("upsert", "Z1", "web.acme.example.", "web-d.elb.amazonaws.com")]
    assert result.details["change_status"] == "INSYNC"


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("no-slash", "dr:managed:dns-record='no-slash'"),
        ("acme.example/other.example", "not inside the zone"),
        ("acme.example/bad name!", "is not a DNS name"),
    ],
)
def test_given_a_bad_dns_record_tag_then_it_fails_naming_tag_and_value(
    value: str, named: str
) -> None:
    world = lb_world()
    lb = world.lbs[(P, "web")]
    world.lbs[(P, "web")] = replace(lb, tags={**lb.tags, C.DNS_RECORD: value})
    domain, results, _ = harness(world)
    domain.recover_part(wave(OperationType.FAILOVER, ref("web", LB)))
    [result] = results.published
    assert isinstance(result, ResourceRecoveryFailed)
    assert result.error_code == "INVALID_MODULE_TAG" and named in result.error
    assert world.calls == []


def test_given_an_unsupported_type_then_it_fails_naming_the_type() -> None:
    domain, results, _ = harness(World())
    domain.recover_part(wave(OperationType.FAILOVER, ref("orders", "dynamodb:table")))
    [result] = results.published
    assert isinstance(result, ResourceRecoveryFailed)
    assert result.error_code == "RESOURCE_TYPE_NOT_SUPPORTED"
    assert "dynamodb:table" in result.error


def test_resource_types_and_names_from_arns() -> None:
    legacy = ref("x", "ec2:instance").model_copy(
        update={"arn": f"arn:aws:elasticfilesystem:{P}:{ACCOUNT}:file-system/fs-0000000a"}
    )
    assert resource_type(legacy) == EFS
    assert resource_type(ref("x", "elasticloadbalancing:loadbalancer")) == LB
    assert lb_name("app/web/0123456789abcdef") == "web" and lb_name("web") == "web"


# --- choreography: drs -> DNS -------------------------------------------------------------------


def server_world(tag: str | None, scope: dict[str, str] = SCOPE) -> World:
    world = World()
    tags = dict(scope) | ({C.DNS_RECORD: tag} if tag else {})
    world.instances[(P, "i-1")] = Instance("i-1", "10.1.10.5", tags)
    world.zones["acme.internal."] = Zone("Z9", "acme.internal.", private=True)
    world.records["Z9"] = [RecordSet("app.acme.internal.", "A", values=("10.1.10.5",), ttl=60)]
    return world


def recovered_server(operation: OperationType = OperationType.FAILOVER) -> ResourceRecovered:
    return ResourceRecovered(
        operation_id="op-unit-000002",
        customer="acme",
        environment="production",
        operation=operation,
        resource_id="i-1",
        wave=1,
        strategy=Strategy.DRS,
        dr_resource_id="i-2",
        dr_private_ip="10.101.10.5",
        dr_region=D,
        started_at=NOW,
        completed_at=NOW,
    )


def test_given_a_server_with_a_record_when_drs_recovers_it_then_the_record_follows_once() -> None:
    world = server_world("acme.internal/app.acme.internal")
    domain, results, _ = harness(world)
    first = domain.server_recovered(recovered_server())
    again = domain.server_recovered(recovered_server())
    assert isinstance(first, DnsRecordUpdated) and again == first
    assert (first.previous_values, first.values, first.changed) == (
        ["10.1.10.5"],
        ["10.101.10.5"],
        True,
    )
    assert world.calls == [("upsert", "Z9", "app.acme.internal.", "10.101.10.5")]
    assert results.published == [first, first]
    # the tags come from one read of the environment where the server was recovered from
    assert world.environment_reads == [(P, SCOPE)]
    assert world.instance_reads == []


def test_given_a_server_without_a_record_then_nothing_changes() -> None:
    world = server_world(None)
    domain, results, _ = harness(world)
    assert domain.server_recovered(recovered_server()) is None
    assert world.environment_reads == [(P, SCOPE)] and world.instance_reads == []
    assert world.calls == [] and results.published == []


def test_given_many_servers_of_an_operation_then_the_environment_is_read_once() -> None:
    world = server_world("acme.internal/app.acme.internal")
    for n in range(2, 6):
        world.instances[(P, f"i-{n}")] = replace(world.instances[(P, "i-1")], instance_id=f"i-{n}")
    domain, _, _ = harness(world)
    for n in range(1, 6):
        domain.server_recovered(recovered_server().model_copy(update={"resource_id": f"i-{n}"}))
    assert world.environment_reads == [(P, SCOPE)] and world.instance_reads == []
    # another operation reads it again (its own snapshot)
    domain.server_recovered(recovered_server().model_copy(update={"operation_id": "op-unit-9"}))
    assert len(world.environment_reads) == 2


def test_given_the_server_is_not_in_the_environment_read_then_it_is_read_on_its_own() -> None:
    world = server_world("acme.internal/app.acme.internal", {"Customer": "other"})
    domain, results, _ = harness(world)
    # out of scope: not in the environment's read, read alone, then refused by the scope check
    assert domain.server_recovered(recovered_server()) is None
    assert world.instance_reads == [(P, "i-1")]
    assert world.calls == [] and results.published == []


def test_given_the_source_region_is_down_then_the_server_is_read_where_it_answers() -> None:
    world = server_world("acme.internal/app.acme.internal")
    world.instances[(D, "i-1")] = world.instances.pop((P, "i-1"))
    world.down.add(P)
    domain, results, _ = harness(world)
    updated = domain.server_recovered(recovered_server())
    assert results.published == [updated]
    assert isinstance(updated, DnsRecordUpdated)
    assert (P, "i-1") in world.instance_reads and (D, "i-1") in world.instance_reads


@pytest.mark.parametrize(
    ("tag", "scope", "operation"),
    [
        (None, SCOPE, OperationType.FAILOVER),  # the server asks for nothing
        ("acme.internal/app.acme.internal", {"Customer": "other"}, OperationType.FAILOVER),
        ("acme.internal/app.acme.internal", SCOPE, OperationType.BUBBLE_TEST),  # drills: never
        ("acme.internal", SCOPE, OperationType.FAILOVER),  # invalid tag: refused, logged
    ],
)
def test_given_no_valid_request_then_no_record_changes(
    tag: str | None, scope: dict[str, str], operation: OperationType
) -> None:
    world = server_world(tag, scope)
    domain, results, _ = harness(world)
    assert domain.server_recovered(recovered_server(operation)) is None
    assert world.calls == [] and results.published == []


# --- ElastiCache ----------------------------------------------------------------------------------

CACHE = "elasticache:replicationgroup"


def cache_world(global_id: str | None = None, dr_status: str = "available") -> World:
    world = World()
    tags = SCOPE | {
        "Name": "sessions",
        C.DNS_RECORD: "Z1/sessions.acme.example",
        C.DR_REPLICATION_GROUP: "sessions-dr",
    }
    world.caches[(P, "sessions")] = CacheGroup(
        "sessions", "arn-p", "available", "sessions.p.cache.amazonaws.com", global_id, tags
    )
    world.caches[(D, "sessions-dr")] = CacheGroup(
        "sessions-dr", "arn-d", dr_status, "sessions.d.cache.amazonaws.com", None, SCOPE
    )
    world.zones["Z1"] = Zone("Z1", "acme.example.", private=False)
    world.records["Z1"] = [
        RecordSet("sessions.acme.example.", "CNAME", values=("sessions.p.cache.amazonaws.com",))
    ]
    return world


def test_given_a_regional_cache_when_failing_over_and_back_then_the_endpoint_switches() -> None:
    world = cache_world()
    domain, results, _ = harness(world)
    domain.recover_part(wave(OperationType.FAILOVER, ref("sessions", CACHE)))
    domain.recover_part(wave(OperationType.FAILBACK, ref("sessions", CACHE), attempt=2))
    over, back = results.published
    assert isinstance(over, ResourceRecovered) and isinstance(back, ResourceRecovered)
    assert over.dr_resource_id == "sessions-dr" and back.dr_resource_id == "sessions"
    assert world.calls == [
        ("upsert", "Z1", "sessions.acme.example.", "sessions.d.cache.amazonaws.com"),
        ("upsert", "Z1", "sessions.acme.example.", "sessions.p.cache.amazonaws.com"),
    ]


@pytest.mark.parametrize(
    ("world", "code"),
    [
        (cache_world(global_id="gds-1"), "CACHE_GLOBAL_NOT_FOUND"),
        (cache_world(dr_status="modifying"), "CACHE_DR_NOT_AVAILABLE"),
    ],
)
def test_given_a_cache_not_ready_then_it_fails_and_the_endpoint_stays(
    world: World, code: str
) -> None:
    domain, results, _ = harness(world)
    domain.recover_part(wave(OperationType.FAILOVER, ref("sessions", CACHE)))
    [result] = results.published
    assert isinstance(result, ResourceRecoveryFailed) and result.error_code == code
    assert world.calls == []


def test_given_a_cache_drill_then_nothing_switches() -> None:
    world = cache_world()
    domain, results, _ = harness(world)
    domain.recover_part(wave(OperationType.BUBBLE_TEST, ref("sessions", CACHE)))
    [result] = results.published
    assert isinstance(result, ResourceRecovered) and world.calls == []


def test_given_efs_still_ending_the_replication_then_no_result_until_a_later_check() -> None:
    world = efs_world()
    world.slow_delete = True
    clock = Clock()
    domain, results, _ = harness(world, clock)
    part = wave(OperationType.FAILOVER, ref("fs-0000000a", EFS))
    # When the replication is deleted but EFS has not made the replica writable yet
    assert domain.recover_part(part)["skipped"] == 1
    assert results.published == []
    check = ResourceCheckRequested(
        **part.model_dump(include={"operation_id", "customer", "environment", "operation"}),
        wave=1,
        strategy=Strategy.MANAGED_SERVICE,
        part=1,
        part_count=1,
        resources=part.resources,
        in_flight_since=NOW,
        reason="stuck",
    )
    # A check during the hold leaves it alone
    domain.check(check)
    assert results.published == []
    # Then, once EFS is done, the reconciler's next check publishes the result; one deletion
    world.replications = []
    clock.now = NOW + timedelta(minutes=5)
    domain.check(check)
    [result] = results.published
    assert isinstance(result, ResourceRecovered) and result.dr_resource_id == "fs-0000000b"
    assert [c for c in world.calls if c[0] == "delete"] == [("delete", P, "fs-0000000a", "False")]


def global_world(status: str = "available") -> World:
    world = cache_world(global_id="ldgnf-sessions")
    world.caches[(D, "sessions-dr")] = replace(
        world.caches[(D, "sessions-dr")], global_group_id="ldgnf-sessions"
    )
    world.globals["ldgnf-sessions"] = GlobalDatastore(
        "ldgnf-sessions",
        status,
        (
            GlobalMember("sessions", P, "PRIMARY", "associated"),
            GlobalMember("sessions-dr", D, "SECONDARY", "associated"),
        ),
    )
    return world


def test_given_a_global_datastore_when_failing_over_and_back_then_the_primary_moves() -> None:
    world = global_world()
    domain, results, _ = harness(world)
    domain.recover_part(wave(OperationType.FAILOVER, ref("sessions", CACHE)))
    domain.recover_part(wave(OperationType.FAILBACK, ref("sessions", CACHE), attempt=2))
    over, back = results.published
    assert isinstance(over, ResourceRecovered) and isinstance(back, ResourceRecovered)
    assert over.dr_resource_id == "sessions-dr" and back.dr_resource_id == "sessions"
    assert over.details["roles"] == f"{P}/sessions=SECONDARY,{D}/sessions-dr=PRIMARY"
    assert world.calls == [
        ("failover-global", "ldgnf-sessions", D, "sessions-dr"),
        ("failover-global", "ldgnf-sessions", P, "sessions"),
    ]


def test_given_a_global_datastore_drill_or_not_available_then_nothing_fails_over() -> None:
    world = global_world()
    domain, results, _ = harness(world)
    domain.recover_part(wave(OperationType.BUBBLE_TEST, ref("sessions", CACHE)))
    busy = global_world(status="modifying")
    other, more, _ = harness(busy)
    other.recover_part(wave(OperationType.FAILOVER, ref("sessions", CACHE)))
    [drill], [refused] = results.published, more.published
    assert isinstance(drill, ResourceRecovered) and world.calls == []
    assert isinstance(refused, ResourceRecoveryFailed)
    assert refused.error_code == "CACHE_GLOBAL_NOT_AVAILABLE" and busy.calls == []


@pytest.mark.parametrize("count", [0, 1, 2])
def test_given_the_source_region_down_then_exactly_one_dr_twin_is_taken(count: int) -> None:
    job = Job(
        operation_id="op-unit-000009",
        customer="acme",
        environment="production",
        operation=OperationType.FAILOVER,
        wave=1,
        attempt=1,
        ref=ref("app-lb", LB),
    )
    twins = [f"twin-{n}" for n in range(count)]
    chosen = only_twin(job, twins, "load balancers", "LB_DR_NOT_FOUND")
    if count == 1:
        assert chosen == "twin-0"
        return
    assert isinstance(chosen, Outcome) and not chosen.ok and chosen.retryable
    assert chosen.code == "LB_DR_NOT_FOUND"
    assert chosen.message == (
        f"{P} does not answer and {count} load balancers named 'app-lb' of acme/production "
        f"are in {D} (need exactly one)"
    )
