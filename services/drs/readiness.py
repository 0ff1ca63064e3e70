"""Readiness rules: may this server be launched now, and how? Pure functions over what DRS and
EC2 report; the same rules serve a wave's part (a failed rule is the `ResourceRecoveryFailed`
code) and `drctl plan` / `drctl failback` (the same codes, before anything starts).

| code | when (`--force` bypasses only the two marked *) |
|---|---|
| `NO_SOURCE_SERVER` | no DRS source server replicates the instance |
| `SCOPE_MISMATCH` | the source server or target is tagged for another customer/environment |
| `ALREADY_FAILED_OVER` | replication is reversed: the server runs in the DR region now |
| `REPLICATION_NOT_READY` | no snapshot yet (INITIATING, INITIAL_SYNC); or *STALLED, DISCONNECTED, |
| | STOPPED, PAUSED (then `--force` launches the last snapshot) |
| `LAG_OVER_RPO` | *`lagDuration` over the resource's `dr:rpo-target` (drills: a warning) |
| `JOB_IN_PROGRESS` | another DRS job is launching the server |
| `AMBIGUOUS_TWIN` | two DR instances carry the Name in the same customer + environment |
| `TWIN_NOT_LAUNCH_TARGET` | the twin lacks `AWSDRS=AllowLaunchingIntoThisInstance` |
| `PRIMARY_IP_UNKNOWN` | the primary IP is unknown: the last octet cannot be checked |
| `TWIN_IP_MISMATCH` | the twin's private IP does not keep the primary's last octet |
| `TWIN_OS_MISMATCH` | the twin runs another OS family (Windows / Linux) |
| `TWIN_ARCHITECTURE_MISMATCH` | the twin has another architecture |
| `TWIN_BOOT_MODE_MISMATCH` | the twin boots another way (legacy BIOS / UEFI) |
| `NO_BUBBLE_NETWORK` | drills: no bubble VPC `dr-bubble-<customer>-<environment>` |
| `BUBBLE_NOT_ISOLATED` | drills: the bubble VPC routes out (gateway, NAT, peering, TGW) |
| `NOT_FAILED_OVER` | failback: the server never ran in the DR region |
| `REVERSE_REPLICATION_NOT_STARTED` | failback: replication back was never started |
| `REVERSE_REPLICATION_NOT_CONTINUOUS` | failback: reverse replication is not CONTINUOUS yet |
| `FAILBACK_TARGET_MISSING` | failback: the original primary instance is gone |
| `FAILBACK_TARGET_IP_MISMATCH` | failback: the original instance lost the primary's last octet |

No twin is not a failure: a standard launch, reported with a warning (the IP is not kept).
`--force` never bypasses a tenant, twin, network or failback rule: only data freshness.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from drcore import tags as T

# Verdict codes.
NO_SOURCE_SERVER = "NO_SOURCE_SERVER"
SCOPE_MISMATCH = "SCOPE_MISMATCH"
ALREADY_FAILED_OVER = "ALREADY_FAILED_OVER"
REPLICATION_NOT_READY = "REPLICATION_NOT_READY"
LAG_OVER_RPO = "LAG_OVER_RPO"
JOB_IN_PROGRESS = "JOB_IN_PROGRESS"
AMBIGUOUS_TWIN = "AMBIGUOUS_TWIN"
TWIN_NOT_LAUNCH_TARGET = "TWIN_NOT_LAUNCH_TARGET"
PRIMARY_IP_UNKNOWN = "PRIMARY_IP_UNKNOWN"
TWIN_IP_MISMATCH = "TWIN_IP_MISMATCH"
TWIN_OS_MISMATCH = "TWIN_OS_MISMATCH"
TWIN_ARCHITECTURE_MISMATCH = "TWIN_ARCHITECTURE_MISMATCH"
TWIN_BOOT_MODE_MISMATCH = "TWIN_BOOT_MODE_MISMATCH"
NO_BUBBLE_NETWORK = "NO_BUBBLE_NETWORK"
BUBBLE_NOT_ISOLATED = "BUBBLE_NOT_ISOLATED"
NOT_FAILED_OVER = "NOT_FAILED_OVER"
REVERSE_REPLICATION_NOT_STARTED = "REVERSE_REPLICATION_NOT_STARTED"
REVERSE_REPLICATION_NOT_CONTINUOUS = "REVERSE_REPLICATION_NOT_CONTINUOUS"
FAILBACK_TARGET_MISSING = "FAILBACK_TARGET_MISSING"
FAILBACK_TARGET_IP_MISMATCH = "FAILBACK_TARGET_IP_MISMATCH"

CONTINUOUS = "CONTINUOUS"
# Launchable from the latest snapshot while replication goes on.
HEALTHY_STATES = frozenset({CONTINUOUS, "BACKLOG", "CREATING_SNAPSHOT", "RESCAN"})
# No snapshot exists yet: nothing can be launched, whatever the operator says.
NO_SNAPSHOT_STATES = frozenset({"INITIATING", "INITIAL_SYNC"})
# Replication broke (e.g. the primary region is down): the last snapshot launches with --force.
DEGRADED_STATES = frozenset({"STALLED", "DISCONNECTED", "STOPPED", "PAUSED"})
ACTIVE_LAUNCH = frozenset({"PENDING", "IN_PROGRESS"})
LEGACY_BIOS = "legacy-bios"
UEFI = "uefi"
UEFI_PREFERRED = "uefi-preferred"  # either works


@dataclass(frozen=True)
class Server:
    """The facts of a DRS source server the rules read."""

    source_server_id: str
    aws_instance_id: str | None
    tags: Mapping[str, str] = field(default_factory=dict)
    replication_state: str | None = None
    lag_seconds: float | None = None
    primary_ip: str | None = None
    os: str | None = None
    architecture: str | None = None
    reversed_arn: str | None = None
    recovery_instance_id: str | None = None
    last_launch_status: str | None = None
    last_launch_job: str | None = None
    replication_direction: str | None = None
    arn: str | None = None
    last_launch_result: str | None = None
    origin_region: str | None = None


@dataclass(frozen=True)
class Machine:
    """The facts of an EC2 instance the rules read (a twin, a primary, a failback target)."""

    instance_id: str
    tags: Mapping[str, str] = field(default_factory=dict)
    private_ip: str | None = None
    state: str | None = None
    platform: str | None = None  # "windows" | "linux"
    architecture: str | None = None
    boot_mode: str | None = None
    vpc_id: str | None = None
    subnet_id: str | None = None
    launched_at: datetime | None = None


@dataclass(frozen=True)
class Subnet:
    subnet_id: str
    cidr: str


@dataclass(frozen=True)
class Bubble:
    """The isolated bubble-test VPC of an environment (or why there is none usable)."""

    vpc_id: str | None
    subnets: tuple[Subnet, ...] = ()
    security_groups: tuple[str, ...] = ()
    problem: str | None = None  # NO_BUBBLE_NETWORK / BUBBLE_NOT_ISOLATED
    reason: str = ""

    def placement(self, primary_ip: str | None) -> tuple[Subnet, bool]:
        """The subnet for a server and whether it keeps its IP there (a subnet with the
        production CIDR mirrored holds the primary IP; otherwise EC2 assigns one)."""
        if primary_ip:
            address = ipaddress.IPv4Address(primary_ip)
            for subnet in self.subnets:
                if address in ipaddress.IPv4Network(subnet.cidr):
                    return subnet, True
        return self.subnets[0], False


@dataclass(frozen=True)
class Verdict:
    """Go (`code` None) or the first rule that stops the server; plus what to record."""

    code: str | None = None
    message: str = ""
    retryable: bool = False
    warnings: tuple[str, ...] = ()
    forced: bool = False
    rpo_exceeded: bool | None = None
    lag_seconds: int | None = None
    target: str | None = None  # the instance to launch into (twin, or original on failback)
    boot_mode: str | None = None

    @property
    def ok(self) -> bool:
        return self.code is None


def stop(code: str, message: str, retryable: bool = False) -> Verdict:
    return Verdict(code=code, message=message, retryable=retryable)


def last_octet(ip: str | None) -> str | None:
    if not ip or "." not in ip:
        return None
    return ip.rsplit(".", 1)[1]


def platform_of(text: str | None) -> str | None:
    """ "windows" or "linux" from DRS's OS string or EC2's Platform/PlatformDetails."""
    if not text:
        return None
    return "windows" if "windows" in text.lower() else "linux"


def _arch(value: str | None) -> str | None:
    if not value:
        return None
    lowered = value.lower()
    return {"amd64": "x86_64", "x64": "x86_64", "aarch64": "arm64"}.get(lowered, lowered)


def in_scope(tags: Mapping[str, str], customer: str, environment: str) -> bool:
    return tags.get(T.CUSTOMER) == customer and tags.get(T.ENVIRONMENT) == environment


def scope_problem(
    what: str, tags: Mapping[str, str], customer: str, environment: str
) -> Verdict | None:
    if in_scope(tags, customer, environment):
        return None
    return stop(
        SCOPE_MISMATCH,
        f"{what} is tagged {T.CUSTOMER}={tags.get(T.CUSTOMER)!r} "
        f"{T.ENVIRONMENT}={tags.get(T.ENVIRONMENT)!r}, not {customer}/{environment}",
    )


def replication(server: Server, rpo_minutes: int, *, force: bool, drill: bool = False) -> Verdict:
    """Replication state and lag of a server about to be launched from the DR region."""
    state = server.replication_state or "UNKNOWN"
    sid = server.source_server_id
    if server.reversed_arn and state not in HEALTHY_STATES:
        return stop(
            ALREADY_FAILED_OVER,
            f"replication of {sid} is reversed ({state}): the server runs in the DR region; "
            "fail back first",
        )
    if state in NO_SNAPSHOT_STATES:
        return stop(REPLICATION_NOT_READY, f"{sid} has no snapshot yet ({state})", True)
    forced = False
    warnings: list[str] = []
    if state not in HEALTHY_STATES:
        if not force or state not in DEGRADED_STATES:
            hint = " (--force launches the last snapshot)" if state in DEGRADED_STATES else ""
            return stop(REPLICATION_NOT_READY, f"replication of {sid} is {state}{hint}", True)
        forced = True
        warnings.append(f"replication is {state}: launched from the last snapshot (--force)")
    lag = server.lag_seconds
    exceeded = None if lag is None else lag > rpo_minutes * 60
    if exceeded:
        text = f"lag {round(lag or 0)} s is over the RPO of {rpo_minutes} min"
        if drill:
            warnings.append(text)
        elif not force:
            return stop(LAG_OVER_RPO, f"{sid}: {text} (--force accepts the data loss)", True)
        else:
            forced = True
            warnings.append(f"{text}: accepted with --force")
    return Verdict(
        warnings=tuple(warnings),
        forced=forced,
        rpo_exceeded=exceeded,
        lag_seconds=None if lag is None else round(lag),
    )


def job_in_progress(server: Server, own_jobs: frozenset[str] = frozenset()) -> Verdict | None:
    if server.last_launch_status in ACTIVE_LAUNCH and server.last_launch_job not in own_jobs:
        return stop(
            JOB_IN_PROGRESS,
            f"{server.source_server_id} is in DRS job {server.last_launch_job} "
            f"({server.last_launch_status})",
            True,
        )
    return None


def twin(
    server: Server,
    primary_ip: str | None,
    twins: Sequence[Machine],
    primary: Machine | None,
) -> Verdict:
    """The twin to launch into (None target: standard launch, with a warning)."""
    if not twins:
        return Verdict(warnings=("no DR twin: standard launch, the private IP is not preserved",))
    if len(twins) > 1:
        ids = ", ".join(sorted(t.instance_id for t in twins))
        return stop(AMBIGUOUS_TWIN, f"{len(twins)} DR instances carry the server's Name: {ids}")
    chosen = twins[0]
    tid = chosen.instance_id
    if chosen.tags.get(T.DRS_LAUNCH_INTO) != T.DRS_LAUNCH_INTO_VALUE:
        return stop(
            TWIN_NOT_LAUNCH_TARGET,
            f"twin {tid} lacks tag {T.DRS_LAUNCH_INTO}={T.DRS_LAUNCH_INTO_VALUE}",
        )
    if last_octet(primary_ip) is None:
        return stop(PRIMARY_IP_UNKNOWN, "the primary IP is unknown")
    if last_octet(chosen.private_ip) != last_octet(primary_ip):
        return stop(
            TWIN_IP_MISMATCH,
            f"twin {tid} has IP {chosen.private_ip}, primary has {primary_ip}: "
            "the last octet must be the same",
        )
    source_os = platform_of(server.os) or (primary.platform if primary else None)
    if source_os and chosen.platform and source_os != chosen.platform:
        return stop(TWIN_OS_MISMATCH, f"twin {tid} runs {chosen.platform}, the server {source_os}")
    source_arch = _arch(server.architecture) or _arch(primary.architecture if primary else None)
    twin_arch = _arch(chosen.architecture)
    if source_arch and twin_arch and source_arch != twin_arch:
        return stop(
            TWIN_ARCHITECTURE_MISMATCH, f"twin {tid} is {twin_arch}, the server {source_arch}"
        )
    boot = "unverified"
    source_boot = primary.boot_mode if primary else None
    if source_boot and chosen.boot_mode:
        if UEFI_PREFERRED not in (source_boot, chosen.boot_mode) and (
            source_boot != chosen.boot_mode
        ):
            return stop(
                TWIN_BOOT_MODE_MISMATCH,
                f"twin {tid} boots {chosen.boot_mode}, the server {source_boot}",
            )
        boot = "verified"
    return Verdict(target=tid, boot_mode=boot)


def failback(
    customer: str,
    environment: str,
    dr_server: Server | None,
    reversed_server: Server | None,
    target: Machine | None,
    primary_ip: str | None,
    resource_id: str,
) -> Verdict:
    """May the server go back into its original primary instance now?"""
    if dr_server is None:
        return stop(NO_SOURCE_SERVER, f"no DRS source server replicates {resource_id}")
    problem = scope_problem(
        f"source server {dr_server.source_server_id}", dr_server.tags, customer, environment
    )
    if problem:
        return problem
    if not dr_server.recovery_instance_id:
        return stop(NOT_FAILED_OVER, f"{resource_id} was never recovered in the DR region")
    if not dr_server.reversed_arn or reversed_server is None:
        return stop(
            REVERSE_REPLICATION_NOT_STARTED,
            f"replication of recovery instance {dr_server.recovery_instance_id} back to the "
            "primary region was never started (the failover ran with --no-reprotect?)",
        )
    problem = scope_problem(
        f"reversed source server {reversed_server.source_server_id}",
        reversed_server.tags,
        customer,
        environment,
    )
    if problem:
        return problem
    if reversed_server.replication_state != CONTINUOUS:
        return stop(
            REVERSE_REPLICATION_NOT_CONTINUOUS,
            f"reverse replication of {reversed_server.source_server_id} is "
            f"{reversed_server.replication_state}, not {CONTINUOUS}",
            True,
        )
    busy = job_in_progress(reversed_server)
    if busy:
        return busy
    if target is None or target.state in ("terminated", "shutting-down"):
        return stop(FAILBACK_TARGET_MISSING, f"the original instance {resource_id} is gone")
    problem = scope_problem(f"instance {resource_id}", target.tags, customer, environment)
    if problem:
        return problem
    if last_octet(primary_ip) is not None and last_octet(target.private_ip) != last_octet(
        primary_ip
    ):
        return stop(
            FAILBACK_TARGET_IP_MISMATCH,
            f"{resource_id} has IP {target.private_ip}; the primary IP was {primary_ip}",
        )
    return Verdict(target=target.instance_id, lag_seconds=_round(reversed_server.lag_seconds))


def _round(value: float | None) -> int | None:
    return None if value is None else round(value)
