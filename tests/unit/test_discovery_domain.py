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
    parse_arn,
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
            wanted = term.removeprefix("resourcetype:")
            hit = (
                r.resource_type.startswith(wanted[:-1])
                if wanted.endswith("*")
                else r.resource_type == wanted
            )
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


def test_given_the_scope_when_building_the_query_then_it_filters_tags_and_optionally_type() -> None:
    scope = "tag:dr:enabled=true tag:Customer=acme tag:Environment=production"
    assert scope_query("acme", "production") == scope
    assert scope_query("acme", "production", "eks:cluster") == f"{scope} resourcetype:eks:cluster"
    # Load balancers: classic, and Resource Explorer's /app and /net subtypes.
    assert scope_query("acme", "production", "elasticloadbalancing:loadbalancer").endswith(
        "resourcetype:elasticloadbalancing:loadbalancer*"
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


# --- resource types beyond EC2 --------------------------------------------------------------------

EVERY_STRATEGY = ("drs", "sql-ag", "eks-dns", "managed-service")


def typed(
    arn_resource: str,
    service: str,
    tag_map: Mapping[str, str],
    account: str = ACCOUNT,
    region: str = "us-east-1",
) -> DiscoveredResource:
    """A resource as the adapters report it: type and natural id from its ARN."""
    arn = f"arn:aws:{service}:{region}:{account}:{arn_resource}"
    parts = parse_arn(arn)
    return DiscoveredResource(
        arn=arn,
        resource_id=parts.resource_id,
        account=parts.account,
        region=parts.region,
        tags=dict(tag_map),
        resource_type=parts.resource_type,
    )


@pytest.mark.parametrize(
    ("service", "resource", "resource_type", "resource_id"),
    [
        ("ec2", "instance/i-0abc", "ec2:instance", "i-0abc"),
        ("eks", "cluster/acme-prod", "eks:cluster", "acme-prod"),
        ("elasticfilesystem", "file-system/fs-01", "elasticfilesystem:file-system", "fs-01"),
        ("fsx", "file-system/fs-0ontap", "fsx:file-system", "fs-0ontap"),
        ("elasticache", "replicationgroup:sessions", "elasticache:replicationgroup", "sessions"),
        (
            "elasticloadbalancing",
            "loadbalancer/app/web/50dc6c495c0c9188",
            "elasticloadbalancing:loadbalancer",
            "web",
        ),
        (
            "elasticloadbalancing",
            "loadbalancer/net/api/4a2b",
            "elasticloadbalancing:loadbalancer",
            "api",
        ),
        (
            "elasticloadbalancing",
            "loadbalancer/classic",
            "elasticloadbalancing:loadbalancer",
            "classic",
        ),
        ("ec2", "volume/vol-1", "ec2:volume", "vol-1"),
    ],
)
def test_arns_give_the_type_and_natural_id(
    service: str, resource: str, resource_type: str, resource_id: str
) -> None:
    parts = parse_arn(f"arn:aws:{service}:us-east-1:{ACCOUNT}:{resource}")

    assert (parts.resource_type, parts.resource_id) == (resource_type, resource_id)
    assert (parts.region, parts.account) == ("us-east-1", ACCOUNT)


def test_a_malformed_arn_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="'cluster/acme'"):
        parse_arn("cluster/acme")


