"""The DR-region inventory cache (seed "Primary Region Failure Scenarios", DESIGN §5): pure logic.

What a snapshot holds, how one is assembled from what the AWS APIs report, how a refresh is
checked (completeness, consistency against the previous version, age) and how a snapshot is
packed (compressed JSON). The collection (`collect.py`), the store (`adapters.InventoryTable`)
and the refresh use case (`refresh.py`) sit around it.

One snapshot per customer + environment (a scope): the complete DR picture of its DR-tagged
resources — tags, primary IP and platform, DR region, the DR twin (instance, IP, platform, boot
mode, launch-into tag) and the DRS replication facts (source server, state, lag, OS) — plus the
DRS source servers of the scope whose instance is not DR-tagged. Every record is re-checked
against the scope's `Customer` / `Environment` tags and account: a snapshot never holds another
tenant's resource.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from drcore import tags as T
from drcore.plan import PlanWarning
from drcore.registry import CustomerEntry
from events.schemas import PlanSource

from .domain import EC2_INSTANCE, PLAN_WIDE, DiscoveredResource

# 2: resources of every supported type (`CachedResource.resource_type`). Version 1 snapshots
# (EC2 instances only, no `resource_type`) read as they are: the field defaults to `ec2:instance`.
SNAPSHOT_FORMAT = 2
# `dr:recovery-strategy` values whose resources DRS does not replicate (no source server, no twin).
NOT_DRS = frozenset({"eks-dns", "sql-ag", "managed-service"})
COMPRESSION_LEVEL = 9
# DynamoDB items are capped at 400 KB: a compressed snapshot is stored in chunks below that.
CHUNK_BYTES = 350_000
# Plan warning codes of a plan made from the cache.
PLANNED_FROM_CACHE = "PLANNED_FROM_CACHE"
CACHE_AGE_WARNING = "CACHE_AGE_WARNING"
CACHE_AGE_CRITICAL = "CACHE_AGE_CRITICAL"
# DRS replication states that still launch from the latest snapshot (as the drs service judges).
READY_REPLICATION = frozenset({"CONTINUOUS", "BACKLOG", "CREATING_SNAPSHOT", "RESCAN"})
# EC2 states of a twin that can still be launched into.
LIVE_STATES = frozenset({"pending", "running", "stopping", "stopped"})


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


SEVERITY_RANK = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}


# --- what AWS reports, as plain records (adapters build them) ------------------------------------


@dataclass(frozen=True)
class InstanceRecord:
    """One EC2 instance as `DescribeInstances` reports it (boot mode possibly from its image)."""

    instance_id: str
    region: str
    tags: Mapping[str, str] = field(default_factory=dict)
    private_ip: str | None = None
    state: str | None = None
    platform: str | None = None
    boot_mode: str | None = None
    architecture: str | None = None
    image_id: str | None = None


@dataclass(frozen=True)
class SourceServerRecord:
    """One DRS source server (DR region) as `DescribeSourceServers` reports it."""

    source_server_id: str
    region: str
    instance_id: str | None
    origin_region: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    replication_state: str | None = None
    lag_seconds: float | None = None
    os: str | None = None
    primary_ip: str | None = None


def platform_of(text: str | None) -> str | None:
    """ "windows" or "linux" from EC2's Platform/PlatformDetails or DRS's OS string."""
    if not text:
        return None
    return "windows" if "windows" in text.lower() else "linux"


_DURATION = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


def parse_iso_duration(value: str | None) -> float | None:
    """DRS's `lagDuration` ("PT1H2M3S") in seconds; None when absent or unreadable."""
    if not value:
        return None
    found = _DURATION.match(value.strip())
    if found is None:
        return None
    parts = {k: float(v) for k, v in found.groupdict().items() if v}
    return (
        parts.get("d", 0) * 86400 + parts.get("h", 0) * 3600 + parts.get("m", 0) * 60
    ) + parts.get("s", 0)


# --- the snapshot ---------------------------------------------------------------------------------


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class TwinFacts(_Frozen):
    instance_id: str
    private_ip: str | None = None
    state: str | None = None
    platform: str | None = None
    boot_mode: str | None = None
    architecture: str | None = None
    # Tag AWSDRS=AllowLaunchingIntoThisInstance: DRS may launch into it.
    launch_target: bool = False


