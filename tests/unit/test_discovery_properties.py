"""Property tests of discovery's planning over random multi-tenant estates.

Each generated resource records, next to the resource itself, what its tags were built to be
(valid or not, and the wave they name), so the properties are checked against that knowledge
rather than against the parser under test.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from drcore import tags as T
from drcore.plan import Plan, PlannedResource
from events.schemas import OperationType, PlanSource
from services.discovery.domain import (
    CACHE_REPLICATION_GROUP,
    EC2_INSTANCE,
    EFS_FILE_SYSTEM,
    EKS_CLUSTER,
    FSX_FILE_SYSTEM,
    LOAD_BALANCER,
    PLAN_WIDE,
    SCOPE_MISMATCH,
    STRATEGY_NOT_AVAILABLE,
    DiscoveredResource,
    build_plan,
    parse_arn,
)

TENANTS = ("acme", "globex", "initech")
ENVIRONMENTS = ("production", "staging")
ACCOUNTS = ("111111111111", "222222222222", "333333333333")
HOME_ACCOUNT = dict(zip(TENANTS, ACCOUNTS, strict=True))
REGION_MAP = {"us-east-1": "us-east-2"}
EVERY_STRATEGY = ("drs", "sql-ag", "eks-dns", "managed-service")
NOW = datetime(2026, 11, 1, tzinfo=UTC)
# Few names, so that tenants share them.
NAMES = ("web", "db", "api")

# (type, ARN service, ARN resource from a unique number, strategies that recover it)
KINDS = (
    (EC2_INSTANCE, "ec2", "instance/i-{n:08x}", ("drs", "sql-ag")),
    (EKS_CLUSTER, "eks", "cluster/cluster-{n}", ("eks-dns",)),
    (EFS_FILE_SYSTEM, "elasticfilesystem", "file-system/fs-{n:08x}", ("managed-service",)),
    (FSX_FILE_SYSTEM, "fsx", "file-system/fs-0{n:016x}", ("managed-service",)),
    (CACHE_REPLICATION_GROUP, "elasticache", "replicationgroup:cache-{n}", ("managed-service",)),
    (
        LOAD_BALANCER,
        "elasticloadbalancing",
        "loadbalancer/app/lb-{n}/{n:016x}",
        ("managed-service",),
    ),
)

# Tag values labelled valid (with what they mean) or invalid; None leaves the tag off.
VALID_WAVES = {"1": 1, "2": 2, "3": 3, " 4 ": 4, "07": 7, "100": 100}
BAD_WAVES = ("0", "x", "-1", "101", "1.5", "\u0661", "\uff13", " ", None)
VALID_PRIORITIES = ("critical", "high", "medium", "low", "HIGH")
BAD_PRIORITIES = ("urgent", "p1", "", None)
BAD_STRATEGIES = ("pilot-light", "backup", "drs ag", "", None)
VALID_TARGETS = ("1", "15", "60", "240 ", "10080")
BAD_TARGETS = ("soon", "1h", "0", "-5", "10081", "", None)
BAD_ENABLED = ("false", "yes", "", None)
TAG_PROBLEM_CODES = {"INVALID_TAG", "MISSING_TAG", "NOT_ENABLED"}


@dataclass(frozen=True)
class Item:
    """A generated resource and what its tags were built to mean."""

    resource: DiscoveredResource
    customer: str | None
    environment: str
    tags_valid: bool  # every dr:* tag present, well-formed, and a strategy that recovers the type
    malformed: bool  # some dr:* tag missing or not a value of the taxonomy
    wave: int | None  # the wave its dr:wave tag names, when that tag is valid
    strategy: str | None  # the strategy its tag names, when valid
    gone: bool  # a terminated instance
    bad_tag: tuple[str, str | None] | None = None  # a tag made bad on purpose, and its value


@dataclass(frozen=True)
class Scope:
    """What an operation asks to plan, and the strategies with a deployed recovery service."""

    customer: str
    environment: str
    account: str
    enabled: tuple[str, ...]


@st.composite
def scopes(draw: st.DrawFn) -> Scope:
    customer = draw(st.sampled_from(TENANTS))
    home = HOME_ACCOUNT[customer]
    return Scope(
        customer=customer,
        environment=draw(st.sampled_from(ENVIRONMENTS)),
        account=draw(st.sampled_from((home, home, home, *ACCOUNTS))),
        enabled=draw(
            st.sampled_from(
                (EVERY_STRATEGY, EVERY_STRATEGY, ("drs", "managed-service"), ("eks-dns",))
            )
        ),
    )


def _choose(draw: st.DrawFn, valid: tuple[str, ...], bad: tuple[str | None, ...]) -> str | None:
    """A valid value most of the time, else one of the bad ones (None: the tag is absent)."""
    if draw(st.integers(0, 14)) < 14:
        return draw(st.sampled_from(valid))
    return draw(st.sampled_from(bad))


@st.composite
def items(draw: st.DrawFn, n: int, focus: Scope) -> Item:
    """One resource; about half of them in the `focus` scope."""
    kind, service, arn_pattern, recovers = draw(st.sampled_from(KINDS))
    customer = draw(st.sampled_from((*[focus.customer] * 7, *TENANTS, None)))
    environment = draw(st.sampled_from((*[focus.environment] * 3, *ENVIRONMENTS)))
    # The customer's account is the one the scope names, mostly; any account sometimes.
    home = focus.account if customer == focus.customer else HOME_ACCOUNT.get(customer or "")
    account = draw(st.sampled_from((*[home or ACCOUNTS[0]] * 4, *ACCOUNTS)))
    region = draw(st.sampled_from((*["us-east-1"] * 5, "eu-west-1")))
    arn = f"arn:aws:{service}:{region}:{account}:{arn_pattern.format(n=n)}"
    parts = parse_arn(arn)
    assert parts.resource_type == kind  # the generator builds the ARNs the adapters report

    wave_raw = _choose(draw, tuple(VALID_WAVES), BAD_WAVES)
    priority = _choose(draw, VALID_PRIORITIES, BAD_PRIORITIES)
    rto = _choose(draw, VALID_TARGETS, BAD_TARGETS)
    rpo = _choose(draw, VALID_TARGETS, BAD_TARGETS)
    enabled = _choose(draw, ("true", "True"), BAD_ENABLED)
    strategy_choice = draw(st.sampled_from((*["fits"] * 6, "other", "bad")))
    if strategy_choice == "fits":
        strategy: str | None = draw(st.sampled_from(recovers))
    elif strategy_choice == "other":
        strategy = draw(st.sampled_from([s for s in EVERY_STRATEGY if s not in recovers]))
    else:
        strategy = draw(st.sampled_from(BAD_STRATEGIES))
    name = draw(st.sampled_from((*NAMES, None)))

    raw = {
        T.ENABLED: enabled,
        T.PRIORITY: priority,
        T.WAVE: wave_raw,
        T.STRATEGY: strategy,
        T.RTO_TARGET: rto,
        T.RPO_TARGET: rpo,
        T.CUSTOMER: customer,
        T.ENVIRONMENT: environment,
        T.NAME: name,
    }
    tag_map = {key: value for key, value in raw.items() if value is not None}
    state = None
    if kind == EC2_INSTANCE:
        state = draw(st.sampled_from((None, "running", "stopped", "terminated", "shutting-down")))

    wave = VALID_WAVES.get(wave_raw or "")
    malformed = not (
        wave is not None
        and priority in VALID_PRIORITIES
        and rto in VALID_TARGETS
        and rpo in VALID_TARGETS
        and enabled in ("true", "True")
        and strategy_choice != "bad"
    )
    return Item(
        resource=DiscoveredResource(
            arn=arn,
            resource_id=parts.resource_id,
            account=parts.account,
            region=parts.region,
            tags=tag_map,
            state=state,
            resource_type=parts.resource_type,
        ),
        customer=customer,
        environment=environment,
        tags_valid=not malformed and strategy_choice == "fits",
        malformed=malformed,
        wave=wave,
        strategy=strategy if strategy_choice == "fits" else None,
        gone=state in ("terminated", "shutting-down"),
    )


BAD_VALUES: dict[str, tuple[str | None, ...]] = {
    T.WAVE: BAD_WAVES,
    T.PRIORITY: BAD_PRIORITIES,
    T.STRATEGY: BAD_STRATEGIES,
    T.RTO_TARGET: BAD_TARGETS,
    T.RPO_TARGET: BAD_TARGETS,
    T.ENABLED: BAD_ENABLED,
}


@st.composite
def with_a_bad_tag(draw: st.DrawFn, item: Item) -> Item:
    """The item with one of its DR tags replaced by a bad value (or removed)."""
    key = draw(st.sampled_from(sorted(BAD_VALUES)))
    value = draw(st.sampled_from(BAD_VALUES[key]))
    tag_map = {k: v for k, v in item.resource.tags.items() if k != key}
    if value is not None:
        tag_map[key] = value
    return replace(
        item,
        resource=replace(item.resource, tags=tag_map),
        tags_valid=False,
        malformed=True,
        wave=None if key == T.WAVE else item.wave,
        bad_tag=(key, value),
    )


@st.composite
def cases(draw: st.DrawFn, corrupt: bool = False) -> tuple[Scope, list[Item]]:
    """A requested scope and an estate of several tenants around it (with `corrupt`, about
    half of the resources get one more bad DR tag)."""
    scope = draw(scopes())
    count = draw(st.integers(0, 24))
    estate = [draw(items(n, scope)) for n in range(count)]
    if corrupt:
        estate = [draw(with_a_bad_tag(i)) if draw(st.booleans()) else i for i in estate]
    return scope, estate


FAST = settings(max_examples=50, deadline=None)


def plan_for(scope: Scope, estate: list[Item]) -> Plan:
    return build_plan(
        customer=scope.customer,
        environment=scope.environment,
        operation=OperationType.FAILOVER,
        account=scope.account,
        region_map=REGION_MAP,
        resources=[item.resource for item in estate],
        plan_source=PlanSource.RESOURCE_EXPLORER,
        enabled_strategies=scope.enabled,
        created_at=NOW,
    )


def planned_of(plan: Plan) -> list[PlannedResource]:
    return [resource for wave in plan.waves for resource in wave.resources]


def in_scope(item: Item, scope: Scope) -> bool:
    return (item.customer, item.environment, item.resource.account) == (
        scope.customer,
        scope.environment,
        scope.account,
    )


@FAST
@given(cases())
def test_given_any_estate_when_planning_then_no_resource_of_another_scope_is_planned(
    case: tuple[Scope, list[Item]],
) -> None:
    scope, estate = case
    plan = plan_for(scope, estate)

    by_arn = {item.resource.arn: item for item in estate}
    for planned in planned_of(plan):
        item = by_arn[planned.arn]
        assert in_scope(item, scope), f"{planned.arn} planned for {scope}"
        assert planned.account == scope.account
        assert planned.tags.get(T.CUSTOMER) == scope.customer
        assert planned.tags.get(T.ENVIRONMENT) == scope.environment
    # Every resource of another scope is reported as such, whatever else is wrong with it.
    for item in estate:
        if not in_scope(item, scope):
            codes = {w.code for w in plan.warnings if w.resource_id == item.resource.resource_id}
            assert SCOPE_MISMATCH in codes, item.resource.arn


@FAST
@given(cases())
def test_given_any_estate_when_planning_then_each_resource_is_planned_once_or_warned(
    case: tuple[Scope, list[Item]],
) -> None:
    scope, estate = case
    plan = plan_for(scope, estate)

    planned_arns = [p.arn for p in planned_of(plan)]
    assert len(planned_arns) == len(set(planned_arns)), "a resource is planned twice"
    assert set(planned_arns) <= {item.resource.arn for item in estate}
    warned = Counter(w.resource_id for w in plan.warnings)
    excluded = Counter(
        item.resource.resource_id for item in estate if item.resource.arn not in planned_arns
    )
    # No silent drop: each excluded resource has at least one warning under its id...
    for resource_id, count in excluded.items():
        assert warned[resource_id] >= count, f"{resource_id} excluded without a warning"
    # ...naming it, and no warning is about a resource that was not in the estate.
    labels = {
        item.resource.resource_id: item.resource.tags.get(T.NAME) or item.resource.resource_id
        for item in estate
    }
    for warning in plan.warnings:
        assert warning.resource_id in labels or warning.resource_id == PLAN_WIDE
        if warning.resource_id in labels:
            assert warning.message.startswith(f"{labels[warning.resource_id]}: ")
    # A resource with nothing wrong is never excluded.
    for item in estate:
        recoverable = (
            in_scope(item, scope)
            and item.tags_valid
            and not item.gone
            and item.strategy in scope.enabled
            and item.resource.region in REGION_MAP
        )
        assert (item.resource.arn in planned_arns) == recoverable, item


@FAST
@given(cases())
def test_given_any_estate_when_planning_then_waves_ascend_and_hold_their_tagged_resources(
    case: tuple[Scope, list[Item]],
) -> None:
    scope, estate = case
    plan = plan_for(scope, estate)

    numbers = [wave.number for wave in plan.waves]
    assert numbers == sorted(set(numbers)), f"waves out of order: {numbers}"
    assert all(wave.resources for wave in plan.waves), "an empty wave"
    tagged_wave = {item.resource.arn: item.wave for item in estate}
    for wave in plan.waves:
        for planned in wave.resources:
            assert tagged_wave[planned.arn] == wave.number == planned.wave, planned.arn


@FAST
@given(cases(corrupt=True))
def test_given_any_invalid_dr_tag_when_planning_then_never_planned_and_warned(
    case: tuple[Scope, list[Item]],
) -> None:
    scope, estate = case
    plan = plan_for(scope, estate)

    planned_arns = {p.arn for p in planned_of(plan)}
    for item in estate:
        if item.tags_valid:
            continue
        assert item.resource.arn not in planned_arns, f"planned with invalid tags: {item}"
        codes = {w.code for w in plan.warnings if w.resource_id == item.resource.resource_id}
        if not in_scope(item, scope) or item.gone:
            assert codes, f"{item.resource.arn} excluded without a warning"
        elif item.malformed:
            assert codes & TAG_PROBLEM_CODES, f"{item.resource.arn}: only {codes}"
        else:  # a well-formed strategy that cannot recover this type
            assert codes & {"INVALID_TAG", STRATEGY_NOT_AVAILABLE}, f"{item.resource.arn}: {codes}"
        if item.bad_tag and in_scope(item, scope) and not item.gone:
            # The warning names the bad tag, and its value when there is one.
            key, value = item.bad_tag
            messages = [
                w.message for w in plan.warnings if w.resource_id == item.resource.resource_id
            ]
            assert any(key in m for m in messages), (key, messages)
            if value is not None and value.strip():
                assert any(repr(value) in m for m in messages), (value, messages)


@st.composite
def twins(draw: st.DrawFn) -> tuple[Scope, list[Item], list[Item]]:
    """Tenant A's resources and tenant B's resources that copy their `Name`s (and, for types
    named by their ARN, their natural id), each valid."""
    scope = replace(draw(scopes()), enabled=EVERY_STRATEGY)
    other = draw(st.sampled_from([t for t in TENANTS if t != scope.customer]))
    other_account = draw(st.sampled_from(ACCOUNTS))
    mine: list[Item] = []
    theirs: list[Item] = []
    for n, name in enumerate(draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=6))):
        kind, service, arn_pattern, recovers = draw(st.sampled_from(KINDS))
        strategy = draw(st.sampled_from(recovers))
        wave = draw(st.integers(1, 5))
        # Distinct resources have distinct ARNs: in the same account, B's gets another number.
        theirs_n = n if other_account != scope.account else n + 1000
        for owner, account, number, bucket in (
            (scope.customer, scope.account, n, mine),
            (other, other_account, theirs_n, theirs),
        ):
            tag_map = {
                T.ENABLED: "true",
                T.PRIORITY: "high",
                T.WAVE: str(wave),
                T.STRATEGY: strategy,
                T.RTO_TARGET: "60",
                T.RPO_TARGET: "15",
                T.CUSTOMER: owner,
                T.ENVIRONMENT: scope.environment,
                T.NAME: name,
            }
            arn = f"arn:aws:{service}:us-east-1:{account}:{arn_pattern.format(n=number)}"
            parts = parse_arn(arn)
            bucket.append(
                Item(
                    resource=DiscoveredResource(
                        arn=arn,
                        resource_id=parts.resource_id,
                        account=account,
                        region="us-east-1",
                        tags=tag_map,
                        resource_type=kind,
                    ),
                    customer=owner,
                    environment=scope.environment,
                    tags_valid=True,
                    malformed=False,
                    wave=wave,
                    strategy=strategy,
                    gone=False,
                )
            )
    return scope, mine, theirs


@FAST
@given(twins(), st.randoms(use_true_random=False))
def test_given_same_names_in_another_tenant_when_planning_then_only_mine_are_planned(
    case: tuple[Scope, list[Item], list[Item]], rng: random.Random
) -> None:
    scope, mine, theirs = case
    estate = [*mine, *theirs]
    rng.shuffle(estate)

    plan = plan_for(scope, estate)

    planned = planned_of(plan)
    assert sorted(p.arn for p in planned) == sorted(item.resource.arn for item in mine)
    assert {p.tags[T.CUSTOMER] for p in planned} <= {scope.customer}
    mismatched = sorted(w.resource_id for w in plan.warnings if w.code == SCOPE_MISMATCH)
    assert mismatched == sorted(item.resource.resource_id for item in theirs)
