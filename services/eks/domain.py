"""EKS recovery, pure: module tags, DR-cluster readiness, the Route 53 flip and its validation.

The resource of a wave is the PRIMARY cluster (`eks:cluster`, `resource_id` = cluster name). Per
resource and operation:

- readiness of the target cluster (the DR cluster on failover and drill, the primary cluster on
  failback): ACTIVE, every managed node group ACTIVE with desired size > 0 and Ready nodes, every
  add-on ACTIVE, every deployment available (availableReplicas == replicas) and every running
  pod Ready, read through the cluster's Kubernetes API;
- the failover records (`dr:eks:records`): a PRIMARY/SECONDARY failover pair per name and type,
  a health check on the PRIMARY;
- failover: invert the PRIMARY's health check (a disabled check counts as healthy, so disabling
  is no failover); failback: un-invert it; a drill changes nothing;
- validation: Route 53's own answer for each name (`TestDNSAnswer`, which evaluates health checks
  and failover routing) must be the SECONDARY's values (failover) or the PRIMARY's (failback),
  polled on a short backoff while the health check status propagates;
- exactly one `ResourceRecovered` or `ResourceRecoveryFailed`, stored before it is published so
  that a redelivery or the coordinator's reconciler gets the same result again.

Nothing here imports boto3; the ports are in `ports.py`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from drcore import tags as T
from drcore.registry import CustomerEntry
from events.schemas import (
    Detail,
    OperationType,
    ResourceRecovered,
    ResourceRecoveryFailed,
    Strategy,
)
from events.schemas.models import ResourceCheckRequested, ResourceRef, WaveStarted

from .ports import (
    AwsError,
    Cluster,
    ClusterApi,
    Dns,
    FailoverRecord,
    HealthCheck,
    Kubernetes,
    Ledger,
    Registry,
    ResourceRecord,
    Results,
    Workloads,
)

# --- module tags (on the primary cluster; a copy on the DR cluster) -------------------------------

TAG_DR_CLUSTER = "dr:eks:dr-cluster"
TAG_RECORDS = "dr:eks:records"
TAG_NAMESPACES = "dr:eks:namespaces"
TAG_ROUTING_CONTROL = "dr:eks:routing-control"
# On the DR cluster: the primary cluster it stands in for (found by it when the primary region's
# EKS API cannot be reached during an outage).
TAG_PRIMARY_CLUSTER = "dr:eks:primary-cluster"
MODULE_TAGS = (TAG_DR_CLUSTER, TAG_RECORDS, TAG_NAMESPACES, TAG_ROUTING_CONTROL)

NODEGROUP_LABEL = "eks.amazonaws.com/nodegroup"
MAX_RECORDS = 10

_CLUSTER_NAME = re.compile(r"^[0-9A-Za-z][A-Za-z0-9\-_]{0,99}$")
_ZONE_ID = re.compile(r"^[A-Z0-9]{1,32}$")
_DNS_NAME = re.compile(
    r"^(?=.{1,253}\.?$)([A-Za-z0-9_*]([A-Za-z0-9\-_]{0,61}[A-Za-z0-9_])?\.)*"
    r"[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.?$"
)
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

# --- reason codes ---------------------------------------------------------------------------------

CUSTOMER_NOT_REGISTERED = "CUSTOMER_NOT_REGISTERED"
PRIMARY_CLUSTER_NOT_FOUND = "PRIMARY_CLUSTER_NOT_FOUND"
SCOPE_MISMATCH = "SCOPE_MISMATCH"
EKS_TAG_INVALID = "EKS_TAG_INVALID"
ARC_NOT_SUPPORTED = "ARC_NOT_SUPPORTED"
CLUSTER_NOT_FOUND = "CLUSTER_NOT_FOUND"
CLUSTER_NOT_ACTIVE = "CLUSTER_NOT_ACTIVE"
NODEGROUP_NOT_READY = "NODEGROUP_NOT_READY"
NO_READY_NODES = "NO_READY_NODES"
ADDON_NOT_ACTIVE = "ADDON_NOT_ACTIVE"
WORKLOAD_UNAVAILABLE = "WORKLOAD_UNAVAILABLE"
RECORD_NOT_FOUND = "RECORD_NOT_FOUND"
RECORD_NOT_FAILOVER = "RECORD_NOT_FAILOVER"
DNS_NOT_SWITCHED = "DNS_NOT_SWITCHED"
AWS_ERROR = "AWS_ERROR"
NOT_AN_EKS_CLUSTER = "NOT_AN_EKS_CLUSTER"
EKS_CLUSTER_TYPE = "eks:cluster"

RECOVER_STEP = "recover"


def utc_now() -> datetime:
    from datetime import UTC

    return datetime.now(UTC)


# --- configuration --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordName:
    zone_id: str
    name: str  # fully qualified, ending with a dot


@dataclass(frozen=True)
class EksConfig:
    dr_cluster: str
    records: tuple[RecordName, ...]
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    routing_control: str | None = None


@dataclass(frozen=True)
class TagError:
    tag: str
    value: str | None
    message: str

    def describe(self) -> str:
        shown = "missing" if self.value is None else repr(self.value)
        return f"{self.tag}={shown}: {self.message}"


def fqdn(name: str) -> str:
    return name.lower().rstrip(".") + "."


def parse_config(tags: Mapping[str, str]) -> EksConfig | list[TagError]:
    """The module's configuration from a cluster's tags; every problem names the tag and value.

    `dr:eks:records` is a space-separated list of `<hosted zone id>/<record name>` (tag values
    may not contain commas), e.g. `Z0123456789ABC/api.acme.example Z0456/api.acme.internal`.
    """
    problems: list[TagError] = []
    dr_cluster = tags.get(TAG_DR_CLUSTER)
    if dr_cluster is None or not dr_cluster.strip():
        problems.append(TagError(TAG_DR_CLUSTER, dr_cluster, "the DR cluster's name is required"))
    elif not _CLUSTER_NAME.match(dr_cluster.strip()):
        problems.append(TagError(TAG_DR_CLUSTER, dr_cluster, "not a valid EKS cluster name"))
    records: list[RecordName] = []
    raw = tags.get(TAG_RECORDS)
    if raw is None or not raw.split():
        problems.append(
            TagError(TAG_RECORDS, raw, "at least one <hosted zone id>/<record name> is required")
        )
    else:
        items = raw.split()
        if len(items) > MAX_RECORDS:
            problems.append(
                TagError(TAG_RECORDS, raw, f"{len(items)} records; at most {MAX_RECORDS}")
            )
        for item in items:
            zone, sep, name = item.partition("/")
            if not sep or not _ZONE_ID.match(zone) or not _DNS_NAME.match(name):
                problems.append(
                    TagError(
                        TAG_RECORDS,
                        raw,
                        f"{item!r} is not <hosted zone id>/<record name> "
                        "(e.g. Z0123456789ABC/api.example.com)",
                    )
                )
            else:
                records.append(RecordName(zone, fqdn(name)))
    namespaces: list[str] = []
    raw_ns = tags.get(TAG_NAMESPACES)
    if raw_ns is not None:
        for ns in raw_ns.split():
            if not _NAMESPACE.match(ns):
                problems.append(
                    TagError(TAG_NAMESPACES, raw_ns, f"{ns!r} is not a Kubernetes namespace name")
                )
            namespaces.append(ns)
        if not namespaces:
            problems.append(
                TagError(TAG_NAMESPACES, raw_ns, "empty; leave the tag out for every namespace")
            )
    control = tags.get(TAG_ROUTING_CONTROL)
    if problems:
        return problems
    assert dr_cluster is not None
    unique = tuple(dict.fromkeys(records))
    return EksConfig(
        dr_cluster=dr_cluster.strip(),
        records=unique,
        namespaces=tuple(dict.fromkeys(namespaces)),
        routing_control=control.strip() if control and control.strip() else None,
    )


def scope_problem(what: str, tags: Mapping[str, str], customer: str, environment: str) -> str:
    """Why `tags` are outside the operation's Customer + Environment ("" when inside)."""
    got_customer, got_env = tags.get(T.CUSTOMER), tags.get(T.ENVIRONMENT)
    if got_customer == customer and got_env == environment:
        return ""
    return (
        f"{what} is tagged Customer={got_customer!r} Environment={got_env!r}, not the "
        f"operation's Customer={customer!r} Environment={environment!r}; not acted on"
    )


