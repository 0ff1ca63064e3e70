"""What the managed domain reads and calls: value types and the ports `adapters.py` implements.

No AWS here. `Workload` is one workload account in one region (EFS, Elastic Load Balancing, EC2
tags, and Route 53, whose control plane is global); the other ports are the orchestration
account's state (customer registry, ledger of results) and the bus.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from drcore.registry import CustomerEntry
from events.schemas import Detail

# AWS error codes worth another try later (the reconciler or an operator retry).
RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequests",
        "PriorRequestNotComplete",
        "InternalServerError",
        "ServiceUnavailable",
        "EndpointError",
        "503",
    }
)
# Codes that say the region itself is not answering (a regional outage).
UNREACHABLE_CODES = frozenset({"EndpointError", "503", "ServiceUnavailable"})


class AwsError(Exception):
    """An AWS call failed after botocore's retries (raised by adapters)."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE_CODES

    @property
    def unreachable(self) -> bool:
        return self.code in UNREACHABLE_CODES


class OntapError(Exception):
    """The ONTAP REST API failed (HTTP error, TLS, connection); `status` 0 when unreachable."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status
        self.message = message

    @property
    def retryable(self) -> bool:
        return self.status == 0 or self.status == 429 or self.status >= 500


# --- EFS ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileSystem:
    file_system_id: str
    arn: str
    region: str
    life_cycle_state: str
    # ReplicationOverwriteProtection: ENABLED | DISABLED | REPLICATING (read-only replica).
    protection: str
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def writable(self) -> bool:
        return self.protection != "REPLICATING"


@dataclass(frozen=True)
class EfsDestination:
    file_system_id: str
    region: str
    status: str
    last_replicated: datetime | None = None
    status_message: str | None = None


@dataclass(frozen=True)
class EfsReplication:
    source_file_system_id: str
    source_region: str
    destinations: tuple[EfsDestination, ...]
    original_source_arn: str | None = None


# --- Route 53 and load balancers -----------------------------------------------------------------


@dataclass(frozen=True)
class RecordSet:
    name: str
    type: str
    set_identifier: str | None = None
    failover: str | None = None  # PRIMARY | SECONDARY
    health_check_id: str | None = None
    values: tuple[str, ...] = ()  # ResourceRecords values, or the alias target's DNS name
    alias: bool = False
    alias_zone_id: str | None = None  # the alias target's hosted zone
    ttl: int | None = None


@dataclass(frozen=True)
class HealthCheck:
    health_check_id: str
    inverted: bool
    disabled: bool


@dataclass(frozen=True)
class Zone:
    zone_id: str
    name: str
    private: bool


@dataclass(frozen=True)
class LoadBalancer:
    name: str
    arn: str
    dns_name: str
    state: str
    kind: str  # application | network | gateway
    canonical_zone_id: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CacheGroup:
    """An ElastiCache replication group (Valkey / Redis OSS)."""

    group_id: str
    arn: str
    status: str
    primary_endpoint: str | None
    global_group_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GlobalMember:
    group_id: str
    region: str
    role: str  # PRIMARY | SECONDARY
    status: str  # associated | associating | disassociating …


@dataclass(frozen=True)
class GlobalDatastore:
    """An ElastiCache Global Datastore (DescribeGlobalReplicationGroups, ShowMemberInfo)."""

    global_id: str
    status: str  # available | creating | modifying | primary-only | deleting …
    members: tuple[GlobalMember, ...] = ()

    def member_in(self, region: str) -> GlobalMember | None:
        return next((m for m in self.members if m.region == region), None)


# --- FSx for NetApp ONTAP ------------------------------------------------------------------------


@dataclass(frozen=True)
class FsxFileSystem:
    """An FSx file system (DescribeFileSystems), with its ONTAP management endpoint."""

    file_system_id: str
    arn: str
    region: str
    file_system_type: str  # ONTAP | WINDOWS | LUSTRE | OPENZFS
    lifecycle: str  # AVAILABLE | CREATING | FAILED | DELETING | MISCONFIGURED | UPDATING …
    management_dns: str | None = None
    management_ips: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SnapMirror:
    """One SnapMirror relationship as the destination cluster's ONTAP REST API reports it."""

    uuid: str
    state: str  # snapmirrored | broken_off | paused | uninitialized | in_sync | out_of_sync …
    healthy: bool
    source_path: str
    destination_path: str
    lag_time: str | None = None  # ISO 8601 duration (PT5M12S); absent when never transferred
    unhealthy_reason: str = ""