class ReplicationFacts(_Frozen):
    source_server_id: str
    instance_id: str | None = None
    region: str | None = None
    state: str | None = None
    lag_seconds: float | None = None
    os: str | None = None
    primary_ip: str | None = None
    name: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)

    @property
    def replicating(self) -> bool:
        return self.state in READY_REPLICATION


class CachedResource(_Frozen):
    arn: str
    resource_id: str
    account: str
    region: str
    resource_type: str = EC2_INSTANCE
    dr_region: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    private_ip: str | None = None
    state: str | None = None
    platform: str | None = None
    boot_mode: str | None = None
    architecture: str | None = None
    twin: TwinFacts | None = None
    # Live DR-region instances with this Name in the scope (more than one: ambiguous twin).
    twin_candidates: int = 0
    replication: ReplicationFacts | None = None

    @property
    def name(self) -> str:
        return self.tags.get(T.NAME) or self.resource_id

    @property
    def uses_drs(self) -> bool:
        """An EC2 instance that DRS recovers (replication, twin and IP facts apply to it): not
        a SQL AG replica, and not a resource of another type."""
        return self.resource_type == EC2_INSTANCE and self.tags.get(T.STRATEGY) not in NOT_DRS

    def discovered(self) -> DiscoveredResource:
        return DiscoveredResource(
            arn=self.arn,
            resource_id=self.resource_id,
            account=self.account,
            region=self.region,
            tags=dict(self.tags),
            private_ip=self.private_ip,
            state=self.state,
            resource_type=self.resource_type,
        )


class ScopeSnapshot(_Frozen):
    """The cached DR inventory of one customer + environment."""

    format: int = SNAPSHOT_FORMAT
    customer: str
    environment: str
    account: str
    regions: dict[str, str]
    captured_at: AwareDatetime
    version: str = ""
    source: PlanSource
    resources: list[CachedResource] = Field(default_factory=list)
    # DRS source servers of this scope whose instance carries no usable DR tags.
    untagged_replicating: list[ReplicationFacts] = Field(default_factory=list)
    # Resources the inventory returned for the query that belong to another scope (dropped).
    dropped_out_of_scope: int = 0
    notes: list[str] = Field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return self.customer, self.environment

    @property
    def replicating_count(self) -> int:
        """What DRS says this scope has: tagged resources it replicates plus untagged ones."""
        return sum(1 for r in self.resources if r.replication is not None) + len(
            self.untagged_replicating
        )

    def age_seconds(self, now: datetime) -> int:
        return max(0, int((now - self.captured_at).total_seconds()))


class CustomerInventory(_Frozen):
    """One collection of a customer: a snapshot per environment collected, and the DRS source
    servers no environment can claim (their instance has no `Environment` tag of the customer)."""

    customer: str
    snapshots: list[ScopeSnapshot]
    unattributed: list[ReplicationFacts] = Field(default_factory=list)


def _name_key(tags: Mapping[str, str]) -> tuple[str, str, str] | None:
    name = tags.get(T.NAME)
    if not name:
        return None
    return tags.get(T.CUSTOMER, ""), tags.get(T.ENVIRONMENT, ""), name


def _replication(
    server: SourceServerRecord, tags: Mapping[str, str] | None = None
) -> ReplicationFacts:
    chosen = dict(tags if tags is not None else server.tags)
    return ReplicationFacts(
        source_server_id=server.source_server_id,
        instance_id=server.instance_id,
        region=server.origin_region,
        state=server.replication_state,
        lag_seconds=server.lag_seconds,
        os=server.os,
        primary_ip=server.primary_ip,
        name=chosen.get(T.NAME),
        tags=chosen,
    )


