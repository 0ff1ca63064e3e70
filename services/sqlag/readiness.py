"""Readiness rules for an availability group, pure: which failover a replica's state allows, and
how much data a forced failover would lose (DESIGN §6, sqlag)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from .commands import AgStatus, DatabaseState

SYNCHRONIZED = "SYNCHRONIZED"
SYNCHRONIZING = "SYNCHRONIZING"
# A forced failover cannot bring these databases online: never onto them.
UNSAFE_STATES = frozenset({"REVERTING", "INITIALIZING"})
SYNCHRONOUS_COMMIT = "SYNCHRONOUS_COMMIT"
PLANNED = "Planned"
FORCED = "Forced"

# Reason codes of this module's results.
UNKNOWN_CUSTOMER = "UNKNOWN_CUSTOMER"
SCOPE_MISMATCH = "SCOPE_MISMATCH"
UNSUPPORTED_RESOURCE_TYPE = "UNSUPPORTED_RESOURCE_TYPE"
PRIMARY_NOT_FOUND = "PRIMARY_NOT_FOUND"
DR_REPLICA_NOT_FOUND = "DR_REPLICA_NOT_FOUND"
DR_REPLICA_AMBIGUOUS = "DR_REPLICA_AMBIGUOUS"
INSTANCE_NOT_RUNNING = "INSTANCE_NOT_RUNNING"
AG_NOT_FOUND = "AG_NOT_FOUND"
NO_DATABASES = "NO_DATABASES"
NOT_SYNCHRONIZED = "NOT_SYNCHRONIZED"
UNSAFE_SYNC_STATE = "UNSAFE_SYNC_STATE"
FAILOVER_NOT_VERIFIED = "FAILOVER_NOT_VERIFIED"
PRIMARY_REPLICA_NOT_READY = "PRIMARY_REPLICA_NOT_READY"
SYNC_NOT_RESUMED = "SYNC_NOT_RESUMED"
DNS_UPDATE_FAILED = "DNS_UPDATE_FAILED"
DNS_NOT_VERIFIED = "DNS_NOT_VERIFIED"
NO_CLONE_CONFIGURED = "NO_CLONE_CONFIGURED"
CLONE_NOT_FOUND = "CLONE_NOT_FOUND"
CLONE_NOT_ISOLATED = "CLONE_NOT_ISOLATED"
CLONE_UNHEALTHY = "CLONE_UNHEALTHY"
COMMAND_FAILED = "COMMAND_FAILED"
BAD_SCRIPT_OUTPUT = "BAD_SCRIPT_OUTPUT"


@dataclass(frozen=True)
class Decision:
    mode: str | None  # PLANNED | FORCED | None (refused)
    code: str | None = None
    message: str = ""


def _states(databases: list[DatabaseState]) -> str:
    return ", ".join(f"{d.name}={d.sync_state}" for d in databases)


def assess_failover(status: AgStatus, allow_data_loss: bool) -> Decision:
    """Planned only when the replica commits synchronously and every local database is
    SYNCHRONIZED; forced only when the operator allowed data loss, and never onto a database that
    is REVERTING or INITIALIZING."""
    local = status.local
    databases = status.local_databases
    if local is None or not status.ag_found:
        return Decision(None, AG_NOT_FOUND, f"{status.ag_name} has no replica on {status.server}")
    if not databases:
        return Decision(None, NO_DATABASES, f"{status.ag_name} has no database on {status.server}")
    synchronized = all(d.sync_state == SYNCHRONIZED for d in databases)
    if synchronized and local.availability_mode == SYNCHRONOUS_COMMIT:
        return Decision(PLANNED)
    why = (
        f"{status.server} commits asynchronously ({local.availability_mode})"
        if synchronized
        else f"not every database is SYNCHRONIZED on {status.server}: {_states(databases)}"
    )
    if not allow_data_loss:
        return Decision(
            None,
            NOT_SYNCHRONIZED,
            f"planned failover refused: {why}; a forced failover (possible data loss) needs "
            "the operator's --allow-data-loss",
        )
    unsafe = [d for d in databases if d.sync_state in UNSAFE_STATES]
    if unsafe:
        return Decision(
            None,
            UNSAFE_SYNC_STATE,
            f"forced failover refused: databases {_states(unsafe)} cannot be brought online",
        )
    return Decision(FORCED, message=why)


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def estimate_data_loss(dr: AgStatus, primary: AgStatus | None) -> float | None:
    """Seconds of commits the DR replica lacks: the largest difference, per database, between the
    primary's `last_commit_time` and the DR replica's. None when the primary is not known."""
    if primary is None:
        return None
    primary_commits = {
        d.name: parse_time(d.last_commit_time)
        for d in primary.databases
        if d.is_local and d.is_primary_replica
    }
    worst: float | None = None
    for database in dr.local_databases:
        theirs = primary_commits.get(database.name)
        ours = parse_time(database.last_commit_time)
        if theirs is None or ours is None:
            continue
        gap = max(0.0, (theirs - ours).total_seconds())
        worst = gap if worst is None else max(worst, gap)
    return worst


def oldest(values: list[str | None]) -> str | None:
    times = [t for t in (parse_time(v) for v in values) if t is not None]
    return min(times).isoformat() if times else None
