"""Discovery domain: from what the inventory reports to a validated, scoped recovery plan.

Pure logic. The inventory (Resource Explorer, the Resource Groups Tagging API, EC2) is reached
only through callables that the application layer wires to the adapters; adapters translate AWS
errors into `InventoryUnavailable`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from drcore import tags as T
from drcore.plan import Plan, PlannedResource, PlanWarning, PlanWave
from drcore.registry import CustomerEntry
from events.schemas import OperationType, PlanSource, Priority, Strategy

# Resource Explorer: never more than 1,000 matches per query; query strings up to 1,280 chars.
SEARCH_LIMIT = 1000
MAX_QUERY_CHARS = 1280
# Values we may put into a query unquoted (tag values are matched exactly).
_QUERY_SAFE = re.compile(r"^[A-Za-z0-9._-]+$")
_PRIORITY_RANK = {p: i for i, p in enumerate(Priority)}
_GONE_STATES = frozenset({"terminated", "shutting-down"})
# Resource types as Resource Explorer names them. Every load balancer (classic, and Resource
# Explorer's `elasticloadbalancing:loadbalancer/app` and `/net`) is planned as
# `elasticloadbalancing:loadbalancer`: its ARN tells an ALB from an NLB.
EC2_INSTANCE = "ec2:instance"
EKS_CLUSTER = "eks:cluster"
EFS_FILE_SYSTEM = "elasticfilesystem:file-system"
FSX_FILE_SYSTEM = "fsx:file-system"
CACHE_REPLICATION_GROUP = "elasticache:replicationgroup"
LOAD_BALANCER = "elasticloadbalancing:loadbalancer"
SUPPORTED_TYPES = (
    EC2_INSTANCE,
    EKS_CLUSTER,
    EFS_FILE_SYSTEM,
    FSX_FILE_SYSTEM,
    CACHE_REPLICATION_GROUP,
    LOAD_BALANCER,
)
# The resource types each strategy recovers (a SQL Server AG is planned as the EC2 instance of
# its primary replica).
STRATEGY_TYPES: Mapping[Strategy, frozenset[str]] = {
    Strategy.DRS: frozenset({EC2_INSTANCE}),
    Strategy.SQL_AG: frozenset({EC2_INSTANCE}),
    Strategy.EKS_DNS: frozenset({EKS_CLUSTER}),
    Strategy.MANAGED_SERVICE: frozenset(
        {EFS_FILE_SYSTEM, FSX_FILE_SYSTEM, CACHE_REPLICATION_GROUP, LOAD_BALANCER}
    ),
}
# The `resourcetype:` filter of each type (a trailing `*` matches the ALB and NLB subtypes).
TYPE_FILTERS = {t: t for t in SUPPORTED_TYPES} | {LOAD_BALANCER: f"{LOAD_BALANCER}*"}
# Warning codes (besides the tag problems of `drcore.tags.parse_dr_tags`).
SCOPE_MISMATCH = "SCOPE_MISMATCH"
STRATEGY_NOT_AVAILABLE = "STRATEGY_NOT_AVAILABLE"
REGION_NOT_MAPPED = "REGION_NOT_MAPPED"
INSTANCE_TERMINATED = "INSTANCE_TERMINATED"
MISSING_NAME = "MISSING_NAME"
WAVE_NOT_FOUND = "WAVE_NOT_FOUND"
RESOURCE_ID_CONFLICT = "RESOURCE_ID_CONFLICT"
# A tag problem (the same code as `drcore.tags.parse_dr_tags` reports).
INVALID_TAG = "INVALID_TAG"
RESOURCE_EXPLORER_UNAVAILABLE = "RESOURCE_EXPLORER_UNAVAILABLE"
ENRICHMENT_SKIPPED = "ENRICHMENT_SKIPPED"
# The resource id of warnings that concern the whole plan rather than one resource.
PLAN_WIDE = "*"


# --- errors ---------------------------------------------------------------------------------------


class UnknownScope(LookupError):
    """The customer or environment of a request is not in the registry."""

    def __init__(self, code: str, kind: str, value: str, known: Sequence[str], detail: str = ""):
        self.code = code
        self.value = value
        self.known = sorted(known)
        listing = ", ".join(self.known) if self.known else "none registered"
        super().__init__(f"unknown {kind} {value!r}{detail}; known {kind}s: {listing}")


class InventoryUnavailable(RuntimeError):
    """An inventory source could not answer (raised by adapters, with the AWS reason)."""


class RegionUnavailable(InventoryUnavailable):
    """A region's endpoint did not answer as during a regional outage (connection errors, 5xx):
    its data must come from the DR-region inventory cache."""


class SearchIncomplete(RuntimeError):
    """Resource Explorer could not return every match, even with narrowed queries."""


class DiscoveryUnavailable(RuntimeError):
    """No inventory source could answer: there is no plan to make."""


# --- what the inventory reports -------------------------------------------------------------------


@dataclass(frozen=True)
class DiscoveredResource:
    arn: str
    resource_id: str
    account: str
    region: str
    tags: Mapping[str, str] = field(default_factory=dict)
    private_ip: str | None = None
    state: str | None = None
    resource_type: str = EC2_INSTANCE


@dataclass(frozen=True)
class SearchResult:
    resources: list[DiscoveredResource]
    complete: bool


@dataclass(frozen=True)
class InstanceFacts:
    private_ip: str | None
    state: str | None


Search = Callable[[str], SearchResult]


@dataclass(frozen=True)
class ArnParts:
    region: str
    account: str
    resource_type: str
    resource_id: str


def parse_arn(arn: str) -> ArnParts:
    """Region, account, resource type and natural id of a resource ARN.

    `arn:aws:ec2:<r>:<a>:instance/i-…` → `ec2:instance`, the instance id;
    `…:eks:…:cluster/<name>` → the cluster name; `…:elasticfilesystem:…:file-system/fs-…` and
    `…:fsx:…:file-system/fs-…` → the file system id; `…:elasticache:…:replicationgroup:<id>` →
    the replication group id; `…:elasticloadbalancing:…:loadbalancer/app|net/<name>/<hash>` (and
    the classic `loadbalancer/<name>`) → `elasticloadbalancing:loadbalancer`, the name.
    Any other ARN: `<service>:<first part of the resource>`, the last part of the resource.
    """
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or not parts[2] or not parts[5]:
        raise ValueError(f"not an ARN: {arn!r}")
    service, region, account, resource = parts[2], parts[3], parts[4], parts[5]
    kind, _, rest = resource.partition("/") if "/" in resource else resource.partition(":")
    resource_type = f"{service}:{kind}" if rest else service
    if resource_type == LOAD_BALANCER:
        pieces = rest.split("/")
        # app|net|gwy/<name>/<hash>, or a classic load balancer's <name>.
        resource_id = pieces[1] if len(pieces) == 3 else pieces[-1]
    else:
        resource_id = rest.replace(":", "/").rsplit("/", 1)[-1] if rest else resource
    return ArnParts(region, account, resource_type, resource_id)


# --- scope ----------------------------------------------------------------------------------------


def resolve_scope(
    entry: CustomerEntry | None,
    customer: str,
    environment: str,
    known_customers: Callable[[], Sequence[str]],
) -> CustomerEntry:
    """The registry entry of the request's customer, or `UnknownScope` naming the bad value."""
    if entry is None:
        raise UnknownScope("UNKNOWN_CUSTOMER", "customer", customer, known_customers())
    if entry.environment(environment) is None:
        raise UnknownScope(
            "UNKNOWN_ENVIRONMENT",
            "environment",
            environment,
            [e.name for e in entry.environments],
            detail=f" for customer {customer!r}",
        )
    return entry


