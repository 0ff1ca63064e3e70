"""The Kubernetes API of the sandbox's EKS clusters: an emulation, not a Kubernetes API server.

moto's EKS clusters have no API server behind their endpoint. For every cluster the estate seeds
(`POST /_sandbox/eks/clusters`), the sandbox serves a read-only Kubernetes API under
`<endpoint>/_k8s/<account>/<region>/<cluster>` and sets the cluster's `endpoint` in moto to that
URL, so a client reaches it exactly as in AWS: DescribeCluster -> `endpoint` -> HTTPS(here HTTP)
with a bearer token. What it answers:

- `GET /api/v1/nodes`, `GET /api/v1/pods`, `GET /api/v1/namespaces/{ns}/pods`,
  `GET /apis/apps/v1/deployments`, `GET /apis/apps/v1/namespaces/{ns}/deployments` — `v1`
  NodeList / PodList and `apps/v1` DeploymentList objects with the fields clients read (node
  `Ready` condition and `eks.amazonaws.com/nodegroup` label; pod phase and `Ready` condition;
  deployment `spec.replicas`, `status.replicas` / `readyReplicas` / `availableReplicas`),
  paged with `limit` and `continue` like the API server;
- anything else: a `Status` 404 (NotFound) or 405 (MethodNotAllowed).

Authentication as EKS does it: `Authorization: Bearer k8s-aws-v1.<base64url of a presigned STS
GetCallerIdentity URL>`. The emulator checks the URL's shape (Action=GetCallerIdentity,
SigV4 query parameters for service `sts`, `x-k8s-aws-id` among the signed headers), its age
(signed less than 15 minutes ago, as EKS accepts) and that the signing access key belongs to the
cluster's account (moto's own mapping of access keys to accounts); otherwise `401 Unauthorized`.
It does not verify the signature itself (it does not call STS). A regional outage
(`regions_down`) makes the API of clusters in that region unreachable too (503).

Seeding state per cluster: node groups (status in moto, Ready nodes here), add-ons (the add-ons
emulator) and deployments with their replicas and available replicas (pods derived from them:
`available` Ready and Running, the rest Pending and not Ready).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import threading
import urllib.parse
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from werkzeug.wrappers import Request, Response

from . import ConfigError, Knobs, describe_validation_error
from .eks_addons import EksAddonsEmulator

PREFIX = "/_k8s/"
TOKEN_PREFIX = "k8s-aws-v1."
TOKEN_MAX_AGE = dt.timedelta(minutes=15)
NODEGROUP_LABEL = "eks.amazonaws.com/nodegroup"
NAME = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
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


class NodegroupState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[0-9A-Za-z][A-Za-z0-9\-_]*$", max_length=63)
    status: NodegroupStatus = "ACTIVE"
    # Nodes of the group whose `Ready` condition is True (the rest are NotReady); None: all of
    # the group's desired size.
    ready_nodes: int | None = Field(default=None, ge=0)


class AddonState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    status: AddonStatus = "ACTIVE"


class DeploymentState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    namespace: str = Field(default="default", pattern=NAME)
    name: str = Field(pattern=NAME)
    replicas: int = Field(default=2, ge=0, le=500)
    available: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _available(self) -> DeploymentState:
        if self.available is not None and self.available > self.replicas:
            raise ValueError(
                f"available ({self.available}) cannot exceed replicas ({self.replicas})"
            )
        return self


class ClusterState(BaseModel):
    """`POST /_sandbox/eks/clusters` body: one cluster's emulated state."""

    model_config = ConfigDict(extra="forbid")

    account: str = Field(pattern=r"^\d{12}$")
    region: str
    cluster: str
    nodegroups: list[NodegroupState] = Field(default_factory=list)
    addons: list[AddonState] = Field(default_factory=list)
    deployments: list[DeploymentState] = Field(default_factory=list)


def _moto_cluster(account: str, region: str, name: str) -> Any:
    from moto.eks.models import eks_backends

    return eks_backends[account][region].clusters.get(name)


def _status(code: int, reason: str, message: str) -> Response:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return Response(json.dumps(body), status=code, mimetype="application/json")