# --- outcomes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure(Exception):
    code: str
    message: str
    retryable: bool = False


@dataclass
class Findings:
    """What was measured, for the result's `details` (strings only)."""

    details: dict[str, str] = field(default_factory=dict)

    def add(self, key: str, value: object) -> None:
        self.details[key] = str(value)


@dataclass(frozen=True)
class Step:
    """The operation context shared by a wave part and a reconciler's check request."""

    operation_id: str
    customer: str
    environment: str
    operation: OperationType
    wave: int
    attempt: int

    @classmethod
    def of(cls, detail: WaveStarted | ResourceCheckRequested) -> Step:
        return cls(
            detail.operation_id,
            detail.customer,
            detail.environment,
            detail.operation,
            detail.wave,
            detail.attempt,
        )


# --- readiness rules (pure) -----------------------------------------------------------------------


def cluster_health(
    cluster: Cluster | None,
    name: str,
    region: str,
    api: ClusterApi,
    kube_for: Callable[[Cluster], Kubernetes],
    namespaces: Sequence[str],
    customer: str,
    environment: str,
    found: Findings,
) -> None:
    """Raise `Failure` unless the cluster can take the traffic; record what was measured."""
    if cluster is None:
        raise Failure(CLUSTER_NOT_FOUND, f"EKS cluster {name!r} not found in {region}")
    problem = scope_problem(f"EKS cluster {name!r}", cluster.tags, customer, environment)
    if problem:
        raise Failure(SCOPE_MISMATCH, problem)
    found.add("cluster_status", cluster.status)
    if cluster.status != "ACTIVE":
        raise Failure(
            CLUSTER_NOT_ACTIVE,
            f"EKS cluster {name!r} in {region} is {cluster.status}, not ACTIVE",
            retryable=cluster.status in ("CREATING", "UPDATING", "PENDING"),
        )
    nodegroups = api.nodegroups(name)
    for ng in nodegroups:
        if ng.status != "ACTIVE" or ng.desired_size < 1:
            issues = f" ({'; '.join(ng.issues)})" if ng.issues else ""
            raise Failure(
                NODEGROUP_NOT_READY,
                f"node group {ng.name!r} of {name!r} is {ng.status} with desired size "
                f"{ng.desired_size}{issues}",
            )
    addons = api.addons(name)
    bad = [a for a in addons if a.status != "ACTIVE"]
    found.add("addons", " ".join(sorted(f"{a.name}={a.status}" for a in addons)) or "none")
    if bad:
        first = bad[0]
        issues = f" ({'; '.join(first.issues)})" if first.issues else ""
        raise Failure(
            ADDON_NOT_ACTIVE,
            f"add-on {first.name!r} of {name!r} is {first.status}, not ACTIVE{issues}",
        )
    kube = kube_for(cluster)
    nodes = kube.nodes()
    ready_by_group: dict[str, int] = {}
    for node in nodes:
        if node.ready:
            key = node.nodegroup or ""
            ready_by_group[key] = ready_by_group.get(key, 0) + 1
    parts = []
    for ng in nodegroups:
        ready = ready_by_group.get(ng.name, 0)
        parts.append(f"{ng.name}={ready}/{ng.desired_size}")
        if ready == 0:
            raise Failure(NO_READY_NODES, f"node group {ng.name!r} of {name!r} has no Ready node")
    ready_total = sum(ready_by_group.values())
    found.add("nodegroups", " ".join(parts) or "none")
    found.add("nodes_ready", f"{ready_total}/{len(nodes)}")
    if ready_total == 0:
        raise Failure(NO_READY_NODES, f"EKS cluster {name!r} has no Ready node")
    deployments = kube.deployments(namespaces)
    available = [d for d in deployments if d.available >= d.replicas]
    found.add("deployments_available", f"{len(available)}/{len(deployments)}")
    for d in deployments:
        if d.available < d.replicas:
            raise Failure(
                WORKLOAD_UNAVAILABLE,
                f"deployment {d.namespace}/{d.name} on {name!r}: {d.available} of {d.replicas} "
                "replicas available",
                retryable=True,
            )
    pods = [p for p in kube.pods(namespaces) if p.phase in ("Running", "Pending")]
    ready_pods = [p for p in pods if p.ready and p.phase == "Running"]
    found.add("pods_ready", f"{len(ready_pods)}/{len(pods)}")
    for p in pods:
        if not (p.ready and p.phase == "Running"):
            raise Failure(
                WORKLOAD_UNAVAILABLE,
                f"pod {p.namespace}/{p.name} on {name!r} is {p.phase} and not Ready",
                retryable=True,
            )