def assemble(
    entry: CustomerEntry,
    discovered: Mapping[str, tuple[Sequence[DiscoveredResource], PlanSource, Sequence[str]]],
    primary: Mapping[str, InstanceRecord],
    dr_instances: Iterable[InstanceRecord],
    source_servers: Iterable[SourceServerRecord],
    captured_at: datetime,
) -> CustomerInventory:
    """Join what each API reported into one snapshot per environment of `discovered`.

    `discovered`: environment -> (the DR-tagged resources found for it, their source, notes);
    `primary`: primary-region instances by id (the discovered ones and the instances of the
    source servers); `dr_instances`: the customer's instances in its DR regions (twin
    candidates); `source_servers`: every DRS source server of the customer's account.
    """
    customer = entry.name
    twins: dict[tuple[str, str, str], list[InstanceRecord]] = {}
    for instance in dr_instances:
        key = _name_key(instance.tags)
        # A twin belongs to the customer (tag re-checked) and can still be launched into.
        if key is None or key[0] != customer or instance.state not in LIVE_STATES:
            continue
        twins.setdefault(key, []).append(instance)
    servers = list(source_servers)
    by_instance = {s.instance_id: s for s in servers if s.instance_id}
    tagged_ids = {
        r.resource_id
        for found in discovered.values()
        for r in found[0]
        if r.resource_type == EC2_INSTANCE
    }

    snapshots: list[ScopeSnapshot] = []
    for environment, (found, source, notes) in discovered.items():
        resources: list[CachedResource] = []
        dropped = 0
        seen: set[str] = set()
        for item in found:
            if (
                item.tags.get(T.CUSTOMER) != customer
                or item.tags.get(T.ENVIRONMENT) != environment
                or item.account != entry.account
            ):
                dropped += 1
                continue
            if item.arn in seen:
                continue
            seen.add(item.arn)
            is_instance = item.resource_type == EC2_INSTANCE
            facts = primary.get(item.resource_id) if is_instance else None
            dr_region = entry.regions.get(item.region)
            # Twins are DRS's launch targets: only a DRS-recovered instance has one.
            drs = is_instance and item.tags.get(T.STRATEGY) not in NOT_DRS
            candidates = (
                twins.get((customer, environment, item.tags.get(T.NAME, "")), []) if drs else []
            )
            in_region = [t for t in candidates if t.region == dr_region]
            twin = in_region[0] if len(in_region) == 1 else None
            server = by_instance.get(item.resource_id) if is_instance else None
            resources.append(
                CachedResource(
                    arn=item.arn,
                    resource_id=item.resource_id,
                    account=item.account,
                    region=item.region,
                    resource_type=item.resource_type,
                    dr_region=dr_region,
                    tags=dict(item.tags),
                    private_ip=(facts.private_ip if facts else None) or item.private_ip,
                    state=(facts.state if facts else None) or item.state,
                    platform=facts.platform if facts else None,
                    boot_mode=facts.boot_mode if facts else None,
                    architecture=facts.architecture if facts else None,
                    twin=_twin(twin) if twin else None,
                    twin_candidates=len(in_region),
                    replication=_replication(server) if server else None,
                )
            )
        untagged = [
            _replication(server, tags)
            for server in servers
            if server.instance_id not in tagged_ids
            and (tags := _server_tags(server, primary)).get(T.CUSTOMER) == customer
            and tags.get(T.ENVIRONMENT) == environment
        ]
        snapshots.append(
            ScopeSnapshot(
                customer=customer,
                environment=environment,
                account=entry.account,
                regions=dict(entry.regions),
                captured_at=captured_at,
                source=source,
                resources=sorted(resources, key=lambda r: (r.name, r.resource_id)),
                untagged_replicating=sorted(untagged, key=lambda r: r.source_server_id),
                dropped_out_of_scope=dropped,
                notes=list(notes),
            )
        )
    environments = {e.name for e in entry.environments}
    unattributed = [
        _replication(server, tags)
        for server in servers
        if server.instance_id not in tagged_ids
        and (
            (tags := _server_tags(server, primary)).get(T.CUSTOMER) != customer
            or tags.get(T.ENVIRONMENT) not in environments
        )
    ]
    return CustomerInventory(customer=customer, snapshots=snapshots, unattributed=unattributed)


def _server_tags(
    server: SourceServerRecord, primary: Mapping[str, InstanceRecord]
) -> dict[str, str]:
    """The tags of a source server's instance when EC2 answered for it, else the server's own."""
    instance = primary.get(server.instance_id or "")
    return dict(instance.tags) if instance is not None else dict(server.tags)


def _twin(instance: InstanceRecord) -> TwinFacts:
    return TwinFacts(
        instance_id=instance.instance_id,
        private_ip=instance.private_ip,
        state=instance.state,
        platform=instance.platform,
        boot_mode=instance.boot_mode,
        architecture=instance.architecture,
        launch_target=instance.tags.get(T.DRS_LAUNCH_INTO) == T.DRS_LAUNCH_INTO_VALUE,
    )