# --- Resource Explorer queries --------------------------------------------------------------------


def scope_query(customer: str, environment: str, resource_type: str | None = None) -> str:
    """The scope's DR-enabled resources (of every type, or of one supported type)."""
    query = f"tag:{T.ENABLED}=true tag:{T.CUSTOMER}={customer} tag:{T.ENVIRONMENT}={environment}"
    if resource_type is None:
        return query
    return f"{query} resourcetype:{TYPE_FILTERS[resource_type]}"


def supported(resources: Iterable[DiscoveredResource]) -> list[DiscoveredResource]:
    """The resources of a type some strategy recovers (others, such as volumes that inherit
    their instance's tags, are not part of a plan)."""
    return [r for r in resources if r.resource_type in SUPPORTED_TYPES]


def search_scope(
    search: Search, customer: str, environment: str, regions: Iterable[str]
) -> list[DiscoveredResource]:
    """Every resource of a supported type matching the scope query, narrowing the query while
    results are capped."""
    first = search(scope_query(customer, environment))
    if first.complete:
        return supported(_unique(first.resources))
    # Resource Explorer stops at 1,000 matches per query (Count.Complete is false beyond that),
    # and paging does not get past the cap. Narrow the query until every piece is complete:
    # one query per supported resource type, then per primary region, then per dr:wave value.
    # (Each query has one `resourcetype:` filter: filters are ANDed.)
    found: list[DiscoveredResource] = []
    for resource_type in SUPPORTED_TYPES:
        base = scope_query(customer, environment, resource_type)
        result = search(base)
        if result.complete:
            found += result.resources
            continue
        for region in sorted(set(regions)):
            query = f"{base} region:{region}"
            result = search(query)
            found += result.resources if result.complete else _split_by_wave(search, query, result)
    return supported(_unique(found))