@dataclass(frozen=True)
class FailoverPair:
    primary: FailoverRecord
    secondary: FailoverRecord

    @property
    def label(self) -> str:
        return f"{self.primary.name.rstrip('.')} {self.primary.type}"


def failover_pairs(dns: Dns, records: Sequence[RecordName]) -> list[FailoverPair]:
    pairs = []
    for record in records:
        sets = dns.record_sets(record.zone_id, record.name)
        if not sets:
            raise Failure(
                RECORD_NOT_FOUND,
                f"no failover record set {record.name} in hosted zone {record.zone_id}",
            )
        for record_type in sorted({s.type for s in sets}):
            of_type = [s for s in sets if s.type == record_type]
            primary = next((s for s in of_type if s.role == "PRIMARY"), None)
            secondary = next((s for s in of_type if s.role == "SECONDARY"), None)
            where = f"{record.name} {record_type} in {record.zone_id}"
            if primary is None or secondary is None:
                raise Failure(
                    RECORD_NOT_FAILOVER, f"{where} is not a PRIMARY + SECONDARY failover pair"
                )
            if not primary.health_check_id:
                raise Failure(
                    RECORD_NOT_FAILOVER, f"the PRIMARY record {where} has no health check"
                )
            pairs.append(FailoverPair(primary, secondary))
    return pairs


