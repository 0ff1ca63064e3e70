"""Readiness: would DR work for a scope if its primary region failed now? Pure logic.

Evaluates the facts an inventory snapshot holds (the same ones the DR-region cache stores) and
returns machine-readable findings. Nothing is started and nothing is changed.

The finding codes and their severities are listed in `services/readiness/README.md`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from drcore import tags as T
from services.discovery.domain import PLAN_WIDE
from services.discovery.inventory import (
    CACHE_AGE_CRITICAL,
    CACHE_AGE_WARNING,
    SEVERITY_RANK,
    CachedResource,
    ReplicationFacts,
    ScopeSnapshot,
    Severity,
    age_severity,
    platform_of,
)

NOT_REPLICATING = "NOT_REPLICATING"
LAG_OVER_RPO = "LAG_OVER_RPO"
MISSING_TWIN = "MISSING_TWIN"
AMBIGUOUS_TWIN = "AMBIGUOUS_TWIN"
TWIN_NOT_LAUNCH_TARGET = "TWIN_NOT_LAUNCH_TARGET"
TWIN_IP_MISMATCH = "TWIN_IP_MISMATCH"
TWIN_OS_MISMATCH = "TWIN_OS_MISMATCH"
TWIN_BOOT_MODE_MISMATCH = "TWIN_BOOT_MODE_MISMATCH"
TWIN_ARCHITECTURE_MISMATCH = "TWIN_ARCHITECTURE_MISMATCH"
PRIMARY_IP_UNKNOWN = "PRIMARY_IP_UNKNOWN"
MISSING_NAME = "MISSING_NAME"
REPLICATING_NOT_TAGGED = "REPLICATING_NOT_TAGGED"
WAVE_GAP = "WAVE_GAP"
CACHE_MISSING = "CACHE_MISSING"
INVENTORY_UNAVAILABLE = "INVENTORY_UNAVAILABLE"
# The environment of findings about servers no environment of the customer claims.
NO_ENVIRONMENT = "-"
# Boot modes that start either way.
_ANY_BOOT = "uefi-preferred"


class Finding(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    severity: Severity
    customer: str
    environment: str
    resource_id: str = PLAN_WIDE
    name: str = ""
    message: str


class ScopeReadiness(BaseModel):
    model_config = ConfigDict(frozen=True)

    customer: str
    environment: str
    resources: int = 0
    replicating: int = 0
    waves: list[int] = Field(default_factory=list)
    captured_at: AwareDatetime | None = None
    critical: int = 0
    warnings: int = 0


class ReadinessReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    generated_at: AwareDatetime
    source: str
    scopes: list[ScopeReadiness]
    findings: list[Finding]

    @property
    def critical(self) -> int:
        return sum(1 for f in self.findings if f.severity is Severity.CRITICAL)

    @property
    def warnings(self) -> int:
        return sum(1 for f in self.findings if f.severity is Severity.WARNING)

    @property
    def ready(self) -> bool:
        return self.critical == 0


def _finding(
    snapshot: ScopeSnapshot,
    code: str,
    severity: Severity,
    message: str,
    resource: CachedResource | ReplicationFacts | None = None,
) -> Finding:
    if isinstance(resource, CachedResource):
        ids = {"resource_id": resource.resource_id, "name": resource.name}
    elif isinstance(resource, ReplicationFacts):
        ids = {
            "resource_id": resource.instance_id or resource.source_server_id,
            "name": resource.name or "",
        }
    else:
        ids = {}
    return Finding(
        code=code,
        severity=severity,
        customer=snapshot.customer,
        environment=snapshot.environment,
        message=message,
        **ids,
    )


def evaluate(snapshot: ScopeSnapshot) -> list[Finding]:
    """Every readiness finding of one scope's snapshot."""
    findings: list[Finding] = []
    waves: set[int] = set()
    for resource in snapshot.resources:
        findings += _resource(snapshot, resource, waves)
    findings += [
        _finding(
            snapshot,
            REPLICATING_NOT_TAGGED,
            Severity.WARNING,
            f"DRS replicates it (source server {server.source_server_id}, {server.state}) but "
            f"its instance has no usable DR tags ({T.ENABLED}={server.tags.get(T.ENABLED)!r}): "
            "it is in no plan",
            server,
        )
        for server in snapshot.untagged_replicating
    ]
    missing = wave_gaps(waves)
    if missing:
        findings.append(
            _finding(
                snapshot,
                WAVE_GAP,
                Severity.WARNING,
                f"waves {', '.join(map(str, sorted(waves)))} skip {', '.join(map(str, missing))}",
            )
        )
    return sort_findings(findings)


