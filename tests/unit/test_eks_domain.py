"""eks domain with in-memory fakes: module tags, readiness rules, the Route 53 flip, validation,
and the idempotency rules (one result per resource, never flipping twice)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from drcore.registry import CustomerEntry, EnvironmentEntry
from events.schemas import (
    Detail,
    OperationType,
    ResourceRecovered,
    ResourceRecoveryFailed,
    ResourceRef,
    Strategy,
    WaveStarted,
)
from events.schemas.models import ResourceCheckRequested
from services.eks import domain as D
from services.eks.ports import (
    Addon,
    AwsError,
    Cluster,
    Deployment,
    FailoverRecord,
    HealthCheck,
    Node,
    Nodegroup,
    Pod,
    ResourceRecord,
)

ACCOUNT, PRIMARY, DR = "111111111111", "us-east-1", "us-east-2"
ZONE = "Z0123456789ABC"
NAMES = ("app.acme.example.", "api.internal.acme.example.")
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SCOPE = {"Customer": "acme", "Environment": "production"}
MODULE = {
    D.TAG_DR_CLUSTER: "acme-eks-dr",
    D.TAG_RECORDS: " ".join(f"{ZONE}/{n}" for n in NAMES),
}


# --- fakes ----------------------------------------------------------------------------------------


@dataclass
class FakeCluster:
    cluster: Cluster
    nodegroups: list[Nodegroup]
    addons: list[Addon]
    nodes: list[Node]
    deployments: list[Deployment]
    pods: list[Pod]


def healthy(name: str, region: str, tags: dict[str, str]) -> FakeCluster:
    return FakeCluster(
        cluster=Cluster(
            name,
            f"arn:aws:eks:{region}:{ACCOUNT}:cluster/{name}",
            "ACTIVE",
            "https://k",
            None,
            tags,
        ),
        nodegroups=[Nodegroup("workers", "ACTIVE", 2)],
        addons=[Addon("coredns", "ACTIVE"), Addon("vpc-cni", "ACTIVE")],
        nodes=[Node("n1", "workers", True), Node("n2", "workers", True)],
        deployments=[Deployment("default", "web", 2, 2)],
        pods=[Pod("default", "web-1", "Running", True), Pod("default", "web-2", "Running", True)],
    )


class FakeApi:
    def __init__(self, world: World, region: str) -> None:
        self.world, self.region = world, region

    def _get(self, name: str) -> FakeCluster | None:
        if self.region in self.world.down:
            raise AwsError("503", "Service Unavailable")
        return self.world.clusters.get((self.region, name))

    def cluster(self, name: str) -> Cluster | None:
        found = self._get(name)
        return found.cluster if found else None

    def clusters(self) -> list[Cluster]:
        return [c.cluster for (r, _), c in self.world.clusters.items() if r == self.region]

    def nodegroups(self, cluster: str) -> list[Nodegroup]:
        found = self._get(cluster)
        return list(found.nodegroups) if found else []

    def addons(self, cluster: str) -> list[Addon]:
        found = self._get(cluster)
        return list(found.addons) if found else []


class FakeKube:
    def __init__(self, fc: FakeCluster) -> None:
        self.fc = fc

    def nodes(self) -> list[Node]:
        return list(self.fc.nodes)

    def deployments(self, namespaces: Sequence[str]) -> list[Deployment]:
        return [d for d in self.fc.deployments if not namespaces or d.namespace in namespaces]

    def pods(self, namespaces: Sequence[str]) -> list[Pod]:
        return [p for p in self.fc.pods if not namespaces or p.namespace in namespaces]


class FakeDns:
    """Failover routing as Route 53 does it: PRIMARY while its check is healthy (disabled counts as
    healthy, then inverted), else SECONDARY. `lag` answers the old side for that many calls."""

    def __init__(self) -> None:
        self.checks = {"hc-1": HealthCheck("hc-1", inverted=False, disabled=False, version=1)}
        self.records: list[FailoverRecord] = []
        for name in NAMES:
            self.records += [
                FailoverRecord(ZONE, name, "CNAME", "PRIMARY", ("primary.elb",), "hc-1"),
                FailoverRecord(ZONE, name, "CNAME", "SECONDARY", ("dr.elb",), None),
            ]
        self.updates: list[tuple[str, bool]] = []
        self.lag = 0

    def record_sets(self, zone_id: str, name: str) -> list[FailoverRecord]:
        return [r for r in self.records if r.zone_id == zone_id and r.name == name]

    def health_check(self, health_check_id: str) -> HealthCheck | None:
        return self.checks.get(health_check_id)

    def set_inverted(self, check: HealthCheck, inverted: bool) -> None:
        self.updates.append((check.health_check_id, inverted))
        self.checks[check.health_check_id] = replace(check, inverted=inverted)

    def answer(self, zone_id: str, name: str, record_type: str) -> tuple[str, ...]:
        sets = [r for r in self.record_sets(zone_id, name) if r.type == record_type]
        primary = next(r for r in sets if r.role == "PRIMARY")
        secondary = next(r for r in sets if r.role == "SECONDARY")
        check = self.checks[primary.health_check_id or ""]
        status = check.inverted is False  # measured healthy; disabled also healthy
        if self.lag > 0:
            self.lag -= 1
            status = not status
        return primary.values if status else secondary.values


@dataclass
class FakeLedger:
    records: dict[tuple[str, str], ResourceRecord] = field(default_factory=dict)
    claims: set[tuple[str, str]] = field(default_factory=set)

    def load(self, operation_id: str, resource_id: str) -> ResourceRecord | None:
        return self.records.get((operation_id, resource_id))

    def claim_flip(self, operation_id: str, resource_id: str, ttl_epoch: int) -> bool:
        if (operation_id, resource_id) in self.claims:
            return False
        self.claims.add((operation_id, resource_id))
        return True

    def flipped(self, operation_id: str, resource_id: str, checks: Sequence[str]) -> None:
        pass

    def save_result(
        self, operation_id: str, resource_id: str, attempt: int, detail: Detail, ttl_epoch: int
    ) -> None:
        self.records[(operation_id, resource_id)] = ResourceRecord(
            result=detail.model_dump(mode="json"),
            result_type=type(detail).DETAIL_TYPE.value,
            result_attempt=attempt,
        )


class World:
    def __init__(self) -> None:
        self.entry = CustomerEntry(
            name="acme",
            account=ACCOUNT,
            regions={PRIMARY: DR},
            environments=[EnvironmentEntry(name="production", production=True)],
            external_id="dr-acme",
        )
        self.clusters: dict[tuple[str, str], FakeCluster] = {
            (PRIMARY, "acme-eks"): healthy("acme-eks", PRIMARY, {**SCOPE, **MODULE}),
            (DR, "acme-eks-dr"): healthy(
                "acme-eks-dr", DR, {**SCOPE, **MODULE, D.TAG_PRIMARY_CLUSTER: "acme-eks"}
            ),
        }
        self.dns = FakeDns()
        self.ledger = FakeLedger()
        self.published: list[Detail] = []
        self.sleeps: list[float] = []
        self.down: set[str] = set()
        self.recovery = D.EksRecovery(
            registry=self,
            workloads=_Workloads(self),
            ledger=self.ledger,
            results=self,
            log=_Log(),
            dns_backoff=(0, 5, 10),
            clock=lambda: T0,
            sleep=self.sleeps.append,
        )

    # Registry and Results ports
    def customer(self, name: str) -> CustomerEntry | None:
        return self.entry if name == "acme" else None

    def kubernetes(self, entry: CustomerEntry, region: str, cluster: Cluster) -> FakeKube:
        return FakeKube(self.clusters[(region, cluster.name)])

    def publish(self, details: Sequence[Detail]) -> None:
        self.published.extend(details)

    def dr(self) -> FakeCluster:
        return self.clusters[(DR, "acme-eks-dr")]


class _Workloads:
    def __init__(self, world: World) -> None:
        self.world = world

    def clusters(self, entry: CustomerEntry, region: str) -> FakeApi:
        return FakeApi(self.world, region)

    def kubernetes(self, entry: CustomerEntry, region: str, cluster: Cluster) -> FakeKube:
        return self.world.kubernetes(entry, region, cluster)

    def dns(self, entry: CustomerEntry) -> FakeDns:
        return self.world.dns


class _Log:
    def warning(self, *args: Any, **kwargs: Any) -> None:
        pass


def make_world() -> World:
    return World()


def ref(**overrides: Any) -> ResourceRef:
    values: dict[str, Any] = {
        "resource_id": "acme-eks",
        "arn": f"arn:aws:eks:{PRIMARY}:{ACCOUNT}:cluster/acme-eks",
        "name": "acme-eks",
        "account": ACCOUNT,
        "region": PRIMARY,
        "dr_region": DR,
        "rto_target_minutes": 60,
        "rpo_target_minutes": 15,
    }
    return ResourceRef.model_validate(values | overrides)


def part(operation: OperationType = OperationType.FAILOVER, attempt: int = 1) -> WaveStarted:
    return WaveStarted(
        operation_id="op-eks-1",
        customer="acme",
        environment="production",
        operation=operation,
        wave=3,
        strategy=Strategy.EKS_DNS,
        part=1,
        part_count=1,
        attempt=attempt,
        resources=[ref()],
    )


def only(world: World) -> Detail:
    assert len(world.published) == 1, world.published
    return world.published[0]


# --- module tags ----------------------------------------------------------------------------------


def test_given_valid_module_tags_then_config_has_fqdn_records_and_namespaces() -> None:
    config = D.parse_config(
        {**MODULE, D.TAG_NAMESPACES: "default payments", D.TAG_RECORDS: f"{ZONE}/App.Acme.Example"}
    )
    assert isinstance(config, D.EksConfig)
    assert config.records == (D.RecordName(ZONE, "app.acme.example."),)
    assert config.namespaces == ("default", "payments")
    assert config.routing_control is None


@pytest.mark.parametrize(
    ("tags", "tag", "shown"),
    [
        ({D.TAG_RECORDS: MODULE[D.TAG_RECORDS]}, D.TAG_DR_CLUSTER, "missing"),
        ({**MODULE, D.TAG_DR_CLUSTER: "bad name!"}, D.TAG_DR_CLUSTER, "'bad name!'"),
        ({**MODULE, D.TAG_RECORDS: "app.acme.example"}, D.TAG_RECORDS, "'app.acme.example'"),
        ({**MODULE, D.TAG_RECORDS: f"{ZONE}/bad..name"}, D.TAG_RECORDS, "bad..name"),
        ({**MODULE, D.TAG_NAMESPACES: "Payments"}, D.TAG_NAMESPACES, "'Payments'"),
        ({D.TAG_DR_CLUSTER: "x"}, D.TAG_RECORDS, "missing"),
    ],
)
def test_given_a_bad_module_tag_then_the_problem_names_the_tag_and_value(
    tags: dict[str, str], tag: str, shown: str
) -> None:
    problems = D.parse_config(tags)
    assert isinstance(problems, list)
    text = "; ".join(p.describe() for p in problems)
    assert tag in text and shown in text


# --- failover, failback, drill --------------------------------------------------------------------


def test_given_a_healthy_dr_cluster_when_failover_then_check_inverted_and_dns_points_at_dr() -> (
    None
):
    world = make_world()
    counts = world.recovery.recover_part(part())
    assert counts == {"recovered": 1, "failed": 0, "republished": 0}
    assert world.dns.updates == [("hc-1", True)]
    result = only(world)
    assert isinstance(result, ResourceRecovered)
    assert result.dr_resource_id == "acme-eks-dr" and result.dr_region == DR
    assert result.details["dns:app.acme.example CNAME"] == "dr.elb"
    assert result.details["dns:api.internal.acme.example CNAME"] == "dr.elb"
    assert result.details["deployments_available"] == "1/1"
    assert result.details["pods_ready"] == "2/2"
    assert result.details["nodegroups"] == "workers=2/2"
    assert result.details["health_checks"] == "hc-1=inverted"
    assert world.sleeps == []  # switched at the first look


def test_given_a_failed_over_pair_when_failback_then_check_uninverted_and_primary_validated() -> (
    None
):
    world = make_world()
    world.dns.checks["hc-1"] = replace(world.dns.checks["hc-1"], inverted=True)
    world.recovery.recover_part(part(OperationType.FAILBACK))
    assert world.dns.updates == [("hc-1", False)]
    result = only(world)
    assert isinstance(result, ResourceRecovered)
    assert result.dr_resource_id == "acme-eks" and result.dr_region == PRIMARY
    assert result.details["dns:app.acme.example CNAME"] == "primary.elb"


def test_given_a_drill_then_dr_side_is_validated_and_nothing_is_flipped() -> None:
    world = make_world()
    world.recovery.recover_part(part(OperationType.BUBBLE_TEST))
    assert world.dns.updates == []
    result = only(world)
    assert isinstance(result, ResourceRecovered)
    assert result.details["flipped"] == "nothing (drill)"
    assert result.details["dns_now:app.acme.example CNAME"] == "primary.elb"
    assert world.ledger.claims == set()


def test_given_dns_propagating_then_answers_are_polled_on_the_backoff() -> None:
    world = make_world()
    world.dns.lag = 2  # the first two answers still name the primary
    world.recovery.recover_part(part())
    assert isinstance(only(world), ResourceRecovered)
    assert world.sleeps == [5]


def test_given_dns_never_switching_then_failure_is_retryable_and_flip_is_not_repeated() -> None:
    world = make_world()
    world.dns.lag = 100
    world.recovery.recover_part(part())
    result = only(world)
    assert isinstance(result, ResourceRecoveryFailed)
    assert result.error_code == D.DNS_NOT_SWITCHED and result.retryable
    assert "primary.elb" in result.error and "dr.elb" in result.error
    assert world.sleeps == [5, 10]
    assert world.dns.updates == [("hc-1", True)]


# --- unhealthy DR side: fail, flip nothing --------------------------------------------------------


@pytest.mark.parametrize(
    ("breakage", "code"),
    [
        (
            lambda fc: setattr(fc, "nodegroups", [Nodegroup("workers", "DEGRADED", 2, ("x",))]),
            D.NODEGROUP_NOT_READY,
        ),
        (
            lambda fc: setattr(fc, "nodegroups", [Nodegroup("workers", "ACTIVE", 0)]),
            D.NODEGROUP_NOT_READY,
        ),
        (lambda fc: setattr(fc, "nodes", [Node("n1", "workers", False)]), D.NO_READY_NODES),
        (lambda fc: setattr(fc, "addons", [Addon("coredns", "DEGRADED")]), D.ADDON_NOT_ACTIVE),
        (
            lambda fc: setattr(fc, "deployments", [Deployment("default", "web", 3, 1)]),
            D.WORKLOAD_UNAVAILABLE,
        ),
        (
            lambda fc: setattr(fc, "pods", [Pod("default", "web-1", "Pending", False)]),
            D.WORKLOAD_UNAVAILABLE,
        ),
        (
            lambda fc: setattr(fc, "cluster", replace(fc.cluster, status="UPDATING")),
            D.CLUSTER_NOT_ACTIVE,
        ),
        (
            lambda fc: setattr(fc, "cluster", replace(fc.cluster, tags={"Customer": "other"})),
            D.SCOPE_MISMATCH,
        ),
    ],
)
def test_given_an_unhealthy_dr_cluster_when_failover_then_failed_and_nothing_flipped(
    breakage: Any, code: str
) -> None:
    world = make_world()
    breakage(world.dr())
    world.recovery.recover_part(part())
    result = only(world)
    assert isinstance(result, ResourceRecoveryFailed)
    assert result.error_code == code
    assert world.dns.updates == [] and world.ledger.claims == set()


def test_given_no_dr_cluster_then_cluster_not_found_names_it() -> None:
    world = make_world()
    del world.clusters[(DR, "acme-eks-dr")]
    world.recovery.recover_part(part())
    result = only(world)
    assert isinstance(result, ResourceRecoveryFailed)
    assert result.error_code == D.CLUSTER_NOT_FOUND and "acme-eks-dr" in result.error


def test_given_a_primary_of_another_tenant_then_scope_mismatch_and_nothing_read_further() -> None:
    world = make_world()
    fc = world.clusters[(PRIMARY, "acme-eks")]
    fc.cluster = replace(
        fc.cluster, tags={**MODULE, "Customer": "globex", "Environment": "production"}
    )
    world.recovery.recover_part(part())
    result = only(world)
    assert isinstance(result, ResourceRecoveryFailed)
    assert result.error_code == D.SCOPE_MISMATCH and "globex" in result.error
    assert world.dns.updates == []


def test_given_invalid_module_tags_then_eks_tag_invalid_names_tag_and_value() -> None:
    world = make_world()
    fc = world.clusters[(PRIMARY, "acme-eks")]
    fc.cluster = replace(fc.cluster, tags={**SCOPE, **MODULE, D.TAG_RECORDS: "no-zone.example"})
    world.recovery.recover_part(part())
    result = only(world)
    assert isinstance(result, ResourceRecoveryFailed)
    assert result.error_code == D.EKS_TAG_INVALID
    assert "dr:eks:records='no-zone.example'" in result.error
    assert world.dns.updates == []


def test_given_an_arc_routing_control_then_not_supported_and_nothing_flipped() -> None:
    world = make_world()
    fc = world.clusters[(PRIMARY, "acme-eks")]
    fc.cluster = replace(
        fc.cluster, tags={**SCOPE, **MODULE, D.TAG_ROUTING_CONTROL: "arn:aws:rc/x"}
    )
    world.recovery.recover_part(part())
    result = only(world)
    assert isinstance(result, ResourceRecoveryFailed) and result.error_code == D.ARC_NOT_SUPPORTED
    assert world.dns.updates == []


def test_given_a_record_without_failover_pair_then_record_not_failover() -> None:
    world = make_world()
    world.dns.records = [r for r in world.dns.records if r.role == "PRIMARY"]
    world.recovery.recover_part(part())
    result = only(world)
    assert isinstance(result, ResourceRecoveryFailed)
    assert result.error_code == D.RECORD_NOT_FAILOVER and world.dns.updates == []


def test_given_an_ec2_instance_with_the_eks_strategy_then_refused() -> None:
    world = make_world()
    bad = ref(resource_id="i-0abc", arn=f"arn:aws:ec2:{PRIMARY}:{ACCOUNT}:instance/i-0abc")
    world.recovery.recover_part(part().model_copy(update={"resources": [bad]}))
    result = only(world)
    assert isinstance(result, ResourceRecoveryFailed)
    assert result.error_code == D.NOT_AN_EKS_CLUSTER


def test_given_the_primary_region_down_then_config_comes_from_the_dr_cluster() -> None:
    world = make_world()
    world.down.add(PRIMARY)
    world.recovery.recover_part(part())
    result = only(world)
    assert isinstance(result, ResourceRecovered)
    assert result.details["config_from"] == "acme-eks-dr"
    assert world.dns.updates == [("hc-1", True)]


# --- idempotency and the reconciler ---------------------------------------------------------------


def test_given_a_redelivered_part_then_the_same_result_is_published_and_nothing_acts_again() -> (
    None
):
    world = make_world()
    world.recovery.recover_part(part())
    first = only(world)
    counts = world.recovery.recover_part(part())
    assert counts == {"recovered": 0, "failed": 0, "republished": 1}
    assert world.published[1] == first
    assert world.dns.updates == [("hc-1", True)]


def test_given_a_check_request_for_an_in_flight_flip_then_it_validates_without_flipping() -> None:
    world = make_world()
    world.ledger.claims.add(("op-eks-1#1", "acme-eks"))  # a delivery claimed the flip, then died
    world.dns.checks["hc-1"] = replace(world.dns.checks["hc-1"], inverted=True)
    request = ResourceCheckRequested(
        operation_id="op-eks-1",
        customer="acme",
        environment="production",
        operation=OperationType.FAILOVER,
        wave=3,
        strategy=Strategy.EKS_DNS,
        part=1,
        part_count=1,
        resources=[ref()],
        in_flight_since=T0 - timedelta(minutes=30),
        reason="stuck",
    )
    world.recovery.check(request)
    result = only(world)
    assert isinstance(result, ResourceRecovered)
    assert result.details["flipped"] == "earlier delivery"
    assert world.dns.updates == []


def test_given_a_failure_then_retry_failed_attempt_runs_again_and_succeeds() -> None:
    world = make_world()
    world.dr().deployments = [Deployment("default", "web", 2, 0)]
    world.recovery.recover_part(part())
    assert isinstance(world.published[-1], ResourceRecoveryFailed)
    world.recovery.recover_part(part())  # same attempt: the stored failure again
    assert world.published[-1] == world.published[0]
    world.dr().deployments = [Deployment("default", "web", 2, 2)]
    world.recovery.recover_part(part(attempt=2))
    assert isinstance(world.published[-1], ResourceRecovered)
    assert world.dns.updates == [("hc-1", True)]


def test_given_a_health_check_already_inverted_then_no_update_is_made() -> None:
    world = make_world()
    world.dns.checks["hc-1"] = replace(world.dns.checks["hc-1"], inverted=True)
    world.recovery.recover_part(part())
    result = only(world)
    assert isinstance(result, ResourceRecovered)
    assert world.dns.updates == []
    assert result.details["health_checks_changed"] == "none (already in place)"


def test_given_two_clusters_in_a_part_then_both_flip_before_one_shared_wait() -> None:
    world = make_world()
    second = "app.billing.example."
    world.dns.checks["hc-2"] = HealthCheck("hc-2", inverted=False, disabled=False, version=1)
    world.dns.records += [
        FailoverRecord(ZONE, second, "CNAME", "PRIMARY", ("billing-primary.elb",), "hc-2"),
        FailoverRecord(ZONE, second, "CNAME", "SECONDARY", ("billing-dr.elb",), None),
    ]
    tags = {**SCOPE, D.TAG_DR_CLUSTER: "billing-dr", D.TAG_RECORDS: f"{ZONE}/{second}"}
    world.clusters[(PRIMARY, "billing")] = healthy("billing", PRIMARY, tags)
    world.clusters[(DR, "billing-dr")] = healthy("billing-dr", DR, tags)
    world.dns.lag = 3  # the first round of answers (3 names) still names the primaries
    both = part().model_copy(
        update={
            "resources": [
                ref(),
                ref(resource_id="billing", name="billing",
                    arn=f"arn:aws:eks:{PRIMARY}:{ACCOUNT}:cluster/billing"),
            ]
        }
    )  # fmt: skip
    counts = world.recovery.recover_part(both)
    assert counts == {"recovered": 2, "failed": 0, "republished": 0}
    assert world.dns.updates == [("hc-1", True), ("hc-2", True)]
    assert world.sleeps == [5]  # one wait for both, not one per cluster
    billing = next(d for d in world.published if d.resource_id == "billing")  # type: ignore[attr-defined]
    assert isinstance(billing, ResourceRecovered)
    assert billing.details["dns:app.billing.example CNAME"] == "billing-dr.elb"
