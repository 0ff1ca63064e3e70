"""The eks service's only AWS (and Kubernetes API) code: EKS, Route 53, STS (the Kubernetes
token), DynamoDB (the ledger) and EventBridge (results). Every workload call goes through
`drcore.aws.AwsClients.workload_client` (AssumeRole with the customer's external id)."""

from __future__ import annotations

import base64
import json
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from drcore.aws import AccountAccess, AwsClients
from drcore.publisher import EventPublisher
from drcore.registry import CustomerEntry
from events.schemas import Detail, Source

from .domain import NODEGROUP_LABEL
from .ports import (
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

# Errors after which the same call may succeed later.
NOT_RETRYABLE = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "InvalidParameterException",
        "InvalidInput",
        "NoSuchHostedZone",
        "NoSuchHealthCheck",
        "ValidationException",
        "Unauthorized",
        "Forbidden",
    }
)
TOKEN_PREFIX = "k8s-aws-v1."
K8S_AWS_ID_HEADER = "x-k8s-aws-id"
# The token's presigned URL lives 60 s (as `aws eks get-token` makes it); EKS accepts it for
# 15 minutes after signing. A client keeps a token 10 minutes.
TOKEN_EXPIRES_SECONDS = 60
TOKEN_REUSE_SECONDS = 600


def _aws_error(error: Exception) -> AwsError:
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", "ClientError"))
        message = str(error.response.get("Error", {}).get("Message", ""))
        return AwsError(code, message, retryable=code not in NOT_RETRYABLE)
    return AwsError(type(error).__name__, str(error), retryable=True)


def _call(fn: Callable[..., Any], **kwargs: Any) -> Any:
    try:
        return fn(**kwargs)
    except (ClientError, BotoCoreError) as error:
        raise _aws_error(error) from None


# --- EKS ------------------------------------------------------------------------------------------


class EksClusters:
    """EKS of one workload account and region."""

    def __init__(self, eks: Any) -> None:
        self._eks = eks

    def cluster(self, name: str) -> Cluster | None:
        try:
            found = self._eks.describe_cluster(name=name)["cluster"]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return None
            raise _aws_error(error) from None
        except BotoCoreError as error:
            raise _aws_error(error) from None
        return Cluster(
            name=found["name"],
            arn=found.get("arn", ""),
            status=found.get("status", "UNKNOWN"),
            endpoint=found.get("endpoint"),
            certificate_authority=(found.get("certificateAuthority") or {}).get("data"),
            tags=dict(found.get("tags") or {}),
        )

    def clusters(self) -> list[Cluster]:
        names: list[str] = []
        for page in self._eks.get_paginator("list_clusters").paginate():
            names += page.get("clusters", [])
        out = [self.cluster(name) for name in names]
        return [c for c in out if c is not None]

    def nodegroups(self, cluster: str) -> list[Nodegroup]:
        names: list[str] = []
        try:
            for page in self._eks.get_paginator("list_nodegroups").paginate(clusterName=cluster):
                names += page.get("nodegroups", [])
        except (ClientError, BotoCoreError) as error:
            raise _aws_error(error) from None
        out = []
        for name in names:
            ng = _call(self._eks.describe_nodegroup, clusterName=cluster, nodegroupName=name)[
                "nodegroup"
            ]
            issues = tuple(
                f"{i.get('code')}: {i.get('message')}"
                for i in (ng.get("health") or {}).get("issues", [])
            )
            out.append(
                Nodegroup(
                    name=name,
                    status=ng.get("status", "UNKNOWN"),
                    desired_size=int((ng.get("scalingConfig") or {}).get("desiredSize", 0)),
                    issues=issues,
                )
            )
        return out

    def addons(self, cluster: str) -> list[Addon]:
        names: list[str] = []
        try:
            for page in self._eks.get_paginator("list_addons").paginate(clusterName=cluster):
                names += page.get("addons", [])
        except (ClientError, BotoCoreError) as error:
            raise _aws_error(error) from None
        out = []
        for name in names:
            addon = _call(self._eks.describe_addon, clusterName=cluster, addonName=name)["addon"]
            issues = tuple(
                f"{i.get('code')}: {i.get('message')}"
                for i in (addon.get("health") or {}).get("issues", [])
            )
            out.append(Addon(name=name, status=addon.get("status", "UNKNOWN"), issues=issues))
        return out