# --- the service ----------------------------------------------------------------------------------


class EksRecovery:
    def __init__(
        self,
        *,
        registry: Registry,
        workloads: Workloads,
        ledger: Ledger,
        results: Results,
        log: Any,
        dns_backoff: Sequence[float] = (0, 5, 10, 15, 20, 30, 30),
        record_ttl_seconds: int = 30 * 24 * 3600,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        import time

        self._registry = registry
        self._workloads = workloads
        self._ledger = ledger
        self._results = results
        self._log = log
        self._backoff = tuple(dns_backoff) or (0,)
        self._ttl = record_ttl_seconds
        self._clock = clock
        self._sleep = sleep or time.sleep

    # -- entry points

    def recover_part(self, part: WaveStarted) -> dict[str, Any]:
        """Every resource of the part; returns counts (stored by the idempotency layer)."""
        return self._all(Step.of(part), part.resources)

    def check(self, request: ResourceCheckRequested) -> dict[str, Any]:
        """The reconciler's request: a stored result is published again; otherwise the resource
        is taken up where it stands (a claimed flip is never made again)."""
        return self._all(Step.of(request), request.resources)

    def _all(self, step: Step, resources: Sequence[ResourceRef]) -> dict[str, Any]:
        """Readiness and flip for every resource first, then one shared wait for Route 53: the
        health checks of all the part's clusters change status in the same minute."""
        counts = {"recovered": 0, "failed": 0, "republished": 0}
        waiting: list[_Flipped] = []
        for ref in resources:
            record = self._ledger.load(step.operation_id, ref.resource_id)
            if record is not None and _final(record, step.attempt):
                self._results.publish([_stored_detail(record)])
                counts["republished"] += 1
                continue
            started, found = self._clock(), Findings()
            try:
                outcome = self._run(step, ref, record, found)
            except (Failure, AwsError) as error:
                counts[self._finish(step, ref, started, found, error)] += 1
                continue
            if isinstance(outcome, _Flipped):
                waiting.append(replace(outcome, started=started, found=found))
            else:
                counts[self._finish(step, ref, started, found, outcome)] += 1
        for flipped, result in self._validate_dns(waiting):
            counts[self._finish(step, flipped.ref, flipped.started, flipped.found, result)] += 1
        return counts

    def _finish(
        self,
        step: Step,
        ref: ResourceRef,
        started: datetime,
        found: Findings,
        result: str | Failure | AwsError,
    ) -> str:
        """Store, then publish, the one result of a resource; returns its outcome."""
        if isinstance(result, str):
            detail: Detail = ResourceRecovered(
                operation_id=step.operation_id,
                customer=step.customer,
                environment=step.environment,
                operation=step.operation,
                resource_id=ref.resource_id,
                wave=step.wave,
                strategy=Strategy.EKS_DNS,
                step=RECOVER_STEP,
                dr_resource_id=result,
                dr_region=ref.region if step.operation == OperationType.FAILBACK else ref.dr_region,
                started_at=started,
                completed_at=self._clock(),
                details=found.details,
            )
            outcome = "recovered"
        else:
            failure = (
                Failure(AWS_ERROR, str(result), retryable=result.retryable)
                if isinstance(result, AwsError)
                else result
            )
            self._log.warning(
                "EKS resource failed",
                extra={
                    "resource_id": ref.resource_id,
                    "code": failure.code,
                    "error": failure.message,
                },
            )
            detail = ResourceRecoveryFailed(
                operation_id=step.operation_id,
                customer=step.customer,
                environment=step.environment,
                operation=step.operation,
                resource_id=ref.resource_id,
                wave=step.wave,
                strategy=Strategy.EKS_DNS,
                step=RECOVER_STEP,
                error_code=failure.code,
                error=failure.message[:2000],
                retryable=failure.retryable,
                started_at=started,
                failed_at=self._clock(),
            )
            outcome = "failed"
        ttl = int((self._clock() + timedelta(seconds=self._ttl)).timestamp())
        self._ledger.save_result(step.operation_id, ref.resource_id, step.attempt, detail, ttl)
        self._results.publish([detail])
        return outcome

    # -- one resource

    def _run(
        self, step: Step, ref: ResourceRef, record: ResourceRecord | None, found: Findings
    ) -> str | _Flipped:
        """Checks, then the flip: the target cluster's name when done (drill), or what waits for
        Route 53's answers."""
        kind = getattr(ref, "resource_type", EKS_CLUSTER_TYPE)
        if kind != EKS_CLUSTER_TYPE and not (":eks:" in ref.arn and ":cluster/" in ref.arn):
            raise Failure(
                NOT_AN_EKS_CLUSTER,
                f"{ref.resource_id} is a {kind} ({ref.arn}), not an eks:cluster; the eks-dns "
                "strategy recovers EKS clusters only",
            )
        entry = self._registry.customer(step.customer)
        if entry is None:
            raise Failure(
                CUSTOMER_NOT_REGISTERED, f"customer {step.customer!r} is not in the registry"
            )
        config = self._config(step, entry, ref, found)
        if config.routing_control:
            raise Failure(
                ARC_NOT_SUPPORTED,
                f"{TAG_ROUTING_CONTROL}={config.routing_control!r}: Route 53 ARC routing controls "
                "are not supported yet; remove the tag to fail over by health check inversion",
            )
        failback = step.operation == OperationType.FAILBACK
        region = ref.region if failback else ref.dr_region
        name = ref.resource_id if failback else config.dr_cluster
        api = self._workloads.clusters(entry, region)
        cluster = api.cluster(name)
        found.add("target_cluster", f"{name} ({region})")
        cluster_health(
            cluster,
            name,
            region,
            api,
            lambda c: self._workloads.kubernetes(entry, region, c),
            config.namespaces,
            step.customer,
            step.environment,
            found,
        )
        dns = self._workloads.dns(entry)
        pairs = failover_pairs(dns, config.records)
        if step.operation == OperationType.BUBBLE_TEST:
            # A drill validates the DR side and reads where DNS points today; it flips nothing.
            for pair in pairs:
                answer = dns.answer(pair.primary.zone_id, pair.primary.name, pair.primary.type)
                found.add(f"dns_now:{pair.label}", " ".join(answer) or "(no answer)")
            found.add("flipped", "nothing (drill)")
            return name
        inverted = not failback
        self._flip(step, ref, record, dns, pairs, inverted, found)
        return _Flipped(ref=ref, target=name, dns=dns, pairs=tuple(pairs), inverted=inverted)

    def _config(
        self, step: Step, entry: CustomerEntry, ref: ResourceRef, found: Findings
    ) -> EksConfig:
        """The module tags, re-read from the primary cluster (scope re-checked); when the primary
        region cannot be reached, from the DR cluster that names it (`dr:eks:primary-cluster`)."""
        try:
            primary = self._workloads.clusters(entry, ref.region).cluster(ref.resource_id)
            source = f"EKS cluster {ref.resource_id!r} in {ref.region}"
        except AwsError as error:
            if not error.retryable or step.operation == OperationType.FAILBACK:
                raise
            self._log.warning(
                "Primary region's EKS API unreachable: reading the DR cluster's copy of the tags",
                extra={"region": ref.region, "error": str(error)},
            )
            dr_api = self._workloads.clusters(entry, ref.dr_region)
            primary = next(
                (
                    c
                    for c in dr_api.clusters()
                    if c.tags.get(TAG_PRIMARY_CLUSTER) == ref.resource_id
                    and not scope_problem("", c.tags, step.customer, step.environment)
                ),
                None,
            )
            if primary is None:
                raise Failure(
                    PRIMARY_CLUSTER_NOT_FOUND,
                    f"the EKS API of {ref.region} cannot be reached ({error.code}) and no cluster "
                    f"in {ref.dr_region} is tagged {TAG_PRIMARY_CLUSTER}={ref.resource_id}",
                    retryable=True,
                ) from None
            source = f"DR cluster {primary.name!r} in {ref.dr_region}"
            found.add("config_from", primary.name)
        if primary is None:
            raise Failure(
                PRIMARY_CLUSTER_NOT_FOUND,
                f"EKS cluster {ref.resource_id!r} not found in {ref.region}",
            )
        problem = scope_problem(source, primary.tags, step.customer, step.environment)
        if problem:
            raise Failure(SCOPE_MISMATCH, problem)
        parsed = parse_config(primary.tags)
        if isinstance(parsed, list):
            raise Failure(EKS_TAG_INVALID, f"{source}: " + "; ".join(p.describe() for p in parsed))
        return parsed

    def _flip(
        self,
        step: Step,
        ref: ResourceRef,
        record: ResourceRecord | None,
        dns: Dns,
        pairs: Sequence[FailoverPair],
        inverted: bool,
        found: Findings,
    ) -> None:
        check_ids = sorted({p.primary.health_check_id for p in pairs if p.primary.health_check_id})
        ttl = int((self._clock() + timedelta(seconds=self._ttl)).timestamp())
        key = f"{step.operation_id}#{step.attempt}"
        if not self._ledger.claim_flip(key, ref.resource_id, ttl):
            # Another delivery made (or is making) the change: never act twice, only validate.
            found.add("flipped", "earlier delivery")
            return
        changed = []
        for check_id in check_ids:
            check: HealthCheck | None = dns.health_check(check_id)
            if check is None:
                raise Failure(RECORD_NOT_FAILOVER, f"health check {check_id} not found")
            if check.inverted != inverted:
                dns.set_inverted(check, inverted)
                changed.append(check_id)
        self._ledger.flipped(key, ref.resource_id, changed)
        state = "inverted" if inverted else "not inverted"
        found.add("health_checks", " ".join(f"{c}={state}" for c in check_ids))
        found.add("health_checks_changed", " ".join(changed) or "none (already in place)")

    def _validate_dns(
        self, waiting: Sequence[_Flipped]
    ) -> list[tuple[_Flipped, str | Failure | AwsError]]:
        """Route 53's answers for every flipped resource, polled on one backoff until each one
        points at its new side (SECONDARY on failover, PRIMARY on failback)."""
        if not waiting:
            return []
        started = self._clock()
        done: list[tuple[_Flipped, str | Failure | AwsError]] = []
        pending = list(waiting)
        answers: dict[tuple[str, str], tuple[str, ...]] = {}
        for delay in self._backoff:
            if delay:
                self._sleep(delay)
            still = []
            for flipped in pending:
                try:
                    # Every name is asked each round (a list, no short-circuit): full details.
                    checks = [self._switched(flipped, pair, answers) for pair in flipped.pairs]
                    switched = all(checks)
                except AwsError as error:
                    done.append((flipped, error))
                    continue
                if switched:
                    self._record_answers(flipped, answers, started)
                    done.append((flipped, flipped.target))
                else:
                    still.append(flipped)
            pending = still
            if not pending:
                break
        for flipped in pending:
            self._record_answers(flipped, answers, started)
            pair = next(p for p in flipped.pairs if not self._matches(flipped, p, answers))
            expected = pair.secondary if flipped.inverted else pair.primary
            side = "DR (SECONDARY)" if flipped.inverted else "primary (PRIMARY)"
            got = answers.get((flipped.ref.resource_id, pair.label), ())
            done.append(
                (
                    flipped,
                    Failure(
                        DNS_NOT_SWITCHED,
                        f"{pair.label} answers {' '.join(got) or '(nothing)'}, not the {side} "
                        f"endpoint {' '.join(expected.values)}",
                        retryable=True,
                    ),
                )
            )
        return done

    def _switched(
        self,
        flipped: _Flipped,
        pair: FailoverPair,
        answers: dict[tuple[str, str], tuple[str, ...]],
    ) -> bool:
        got = flipped.dns.answer(pair.primary.zone_id, pair.primary.name, pair.primary.type)
        answers[(flipped.ref.resource_id, pair.label)] = got
        return self._matches(flipped, pair, answers)

    @staticmethod
    def _matches(
        flipped: _Flipped, pair: FailoverPair, answers: dict[tuple[str, str], tuple[str, ...]]
    ) -> bool:
        expected = pair.secondary if flipped.inverted else pair.primary
        got = answers.get((flipped.ref.resource_id, pair.label), ())
        return _norm(got) == _norm(expected.values)

    def _record_answers(
        self,
        flipped: _Flipped,
        answers: dict[tuple[str, str], tuple[str, ...]],
        started: datetime,
    ) -> None:
        for pair in flipped.pairs:
            got = answers.get((flipped.ref.resource_id, pair.label), ())
            flipped.found.add(f"dns:{pair.label}", " ".join(got) or "(no answer)")
        flipped.found.add("dns_switch_seconds", round((self._clock() - started).total_seconds(), 1))


@dataclass(frozen=True)
class _Flipped:
    """A resource whose health checks were set, waiting for Route 53 to answer accordingly."""

    ref: ResourceRef
    target: str
    dns: Dns
    pairs: tuple[FailoverPair, ...]
    inverted: bool
    started: datetime = field(default_factory=utc_now)
    found: Findings = field(default_factory=Findings)


def _norm(values: Sequence[str]) -> tuple[str, ...]:
    return tuple(sorted(v.lower().rstrip(".") for v in values))


def _final(record: ResourceRecord, attempt: int) -> bool:
    """A stored result stands unless it failed in an earlier attempt (retry-failed)."""
    if record.result is None:
        return False
    return record.result_type == "ResourceRecovered" or record.result_attempt >= attempt


def _stored_detail(record: ResourceRecord) -> Detail:
    model = (
        ResourceRecovered if record.result_type == "ResourceRecovered" else ResourceRecoveryFailed
    )
    return model.model_validate(record.result)
