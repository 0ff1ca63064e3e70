"""ElastiCache Global Datastore emulator (moto has replication groups, and records the
`GlobalReplicationGroupId` a secondary is created with, but has no global replication groups).
An emulation, not AWS: botocore's `elasticache` model is the truth for shapes (requests and
responses are validated against it; the query protocol's XML is written by moto's serializer);
semantics follow the ElastiCache user guide ("Replication across AWS Regions using global
datastores"):

- Emulated, routed by operation name: CreateGlobalReplicationGroup,
  DescribeGlobalReplicationGroups, FailoverGlobalReplicationGroup. Every other ElastiCache call
  goes to moto (DescribeReplicationGroups then reports `GlobalReplicationGroupInfo` with the
  member's role, kept on moto's replication group).
- CreateGlobalReplicationGroup makes moto's `PrimaryReplicationGroupId` (caller's region) the
  PRIMARY member; the id is `<prefix>-<suffix>` with a fixed sandbox prefix (AWS generates one
  per region). Secondaries join as AWS has them join: CreateReplicationGroup in another region
  with `GlobalReplicationGroupId` (moto's; the member list is read from moto's replication groups
  of the account, in every region).
- A global datastore is seen from every region of its account. FailoverGlobalReplicationGroup
  needs the datastore `available` (else InvalidGlobalReplicationGroupState) and a SECONDARY
  member in `PrimaryRegion` named `PrimaryReplicationGroupId` (else InvalidParameterValue); the
  roles swap at once (AWS: the datastore is `modifying` for a few minutes).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Request, Response

from . import Caller, Knobs
from .validation import ResponseInvalid, ServiceCodec, ServiceError

log = logging.getLogger("sandbox.emulators.elasticache_global")

OPERATIONS = (
    "CreateGlobalReplicationGroup",
    "DescribeGlobalReplicationGroups",
    "FailoverGlobalReplicationGroup",
)
SIGNING_NAME = "elasticache"
ID_PREFIX = "sbxgd"
XMLNS = "http://elasticache.amazonaws.com/doc/2015-02-02/"


@dataclass
class _Global:
    account: str
    global_id: str
    description: str
    created: dt.datetime


def _moto_groups(account: str) -> list[tuple[str, Any]]:
    """(region, replication group) of every region of the account."""
    from moto.elasticache.models import elasticache_backends

    if account not in elasticache_backends:
        return []
    return [
        (region, group)
        for region, backend in elasticache_backends[account].items()
        for group in backend.replication_groups.values()
    ]


class ElastiCacheGlobalEmulator:
    def __init__(self, knobs: Knobs) -> None:
        self.knobs = knobs
        self.codec = ServiceCodec("elasticache")
        self._lock = threading.Lock()
        self._globals: dict[tuple[str, str], _Global] = {}

    def by_operation(self) -> dict[tuple[str, str], ElastiCacheGlobalEmulator]:
        return {(SIGNING_NAME, op): self for op in OPERATIONS}

    def reset(self) -> None:
        with self._lock:
            self._globals.clear()

    # -- HTTP (query protocol)

    def handle(self, request: Request, caller: Caller) -> Response:
        from moto.core.parse import QueryParser
        from moto.core.serialize import QuerySerializer
        from moto.core.utils import get_service_model

        form = MultiDict(request.form)
        op_name = form.get("Action") or request.args.get("Action", "")
        request_id = str(uuid.uuid4())
        try:
            if op_name not in OPERATIONS:
                raise ServiceError("InvalidAction", f"{op_name} is not emulated", status=400)
            op = self.codec.operation(op_name)
            if self.knobs.throttled():
                raise ServiceError("Throttling", "Rate exceeded", status=400)
            # moto's parser and serializer work on moto's view of the same botocore model.
            moto_op = get_service_model("elasticache").operation_model(op_name)
            params = QueryParser(moto_op).parse(
                {
                    "body": request.get_data(),
                    "headers": request.headers,
                    "method": request.method,
                    "url_params": {},
                    "url_path": request.path,
                    "values": form,
                }
            )
            self.codec.validate_request(op, params)
            with self._lock:
                output = getattr(self, "_" + _snake(op_name))(caller, params)
            self.codec.validate_response(op, output)
            answer = QuerySerializer(moto_op).serialize(output)
            body = answer["body"]
            return Response(body, status=200, headers={"Content-Type": "text/xml"})
        except ServiceError as err:
            return self._error(err, request_id)
        except ResponseInvalid as bug:
            log.error("emulator bug: %s", bug)
            return self._error(ServiceError("InternalFailure", str(bug), status=500), request_id)

    def _error(self, err: ServiceError, request_id: str) -> Response:
        shape = self.codec._error_shape(err.code)
        status = err.status or (
            int(shape.metadata.get("error", {}).get("httpStatusCode", 400)) if shape else 400
        )
        body = (
            f'<ErrorResponse xmlns="{XMLNS}"><Error><Type>Sender</Type>'
            f"<Code>{escape(err.code)}</Code><Message>{escape(err.message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        return Response(body, status=status, headers={"Content-Type": "text/xml"})

    # -- operations (lock held)

    def _members(self, account: str, global_id: str) -> list[tuple[str, Any]]:
        return [
            (region, g)
            for region, g in _moto_groups(account)
            if getattr(g, "global_replication_group_id", "") == global_id
        ]

    def _describe(self, store: _Global, members: bool) -> dict[str, Any]:
        found = self._members(store.account, store.global_id)
        primary = next((g for _, g in found if _role(g) == "PRIMARY"), None)
        item: dict[str, Any] = {
            "GlobalReplicationGroupId": store.global_id,
            "GlobalReplicationGroupDescription": store.description,
            "Status": "available" if primary is not None else "primary-only",
            "CacheNodeType": getattr(primary, "cache_node_type", None) or "cache.r7g.large",
            "Engine": "valkey",
            "EngineVersion": "7.2",
            "ClusterEnabled": False,
            "ARN": f"arn:aws:elasticache::{store.account}:globalreplicationgroup:{store.global_id}",
        }
        if members:
            item["Members"] = [
                {
                    "ReplicationGroupId": g.replication_group_id,
                    "ReplicationGroupRegion": region,
                    "Role": _role(g),
                    "AutomaticFailover": "disabled",
                    "Status": "associated",
                }
                for region, g in found
            ]
        return item

    def _store(self, account: str, global_id: str) -> _Global:
        store = self._globals.get((account, global_id))
        if store is None:
            raise ServiceError(
                "GlobalReplicationGroupNotFoundFault",
                f"Global replication group {global_id} not found.",
            )
        return store

    def _create_global_replication_group(
        self, caller: Caller, params: dict[str, Any]
    ) -> dict[str, Any]:
        global_id = f"{ID_PREFIX}-{params['GlobalReplicationGroupIdSuffix']}"
        if (caller.account, global_id) in self._globals:
            raise ServiceError(
                "GlobalReplicationGroupAlreadyExistsFault", f"{global_id} already exists."
            )
        primary_id = params["PrimaryReplicationGroupId"]
        primary = next(
            (
                g
                for region, g in _moto_groups(caller.account)
                if region == caller.region and g.replication_group_id == primary_id
            ),
            None,
        )
        if primary is None:
            raise ServiceError(
                "ReplicationGroupNotFoundFault", f"Replication group {primary_id} not found."
            )
        if getattr(primary, "global_replication_group_id", ""):
            raise ServiceError(
                "InvalidReplicationGroupState",
                f"{primary_id} is already a member of {primary.global_replication_group_id}.",
            )
        primary.global_replication_group_id = global_id
        primary.global_replication_group_member_role = "PRIMARY"
        store = _Global(
            caller.account,
            global_id,
            params.get("GlobalReplicationGroupDescription", ""),
            dt.datetime.now(dt.UTC),
        )
        self._globals[(caller.account, global_id)] = store
        return {"GlobalReplicationGroup": self._describe(store, members=True)}

    def _describe_global_replication_groups(
        self, caller: Caller, params: dict[str, Any]
    ) -> dict[str, Any]:
        wanted = params.get("GlobalReplicationGroupId")
        if wanted:
            stores = [self._store(caller.account, wanted)]
        else:
            stores = [s for (a, _), s in sorted(self._globals.items()) if a == caller.account]
        start = int(params.get("Marker") or 0)
        size = int(params.get("MaxRecords") or 100)
        show = bool(params.get("ShowMemberInfo"))
        out: dict[str, Any] = {
            "GlobalReplicationGroups": [
                self._describe(s, show) for s in stores[start : start + size]
            ]
        }
        if start + size < len(stores):
            out["Marker"] = str(start + size)
        return out

    def _failover_global_replication_group(
        self, caller: Caller, params: dict[str, Any]
    ) -> dict[str, Any]:
        store = self._store(caller.account, params["GlobalReplicationGroupId"])
        described = self._describe(store, members=True)
        if described["Status"] != "available":
            raise ServiceError(
                "InvalidGlobalReplicationGroupState",
                f"Global replication group {store.global_id} is {described['Status']}.",
            )
        region, group_id = params["PrimaryRegion"], params["PrimaryReplicationGroupId"]
        members = self._members(caller.account, store.global_id)
        target = next(
            (g for r, g in members if r == region and g.replication_group_id == group_id), None
        )
        if target is None:
            raise ServiceError(
                "InvalidParameterValue",
                f"{group_id} in {region} is not a member of {store.global_id}.",
            )
        if _role(target) == "PRIMARY":
            raise ServiceError(
                "InvalidParameterValue", f"{group_id} is already the primary of {store.global_id}."
            )
        for _, g in members:
            g.global_replication_group_member_role = "PRIMARY" if g is target else "SECONDARY"
        return {"GlobalReplicationGroup": self._describe(store, members=True)}


def _role(group: Any) -> str:
    return str(getattr(group, "global_replication_group_member_role", "SECONDARY"))


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