def wave_gaps(waves: Iterable[int]) -> list[int]:
    """Wave numbers missing between 1 and the highest wave."""
    present = set(waves)
    return [n for n in range(1, max(present, default=0) + 1) if n not in present]


def _resource(snapshot: ScopeSnapshot, resource: CachedResource, waves: set[int]) -> list[Finding]:
    out: list[Finding] = []
    parsed = T.parse_dr_tags(dict(resource.tags))
    if isinstance(parsed, list):
        out += [
            _finding(snapshot, problem.code, Severity.CRITICAL, problem.message, resource)
            for problem in parsed
        ]
        rpo_minutes = None
    else:
        waves.add(parsed.wave)
        rpo_minutes = parsed.rpo_target_minutes
    if not resource.uses_drs:
        return out  # replication, twin and IP checks are DRS's (other types: their services)
    if T.NAME not in resource.tags:
        out.append(
            _finding(
                snapshot, MISSING_NAME, Severity.WARNING, "no Name tag: no twin can match", resource
            )
        )
    replication = resource.replication
    if replication is None:
        out.append(
            _finding(
                snapshot,
                NOT_REPLICATING,
                Severity.CRITICAL,
                "tagged for DR but no DRS source server replicates it",
                resource,
            )
        )
    elif not replication.replicating:
        out.append(
            _finding(
                snapshot,
                NOT_REPLICATING,
                Severity.CRITICAL,
                f"DRS replication is {replication.state} (source server "
                f"{replication.source_server_id}): it cannot be launched",
                resource,
            )
        )
    elif (
        rpo_minutes is not None
        and replication.lag_seconds is not None
        and replication.lag_seconds > rpo_minutes * 60
    ):
        out.append(
            _finding(
                snapshot,
                LAG_OVER_RPO,
                Severity.CRITICAL,
                f"replication lag {replication.lag_seconds / 60:.1f} min is over its RPO of "
                f"{rpo_minutes} min",
                resource,
            )
        )
    out += _twin(snapshot, resource)
    return out


def _twin(snapshot: ScopeSnapshot, resource: CachedResource) -> list[Finding]:
    if T.NAME not in resource.tags:
        return []
    if resource.twin_candidates > 1:
        return [
            _finding(
                snapshot,
                AMBIGUOUS_TWIN,
                Severity.CRITICAL,
                f"{resource.twin_candidates} instances named {resource.name!r} in "
                f"{resource.dr_region}: DRS cannot tell which one to launch into",
                resource,
            )
        ]
    twin = resource.twin
    if twin is None:
        return [
            _finding(
                snapshot,
                MISSING_TWIN,
                Severity.CRITICAL,
                f"no DR twin named {resource.name!r} in {resource.dr_region or 'its DR region'}: "
                "a standard launch cannot keep the IP's last octet",
                resource,
            )
        ]
    out: list[Finding] = []
    if not twin.launch_target:
        out.append(
            _finding(
                snapshot,
                TWIN_NOT_LAUNCH_TARGET,
                Severity.CRITICAL,
                f"twin {twin.instance_id} lacks the tag "
                f"{T.DRS_LAUNCH_INTO}={T.DRS_LAUNCH_INTO_VALUE}",
                resource,
            )
        )
    primary_ip = resource.private_ip or (resource.replication and resource.replication.primary_ip)
    if not primary_ip or not twin.private_ip:
        out.append(
            _finding(
                snapshot,
                PRIMARY_IP_UNKNOWN,
                Severity.WARNING,
                f"cannot compare last octets (primary {primary_ip or '?'}, twin "
                f"{twin.private_ip or '?'})",
                resource,
            )
        )
    elif primary_ip.rsplit(".", 1)[-1] != twin.private_ip.rsplit(".", 1)[-1]:
        out.append(
            _finding(
                snapshot,
                TWIN_IP_MISMATCH,
                Severity.CRITICAL,
                f"twin {twin.instance_id} has {twin.private_ip}, primary has {primary_ip}: the "
                "last octet must stay the same",
                resource,
            )
        )
    source_os = platform_of(resource.replication.os if resource.replication else None)
    expected_os = source_os or resource.platform
    if expected_os and twin.platform and expected_os != twin.platform:
        out.append(
            _finding(
                snapshot,
                TWIN_OS_MISMATCH,
                Severity.CRITICAL,
                f"the server runs {expected_os}"
                + (f" ({resource.replication.os})" if resource.replication else "")
                + f", twin {twin.instance_id} runs {twin.platform}",
                resource,
            )
        )
    if (
        resource.boot_mode
        and twin.boot_mode
        and resource.boot_mode != twin.boot_mode
        and _ANY_BOOT not in (resource.boot_mode, twin.boot_mode)
    ):
        out.append(
            _finding(
                snapshot,
                TWIN_BOOT_MODE_MISMATCH,
                Severity.CRITICAL,
                f"the server boots {resource.boot_mode}, twin {twin.instance_id} boots "
                f"{twin.boot_mode}",
                resource,
            )
        )
    if resource.architecture and twin.architecture and resource.architecture != twin.architecture:
        out.append(
            _finding(
                snapshot,
                TWIN_ARCHITECTURE_MISMATCH,
                Severity.CRITICAL,
                f"the server is {resource.architecture}, twin {twin.instance_id} is "
                f"{twin.architecture}",
                resource,
            )
        )
    return out