def _split_by_wave(search: Search, query: str, partial: SearchResult) -> list[DiscoveredResource]:
    """Query each dr:wave value seen, then the rest (`-tag:dr:wave=…` for every value queried).

    Wave values are learnt from the capped results themselves; the remainder query finds any
    value not seen yet (and resources without a usable dr:wave tag). Each round learns at least
    one new value or gives up, so this ends.
    """
    found: list[DiscoveredResource] = []
    done: set[str] = set()
    pending = _wave_values(partial.resources)
    while True:
        for wave in sorted(pending - done):
            result = search(f"{query} tag:{T.WAVE}={wave}")
            if not result.complete:
                raise SearchIncomplete(
                    f"more than {SEARCH_LIMIT} resources match {query!r} in wave {wave}"
                )
            found += result.resources
            done.add(wave)
        rest_query = query + "".join(f" -tag:{T.WAVE}={w}" for w in sorted(done))
        if len(rest_query) > MAX_QUERY_CHARS:
            raise SearchIncomplete(f"too many waves to split {query!r} within the query limit")
        rest = search(rest_query)
        if rest.complete:
            return found + rest.resources
        pending = _wave_values(rest.resources) - done
        if not pending:
            raise SearchIncomplete(
                f"more than {SEARCH_LIMIT} resources match {query!r} without a usable {T.WAVE}"
            )


def _wave_values(resources: Iterable[DiscoveredResource]) -> set[str]:
    values = {r.tags.get(T.WAVE, "") for r in resources}
    return {v for v in values if _QUERY_SAFE.match(v)}


def _unique(resources: Iterable[DiscoveredResource]) -> list[DiscoveredResource]:
    seen: dict[str, DiscoveredResource] = {}
    for resource in resources:
        seen.setdefault(resource.arn, resource)
    return list(seen.values())


# --- the discovery chain --------------------------------------------------------------------------


def discover(
    search: Search,
    fallback: Callable[[], list[DiscoveredResource]],
    customer: str,
    environment: str,
    regions: Iterable[str],
) -> tuple[list[DiscoveredResource], PlanSource, list[PlanWarning]]:
    """Resource Explorer first; the tagging API when it cannot answer (reported as a warning)."""
    try:
        return (
            search_scope(search, customer, environment, regions),
            PlanSource.RESOURCE_EXPLORER,
            [],
        )
    except (InventoryUnavailable, SearchIncomplete) as error:
        first_error = error
    try:
        resources = fallback()
    except InventoryUnavailable as error:
        raise DiscoveryUnavailable(
            f"Resource Explorer: {first_error}; Resource Groups Tagging API: {error}"
        ) from error
    note = PlanWarning(
        code=RESOURCE_EXPLORER_UNAVAILABLE,
        resource_id=PLAN_WIDE,
        message=f"planned from the Resource Groups Tagging API: {first_error}",
    )
    return _unique(resources), PlanSource.TAGGING_API, [note]


