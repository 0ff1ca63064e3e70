"""The module's tags (`dr:managed:<key>` on the resource itself), parsed and validated, and the
pure rules the recovery flows apply (scope, replication lag, DNS answers). No AWS here.

A tag with a bad value is a problem naming the tag and the value; the resource then FAILS with
`INVALID_MODULE_TAG`, never guessed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from drcore import tags as T

from .ports import RecordSet

PREFIX = "dr:managed:"
# `<zone>/<record name>`: the zone as a hosted zone id or its DNS name.
DNS_RECORD = f"{PREFIX}dns-record"
# Load balancers: the DR-region load balancer (its name) the record fails over to.
DR_LOAD_BALANCER = f"{PREFIX}dr-load-balancer"
# ElastiCache: the DR-region replication group (its id) the endpoint record switches to.
DR_REPLICATION_GROUP = f"{PREFIX}dr-replication-group"
# EFS: the DR-region file system (its id) that holds the replica. FSx for NetApp ONTAP: the
# DR-region file system (its id) whose volumes are the SnapMirror destinations.
DR_FILE_SYSTEM = f"{PREFIX}dr-file-system"
# FSx for NetApp ONTAP: the Secrets Manager secret (name or ARN, in the DR region) holding the
# DR file system's fsxadmin credentials (JSON {"username", "password"}, or the password alone).
ONTAP_SECRET = f"{PREFIX}ontap-secret"
# FSx for NetApp ONTAP, optional: the SnapMirror destinations (`svm:volume`, comma separated)
# this resource covers; without it, every relationship whose destination is the DR file system.
ONTAP_VOLUMES = f"{PREFIX}ontap-volumes"
# FSx for NetApp ONTAP: how failback may proceed. `resync` (the only value): resync the original
# relationship (primary -> DR); what was written on the DR volumes after the break is discarded.
ONTAP_FAILBACK = f"{PREFIX}ontap-failback"
ONTAP_FAILBACK_MODES = ("resync",)

ZONE_ID = re.compile(r"^[A-Z0-9]{1,32}$")  # Route 53 ids: Z…, upper case, no dot
DNS_NAME = re.compile(r"^(?=.{1,254}$)([A-Za-z0-9_*]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)+$")
LB_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,30}[A-Za-z0-9])?$")
EFS_ID = re.compile(r"^fs-[0-9a-f]{8,40}$")


class TagError(ValueError):
    """A module tag with a missing or bad value; the message names the tag and the value."""


def fqdn(name: str) -> str:
    """A DNS name as Route 53 returns it: lower case, one trailing dot."""
    return name.strip().lower().rstrip(".") + "."


@dataclass(frozen=True)
class DnsTarget:
    zone: str  # hosted zone id or zone name (fqdn)
    name: str  # record name (fqdn)

    @property
    def zone_is_id(self) -> bool:
        return ZONE_ID.match(self.zone) is not None


def dns_target(tags: Mapping[str, str], *, required: bool = True) -> DnsTarget | None:
    raw = tags.get(DNS_RECORD)
    if raw is None or not raw.strip():
        if required:
            raise TagError(f"tag {DNS_RECORD} is missing (expected <zone>/<record name>)")
        return None
    zone, sep, name = raw.strip().partition("/")
    if not sep or not zone or not name:
        raise TagError(f"{DNS_RECORD}={raw!r} is not <zone>/<record name>")
    if ZONE_ID.match(zone) is None and DNS_NAME.match(fqdn(zone)) is None:
        raise TagError(f"{DNS_RECORD}={raw!r}: {zone!r} is neither a hosted zone id nor a DNS name")
    record = fqdn(name)
    if DNS_NAME.match(record) is None:
        raise TagError(f"{DNS_RECORD}={raw!r}: {name!r} is not a DNS name")
    zone_value = zone if ZONE_ID.match(zone) else fqdn(zone)
    if not ZONE_ID.match(zone) and not (record == zone_value or record.endswith("." + zone_value)):
        raise TagError(f"{DNS_RECORD}={raw!r}: {name!r} is not inside the zone {zone!r}")
    return DnsTarget(zone=zone_value, name=record)


def dr_load_balancer(tags: Mapping[str, str]) -> str | None:
    raw = tags.get(DR_LOAD_BALANCER)
    if raw is None:
        return None
    if LB_NAME.match(raw.strip()) is None:
        raise TagError(f"{DR_LOAD_BALANCER}={raw!r} is not a load balancer name")
    return raw.strip()


CACHE_ID = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,39}$")


def dr_replication_group(tags: Mapping[str, str]) -> str | None:
    raw = tags.get(DR_REPLICATION_GROUP)
    if raw is None:
        return None
    if CACHE_ID.match(raw.strip()) is None:
        raise TagError(f"{DR_REPLICATION_GROUP}={raw!r} is not a replication group id")
    return raw.strip()


def dr_file_system(tags: Mapping[str, str]) -> str | None:
    raw = tags.get(DR_FILE_SYSTEM)
    if raw is None:
        return None
    if EFS_ID.match(raw.strip()) is None:
        raise TagError(f"{DR_FILE_SYSTEM}={raw!r} is not an EFS file system id (fs-…)")
    return raw.strip()


SECRET_ID = re.compile(r"^[A-Za-z0-9/_+=.@:-]{1,2048}$")
ONTAP_PATH = re.compile(r"^[A-Za-z0-9_.-]{1,255}:[A-Za-z0-9_.-]{1,255}$")


def fsx_dr_file_system(tags: Mapping[str, str]) -> str:
    raw = tags.get(DR_FILE_SYSTEM)
    if raw is None or not raw.strip():
        raise TagError(f"tag {DR_FILE_SYSTEM} is missing (expected the DR FSx file system id)")
    if FSX_ID.match(raw.strip()) is None:
        raise TagError(f"{DR_FILE_SYSTEM}={raw!r} is not an FSx file system id (fs-…)")
    return raw.strip()


FSX_ID = re.compile(r"^fs-[0-9a-f]{8,21}$")


def ontap_secret(tags: Mapping[str, str]) -> str:
    raw = tags.get(ONTAP_SECRET)
    if raw is None or not raw.strip():
        raise TagError(f"tag {ONTAP_SECRET} is missing (expected a Secrets Manager secret id)")
    if SECRET_ID.match(raw.strip()) is None:
        raise TagError(f"{ONTAP_SECRET}={raw!r} is not a Secrets Manager secret name or ARN")
    return raw.strip()


def ontap_volumes(tags: Mapping[str, str]) -> tuple[str, ...] | None:
    raw = tags.get(ONTAP_VOLUMES)
    if raw is None:
        return None
    paths = tuple(p.strip() for p in raw.split(",") if p.strip())
    bad = [p for p in paths if ONTAP_PATH.match(p) is None]
    if not paths or bad:
        raise TagError(
            f"{ONTAP_VOLUMES}={raw!r} is not a comma-separated list of svm:volume paths"
            + (f" ({bad[0]!r})" if bad else "")
        )
    return paths


def ontap_failback(tags: Mapping[str, str]) -> str | None:
    raw = tags.get(ONTAP_FAILBACK)
    if raw is None:
        return None
    if raw.strip() not in ONTAP_FAILBACK_MODES:
        raise TagError(f"{ONTAP_FAILBACK}={raw!r} is not one of {', '.join(ONTAP_FAILBACK_MODES)}")
    return raw.strip()


@dataclass(frozen=True)
class SnapMirrorProblem:
    code: str
    message: str


def snapmirror_problem(
    uuid: str,
    destination: str,
    state: str,
    healthy: bool,
    lag_time: str | None,
    rpo_seconds: int,
    unhealthy_reason: str = "",
) -> tuple[SnapMirrorProblem | None, int | None]:
    """Readiness of one relationship before a break: healthy, `snapmirrored`, lag <= RPO.
    Returns (problem or None, lag seconds or None)."""
    name = f"SnapMirror {destination} ({uuid})"
    if not healthy:
        why = f": {unhealthy_reason}" if unhealthy_reason else ""
        return SnapMirrorProblem("ONTAP_SNAPMIRROR_UNHEALTHY", f"{name} is not healthy{why}"), None
    if state != "snapmirrored":
        return (
            SnapMirrorProblem("ONTAP_SNAPMIRROR_STATE", f"{name} is {state!r}, not 'snapmirrored'"),
            None,
        )
    if not lag_time:
        return SnapMirrorProblem("ONTAP_NEVER_TRANSFERRED", f"{name} reports no lag_time"), None
    try:
        lag = iso_duration_seconds(lag_time)
    except ValueError as error:
        return SnapMirrorProblem("ONTAP_SNAPMIRROR_STATE", f"{name}: {error}"), None
    if lag > rpo_seconds:
        return (
            SnapMirrorProblem(
                "ONTAP_LAG_OVER_RPO",
                f"{name} lags {lag} s ({lag_time}), over the RPO of {rpo_seconds} s",
            ),
            lag,
        )
    return None, lag


DURATION = re.compile(
    r"^P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


def iso_duration_seconds(value: str) -> int:
    """An ONTAP `lag_time` (ISO 8601 duration, e.g. `PT5M12S`, `P1DT2H`) in whole seconds."""
    found = DURATION.match(value.strip()) if value else None
    if found is None or value.strip() in ("P", "PT") or value.strip().endswith("T"):
        raise ValueError(f"lag_time {value!r} is not an ISO 8601 duration (e.g. PT5M12S)")
    d, h, m, s = (found.group(k) for k in "dhms")
    return int(int(d or 0) * 86400 + int(h or 0) * 3600 + int(m or 0) * 60 + float(s or 0))


def credentials(secret: str) -> tuple[str, str]:
    """(username, password) from a secret string: JSON {"username", "password"}, or the
    password alone (user fsxadmin)."""
    text = secret.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            raise ValueError("the secret is not valid JSON") from None
        user, password = data.get("username", "fsxadmin"), data.get("password")
        if not isinstance(user, str) or not isinstance(password, str) or not password:
            raise ValueError('the secret JSON needs a string "password" (and "username")')
        return user, password
    if not text:
        raise ValueError("the secret is empty")
    return "fsxadmin", text


# --- rules -----------------------------------------------------------------------------------


def scope_problem(
    what: str, tags: Mapping[str, str], customer: str, environment: str
) -> str | None:
    """Why `what` is outside the operation's Customer + Environment (None: inside)."""
    have = (tags.get(T.CUSTOMER), tags.get(T.ENVIRONMENT))
    if have != (customer, environment):
        return (
            f"{what} is tagged Customer={have[0]!r} Environment={have[1]!r}, outside the "
            f"operation's {customer}/{environment}"
        )
    return None