# --- packing --------------------------------------------------------------------------------------


def pack(snapshot: ScopeSnapshot) -> tuple[bytes, int]:
    """(compressed bytes, raw JSON size) of a snapshot."""
    raw = snapshot.model_dump_json(exclude_defaults=True).encode()
    return zlib.compress(raw, COMPRESSION_LEVEL), len(raw)


def unpack(data: bytes) -> ScopeSnapshot:
    return ScopeSnapshot.model_validate_json(zlib.decompress(data))


def chunked(data: bytes, size: int = CHUNK_BYTES) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


# --- versions, checks and age --------------------------------------------------------------------


def version_id(at: datetime) -> str:
    """Sortable version id from the refresh time (UTC, to the millisecond)."""
    return at.strftime("%Y%m%dT%H%M%S") + f".{at.microsecond // 1000:03d}Z"


class ScopeSummary(_Frozen):
    """One scope in a version: what was stored for it, or why it was not refreshed."""

    customer: str
    environment: str
    refreshed: bool
    # The version and capture time of the snapshot that is current for the scope after this
    # refresh (an older one when this refresh failed for it; None when there is none at all).
    version: str | None = None
    captured_at: AwareDatetime | None = None
    resources: int = 0
    replicating: int = 0
    stored_bytes: int = 0
    raw_bytes: int = 0
    source: PlanSource | None = None
    error: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.customer, self.environment


class CheckFinding(_Frozen):
    code: str
    severity: Severity
    customer: str = PLAN_WIDE
    environment: str = PLAN_WIDE
    message: str


class VersionManifest(_Frozen):
    version: str
    captured_at: AwareDatetime
    duration_ms: int = 0
    requested_by: str | None = None
    scopes: list[ScopeSummary]
    findings: list[CheckFinding] = Field(default_factory=list)

    @property
    def stored_bytes(self) -> int:
        return sum(s.stored_bytes for s in self.scopes if s.refreshed)

    @property
    def raw_bytes(self) -> int:
        return sum(s.raw_bytes for s in self.scopes if s.refreshed)

    @property
    def resources(self) -> int:
        return sum(s.resources for s in self.scopes)

    @property
    def outcome(self) -> RefreshOutcome:
        refreshed = [s.refreshed for s in self.scopes]
        if refreshed and all(refreshed):
            return "complete"
        return "partial" if any(refreshed) else "failed"


RefreshOutcome = Literal["complete", "partial", "failed"]

# Check codes.
SCOPE_MISSING = "SCOPE_MISSING"
SCOPE_NOT_REFRESHED = "SCOPE_NOT_REFRESHED"
COUNT_MISMATCH = "COUNT_MISMATCH"
RESOURCE_INCOMPLETE = "RESOURCE_INCOMPLETE"
SUDDEN_DROP = "SUDDEN_DROP"
SCOPE_REMOVED = "SCOPE_REMOVED"