@dataclass(frozen=True)
class OntapJob:
    uuid: str
    state: str  # queued | running | paused | success | failure
    message: str = ""


class Ontap(Protocol):
    """The ONTAP REST API of one file system's management endpoint (HTTPS, basic auth)."""

    def relationships(self) -> list[SnapMirror]: ...
    def set_state(self, uuid: str, state: str) -> str:
        """PATCH the relationship's state; the id of the job doing it."""
        ...

    def job(self, uuid: str) -> OntapJob: ...


class OntapConnector(Protocol):
    def connect(self, file_system: FsxFileSystem, username: str, password: str) -> Ontap: ...


@dataclass(frozen=True)
class Instance:
    instance_id: str
    private_ip: str | None
    tags: Mapping[str, str] = field(default_factory=dict)


class Workload(Protocol):
    """One workload account in one region."""

    region: str

    # EFS
    def file_system(self, file_system_id: str) -> FileSystem | None: ...
    def file_systems(self) -> list[FileSystem]: ...
    def replications(self, file_system_id: str | None = None) -> list[EfsReplication]: ...
    def delete_replication(self, file_system_id: str, local_only: bool) -> None: ...
    def create_replication(
        self, source_file_system_id: str, destination_region: str, destination_id: str
    ) -> EfsReplication: ...
    def set_protection(self, file_system_id: str, protection: str) -> str: ...

    # Elastic Load Balancing
    def load_balancer(self, name: str) -> LoadBalancer | None: ...
    def load_balancers_named(self, name_tag: str) -> list[LoadBalancer]: ...

    # ElastiCache
    def replication_group(self, group_id: str) -> CacheGroup | None: ...
    def replication_groups_named(self, name_tag: str) -> list[CacheGroup]: ...
    def global_datastore(self, global_id: str) -> GlobalDatastore | None: ...
    def failover_global(self, global_id: str, primary_region: str, primary_group_id: str) -> None:
        """FailoverGlobalReplicationGroup: make that member the primary."""
        ...

    # FSx and Secrets Manager (FSx for NetApp ONTAP)
    def fsx_file_system(self, file_system_id: str) -> FsxFileSystem | None: ...
    def fsx_file_systems(self) -> list[FsxFileSystem]: ...
    def secret(self, secret_id: str) -> str | None: ...

    # EC2 (servers recovered by drs)
    def instance(self, instance_id: str) -> Instance | None: ...
    def instances_tagged(self, tags: Mapping[str, str]) -> dict[str, Instance]:
        """Every instance carrying all of `tags`, by instance id (every page)."""
        ...

    # Route 53 (global control plane, reached through the account's client)
    def zone(self, zone: str) -> Zone | None: ...
    def record_sets(self, zone_id: str, name: str) -> list[RecordSet]: ...
    def upsert(self, zone_id: str, record: RecordSet, comment: str) -> str: ...
    def wait_insync(self, change_id: str) -> str: ...
    def health_check(self, health_check_id: str) -> HealthCheck | None: ...
    def set_inverted(self, health_check_id: str, inverted: bool) -> None: ...


class Workloads(Protocol):
    def get(self, entry: CustomerEntry, region: str) -> Workload: ...


class Registry(Protocol):
    def customer(self, name: str) -> CustomerEntry | None: ...


# --- orchestration state ------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """What the ledger said when a worker asked to work on a key."""

    state: str  # "claimed" (go on) | "done" (result stored) | "busy" (another worker on it)
    result: str | None = None  # the stored result (event JSON) when done
    note: str | None = None  # what a worker that waited on the resource noted (taken over)


class Ledger(Protocol):
    """One item per operation + resource + step + attempt: who works on it, and its result."""

    def claim(self, operation_id: str, key: str, now: datetime, lease_seconds: int) -> Claim: ...
    def finish(self, operation_id: str, key: str, result: str, now: datetime) -> None: ...
    def hold(self, operation_id: str, key: str, until: datetime, note: str) -> None:
        """Keep the claim (work in flight on AWS's side) until `until`, with a note for the
        worker that takes it over then."""
        ...


class Results(Protocol):
    def publish(self, details: Sequence[Detail]) -> None: ...
