"""Regional outage: a request for customer `*` becomes one operation per customer + environment of
the region (children), run concurrently. Pure.

The parent operation keeps the list of its children and their outcomes; each child is an ordinary
operation (its own lock, plan, waves, hooks and approvals) that names its parent. The parent ends
when every child has ended: COMPLETED when all completed, FAILED when any failed, else CANCELLED.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from drcore.registry import CustomerEntry
from drcore.state import OperationState
from events.schemas.names import ALL_ENVIRONMENTS

CHILD_ID_PREFIX_LENGTH = 50


@dataclass(frozen=True)
class ChildPlan:
    operation_id: str
    customer: str
    environment: str
    region_map: Mapping[str, str]


@dataclass(frozen=True)
class ChildOutcome:
    state: OperationState
    waves: int = 0
    recovered: int = 0
    failed: int = 0


def child_operation_id(parent_id: str, customer: str, environment: str) -> str:
    """Stable for a given parent and scope (a redelivered request finds the same children)."""
    digest = hashlib.sha256(f"{customer}#{environment}".encode()).hexdigest()[:8]
    return f"{parent_id[:CHILD_ID_PREFIX_LENGTH]}-{digest}"


def select_children(
    parent_id: str,
    customers: Iterable[CustomerEntry],
    region_map: Mapping[str, str],
    environment: str,
) -> list[ChildPlan]:
    """Every customer + environment whose primary region is one of the request's; `environment`
    selects one environment of each customer, or `all` every environment."""
    children: list[ChildPlan] = []
    for entry in sorted(customers, key=lambda e: e.name):
        # The request names the primary region(s) down; each customer keeps its own DR region.
        regions = {p: dr for p, dr in entry.regions.items() if p in region_map}
        if not regions:
            continue
        for env in entry.environments:
            if environment != ALL_ENVIRONMENTS and env.name != environment:
                continue
            children.append(
                ChildPlan(
                    operation_id=child_operation_id(parent_id, entry.name, env.name),
                    customer=entry.name,
                    environment=env.name,
                    region_map=regions,
                )
            )
    return children


def regional_outcome(
    children: Iterable[str], outcomes: Mapping[str, ChildOutcome]
) -> tuple[OperationState, str | None] | None:
    """The parent's final state and reason once every child has ended, else None."""
    ids = list(children)
    if any(c not in outcomes for c in ids):
        return None
    failed = sorted(c for c in ids if outcomes[c].state == OperationState.FAILED)
    cancelled = sorted(c for c in ids if outcomes[c].state == OperationState.CANCELLED)
    if failed:
        shown = ", ".join(failed[:10]) + (
            f" and {len(failed) - 10} more" if len(failed) > 10 else ""
        )
        return OperationState.FAILED, f"{len(failed)} of {len(ids)} operation(s) failed: {shown}"
    if cancelled:
        return OperationState.CANCELLED, f"{len(cancelled)} of {len(ids)} operation(s) cancelled"
    return OperationState.COMPLETED, None