def enrich(
    resources: list[DiscoveredResource],
    lookup: Callable[[str, list[str]], Mapping[str, InstanceFacts]],
) -> tuple[list[DiscoveredResource], list[PlanWarning]]:
    """Add the primary private IP and state of EC2 instances per region; skip a region EC2
    cannot answer for (`ENRICHMENT_SKIPPED`), except a region that is down (`RegionUnavailable`
    propagates). Resources of other types are returned as they are."""
    by_region: dict[str, list[str]] = {}
    for resource in resources:
        if resource.resource_type == EC2_INSTANCE:
            by_region.setdefault(resource.region, []).append(resource.resource_id)
    facts: dict[str, InstanceFacts] = {}
    warnings: list[PlanWarning] = []
    for region, ids in sorted(by_region.items()):
        try:
            facts.update(lookup(region, ids))
        except RegionUnavailable:
            raise  # the region is down: the caller plans from the inventory cache instead
        except InventoryUnavailable as error:
            warnings.append(
                PlanWarning(
                    code=ENRICHMENT_SKIPPED,
                    resource_id=PLAN_WIDE,
                    message=f"private IPs in {region} unknown (EC2 unreachable: {error})",
                )
            )
    enriched = [
        replace(r, private_ip=f.private_ip or r.private_ip, state=f.state or r.state)
        if r.resource_type == EC2_INSTANCE and (f := facts.get(r.resource_id))
        else r
        for r in resources
    ]
    return enriched, warnings


# --- validation and waves -------------------------------------------------------------------------


def build_plan(
    *,
    customer: str,
    environment: str,
    operation: OperationType,
    account: str,
    region_map: Mapping[str, str],
    resources: Iterable[DiscoveredResource],
    plan_source: PlanSource,
    enabled_strategies: Iterable[str],
    created_at: datetime,
    wave_filter: Sequence[int] | None = None,
    notes: Sequence[PlanWarning] = (),
    inventory_age_seconds: int | None = None,
) -> Plan:
    """Validate every resource, exclude (and report) what cannot be recovered, group in waves."""
    enabled = set(enabled_strategies)
    planned: list[PlannedResource] = []
    warnings: list[PlanWarning] = list(notes)
    for resource in _unique(resources):
        outcome = _plan_one(resource, customer, environment, account, region_map, enabled)
        if isinstance(outcome, PlannedResource):
            planned.append(outcome)
            if T.NAME not in resource.tags and outcome.strategy is Strategy.DRS:
                warnings.append(_warn(MISSING_NAME, resource, "no Name tag: no DR twin can match"))
        else:
            warnings += outcome
    planned, conflicts = _without_id_conflicts(planned)
    warnings += conflicts
    if wave_filter:
        wanted = set(wave_filter)
        present = {p.wave for p in planned}
        warnings += [
            PlanWarning(
                code=WAVE_NOT_FOUND,
                resource_id=PLAN_WIDE,
                message=f"wave {number} was requested but no resource is in it",
            )
            for number in sorted(wanted - present)
        ]
        planned = [p for p in planned if p.wave in wanted]
    waves = [
        PlanWave(
            number=number,
            resources=sorted(
                (p for p in planned if p.wave == number),
                key=lambda p: (_PRIORITY_RANK[p.priority], p.name, p.resource_id),
            ),
        )
        for number in sorted({p.wave for p in planned})
    ]
    return Plan(
        customer=customer,
        environment=environment,
        operation=operation,
        created_at=created_at,
        plan_source=plan_source,
        inventory_age_seconds=inventory_age_seconds,
        waves=waves,
        warnings=sorted(
            warnings, key=lambda w: (w.resource_id != PLAN_WIDE, w.resource_id, w.code)
        ),
    )