def unattributed(customer: str, servers: Sequence[ReplicationFacts]) -> list[Finding]:
    """Source servers of the customer's account that no environment claims."""
    return [
        Finding(
            code=REPLICATING_NOT_TAGGED,
            severity=Severity.WARNING,
            customer=customer,
            environment=NO_ENVIRONMENT,
            resource_id=server.instance_id or server.source_server_id,
            name=server.name or "",
            message=f"DRS replicates it (source server {server.source_server_id}) but its "
            f"instance is tagged for no environment of {customer} "
            f"({T.ENVIRONMENT}={server.tags.get(T.ENVIRONMENT)!r})",
        )
        for server in servers
    ]


def cache_findings(
    customer: str,
    environment: str,
    captured_at: datetime | None,
    now: datetime,
    warning_after: int,
    critical_after: int,
) -> list[Finding]:
    """The DR-region cache of the scope: missing, or older than the warning/critical ages."""
    if captured_at is None:
        return [
            Finding(
                code=CACHE_MISSING,
                severity=Severity.CRITICAL,
                customer=customer,
                environment=environment,
                message="the DR-region inventory cache has no snapshot of this scope: a "
                "failover during a primary-region outage could not be planned",
            )
        ]
    age = max(0, int((now - captured_at).total_seconds()))
    severity = age_severity(age, warning_after, critical_after)
    if severity is Severity.INFO:
        return []
    limit = critical_after if severity is Severity.CRITICAL else warning_after
    return [
        Finding(
            code=CACHE_AGE_CRITICAL if severity is Severity.CRITICAL else CACHE_AGE_WARNING,
            severity=severity,
            customer=customer,
            environment=environment,
            message=f"the DR-region inventory cache is {age // 60} min old (over {limit // 60} "
            "min)",
        )
    ]


def summarize(snapshot: ScopeSnapshot, findings: Sequence[Finding]) -> ScopeReadiness:
    waves = sorted(
        {
            parsed.wave
            for r in snapshot.resources
            if not isinstance(parsed := T.parse_dr_tags(dict(r.tags)), list)
        }
    )
    return ScopeReadiness(
        customer=snapshot.customer,
        environment=snapshot.environment,
        resources=len(snapshot.resources),
        replicating=snapshot.replicating_count,
        waves=waves,
        captured_at=snapshot.captured_at,
        critical=sum(1 for f in findings if f.severity is Severity.CRITICAL),
        warnings=sum(1 for f in findings if f.severity is Severity.WARNING),
    )


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(
        findings,
        key=lambda f: (
            SEVERITY_RANK[f.severity],
            f.customer,
            f.environment,
            f.code,
            f.name,
            f.resource_id,
        ),
    )
