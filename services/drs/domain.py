"""DRS recovery domain: launch each wave's servers into their DR twins and report every result.

Pure logic. AWS is reached only through the ports below (`Workload` for one workload account and
DR region, `Registry`, `Results`, `Checks`, `Ledger`); `adapters.py` implements them.

A part of a wave (`WaveStarted`) is processed per (account, DR region):
  1. source servers by `identificationHints.awsInstanceID` (DescribeSourceServers has no filter
     for it);
  2. scope re-check on the source server's own tags, replication state, lag vs RPO;
  3. servers already launched for this operation, wave and attempt (job tags) are adopted, never
     launched again: a part that crashed half-way can be redone safely;
  4. DR twins by Name, looked up only inside the operation's customer and environment; the twin's
     private IP must keep the primary's last octet (checked before launching);
  5. launch-into configuration, StartRecovery in batches, one `ResourceRecoveryStarted` per
     server and a delayed job check on the service's own queue.
Results come from `reconcile_job`, called for DRS's native launch-result events and for the job
checks alike; the job's tags say which operation it belongs to, a small ledger says which servers
were already reported.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from drcore import tags as T
from drcore.registry import CustomerEntry
from events.schemas import (
    Detail,
    OperationType,
    ResourceRecovered,
    ResourceRecoveryFailed,
    ResourceRecoveryStarted,
    ResourceRef,
    Strategy,
    WaveStarted,
)
from events.schemas.models import utc_now

# --- constants ------------------------------------------------------------------------------------

JOB_CHECK_KIND = "drs-job-check"
# Tag added to every job next to drcore.tags.JOB_*: a retry-failed resume launches again.
# Replication states a failover may launch from. STALLED / DISCONNECTED / STOPPED / PAUSED /
# INITIAL_SYNC / INITIATING are not (REPLICATION_NOT_READY).
READY_STATES = frozenset({"CONTINUOUS", "BACKLOG", "CREATING_SNAPSHOT", "RESCAN"})
LAUNCHED = "LAUNCHED"
FAILED = "FAILED"
FINAL_LAUNCH_STATUSES = frozenset({LAUNCHED, FAILED})
JOB_COMPLETED = "COMPLETED"
TWIN_NAME_CHUNK = 200  # values per EC2 filter
# How far before the WaveStarted event a job of this part may have been created (clock skew).
JOB_LOOKBACK = timedelta(minutes=15)
# Job checks stop after this many (~4 h at the last backoff step): unreported servers fail.
MAX_JOB_CHECKS = 240
# A job DescribeJobs does not know yet (eventual consistency) is looked for this many times.
MAX_JOB_NOT_FOUND_CHECKS = 5
LEDGER_CACHE_JOBS = 1024
RETRYABLE_CODES = frozenset(
    {
        "ConflictException",
        "ServiceQuotaExceededException",
        "ThrottlingException",
        "InternalServerException",
        "RequestLimitExceeded",
        "EndpointError",
    }
)

# Result codes.
NO_SOURCE_SERVER = "NO_SOURCE_SERVER"
SCOPE_MISMATCH = "SCOPE_MISMATCH"
REPLICATION_NOT_READY = "REPLICATION_NOT_READY"
TWIN_IP_MISMATCH = "TWIN_IP_MISMATCH"
AMBIGUOUS_TWIN = "AMBIGUOUS_TWIN"
TWIN_NOT_LAUNCH_TARGET = "TWIN_NOT_LAUNCH_TARGET"
PRIMARY_IP_UNKNOWN = "PRIMARY_IP_UNKNOWN"
LAUNCH_CONFIGURATION_FAILED = "LAUNCH_CONFIGURATION_FAILED"
LAUNCH_FAILED = "LAUNCH_FAILED"
IP_LAST_OCTET_MISMATCH = "IP_LAST_OCTET_MISMATCH"
OPERATION_NOT_SUPPORTED = "OPERATION_NOT_SUPPORTED"
UNKNOWN_CUSTOMER = "UNKNOWN_CUSTOMER"
JOB_TIMEOUT = "JOB_TIMEOUT"

_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
_UNIT_SECONDS = {"weeks": 604800, "days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}


# --- what the ports return ------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceServer:
    source_server_id: str
    aws_instance_id: str | None
    tags: Mapping[str, str] = field(default_factory=dict)
    replication_state: str | None = None
    lag_seconds: float | None = None
    primary_ip: str | None = None
    replication_direction: str | None = None


@dataclass(frozen=True)
class Instance:
    instance_id: str
    tags: Mapping[str, str] = field(default_factory=dict)
    private_ip: str | None = None
    state: str | None = None


@dataclass(frozen=True)
class JobServer:
    source_server_id: str
    launch_status: str | None = None
    recovery_instance_id: str | None = None


@dataclass(frozen=True)
class Job:
    job_id: str
    status: str
    created_at: datetime | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    servers: tuple[JobServer, ...] = ()

    @property
    def completed(self) -> bool:
        return self.status == JOB_COMPLETED


@dataclass(frozen=True)
class RecoveryInstance:
    recovery_instance_id: str
    source_server_id: str | None
    ec2_instance_id: str | None
    job_id: str | None = None
    is_drill: bool | None = None


class LaunchContext(BaseModel):
    """What the part knew about one server when it launched it (stored with the job)."""

    model_config = ConfigDict(frozen=True)

    resource_id: str
    name: str
    twin: str | None = None
    primary_ip: str | None = None
    lag_seconds: int | None = None
    rpo_exceeded: bool | None = None


@dataclass(frozen=True)
class JobLedger:
    reported: frozenset[str] = frozenset()
    launches: Mapping[str, LaunchContext] = field(default_factory=dict)


class JobCheck(BaseModel):
    """The service's own delayed message: look at a job again."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: Literal["drs-job-check"] = "drs-job-check"
    job_id: str = Field(min_length=1)
    account: str = Field(pattern=r"^\d{12}$")
    region: str = Field(min_length=1)
    attempt: int = Field(default=0, ge=0)