# --- Kubernetes API -------------------------------------------------------------------------------


def kubernetes_token(sts: Any, cluster_name: str) -> str:
    """The bearer token EKS accepts (what `aws eks get-token` prints): `k8s-aws-v1.` + the
    base64url (unpadded) of a presigned STS GetCallerIdentity URL whose signed headers include
    `x-k8s-aws-id: <cluster name>`, signed with the client's credentials (botocore's signer)."""
    events = sts.meta.events
    if not getattr(sts, "_dr_k8s_token_hooks", False):

        def keep_cluster(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
            if K8S_AWS_ID_HEADER in params:
                context[K8S_AWS_ID_HEADER] = params.pop(K8S_AWS_ID_HEADER)

        def add_header(request: Any, **_: Any) -> None:
            if K8S_AWS_ID_HEADER in request.context:
                request.headers[K8S_AWS_ID_HEADER] = request.context[K8S_AWS_ID_HEADER]

        events.register("provide-client-params.sts.GetCallerIdentity", keep_cluster)
        events.register("before-sign.sts.GetCallerIdentity", add_header)
        sts._dr_k8s_token_hooks = True
    url = sts.generate_presigned_url(
        "get_caller_identity",
        Params={K8S_AWS_ID_HEADER: cluster_name},
        ExpiresIn=TOKEN_EXPIRES_SECONDS,
        HttpMethod="GET",
    )
    encoded = base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
    return TOKEN_PREFIX + encoded


class KubernetesApi:
    """A cluster's Kubernetes API (read only), authenticated with the IAM token."""

    def __init__(
        self,
        endpoint: str,
        certificate_authority: str | None,
        token: Callable[[], str],
        timeout: float,
    ) -> None:
        self._endpoint = endpoint.rstrip("/")
        self._token = token
        self._timeout = timeout
        self._context: ssl.SSLContext | None = None
        if self._endpoint.startswith("https://"):
            # The cluster's own CA (DescribeCluster certificateAuthority.data, base64 PEM).
            pem = (
                base64.b64decode(certificate_authority).decode("ascii", "replace")
                if certificate_authority
                else None
            )
            self._context = ssl.create_default_context(cadata=pem)

    def _list(self, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            query = urllib.parse.urlencode({"limit": 500, **({"continue": token} if token else {})})
            request = urllib.request.Request(
                f"{self._endpoint}{path}?{query}",
                headers={"Authorization": f"Bearer {self._token()}", "Accept": "application/json"},
            )
            try:
                with urllib.request.urlopen(
                    request, timeout=self._timeout, context=self._context
                ) as response:
                    body = json.loads(response.read())
            except urllib.error.HTTPError as error:
                detail = error.read()[:300].decode("utf-8", "replace")
                raise AwsError(
                    "KubernetesApi" + str(error.code),
                    f"GET {path} answered {error.code}: {detail}",
                    retryable=error.code not in (400, 401, 403, 404),
                ) from None
            except (urllib.error.URLError, OSError, ValueError) as error:
                raise AwsError("KubernetesApiUnreachable", f"GET {path}: {error}") from None
            items += body.get("items") or []
            token = (body.get("metadata") or {}).get("continue") or ""
            if not token:
                return items

    def _namespaced(self, group_path: str, kind: str, namespaces: Sequence[str]) -> list[Any]:
        if not namespaces:
            return self._list(f"{group_path}/{kind}")
        out: list[Any] = []
        for ns in namespaces:
            out += self._list(f"{group_path}/namespaces/{ns}/{kind}")
        return out

    def nodes(self) -> list[Node]:
        out = []
        for item in self._list("/api/v1/nodes"):
            meta = item.get("metadata") or {}
            conditions = (item.get("status") or {}).get("conditions") or []
            ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
            labels = meta.get("labels") or {}
            out.append(Node(meta.get("name", ""), labels.get(NODEGROUP_LABEL), ready))
        return out

    def deployments(self, namespaces: Sequence[str]) -> list[Deployment]:
        out = []
        for item in self._namespaced("/apis/apps/v1", "deployments", namespaces):
            meta = item.get("metadata") or {}
            spec, status = item.get("spec") or {}, item.get("status") or {}
            out.append(
                Deployment(
                    namespace=meta.get("namespace", ""),
                    name=meta.get("name", ""),
                    replicas=int(spec.get("replicas", 1)),
                    available=int(status.get("availableReplicas") or 0),
                )
            )
        return out

    def pods(self, namespaces: Sequence[str]) -> list[Pod]:
        out = []
        for item in self._namespaced("/api/v1", "pods", namespaces):
            meta, status = item.get("metadata") or {}, item.get("status") or {}
            conditions = status.get("conditions") or []
            ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
            out.append(
                Pod(meta.get("namespace", ""), meta.get("name", ""), status.get("phase", ""), ready)
            )
        return out


# --- Route 53 -------------------------------------------------------------------------------------


class Route53Dns:
    def __init__(self, route53: Any) -> None:
        self._r53 = route53

    def record_sets(self, zone_id: str, name: str) -> list[FailoverRecord]:
        out = []
        kwargs: dict[str, Any] = {"HostedZoneId": zone_id, "StartRecordName": name}
        while True:
            page = _call(self._r53.list_resource_record_sets, **kwargs)
            past = False
            for rrs in page.get("ResourceRecordSets", []):
                if rrs["Name"].lower() != name.lower():
                    past = True
                    break
                if rrs.get("Failover") not in ("PRIMARY", "SECONDARY"):
                    continue
                alias = rrs.get("AliasTarget")
                values = (
                    (alias["DNSName"],)
                    if alias
                    else tuple(r["Value"] for r in rrs.get("ResourceRecords", []))
                )
                out.append(
                    FailoverRecord(
                        zone_id=zone_id,
                        name=rrs["Name"],
                        type=rrs["Type"],
                        role=rrs["Failover"],
                        values=values,
                        health_check_id=rrs.get("HealthCheckId"),
                    )
                )
            if past or not page.get("IsTruncated"):
                return out
            kwargs.update(
                StartRecordName=page["NextRecordName"],
                StartRecordType=page["NextRecordType"],
            )
            if page.get("NextRecordIdentifier"):
                kwargs["StartRecordIdentifier"] = page["NextRecordIdentifier"]

    def health_check(self, health_check_id: str) -> HealthCheck | None:
        try:
            found = self._r53.get_health_check(HealthCheckId=health_check_id)["HealthCheck"]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "NoSuchHealthCheck":
                return None
            raise _aws_error(error) from None
        config = found.get("HealthCheckConfig") or {}
        return HealthCheck(
            health_check_id=found["Id"],
            inverted=bool(config.get("Inverted", False)),
            disabled=bool(config.get("Disabled", False)),
            version=int(found.get("HealthCheckVersion", 1)),
        )

    def set_inverted(self, check: HealthCheck, inverted: bool) -> None:
        # HealthCheckVersion: Route 53 refuses the update if someone changed the check since it
        # was read (HealthCheckVersionMismatch), instead of overwriting their change.
        _call(
            self._r53.update_health_check,
            HealthCheckId=check.health_check_id,
            HealthCheckVersion=check.version,
            Inverted=inverted,
        )

    def answer(self, zone_id: str, name: str, record_type: str) -> tuple[str, ...]:
        found = _call(
            self._r53.test_dns_answer,
            HostedZoneId=zone_id,
            RecordName=name,
            RecordType=record_type,
        )
        return tuple(found.get("RecordData", []))


# --- workload access ------------------------------------------------------------------------------


class BotoWorkloads:
    def __init__(self, clients: AwsClients, kubernetes_timeout: float = 10.0) -> None:
        self._clients = clients
        self._timeout = kubernetes_timeout
        self._lock = threading.Lock()

    def _access(self, entry: CustomerEntry) -> AccountAccess:
        return AccountAccess(entry.account, entry.role_name, entry.external_id)

    def clusters(self, entry: CustomerEntry, region: str) -> EksClusters:
        return EksClusters(self._clients.workload_client("eks", region, self._access(entry)))

    def dns(self, entry: CustomerEntry) -> Route53Dns:
        # Route 53 is global; its API is signed for us-east-1.
        return Route53Dns(
            self._clients.workload_client("route53", "us-east-1", self._access(entry))
        )

    def kubernetes(self, entry: CustomerEntry, region: str, cluster: Cluster) -> KubernetesApi:
        if not cluster.endpoint:
            raise AwsError(
                "NoClusterEndpoint", f"EKS cluster {cluster.name!r} has no API endpoint yet"
            )
        sts = self._clients.workload_client("sts", region, self._access(entry))
        lock = self._lock
        cached: list[str] = []

        def token() -> str:
            with lock:
                if not cached:
                    cached.append(kubernetes_token(sts, cluster.name))
                return cached[0]

        return KubernetesApi(cluster.endpoint, cluster.certificate_authority, token, self._timeout)


# --- state and results ----------------------------------------------------------------------------


class DynamoLedger:
    """`pk=EKSOP#<operation id>`, `sk=RES#<resource id>` in the operations table; the flip claim
    is its own item (`sk=FLIP#<resource id>`, key operation id + attempt) so that it is written
    once, conditionally, before the health checks are touched."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self._table = table

    def load(self, operation_id: str, resource_id: str) -> ResourceRecord | None:
        item = _call(
            self._db.get_item,
            TableName=self._table,
            Key={"pk": {"S": f"EKSOP#{operation_id}"}, "sk": {"S": f"RES#{resource_id}"}},
            ConsistentRead=True,
        ).get("Item")
        if not item:
            return None
        return ResourceRecord(
            result=json.loads(item["result"]["S"]) if "result" in item else None,
            result_type=item.get("result_type", {}).get("S"),
            result_attempt=int(item.get("attempt", {}).get("N", "0")),
        )

    def claim_flip(self, operation_id: str, resource_id: str, ttl_epoch: int) -> bool:
        try:
            self._db.put_item(
                TableName=self._table,
                Item={
                    "pk": {"S": f"EKSOP#{operation_id}"},
                    "sk": {"S": f"FLIP#{resource_id}"},
                    "state": {"S": "CLAIMED"},
                    "ttl": {"N": str(ttl_epoch)},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
            return True
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise _aws_error(error) from None

    def flipped(self, operation_id: str, resource_id: str, checks: Sequence[str]) -> None:
        _call(
            self._db.update_item,
            TableName=self._table,
            Key={"pk": {"S": f"EKSOP#{operation_id}"}, "sk": {"S": f"FLIP#{resource_id}"}},
            UpdateExpression="SET #s = :s, checks = :c",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={
                ":s": {"S": "FLIPPED"},
                ":c": {"S": " ".join(checks)},
            },
        )

    def save_result(
        self, operation_id: str, resource_id: str, attempt: int, detail: Detail, ttl_epoch: int
    ) -> None:
        _call(
            self._db.put_item,
            TableName=self._table,
            Item={
                "pk": {"S": f"EKSOP#{operation_id}"},
                "sk": {"S": f"RES#{resource_id}"},
                "result": {"S": detail.model_dump_json()},
                "result_type": {"S": type(detail).DETAIL_TYPE.value},
                "attempt": {"N": str(attempt)},
                "ttl": {"N": str(ttl_epoch)},
            },
        )


class EventResults:
    def __init__(self, publisher: EventPublisher) -> None:
        self._publisher = publisher

    def publish(self, details: Sequence[Detail]) -> None:
        if details:
            self._publisher.publish(Source.EKS, details)


class RegistryReader:
    """The SSM customer registry (the drs service's cached reader)."""

    def __init__(self, ssm: Any) -> None:
        from services.drs.adapters import CachedRegistry

        self._registry = CachedRegistry(ssm)

    def customer(self, name: str) -> CustomerEntry | None:
        return self._registry.customer(name)