def _plan_one(
    resource: DiscoveredResource,
    customer: str,
    environment: str,
    account: str,
    region_map: Mapping[str, str],
    enabled: set[str],
) -> PlannedResource | list[PlanWarning]:
    tags = resource.tags
    # An operation never touches another tenant's resource, whatever the query returned.
    if (
        tags.get(T.CUSTOMER) != customer
        or tags.get(T.ENVIRONMENT) != environment
        or resource.account != account
    ):
        return [
            _warn(
                SCOPE_MISMATCH,
                resource,
                f"tagged {T.CUSTOMER}={tags.get(T.CUSTOMER)!r} "
                f"{T.ENVIRONMENT}={tags.get(T.ENVIRONMENT)!r} in account {resource.account}, "
                f"outside {customer}/{environment} (account {account})",
            )
        ]
    if resource.state in _GONE_STATES:
        return [_warn(INSTANCE_TERMINATED, resource, f"instance is {resource.state}")]
    parsed = T.parse_dr_tags(dict(tags))
    if isinstance(parsed, list):
        return [_warn(problem.code, resource, problem.message) for problem in parsed]
    if parsed.strategy.value not in enabled:
        return [
            _warn(
                STRATEGY_NOT_AVAILABLE,
                resource,
                f"{T.STRATEGY}={parsed.strategy.value} has no deployed recovery service "
                f"(enabled: {', '.join(sorted(enabled)) or 'none'})",
            )
        ]
    if resource.resource_type not in STRATEGY_TYPES[parsed.strategy]:
        kinds = ", ".join(sorted(STRATEGY_TYPES[parsed.strategy]))
        return [
            _warn(
                INVALID_TAG,
                resource,
                f"{T.STRATEGY}={parsed.strategy.value!r} cannot recover a "
                f"{resource.resource_type} (it recovers {kinds})",
            )
        ]
    dr_region = region_map.get(resource.region)
    if dr_region is None:
        return [
            _warn(
                REGION_NOT_MAPPED,
                resource,
                f"region {resource.region} is not a primary region of the operation "
                f"({', '.join(sorted(region_map)) or 'none'})",
            )
        ]
    return PlannedResource(
        resource_id=resource.resource_id,
        arn=resource.arn,
        name=tags.get(T.NAME) or resource.resource_id,
        account=resource.account,
        region=resource.region,
        dr_region=dr_region,
        private_ip=resource.private_ip,
        priority=parsed.priority,
        rto_target_minutes=parsed.rto_target_minutes,
        rpo_target_minutes=parsed.rpo_target_minutes,
        wave=parsed.wave,
        strategy=parsed.strategy,
        tags=dict(tags),
        resource_type=resource.resource_type,
    )


def _without_id_conflicts(
    planned: list[PlannedResource],
) -> tuple[list[PlannedResource], list[PlanWarning]]:
    """An operation tracks each resource by its id: resources of different types that share one
    (an EKS cluster and a load balancer both named `web`) are all excluded, never guessed."""
    by_id: dict[str, list[PlannedResource]] = {}
    for resource in planned:
        by_id.setdefault(resource.resource_id, []).append(resource)
    kept: list[PlannedResource] = []
    warnings: list[PlanWarning] = []
    for resource_id, same in by_id.items():
        if len(same) == 1:
            kept += same
            continue
        arns = ", ".join(sorted(r.arn for r in same))
        warnings += [
            PlanWarning(
                code=RESOURCE_ID_CONFLICT,
                resource_id=resource_id,
                message=f"{r.name}: {len(same)} resources of the scope share the id "
                f"{resource_id!r} ({arns}); rename one so each can be tracked",
            )
            for r in same
        ]
    return kept, warnings


def _warn(code: str, resource: DiscoveredResource, message: str) -> PlanWarning:
    label = resource.tags.get(T.NAME) or resource.resource_id
    return PlanWarning(code=code, resource_id=resource.resource_id, message=f"{label}: {message}")