class AwsError(Exception):
    """An AWS call failed after botocore's retries (raised by adapters)."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE_CODES


# --- ports ----------------------------------------------------------------------------------------


class Workload(Protocol):
    """DRS and EC2 in one workload account and DR region."""

    def source_servers(self) -> list[SourceServer]: ...
    def source_servers_by_id(self, ids: Sequence[str]) -> list[SourceServer]: ...
    def jobs_since(self, since: datetime) -> list[Job]: ...
    def job(self, job_id: str) -> Job | None: ...
    def twins(self, customer: str, environment: str, names: Sequence[str]) -> list[Instance]: ...
    def instances(self, ids: Sequence[str]) -> list[Instance]: ...
    def launch_into(self, source_server_id: str, instance_id: str) -> None: ...
    def start_recovery(self, source_server_ids: Sequence[str], tags: Mapping[str, str]) -> Job: ...
    def recovery_instances(
        self, ids: Sequence[str], source_server_ids: Sequence[str]
    ) -> list[RecoveryInstance]: ...
    def launch_errors(self, job_id: str) -> dict[str, str]: ...


class Workloads(Protocol):
    def get(self, entry: CustomerEntry, region: str) -> Workload: ...


class Registry(Protocol):
    def customer(self, name: str) -> CustomerEntry | None: ...
    def by_account(self, account: str) -> CustomerEntry | None: ...


class Results(Protocol):
    def publish(self, details: Sequence[Detail]) -> None: ...


class Checks(Protocol):
    def schedule(self, checks: Sequence[tuple[JobCheck, int]]) -> None:
        """Send each check with its delay in seconds."""
        ...


class Ledger(Protocol):
    def load(self, job_id: str) -> JobLedger: ...
    def record_launch(self, job_id: str, launches: Mapping[str, LaunchContext]) -> None: ...
    def mark_reported(self, job_id: str, source_server_ids: Sequence[str]) -> None: ...


class Log(Protocol):
    def info(self, msg: str, *args: Any, **kwargs: Any) -> Any: ...
    def warning(self, msg: str, *args: Any, **kwargs: Any) -> Any: ...
    def error(self, msg: str, *args: Any, **kwargs: Any) -> Any: ...


# --- helpers --------------------------------------------------------------------------------------


def parse_duration(value: str | None) -> float | None:
    """ISO-8601 duration (`PT1M30S`, `P1DT2H`) to seconds; None when absent or unreadable."""
    if not value:
        return None
    match = _DURATION.match(value.strip())
    if not match or value.strip() in ("P", "PT"):
        return None
    return sum(float(v) * _UNIT_SECONDS[k] for k, v in match.groupdict().items() if v)


def last_octet(ip: str | None) -> str | None:
    if not ip or "." not in ip:
        return None
    return ip.rsplit(".", 1)[1]


def index_source_servers(servers: Iterable[SourceServer]) -> dict[str, SourceServer]:
    """Source servers by primary instance id; servers replicating back (failback) are skipped."""
    index: dict[str, SourceServer] = {}
    for server in servers:
        if not server.aws_instance_id or server.replication_direction == "FAILBACK":
            continue
        known = index.get(server.aws_instance_id)
        if known is None or (
            known.replication_state not in READY_STATES and server.replication_state in READY_STATES
        ):
            index[server.aws_instance_id] = server
    return index


_Item = TypeVar("_Item")


def chunks(items: Sequence[_Item], size: int) -> Iterator[Sequence[_Item]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True)
class _Scope:
    """Who a job (or a part) belongs to, from its tags."""

    operation_id: str
    customer: str
    environment: str
    operation: OperationType
    wave: int

    @classmethod
    def from_job_tags(cls, tags: Mapping[str, str]) -> _Scope | None:
        try:
            return cls(
                operation_id=tags[T.JOB_OPERATION_ID],
                customer=tags[T.JOB_CUSTOMER],
                environment=tags[T.JOB_ENVIRONMENT],
                operation=OperationType(tags[T.JOB_OPERATION]),
                wave=int(tags[T.JOB_WAVE]),
            )
        except (KeyError, ValueError):
            return None

    def base(self) -> dict[str, Any]:
        return {
            "operation_id": self.operation_id,
            "customer": self.customer,
            "environment": self.environment,
            "operation": self.operation,
        }


@dataclass
class _PartOutcome:
    events: list[Detail] = field(default_factory=list)
    checks: list[JobCheck] = field(default_factory=list)
    launched: int = 0
    adopted: int = 0
    failed: int = 0


@dataclass(frozen=True)
class _Candidate:
    ref: ResourceRef
    server: SourceServer
    context: LaunchContext


@dataclass(frozen=True)
class ReconcileOutcome:
    ours: bool
    done: bool
    reported: int = 0


# --- the service ----------------------------------------------------------------------------------


class DrsRecovery:
    def __init__(
        self,
        *,
        registry: Registry,
        workloads: Workloads,
        results: Results,
        checks: Checks,
        ledger: Ledger,
        log: Log,
        batch_size: int = 100,
        poll_backoff: Sequence[int] = (5, 10, 20, 40, 60),
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._registry = registry
        self._workloads = workloads
        self._results = results
        self._checks = checks
        self._ledger = ledger
        self._log = log
        self._batch_size = batch_size
        self._backoff = tuple(poll_backoff) or (60,)
        self._now = now
        self._batch: dict[tuple[str, str, str], ReconcileOutcome] = {}
        self._scheduled: set[tuple[str, int]] = set()
        # What this process knows of each job's ledger. The table stays the truth; a stale entry
        # (another process reported meanwhile) only repeats a result, which the coordinator
        # ignores, and it saves a read per reconciliation.
        self._ledgers: OrderedDict[str, JobLedger] = OrderedDict()

    # -- a part of a wave ------------------------------------------------------------------------

    def recover_part(self, part: WaveStarted) -> dict[str, Any]:
        """Launch the part's servers; returns a small summary (stored by the idempotency layer)."""
        outcome = _PartOutcome()
        if part.strategy != Strategy.DRS:
            return {"skipped": f"strategy {part.strategy.value}"}
        if part.operation != OperationType.FAILOVER:
            # Drills and failback have their own flows; a production launch is never a fallback.
            self._fail_all(
                outcome,
                part,
                part.resources,
                OPERATION_NOT_SUPPORTED,
                f"the drs service does not run {part.operation.value} operations yet",
            )
        elif (entry := self._registry.customer(part.customer)) is None:
            self._fail_all(
                outcome,
                part,
                part.resources,
                UNKNOWN_CUSTOMER,
                f"customer {part.customer!r} is not in the registry",
            )
        else:
            groups: dict[tuple[str, str], list[ResourceRef]] = {}
            for ref in part.resources:
                groups.setdefault((ref.account, ref.dr_region), []).append(ref)
            for (account, region), refs in sorted(groups.items()):
                if account != entry.account:
                    self._fail_all(
                        outcome,
                        part,
                        refs,
                        SCOPE_MISMATCH,
                        f"account {account} is not {part.customer}'s account {entry.account}",
                    )
                    continue
                self._recover_group(outcome, part, entry, region, refs)
        self._results.publish(outcome.events)
        self._schedule([(check, 0) for check in outcome.checks])
        summary = {
            "launched": outcome.launched,
            "adopted": outcome.adopted,
            "failed": outcome.failed,
            "jobs": sorted({c.job_id for c in outcome.checks}),
        }
        self._log.info("Part processed", extra={"wave": part.wave, "part": part.part, **summary})
        return summary

    def _recover_group(
        self,
        outcome: _PartOutcome,
        part: WaveStarted,
        entry: CustomerEntry,
        region: str,
        refs: list[ResourceRef],
    ) -> None:
        workload = self._workloads.get(entry, region)
        try:
            by_instance = index_source_servers(workload.source_servers())
            earlier = workload.jobs_since(part.occurred_at - JOB_LOOKBACK)
        except AwsError as error:
            self._fail_all(outcome, part, refs, error.code, str(error), error.retryable)
            return
        adopted = self._launched_before(part, earlier)
        candidates: list[_Candidate] = []
        for ref in refs:
            server = by_instance.get(ref.resource_id)
            if server is None:
                self._fail(
                    outcome,
                    part,
                    ref,
                    NO_SOURCE_SERVER,
                    f"no DRS source server replicates {ref.resource_id} in {region}",
                )
            elif (
                server.tags.get(T.CUSTOMER) != part.customer
                or server.tags.get(T.ENVIRONMENT) != part.environment
            ):
                self._fail(
                    outcome,
                    part,
                    ref,
                    SCOPE_MISMATCH,
                    f"source server {server.source_server_id} is tagged "
                    f"{T.CUSTOMER}={server.tags.get(T.CUSTOMER)!r} "
                    f"{T.ENVIRONMENT}={server.tags.get(T.ENVIRONMENT)!r}, "
                    f"not {part.customer}/{part.environment}",
                )
            elif server.source_server_id in adopted:
                job = adopted[server.source_server_id]
                outcome.adopted += 1
                outcome.events.append(self._started(part, ref, job))
                if all(c.job_id != job.job_id for c in outcome.checks):
                    outcome.checks.append(self._check(job.job_id, entry.account, region))
            elif server.replication_state not in READY_STATES:
                self._fail(
                    outcome,
                    part,
                    ref,
                    REPLICATION_NOT_READY,
                    f"replication of {server.source_server_id} is {server.replication_state}",
                    retryable=True,
                )
            else:
                lag = server.lag_seconds
                candidates.append(
                    _Candidate(
                        ref,
                        server,
                        LaunchContext(
                            resource_id=ref.resource_id,
                            name=ref.name,
                            primary_ip=ref.private_ip or server.primary_ip,
                            lag_seconds=None if lag is None else round(lag),
                            rpo_exceeded=None if lag is None else lag > ref.rpo_target_minutes * 60,
                        ),
                    )
                )
        if candidates:
            self._launch(outcome, part, entry, region, workload, candidates)

    @staticmethod
    def _launched_before(part: WaveStarted, jobs: Iterable[Job]) -> dict[str, Job]:
        """Servers already in a job of this operation, wave and attempt (a crashed earlier try)."""
        adopted: dict[str, Job] = {}
        for job in jobs:
            tags = job.tags
            if (
                tags.get(T.JOB_OPERATION_ID) == part.operation_id
                and tags.get(T.JOB_WAVE) == str(part.wave)
                and tags.get(T.JOB_ATTEMPT) == str(part.attempt)
            ):
                for server in job.servers:
                    adopted[server.source_server_id] = job
        return adopted

    def _launch(
        self,
        outcome: _PartOutcome,
        part: WaveStarted,
        entry: CustomerEntry,
        region: str,
        workload: Workload,
        candidates: list[_Candidate],
    ) -> None:
        names = sorted({c.ref.name for c in candidates})
        try:
            twins = workload.twins(part.customer, part.environment, names)
        except AwsError as error:
            for c in candidates:
                self._fail(outcome, part, c.ref, error.code, str(error), error.retryable)
            return
        by_name: dict[str, list[Instance]] = {}
        for twin in twins:
            # Twin matching by Name happens only inside the operation's customer + environment.
            if (
                twin.tags.get(T.CUSTOMER) == part.customer
                and twin.tags.get(T.ENVIRONMENT) == part.environment
                and T.NAME in twin.tags
            ):
                by_name.setdefault(twin.tags[T.NAME], []).append(twin)

        ready: list[_Candidate] = []
        for candidate in candidates:
            twin_or_error = self._twin_for(candidate, by_name.get(candidate.ref.name, []))
            if isinstance(twin_or_error, tuple):
                self._fail(outcome, part, candidate.ref, *twin_or_error)
                continue
            context = candidate.context.model_copy(update={"twin": twin_or_error})
            if twin_or_error is not None:
                try:
                    workload.launch_into(candidate.server.source_server_id, twin_or_error)
                except AwsError as error:
                    self._fail(
                        outcome,
                        part,
                        candidate.ref,
                        LAUNCH_CONFIGURATION_FAILED,
                        f"launch into {twin_or_error}: {error}",
                        error.retryable,
                    )
                    continue
            ready.append(_Candidate(candidate.ref, candidate.server, context))

        tags = {
            T.JOB_OPERATION_ID: part.operation_id,
            T.JOB_WAVE: str(part.wave),
            T.JOB_CUSTOMER: part.customer,
            T.JOB_ENVIRONMENT: part.environment,
            T.JOB_OPERATION: part.operation.value,
            T.JOB_ATTEMPT: str(part.attempt),
        }
        for batch in chunks(ready, self._batch_size):
            try:
                job = workload.start_recovery([c.server.source_server_id for c in batch], tags)
            except AwsError as error:
                for c in batch:
                    self._fail(outcome, part, c.ref, error.code, str(error), error.retryable)
                continue
            launches = {c.server.source_server_id: c.context for c in batch}
            self._ledger.record_launch(job.job_id, launches)
            self._remember(job.job_id, JobLedger(launches=launches))
            outcome.launched += len(batch)
            outcome.events += [self._started(part, c.ref, job) for c in batch]
            outcome.checks.append(self._check(job.job_id, entry.account, region))

    @staticmethod
    def _twin_for(candidate: _Candidate, twins: list[Instance]) -> str | tuple[str, str] | None:
        """The twin's instance id, None for a standard launch, or (code, message) to fail."""
        ref = candidate.ref
        if not twins:
            return None
        if len(twins) > 1:
            ids = ", ".join(sorted(t.instance_id for t in twins))
            return AMBIGUOUS_TWIN, f"{len(twins)} DR instances are named {ref.name!r}: {ids}"
        twin = twins[0]
        if twin.tags.get(T.DRS_LAUNCH_INTO) != T.DRS_LAUNCH_INTO_VALUE:
            return (
                TWIN_NOT_LAUNCH_TARGET,
                f"twin {twin.instance_id} lacks tag {T.DRS_LAUNCH_INTO}={T.DRS_LAUNCH_INTO_VALUE}",
            )
        primary_ip = candidate.context.primary_ip
        if last_octet(primary_ip) is None:
            return PRIMARY_IP_UNKNOWN, f"primary IP of {ref.resource_id} is unknown"
        if last_octet(twin.private_ip) != last_octet(primary_ip):
            return (
                TWIN_IP_MISMATCH,
                f"twin {twin.instance_id} has IP {twin.private_ip}, primary has {primary_ip}: "
                "the last octet must be the same",
            )
        return twin.instance_id

    # -- results ----------------------------------------------------------------------------------

    def begin_batch(self) -> None:
        """Forget per-batch state: each job is reconciled at most once per SQS batch."""
        self._batch = {}
        self._scheduled = set()

    def reconcile_job(
        self, job_id: str, account: str, region: str, attempt: int | None = None
    ) -> ReconcileOutcome:
        """Report the servers of a job that reached a final launch status and were not reported.

        `attempt` is set for the service's own job checks: while the job is not done the next
        check is scheduled. Native events (attempt None) never schedule.
        """
        # Keyed by where the job is too: an event naming the wrong account must not end the
        # checks of the real job.
        key = (job_id, account, region)
        outcome = self._batch.get(key)
        if outcome is None:
            outcome = self._reconcile(job_id, account, region, attempt)
            self._batch[key] = outcome
        if attempt is not None and not outcome.done:
            self._schedule([(self._check(job_id, account, region), attempt + 1)])
        return outcome

    def _reconcile(
        self, job_id: str, account: str, region: str, attempt: int | None
    ) -> ReconcileOutcome:
        entry = self._registry.by_account(account)
        if entry is None:
            self._log.info("Ignoring a job of an unregistered account", extra={"job_id": job_id})
            return ReconcileOutcome(ours=False, done=True)
        workload = self._workloads.get(entry, region)
        job = workload.job(job_id)
        if job is None:
            gave_up = attempt is None or attempt >= MAX_JOB_NOT_FOUND_CHECKS
            self._log.warning("Job not found", extra={"job_id": job_id, "gave_up": gave_up})
            return ReconcileOutcome(ours=False, done=gave_up)
        scope = _Scope.from_job_tags(job.tags)
        if scope is None:
            return ReconcileOutcome(ours=False, done=True)  # not started by the orchestrator
        owner = self._registry.customer(scope.customer)
        if owner is None or owner.account != account:
            self._log.error(
                "Job tags name a customer of another account: ignored",
                extra={"job_id": job_id, "customer": scope.customer},
            )
            return ReconcileOutcome(ours=False, done=True)
        if owner is not entry:
            workload = self._workloads.get(owner, region)

        timed_out = attempt is not None and attempt >= MAX_JOB_CHECKS
        final = [
            s
            for s in job.servers
            if s.launch_status in FINAL_LAUNCH_STATUSES or job.completed or timed_out
        ]
        if not final:
            return ReconcileOutcome(ours=True, done=False)
        ledger = self._ledgers.get(job_id) or self._ledger.load(job_id)
        new = [s for s in final if s.source_server_id not in ledger.reported]
        if not new:
            return ReconcileOutcome(ours=True, done=job.completed or timed_out)
        events, unresolved = self._results_for(job, scope, new, ledger, workload, region, timed_out)
        # Publish first, then remember: a crash in between repeats a result, never loses one.
        self._results.publish([e for _, e in events])
        reported = [sid for sid, _ in events]
        self._ledger.mark_reported(job_id, reported)
        self._remember(job_id, replace(ledger, reported=ledger.reported | set(reported)))
        done = (job.completed or timed_out) and not unresolved
        return ReconcileOutcome(ours=True, done=done, reported=len(events))

    def _results_for(
        self,
        job: Job,
        scope: _Scope,
        servers: list[JobServer],
        ledger: JobLedger,
        workload: Workload,
        region: str,
        timed_out: bool,
    ) -> tuple[list[tuple[str, Detail]], list[str]]:
        contexts = dict(ledger.launches)
        missing = [s.source_server_id for s in servers if s.source_server_id not in contexts]
        if missing:
            # The part crashed before recording its launch: rebuild what DRS can tell.
            for source in workload.source_servers_by_id(missing):
                contexts[source.source_server_id] = LaunchContext(
                    resource_id=source.aws_instance_id or source.source_server_id,
                    name=source.aws_instance_id or source.source_server_id,
                    primary_ip=source.primary_ip,
                )
        started_at = job.created_at or self._now()
        events: list[tuple[str, Detail]] = []
        unresolved: list[str] = []

        def fail(sid: str, code: str, message: str, retryable: bool = True) -> None:
            context = contexts.get(sid) or LaunchContext(resource_id=sid, name=sid)
            result = self._failed_result(scope, context, code, message, started_at, retryable)
            events.append((sid, result))

        launched = [s for s in servers if s.launch_status == LAUNCHED]
        dr_instances = self._dr_instances(job, launched, workload) if launched else {}
        for server in launched:
            sid = server.source_server_id
            instance = dr_instances.get(sid)
            if instance is not None and instance.private_ip:
                context = contexts.get(sid) or LaunchContext(resource_id=sid, name=sid)
                result = self._launched_result(scope, job, context, instance, region, started_at)
                events.append((sid, result))
            elif timed_out:
                fail(sid, JOB_TIMEOUT, f"launched by {job.job_id}; its DR instance is not found")
            else:
                unresolved.append(sid)  # DescribeRecoveryInstances may lag: next check

        others = [s for s in servers if s.launch_status != LAUNCHED]
        failed = any(s.launch_status == FAILED for s in others)
        errors = workload.launch_errors(job.job_id) if failed else {}
        for server in others:
            sid, status = server.source_server_id, server.launch_status
            if status == FAILED:
                fail(sid, LAUNCH_FAILED, errors.get(sid) or f"job {job.job_id}: launch FAILED")
            elif job.completed:
                fail(sid, LAUNCH_FAILED, f"job {job.job_id} completed with launch status {status}")
            else:
                fail(sid, JOB_TIMEOUT, f"job {job.job_id} still {job.status} after all checks")
        return events, unresolved

    @staticmethod
    def _dr_instances(
        job: Job, launched: list[JobServer], workload: Workload
    ) -> dict[str, Instance]:
        """The DR EC2 instance of each launched source server, in batched calls.

        DRS names a recovery instance by its EC2 instance id, so EC2 is asked first; servers
        whose id EC2 does not know (or that the job lists without one) go through
        DescribeRecoveryInstances.
        """
        ids = {s.source_server_id: s.recovery_instance_id for s in launched}
        direct = {i.instance_id: i for i in workload.instances(sorted(filter(None, ids.values())))}
        found = {sid: direct[rid] for sid, rid in ids.items() if rid and rid in direct}
        rest = [s for s in launched if s.source_server_id not in found]
        if not rest:
            return found
        known = [s.recovery_instance_id for s in rest if s.recovery_instance_id]
        unknown = [s.source_server_id for s in rest if not s.recovery_instance_id]
        by_source: dict[str, RecoveryInstance] = {}
        for instance in workload.recovery_instances(known, unknown):
            sid = instance.source_server_id
            if not sid or sid not in ids or not instance.ec2_instance_id:
                continue
            current = by_source.get(sid)
            # A source server may have several recovery instances (e.g. old drills): this job's.
            if current is None or (instance.job_id == job.job_id and current.job_id != job.job_id):
                by_source[sid] = instance
        ec2_ids = sorted({r.ec2_instance_id or "" for r in by_source.values()})
        ec2 = {i.instance_id: i for i in workload.instances(ec2_ids)}
        found.update(
            {
                sid: ec2[r.ec2_instance_id]
                for sid, r in by_source.items()
                if r.ec2_instance_id in ec2
            }
        )
        return found

    def _launched_result(
        self,
        scope: _Scope,
        job: Job,
        context: LaunchContext,
        instance: Instance,
        region: str,
        started_at: datetime,
    ) -> Detail:
        twin = context.twin
        if twin is None and instance.tags.get(T.DRS_LAUNCH_INTO) == T.DRS_LAUNCH_INTO_VALUE:
            twin = instance.instance_id  # context lost: the launch target carries the tag
        primary, dr = last_octet(context.primary_ip), last_octet(instance.private_ip)
        if twin is not None and primary is not None and primary != dr:
            return self._failed_result(
                scope,
                context,
                IP_LAST_OCTET_MISMATCH,
                f"DR instance {instance.instance_id} came up with {instance.private_ip}; "
                f"the primary's IP is {context.primary_ip}",
                started_at,
                False,
            )
        details = {"job_id": job.job_id, "twin": twin or "none"}
        if primary is None:
            details["ip_last_octet"] = "unverified"
        else:
            details["ip_last_octet"] = "preserved" if primary == dr else "changed"
        if twin is None:
            details["warning"] = "no DR twin: standard launch, the private IP is not preserved"
        if context.lag_seconds is not None:
            details["lag_seconds"] = str(context.lag_seconds)
        if context.rpo_exceeded is not None:
            details["rpo_exceeded"] = str(context.rpo_exceeded).lower()
        return ResourceRecovered(
            **scope.base(),
            resource_id=context.resource_id,
            wave=scope.wave,
            strategy=Strategy.DRS,
            dr_resource_id=instance.instance_id,
            dr_private_ip=instance.private_ip,
            dr_region=region,
            started_at=started_at,
            completed_at=self._now(),
            details=details,
        )

    def _failed_result(
        self,
        scope: _Scope,
        context: LaunchContext,
        code: str,
        message: str,
        started_at: datetime | None,
        retryable: bool,
    ) -> Detail:
        return ResourceRecoveryFailed(
            **scope.base(),
            resource_id=context.resource_id,
            wave=scope.wave,
            strategy=Strategy.DRS,
            error_code=code,
            error=message,
            retryable=retryable,
            started_at=started_at,
            failed_at=self._now(),
        )

    def _remember(self, job_id: str, ledger: JobLedger) -> None:
        self._ledgers[job_id] = ledger
        self._ledgers.move_to_end(job_id)
        while len(self._ledgers) > LEDGER_CACHE_JOBS:
            self._ledgers.popitem(last=False)

    # -- small pieces ----------------------------------------------------------------------------

    def _check(self, job_id: str, account: str, region: str) -> JobCheck:
        return JobCheck(job_id=job_id, account=account, region=region)

    def _schedule(self, checks: Sequence[tuple[JobCheck, int]]) -> None:
        """Send checks with `attempt` set; the delay is the backoff step of that attempt."""
        pending: list[tuple[JobCheck, int]] = []
        for check, attempt in checks:
            if (check.job_id, attempt) in self._scheduled:
                continue
            self._scheduled.add((check.job_id, attempt))
            delay = self._backoff[min(attempt, len(self._backoff) - 1)]
            pending.append((check.model_copy(update={"attempt": attempt}), delay))
        if pending:
            self._checks.schedule(pending)

    def _started(self, part: WaveStarted, ref: ResourceRef, job: Job) -> Detail:
        return ResourceRecoveryStarted(
            **_part_base(part),
            resource_id=ref.resource_id,
            wave=part.wave,
            strategy=Strategy.DRS,
            job_id=job.job_id,
            started_at=job.created_at or self._now(),
        )

    def _fail(
        self,
        outcome: _PartOutcome,
        part: WaveStarted,
        ref: ResourceRef,
        code: str,
        message: str,
        retryable: bool = False,
    ) -> None:
        outcome.failed += 1
        outcome.events.append(
            ResourceRecoveryFailed(
                **_part_base(part),
                resource_id=ref.resource_id,
                wave=part.wave,
                strategy=Strategy.DRS,
                error_code=code,
                error=f"{ref.name}: {message}",
                retryable=retryable,
                failed_at=self._now(),
            )
        )

    def _fail_all(
        self,
        outcome: _PartOutcome,
        part: WaveStarted,
        refs: Iterable[ResourceRef],
        code: str,
        message: str,
        retryable: bool = False,
    ) -> None:
        for ref in refs:
            self._fail(outcome, part, ref, code, message, retryable)


def _part_base(part: WaveStarted) -> dict[str, Any]:
    return {
        "operation_id": part.operation_id,
        "customer": part.customer,
        "environment": part.environment,
        "operation": part.operation,
    }
