"""Regional outage (customer `*`): one real child operation per customer + environment of the
region, run concurrently; the parent summarises them. In-memory fakes."""

from __future__ import annotations

from typing import Any

from drcore.state import OperationState
from events.schemas import (
    ApprovalMode,
    OperationCompleted,
    OperationFailed,
    OperationRequested,
    Source,
    WaveStarted,
)
from events.schemas.models import RegionalOperationStarted
from services.coordinator.domain import ErrorCode, LockRecord
from services.coordinator.regional import child_operation_id, select_children
from tests.unit.test_coordinator_domain import (
    T0,
    FakeRegistry,
    Harness,
    entry,
    plan,
    plan_ready,
    request,
    resource,
)

PARENT = "op-region-0001"
REGISTRY = FakeRegistry(
    entry("acme", {"production": True, "staging": False}),
    entry("globex", {"production": True}, account="222222222222"),
    entry("initech", {"production": True}, regions={"us-west-2": "us-west-1"}),
)


def regional(environment: str = "all", **fields: Any) -> OperationRequested:
    values: dict[str, Any] = {
        "customer": "*",
        "environment": environment,
        "region_map": {"us-east-1": "us-east-2"},
        "approval_mode": None,
    }
    return request(PARENT, **(values | fields))


def children_requests(h: Harness) -> list[OperationRequested]:
    return [
        d for s, d in h.publisher.published if s == Source.CLI and isinstance(d, OperationRequested)
    ]


def test_given_customers_in_regions_then_children_are_every_environment_of_the_region():
    chosen = select_children(PARENT, REGISTRY.customers(), {"us-east-1": "us-east-2"}, "all")
    assert [(c.customer, c.environment) for c in chosen] == [
        ("acme", "production"),
        ("acme", "staging"),
        ("globex", "production"),
    ]
    only = select_children(PARENT, REGISTRY.customers(), {"us-east-1": "us-east-2"}, "staging")
    assert [(c.customer, c.environment) for c in only] == [("acme", "staging")]
    assert chosen[0].operation_id == child_operation_id(PARENT, "acme", "production")
    assert len(child_operation_id("x" * 64, "a" * 64, "b" * 64)) <= 64


def test_given_a_regional_request_then_each_child_is_a_real_operation_with_its_own_lock():
    h = Harness(registry=REGISTRY)

    h.coordinator.on_operation_requested(regional())

    parent = h.meta(PARENT)
    assert parent.state == OperationState.RUNNING and len(parent.children) == 3
    [fanned] = h.publisher.of(RegionalOperationStarted)
    assert len(fanned.children) == 3
    published = children_requests(h)
    assert [(r.customer, r.environment) for r in published] == [
        ("acme", "production"),
        ("acme", "staging"),
        ("globex", "production"),
    ]
    for child in published:
        meta = h.meta(child.operation_id)
        assert (meta.state, meta.parent_operation_id) == (OperationState.DISCOVERING, PARENT)
        assert h.repo.locks[(child.customer, child.environment)].operation_id == child.operation_id
        assert child.requested_by == parent.requested_by and PARENT in (child.reason or "")
    # each child takes its own approval default (production failover: required)
    assert h.meta(published[0].operation_id).approval_mode == ApprovalMode.REQUIRED
    assert h.meta(published[1].operation_id).approval_mode == ApprovalMode.NONE
    # a redelivered parent request starts nothing twice
    h.coordinator.on_operation_requested(regional())
    assert len(children_requests(h)) == 3


def test_given_children_when_they_all_complete_then_the_parent_completes_with_their_sums():
    h = Harness(registry=REGISTRY)
    h.coordinator.on_operation_requested(regional("production", approval_mode=ApprovalMode.NONE))
    for child in children_requests(h):
        h.repo.plans[child.operation_id] = plan(
            {1: [resource(f"i-{child.customer}", 1, customer=child.customer)]},
            customer=child.customer,
        )
        ready = plan_ready(child.operation_id, customer=child.customer)
        h.coordinator.on_plan_ready(ready)
    assert len(h.publisher.of(WaveStarted)) == 2  # concurrently: both first waves started
    h.answer(h.publisher.of(WaveStarted))

    parent = h.meta(PARENT)
    assert (parent.state, parent.announced) == (OperationState.COMPLETED, OperationState.COMPLETED)
    finals = [e for e in h.publisher.of(OperationCompleted) if e.operation_id == PARENT]
    assert [(e.customer, e.recovered, e.failed) for e in finals] == [("*", 2, 0)]


def test_given_a_busy_environment_then_that_child_fails_and_so_does_the_parent_in_the_end():
    h = Harness(registry=REGISTRY)
    h.repo.locks[("globex", "production")] = LockRecord(
        "globex", "production", "op-other01", request().operation, T0
    )
    h.coordinator.on_operation_requested(regional("production", approval_mode=ApprovalMode.NONE))

    globex = child_operation_id(PARENT, "globex", "production")
    assert h.meta(globex).error_code == ErrorCode.OPERATION_IN_PROGRESS
    assert [r.customer for r in children_requests(h)] == ["acme"]

    acme = child_operation_id(PARENT, "acme", "production")
    h.repo.plans[acme] = plan({1: [resource("i-a", 1)]})
    h.coordinator.on_plan_ready(plan_ready(acme))
    h.answer(h.publisher.of(WaveStarted))
    parent = h.meta(PARENT)
    assert (parent.state, parent.error_code) == (
        OperationState.FAILED,
        ErrorCode.CHILD_OPERATIONS_FAILED,
    )
    [failed] = [e for e in h.publisher.of(OperationFailed) if e.operation_id == PARENT]
    assert globex in failed.reason


def test_given_no_customer_in_the_region_then_refused():
    h = Harness(registry=REGISTRY)
    h.coordinator.on_operation_requested(regional(region_map={"eu-west-1": "eu-central-1"}))
    assert h.meta(PARENT).error_code == ErrorCode.NO_CUSTOMERS_IN_REGION
