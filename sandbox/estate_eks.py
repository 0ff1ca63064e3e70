"""The estate's `eks_clusters` entries: a primary EKS cluster and its DR twin, as the sandbox
seeds them (`seed_eks.py`).

```yaml
eks_clusters:
  - {name: acme-prod-eks, wave: 3}          # a healthy pair with every default below
  - name: acme-prod-payments
    wave: 3
    dr_cluster: acme-prod-payments-dr        # default <name>-dr
    version: "1.31"
    node_groups: [{name: workers, desired: 3}]
    addons: [vpc-cni, coredns, {name: kube-proxy, status: DEGRADED}]   # DR cluster's
    workloads: [{name: web, replicas: 3}, {namespace: payments, name: api, available: 1}]
    records: [app, api.internal]             # names in the cluster's hosted zone
    health: healthy                          # or nodegroup-degraded | workloads-unavailable |
                                             # addon-degraded | dr-cluster-missing
    tags: {dr:eks:records: null}             # override / remove tags of the primary cluster
```

`node_groups`, `addons` and `workloads` describe the DR cluster (the primary cluster gets the same
node groups, add-ons and workloads, healthy). `health` is a shorthand that breaks the DR side:
its first node group DEGRADED (with no Ready node), its first workload with no available
replica, its first add-on DEGRADED, or no DR cluster at all.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

CLUSTER_PATTERN = r"^[0-9A-Za-z][A-Za-z0-9\-_]{0,99}$"
K8S_NAME = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
Health = Literal[
    "healthy", "nodegroup-degraded", "workloads-unavailable", "addon-degraded", "dr-cluster-missing"
]
NodegroupStatus = Literal[
    "CREATING", "ACTIVE", "UPDATING", "DELETING", "CREATE_FAILED", "DELETE_FAILED", "DEGRADED"
]
AddonStatus = Literal[
    "CREATING",
    "ACTIVE",
    "CREATE_FAILED",
    "UPDATING",
    "DELETING",
    "DELETE_FAILED",
    "DEGRADED",
    "UPDATE_FAILED",
]
DEFAULT_ADDONS = ("vpc-cni", "coredns", "kube-proxy")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EksNodegroup(_Model):
    name: str = Field(pattern=CLUSTER_PATTERN, max_length=63)
    desired: int = Field(default=2, ge=0, le=100)
    status: NodegroupStatus = "ACTIVE"
    ready_nodes: int | None = Field(default=None, ge=0, le=100)


class EksAddon(_Model):
    name: str = Field(pattern=K8S_NAME)
    status: AddonStatus = "ACTIVE"


class EksWorkload(_Model):
    namespace: str = Field(default="default", pattern=K8S_NAME)
    name: str = Field(pattern=K8S_NAME)
    replicas: int = Field(default=2, ge=0, le=100)
    available: int | None = Field(default=None, ge=0, le=100)


class EksCluster(_Model):
    """One `eks_clusters` entry: `{name, wave}` alone seeds a healthy pair."""

    name: str = Field(pattern=CLUSTER_PATTERN)
    wave: int = Field(ge=1)
    priority: Literal["critical", "high", "medium", "low"] = "high"
    dr_cluster: str | None = Field(default=None, pattern=CLUSTER_PATTERN)
    version: str = Field(default="1.31", pattern=r"^1\.\d{1,2}$")
    node_groups: list[EksNodegroup] = Field(
        default_factory=lambda: [EksNodegroup(name="workers")], min_length=1
    )
    addons: list[EksAddon] = Field(
        default_factory=lambda: [EksAddon(name=n) for n in DEFAULT_ADDONS]
    )
    workloads: list[EksWorkload] = Field(
        default_factory=lambda: [EksWorkload(name="web"), EksWorkload(name="api")]
    )
    records: list[str] = Field(default=["app", "api.internal"], min_length=1, max_length=10)
    health: Health = "healthy"
    tags: dict[str, str | None] = Field(default_factory=dict)

    @field_validator("addons", mode="before")
    @classmethod
    def _addon_names(cls, value: object) -> object:
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("records")
    @classmethod
    def _labels(cls, value: list[str]) -> list[str]:
        import re

        label = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
        for name in value:
            if not all(label.match(part) for part in name.split(".")):
                raise ValueError(f"{name!r} is not a DNS name relative to the cluster's zone")
        return value

    @property
    def dr_name(self) -> str:
        return self.dr_cluster or f"{self.name}-dr"[:100]
