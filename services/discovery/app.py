"""Discovery use cases: build a plan (for `drctl plan` and for the handler) and answer requests.

`build_plan_for` is the one way a plan is made: the CLI calls it for a preview (no events, nothing
stored), the handler calls it through `DiscoveryService` and then stores and announces the plan.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from drcore.aws import AccountAccess, AwsClients
from drcore.plan import Plan, PlanWarning
from drcore.publisher import EventPublisher
from drcore.registry import CustomerEntry
from drcore.settings import Settings
from drcore.state import PlanStore, op_pk
from events.schemas import (
    ALL_CUSTOMERS,
    DiscoveryFailed,
    OperationRequested,
    OperationType,
    PlanReady,
    PlanSource,
    Source,
)
from events.schemas.models import utc_now

from .adapters import (
    Ec2Facts,
    InventoryTable,
    RegistryInvalid,
    ResourceExplorerSearch,
    SsmRegistry,
    TaggingApiInventory,
)
from .collect import primary_region_clients
from .domain import (
    PLAN_WIDE,
    DiscoveredResource,
    DiscoveryUnavailable,
    InstanceFacts,
    InventoryUnavailable,
    RegionUnavailable,
    UnknownScope,
    build_plan,
    discover,
    enrich,
    resolve_scope,
)
from .inventory import ScopeSnapshot, cache_plan_notes

__all__ = ["DiscoveryService", "DiscoveryUnavailable", "UnknownScope", "build_plan_for"]

DISCOVERY_UNAVAILABLE = "DISCOVERY_UNAVAILABLE"
REGISTRY_INVALID = "REGISTRY_INVALID"


def build_plan_for(
    customer: str,
    environment: str,
    operation: OperationType | str,
    clients: AwsClients,
    settings: Settings,
    *,
    region_map: Mapping[str, str] | None = None,
    wave_filter: Sequence[int] | None = None,
    now: Callable[[], datetime] = utc_now,
    use_cached_inventory: bool = False,
    cache: CacheReader | None = None,
    primary_clients: AwsClients | None = None,
) -> Plan:
    """Discover, validate and group the scope's resources into a plan.

    The chain: Resource Explorer, else the tagging API (in the primary regions), then EC2 in the
    primary regions for IPs; when no live source can answer or a primary region is down, the
    DR-region inventory cache (also when `use_cached_inventory`). The plan names its source and,
    from the cache, its age (with a warning past 20 min, critical past 30 min).

    Raises `UnknownScope` (with `.code` and `.known`) for a customer or environment the registry
    does not know, and `DiscoveryUnavailable` when no inventory source can answer.
    """
    registry = SsmRegistry(clients.client("ssm", settings.orchestration_region))
    entry = resolve_scope(registry.get(customer), customer, environment, registry.names)
    access = AccountAccess(entry.account, entry.role_name, entry.external_id)
    regions = dict(region_map or entry.regions)
    cache = cache or InventoryTable(
        clients.client("dynamodb", settings.orchestration_region), settings.inventory_table
    )
    age: int | None = None
    if use_cached_inventory:
        resources, notes, age = _from_cache(
            cache, customer, environment, settings, now, "requested by the operation"
        )
        source = PlanSource.INVENTORY_CACHE
    else:
        primary = primary_clients or primary_region_clients(clients, settings)
        try:
            resources, source, notes = _live(clients, primary, entry, access, environment, regions)
        except (DiscoveryUnavailable, RegionUnavailable) as error:
            resources, notes, age = _from_cache(cache, customer, environment, settings, now, error)
            source = PlanSource.INVENTORY_CACHE
    return build_plan(
        customer=customer,
        environment=environment,
        operation=OperationType(operation),
        account=entry.account,
        region_map=regions,
        resources=resources,
        plan_source=source,
        enabled_strategies=settings.enabled_strategies,
        created_at=now(),
        wave_filter=wave_filter,
        notes=notes,
        inventory_age_seconds=age,
    )


class CacheReader(Protocol):
    def current(self, customer: str, environment: str) -> ScopeSnapshot | None: ...


def _live(
    clients: AwsClients,
    primary: AwsClients,
    entry: CustomerEntry,
    access: AccountAccess,
    environment: str,
    regions: Mapping[str, str],
) -> tuple[list[DiscoveredResource], PlanSource, list[PlanWarning]]:
    """Resource Explorer (DR region) → tagging API, then EC2 facts (primary regions, few
    retries). Raises `DiscoveryUnavailable`, or `RegionUnavailable` when a primary region is
    down."""
    customer = entry.name
    search = ResourceExplorerSearch(
        clients.workload_client("resource-explorer-2", entry.dr_region, access)
    )
    tagging = TaggingApiInventory(
        {
            region: primary.workload_client("resourcegroupstaggingapi", region, access)
            for region in regions
        }
    )
    resources, source, notes = discover(
        search,
        lambda: tagging.resources(customer, environment),
        customer,
        environment,
        regions,
    )

    def facts(region: str, ids: list[str]) -> Mapping[str, InstanceFacts]:
        try:
            return Ec2Facts(primary.workload_client("ec2", region, access))(ids)
        except RegionUnavailable as error:
            raise RegionUnavailable(
                f"primary region {region} unavailable (EC2 DescribeInstances: {error})"
            ) from error

    # Only resources in the scope's primary regions are worth an EC2 call.
    in_scope = [r for r in resources if r.region in regions]
    enriched, enrich_notes = enrich(in_scope, facts)
    enriched += [r for r in resources if r.region not in regions]
    return enriched, source, [*notes, *enrich_notes]


def _from_cache(
    cache: CacheReader,
    customer: str,
    environment: str,
    settings: Settings,
    now: Callable[[], datetime],
    reason: str | Exception,
) -> tuple[list[DiscoveredResource], list[PlanWarning], int]:
    try:
        snapshot = cache.current(customer, environment)
    except InventoryUnavailable as error:
        raise DiscoveryUnavailable(f"{reason}; and {error}") from error
    if snapshot is None:
        raise DiscoveryUnavailable(
            f"{reason}; and the inventory cache has no snapshot of {customer}/{environment}"
        )
    return cache_plan_notes(
        snapshot,
        now(),
        str(reason),
        settings.inventory_warning_age_seconds,
        settings.inventory_critical_age_seconds,
    )


class DiscoveryService:
    """Answers `OperationRequested`: a stored plan and `PlanReady`, or `DiscoveryFailed`."""

    def __init__(
        self,
        *,
        clients: AwsClients,
        settings: Settings,
        plans: PlanStore,
        publisher: EventPublisher,
        logger: Any,
        cache: CacheReader | None = None,
        primary_clients: AwsClients | None = None,
    ) -> None:
        self._clients = clients
        self._settings = settings
        self._plans = plans
        self._publisher = publisher
        self._logger = logger
        self._cache = cache
        self._primary = primary_clients

    @classmethod
    def from_settings(cls, logger: Any, settings: Settings | None = None) -> DiscoveryService:
        import boto3

        settings = settings or Settings()
        clients = AwsClients(settings)
        table = boto3.resource(
            "dynamodb",
            region_name=settings.orchestration_region,
            config=clients.client("dynamodb").meta.config,
        ).Table(settings.operations_table)
        return cls(
            clients=clients,
            settings=settings,
            plans=PlanStore(table),
            publisher=EventPublisher(clients.client("events"), settings.bus_name),
            logger=logger,
            cache=InventoryTable(
                clients.client("dynamodb", settings.orchestration_region),
                settings.inventory_table,
            ),
            primary_clients=primary_region_clients(clients, settings),
        )

    def on_operation_requested(self, request: OperationRequested) -> None:
        if request.customer == ALL_CUSTOMERS:
            self._logger.info(
                "Ignoring a request for all customers: the coordinator fans it out or rejects it",
                extra={"operation_id": request.operation_id},
            )
            return
        # Natural-key idempotency: a redelivered request announces the plan already stored,
        # so the coordinator never sees two different plans for one operation.
        plan = self._plans.get(request.operation_id)
        if plan is None:
            try:
                plan = build_plan_for(
                    request.customer,
                    request.environment,
                    request.operation,
                    self._clients,
                    self._settings,
                    region_map=request.region_map or None,
                    wave_filter=request.wave_filter,
                    use_cached_inventory=request.use_cached_inventory,
                    cache=self._cache,
                    primary_clients=self._primary,
                )
            except UnknownScope as error:
                self._fail(request, error.code, str(error))
                return
            except (DiscoveryUnavailable, RegistryInvalid) as error:
                code = (
                    REGISTRY_INVALID
                    if isinstance(error, RegistryInvalid)
                    else DISCOVERY_UNAVAILABLE
                )
                self._fail(request, code, str(error))
                return
            key = self._plans.put(request.operation_id, plan)
        else:
            key = op_pk(request.operation_id)
        if plan.plan_source is PlanSource.INVENTORY_CACHE:
            self._logger.warning(
                "Planned from the DR-region inventory cache",
                extra={
                    "inventory_age_seconds": plan.inventory_age_seconds,
                    "warnings": [
                        w.model_dump() for w in plan.warnings if w.resource_id == PLAN_WIDE
                    ],
                },
            )
        self._logger.info(
            "Plan ready",
            extra={
                "plan_source": plan.plan_source.value,
                "waves": len(plan.waves),
                "resources": plan.resource_count,
                "warnings": len(plan.warnings),
            },
        )
        self._publisher.publish(
            Source.DISCOVERY,
            [
                PlanReady(
                    operation_id=request.operation_id,
                    customer=request.customer,
                    environment=request.environment,
                    operation=request.operation,
                    plan_key=key,
                    wave_count=len(plan.waves),
                    resource_count=plan.resource_count,
                    warning_count=len(plan.warnings),
                    plan_source=plan.plan_source,
                    inventory_age_seconds=plan.inventory_age_seconds,
                )
            ],
        )

    def _fail(self, request: OperationRequested, code: str, reason: str) -> None:
        self._logger.warning("Discovery failed", extra={"code": code, "reason": reason})
        self._publisher.publish(
            Source.DISCOVERY,
            [
                DiscoveryFailed(
                    operation_id=request.operation_id,
                    customer=request.customer,
                    environment=request.environment,
                    operation=request.operation,
                    code=code,
                    reason=reason[:2000],
                )
            ],
        )