class KubernetesEmulator:
    def __init__(self, knobs: Knobs, addons: EksAddonsEmulator) -> None:
        self.knobs = knobs
        self.addons = addons
        self._lock = threading.Lock()
        # (account, region, cluster) -> {"nodes": [...], "pods": [...], "deployments": [...]}
        self._clusters: dict[tuple[str, str, str], dict[str, list[dict[str, Any]]]] = {}

    def reset(self) -> None:
        with self._lock:
            self._clusters.clear()

    # -- seeding (admin path)

    def configure(self, data: Any, base_url: str) -> dict[str, Any]:
        try:
            state = ClusterState.model_validate(data)
        except ValidationError as err:
            raise ConfigError(describe_validation_error(err, data)) from None
        cluster = _moto_cluster(state.account, state.region, state.cluster)
        if cluster is None:
            raise ConfigError(
                f"cluster={state.cluster!r}: no EKS cluster of that name in account "
                f"{state.account} region {state.region} (create it first)"
            )
        created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        nodes: list[dict[str, Any]] = []
        for group in state.nodegroups:
            ng = cluster.nodegroups.get(group.name)
            if ng is None:
                raise ConfigError(
                    f"nodegroups.name={group.name!r}: no node group of that name in cluster "
                    f"{state.cluster!r}"
                )
            ng.status = group.status
            desired = int((ng.scaling_config or {}).get("desiredSize", 0))
            ready = desired if group.ready_nodes is None else group.ready_nodes
            if group.status == "DEGRADED":
                ng.health = {
                    "issues": [
                        {
                            "code": "AsgInstanceLaunchFailures",
                            "message": "Instances failed to launch (sandbox estate: DEGRADED).",
                            "resourceIds": [f"eks-{group.name}-sandbox"],
                        }
                    ]
                }
            for i in range(max(desired, ready)):
                nodes.append(_node(group.name, i, i < ready, created))
        for addon in state.addons:
            self.addons.put(state.account, state.region, state.cluster, addon.name, addon.status)
        deployments, pods = [], []
        for d in state.deployments:
            available = d.replicas if d.available is None else d.available
            deployments.append(_deployment(d, available, created))
            pods += [_pod(d, i, i < available, created) for i in range(d.replicas)]
        key = (state.account, state.region, state.cluster)
        with self._lock:
            self._clusters[key] = {"nodes": nodes, "pods": pods, "deployments": deployments}
        cluster.endpoint = (
            f"{base_url.rstrip('/')}{PREFIX}{state.account}/{state.region}/{state.cluster}"
        )
        return {
            "endpoint": cluster.endpoint,
            "nodes": len(nodes),
            "deployments": len(deployments),
            "pods": len(pods),
        }

    # -- the API

    def handle(self, request: Request) -> Response:
        parts = request.path[len(PREFIX) :].split("/")
        if len(parts) < 4:
            return _status(404, "NotFound", "the server could not find the requested resource")
        account, region, cluster = parts[:3]
        api_path = "/" + "/".join(parts[3:])
        if self.knobs.region_down(region):
            return Response("Service Unavailable", status=503)
        with self._lock:
            state = self._clusters.get((account, region, cluster))
        if state is None:
            return _status(404, "NotFound", f"no Kubernetes API for cluster {cluster}")
        problem = self._authenticate(request.headers.get("Authorization", ""), account, cluster)
        if problem:
            return _status(401, "Unauthorized", f"Unauthorized: {problem}")
        if request.method != "GET":
            return _status(405, "MethodNotAllowed", f"{request.method} is not supported here")
        found = _route(api_path)
        if found is None:
            return _status(404, "NotFound", "the server could not find the requested resource")
        kind, namespace = found
        items = [
            i
            for i in state[kind]
            if namespace is None or i["metadata"].get("namespace") == namespace
        ]
        return self._page(kind, items, request.args.get("limit"), request.args.get("continue"))

    @staticmethod
    def _page(kind: str, items: list[dict[str, Any]], limit: Any, token: Any) -> Response:
        start = 0
        if token:
            if not str(token).isdigit():
                return _status(410, "Expired", "the provided continue parameter is too old")
            start = int(token)
        size = len(items)
        if limit:
            if not str(limit).isdigit():
                return _status(400, "BadRequest", f"invalid limit {limit!r}")
            size = int(limit) or len(items)
        page = items[start : start + size]
        metadata: dict[str, Any] = {"resourceVersion": "1"}
        if start + size < len(items):
            metadata["continue"] = str(start + size)
            metadata["remainingItemCount"] = len(items) - start - size
        api_version, list_kind = {
            "nodes": ("v1", "NodeList"),
            "pods": ("v1", "PodList"),
            "deployments": ("apps/v1", "DeploymentList"),
        }[kind]
        body = {"kind": list_kind, "apiVersion": api_version, "metadata": metadata, "items": page}
        return Response(json.dumps(body), status=200, mimetype="application/json")

    @staticmethod
    def _authenticate(header: str, account: str, cluster: str) -> str:
        """Why the bearer token is refused ("" when accepted)."""
        if not header.startswith("Bearer "):
            return "no bearer token"
        token = header[len("Bearer ") :].strip()
        if not token.startswith(TOKEN_PREFIX):
            return f"token does not start with {TOKEN_PREFIX}"
        encoded = token[len(TOKEN_PREFIX) :]
        try:
            url = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError):
            return "token is not base64url"
        parsed = urllib.parse.urlparse(url)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(parsed.query).items()}
        if parsed.scheme not in ("https", "http") or query.get("Action") != "GetCallerIdentity":
            return "token is not a presigned STS GetCallerIdentity URL"
        credential = query.get("X-Amz-Credential", "").split("/")
        if query.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256" or len(credential) != 5:
            return "token is not SigV4 presigned"
        if credential[3] != "sts" or not query.get("X-Amz-Signature"):
            return "token is not signed for sts"
        if "x-k8s-aws-id" not in query.get("X-Amz-SignedHeaders", "").split(";"):
            return "x-k8s-aws-id is not a signed header"
        try:
            signed = dt.datetime.strptime(query.get("X-Amz-Date", ""), "%Y%m%dT%H%M%SZ").replace(
                tzinfo=dt.UTC
            )
        except ValueError:
            return "X-Amz-Date is missing or malformed"
        now = dt.datetime.now(dt.UTC)
        if now - signed > TOKEN_MAX_AGE or signed - now > dt.timedelta(minutes=5):
            return "token expired"
        from moto.iam.models import get_account_id_from

        if get_account_id_from(credential[0]) != account:
            return f"identity is not mapped in cluster {cluster}"
        return ""