def lag_seconds(last_replicated: datetime, now: datetime) -> int:
    return max(0, int((now - last_replicated).total_seconds()))


def dns_name_matches(value: str, dns_name: str) -> bool:
    """A record value names this load balancer (alias targets may carry `dualstack.`)."""
    a, b = fqdn(value).removeprefix("dualstack."), fqdn(dns_name).removeprefix("dualstack.")
    return a == b


@dataclass(frozen=True)
class FailoverPair:
    primary: RecordSet
    secondary: RecordSet


def failover_pair(records: Sequence[RecordSet]) -> FailoverPair | None:
    primary = next((r for r in records if r.failover == "PRIMARY"), None)
    secondary = next((r for r in records if r.failover == "SECONDARY"), None)
    if primary is None or secondary is None:
        return None
    return FailoverPair(primary, secondary)


def simple_record(records: Sequence[RecordSet]) -> RecordSet | None:
    """The one plain CNAME or alias record of the name (no routing policy)."""
    plain = [
        r for r in records if r.failover is None and r.set_identifier is None and r.type != "TXT"
    ]
    return plain[0] if len(plain) == 1 else None


def failover_answer(pair: FailoverPair, primary_inverted: bool, primary_disabled: bool) -> str:
    """Which record Route 53 answers with, given the primary's health check (assumed to report
    the endpoint healthy): an inverted check fails, a disabled one counts as healthy."""
    if primary_disabled:
        return "PRIMARY"
    return "SECONDARY" if primary_inverted else "PRIMARY"
