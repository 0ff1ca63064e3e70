"""Recovery of `managed-service` resources, one resource at a time: readiness first, then the
action, then validation, then exactly one `ResourceRecovered` / `ResourceRecoveryFailed`.

Pure: AWS is reached through the ports (`ports.py`). Each resource is claimed in the ledger on
operation + resource + step + attempt before anything is done; a stored result is published
again (same content) instead of acting twice, and a claim held by a live worker is left alone.
The flows read the current state before every change, so a worker that takes over a claim whose
lease ran out (its predecessor crashed mid-way) finishes the work without repeating it.

Also the choreography with drs: when a server recovered by drs carries `dr:managed:dns-record`,
its A record in the customer's private hosted zone is UPSERTed to the server's new address and a
`DnsRecordUpdated` is published (not a resource result).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from drcore import tags as T
from drcore.registry import CustomerEntry
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

from . import config as C
from .ports import (
    AwsError,
    CacheGroup,
    EfsReplication,
    FileSystem,
    FsxFileSystem,
    GlobalDatastore,
    Instance,
    Ledger,
    LoadBalancer,
    Ontap,
    OntapConnector,
    OntapError,
    OntapJob,
    RecordSet,
    Registry,
    Results,
    SnapMirror,
    Workload,
    Workloads,
)

EFS = "elasticfilesystem:file-system"
FSX = "fsx:file-system"
ELASTICACHE = "elasticache:replicationgroup"
LOAD_BALANCER = "elasticloadbalancing:loadbalancer"
SUPPORTED = (EFS, FSX, LOAD_BALANCER, ELASTICACHE)
STEP = "recover"
ARN_TYPES = {
    ("elasticfilesystem", "file-system"): EFS,
    ("fsx", "file-system"): FSX,
    ("elasticache", "replicationgroup"): ELASTICACHE,
    ("elasticloadbalancing", "loadbalancer"): LOAD_BALANCER,
}

# Reason codes (README: "Reason codes").
CUSTOMER_NOT_REGISTERED = "CUSTOMER_NOT_REGISTERED"
SCOPE_MISMATCH = "SCOPE_MISMATCH"
INVALID_MODULE_TAG = "INVALID_MODULE_TAG"
RESOURCE_TYPE_NOT_SUPPORTED = "RESOURCE_TYPE_NOT_SUPPORTED"
AWS_ERROR = "AWS_ERROR"
EFS_NOT_FOUND = "EFS_NOT_FOUND"
EFS_NO_REPLICATION = "EFS_NO_REPLICATION"
EFS_DR_MISMATCH = "EFS_DR_MISMATCH"
EFS_REPLICATION_NOT_ENABLED = "EFS_REPLICATION_NOT_ENABLED"
EFS_NEVER_REPLICATED = "EFS_NEVER_REPLICATED"
EFS_LAG_OVER_RPO = "EFS_LAG_OVER_RPO"
EFS_DR_COPY_MISSING = "EFS_DR_COPY_MISSING"
EFS_NOT_WRITABLE = "EFS_NOT_WRITABLE"
EFS_FAILBACK_TARGET = "EFS_FAILBACK_TARGET"
EFS_FAILBACK_SYNC_PENDING = "EFS_FAILBACK_SYNC_PENDING"
EFS_REPROTECT_FAILED = "EFS_REPROTECT_FAILED"
LB_NOT_FOUND = "LB_NOT_FOUND"
LB_DR_NOT_FOUND = "LB_DR_NOT_FOUND"
LB_DR_NOT_ACTIVE = "LB_DR_NOT_ACTIVE"
R53_ZONE_NOT_FOUND = "R53_ZONE_NOT_FOUND"
R53_RECORD_NOT_FOUND = "R53_RECORD_NOT_FOUND"
R53_NO_HEALTH_CHECK = "R53_NO_HEALTH_CHECK"
R53_HEALTH_CHECK_DISABLED = "R53_HEALTH_CHECK_DISABLED"
R53_SECONDARY_NOT_DR = "R53_SECONDARY_NOT_DR"
R53_NOT_INSYNC = "R53_NOT_INSYNC"
R53_NOT_FLIPPED = "R53_NOT_FLIPPED"
CACHE_NOT_FOUND = "CACHE_NOT_FOUND"
CACHE_DR_NOT_FOUND = "CACHE_DR_NOT_FOUND"
CACHE_DR_NOT_AVAILABLE = "CACHE_DR_NOT_AVAILABLE"
CACHE_GLOBAL_NOT_FOUND = "CACHE_GLOBAL_NOT_FOUND"
CACHE_GLOBAL_NOT_AVAILABLE = "CACHE_GLOBAL_NOT_AVAILABLE"
CACHE_GLOBAL_NO_MEMBER = "CACHE_GLOBAL_NO_MEMBER"
CACHE_GLOBAL_NOT_PROMOTED = "CACHE_GLOBAL_NOT_PROMOTED"
FSX_NOT_FOUND = "FSX_NOT_FOUND"
FSX_NOT_ONTAP = "FSX_NOT_ONTAP"
FSX_DR_NOT_FOUND = "FSX_DR_NOT_FOUND"
FSX_DR_NOT_AVAILABLE = "FSX_DR_NOT_AVAILABLE"
FSX_NO_MANAGEMENT_ENDPOINT = "FSX_NO_MANAGEMENT_ENDPOINT"
ONTAP_SECRET_NOT_FOUND = "ONTAP_SECRET_NOT_FOUND"
ONTAP_SECRET_INVALID = "ONTAP_SECRET_INVALID"
ONTAP_API_ERROR = "ONTAP_API_ERROR"
ONTAP_NO_RELATIONSHIP = "ONTAP_NO_RELATIONSHIP"
ONTAP_SNAPMIRROR_UNHEALTHY = "ONTAP_SNAPMIRROR_UNHEALTHY"
ONTAP_SNAPMIRROR_STATE = "ONTAP_SNAPMIRROR_STATE"
ONTAP_NEVER_TRANSFERRED = "ONTAP_NEVER_TRANSFERRED"
ONTAP_LAG_OVER_RPO = "ONTAP_LAG_OVER_RPO"
ONTAP_JOB_FAILED = "ONTAP_JOB_FAILED"
ONTAP_NOT_BROKEN = "ONTAP_NOT_BROKEN"
ONTAP_FAILBACK_MODE_REQUIRED = "ONTAP_FAILBACK_MODE_REQUIRED"
ONTAP_NOT_RESYNCED = "ONTAP_NOT_RESYNCED"


class Log(Protocol):
    def info(self, msg: str, *args: Any, **kwargs: Any) -> None: ...
    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None: ...
    def error(self, msg: str, *args: Any, **kwargs: Any) -> None: ...


def resource_type(ref: ResourceRef) -> str:
    """The resource's type: the reference's own, else what its ARN says."""
    if ref.resource_type != "ec2:instance":
        return ref.resource_type.split("/")[0]  # loadbalancer/app, loadbalancer/net: one type
    parts = ref.arn.split(":")
    if len(parts) >= 6:
        service, rest = parts[2], ":".join(parts[5:])
        kind = rest.split("/")[0].split(":")[0]
        return ARN_TYPES.get((service, kind), f"{service}:{kind}")
    return ref.resource_type


@dataclass
class Outcome:
    """How one resource ended: recovered (dr id + details) or failed (code + message)."""

    ok: bool
    dr_resource_id: str | None = None
    code: str | None = None
    message: str = ""
    retryable: bool = False
    details: dict[str, str] = field(default_factory=dict)
    # AWS is still at work (e.g. EFS making a replica writable): no result yet; the claim is
    # held a short while and the reconciler's next check takes it over.
    pending: bool = False


def pending(dr_id: str, message: str, details: dict[str, str]) -> Outcome:
    return Outcome(False, dr_resource_id=dr_id, message=message, details=details, pending=True)


def recovered(dr_id: str, details: dict[str, str]) -> Outcome:
    return Outcome(True, dr_resource_id=dr_id, details=details)


def failed(
    code: str, message: str, *, retryable: bool = False, details: dict[str, str] | None = None
) -> Outcome:
    return Outcome(False, code=code, message=message, retryable=retryable, details=details or {})


@dataclass(frozen=True)
class Job:
    """One resource of one wave part (or of a reconciler's check)."""

    operation_id: str
    customer: str
    environment: str
    operation: OperationType
    wave: int
    attempt: int
    ref: ResourceRef
    # A note left by the worker that waited on this resource before (e.g. the DR replica's id).
    hint: str | None = None

    @property
    def key(self) -> str:
        return f"{self.ref.resource_id}#{STEP}#{self.attempt}"

    def base(self) -> dict[str, Any]:
        return {
            "operation_id": self.operation_id,
            "customer": self.customer,
            "environment": self.environment,
            "operation": self.operation,
        }


TwinT = TypeVar("TwinT")


def only_twin(job: Job, twins: list[TwinT], kind: str, code: str) -> TwinT | Outcome:
    """With the source region down, the one DR twin of the job's resource (found by `Name`
    inside its customer + environment), or a retryable failure naming how many there are."""
    if len(twins) == 1:
        return twins[0]
    return failed(
        code,
        f"{job.ref.region} does not answer and {len(twins)} {kind} named {job.ref.name!r} of "
        f"{job.customer}/{job.environment} are in {job.ref.dr_region} (need exactly one)",
        retryable=True,
    )


class ManagedRecovery:
    def __init__(
        self,
        registry: Registry,
        workloads: Workloads,
        ledger: Ledger,
        results: Results,
        log: Log,
        *,
        lease_seconds: int = 300,
        pending_seconds: int = 60,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        primary_workloads: Workloads | None = None,
        ontap: OntapConnector | None = None,
        ontap_job_polls: int = 30,
        ontap_poll_seconds: float = 1.0,
        sleep: Callable[[float], None] = lambda seconds: None,
    ) -> None:
        # FSx for NetApp ONTAP: the REST API of a file system's management endpoint; a break or
        # resync job is polled `ontap_job_polls` times, `ontap_poll_seconds` apart.
        self.ontap = ontap
        self.ontap_job_polls = ontap_job_polls
        self.ontap_poll_seconds = ontap_poll_seconds
        self.sleep = sleep
        self.registry = registry
        self.workloads = workloads
        # Primary-region reads on failover and drills: few retries, so that an outage is
        # recognised in seconds and the flow turns to the DR side.
        self.primary_workloads = primary_workloads or workloads
        self.ledger = ledger
        self.results = results
        self.log = log
        self.lease_seconds = lease_seconds
        self.pending_seconds = pending_seconds
        self.clock = clock
        # The environment's instances in one region, read once per operation (see _server_tags).
        self._environment_instances: OrderedDict[
            tuple[str, str, str], dict[str, Instance] | None
        ] = OrderedDict()

    def primary_for(self, job: Job) -> Workloads:
        """Failback writes in the primary region: full retries there."""
        if job.operation == OperationType.FAILBACK:
            return self.workloads
        return self.primary_workloads

    # --- entry points --------------------------------------------------------------------------

    def recover_part(self, part: WaveStarted) -> dict[str, Any]:
        outcomes = [self._one(self._job(part, ref)) for ref in part.resources]
        return {
            "recovered": sum(1 for o in outcomes if o == "recovered"),
            "failed": sum(1 for o in outcomes if o == "failed"),
            "skipped": sum(1 for o in outcomes if o == "busy"),
        }

    def check(self, request: ResourceCheckRequested) -> dict[str, Any]:
        """The reconciler asks again: stored results are published again; work whose claim is
        still leased is left to its worker; an expired claim is taken over and finished."""
        outcomes = [self._one(self._job(request, ref)) for ref in request.resources]
        return {"published": sum(1 for o in outcomes if o != "busy")}

    @staticmethod
    def _job(part: WaveStarted | ResourceCheckRequested, ref: ResourceRef) -> Job:
        return Job(
            operation_id=part.operation_id,
            customer=part.customer,
            environment=part.environment,
            operation=part.operation,
            wave=part.wave,
            attempt=part.attempt,
            ref=ref,
        )

    def _one(self, job: Job) -> str:
        claim = self.ledger.claim(job.operation_id, job.key, self.clock(), self.lease_seconds)
        if claim.state == "busy":
            self.log.info(
                "Resource in flight with another worker",
                extra={"resource_id": job.ref.resource_id},
            )
            return "busy"
        if claim.state == "done" and claim.result:
            detail = _stored(claim.result)
            self.results.publish([detail])
            return "recovered" if isinstance(detail, ResourceRecovered) else "failed"
        started = self.clock()
        if claim.note:
            job = replace(job, hint=claim.note)
        try:
            outcome = self._recover(job)
        except AwsError as error:
            outcome = failed(
                AWS_ERROR, f"{error.code}: {error.message}"[:500], retryable=error.retryable
            )
        if outcome.pending:
            until = self.clock() + timedelta(seconds=self.pending_seconds)
            self.ledger.hold(job.operation_id, job.key, until, outcome.dr_resource_id or "")
            self.log.info(
                "Resource in flight: AWS is still at work",
                extra={"resource_id": job.ref.resource_id, "reason": outcome.message},
            )
            return "busy"
        detail = self._result(job, outcome, started)
        self.ledger.finish(job.operation_id, job.key, detail.model_dump_json(), self.clock())
        self.results.publish([detail])
        return "recovered" if outcome.ok else "failed"

    def _result(self, job: Job, outcome: Outcome, started: datetime) -> Detail:
        if outcome.ok and outcome.dr_resource_id:
            return ResourceRecovered(
                **job.base(),
                resource_id=job.ref.resource_id,
                wave=job.wave,
                strategy=Strategy.MANAGED_SERVICE,
                dr_resource_id=outcome.dr_resource_id,
                dr_region=job.ref.dr_region,
                started_at=started,
                completed_at=self.clock(),
                details=outcome.details,
            )
        self.log.warning(
            "Resource not recovered",
            extra={"resource_id": job.ref.resource_id, "code": outcome.code},
        )
        return ResourceRecoveryFailed(
            **job.base(),
            resource_id=job.ref.resource_id,
            wave=job.wave,
            strategy=Strategy.MANAGED_SERVICE,
            error_code=outcome.code or AWS_ERROR,
            error=outcome.message or "no reason given",
            retryable=outcome.retryable,
            started_at=started,
            failed_at=self.clock(),
        )

    def _recover(self, job: Job) -> Outcome:
        entry = self.registry.customer(job.customer)
        if entry is None:
            return failed(CUSTOMER_NOT_REGISTERED, f"customer {job.customer!r} is not registered")
        if entry.account != job.ref.account:
            return failed(
                SCOPE_MISMATCH,
                f"{job.ref.resource_id} is in account {job.ref.account}, not in customer "
                f"{job.customer!r}'s account {entry.account}",
            )
        kind = resource_type(job.ref)
        try:
            if kind == EFS:
                return EfsFlow(self, job, entry).run()
            if kind == LOAD_BALANCER:
                return LoadBalancerFlow(self, job, entry).run()
            if kind == ELASTICACHE:
                return CacheFlow(self, job, entry).run()
            if kind == FSX and self.ontap is not None:
                return OntapFlow(self, job, entry, self.ontap).run()
        except C.TagError as error:
            return failed(INVALID_MODULE_TAG, str(error))
        return failed(
            RESOURCE_TYPE_NOT_SUPPORTED,
            f"{job.ref.resource_id} is a {kind}; the managed service recovers "
            f"{', '.join(SUPPORTED)}",
        )

    # --- choreography: records that follow servers recovered by drs --------------------------

    def server_recovered(self, event: ResourceRecovered) -> DnsRecordUpdated | None:
        """Point the server's `dr:managed:dns-record` A record at its new address."""
        if event.strategy != Strategy.DRS or event.operation == OperationType.BUBBLE_TEST:
            return None
        entry = self.registry.customer(event.customer)
        if entry is None:
            self.log.error("DNS follow-up: customer not registered", extra={"c": event.customer})
            return None
        tags = self._server_tags(entry, event)
        if tags is None:
            return None
        target = None
        try:
            target = C.dns_target(tags, required=False)
        except C.TagError as error:
            self.log.error(
                "DNS follow-up refused: invalid module tag",
                extra={
                    "resource_id": event.resource_id,
                    "code": INVALID_MODULE_TAG,
                    "reason": str(error),
                },
            )
            return None
        if target is None:
            return None
        problem = C.scope_problem(
            f"server {event.resource_id}", tags, event.customer, event.environment
        )
        if problem:
            self.log.error(
                "DNS follow-up refused", extra={"code": SCOPE_MISMATCH, "reason": problem}
            )
            return None
        if not event.dr_private_ip:
            self.log.error(
                "DNS follow-up: the recovered server has no private IP",
                extra={"resource_id": event.resource_id},
            )
            return None
        key = f"{event.resource_id}#dns#{event.operation.value}"
        claim = self.ledger.claim(event.operation_id, key, self.clock(), self.lease_seconds)
        if claim.state == "busy":
            return None
        if claim.state == "done":
            if not claim.result:
                return None  # refused before (logged then)
            stored = DnsRecordUpdated.model_validate_json(claim.result)
            self.results.publish([stored])
            return stored
        route53 = self.workloads.get(entry, event.dr_region)
        zone = route53.zone(target.zone)
        if zone is None or not zone.private:
            why = "not found" if zone is None else "not a private hosted zone"
            self.log.error(
                "DNS follow-up: hosted zone unusable",
                extra={"zone": target.zone, "reason": why, "code": R53_ZONE_NOT_FOUND},
            )
            self.ledger.finish(event.operation_id, key, "", self.clock())
            return None
        existing = [r for r in route53.record_sets(zone.zone_id, target.name) if r.type == "A"]
        previous = list(existing[0].values) if existing else []
        values = [event.dr_private_ip]
        change_id, status = None, None
        if previous != values:
            ttl = existing[0].ttl if existing and existing[0].ttl else 60
            record = RecordSet(name=target.name, type="A", values=tuple(values), ttl=ttl)
            change_id = route53.upsert(
                zone.zone_id, record, f"dr {event.operation.value} {event.operation_id}"
            )
            status = route53.wait_insync(change_id)
        detail = DnsRecordUpdated(
            operation_id=event.operation_id,
            customer=event.customer,
            environment=event.environment,
            operation=event.operation,
            resource_id=event.resource_id,
            dr_resource_id=event.dr_resource_id,
            hosted_zone_id=zone.zone_id,
            record_name=target.name,
            record_type="A",
            previous_values=previous,
            values=values,
            changed=previous != values,
            change_id=change_id,
            change_status=status,
            updated_at=self.clock(),
        )
        self.ledger.finish(event.operation_id, key, detail.model_dump_json(), self.clock())
        self.results.publish([detail])
        return detail

    def _server_tags(self, entry: CustomerEntry, event: ResourceRecovered) -> dict[str, str] | None:
        """The server's tags, read again: the instance itself in each of the customer's regions
        (the primary may be down), else the instance it was recovered into."""
        # The server is `resource_id` in the region it was recovered from: on failover the
        # primary mapped to `dr_region`, on failback `dr_region` itself. Trying that first costs
        # one read per server while the region is up.
        source = [p for p, dr in entry.regions.items() if dr == event.dr_region]
        regions = [*source, event.dr_region, *entry.regions.keys(), *entry.regions.values()]
        # Where the server is expected, the operation's environment is read once (every server
        # of a wave recovers into the same question): one call per operation, not per server.
        # A server not found there is read on its own, as before.
        known = self._instances_of(entry, event, regions[0])
        if known is not None and event.resource_id in known:
            return dict(known[event.resource_id].tags)
        for region in dict.fromkeys(regions):
            try:
                found = self.workloads.get(entry, region).instance(event.resource_id)
            except AwsError:
                continue
            if found is not None:
                return dict(found.tags)
        try:
            twin = self.workloads.get(entry, event.dr_region).instance(event.dr_resource_id)
        except AwsError:
            return None
        return dict(twin.tags) if twin is not None else None

    def _instances_of(
        self, entry: CustomerEntry, event: ResourceRecovered, region: str
    ) -> dict[str, Instance] | None:
        """The operation's environment's instances in `region` (None: unreadable there)."""
        key = (event.operation_id, entry.account, region)
        if key not in self._environment_instances:
            scope = {T.CUSTOMER: event.customer, T.ENVIRONMENT: event.environment}
            try:
                found: dict[str, Instance] | None = self.workloads.get(
                    entry, region
                ).instances_tagged(scope)
            except AwsError:
                found = None
            self._environment_instances[key] = found
            while len(self._environment_instances) > ENVIRONMENTS_REMEMBERED:
                self._environment_instances.popitem(last=False)
        return self._environment_instances[key]


# Operations whose environment's instances a warm container keeps (a few at once in practice).
ENVIRONMENTS_REMEMBERED = 64


def _stored(result: str) -> Detail:
    data = json.loads(result)
    if "error_code" in data:
        return ResourceRecoveryFailed.model_validate(data)
    return ResourceRecovered.model_validate(data)


# --- EFS ------------------------------------------------------------------------------------------


class EfsFlow:
    """EFS replication: lag vs RPO, failover (delete the replication: the replica becomes
    writable), failback (replicate back, cut over, re-protect), drill (read only)."""

    def __init__(self, owner: ManagedRecovery, job: Job, entry: CustomerEntry) -> None:
        self.job = job
        self.ref = job.ref
        self.now = owner.clock
        self.primary = owner.primary_for(job).get(entry, job.ref.region)
        self.dr = owner.workloads.get(entry, job.ref.dr_region)

    def run(self) -> Outcome:
        if self.job.operation == OperationType.FAILBACK:
            return self.failback()
        return self.failover(drill=self.job.operation == OperationType.BUBBLE_TEST)

    def _scope(self, fs: FileSystem) -> Outcome | None:
        problem = C.scope_problem(
            f"file system {fs.file_system_id} ({fs.region})",
            fs.tags,
            self.job.customer,
            self.job.environment,
        )
        return failed(SCOPE_MISMATCH, problem) if problem else None

    def failover(self, drill: bool) -> Outcome:
        fs_id = self.ref.resource_id
        source_down = False
        expected_dr: str | None = None
        try:
            source = self.primary.file_system(fs_id)
            if source is None:
                return failed(EFS_NOT_FOUND, f"file system {fs_id} not found in {self.ref.region}")
            if stop := self._scope(source):
                return stop
            expected_dr = C.dr_file_system(source.tags) or self.job.hint
            replications = self.primary.replications(fs_id)
        except AwsError as error:
            if not error.unreachable:
                raise
            # The source region does not answer: read the replication from the DR side.
            source_down = True
            expected_dr = self.job.hint
            replications = self.dr.replications()
        replication = next((r for r in replications if r.source_file_system_id == fs_id), None)
        destination = None
        if replication is not None:
            destination = next(
                (d for d in replication.destinations if d.region == self.ref.dr_region), None
            )
        details = {
            "source_region_down": str(source_down).lower(),
            "rpo_target_seconds": str(self.ref.rpo_target_minutes * 60),
        }
        if destination is None:
            if not drill and expected_dr:
                done = self._already_failed_over(expected_dr, details)
                if done is not None:
                    return done
            return failed(
                EFS_NO_REPLICATION,
                f"file system {fs_id} has no replication to {self.ref.dr_region}",
                details=details,
            )
        dr_id = destination.file_system_id
        details["dr_file_system_id"] = dr_id
        details["replication_status"] = destination.status
        if destination.status == "DELETING" and not drill:
            details["already"] = "replication being deleted"
            return self._writable(dr_id, details)
        if expected_dr and expected_dr != dr_id:
            return failed(
                EFS_DR_MISMATCH,
                f"{C.DR_FILE_SYSTEM}={expected_dr!r} but {fs_id} replicates to {dr_id}",
                details=details,
            )
        if destination.status != "ENABLED":
            message = f": {destination.status_message}" if destination.status_message else ""
            return failed(
                EFS_REPLICATION_NOT_ENABLED,
                f"replication of {fs_id} to {dr_id} is {destination.status}{message}",
                details=details,
            )
        if destination.last_replicated is None:
            return failed(
                EFS_NEVER_REPLICATED, f"{fs_id} has not replicated to {dr_id} yet", details=details
            )
        lag = C.lag_seconds(destination.last_replicated, self.now())
        details["lag_seconds"] = str(lag)
        details["last_replicated"] = destination.last_replicated.isoformat()
        details["estimated_data_loss_seconds"] = str(lag)
        rpo = self.ref.rpo_target_minutes * 60
        if lag > rpo:
            return failed(
                EFS_LAG_OVER_RPO,
                f"replication lag of {fs_id} to {dr_id} is {lag} s, over the RPO of "
                f"{self.ref.rpo_target_minutes} min ({T.RPO_TARGET}); nothing was changed",
                details=details,
            )
        replica = self.dr.file_system(dr_id)
        if replica is None:
            return failed(
                EFS_DR_COPY_MISSING,
                f"DR copy {dr_id} not found in {self.ref.dr_region}",
                details=details,
            )
        if stop := self._scope(replica):
            return stop
        if drill:
            details["drill"] = "read-only: replication left as it is"
            return recovered(dr_id, details)
        # Act: delete the replication; the replica becomes writable.
        if source_down:
            self.dr.delete_replication(dr_id, local_only=True)
            details["deletion_mode"] = "LOCAL_CONFIGURATION_ONLY"
        else:
            self.primary.delete_replication(fs_id, local_only=False)
            details["deletion_mode"] = "ALL_CONFIGURATIONS"
        return self._writable(dr_id, details)

    def _writable(self, dr_id: str, details: dict[str, str]) -> Outcome:
        replica = self.dr.file_system(dr_id)
        left = [r for r in self.dr.replications(dr_id) if _involves(r, dr_id)]
        if replica is None:
            return failed(EFS_DR_COPY_MISSING, f"{dr_id} is gone", details=details)
        if not replica.writable or left:
            # EFS takes minutes to end a replication: checked again on the reconciler's next
            # ResourceCheckRequested once the hold ends.
            return pending(
                dr_id,
                f"{dr_id} is not writable yet (protection {replica.protection}, "
                f"{len(left)} replication(s) left)",
                details,
            )
        details["dr_protection"] = replica.protection
        return recovered(dr_id, details)

    def _already_failed_over(self, dr_id: str, details: dict[str, str]) -> Outcome | None:
        """A worker that crashed after deleting the replication: the replica is writable."""
        replica = self.dr.file_system(dr_id)
        if replica is None or self._scope(replica) is not None or not replica.writable:
            return None
        if any(_involves(r, dr_id) for r in self.dr.replications(dr_id)):
            return None
        details |= {"dr_file_system_id": dr_id, "already": "replication already deleted"}
        return self._writable(dr_id, details)

    def failback(self) -> Outcome:
        original_id = self.ref.resource_id
        original = self.primary.file_system(original_id)
        if original is None:
            return failed(
                EFS_NOT_FOUND, f"file system {original_id} not found in {self.ref.region}"
            )
        if stop := self._scope(original):
            return stop
        dr_id = C.dr_file_system(original.tags)
        if dr_id is None:
            return failed(
                INVALID_MODULE_TAG,
                f"tag {C.DR_FILE_SYSTEM} is missing on {original_id}: failback needs the DR "
                "file system that served during the failover",
            )
        details = {
            "dr_file_system_id": dr_id,
            "rpo_target_seconds": str(self.ref.rpo_target_minutes * 60),
        }
        replica = self.dr.file_system(dr_id)
        if replica is None:
            return failed(EFS_DR_COPY_MISSING, f"{dr_id} not found in {self.ref.dr_region}")
        if stop := self._scope(replica):
            return stop
        forward = self._replication(self.primary, original_id, dr_id)
        if forward is not None and replica.protection == "REPLICATING" and original.writable:
            details["already"] = "protected again: replication to the DR region runs"
            return recovered(original_id, details | {"direction": "primary->dr"})
        reverse = self._replication(self.dr, dr_id, original_id)
        if reverse is None and not original.writable:
            return failed(
                EFS_FAILBACK_TARGET,
                f"{original_id} is read-only (a replication destination of another file "
                "system); it cannot receive the DR copy",
                details=details,
            )
        if reverse is None and forward is None:
            # Replicate the DR copy back into the original (its overwrite protection off first).
            if original.protection != "DISABLED":
                self.primary.set_protection(original_id, "DISABLED")
            reverse = self.dr.create_replication(dr_id, self.ref.region, original_id)
            details["reverse_replication"] = "created"
        if reverse is not None:
            destination = reverse.destinations[0]
            if destination.status != "ENABLED" or destination.last_replicated is None:
                return failed(
                    EFS_FAILBACK_SYNC_PENDING,
                    f"replication {dr_id} -> {original_id} is {destination.status} and has not "
                    "completed a sync yet; retry the wave (retry-failed) once it has",
                    retryable=True,
                    details=details,
                )
            details["reverse_lag_seconds"] = str(
                C.lag_seconds(destination.last_replicated, self.now())
            )
            # Cut over: the original becomes writable again.
            self.dr.delete_replication(dr_id, local_only=False)
        original = self.primary.file_system(original_id)
        if original is None or not original.writable:
            return failed(
                EFS_NOT_WRITABLE,
                f"{original_id} is not writable after the cut-over",
                retryable=True,
                details=details,
            )
        # Re-protect: replicate the original to the DR copy again.
        if self._replication(self.primary, original_id, dr_id) is None:
            if replica.protection != "DISABLED":
                self.dr.set_protection(dr_id, "DISABLED")
            created = self.primary.create_replication(original_id, self.ref.dr_region, dr_id)
            status = created.destinations[0].status if created.destinations else "missing"
            if status not in ("ENABLED", "ENABLING"):
                return failed(
                    EFS_REPROTECT_FAILED,
                    f"replication {original_id} -> {dr_id} is {status}",
                    retryable=True,
                    details=details,
                )
            details["reprotect_status"] = status
        details["direction"] = "primary->dr"
        return recovered(original_id, details)

    @staticmethod
    def _replication(where: Workload, source: str, destination: str) -> EfsReplication | None:
        for replication in where.replications(source):
            if replication.source_file_system_id == source and any(
                d.file_system_id == destination for d in replication.destinations
            ):
                return replication
        return None


def _involves(replication: EfsReplication, fs_id: str) -> bool:
    return replication.source_file_system_id == fs_id or any(
        d.file_system_id == fs_id for d in replication.destinations
    )


# --- Route 53 failover for load balancers ---------------------------------------------------------


def lb_name(resource_id: str) -> str:
    """The load balancer's name, also from an ARN resource path (`app/<name>/<id>`)."""
    parts = resource_id.split("loadbalancer/")[-1].split("/")
    return parts[1] if len(parts) == 3 else parts[0]


class LoadBalancerFlow:
    """The failover record of an ALB/NLB name: a PRIMARY/SECONDARY pair flips by inverting the
    primary's health check; a plain CNAME / alias record is UPSERTed to the DR load balancer."""

    def __init__(self, owner: ManagedRecovery, job: Job, entry: CustomerEntry) -> None:
        self.job = job
        self.ref = job.ref
        self.primary = owner.primary_for(job).get(entry, job.ref.region)
        self.dr = owner.workloads.get(entry, job.ref.dr_region)

    def _scope(self, lb: LoadBalancer, region: str) -> Outcome | None:
        problem = C.scope_problem(
            f"load balancer {lb.name} ({region})", lb.tags, self.job.customer, self.job.environment
        )
        return failed(SCOPE_MISMATCH, problem) if problem else None

    def run(self) -> Outcome:
        name = lb_name(self.ref.resource_id)
        details: dict[str, str] = {}
        primary_lb: LoadBalancer | None = None
        try:
            primary_lb = self.primary.load_balancer(name)
            if primary_lb is None:
                return failed(LB_NOT_FOUND, f"load balancer {name} not found in {self.ref.region}")
            if stop := self._scope(primary_lb, self.ref.region):
                return stop
            tags = primary_lb.tags
            dr_name = C.dr_load_balancer(tags)
            if dr_name is None:
                raise C.TagError(f"tag {C.DR_LOAD_BALANCER} is missing on {name}")
            dr_lb = self.dr.load_balancer(dr_name)
        except AwsError as error:
            if not error.unreachable or self.job.operation == OperationType.FAILBACK:
                raise
            # Primary region down: the DR twin by Name, inside the same customer + environment.
            details["source_region_down"] = "true"
            twin = only_twin(
                self.job,
                [
                    lb
                    for lb in self.dr.load_balancers_named(self.ref.name)
                    if self._scope(lb, self.ref.dr_region) is None
                ],
                "load balancers",
                LB_DR_NOT_FOUND,
            )
            if isinstance(twin, Outcome):
                return twin
            dr_lb, tags = twin, twin.tags
        if dr_lb is None:
            return failed(LB_DR_NOT_FOUND, f"DR load balancer not found in {self.ref.dr_region}")
        if stop := self._scope(dr_lb, self.ref.dr_region):
            return stop
        if dr_lb.state != "active":
            return failed(
                LB_DR_NOT_ACTIVE, f"DR load balancer {dr_lb.name} is {dr_lb.state}, not active"
            )
        target = C.dns_target(tags)
        assert target is not None
        details |= {"dr_load_balancer": dr_lb.name, "record": target.name}
        zone = self.dr.zone(target.zone)
        if zone is None:
            return failed(R53_ZONE_NOT_FOUND, f"hosted zone {target.zone} not found")
        records = self.dr.record_sets(zone.zone_id, target.name)
        pair = C.failover_pair(records)
        failing_back = self.job.operation == OperationType.FAILBACK
        if pair is not None:
            return self._pair(pair, dr_lb, details, failing_back)
        plain = C.simple_record(records)
        if plain is None:
            return failed(
                R53_RECORD_NOT_FOUND,
                f"{target.name} in {zone.name} has neither a PRIMARY/SECONDARY failover pair nor "
                "one plain record",
                details=details,
            )
        return self._plain(zone.zone_id, plain, dr_lb, primary_lb, details, failing_back)

    def _pair(
        self, pair: C.FailoverPair, dr_lb: LoadBalancer, details: dict[str, str], back: bool
    ) -> Outcome:
        details["mode"] = "health-check-inversion"
        if pair.primary.health_check_id is None:
            return failed(
                R53_NO_HEALTH_CHECK,
                f"PRIMARY {pair.primary.name} has no health check",
                details=details,
            )
        if not any(C.dns_name_matches(v, dr_lb.dns_name) for v in pair.secondary.values):
            return failed(
                R53_SECONDARY_NOT_DR,
                f"SECONDARY {pair.secondary.name} answers {list(pair.secondary.values)}, not the "
                f"DR load balancer {dr_lb.dns_name}",
                details=details,
            )
        check_id = pair.primary.health_check_id
        check = self.dr.health_check(check_id)
        if check is None:
            return failed(
                R53_NO_HEALTH_CHECK, f"health check {check_id} not found", details=details
            )
        if check.disabled:
            return failed(
                R53_HEALTH_CHECK_DISABLED,
                f"health check {check_id} is disabled: Route 53 counts it healthy whatever its "
                "inversion, so the record cannot be flipped with it",
                details=details,
            )
        details["health_check_id"] = check_id
        details["answer_before"] = C.failover_answer(pair, check.inverted, check.disabled)
        if self.job.operation == OperationType.BUBBLE_TEST:
            details["drill"] = "read-only: record and health check left as they are"
            return recovered(dr_lb.name, details)
        want = not back
        if check.inverted != want:
            self.dr.set_inverted(check_id, want)
        after = self.dr.health_check(check_id)
        answer = C.failover_answer(pair, after.inverted if after else False, False)
        details["answer"] = answer
        details["answer_values"] = ",".join(
            (pair.secondary if answer == "SECONDARY" else pair.primary).values
        )
        expected = "PRIMARY" if back else "SECONDARY"
        if answer != expected:
            return failed(
                R53_NOT_FLIPPED,
                f"{pair.primary.name} answers {answer}, not {expected}",
                details=details,
            )
        return recovered(self.ref.resource_id if back else dr_lb.name, details)

    def _plain(
        self,
        zone_id: str,
        record: RecordSet,
        dr_lb: LoadBalancer,
        primary_lb: LoadBalancer | None,
        details: dict[str, str],
        back: bool,
    ) -> Outcome:
        details["mode"] = "upsert"
        details["answer_before"] = ",".join(record.values)
        if self.job.operation == OperationType.BUBBLE_TEST:
            details["drill"] = "read-only: record left as it is"
            return recovered(dr_lb.name, details)
        target_lb = primary_lb if back else dr_lb
        if target_lb is None:
            return failed(LB_NOT_FOUND, f"load balancer {self.ref.resource_id} not found")
        if not any(C.dns_name_matches(v, target_lb.dns_name) for v in record.values):
            change = self.dr.upsert(
                zone_id,
                RecordSet(
                    name=record.name,
                    type=record.type,
                    values=(target_lb.dns_name,),
                    alias=record.alias,
                    ttl=record.ttl,
                    alias_zone_id=target_lb.canonical_zone_id if record.alias else None,
                ),
                f"dr {self.job.operation.value} {self.job.operation_id}",
            )
            status = self.dr.wait_insync(change)
            details["change_id"] = change
            details["change_status"] = status
            if status != "INSYNC":
                return failed(
                    R53_NOT_INSYNC, f"change {change} is {status}", retryable=True, details=details
                )
        after = C.simple_record(self.dr.record_sets(zone_id, record.name))
        values = list(after.values) if after else []
        details["answer"] = ",".join(values)
        if not any(C.dns_name_matches(v, target_lb.dns_name) for v in values):
            return failed(
                R53_NOT_FLIPPED,
                f"{record.name} answers {values}, not {target_lb.dns_name}",
                details=details,
            )
        return recovered(target_lb.name, details)


# --- ElastiCache: endpoint switch -------------------------------------------------------------


class CacheFlow:
    """A regional cache with a DR twin and no replication between them: the application's
    endpoint record (a plain CNAME) switches to the DR group's primary endpoint. Members of a
    Global Datastore fail over with the datastore (`GlobalCacheFlow`)."""

    def __init__(self, owner: ManagedRecovery, job: Job, entry: CustomerEntry) -> None:
        self.owner = owner
        self.job = job
        self.ref = job.ref
        self.primary = owner.primary_for(job).get(entry, job.ref.region)
        self.dr = owner.workloads.get(entry, job.ref.dr_region)

    def _scope(self, group: CacheGroup, region: str) -> Outcome | None:
        problem = C.scope_problem(
            f"replication group {group.group_id} ({region})",
            group.tags,
            self.job.customer,
            self.job.environment,
        )
        return failed(SCOPE_MISMATCH, problem) if problem else None

    def run(self) -> Outcome:
        group_id = self.ref.resource_id.split(":")[-1]
        details: dict[str, str] = {"replication": "none: endpoint switch"}
        primary: CacheGroup | None = None
        try:
            primary = self.primary.replication_group(group_id)
            if primary is None:
                return failed(CACHE_NOT_FOUND, f"replication group {group_id} not found")
            if stop := self._scope(primary, self.ref.region):
                return stop
            if primary.global_group_id:
                return GlobalCacheFlow(self.owner, self.job, self.dr).run(primary)
            tags = primary.tags
            dr_id = C.dr_replication_group(tags)
            if dr_id is None:
                raise C.TagError(f"tag {C.DR_REPLICATION_GROUP} is missing on {group_id}")
            dr_group = self.dr.replication_group(dr_id)
        except AwsError as error:
            if not error.unreachable or self.job.operation == OperationType.FAILBACK:
                raise
            details["source_region_down"] = "true"
            twin = only_twin(
                self.job,
                [
                    g
                    for g in self.dr.replication_groups_named(self.ref.name)
                    if self._scope(g, self.ref.dr_region) is None
                ],
                "replication groups",
                CACHE_DR_NOT_FOUND,
            )
            if isinstance(twin, Outcome):
                return twin
            dr_group, tags = twin, twin.tags
            if dr_group.global_group_id:
                return GlobalCacheFlow(self.owner, self.job, self.dr).run(None, dr_group)
        if dr_group is None:
            return failed(CACHE_DR_NOT_FOUND, f"DR replication group not in {self.ref.dr_region}")
        if stop := self._scope(dr_group, self.ref.dr_region):
            return stop
        if dr_group.status != "available" or not dr_group.primary_endpoint:
            return failed(
                CACHE_DR_NOT_AVAILABLE,
                f"DR replication group {dr_group.group_id} is {dr_group.status}"
                + ("" if dr_group.primary_endpoint else " with no primary endpoint"),
            )
        target = C.dns_target(tags)
        assert target is not None
        details |= {"dr_replication_group": dr_group.group_id, "record": target.name}
        zone = self.dr.zone(target.zone)
        if zone is None:
            return failed(R53_ZONE_NOT_FOUND, f"hosted zone {target.zone} not found")
        record = C.simple_record(self.dr.record_sets(zone.zone_id, target.name))
        if record is None:
            return failed(
                R53_RECORD_NOT_FOUND,
                f"{target.name} has no single plain record to switch",
                details=details,
            )
        details["answer_before"] = ",".join(record.values)
        if self.job.operation == OperationType.BUBBLE_TEST:
            details["drill"] = "read-only: endpoint record left as it is"
            return recovered(dr_group.group_id, details)
        back = self.job.operation == OperationType.FAILBACK
        chosen = primary if back else dr_group
        if chosen is None or not chosen.primary_endpoint:
            return failed(CACHE_NOT_FOUND, f"{group_id} has no primary endpoint to switch back to")
        endpoint = chosen.primary_endpoint
        return switch_record(
            self.dr, zone.zone_id, record, endpoint, details, self.job, chosen.group_id
        )


def switch_record(
    where: Workload,
    zone_id: str,
    record: RecordSet,
    value: str,
    details: dict[str, str],
    job: Job,
    dr_id: str,
) -> Outcome:
    """UPSERT a plain record to `value` (unless it holds it), wait INSYNC, read it back."""
    if not any(C.dns_name_matches(v, value) for v in record.values):
        change = where.upsert(
            zone_id,
            RecordSet(name=record.name, type=record.type, values=(value,), ttl=record.ttl),
            f"dr {job.operation.value} {job.operation_id}",
        )
        status = where.wait_insync(change)
        details |= {"change_id": change, "change_status": status}
        if status != "INSYNC":
            return failed(
                R53_NOT_INSYNC, f"change {change} is {status}", retryable=True, details=details
            )
    after = C.simple_record(where.record_sets(zone_id, record.name))
    values = list(after.values) if after else []
    details["answer"] = ",".join(values)
    if not any(C.dns_name_matches(v, value) for v in values):
        return failed(
            R53_NOT_FLIPPED, f"{record.name} answers {values}, not {value}", details=details
        )
    return recovered(dr_id, details)


# --- FSx for NetApp ONTAP: SnapMirror ---------------------------------------------------------


class OntapFlow:
    """SnapMirror from the primary file system's volumes to the DR file system's, through the
    ONTAP REST API of the DR file system's management endpoint (the FSx API has no SnapMirror
    calls). Failover breaks the relationships (the DR volumes become writable); failback resyncs
    them (primary -> DR again, `dr:managed:ontap-failback=resync` required: DR-side writes after
    the break are discarded); a drill only validates."""

    def __init__(
        self, owner: ManagedRecovery, job: Job, entry: CustomerEntry, connector: OntapConnector
    ) -> None:
        self.owner = owner
        self.job = job
        self.ref = job.ref
        self.connector = connector
        self.primary = owner.primary_for(job).get(entry, job.ref.region)
        self.dr = owner.workloads.get(entry, job.ref.dr_region)

    def _scope(self, fs: FsxFileSystem) -> Outcome | None:
        problem = C.scope_problem(
            f"file system {fs.file_system_id} ({fs.region})",
            fs.tags,
            self.job.customer,
            self.job.environment,
        )
        return failed(SCOPE_MISMATCH, problem) if problem else None

    def run(self) -> Outcome:
        try:
            return self._run()
        except OntapError as error:
            return failed(
                ONTAP_API_ERROR,
                f"ONTAP REST API of the DR file system: {error}"[:500],
                retryable=error.retryable,
            )

    def _source(
        self, fs_id: str, details: dict[str, str]
    ) -> tuple[Mapping[str, str], Outcome | None]:
        """The primary file system's tags (scope checked); with the primary region down on a
        failover or drill, the DR file system of the same `Name` inside the scope carries them."""
        try:
            source = self.primary.fsx_file_system(fs_id)
        except AwsError as error:
            if not error.unreachable or self.job.operation == OperationType.FAILBACK:
                raise
            details["source_region_down"] = "true"
            twin = only_twin(
                self.job,
                [
                    f
                    for f in self.dr.fsx_file_systems()
                    if f.tags.get(T.NAME) == self.ref.name and self._scope(f) is None
                ],
                "FSx file systems",
                FSX_DR_NOT_FOUND,
            )
            if isinstance(twin, Outcome):
                return {}, twin
            return {**twin.tags, C.DR_FILE_SYSTEM: twin.file_system_id}, None
        if source is None:
            return {}, failed(
                FSX_NOT_FOUND, f"FSx file system {fs_id} not found in {self.ref.region}"
            )
        if stop := self._scope(source):
            return {}, stop
        if source.file_system_type != "ONTAP":
            return {}, failed(
                FSX_NOT_ONTAP,
                f"{fs_id} is an FSx for {source.file_system_type} file system; the managed "
                "service recovers FSx for NetApp ONTAP (SnapMirror) only",
            )
        return source.tags, None

    def _run(self) -> Outcome:
        fs_id = self.ref.resource_id.split("/")[-1]
        details: dict[str, str] = {"rpo_target_seconds": str(self.ref.rpo_target_minutes * 60)}
        tags, stop = self._source(fs_id, details)
        if stop is not None:
            return stop
        dr_id = C.fsx_dr_file_system(tags)
        secret_id = C.ontap_secret(tags)
        volumes = C.ontap_volumes(tags)
        back = self.job.operation == OperationType.FAILBACK
        if back and C.ontap_failback(tags) is None:
            return failed(
                ONTAP_FAILBACK_MODE_REQUIRED,
                f"tag {C.ONTAP_FAILBACK} is missing on {fs_id}: failback resyncs primary -> DR, "
                "discarding what was written on the DR volumes after the break; set it to "
                "'resync' to allow that (a reverse copy DR -> primary is not done by this module)",
            )
        details["dr_file_system_id"] = dr_id
        dr_fs = self.dr.fsx_file_system(dr_id)
        if dr_fs is None:
            return failed(FSX_DR_NOT_FOUND, f"DR file system {dr_id} not in {self.ref.dr_region}")
        if stop := self._scope(dr_fs):
            return stop
        if dr_fs.file_system_type != "ONTAP":
            return failed(FSX_NOT_ONTAP, f"DR file system {dr_id} is {dr_fs.file_system_type}")
        if dr_fs.lifecycle != "AVAILABLE":
            return failed(
                FSX_DR_NOT_AVAILABLE,
                f"DR file system {dr_id} is {dr_fs.lifecycle}, not AVAILABLE",
                retryable=dr_fs.lifecycle in ("CREATING", "UPDATING"),
            )
        if not dr_fs.management_dns and not dr_fs.management_ips:
            return failed(
                FSX_NO_MANAGEMENT_ENDPOINT, f"DR file system {dr_id} reports no management endpoint"
            )
        details["management_endpoint"] = dr_fs.management_dns or dr_fs.management_ips[0]
        secret = self.dr.secret(secret_id)
        if secret is None:
            return failed(
                ONTAP_SECRET_NOT_FOUND,
                f"secret {secret_id!r} ({C.ONTAP_SECRET}) not found in {self.ref.dr_region}",
            )
        try:
            username, password = C.credentials(secret)
        except ValueError as error:
            return failed(ONTAP_SECRET_INVALID, f"secret {secret_id!r}: {error}")
        api = self.connector.connect(dr_fs, username, password)
        relationships = self._relationships(api.relationships(), volumes)
        if isinstance(relationships, Outcome):
            return relationships
        details["relationships"] = str(len(relationships))
        details["destinations"] = ",".join(r.destination_path for r in relationships)
        details["states_before"] = ",".join(r.state for r in relationships)
        if back:
            return self._failback(api, fs_id, relationships, details)
        return self._failover(api, dr_id, relationships, details)

    def _relationships(
        self, found: list[SnapMirror], volumes: tuple[str, ...] | None
    ) -> list[SnapMirror] | Outcome:
        chosen = [r for r in found if volumes is None or r.destination_path in volumes]
        missing = [v for v in volumes or () if v not in {r.destination_path for r in found}]
        if missing:
            return failed(
                ONTAP_NO_RELATIONSHIP,
                f"no SnapMirror relationship to {', '.join(missing)} ({C.ONTAP_VOLUMES}) on the "
                "DR file system",
            )
        if not chosen:
            return failed(
                ONTAP_NO_RELATIONSHIP, "the DR file system is the destination of no SnapMirror"
            )
        return chosen

    def _failover(
        self, api: Ontap, dr_id: str, relationships: list[SnapMirror], details: dict[str, str]
    ) -> Outcome:
        drill = self.job.operation == OperationType.BUBBLE_TEST
        rpo = self.ref.rpo_target_minutes * 60
        to_break = [r for r in relationships if r.state != "broken_off"]
        if drill or len(to_break) == len(relationships):
            # Nothing broken yet: every relationship must be ready before the first break.
            lags: list[int] = []
            for r in relationships:
                problem, lag = C.snapmirror_problem(
                    r.uuid,
                    r.destination_path,
                    r.state,
                    r.healthy,
                    r.lag_time,
                    rpo,
                    r.unhealthy_reason,
                )
                if lag is not None:
                    lags.append(lag)
                if problem is not None:
                    if lags:
                        details["lag_seconds"] = str(max(lags))
                    return failed(
                        problem.code, f"{problem.message}; nothing was broken", details=details
                    )
            details["lag_seconds"] = str(max(lags))
            details["estimated_data_loss_seconds"] = str(max(lags))
        else:
            details["already"] = f"{len(relationships) - len(to_break)} already broken off"
        if drill:
            details["drill"] = "read-only: SnapMirror left as it is"
            return recovered(dr_id, details)
        return self._set_all(api, to_break, "broken_off", dr_id, details, ONTAP_NOT_BROKEN)

    def _failback(
        self, api: Ontap, fs_id: str, relationships: list[SnapMirror], details: dict[str, str]
    ) -> Outcome:
        to_resync = [r for r in relationships if r.state != "snapmirrored"]
        if not to_resync:
            details["already"] = "every relationship is snapmirrored"
        details["direction"] = "primary->dr"
        details["dr_writes_after_break"] = "discarded by the resync"
        return self._set_all(api, to_resync, "snapmirrored", fs_id, details, ONTAP_NOT_RESYNCED)

    def _set_all(
        self,
        api: Ontap,
        relationships: list[SnapMirror],
        state: str,
        dr_id: str,
        details: dict[str, str],
        not_done: str,
    ) -> Outcome:
        jobs: list[str] = []
        for r in relationships:
            jobs.append(api.set_state(r.uuid, state))
        for uuid in jobs:
            job = self._wait(api, uuid)
            if job.state == "failure":
                return failed(
                    ONTAP_JOB_FAILED,
                    f"ONTAP job {uuid} ({state}) failed: {job.message}",
                    retryable=True,
                    details=details,
                )
            if job.state != "success":
                return pending(dr_id, f"ONTAP job {uuid} ({state}) is {job.state}", details)
        if jobs:
            details["jobs"] = ",".join(jobs)
        wanted = {r.destination_path for r in relationships} | set(
            details["destinations"].split(",")
        )
        after = [r for r in api.relationships() if r.destination_path in wanted]
        details["states"] = ",".join(r.state for r in after)
        wrong = [r for r in after if r.state != state]
        if wrong or not after:
            return failed(
                not_done,
                f"after the jobs, {', '.join(f'{r.destination_path}={r.state}' for r in wrong)} "
                f"instead of {state}",
                retryable=True,
                details=details,
            )
        return recovered(dr_id, details)

    def _wait(self, api: Ontap, uuid: str) -> OntapJob:
        job = api.job(uuid)
        for _ in range(self.owner.ontap_job_polls):
            if job.state in ("success", "failure"):
                return job
            self.owner.sleep(self.owner.ontap_poll_seconds)
            job = api.job(uuid)
        return job


# --- ElastiCache: Global Datastore failover ---------------------------------------------------


class GlobalCacheFlow:
    """A replication group that is a member of a Global Datastore: FailoverGlobalReplicationGroup
    to the member in the DR region (failover) or back to the member in the primary region
    (failback), then DescribeGlobalReplicationGroups until that member is PRIMARY and the
    datastore available. A drill only validates."""

    def __init__(self, owner: ManagedRecovery, job: Job, dr: Workload) -> None:
        self.owner = owner
        self.job = job
        self.ref = job.ref
        self.dr = dr

    def run(self, primary: CacheGroup | None, dr_member: CacheGroup | None = None) -> Outcome:
        anchor = primary or dr_member
        assert anchor is not None and anchor.global_group_id
        global_id = anchor.global_group_id
        details: dict[str, str] = {"replication": "global datastore", "global_datastore": global_id}
        if primary is None:
            details["source_region_down"] = "true"
        store = self.dr.global_datastore(global_id)
        if store is None:
            return failed(
                CACHE_GLOBAL_NOT_FOUND,
                f"Global Datastore {global_id} not found from {self.ref.dr_region}",
                details=details,
            )
        details["roles_before"] = _roles(store)
        back = self.job.operation == OperationType.FAILBACK
        region = self.ref.region if back else self.ref.dr_region
        target = store.member_in(region)
        if target is None:
            return failed(
                CACHE_GLOBAL_NO_MEMBER,
                f"Global Datastore {global_id} has no member in {region}",
                details=details,
            )
        group = self.dr.replication_group(target.group_id) if region == self.dr.region else None
        if group is not None:
            problem = C.scope_problem(
                f"replication group {group.group_id} ({region})",
                group.tags,
                self.job.customer,
                self.job.environment,
            )
            if problem:
                return failed(SCOPE_MISMATCH, problem, details=details)
        details["target_member"] = target.group_id
        result_id = target.group_id
        if target.role == "PRIMARY" and store.status == "available":
            details["already"] = f"{target.group_id} is the primary"
            if self.job.operation == OperationType.BUBBLE_TEST:
                details["drill"] = "read-only: Global Datastore left as it is"
            return recovered(result_id, details)
        if store.status != "available" or target.status != "associated":
            return failed(
                CACHE_GLOBAL_NOT_AVAILABLE,
                f"Global Datastore {global_id} is {store.status}, member {target.group_id} is "
                f"{target.status} (need available / associated); nothing was changed",
                retryable=store.status == "modifying",
                details=details,
            )
        if self.job.operation == OperationType.BUBBLE_TEST:
            details["drill"] = "read-only: Global Datastore left as it is"
            return recovered(result_id, details)
        self.dr.failover_global(global_id, region, target.group_id)
        details["failover_to"] = f"{region}/{target.group_id}"
        store = self._wait(global_id, region, target.group_id)
        details["roles"] = _roles(store) if store else ""
        member = store.member_in(region) if store else None
        if store is None or member is None or member.role != "PRIMARY":
            return pending(result_id, f"{target.group_id} is not the primary yet", details)
        if store.status != "available":
            return pending(result_id, f"Global Datastore {global_id} is {store.status}", details)
        return recovered(result_id, details)

    def _wait(self, global_id: str, region: str, group_id: str) -> GlobalDatastore | None:
        store = self.dr.global_datastore(global_id)
        for _ in range(self.owner.ontap_job_polls):
            member = store.member_in(region) if store else None
            if store and member and member.role == "PRIMARY" and store.status == "available":
                return store
            self.owner.sleep(self.owner.ontap_poll_seconds)
            store = self.dr.global_datastore(global_id)
        return store


def _roles(store: GlobalDatastore) -> str:
    return ",".join(f"{m.region}/{m.group_id}={m.role}" for m in store.members)
