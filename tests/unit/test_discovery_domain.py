"""Discovery domain with in-memory fakes: validation, scope, strategies, waves, query splitting."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from drcore import tags as T
from drcore.plan import Plan
from drcore.registry import CustomerEntry, EnvironmentEntry
from events.schemas import OperationType, PlanSource, Priority, Strategy
from services.discovery.domain import (
    DiscoveredResource,
    DiscoveryUnavailable,
    InstanceFacts,
    InventoryUnavailable,
    SearchIncomplete,
    SearchResult,
    UnknownScope,
    build_plan,
    discover,
    enrich,
    resolve_scope,
    scope_query,
    search_scope,
)

ACCOUNT = "111111111111"
REGIONS = {"us-east-1": "us-east-2"}
NOW = datetime(2026, 11, 1, tzinfo=UTC)


def tags(name: str, **overrides: str) -> dict[str, str]:
    base = {
        T.ENABLED: "true",
        T.PRIORITY: "high",
        T.WAVE: "1",
        T.STRATEGY: "drs",
        T.RTO_TARGET: "60",
        T.RPO_TARGET: "15",
        T.CUSTOMER: "acme",
        T.ENVIRONMENT: "production",
        T.NAME: name,
    }
    base.update({k.replace("__", ":").replace("_", "-"): v for k, v in overrides.items()})
    return base


def resource(
    instance_id: str,
    tag_map: Mapping[str, str],
    region: str = "us-east-1",
    account: str = ACCOUNT,
) -> DiscoveredResource:
    return DiscoveredResource(
        arn=f"arn:aws:ec2:{region}:{account}:instance/{instance_id}",
        resource_id=instance_id,
        account=account,
        region=region,
        tags=dict(tag_map),
    )


def plan_of(*resources: DiscoveredResource, **kwargs: object) -> Plan:
    args: dict[str, object] = {
        "customer": "acme",
        "environment": "production",
        "operation": OperationType.FAILOVER,
        "account": ACCOUNT,
        "region_map": REGIONS,
        "resources": list(resources),
        "plan_source": PlanSource.RESOURCE_EXPLORER,
        "enabled_strategies": ("drs",),
        "created_at": NOW,
    }
    args.update(kwargs)
    return build_plan(**args)  # type: ignore[arg-type]


# --- validation -----------------------------------------------------------------------------------


def test_given_valid_tags_when_planning_then_resource_is_planned_with_its_targets() -> None:
    plan = plan_of(resource("i-1", tags("web-01", dr__rto_target="30")))

    assert plan.resource_count == 1
    planned = plan.waves[0].resources[0]
    assert (planned.name, planned.dr_region, planned.rto_target_minutes) == (
        "web-01",
        "us-east-2",
        30,
    )
    assert planned.strategy is Strategy.DRS and planned.priority is Priority.HIGH
    assert plan.warnings == []


def test_given_missing_and_invalid_dr_tags_when_planning_then_excluded_with_every_problem() -> None:
    broken = tags("db-01", dr__wave="zero", dr__priority="urgent")
    del broken[T.RPO_TARGET]

    plan = plan_of(resource("i-bad", broken), resource("i-ok", tags("app-01")))

    assert [r.resource_id for w in plan.waves for r in w.resources] == ["i-ok"]
    problems = {(w.code, w.resource_id) for w in plan.warnings}
    assert problems == {("MISSING_TAG", "i-bad"), ("INVALID_TAG", "i-bad")}
    messages = " ".join(w.message for w in plan.warnings)
    assert T.RPO_TARGET in messages and "urgent" in messages and "'zero'" in messages


def test_given_dr_disabled_when_planning_then_excluded_as_not_enabled() -> None:
    plan = plan_of(resource("i-1", tags("web-01", dr__enabled="false")))

    assert plan.resource_count == 0
    assert [w.code for w in plan.warnings] == ["NOT_ENABLED"]


def test_given_another_tenants_resource_when_planning_then_excluded_as_scope_mismatch() -> None:
    other_customer = resource("i-2", tags("web-01", Customer="globex"))
    other_env = resource("i-3", tags("web-02", Environment="staging"))
    other_account = resource("i-4", tags("web-03"), account="999999999999")

    plan = plan_of(other_customer, other_env, other_account, resource("i-1", tags("web-00")))

    assert [r.resource_id for w in plan.waves for r in w.resources] == ["i-1"]
    assert {(w.code, w.resource_id) for w in plan.warnings} == {
        ("SCOPE_MISMATCH", "i-2"),
        ("SCOPE_MISMATCH", "i-3"),
        ("SCOPE_MISMATCH", "i-4"),
    }


def test_given_scope_mismatch_and_bad_tags_when_planning_then_only_scope_is_reported() -> None:
    plan = plan_of(resource("i-2", tags("x", Customer="globex", dr__wave="nope")))

    assert [w.code for w in plan.warnings] == ["SCOPE_MISMATCH"]


def test_given_strategy_without_service_when_planning_then_excluded_strategy_not_available() -> (
    None
):
    plan = plan_of(
        resource("i-1", tags("k8s-01", dr__recovery_strategy="eks-dns")),
        resource("i-2", tags("web-01")),
    )

    assert [r.resource_id for w in plan.waves for r in w.resources] == ["i-2"]
    assert [(w.code, w.resource_id) for w in plan.warnings] == [("STRATEGY_NOT_AVAILABLE", "i-1")]


def test_given_region_outside_the_map_when_planning_then_excluded_region_not_mapped() -> None:
    plan = plan_of(resource("i-1", tags("web-01"), region="eu-west-1"))

    assert [w.code for w in plan.warnings] == ["REGION_NOT_MAPPED"]


def test_given_terminated_instance_when_planning_then_excluded() -> None:
    gone = DiscoveredResource(**{**resource("i-1", tags("web-01")).__dict__, "state": "terminated"})

    plan = plan_of(gone)

    assert plan.resource_count == 0 and [w.code for w in plan.warnings] == ["INSTANCE_TERMINATED"]


def test_given_no_name_tag_when_planning_then_included_with_a_warning() -> None:
    no_name = tags("x")
    del no_name[T.NAME]

    plan = plan_of(resource("i-1", no_name))

    assert plan.waves[0].resources[0].name == "i-1"
    assert [w.code for w in plan.warnings] == ["MISSING_NAME"]


# --- waves ----------------------------------------------------------------------------------------


def test_given_mixed_waves_and_priorities_when_planning_then_waves_sorted_and_priority_first() -> (
    None
):
    plan = plan_of(
        resource("i-1", tags("web-b", dr__wave="3", dr__priority="low")),
        resource("i-2", tags("web-a", dr__wave="3", dr__priority="low")),
        resource("i-3", tags("db-z", dr__wave="3", dr__priority="critical")),
        resource("i-4", tags("ad-01", dr__wave="1")),
        resource("i-5", tags("app-01", dr__wave="10")),
    )

    assert [w.number for w in plan.waves] == [1, 3, 10]
    assert [r.name for r in plan.wave(3).resources] == ["db-z", "web-a", "web-b"]


def test_given_a_wave_filter_when_planning_then_only_those_waves_and_missing_ones_warned() -> None:
    plan = plan_of(
        resource("i-1", tags("a", dr__wave="1")),
        resource("i-2", tags("b", dr__wave="2")),
        wave_filter=[2, 5],
    )

    assert [w.number for w in plan.waves] == [2]
    assert [(w.code, w.resource_id) for w in plan.warnings] == [("WAVE_NOT_FOUND", "*")]


def test_given_the_same_resource_twice_when_planning_then_planned_once() -> None:
    one = resource("i-1", tags("web-01"))

    assert plan_of(one, one).resource_count == 1


# --- scope resolution -----------------------------------------------------------------------------


ENTRY = CustomerEntry(
    name="acme",
    account=ACCOUNT,
    regions=REGIONS,
    environments=[EnvironmentEntry(name="production"), EnvironmentEntry(name="staging")],
    external_id="ext-acme",
)


def test_given_unknown_customer_when_resolving_then_error_names_value_and_known_ones() -> None:
    with pytest.raises(UnknownScope) as caught:
        resolve_scope(None, "acmee", "production", lambda: ["globex", "acme"])

    assert caught.value.code == "UNKNOWN_CUSTOMER"
    assert caught.value.known == ["acme", "globex"]
    assert "'acmee'" in str(caught.value) and "acme, globex" in str(caught.value)


def test_given_unknown_environment_when_resolving_then_error_lists_the_customers_envs() -> None:
    with pytest.raises(UnknownScope) as caught:
        resolve_scope(ENTRY, "acme", "prod", lambda: ["acme"])

    assert caught.value.code == "UNKNOWN_ENVIRONMENT"
    assert caught.value.known == ["production", "staging"]
    assert "'prod'" in str(caught.value)


# --- Resource Explorer queries, splitting and fallback --------------------------------------------


class FakeExplorer:
    """Answers queries like Resource Explorer: AND of filters, `-` negation, 1,000-match cap."""

    def __init__(self, resources: list[DiscoveredResource], cap: int = 1000) -> None:
        self.resources = resources
        self.cap = cap
        self.queries: list[str] = []

    def __call__(self, query: str) -> SearchResult:
        self.queries.append(query)
        matches = [r for r in self.resources if all(self._match(r, f) for f in query.split())]
        return SearchResult(resources=matches[: self.cap], complete=len(matches) <= self.cap)

    @staticmethod
    def _match(r: DiscoveredResource, term: str) -> bool:
        negate = term.startswith("-")
        term = term.lstrip("-")
        if term.startswith("tag:"):
            key, _, value = term[4:].rpartition("=")
            hit = r.tags.get(key) == value
        elif term.startswith("region:"):
            hit = r.region == term[7:]
        elif term.startswith("resourcetype:"):
            hit = term == "resourcetype:ec2:instance"
        else:
            raise AssertionError(f"unexpected filter {term}")
        return hit != negate


def estate(
    count: int, waves: int, region: str = "us-east-1", start: int = 0
) -> list[DiscoveredResource]:
    return [
        resource(f"i-{region}-{n:05d}", tags(f"srv-{n:05d}", dr__wave=str(n % waves + 1)), region)
        for n in range(start, start + count)
    ]


def test_given_the_scope_when_building_the_query_then_it_filters_tags_and_type() -> None:
    assert scope_query("acme", "production") == (
        "tag:dr:enabled=true tag:Customer=acme tag:Environment=production resourcetype:ec2:instance"
    )


def test_given_fewer_than_1000_matches_when_searching_then_one_query() -> None:
    explorer = FakeExplorer(estate(300, 3))

    found = search_scope(explorer, "acme", "production", ["us-east-1"])

    assert len(found) == 300 and len(explorer.queries) == 1


def test_given_capped_results_when_searching_then_split_by_region_then_wave_finds_all() -> None:
    everything = estate(1500, 4, "us-east-1") + estate(400, 2, "us-west-2", start=5000)
    explorer = FakeExplorer(everything)

    found = search_scope(explorer, "acme", "production", ["us-east-1", "us-west-2"])

    assert {r.arn for r in found} == {r.arn for r in everything}
    assert any("region:us-west-2" in q and "dr:wave" not in q for q in explorer.queries)
    assert any("tag:dr:wave=4" in q for q in explorer.queries)


def test_given_waves_not_seen_in_the_capped_page_when_splitting_then_remainder_finds_them() -> None:
    # 1,000 servers of wave 1 come first: waves 2 and 3 are invisible in the capped answer.
    everything = estate(1000, 1) + [
        resource(f"i-late-{n}", tags(f"late-{n}", dr__wave=str(2 + n % 2))) for n in range(200)
    ]
    explorer = FakeExplorer(everything, cap=1000)

    found = search_scope(explorer, "acme", "production", ["us-east-1"])

    assert len(found) == 1200
    assert any("-tag:dr:wave=1" in q for q in explorer.queries)


def test_given_one_wave_above_the_cap_when_splitting_then_search_incomplete() -> None:
    explorer = FakeExplorer(estate(1200, 1), cap=1000)

    with pytest.raises(SearchIncomplete):
        search_scope(explorer, "acme", "production", ["us-east-1"])


def test_given_explorer_unavailable_when_discovering_then_tagging_api_with_a_warning() -> None:
    def broken(query: str) -> SearchResult:
        raise InventoryUnavailable("UnauthorizedException: no default view")

    found, source, notes = discover(
        broken, lambda: [resource("i-1", tags("a"))], "acme", "production", ["us-east-1"]
    )

    assert source is PlanSource.TAGGING_API and [r.resource_id for r in found] == ["i-1"]
    assert notes[0].code == "RESOURCE_EXPLORER_UNAVAILABLE"
    assert "UnauthorizedException" in notes[0].message


def test_given_explorer_capped_beyond_splitting_when_discovering_then_tagging_api() -> None:
    explorer = FakeExplorer(estate(1200, 1))

    _, source, _ = discover(explorer, lambda: [], "acme", "production", ["us-east-1"])

    assert source is PlanSource.TAGGING_API


def test_given_every_source_down_when_discovering_then_discovery_unavailable_names_both() -> None:
    def broken(query: str) -> SearchResult:
        raise InventoryUnavailable("AccessDeniedException")

    def fallback() -> list[DiscoveredResource]:
        raise InventoryUnavailable("EndpointError: unreachable")

    with pytest.raises(DiscoveryUnavailable, match=r"AccessDenied.*unreachable"):
        discover(broken, fallback, "acme", "production", ["us-east-1"])


def test_given_ec2_answers_when_enriching_then_private_ips_filled_and_failures_warned() -> None:
    east = resource("i-1", tags("a"))
    west = resource("i-2", tags("b"), region="us-west-2")

    def lookup(region: str, ids: list[str]) -> dict[str, InstanceFacts]:
        if region == "us-west-2":
            raise InventoryUnavailable("EndpointError")
        return {"i-1": InstanceFacts(private_ip="10.0.0.7", state="running")}

    enriched, warnings = enrich([east, west], lookup)

    assert [r.private_ip for r in enriched] == ["10.0.0.7", None]
    assert [w.code for w in warnings] == ["ENRICHMENT_SKIPPED"]


# --- handler --------------------------------------------------------------------------------------


class LambdaContext:
    function_name = "dr-discovery"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-2:123456789012:function:dr-discovery"
    aws_request_id = "req-1"


@pytest.mark.filterwarnings("ignore:No application metrics")
def test_given_an_operation_request_when_the_handler_runs_then_discovery_is_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json

    from events.schemas import DetailType, OperationRequested, Source
    from services.discovery import handler

    asked: list[str] = []

    class Stub:
        def on_operation_requested(self, request: OperationRequested) -> None:
            asked.append(request.operation_id)

    monkeypatch.setattr(handler, "_service", lambda: Stub())
    detail = OperationRequested(
        operation_id="op-123456",
        customer="acme",
        environment="production",
        operation=OperationType.FAILOVER,
        requested_by="sre@example.com",
    )
    body = {
        "id": "e-1",
        "detail-type": DetailType.OPERATION_REQUESTED.value,
        "source": Source.CLI.value,
        "detail": json.loads(detail.model_dump_json()),
    }
    event = {
        "Records": [
            {
                "messageId": "m-1",
                "receiptHandle": "r-1",
                "body": json.dumps(body),
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-2:123456789012:dr-discovery",
                "awsRegion": "us-east-2",
            }
        ]
    }

    assert handler.handler(event, LambdaContext()) == {"batchItemFailures": []}
    assert asked == ["op-123456"]


# --- tenant isolation (property) ------------------------------------------------------------------


_TENANTS = st.sampled_from(["acme", "globex", "initech"])
_ENVS = st.sampled_from(["production", "staging"])


@hypothesis_settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_TENANTS, _ENVS, st.integers(1, 5)), max_size=30))
def test_given_any_estate_when_planning_then_only_the_requested_scope_is_planned(
    estate_spec: list[tuple[str, str, int]],
) -> None:
    resources = [
        resource(f"i-{n}", tags(f"srv-{n}", Customer=c, Environment=e, dr__wave=str(w)))
        for n, (c, e, w) in enumerate(estate_spec)
    ]

    plan = plan_of(*resources)

    planned = [r for w in plan.waves for r in w.resources]
    assert all(
        r.tags[T.CUSTOMER] == "acme" and r.tags[T.ENVIRONMENT] == "production" for r in planned
    )
    in_scope = sum(1 for c, e, _ in estate_spec if (c, e) == ("acme", "production"))
    assert len(planned) == in_scope
    assert len(plan.warnings) == len(estate_spec) - in_scope
