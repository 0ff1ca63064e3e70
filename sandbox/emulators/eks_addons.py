"""EKS add-ons emulator (moto has EKS clusters and node groups, not add-ons).

An emulation, not EKS: only `CreateAddon`, `ListAddons`, `DescribeAddon` and `DeleteAddon` are
answered here (the endpoint routes `eks` requests whose path is `/clusters/{name}/addons...` to
it; every other EKS call goes to moto). Requests and responses are validated against botocore's
`eks` model (`validation.py`). Semantics from the EKS API reference:

- the cluster must exist in moto (same account and region): else `ResourceNotFoundException`;
- `CreateAddon` of an add-on that exists: `ResourceInUseException`; unknown add-on on describe or
  delete: `ResourceNotFoundException` (with `clusterName` and `addonName`);
- a new add-on is `ACTIVE` (the sandbox has no install time); the estate (`POST
  /_sandbox/eks/clusters`) may set any `AddonStatus`, with a health issue for `DEGRADED` /
  `CREATE_FAILED` / `UPDATE_FAILED` like EKS reports;
- `ListAddons` pages with `maxResults` (1-100, default 100) and `nextToken`.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

from . import Caller, Knobs
from .validation import RestJsonEmulator, ServiceError, operation

UNHEALTHY = frozenset({"DEGRADED", "CREATE_FAILED", "UPDATE_FAILED", "DELETE_FAILED"})
DEFAULT_VERSIONS = {
    "vpc-cni": "v1.19.0-eksbuild.1",
    "coredns": "v1.11.3-eksbuild.2",
    "kube-proxy": "v1.31.2-eksbuild.3",
}


def _moto_cluster(account: str, region: str, name: str) -> Any | None:
    from moto.eks.models import eks_backends

    return eks_backends[account][region].clusters.get(name)


class EksAddonsEmulator(RestJsonEmulator):
    service_name = "eks"

    def __init__(self, knobs: Knobs) -> None:
        super().__init__(knobs)
        self._lock = threading.Lock()
        # (account, region, cluster) -> add-on name -> addon (output shape)
        self._addons: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}

    def reset(self) -> None:
        with self._lock:
            self._addons.clear()

    @staticmethod
    def handles(path: str) -> bool:
        parts = path.strip("/").split("/")
        return len(parts) >= 3 and parts[0] == "clusters" and parts[2] == "addons"

    def _cluster(self, caller: Caller, name: str) -> Any:
        cluster = _moto_cluster(caller.account, caller.region, name)
        if cluster is None:
            raise ServiceError(
                "ResourceNotFoundException",
                f"No cluster found for name: {name}.",
                clusterName=name,
            )
        return cluster

    def put(
        self,
        account: str,
        region: str,
        cluster: str,
        name: str,
        status: str = "ACTIVE",
        version: str | None = None,
    ) -> dict[str, Any]:
        """Create or set an add-on (the estate seeder's way in; also CreateAddon's)."""
        found = _moto_cluster(account, region, cluster)
        if found is None:
            raise KeyError(f"EKS cluster {cluster!r} not found in {account}/{region}")
        now = dt.datetime.now(dt.UTC)
        issues = (
            [
                {
                    "code": "InsufficientNumberOfReplicas",
                    "message": f"The add-on is unhealthy because it doesn't have the desired "
                    f"number of replicas ({status}).",
                    "resourceIds": [f"kube-system/{name}"],
                }
            ]
            if status in UNHEALTHY
            else []
        )
        addon = {
            "addonName": name,
            "clusterName": cluster,
            "status": status,
            "addonVersion": version or DEFAULT_VERSIONS.get(name, "v1.0.0-eksbuild.1"),
            "health": {"issues": issues},
            "addonArn": found.arn.replace(":cluster/", ":addon/") + f"/{name}/sandbox",
            "createdAt": now,
            "modifiedAt": now,
        }
        with self._lock:
            key = (account, region, cluster)
            created = self._addons.setdefault(key, {}).get(name, {}).get("createdAt")
            if created:
                addon["createdAt"] = created
            self._addons[key][name] = addon
        return addon

    @operation("CreateAddon")
    def create_addon(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        cluster, name = params["clusterName"], params["addonName"]
        self._cluster(caller, cluster)
        with self._lock:
            if name in self._addons.get((caller.account, caller.region, cluster), {}):
                raise ServiceError(
                    "ResourceInUseException",
                    f"Addon already exists with name: {name}",
                    clusterName=cluster,
                    addonName=name,
                )
        addon = self.put(
            caller.account, caller.region, cluster, name, version=params.get("addonVersion")
        )
        if params.get("tags"):
            addon["tags"] = dict(params["tags"])
            with self._lock:
                self._addons[(caller.account, caller.region, cluster)][name] = addon
        return {"addon": addon}

    @operation("ListAddons")
    def list_addons(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        cluster = params["clusterName"]
        self._cluster(caller, cluster)
        with self._lock:
            names = sorted(self._addons.get((caller.account, caller.region, cluster), {}))
        size = int(params.get("maxResults") or 100)
        start = 0
        token = params.get("nextToken")
        if token:
            if not token.isdigit() or int(token) > len(names):
                raise ServiceError("InvalidParameterException", f"Invalid nextToken: {token}")
            start = int(token)
        page = names[start : start + size]
        out: dict[str, Any] = {"addons": page}
        if start + size < len(names):
            out["nextToken"] = str(start + size)
        return out

    def _get(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        cluster, name = params["clusterName"], params["addonName"]
        self._cluster(caller, cluster)
        with self._lock:
            addon = self._addons.get((caller.account, caller.region, cluster), {}).get(name)
        if addon is None:
            raise ServiceError(
                "ResourceNotFoundException",
                f"No addon: {name} found in cluster: {cluster}",
                clusterName=cluster,
                addonName=name,
            )
        return addon

    @operation("DescribeAddon")
    def describe_addon(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        return {"addon": dict(self._get(caller, params))}

    @operation("DeleteAddon")
    def delete_addon(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        addon = dict(self._get(caller, params))
        with self._lock:
            self._addons[(caller.account, caller.region, params["clusterName"])].pop(
                params["addonName"], None
            )
        addon["status"] = "DELETING"
        return {"addon": addon}