def test_given_every_supported_type_when_planning_then_each_has_its_strategy_and_type() -> None:
    # Given an EKS cluster, a SQL AG primary, managed resources and a DRS server (no Name on the
    # SQL primary and the cache: the id stands in, and no twin warning is due for them)
    eks = typed(
        "cluster/acme-prod-eks", "eks", tags("acme-prod-eks", dr__recovery_strategy="eks-dns")
    )
    sql_tags = tags("", dr__recovery_strategy="sql-ag")
    del sql_tags[T.NAME]
    sql = resource("i-0sql", sql_tags)
    efs = typed(
        "file-system/fs-01",
        "elasticfilesystem",
        tags("acme-files", dr__recovery_strategy="managed-service"),
    )
    fsx = typed(
        "file-system/fs-02", "fsx", tags("acme-ontap", dr__recovery_strategy="managed-service")
    )
    cache_tags = tags("", dr__recovery_strategy="managed-service")
    del cache_tags[T.NAME]
    cache = typed("replicationgroup:acme-sessions", "elasticache", cache_tags)
    alb = typed(
        "loadbalancer/app/acme-web/0f0f",
        "elasticloadbalancing",
        tags("acme-web", dr__recovery_strategy="managed-service"),
    )
    web = resource("i-0web", tags("web-01"))

    # When planning with every strategy enabled
    plan = plan_of(eks, sql, efs, fsx, cache, alb, web, enabled_strategies=EVERY_STRATEGY)

    # Then every resource is planned with its type, strategy, name and DR region
    planned = {r.resource_id: r for w in plan.waves for r in w.resources}
    assert {rid: (r.resource_type, r.strategy.value, r.name) for rid, r in planned.items()} == {
        "acme-prod-eks": ("eks:cluster", "eks-dns", "acme-prod-eks"),
        "i-0sql": ("ec2:instance", "sql-ag", "i-0sql"),
        "fs-01": ("elasticfilesystem:file-system", "managed-service", "acme-files"),
        "fs-02": ("fsx:file-system", "managed-service", "acme-ontap"),
        "acme-sessions": ("elasticache:replicationgroup", "managed-service", "acme-sessions"),
        "acme-web": ("elasticloadbalancing:loadbalancer", "managed-service", "acme-web"),
        "i-0web": ("ec2:instance", "drs", "web-01"),
    }
    assert all(r.dr_region == "us-east-2" and r.account == ACCOUNT for r in planned.values())
    assert planned["acme-prod-eks"].arn.endswith(":cluster/acme-prod-eks")
    assert (planned["fs-01"].rto_target_minutes, planned["fs-01"].rpo_target_minutes) == (60, 15)
    assert plan.warnings == []


def test_given_another_tenants_cluster_with_the_same_name_when_planning_then_only_mine() -> None:
    # Given acme's EKS cluster and globex's, both Name=shared-eks, in the same account's index
    mine = typed("cluster/acme-eks", "eks", tags("shared-eks", dr__recovery_strategy="eks-dns"))
    theirs = typed(
        "cluster/globex-eks",
        "eks",
        tags("shared-eks", dr__recovery_strategy="eks-dns", Customer="globex"),
        account="222222222222",
    )
    other_env = typed(
        "file-system/fs-stg",
        "elasticfilesystem",
        tags("shared-eks", dr__recovery_strategy="managed-service", Environment="staging"),
    )

    plan = plan_of(mine, theirs, other_env, enabled_strategies=EVERY_STRATEGY)

    # Then only acme's production cluster is planned; the others are reported, never touched
    assert [r.arn for w in plan.waves for r in w.resources] == [mine.arn]
    assert sorted((w.code, w.resource_id) for w in plan.warnings) == [
        ("SCOPE_MISMATCH", "fs-stg"),
        ("SCOPE_MISMATCH", "globex-eks"),
    ]


def test_given_an_invalid_tag_on_a_file_system_when_planning_then_excluded_naming_the_value() -> (
    None
):
    bad = typed(
        "file-system/fs-bad",
        "elasticfilesystem",
        tags("files", dr__recovery_strategy="managed-service", dr__wave="first"),
    )
    good = typed(
        "file-system/fs-ok",
        "elasticfilesystem",
        tags("files-2", dr__recovery_strategy="managed-service"),
    )

    plan = plan_of(bad, good, enabled_strategies=EVERY_STRATEGY)

    assert [r.resource_id for w in plan.waves for r in w.resources] == ["fs-ok"]
    (warning,) = plan.warnings
    assert (warning.code, warning.resource_id) == ("INVALID_TAG", "fs-bad")
    assert "dr:wave" in warning.message and "'first'" in warning.message


@pytest.mark.parametrize(
    ("service", "arn_resource", "strategy"),
    [
        ("eks", "cluster/acme-eks", "drs"),
        ("ec2", "instance/i-0k8s", "eks-dns"),
        ("ec2", "instance/i-0efs", "managed-service"),
        ("elasticfilesystem", "file-system/fs-1", "sql-ag"),
    ],
)
def test_given_a_strategy_that_cannot_recover_the_type_when_planning_then_invalid_tag(
    service: str, arn_resource: str, strategy: str
) -> None:
    item = typed(arn_resource, service, tags("x", dr__recovery_strategy=strategy))

    plan = plan_of(item, enabled_strategies=EVERY_STRATEGY)

    assert plan.waves == []
    (warning,) = plan.warnings
    assert warning.code == "INVALID_TAG"
    assert f"dr:recovery-strategy={strategy!r}" in warning.message
    assert item.resource_type in warning.message