def _route(path: str) -> tuple[str, str | None] | None:
    parts = path.strip("/").split("/")
    if parts == ["api", "v1", "nodes"]:
        return "nodes", None
    if parts == ["api", "v1", "pods"]:
        return "pods", None
    if parts == ["apis", "apps", "v1", "deployments"]:
        return "deployments", None
    if len(parts) == 5 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "pods":
        return "pods", parts[3]
    if (
        len(parts) == 6
        and parts[:4] == ["apis", "apps", "v1", "namespaces"]
        and parts[5] == "deployments"
    ):
        return "deployments", parts[4]
    return None


def _node(group: str, index: int, ready: bool, created: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"ip-10-0-{index // 250}-{index % 250 + 4}.{group}.compute.internal",
            "labels": {NODEGROUP_LABEL: group, "kubernetes.io/os": "linux"},
            "creationTimestamp": created,
        },
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "reason": "KubeletReady" if ready else "KubeletNotReady",
                }
            ]
        },
    }


def _deployment(d: DeploymentState, available: int, created: str) -> dict[str, Any]:
    return {
        "metadata": {"name": d.name, "namespace": d.namespace, "creationTimestamp": created},
        "spec": {"replicas": d.replicas},
        "status": {
            "replicas": d.replicas,
            "readyReplicas": available,
            "availableReplicas": available,
            "updatedReplicas": d.replicas,
            **({"unavailableReplicas": d.replicas - available} if available < d.replicas else {}),
        },
    }


def _pod(d: DeploymentState, index: int, ready: bool, created: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"{d.name}-7d4b9c8f6-{index:05d}",
            "namespace": d.namespace,
            "labels": {"app": d.name},
            "creationTimestamp": created,
        },
        "status": {
            "phase": "Running" if ready else "Pending",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }
