"""Collect a customer's complete DR inventory (the inventory cache and the readiness report).

Per customer, in its account (AssumeRole with the registry's role and external id):

1. DRS `DescribeSourceServers` in each DR region (every page): what is replicated.
2. For each environment, the discovery chain (Resource Explorer, else the tagging API): the
   DR-tagged resources of every supported type, scoped by `Customer` and `Environment`.
3. EC2 `DescribeInstances` in each primary region for the discovered instances and the instances
   of the source servers (200 ids per call): IP, state, platform, boot mode, tags.
4. EC2 `DescribeInstances` in each DR region, `tag:Customer=<customer>`: the twin candidates
   (re-checked on their own `Customer` / `Environment` / `Name` tags when joined).
5. `DescribeImages` for the images whose instances do not state their boot mode.

Calls into primary regions use few retries (`settings.primary_region_retries`): during an outage
a collection fails in seconds instead of retrying for a minute. Any error fails the customer's
collection (`CollectionFailed`): a snapshot is stored only when it is complete.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from botocore.exceptions import BotoCoreError, ClientError

from drcore.aws import AccountAccess, AwsClients
from drcore.registry import CustomerEntry
from drcore.settings import Settings
from events.schemas import PlanSource
from events.schemas.models import utc_now

from .adapters import (
    DrsSourceServers,
    Ec2Inventory,
    ResourceExplorerSearch,
    TaggingApiInventory,
    is_unavailable,
)
from .domain import (
    EC2_INSTANCE,
    DiscoveredResource,
    DiscoveryUnavailable,
    InventoryUnavailable,
    RegionUnavailable,
    discover,
)
from .inventory import CustomerInventory, InstanceRecord, SourceServerRecord, assemble


class CollectionFailed(RuntimeError):
    """A customer's inventory could not be collected completely (the AWS reason inside)."""

    def __init__(self, customer: str, reason: str, region_down: bool = False) -> None:
        super().__init__(f"{customer}: {reason}")
        self.customer = customer
        self.reason = reason
        self.region_down = region_down


def primary_region_clients(clients: AwsClients, settings: Settings) -> AwsClients:
    """Clients for calls into primary regions: the same settings with fewer retries, the same
    session and the same user agent (so the sandbox counts an operator's calls as the
    operator's)."""
    reduced = settings.model_copy(update={"max_attempts": settings.primary_region_retries})
    return clients.with_settings(reduced)


class InventoryCollector:
    def __init__(
        self,
        clients: AwsClients,
        settings: Settings,
        primary_clients: AwsClients | None = None,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._clients = clients
        self._primary = primary_clients or primary_region_clients(clients, settings)
        self._now = now

    def collect(
        self, entry: CustomerEntry, environments: Sequence[str] | None = None
    ) -> CustomerInventory:
        """Every environment of the customer (or only `environments`), or `CollectionFailed`."""
        try:
            return self._collect(entry, environments)
        except (InventoryUnavailable, DiscoveryUnavailable) as error:
            raise CollectionFailed(
                entry.name, str(error), region_down=isinstance(error, RegionUnavailable)
            ) from error
        except (ClientError, BotoCoreError) as error:  # AssumeRole into the account
            raise CollectionFailed(entry.name, str(error), is_unavailable(error)) from error

    def _collect(
        self, entry: CustomerEntry, environments: Sequence[str] | None
    ) -> CustomerInventory:
        captured_at = self._now()
        access = AccountAccess(entry.account, entry.role_name, entry.external_id)
        regions = dict(entry.regions)
        dr_regions = sorted(set(regions.values()))

        servers: list[SourceServerRecord] = []
        for dr in dr_regions:
            servers += DrsSourceServers(self._clients.workload_client("drs", dr, access), dr).all()

        search = ResourceExplorerSearch(
            self._clients.workload_client("resource-explorer-2", entry.dr_region, access)
        )
        tagging = TaggingApiInventory(
            {
                region: self._primary.workload_client("resourcegroupstaggingapi", region, access)
                for region in regions
            }
        )
        wanted = [e.name for e in entry.environments if not environments or e.name in environments]
        discovered: dict[str, tuple[Sequence[DiscoveredResource], PlanSource, Sequence[str]]] = {}
        for environment in wanted:
            found, source, notes = discover(
                search,
                lambda env=environment: tagging.resources(entry.name, env),  # type: ignore[misc]
                entry.name,
                environment,
                regions,
            )
            discovered[environment] = (found, source, [n.message for n in notes])

        primary: dict[str, InstanceRecord] = {}
        for region in sorted(regions):
            ids = {
                r.resource_id
                for found, _, _ in discovered.values()
                for r in found
                if r.region == region and r.resource_type == EC2_INSTANCE
            }
            ids |= {
                s.instance_id
                for s in servers
                if s.instance_id and (s.origin_region or region) == region
            }
            if ids:
                ec2 = self._primary.workload_client("ec2", region, access)
                primary.update(Ec2Inventory(ec2, region).by_ids(ids))

        dr_instances: list[InstanceRecord] = []
        for dr in dr_regions:
            ec2 = self._clients.workload_client("ec2", dr, access)
            dr_instances += Ec2Inventory(ec2, dr).of_customer(entry.name)

        return assemble(entry, discovered, primary, dr_instances, servers, captured_at)


class Collector(Protocol):
    def collect(
        self, entry: CustomerEntry, environments: Sequence[str] | None = None
    ) -> CustomerInventory: ...


def collect_many(
    collector: Collector,
    entries: Sequence[CustomerEntry],
    environments: Sequence[str] | None = None,
    workers: int = 8,
) -> list[CustomerInventory | CollectionFailed]:
    """Collect several customers concurrently; a failure is returned in its customer's place."""
    from concurrent.futures import ThreadPoolExecutor

    def one(entry: CustomerEntry) -> CustomerInventory | CollectionFailed:
        try:
            return collector.collect(entry, environments)
        except CollectionFailed as error:
            return error

    if len(entries) <= 1:
        return [one(e) for e in entries]
    with ThreadPoolExecutor(max_workers=min(workers, len(entries))) as pool:
        return list(pool.map(one, entries))