def check_refresh(
    scopes: Sequence[ScopeSummary],
    snapshots: Mapping[tuple[str, str], ScopeSnapshot],
    previous: VersionManifest | None,
    drop_ratio: float,
) -> list[CheckFinding]:
    """Completeness (every registered scope cached, counts as DRS expects them, records
    complete) and consistency against the previous version (sudden drops, removed scopes)."""
    findings: list[CheckFinding] = []
    for scope in scopes:
        where = {"customer": scope.customer, "environment": scope.environment}
        if not scope.refreshed:
            if scope.version is None:
                findings.append(
                    CheckFinding(
                        code=SCOPE_MISSING,
                        severity=Severity.CRITICAL,
                        message=f"never cached: {scope.error}",
                        **where,
                    )
                )
            else:
                findings.append(
                    CheckFinding(
                        code=SCOPE_NOT_REFRESHED,
                        severity=Severity.WARNING,
                        message=f"kept version {scope.version}: {scope.error}",
                        **where,
                    )
                )
            continue
        snapshot = snapshots[scope.key]
        expected = snapshot.replicating_count
        # What DRS should replicate: the DRS-recovered instances (and any other it does).
        drs_resources = [r for r in snapshot.resources if r.uses_drs or r.replication]
        if expected != len(drs_resources):
            findings.append(
                CheckFinding(
                    code=COUNT_MISMATCH,
                    severity=Severity.WARNING,
                    message=f"{len(drs_resources)} DR-tagged instances for DRS cached, DRS "
                    f"replicates {expected} servers of the scope",
                    **where,
                )
            )
        no_ip = [
            r.name
            for r in snapshot.resources
            if r.resource_type == EC2_INSTANCE and not r.private_ip
        ]
        if no_ip:
            findings.append(
                CheckFinding(
                    code=RESOURCE_INCOMPLETE,
                    severity=Severity.WARNING,
                    message=f"{len(no_ip)} resource(s) without a primary IP: "
                    + ", ".join(sorted(no_ip)[:10]),
                    **where,
                )
            )
    if previous is not None:
        before = {s.key: s for s in previous.scopes if s.version is not None}
        now = {s.key: s for s in scopes}
        for key, old in sorted(before.items()):
            new = now.get(key)
            where = {"customer": key[0], "environment": key[1]}
            if new is None:
                findings.append(
                    CheckFinding(
                        code=SCOPE_REMOVED,
                        severity=Severity.INFO,
                        message=f"no longer registered (had {old.resources} resources)",
                        **where,
                    )
                )
                continue
            if not new.refreshed or old.resources == 0:
                continue
            lost = old.resources - new.resources
            if lost > 0 and lost / old.resources > drop_ratio:
                findings.append(
                    CheckFinding(
                        code=SUDDEN_DROP,
                        severity=Severity.WARNING,
                        message=f"{old.resources} -> {new.resources} resources since version "
                        f"{previous.version} (more than {drop_ratio:.0%} gone)",
                        **where,
                    )
                )
    return sorted(
        findings,
        key=lambda f: (SEVERITY_RANK[f.severity], f.customer, f.environment, f.code),
    )


class CacheStatus(_Frozen):
    """The refresh bookkeeping (one item): last attempt, last success, and the refresh lease."""

    last_attempt_at: AwareDatetime | None = None
    last_success_at: AwareDatetime | None = None
    last_version: str | None = None
    last_outcome: RefreshOutcome | None = None
    last_error: str | None = None
    last_request_id: str | None = None


def age_severity(age_seconds: int | None, warning_after: int, critical_after: int) -> Severity:
    """Age check: warning past `warning_after` seconds, critical past `critical_after` (and
    when there is no snapshot at all)."""
    if age_seconds is None or age_seconds > critical_after:
        return Severity.CRITICAL
    if age_seconds > warning_after:
        return Severity.WARNING
    return Severity.INFO


def cache_plan_notes(
    snapshot: ScopeSnapshot,
    now: datetime,
    reason: str,
    warning_after: int,
    critical_after: int,
) -> tuple[list[DiscoveredResource], list[PlanWarning], int]:
    """The inputs of a plan made from the cache: the resources, the plan-wide notes (where the
    plan came from and why; the age warning) and the cache age in seconds."""
    age = snapshot.age_seconds(now)
    minutes = age / 60
    notes = [
        PlanWarning(
            code=PLANNED_FROM_CACHE,
            resource_id=PLAN_WIDE,
            message=f"planned from the DR-region inventory cache (version "
            f"{snapshot.version or '?'}, captured {snapshot.captured_at:%Y-%m-%d %H:%M:%S}Z, "
            f"{minutes:.0f} min old): {reason}",
        )
    ]
    severity = age_severity(age, warning_after, critical_after)
    if severity is not Severity.INFO:
        code = CACHE_AGE_CRITICAL if severity is Severity.CRITICAL else CACHE_AGE_WARNING
        limit = critical_after if severity is Severity.CRITICAL else warning_after
        notes.append(
            PlanWarning(
                code=code,
                resource_id=PLAN_WIDE,
                message=f"the inventory cache is {minutes:.0f} min old (over {limit // 60} min): "
                "resources added, removed or re-tagged since then are not in this plan",
            )
        )
    return [r.discovered() for r in snapshot.resources], notes, age


def expires_at(at: datetime, hours: int) -> int:
    """DynamoDB TTL (epoch seconds) `hours` after `at`."""
    return int((at + timedelta(hours=hours)).timestamp())
