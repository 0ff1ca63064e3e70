"""Discovery use cases: build a plan (for `drctl plan` and for the handler) and answer requests.

`build_plan_for` is the one way a plan is made: the CLI calls it for a preview (no events, nothing
stored), the handler calls it through `DiscoveryService` and then stores and announces the plan.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from drcore.aws import AccountAccess, AwsClients
from drcore.plan import Plan
from drcore.publisher import EventPublisher
from drcore.settings import Settings
from drcore.state import PlanStore, op_pk
from events.schemas import (
    ALL_CUSTOMERS,
    DiscoveryFailed,
    OperationRequested,
    OperationType,
    PlanReady,
    Source,
)
from events.schemas.models import utc_now

from .adapters import (
    Ec2Facts,
    RegistryInvalid,
    ResourceExplorerSearch,
    SsmRegistry,
    TaggingApiInventory,
)
from .domain import (
    DiscoveryUnavailable,
    InstanceFacts,
    UnknownScope,
    build_plan,
    discover,
    enrich,
    resolve_scope,
)

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
) -> Plan:
    """Discover, validate and group the scope's resources into a plan.

    Raises `UnknownScope` (with `.code` and `.known`) for a customer or environment the registry
    does not know, and `DiscoveryUnavailable` when no inventory source can answer.
    """
    registry = SsmRegistry(clients.client("ssm", settings.orchestration_region))
    entry = resolve_scope(registry.get(customer), customer, environment, registry.names)
    access = AccountAccess(entry.account, entry.role_name, entry.external_id)
    regions = dict(region_map or entry.regions)

    search = ResourceExplorerSearch(
        clients.workload_client("resource-explorer-2", entry.dr_region, access)
    )
    tagging = TaggingApiInventory(
        {
            region: clients.workload_client("resourcegroupstaggingapi", region, access)
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
        return Ec2Facts(clients.workload_client("ec2", region, access))(ids)

    # Only resources in the scope's primary regions are worth an EC2 call.
    in_scope = [r for r in resources if r.region in regions]
    enriched, enrich_notes = enrich(in_scope, facts)
    enriched += [r for r in resources if r.region not in regions]
    return build_plan(
        customer=customer,
        environment=environment,
        operation=OperationType(operation),
        account=entry.account,
        region_map=regions,
        resources=enriched,
        plan_source=source,
        enabled_strategies=settings.enabled_strategies,
        created_at=now(),
        wave_filter=wave_filter,
        notes=[*notes, *enrich_notes],
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
    ) -> None:
        self._clients = clients
        self._settings = settings
        self._plans = plans
        self._publisher = publisher
        self._logger = logger

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
