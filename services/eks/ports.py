"""What the eks domain reads and calls: value types and the ports `adapters.py` implements.

No AWS here. `ClusterApi` is EKS of one workload account in one region, `Kubernetes` the API
server of one cluster, `Dns` Route 53 of one workload account (a global service); the other
ports are the orchestration account's state and the bus.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from drcore.registry import CustomerEntry
from events.schemas import Detail


class AwsError(Exception):
    """An AWS (or Kubernetes API) call failed; `code` is the service's error code."""

    def __init__(self, code: str, message: str, *, retryable: bool = True) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable


# --- EKS ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cluster:
    name: str
    arn: str
    status: str  # CREATING | ACTIVE | DELETING | FAILED | UPDATING | PENDING
    endpoint: str | None
    certificate_authority: str | None
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Nodegroup:
    name: str
    status: (
        str  # CREATING | ACTIVE | UPDATING | DELETING | CREATE_FAILED | DELETE_FAILED | DEGRADED
    )
    desired_size: int
    issues: tuple[str, ...] = ()


@dataclass(frozen=True)
class Addon:
    name: str
    status: str  # CREATING | ACTIVE | CREATE_FAILED | UPDATING | DELETING | ... | DEGRADED
    issues: tuple[str, ...] = ()


class ClusterApi(Protocol):
    def cluster(self, name: str) -> Cluster | None: ...
    def clusters(self) -> list[Cluster]: ...
    def nodegroups(self, cluster: str) -> list[Nodegroup]: ...
    def addons(self, cluster: str) -> list[Addon]: ...


# --- Kubernetes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    name: str
    nodegroup: str | None  # label eks.amazonaws.com/nodegroup
    ready: bool


@dataclass(frozen=True)
class Deployment:
    namespace: str
    name: str
    replicas: int
    available: int


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    phase: str
    ready: bool


class Kubernetes(Protocol):
    def nodes(self) -> list[Node]: ...
    def deployments(self, namespaces: Sequence[str]) -> list[Deployment]: ...
    def pods(self, namespaces: Sequence[str]) -> list[Pod]: ...


# --- Route 53 -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FailoverRecord:
    """One record set of a failover pair (PRIMARY or SECONDARY)."""

    zone_id: str
    name: str  # fully qualified, with the trailing dot as Route 53 returns it
    type: str
    role: str  # PRIMARY | SECONDARY
    values: tuple[str, ...]  # resource record values, or the alias target's DNS name
    health_check_id: str | None


@dataclass(frozen=True)
class HealthCheck:
    health_check_id: str
    inverted: bool
    disabled: bool
    version: int


class Dns(Protocol):
    def record_sets(self, zone_id: str, name: str) -> list[FailoverRecord]: ...
    def health_check(self, health_check_id: str) -> HealthCheck | None: ...
    def set_inverted(self, check: HealthCheck, inverted: bool) -> None: ...
    def answer(self, zone_id: str, name: str, record_type: str) -> tuple[str, ...]: ...


# --- access, state, results -----------------------------------------------------------------------


class Workloads(Protocol):
    """The customer's account, through AssumeRole with the registry's external id."""

    def clusters(self, entry: CustomerEntry, region: str) -> ClusterApi: ...
    def kubernetes(self, entry: CustomerEntry, region: str, cluster: Cluster) -> Kubernetes: ...
    def dns(self, entry: CustomerEntry) -> Dns: ...


class Registry(Protocol):
    def customer(self, name: str) -> CustomerEntry | None: ...


@dataclass(frozen=True)
class ResourceRecord:
    """What the service did for one resource of one operation."""

    flip_claimed: bool = False
    flipped_checks: tuple[str, ...] = ()
    result: Mapping[str, Any] | None = None  # the published detail, as JSON
    result_type: str | None = None  # its detail-type
    result_attempt: int = 0


class Ledger(Protocol):
    """Per operation + resource + step records (the operations table)."""

    def load(self, operation_id: str, resource_id: str) -> ResourceRecord | None: ...
    def claim_flip(self, operation_id: str, resource_id: str, ttl_epoch: int) -> bool:
        """True for the one caller that may flip; False when the flip was already claimed."""
        ...

    def flipped(self, operation_id: str, resource_id: str, checks: Sequence[str]) -> None: ...
    def save_result(
        self, operation_id: str, resource_id: str, attempt: int, detail: Detail, ttl_epoch: int
    ) -> None: ...


class Results(Protocol):
    def publish(self, details: Sequence[Detail]) -> None: ...