def test_given_a_strategy_without_its_service_when_planning_a_cluster_then_not_available() -> None:
    eks = typed("cluster/acme-eks", "eks", tags("acme-eks", dr__recovery_strategy="eks-dns"))

    plan = plan_of(eks, enabled_strategies=("drs", "managed-service"))

    assert [(w.code, w.resource_id) for w in plan.warnings] == [
        ("STRATEGY_NOT_AVAILABLE", "acme-eks")
    ]


def test_given_two_types_sharing_an_id_when_planning_then_both_excluded_as_a_conflict() -> None:
    eks = typed("cluster/web", "eks", tags("web", dr__recovery_strategy="eks-dns"))
    alb = typed(
        "loadbalancer/app/web/0f0f",
        "elasticloadbalancing",
        tags("web", dr__recovery_strategy="managed-service"),
    )
    other = typed("cluster/api", "eks", tags("api", dr__recovery_strategy="eks-dns"))

    plan = plan_of(eks, alb, other, enabled_strategies=EVERY_STRATEGY)

    assert [r.resource_id for w in plan.waves for r in w.resources] == ["api"]
    assert [(w.code, w.resource_id) for w in plan.warnings] == [
        ("RESOURCE_ID_CONFLICT", "web"),
        ("RESOURCE_ID_CONFLICT", "web"),
    ]
    assert eks.arn in plan.warnings[0].message and alb.arn in plan.warnings[0].message


def test_given_mixed_types_when_searching_then_one_query_and_only_supported_types() -> None:
    eks = typed("cluster/acme-eks", "eks", tags("acme-eks", dr__recovery_strategy="eks-dns"))
    volume = typed("volume/vol-1", "ec2", tags("web-01"))  # inherits its instance's tags
    explorer = FakeExplorer([eks, volume, *estate(5, 1)])

    found = search_scope(explorer, "acme", "production", ["us-east-1"])

    assert len(explorer.queries) == 1
    assert sorted(r.resource_type for r in found) == ["ec2:instance"] * 5 + ["eks:cluster"]


def test_given_capped_results_with_several_types_when_searching_then_split_per_type() -> None:
    # Given 1,200 instances (two waves) and a cluster, a file system and three load balancers
    others = [
        typed("cluster/acme-eks", "eks", tags("acme-eks", dr__recovery_strategy="eks-dns")),
        typed("file-system/fs-1", "elasticfilesystem", tags("files")),
        typed("loadbalancer/app/web/1", "elasticloadbalancing", tags("web")),
        typed("loadbalancer/net/api/2", "elasticloadbalancing", tags("api")),
        typed("loadbalancer/old", "elasticloadbalancing", tags("old")),
    ]
    everything = estate(1200, 2) + others
    explorer = FakeExplorer(everything)

    found = search_scope(explorer, "acme", "production", ["us-east-1"])

    # Then every resource is found: one query per type, the instances split further
    assert {r.arn for r in found} == {r.arn for r in everything}
    assert any(
        q.endswith("resourcetype:elasticloadbalancing:loadbalancer*") for q in explorer.queries
    )
    assert any("resourcetype:ec2:instance" in q and "tag:dr:wave=2" in q for q in explorer.queries)


def test_given_non_ec2_resources_when_enriching_then_only_instances_are_looked_up() -> None:
    eks = typed("cluster/acme-eks", "eks", tags("acme-eks"))
    web = resource("i-1", tags("web-01"))
    asked: list[list[str]] = []

    def lookup(region: str, ids: list[str]) -> dict[str, InstanceFacts]:
        asked.append(ids)
        return {"i-1": InstanceFacts(private_ip="10.0.0.7", state="running")}

    enriched, warnings = enrich([eks, web], lookup)

    assert asked == [["i-1"]] and warnings == []
    assert [(r.resource_id, r.private_ip) for r in enriched] == [
        ("acme-eks", None),
        ("i-1", "10.0.0.7"),
    ]
