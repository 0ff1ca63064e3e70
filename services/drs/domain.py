"""DRS recovery domain: launch each wave's servers (failover, bubble-test drill, failback) within
the DRS quotas, and report one result per server.

Pure logic. AWS is reached only through the ports of `ports.py`; `adapters.py` implements them.

A part of a wave (`WaveStarted`) is processed per (account, DR region):
  1. source servers by `identificationHints.awsInstanceID` (DescribeSourceServers has no filter
     for it); scope re-check on the source server's own tags;
  2. servers already launched for this operation, wave and attempt (job tags) are adopted, never
     launched again: a part that crashed half-way can be redone safely;
  3. readiness per server (`readiness.py`): replication state and lag vs RPO (`--force` accepts
     lag and broken replication), no other DRS job, and per operation
       failover  - the DR twin by Name, only inside the operation's customer + environment,
                   tagged AWSDRS, same OS / architecture / boot mode, same IP last octet;
       drill     - the environment's isolated bubble VPC (never a production twin);
       failback  - reverse replication CONTINUOUS, the original primary instance as target;
  4. launch batches (≤ servers per job) queue in the account + region's DRS budget (FIFO across
     every operation) and launch as soon as the quotas allow: concurrent jobs and servers in all
     active jobs, read from Service Quotas. A batch that cannot start waits; it starts when a job
     of the account + region completes (its hold is released) or when a wake-up message comes.
Results come from `reconcile_job`, for DRS's native launch-result events and for the job checks
alike; the job's tags say which operation it belongs to, a small ledger which servers were already
reported. A failed launch is launched again (`launch_retries`, with backoff) before it is
reported with DRS's own error (job log items).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from drcore import tags as T
from drcore.registry import CustomerEntry
from events.schemas import (
    Detail,
    OperationRequested,
    OperationType,
    ResourceRecovered,
    ResourceRecoveryFailed,
    ResourceRecoveryStarted,
    ResourceRef,
    Strategy,
    WaveStarted,
)
from events.schemas.models import ResourceCheckRequested, utc_now

from . import readiness as R
from .drills import DrillLaunches
from .ports import (
    FAILED,
    FINAL_LAUNCH_STATUSES,
    LAUNCHED,
    RETRYABLE_CODES,
    WAIT_CODES,
    AwsError,
    Budget,
    Checks,
    Instance,
    Job,
    JobLedger,
    JobServer,
    LaunchConfig,
    Ledger,
    Log,
    Operations,
    Quotas,
    RecoveryInstance,
    Registry,
    Results,
    SourceServer,
    Workload,
    Workloads,
    arn_region_and_id,
    chunks,
    parse_duration,
    step,
)
from .readiness import last_octet
from .records import (
    JOB_CHECK_KIND,
    DrsLimits,
    Hold,
    JobCheck,
    LaunchBatch,
    LaunchContext,
    LaunchMember,
    OperationOptions,
    OpJob,
    QuotaWake,
    RecordedResult,
)

__all__ = [
    "JOB_CHECK_KIND",
    "AwsError",
    "DrsRecovery",
    "Instance",
    "Job",
    "JobCheck",
    "JobLedger",
    "JobServer",
    "LaunchConfig",
    "LaunchContext",
    "RecoveryInstance",
    "SourceServer",
    "parse_duration",
]

# --- constants ------------------------------------------------------------------------------------

TWIN_NAME_CHUNK = 200  # values per EC2 filter
# How far before the WaveStarted event a job of this part may have been created (clock skew).
JOB_LOOKBACK = timedelta(minutes=15)
# Job checks stop after this many (~4 h at the last backoff step): unreported servers fail.
MAX_JOB_CHECKS = 240
# A job DescribeJobs does not know yet (eventual consistency) is looked for this many times.
MAX_JOB_NOT_FOUND_CHECKS = 5
LEDGER_CACHE_JOBS = 1024
# Results reported together (one PutEvents, one ledger write, one coordinator batch).
REPORT_GROUP = 10
# A hold without a job after this long (the worker died between reserving and starting), or
# whose job DRS no longer lists, is given back when the budget is full.
HOLD_LEASE = timedelta(minutes=10)
# Wake-ups of waiting batches stop after this many (~16 h at the last backoff step).
MAX_WAKES = 1000

# Result codes (beyond the readiness codes of `readiness.py`).
UNKNOWN_CUSTOMER = "UNKNOWN_CUSTOMER"
LAUNCH_CONFIGURATION_FAILED = "LAUNCH_CONFIGURATION_FAILED"
LAUNCH_FAILED = "LAUNCH_FAILED"
IP_LAST_OCTET_MISMATCH = "IP_LAST_OCTET_MISMATCH"
BUBBLE_ISOLATION_BREACH = "BUBBLE_ISOLATION_BREACH"
JOB_TIMEOUT = "JOB_TIMEOUT"
NO_SOURCE_SERVER = R.NO_SOURCE_SERVER
SCOPE_MISMATCH = R.SCOPE_MISMATCH
REPLICATION_NOT_READY = R.REPLICATION_NOT_READY
TWIN_IP_MISMATCH = R.TWIN_IP_MISMATCH
AMBIGUOUS_TWIN = R.AMBIGUOUS_TWIN
TWIN_NOT_LAUNCH_TARGET = R.TWIN_NOT_LAUNCH_TARGET
PRIMARY_IP_UNKNOWN = R.PRIMARY_IP_UNKNOWN


def index_source_servers(servers: Iterable[SourceServer]) -> dict[str, SourceServer]:
    """Source servers by primary instance id; servers replicating back (failback) are skipped."""
    index: dict[str, SourceServer] = {}
    for server in servers:
        if not server.aws_instance_id or server.replication_direction == "FAILBACK":
            continue
        known = index.get(server.aws_instance_id)
        if known is None or (
            known.replication_state not in R.HEALTHY_STATES
            and server.replication_state in R.HEALTHY_STATES
        ):
            index[server.aws_instance_id] = server
    return index


@dataclass(frozen=True)
class Scope:
    """Who a job (or a part) belongs to, from its tags."""

    operation_id: str
    customer: str
    environment: str
    operation: OperationType
    wave: int

    @classmethod
    def from_job_tags(cls, tags: Mapping[str, str]) -> Scope | None:
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
    batches: list[LaunchBatch] = field(default_factory=list)
    adopted_jobs: dict[str, tuple[str, str]] = field(default_factory=dict)
    adopted: int = 0
    failed: int = 0


@dataclass
class DrainOutcome:
    launched: int = 0
    jobs: list[str] = field(default_factory=list)
    waiting: list[LaunchBatch] = field(default_factory=list)
    blocked: bool = False
    next_due: datetime | None = None


@dataclass(frozen=True)
class ReconcileOutcome:
    ours: bool
    done: bool
    reported: int = 0
    held: bool = False  # final servers left for a later report (see `reconcile_job`)


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
        budget: Budget,
        operations: Operations,
        quotas: Quotas,
        batch_size: int = 100,
        poll_backoff: Sequence[int] = (5, 10, 20, 40, 60),
        progress_backoff: Sequence[int] = (5, 10, 20, 40, 60),
        launch_retries: int = 3,
        relaunch_backoff: Sequence[int] = (10, 30, 60),
        now: Callable[[], datetime] = utc_now,
        primary_workloads: Workloads | None = None,
    ) -> None:
        self._registry = registry
        self._workloads = workloads
        # Best-effort reads in primary regions (boot mode) use clients that give up quickly.
        self._primary_workloads = primary_workloads or workloads
        self._results = results
        self._checks = checks
        self._ledger = ledger
        self._log = log
        self._budget = budget
        self._ops = operations
        self._quotas = quotas
        self._batch_size = batch_size
        self._backoff = tuple(poll_backoff) or (60,)
        self._progress = tuple(progress_backoff) or (60,)
        self._retries = launch_retries
        self._relaunch_backoff = tuple(relaunch_backoff) or (60,)
        self._now = now
        self._drills = DrillLaunches()
        self._batch: dict[tuple[str, str, str], ReconcileOutcome] = {}
        self._scheduled: set[tuple[str, str, int]] = set()
        # What this process knows of each job's ledger. The table stays the truth; a stale entry
        # (another process reported meanwhile) only repeats a result, which the coordinator
        # ignores, and it saves a read per reconciliation.
        self._ledgers: OrderedDict[str, JobLedger] = OrderedDict()
        # Jobs this process saw over and fully reported: a later check or a repeated event of
        # one of them needs no DescribeJobs (another process that does not know simply looks).
        self._over: OrderedDict[tuple[str, str, str], None] = OrderedDict()

    # -- what the operator asked ------------------------------------------------------------------

    def on_operation_requested(self, request: OperationRequested) -> None:
        self._ops.save_options(
            OperationOptions(
                operation_id=request.operation_id,
                customer=request.customer,
                environment=request.environment,
                operation=request.operation,
                keep_drill_resources=request.keep_drill_resources,
                reprotect=request.reprotect,
                allow_data_loss=request.allow_data_loss,
                requested_at=request.occurred_at,
                requested_by=request.requested_by,
            )
        )

    def _options(self, part: WaveStarted) -> OperationOptions:
        """What the operator asked; the defaults when nothing was recorded (the service hears
        only of requests that change a default, see `subscriptions.py`)."""
        options = self._ops.load(part.operation_id).options
        if options is not None:
            return options
        return OperationOptions(
            operation_id=part.operation_id,
            customer=part.customer,
            environment=part.environment,
            operation=part.operation,
            requested_at=part.occurred_at,
        )

    # -- a part of a wave ------------------------------------------------------------------------

    def recover_part(self, part: WaveStarted) -> dict[str, Any]:
        """Plan and queue the part's launches, then launch what the quotas allow. Returns a small
        summary (stored by the idempotency layer)."""
        outcome = _PartOutcome()
        if part.strategy != Strategy.DRS:
            return {"skipped": f"strategy {part.strategy.value}"}
        entry = self._registry.customer(part.customer)
        if entry is None:
            self._fail_all(
                outcome,
                part,
                part.resources,
                UNKNOWN_CUSTOMER,
                f"customer {part.customer!r} is not in the registry",
            )
        else:
            options = self._options(part)
            force = options.allow_data_loss
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
                if part.operation == OperationType.FAILBACK:
                    self._plan_failback(outcome, part, entry, region, refs)
                elif part.operation == OperationType.BUBBLE_TEST:
                    self._plan_drill(outcome, part, entry, region, refs, force)
                else:
                    self._plan_failover(outcome, part, entry, region, refs, force)
        self._keep_failures(part.operation_id, part.attempt, outcome.events)
        self._results.publish(outcome.events)
        self._schedule(
            [
                (self._check(job_id, account, region), 0)
                for job_id, (account, region) in sorted(outcome.adopted_jobs.items())
            ]
        )
        launched, jobs, waiting = 0, [], 0
        for account, region in sorted({(b.account, b.region) for b in outcome.batches}):
            mine = [b for b in outcome.batches if (b.account, b.region) == (account, region)]
            drained = self._launch_or_queue(account, region, mine)
            launched += drained.launched
            jobs += drained.jobs
            ours = {b.batch_id for b in mine}
            still = [b for b in drained.waiting if b.batch_id in ours]
            waiting += sum(len(b.members) for b in still)
            if still:
                self._wake(account, region, 0, drained)
        summary = {
            "launched": launched,
            "adopted": outcome.adopted,
            "failed": outcome.failed,
            "waiting": waiting,
            "jobs": sorted(set(jobs) | set(outcome.adopted_jobs)),
        }
        self._log.info("Part processed", extra={"wave": part.wave, "part": part.part, **summary})
        return summary

    def _start_group(
        self,
        outcome: _PartOutcome,
        part: WaveStarted,
        workload: Workload,
        refs: list[ResourceRef],
        account: str,
        region: str,
    ) -> tuple[dict[str, SourceServer], dict[str, Job]] | None:
        """Source servers by instance id and this step's earlier jobs, or None (all failed)."""
        try:
            by_instance = index_source_servers(workload.source_servers())
            earlier = workload.jobs_since(part.occurred_at - JOB_LOOKBACK)
        except AwsError as error:
            self._fail_all(outcome, part, refs, error.code, str(error), error.retryable)
            return None
        return by_instance, self._launched_before(part, earlier)

    def _screen(
        self,
        outcome: _PartOutcome,
        part: WaveStarted,
        ref: ResourceRef,
        server: SourceServer | None,
        adopted: dict[str, Job],
        account: str,
        region: str,
    ) -> SourceServer | None:
        """Source server found, in scope, not launched already for this step (then adopted)."""
        if server is None:
            self._fail(
                outcome,
                part,
                ref,
                NO_SOURCE_SERVER,
                f"no DRS source server replicates {ref.resource_id} in {region}",
            )
            return None
        problem = R.scope_problem(
            f"source server {server.source_server_id}",
            server.tags,
            part.customer,
            part.environment,
        )
        if problem:
            self._fail(outcome, part, ref, problem.code or SCOPE_MISMATCH, problem.message)
            return None
        job = adopted.get(server.source_server_id)
        if job is not None:
            outcome.adopted += 1
            outcome.events.append(self._started(part, ref, job))
            outcome.adopted_jobs[job.job_id] = (account, region)
            return None
        return server

    def _plan_failover(
        self,
        outcome: _PartOutcome,
        part: WaveStarted,
        entry: CustomerEntry,
        region: str,
        refs: list[ResourceRef],
        force: bool,
    ) -> None:
        workload = self._workloads.get(entry, region)
        started = self._start_group(outcome, part, workload, refs, entry.account, region)
        if started is None:
            return
        by_instance, adopted = started
        own = frozenset(j.job_id for j in adopted.values())
        ready: list[tuple[ResourceRef, SourceServer, R.Verdict]] = []
        for ref in refs:
            server = self._screen(
                outcome, part, ref, by_instance.get(ref.resource_id), adopted, entry.account, region
            )
            if server is None:
                continue
            verdict = R.job_in_progress(server, own) or R.replication(
                server, ref.rpo_target_minutes, force=force
            )
            if not verdict.ok:
                self._fail_verdict(outcome, part, ref, verdict)
                continue
            ready.append((ref, server, verdict))
        if not ready:
            return
        names = sorted({ref.name for ref, _, _ in ready})
        try:
            twins = workload.twins(part.customer, part.environment, names)
        except AwsError as error:
            for ref, _, _ in ready:
                self._fail(outcome, part, ref, error.code, str(error), error.retryable)
            return
        by_name: dict[str, list[Instance]] = {}
        for instance in twins:
            # Twin matching by Name happens only inside the operation's customer + environment.
            if R.in_scope(instance.tags, part.customer, part.environment) and T.NAME in (
                instance.tags
            ):
                by_name.setdefault(instance.tags[T.NAME], []).append(instance)
        primaries = {} if force else self._primaries(entry, ready)
        members: list[LaunchMember] = []
        for ref, server, repl in ready:
            primary_ip = ref.private_ip or server.primary_ip
            verdict = R.twin(
                server, primary_ip, by_name.get(ref.name, []), primaries.get(ref.resource_id)
            )
            if not verdict.ok:
                self._fail_verdict(outcome, part, ref, verdict)
                continue
            context = LaunchContext(
                resource_id=ref.resource_id,
                name=ref.name,
                twin=verdict.target,
                primary_ip=primary_ip,
                lag_seconds=repl.lag_seconds,
                rpo_exceeded=repl.rpo_exceeded,
                forced=repl.forced or None,
                boot_mode=verdict.boot_mode,
            )
            members.append(LaunchMember(source_server_id=server.source_server_id, context=context))
        self._enqueue(outcome, part, entry, entry.account, region, members)

    def _primaries(
        self, entry: CustomerEntry, ready: list[tuple[ResourceRef, SourceServer, R.Verdict]]
    ) -> dict[str, Instance]:
        """The primary instances (boot mode, platform): best effort, the primary region may be
        down; then the boot mode stays unverified."""
        found: dict[str, Instance] = {}
        by_region: dict[str, list[str]] = {}
        for ref, _, _ in ready:
            by_region.setdefault(ref.region, []).append(ref.resource_id)
        for region, ids in sorted(by_region.items()):
            try:
                found.update(
                    {
                        i.instance_id: i
                        for i in self._primary_workloads.get(entry, region).instances(ids)
                    }
                )
            except AwsError as error:
                self._log.warning(
                    "Primary instances not readable: boot mode unverified",
                    extra={"region": region, "error": str(error)},
                )
        return found

    def _plan_drill(
        self,
        outcome: _PartOutcome,
        part: WaveStarted,
        entry: CustomerEntry,
        region: str,
        refs: list[ResourceRef],
        force: bool,
    ) -> None:
        workload = self._workloads.get(entry, region)
        try:
            bubble = workload.bubble_network(T.bubble_network_name(part.customer, part.environment))
        except AwsError as error:
            self._fail_all(outcome, part, refs, error.code, str(error), error.retryable)
            return
        if bubble.problem:
            # Never a fallback to production: without its isolated network a drill runs nowhere.
            self._fail_all(outcome, part, refs, bubble.problem, bubble.reason)
            return
        started = self._start_group(outcome, part, workload, refs, entry.account, region)
        if started is None:
            return
        by_instance, adopted = started
        own = frozenset(j.job_id for j in adopted.values())
        members: list[LaunchMember] = []
        for ref in refs:
            server = self._screen(
                outcome, part, ref, by_instance.get(ref.resource_id), adopted, entry.account, region
            )
            if server is None:
                continue
            verdict = R.job_in_progress(server, own) or R.replication(
                server, ref.rpo_target_minutes, force=force, drill=True
            )
            if not verdict.ok:
                self._fail_verdict(outcome, part, ref, verdict)
                continue
            primary_ip = ref.private_ip or server.primary_ip
            subnet, keeps_ip = bubble.placement(primary_ip)
            context = LaunchContext(
                resource_id=ref.resource_id,
                name=ref.name,
                primary_ip=primary_ip,
                lag_seconds=verdict.lag_seconds,
                rpo_exceeded=verdict.rpo_exceeded,
                forced=verdict.forced or None,
                bubble_vpc=bubble.vpc_id,
                bubble_subnet=subnet.subnet_id,
                bubble_groups=bubble.security_groups,
                copy_private_ip=keeps_ip,
            )
            members.append(LaunchMember(source_server_id=server.source_server_id, context=context))
        self._enqueue(outcome, part, entry, entry.account, region, members)

    def _plan_failback(
        self,
        outcome: _PartOutcome,
        part: WaveStarted,
        entry: CustomerEntry,
        dr_region: str,
        refs: list[ResourceRef],
    ) -> None:
        """Launch back into the original primary instances from the reversed source servers
        (in the primary region), once reverse replication is CONTINUOUS."""
        dr = self._workloads.get(entry, dr_region)
        try:
            by_instance = index_source_servers(dr.source_servers())
        except AwsError as error:
            self._fail_all(outcome, part, refs, error.code, str(error), error.retryable)
            return
        by_primary: dict[str, list[ResourceRef]] = {}
        for ref in refs:
            by_primary.setdefault(ref.region, []).append(ref)
        for primary_region, group in sorted(by_primary.items()):
            workload = self._workloads.get(entry, primary_region)
            reversed_ids = {}
            for ref in group:
                server = by_instance.get(ref.resource_id)
                located = (
                    arn_region_and_id(server.reversed_arn)
                    if server and server.reversed_arn
                    else None
                )
                if located and located[0] == primary_region:
                    reversed_ids[ref.resource_id] = located[1]
            try:
                reversed_servers = {
                    s.source_server_id: s
                    for s in workload.source_servers_by_id(sorted(set(reversed_ids.values())))
                }
                earlier = workload.jobs_since(part.occurred_at - JOB_LOOKBACK)
                targets = {
                    i.instance_id: i for i in workload.instances([r.resource_id for r in group])
                }
            except AwsError as error:
                self._fail_all(outcome, part, group, error.code, str(error), error.retryable)
                continue
            adopted = self._launched_before(part, earlier)
            members: list[LaunchMember] = []
            for ref in group:
                dr_server = by_instance.get(ref.resource_id)
                reversed_server = reversed_servers.get(reversed_ids.get(ref.resource_id, ""))
                if reversed_server is not None and reversed_server.source_server_id in adopted:
                    job = adopted[reversed_server.source_server_id]
                    outcome.adopted += 1
                    outcome.events.append(self._started(part, ref, job))
                    outcome.adopted_jobs[job.job_id] = (entry.account, primary_region)
                    continue
                primary_ip = ref.private_ip or (dr_server.primary_ip if dr_server else None)
                verdict = R.failback(
                    part.customer,
                    part.environment,
                    dr_server,
                    reversed_server,
                    targets.get(ref.resource_id),
                    primary_ip,
                    ref.resource_id,
                )
                if not verdict.ok or reversed_server is None or dr_server is None:
                    self._fail_verdict(outcome, part, ref, verdict)
                    continue
                context = LaunchContext(
                    resource_id=ref.resource_id,
                    name=ref.name,
                    twin=verdict.target,
                    primary_ip=primary_ip,
                    lag_seconds=verdict.lag_seconds,
                    dr_instance=dr_server.recovery_instance_id,
                )
                members.append(
                    LaunchMember(source_server_id=reversed_server.source_server_id, context=context)
                )
            self._enqueue(outcome, part, entry, entry.account, primary_region, members)

    @staticmethod
    def _launched_before(part: WaveStarted, jobs: Iterable[Job]) -> dict[str, Job]:
        """Servers already in a job of this operation, wave and attempt (a crashed earlier try);
        the newest job when a failed launch was launched again."""
        adopted: dict[str, Job] = {}
        for job in sorted(jobs, key=lambda j: (j.created_at is not None, j.created_at)):
            tags = job.tags
            if (
                tags.get(T.JOB_OPERATION_ID) == part.operation_id
                and tags.get(T.JOB_WAVE) == str(part.wave)
                and tags.get(T.JOB_ATTEMPT) == str(part.attempt)
            ):
                for server in job.servers:
                    adopted[server.source_server_id] = job
        return adopted

    def _enqueue(
        self,
        outcome: _PartOutcome,
        part: WaveStarted,
        entry: CustomerEntry,
        account: str,
        region: str,
        members: list[LaunchMember],
    ) -> None:
        if not members:
            return
        limits = self._quotas.limits(entry, region)
        size = max(1, min(self._batch_size, limits.servers_per_job, limits.servers_in_active_jobs))
        now = self._now()
        for index, chunk in enumerate(chunks(members, size)):
            batch = LaunchBatch(
                batch_id=LaunchBatch.make_id(
                    part.operation_id,
                    part.wave,
                    part.attempt,
                    1,
                    (m.source_server_id for m in chunk),
                ),
                account=account,
                region=region,
                operation_id=part.operation_id,
                customer=part.customer,
                environment=part.environment,
                operation=part.operation,
                wave=part.wave,
                attempt=part.attempt,
                # a part's batches keep their order in the queue (FIFO)
                enqueued_at=now + timedelta(microseconds=index),
                members=list(chunk),
            )
            outcome.batches.append(batch)

    # -- the quota scheduler ----------------------------------------------------------------------

    def _launch_or_queue(
        self, account: str, region: str, batches: list[LaunchBatch]
    ) -> DrainOutcome:
        """A part's batches launch at once while nothing waits and the budget has room; the
        others queue behind what already waits (first come, first launched)."""
        entry = self._registry.by_account(account)
        if entry is None or self._budget.waiting(account, region):
            for batch in batches:
                self._budget.enqueue(batch)
            return self.drain(account, region)
        outcome = DrainOutcome()
        workload = self._workloads.get(entry, region)
        limits = self._quotas.limits(entry, region)
        now = self._now()
        for index, batch in enumerate(batches):
            hold = Hold(hold_id=batch.batch_id, servers=len(batch.members), created_at=now)
            if not self._reserve(entry, workload, account, region, hold, limits, now):
                outcome.blocked = True
            else:
                try:
                    job_id = self._launch_batch(batch, entry, workload, hold)
                except AwsError as error:  # DRS says wait (quota, throttling)
                    self._log.warning(
                        "Launch postponed", extra={"batch": batch.batch_id, "error": str(error)}
                    )
                    self._budget.release(account, region, hold.hold_id, hold.servers)
                    outcome.blocked = True
                else:
                    if job_id:
                        outcome.jobs.append(job_id)
                        outcome.launched += len(batch.members)
                    continue
            for rest in batches[index:]:
                self._budget.enqueue(rest)
            outcome.waiting = list(batches[index:])
            break
        return outcome

    def drain(self, account: str, region: str) -> DrainOutcome:
        """Launch the waiting batches of an account + region, oldest first, while the budget
        (the DRS quotas, shared by every operation) has room."""
        outcome = DrainOutcome()
        entry = self._registry.by_account(account)
        waiting = self._budget.waiting(account, region)
        if entry is None or not waiting:
            outcome.waiting = waiting
            return outcome
        now = self._now()
        due = [b for b in waiting if b.not_before is None or b.not_before <= now]
        later = [b for b in waiting if b not in due]
        outcome.waiting = list(later)
        if later:
            outcome.next_due = min(b.not_before for b in later if b.not_before)
        if not due:
            return outcome
        workload = self._workloads.get(entry, region)
        limits = self._quotas.limits(entry, region)
        try:
            earlier = workload.jobs_since(min(b.enqueued_at for b in due) - JOB_LOOKBACK)
        except AwsError as error:
            self._log.warning("Jobs not readable; launches wait", extra={"error": str(error)})
            outcome.waiting = waiting
            outcome.blocked = True
            return outcome
        by_batch = {j.tags[T.JOB_BATCH]: j for j in earlier if T.JOB_BATCH in j.tags}
        ended: dict[str, str | None] = {}
        for index, batch in enumerate(due):
            if batch.operation_id not in ended:
                ended[batch.operation_id] = self._ops.load(batch.operation_id).ended
            if ended[batch.operation_id]:
                # The operation is over (failed, cancelled): what it still queued never starts.
                self._log.info(
                    "Dropping a launch of an ended operation",
                    extra={"operation_id": batch.operation_id, "batch": batch.batch_id},
                )
                self._budget.done(batch)
                continue
            if not self._budget.claim(batch, now):
                outcome.waiting.append(batch)  # another worker has it
                continue
            job = by_batch.get(batch.batch_id)
            if job is not None:  # launched before a crash: adopt it, never launch twice
                self._launched(batch, job, {m.source_server_id: m.context for m in batch.members})
                self._budget.done(batch)
                outcome.jobs.append(job.job_id)
                continue
            hold = Hold(hold_id=batch.batch_id, servers=len(batch.members), created_at=now)
            if not self._reserve(entry, workload, account, region, hold, limits, now):
                self._budget.unclaim(batch)
                outcome.blocked = True
                outcome.waiting += due[index:]
                break
            try:
                job_id = self._launch_batch(batch, entry, workload, hold)
            except AwsError as error:  # DRS says wait (quota, throttling): keep the batch
                self._log.warning(
                    "Launch postponed", extra={"batch": batch.batch_id, "error": str(error)}
                )
                self._budget.release(account, region, hold.hold_id, hold.servers)
                self._budget.unclaim(batch)
                outcome.blocked = True
                outcome.waiting += due[index:]
                break
            self._budget.done(batch)
            if job_id:
                outcome.jobs.append(job_id)
                outcome.launched += len(batch.members)
        return outcome

    def _reserve(
        self,
        entry: CustomerEntry,
        workload: Workload,
        account: str,
        region: str,
        hold: Hold,
        limits: DrsLimits,
        now: datetime,
    ) -> bool:
        if self._budget.reserve(account, region, hold, limits):
            return True
        # Full: give back holds a dead worker left (no job after the lease, or a finished job).
        # A launch job carries its hold in its tags; a terminate job's hold names its job.
        stale = [h for h in self._budget.holds(account, region) if now - h.created_at > HOLD_LEASE]
        if not stale:
            return False
        try:
            since = min(h.created_at for h in stale) - JOB_LOOKBACK
            jobs = {j.tags.get(T.JOB_HOLD, ""): j for j in workload.jobs_since(since)}
            jobs.update({j.job_id: j for j in workload.jobs([h.job_id or "" for h in stale])})
        except AwsError:
            return False
        freed = False
        for held in stale:
            job = jobs.get(held.job_id or "") or jobs.get(held.hold_id)
            if job is None or job.completed:
                self._log.warning("Reclaiming a stale quota hold", extra={"hold": held.hold_id})
                freed |= self._budget.release(account, region, held.hold_id, held.servers)
        return freed and self._budget.reserve(account, region, hold, limits)

    def _launch_batch(
        self, batch: LaunchBatch, entry: CustomerEntry, workload: Workload, hold: Hold
    ) -> str | None:
        """Prepare the launch settings, start one DRS job; the job id, or None when every member
        failed its preparation (reported). Raises AwsError when DRS says to wait."""
        contexts = {m.source_server_id: m.context for m in batch.members}
        failures: list[tuple[str, str, str, bool]] = []  # sid, code, message, retryable
        if batch.drill:
            contexts, failures = self._drills.prepare(workload, batch, self._now())
        else:
            if batch.operation == OperationType.FAILBACK:
                targets = sorted({c.twin for c in contexts.values() if c.twin})
                try:  # DRS launches only into an instance that allows it
                    workload.tag_instances(targets, {T.DRS_LAUNCH_INTO: T.DRS_LAUNCH_INTO_VALUE})
                except AwsError as error:
                    failures += [(sid, error.code, str(error), error.retryable) for sid in contexts]
            for sid, context in contexts.items():
                if any(f[0] == sid for f in failures):
                    continue
                try:
                    if context.twin:
                        workload.launch_into(sid, context.twin)
                    else:  # a standard launch: no launch-into target left by an earlier run
                        workload.set_launch(sid, launch_into=None, copy_private_ip=False)
                except AwsError as error:
                    failures.append(
                        (
                            sid,
                            LAUNCH_CONFIGURATION_FAILED,
                            f"launch into {context.twin or '(none)'}: {error}",
                            error.retryable,
                        )
                    )
        failed = {sid for sid, *_ in failures}
        ready = [sid for sid in contexts if sid not in failed]
        scope = self._scope(batch)
        events: list[Detail] = [
            self._failed_result(scope, contexts[sid], code, message, None, retryable)
            for sid, code, message, retryable in failures
        ]
        if not ready:
            self._budget.release(batch.account, batch.region, hold.hold_id, hold.servers)
            self._publish_failures(batch, events)
            return None
        tags = {
            **batch.job_tags(),
            T.JOB_HOLD: hold.hold_id,
            T.JOB_HOLD_SERVERS: str(hold.servers),
        }
        try:
            job = workload.start_recovery(ready, tags, drill=batch.drill)
        except AwsError as error:
            if error.code in WAIT_CODES:
                self._publish_failures(batch, events)
                raise
            self._budget.release(batch.account, batch.region, hold.hold_id, hold.servers)
            events += [
                self._failed_result(
                    scope, contexts[sid], error.code, str(error), None, error.retryable
                )
                for sid in ready
            ]
            self._publish_failures(batch, events)
            return None
        self._publish_failures(batch, events)
        self._launched(batch, job, {sid: contexts[sid] for sid in ready})
        return job.job_id

    def _publish_failures(self, batch: LaunchBatch, events: list[Detail]) -> None:
        self._keep_failures(batch.operation_id, batch.attempt, events)
        self._results.publish(events)

    def _keep_failures(self, operation_id: str, attempt: int, events: Sequence[Detail]) -> None:
        """Failures published outside a job are kept, to be published again on a re-check."""
        failures = [
            RecordedResult.of(e, attempt) for e in events if isinstance(e, ResourceRecoveryFailed)
        ]
        if failures:
            self._ops.record_results(operation_id, failures)

    def _launched(
        self, batch: LaunchBatch, job: Job, contexts: Mapping[str, LaunchContext]
    ) -> None:
        """Record a started job (ledger, operation), announce its servers, schedule its check."""
        known = self._ledgers.get(job.job_id)
        if known is None or not known.launches:
            self._ledger.record_launch(job.job_id, contexts)
            self._remember(job.job_id, JobLedger(launches=dict(contexts)))
        self._ops.record_job(
            batch.operation_id,
            OpJob(
                job_id=job.job_id,
                account=batch.account,
                region=batch.region,
                kind="launch",
                hold=batch.batch_id,
                servers=len(contexts),
                created_at=job.created_at or self._now(),
                wave=batch.wave,
                attempt=batch.attempt,
            ),
        )
        scope = self._scope(batch)
        self._results.publish(
            [
                ResourceRecoveryStarted(
                    **scope.base(),
                    resource_id=context.resource_id,
                    wave=batch.wave,
                    strategy=Strategy.DRS,
                    job_id=job.job_id,
                    started_at=job.created_at or self._now(),
                )
                for context in contexts.values()
            ]
        )
        self._schedule([(self._check(job.job_id, batch.account, batch.region), 0)])

    def _wake(self, account: str, region: str, attempt: int, drained: DrainOutcome) -> None:
        if attempt >= MAX_WAKES:
            self._log.error("Launches still waiting; wake-ups stop", extra={"region": region})
            return
        delay = step(self._progress, attempt)
        if not drained.blocked and drained.next_due is not None:
            delay = max(1, int((drained.next_due - self._now()).total_seconds()) + 1)
        key = (f"wake:{account}", region, attempt)
        if key in self._scheduled:
            return
        self._scheduled.add(key)
        self._checks.schedule(
            [(QuotaWake(account=account, region=region, attempt=attempt), min(delay, 900))]
        )

    def on_wake(self, wake: QuotaWake) -> None:
        drained = self.drain(wake.account, wake.region)
        if drained.waiting:
            self._wake(wake.account, wake.region, wake.attempt + 1, drained)

    @staticmethod
    def _scope(batch: LaunchBatch) -> Scope:
        return Scope(
            operation_id=batch.operation_id,
            customer=batch.customer,
            environment=batch.environment,
            operation=batch.operation,
            wave=batch.wave,
        )

    # -- results ----------------------------------------------------------------------------------

    def begin_batch(self) -> None:
        """Forget per-batch state: each job is reconciled at most once per SQS batch."""
        self._batch = {}
        self._scheduled = set()

    def reconcile_job(
        self,
        job_id: str,
        account: str,
        region: str,
        attempt: int | None = None,
        flush: bool = False,
    ) -> ReconcileOutcome:
        """Report the servers of a job that reached a final launch status and were not reported.

        `attempt` is set for the service's own job checks: while the job is not done the next
        check is scheduled. Native events (attempt None) never schedule.

        Results go out in groups: a native event reports what is final once nothing else of the
        job is pending, or once a full group (`REPORT_GROUP`, one PutEvents) is final, or at once
        for a failed launch (relaunched or reported without waiting). Job checks and re-checks
        (`flush`) report everything final. So the last server of a job (of a wave) is reported
        as soon as its event arrives, and the servers before it share their reads and writes.
        """
        # Keyed by where the job is too: an event naming the wrong account must not end the
        # checks of the real job.
        key = (job_id, account, region)
        if key in self._over and not (flush and attempt is None):
            return ReconcileOutcome(ours=True, done=True)
        flush = flush or attempt is not None
        outcome = self._batch.get(key)
        if outcome is None or (outcome.held and flush):
            outcome = self._reconcile(job_id, account, region, attempt, flush=flush)
            self._batch[key] = outcome
        if attempt is not None and not outcome.done:
            self._schedule([(self._check(job_id, account, region), attempt + 1)])
        return outcome

    def _reconcile(
        self,
        job_id: str,
        account: str,
        region: str,
        attempt: int | None,
        again: frozenset[str] = frozenset(),
        flush: bool = True,
    ) -> ReconcileOutcome:
        """`again`: servers to report even if the ledger says they were (their kept result is
        missing: results reported before results were kept); `flush`: see `reconcile_job`."""
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
        scope = Scope.from_job_tags(job.tags)
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
        ledger = self._ledgers.get(job_id) or (self._ledger.load(job_id) if final else JobLedger())
        new = [s for s in final if s.source_server_id not in ledger.reported - again]
        pending = len(job.servers) - len(final)
        if (
            not flush
            and pending
            and len(new) < REPORT_GROUP
            and all(s.launch_status == LAUNCHED for s in new)
        ):
            # Launched servers wait for the rest of their group (their job's last event, a full
            # group, or the next job check at the latest).
            return ReconcileOutcome(ours=True, done=False, held=bool(new))
        reported = 0
        unresolved: list[str] = []
        if new:
            events, unresolved, relaunch = self._results_for(
                job, scope, new, ledger, workload, region, timed_out
            )
            if relaunch:
                # Exactly one worker relaunches a failed server of a job (two may reconcile it).
                claimed = set(self._ledger.claim_relaunch(job_id, [sid for sid, _ in relaunch]))
                relaunch = [(sid, c) for sid, c in relaunch if sid in claimed]
            if relaunch:
                self._relaunch(job, scope, account, region, relaunch, entry)
            # Publish first, then remember: a crash in between repeats a result, never loses one.
            self._results.publish([e for _, e in events])
            handled = [sid for sid, _ in events] + [sid for sid, _ in relaunch]
            step_attempt = int(job.tags.get(T.JOB_ATTEMPT, "1") or 1)
            kept = {sid: RecordedResult.of(e, step_attempt) for sid, e in events}
            self._ledger.mark_reported(job_id, handled, kept)
            ledger = replace(
                ledger,
                reported=ledger.reported | set(handled),
                results={**ledger.results, **kept},
            )
            self._remember(job_id, ledger)
            reported = len(events)
        done = (job.completed or timed_out) and not unresolved
        if done:
            self._job_over(job, scope, ledger, account, region, workload)
            if not (set(s.source_server_id for s in job.servers) - set(ledger.reported)):
                self._over[(job_id, account, region)] = None
                while len(self._over) > LEDGER_CACHE_JOBS:
                    self._over.popitem(last=False)
        return ReconcileOutcome(ours=True, done=done, reported=reported)

    # -- re-checks (the coordinator's reconciler) -------------------------------------------------

    def recheck(self, request: ResourceCheckRequested) -> dict[str, Any]:
        """The coordinator's reconciler asks about resources in flight longer than expected.

        Per resource, from what the service recorded for the operation, wave and attempt: a
        result already published is published again (the same content); a server in a job not
        reported yet gets its job checked (DescribeJobs), and its result published when final.
        Nothing is ever launched from here. Resources of another account than the customer's
        are not looked at.
        """
        if request.strategy != Strategy.DRS:
            return {"skipped": f"strategy {request.strategy.value}"}
        entry = self._registry.customer(request.customer)
        wanted: dict[str, ResourceRef] = {}
        for ref in request.resources:
            if entry is None or ref.account != entry.account:
                self._log.warning(
                    "Re-check of a resource outside the customer's account refused",
                    extra={"resource_id": ref.resource_id, "account": ref.account},
                )
                continue
            wanted[ref.resource_id] = ref
        if entry is None or not wanted:
            return {"again": 0, "checked_jobs": 0, "waiting": 0, "unknown": len(wanted)}
        records = self._ops.load(request.operation_id)
        # The newest launch job of this wave and attempt holding each resource (a relaunch is
        # newer than the job its server failed in).
        holder: dict[str, tuple[OpJob, str, JobLedger]] = {}
        for job in records.launch_jobs():
            if job.account != entry.account:
                continue
            if job.wave not in (None, request.wave) or job.attempt not in (None, request.attempt):
                continue
            ledger = self._ledger.load(job.job_id)
            for sid, context in ledger.launches.items():
                if context.resource_id in wanted:
                    holder[context.resource_id] = (job, sid, ledger)
        kept = {
            r.resource_id: r
            for r in records.results
            if (r.wave, r.attempt) == (request.wave, request.attempt)
        }
        again: list[Detail] = []
        to_check: dict[str, OpJob] = {}
        to_redo: dict[str, set[str]] = {}
        missing: list[ResourceRef] = []
        for rid, ref in wanted.items():
            held = holder.get(rid)
            if held is not None:
                job, sid, ledger = held
                result = ledger.results.get(sid)
                if result is not None:
                    again.append(result.event())
                elif sid in ledger.reported:
                    to_redo.setdefault(job.job_id, set()).add(sid)
                    to_check[job.job_id] = job
                else:
                    to_check[job.job_id] = job
            elif rid in kept:
                again.append(kept[rid].event())
            else:
                missing.append(ref)
        mine = (request.operation_id, request.customer, request.environment)
        again = [e for e in again if (e.operation_id, e.customer, e.environment) == mine]
        self._results.publish(again)
        for job in to_check.values():
            redo = frozenset(to_redo.get(job.job_id, ()))
            if redo:
                self._reconcile(job.job_id, job.account, job.region, None, again=redo)
            else:
                self.reconcile_job(job.job_id, job.account, job.region, flush=True)
        waiting, found = self._find_untracked(request, entry, missing)
        unknown = [
            r.resource_id
            for r in missing
            if r.resource_id not in waiting and r.resource_id not in found
        ]
        if unknown:
            self._log.warning(
                "Re-check: no launch or result recorded for these resources (their part was "
                "never processed, or is being processed now); nothing launched",
                extra={"operation_id": request.operation_id, "resources": unknown},
            )
        summary = {
            "again": len(again),
            "checked_jobs": len(to_check) + len(set(found.values())),
            "waiting": len(waiting),
            "unknown": len(unknown),
        }
        self._log.info("Re-check answered", extra={"wave": request.wave, **summary})
        return summary

    def _find_untracked(
        self, request: ResourceCheckRequested, entry: CustomerEntry, refs: list[ResourceRef]
    ) -> tuple[set[str], dict[str, str]]:
        """Resources without a recorded launch: waiting for DRS quota (a queued batch), or in a
        DRS job of this step whose launch was never recorded (a crash right after StartRecovery:
        the job is checked). Returns (waiting resource ids, resource id -> job id checked)."""
        waiting: set[str] = set()
        found: dict[str, str] = {}
        by_region: dict[str, list[ResourceRef]] = {}
        for ref in refs:
            by_region.setdefault(ref.dr_region, []).append(ref)
        for region, group in sorted(by_region.items()):
            ids = {r.resource_id for r in group}
            for batch in self._budget.waiting(entry.account, region):
                if (batch.operation_id, batch.wave, batch.attempt) != (
                    request.operation_id,
                    request.wave,
                    request.attempt,
                ):
                    continue
                waiting |= {m.context.resource_id for m in batch.members} & ids
            rest = ids - waiting
            if not rest:
                continue
            workload = self._workloads.get(entry, region)
            try:
                jobs = [
                    j
                    for j in workload.jobs_since(request.in_flight_since - JOB_LOOKBACK)
                    if j.tags.get(T.JOB_OPERATION_ID) == request.operation_id
                    and j.tags.get(T.JOB_WAVE) == str(request.wave)
                    and j.tags.get(T.JOB_ATTEMPT) == str(request.attempt)
                ]
                sids = sorted({s.source_server_id for j in jobs for s in j.servers})
                instance_of = {
                    s.source_server_id: s.aws_instance_id
                    for s in (workload.source_servers_by_id(sids) if sids else [])
                }
            except AwsError as error:
                self._log.warning("Re-check: DRS jobs not readable", extra={"error": str(error)})
                continue
            for job in sorted(jobs, key=lambda j: (j.created_at is not None, j.created_at)):
                for server in job.servers:
                    rid = instance_of.get(server.source_server_id)
                    if rid is not None and rid in rest:
                        found[rid] = job.job_id
            for job_id in sorted(set(found.values())):
                self.reconcile_job(job_id, entry.account, region, flush=True)
        return waiting, found

    def _job_over(
        self,
        job: Job,
        scope: Scope,
        ledger: JobLedger,
        account: str,
        region: str,
        workload: Workload,
    ) -> None:
        """A job is over: restore what a drill changed, give its quota share back, launch what
        waited for it."""
        if scope.operation == OperationType.BUBBLE_TEST and not ledger.restored:
            # One restorer per job (the first to claim it); what a crash in between leaves is
            # restored by the teardown and the janitor (the templates carry what to restore).
            if self._ledger.mark_restored(job.job_id):
                if not ledger.launches:
                    ledger = self._ledger.load(job.job_id)
                restored = self._drills.restore(workload, ledger.launches, self._log)
                self._log.info("Drill launch settings restored", extra={"templates": restored})
            self._remember(job.job_id, replace(ledger, restored=True))
        hold = job.tags.get(T.JOB_HOLD)
        servers = job.tags.get(T.JOB_HOLD_SERVERS, "")
        held = int(servers) if servers.isdigit() else None
        if hold and self._budget.release(account, region, hold, held):
            drained = self.drain(account, region)
            if drained.launched:
                self._log.info(
                    "Waiting launches started",
                    extra={"servers": drained.launched, "jobs": drained.jobs},
                )

    def _results_for(
        self,
        job: Job,
        scope: Scope,
        servers: list[JobServer],
        ledger: JobLedger,
        workload: Workload,
        region: str,
        timed_out: bool,
    ) -> tuple[list[tuple[str, Detail]], list[str], list[tuple[str, LaunchContext]]]:
        contexts = dict(ledger.launches)
        missing = [s.source_server_id for s in servers if s.source_server_id not in contexts]
        if missing:
            # The part crashed before recording its launch: rebuild what DRS can tell.
            for source in workload.source_servers_by_id(missing):
                contexts[source.source_server_id] = LaunchContext(
                    resource_id=source.aws_instance_id or source.source_server_id,
                    name=source.aws_instance_id or source.source_server_id,
                    primary_ip=source.primary_ip,
                    launch_try=int(job.tags.get(T.JOB_LAUNCH_TRY, "1") or 1),
                )
        started_at = job.created_at or self._now()
        events: list[tuple[str, Detail]] = []
        unresolved: list[str] = []
        relaunch: list[tuple[str, LaunchContext]] = []

        def context_of(sid: str) -> LaunchContext:
            return contexts.get(sid) or LaunchContext(resource_id=sid, name=sid)

        def fail(sid: str, code: str, message: str, retryable: bool = True) -> None:
            result = self._failed_result(
                scope, context_of(sid), code, message, started_at, retryable
            )
            events.append((sid, result))

        launched = [s for s in servers if s.launch_status == LAUNCHED]
        dr_instances = self._dr_instances(job, launched, workload) if launched else {}
        for server in launched:
            sid = server.source_server_id
            instance = dr_instances.get(sid)
            if instance is not None and instance.private_ip:
                result = self._launched_result(
                    scope, job, context_of(sid), instance, region, started_at
                )
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
            context = context_of(sid)
            if status == FAILED and context.launch_try <= self._retries:
                relaunch.append((sid, context))  # a failed launch is launched again
            elif status == FAILED:
                error = errors.get(sid) or f"job {job.job_id}: launch FAILED"
                tries = f" (after {context.launch_try} tries)" if context.launch_try > 1 else ""
                fail(sid, LAUNCH_FAILED, f"{error}{tries}")
            elif job.completed:
                fail(sid, LAUNCH_FAILED, f"job {job.job_id} completed with launch status {status}")
            else:
                fail(sid, JOB_TIMEOUT, f"job {job.job_id} still {job.status} after all checks")
        return events, unresolved, relaunch

    def _relaunch(
        self,
        job: Job,
        scope: Scope,
        account: str,
        region: str,
        servers: list[tuple[str, LaunchContext]],
        entry: CustomerEntry,
    ) -> None:
        """Queue failed launches again, after the backoff of their try."""
        now = self._now()
        by_try: dict[int, list[LaunchMember]] = {}
        for sid, context in servers:
            upcoming = context.launch_try + 1
            member = LaunchMember(
                source_server_id=sid, context=context.model_copy(update={"launch_try": upcoming})
            )
            by_try.setdefault(upcoming, []).append(member)
        attempt = int(job.tags.get(T.JOB_ATTEMPT, "1") or 1)
        for launch_try, members in sorted(by_try.items()):
            delay = step(self._relaunch_backoff, launch_try - 2)
            batch = LaunchBatch(
                batch_id=LaunchBatch.make_id(
                    scope.operation_id,
                    scope.wave,
                    attempt,
                    launch_try,
                    (m.source_server_id for m in members),
                ),
                account=account,
                region=region,
                operation_id=scope.operation_id,
                customer=scope.customer,
                environment=scope.environment,
                operation=scope.operation,
                wave=scope.wave,
                attempt=attempt,
                launch_try=launch_try,
                enqueued_at=now,
                not_before=now + timedelta(seconds=delay),
                members=members,
            )
            self._budget.enqueue(batch)
            self._log.warning(
                "Failed launches queued again",
                extra={"job_id": job.job_id, "servers": len(members), "try": launch_try},
            )
            drained = DrainOutcome(next_due=batch.not_before)
            self._wake(account, region, 0, drained)

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
        scope: Scope,
        job: Job,
        context: LaunchContext,
        instance: Instance,
        region: str,
        started_at: datetime,
    ) -> Detail:
        primary, dr = last_octet(context.primary_ip), last_octet(instance.private_ip)
        details: dict[str, str] = {"job_id": job.job_id}
        if context.launch_try > 1:
            details["launch_try"] = str(context.launch_try)
        if scope.operation == OperationType.BUBBLE_TEST:
            if context.bubble_vpc and instance.vpc_id != context.bubble_vpc:
                return self._failed_result(
                    scope,
                    context,
                    BUBBLE_ISOLATION_BREACH,
                    f"drill instance {instance.instance_id} is in VPC {instance.vpc_id}, not in "
                    f"the bubble {context.bubble_vpc}: the teardown terminates it",
                    started_at,
                    False,
                )
            details.update(
                drill="true",
                bubble_vpc=context.bubble_vpc or "",
                bubble_subnet=instance.subnet_id or context.bubble_subnet or "",
                ip_last_octet="preserved" if primary is not None and primary == dr else "changed",
            )
        else:
            twin = context.twin
            if twin is None and instance.tags.get(T.DRS_LAUNCH_INTO) == T.DRS_LAUNCH_INTO_VALUE:
                twin = instance.instance_id  # context lost: the launch target carries the tag
            if twin is not None and primary is not None and primary != dr:
                return self._failed_result(
                    scope,
                    context,
                    IP_LAST_OCTET_MISMATCH,
                    f"instance {instance.instance_id} came up with {instance.private_ip}; "
                    f"the primary's IP is {context.primary_ip}",
                    started_at,
                    False,
                )
            details["twin"] = twin or "none"
            if primary is None:
                details["ip_last_octet"] = "unverified"
            else:
                details["ip_last_octet"] = "preserved" if primary == dr else "changed"
            if twin is None:
                details["warning"] = "no DR twin: standard launch, the private IP is not preserved"
            if scope.operation == OperationType.FAILBACK:
                details["direction"] = "failback"
            if context.boot_mode:
                details["boot_mode"] = context.boot_mode
        if context.lag_seconds is not None:
            details["lag_seconds"] = str(context.lag_seconds)
        if context.rpo_exceeded is not None:
            details["rpo_exceeded"] = str(context.rpo_exceeded).lower()
        if context.forced:
            details["forced"] = "true"
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
        scope: Scope,
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
        pending: list[tuple[Any, int]] = []
        for check, attempt in checks:
            key = ("job", check.job_id, attempt)
            if key in self._scheduled:
                continue
            self._scheduled.add(key)
            pending.append(
                (check.model_copy(update={"attempt": attempt}), step(self._backoff, attempt))
            )
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

    def _fail_verdict(
        self, outcome: _PartOutcome, part: WaveStarted, ref: ResourceRef, verdict: R.Verdict
    ) -> None:
        self._fail(
            outcome, part, ref, verdict.code or "NOT_READY", verdict.message, verdict.retryable
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
                retryable=retryable or code in RETRYABLE_CODES,
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
