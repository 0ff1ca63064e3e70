"""AWS Resource Explorer (`resource-explorer-2`) emulator over a live index of moto's resources.

This is an emulation of the service, not the service: it answers the API as botocore's model
describes it (requests and responses are validated against it) over what the sandbox holds.

Indexes, views and default views are kept per account (views and indexes are regional). `Search`
reads the caller account's resources straight from moto's backends: in every region that has an
index when the index of the caller's region is an AGGREGATOR, else only in that region
(replication to the aggregator is immediate here). Indexed resource types, with Resource
Explorer's type names:

- `ec2:instance` (not terminated);
- `eks:cluster`;
- `elasticfilesystem:file-system` (not deleted);
- `fsx:file-system`;
- `elasticache:replicationgroup` (not deleted);
- `elasticloadbalancing:loadbalancer/app` and `/net` (ELBv2, by the load balancer's type; moto
  gives NLBs an `…:loadbalancer/app/…` ARN, which is kept as it is), and
  `elasticloadbalancing:loadbalancer` (classic).

Other emulators can index what moto does not hold: `register_collector(fn)` adds a collector,
a callable `(account, regions or None) -> list[IndexedResource]` that every Search consults
(in-process; `unregister_collector(fn)` removes it).

Semantics kept from the service:

- Search always uses a view: `ViewArn`, else the region's default view; neither ->
  `UnauthorizedException` (401).
- Tags come back (`Properties[{Name: "tags", Data: [{Key, Value}]}]`) only when the view includes
  the `tags` property.
- At most 1,000 results per query in total, across pages: `Count.TotalResources` stops counting at
  1,000 and `Count.Complete` is false when more resources match.
- `CreateIndex` always creates a LOCAL index (the model has no `Type` on it); `UpdateIndexType`
  promotes it to AGGREGATOR (one aggregator per account, else ServiceQuotaExceededException).

Query syntax (QueryString and a view's FilterString), decided as follows:

- Terms are separated by spaces; double quotes group a term with spaces (`tag:Name="a b"`).
- Filter terms have a prefix: `tag:KEY=VALUE`, `tag:KEY` (has the key), `tag:none` (no tags),
  `tag:all` (any tag), `tag.key:KEY`, `tag.value:VALUE`, `region:`, `resourcetype:`, `service:`,
  `accountid:`, `id:`. All filter terms are ANDed (also two terms with the same prefix).
- In `tag:KEY=VALUE` the key ends at the FIRST `=`: tag keys may contain colons
  (`tag:dr:enabled=true`, AWS's own `tag:aws:cloudformation:stack-name=x`), and the value may
  contain `=` (`tag:token=a=b` is key `token`, value `a=b`).
- `-` in front of a term negates it; `*` at the end of a value is a prefix wildcard.
- Tag keys and values match case-sensitively; region, resource type, service and the free-text
  keywords case-insensitively.
- Terms without a known prefix are free-text keywords, ORed among themselves (a resource must match
  at least one), and matched against the ARN, the id and the tag values.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import Caller, Knobs
from .validation import RestJsonEmulator, ServiceError, operation

MAX_RESULTS_TOTAL = 1000
PAGE_SIZE_DEFAULT = 1000
INDEXED_TYPES = (
    "ec2:instance",
    "eks:cluster",
    "elasticache:replicationgroup",
    "elasticfilesystem:file-system",
    "elasticloadbalancing:loadbalancer",
    "elasticloadbalancing:loadbalancer/app",
    "elasticloadbalancing:loadbalancer/net",
    "fsx:file-system",
)


@dataclass(frozen=True)
class IndexedResource:
    arn: str
    account: str
    region: str
    resource_type: str
    service: str
    resource_id: str
    tags: dict[str, str]
    last_reported_at: dt.datetime


@dataclass
class _Account:
    # region -> index record
    indexes: dict[str, dict[str, Any]] = field(default_factory=dict)
    # view arn -> view record (with a private "region" key)
    views: dict[str, dict[str, Any]] = field(default_factory=dict)
    # region -> view arn
    default_views: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# The index: read live from moto


def ec2_instances(account: str, regions: list[str] | None) -> list[IndexedResource]:
    """The account's EC2 instances that are not terminated, in `regions` (None: every region)."""
    from moto.ec2.models import ec2_backends

    if account not in ec2_backends:
        return []
    out = []
    for region, backend in list(ec2_backends[account].items()):
        if regions is not None and region not in regions:
            continue
        for instance in backend.all_instances():
            if instance._state.name == "terminated":
                continue
            launched = instance.launch_time
            if isinstance(launched, str):
                launched = dt.datetime.fromisoformat(launched.replace("Z", "+00:00"))
            if launched.tzinfo is None:
                launched = launched.replace(tzinfo=dt.UTC)
            out.append(
                IndexedResource(
                    arn=f"arn:aws:ec2:{region}:{account}:instance/{instance.id}",
                    account=account,
                    region=region,
                    resource_type="ec2:instance",
                    service="ec2",
                    resource_id=instance.id,
                    tags=dict(backend.tags.get(instance.id, {})),
                    last_reported_at=launched,
                )
            )
    out.sort(key=lambda r: (r.region, r.arn))
    return out


def _utc(value: Any) -> dt.datetime:
    """A creation time as moto stores it (datetime, ISO string or epoch seconds), in UTC."""
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return _now()
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return _now()


def _tag_dict(tags: Any) -> dict[str, str]:
    if isinstance(tags, dict):
        return {str(k): str(v) for k, v in tags.items()}
    return {str(t["Key"]): str(t.get("Value", "")) for t in tags or []}


def _regional(backends: Any, account: str, regions: list[str] | None) -> list[tuple[str, Any]]:
    if account not in backends:
        return []
    return [
        (region, backend)
        for region, backend in list(backends[account].items())
        if regions is None or region in regions
    ]


def _resource(
    arn: str, region: str, account: str, resource_type: str, resource_id: str, tags: Any, at: Any
) -> IndexedResource:
    return IndexedResource(
        arn=arn,
        account=account,
        region=region,
        resource_type=resource_type,
        service=resource_type.split(":", 1)[0],
        resource_id=resource_id,
        tags=_tag_dict(tags),
        last_reported_at=_utc(at),
    )


def eks_clusters(account: str, regions: list[str] | None) -> list[IndexedResource]:
    from moto.eks.models import eks_backends

    return [
        _resource(c.arn, region, account, "eks:cluster", c.name, c.tags, c.created_at)
        for region, backend in _regional(eks_backends, account, regions)
        for c in list(backend.clusters.values())
        if c.status != "DELETING"
    ]


def efs_file_systems(account: str, regions: list[str] | None) -> list[IndexedResource]:
    from moto.efs.models import efs_backends

    return [
        _resource(
            fs.file_system_arn,
            region,
            account,
            "elasticfilesystem:file-system",
            fs.file_system_id,
            backend.list_tags_for_resource(fs.file_system_id),
            fs.creation_time,
        )
        for region, backend in _regional(efs_backends, account, regions)
        for fs in list(backend.file_systems_by_id.values())
        if fs.life_cycle_state not in ("deleting", "deleted")
    ]


def fsx_file_systems(account: str, regions: list[str] | None) -> list[IndexedResource]:
    from moto.fsx.models import fsx_backends

    return [
        _resource(
            fs.resource_arn,
            region,
            account,
            "fsx:file-system",
            fs.file_system_id,
            backend.list_tags_for_resource(fs.resource_arn),
            None,
        )
        for region, backend in _regional(fsx_backends, account, regions)
        for fs in list(backend.file_systems.values())
    ]


def elasticache_replication_groups(
    account: str, regions: list[str] | None
) -> list[IndexedResource]:
    from moto.elasticache.models import elasticache_backends

    return [
        _resource(
            group.arn,
            region,
            account,
            "elasticache:replicationgroup",
            group.replication_group_id,
            backend.tagging_service.get_tag_dict_for_resource(group.arn) or group.tags,
            group.replication_group_create_time,
        )
        for region, backend in _regional(elasticache_backends, account, regions)
        for group in list(backend.replication_groups.values())
        if group.status not in ("deleting", "deleted")
    ]


_ELBV2_SUBTYPES = {"application": "app", "network": "net", "gateway": "gwy"}


def load_balancers(account: str, regions: list[str] | None) -> list[IndexedResource]:
    from moto.elb.models import elb_backends
    from moto.elbv2.models import elbv2_backends

    out = [
        _resource(
            lb.arn,
            region,
            account,
            f"elasticloadbalancing:loadbalancer/{_ELBV2_SUBTYPES.get(lb.type, 'app')}",
            lb.name,
            backend.tagging_service.get_tag_dict_for_resource(lb.arn),
            lb.created_time,
        )
        for region, backend in _regional(elbv2_backends, account, regions)
        for lb in list(backend.load_balancers.values())
    ]
    out += [
        _resource(
            f"arn:aws:elasticloadbalancing:{region}:{account}:loadbalancer/{lb.name}",
            region,
            account,
            "elasticloadbalancing:loadbalancer",
            lb.name,
            lb.tags,
            getattr(lb, "created_time", None),
        )
        for region, backend in _regional(elb_backends, account, regions)
        for lb in list(backend.load_balancers.values())
    ]
    return out


Collector = Callable[[str, list[str] | None], list[IndexedResource]]
DEFAULT_COLLECTORS: tuple[Collector, ...] = (
    ec2_instances,
    eks_clusters,
    efs_file_systems,
    fsx_file_systems,
    elasticache_replication_groups,
    load_balancers,
)
# Collectors other emulators registered (resources moto does not hold).
_registered: list[Collector] = []
_registry_lock = threading.Lock()


def register_collector(collector: Collector) -> None:
    """Index what `collector(account, regions)` returns in every Search (idempotent)."""
    with _registry_lock:
        if collector not in _registered:
            _registered.append(collector)


def unregister_collector(collector: Collector) -> None:
    with _registry_lock:
        if collector in _registered:
            _registered.remove(collector)


def registered_collectors() -> list[Collector]:
    with _registry_lock:
        return list(_registered)


# --------------------------------------------------------------------------------------------
# Query language


class QueryError(ValueError):
    pass


FILTER_PREFIXES = (
    "tag.key",
    "tag.value",
    "tag",
    "region",
    "resourcetype",
    "service",
    "accountid",
    "id",
)


def tokenize(query: str) -> list[str]:
    tokens: list[str] = []
    current: list[str] = []
    quoted = False
    for char in query:
        if char == '"':
            quoted = not quoted
            continue
        if char.isspace() and not quoted:
            if current:
                tokens.append("".join(current))
                current = []
            continue
        current.append(char)
    if quoted:
        raise QueryError(f"unbalanced double quote in query {query!r}")
    if current:
        tokens.append("".join(current))
    return tokens


def _like(pattern: str, value: str, *, fold: bool) -> bool:
    if fold:
        pattern, value = pattern.lower(), value.lower()
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern


Predicate = Callable[[IndexedResource], bool]


def _filter(prefix: str, arg: str) -> Predicate:
    if prefix == "tag":
        if arg == "none":
            return lambda r: not r.tags
        if arg == "all":
            return lambda r: bool(r.tags)
        key, eq, value = arg.partition("=")
        if not key:
            raise QueryError(f"tag filter 'tag:{arg}' has no key")
        if not eq:
            return lambda r: any(_like(key, k, fold=False) for k in r.tags)
        return lambda r: key in r.tags and _like(value, r.tags[key], fold=False)
    if prefix == "tag.key":
        return lambda r: any(_like(arg, k, fold=False) for k in r.tags)
    if prefix == "tag.value":
        return lambda r: any(_like(arg, v, fold=False) for v in r.tags.values())
    if prefix == "region":
        return lambda r: _like(arg, r.region, fold=True)
    if prefix == "resourcetype":
        return lambda r: _like(arg, r.resource_type, fold=True)
    if prefix == "service":
        return lambda r: _like(arg, r.service, fold=True)
    if prefix == "accountid":
        return lambda r: _like(arg, r.account, fold=False)
    if prefix == "id":
        return lambda r: _like(arg, r.resource_id, fold=True)
    raise QueryError(f"unknown filter prefix {prefix!r}")


def compile_query(query: str, *, allow_keywords: bool = True) -> Predicate:
    """Compile a Resource Explorer query string into a predicate (see the module docstring)."""
    filters: list[Predicate] = []
    keywords: list[tuple[bool, str]] = []
    for token in tokenize(query):
        negate = token.startswith("-") and len(token) > 1
        term = token[1:] if negate else token
        prefix, colon, arg = term.partition(":")
        if colon and prefix.lower() in FILTER_PREFIXES:
            predicate = _filter(prefix.lower(), arg)
            filters.append((lambda p: lambda r: not p(r))(predicate) if negate else predicate)
            continue
        if not allow_keywords:
            raise QueryError(
                f"a view filter supports only filter prefixes, not free text: {token!r}"
            )
        keywords.append((negate, term))

    positives = [k for neg, k in keywords if not neg]
    negatives = [k for neg, k in keywords if neg]

    def text_match(resource: IndexedResource, word: str) -> bool:
        haystack = [resource.arn, resource.resource_id, *resource.tags.values()]
        if word.endswith("*"):
            return any(word[:-1].lower() in h.lower() for h in haystack)
        return any(word.lower() in h.lower() for h in haystack)

    def match(resource: IndexedResource) -> bool:
        if not all(f(resource) for f in filters):
            return False
        if positives and not any(text_match(resource, w) for w in positives):
            return False
        return not any(text_match(resource, w) for w in negatives)

    return match


# --------------------------------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ResourceExplorerEmulator(RestJsonEmulator):
    service_name = "resource-explorer-2"

    def __init__(
        self,
        knobs: Knobs,
        collectors: list[Collector] | None = None,
    ) -> None:
        super().__init__(knobs)
        self._lock = threading.RLock()
        self._accounts: dict[str, _Account] = {}
        self._collectors = list(collectors or DEFAULT_COLLECTORS)

    def reset(self) -> None:
        with self._lock:
            self._accounts.clear()

    def handle(self, request: Any, caller: Caller) -> Any:
        with self._lock:
            return super().handle(request, caller)

    def _account(self, account: str) -> _Account:
        return self._accounts.setdefault(account, _Account())

    # -- indexes

    def _index_out(self, state: _Account, region: str) -> dict[str, Any]:
        index = state.indexes[region]
        out = {
            "Arn": index["Arn"],
            "Type": index["Type"],
            "State": "ACTIVE",
            "CreatedAt": index["CreatedAt"],
            "LastUpdatedAt": index["LastUpdatedAt"],
            "Tags": dict(index["Tags"]),
        }
        others = sorted(r for r in state.indexes if r != region)
        if index["Type"] == "AGGREGATOR":
            out["ReplicatingFrom"] = others
        else:
            aggregator = [r for r in others if state.indexes[r]["Type"] == "AGGREGATOR"]
            if aggregator:
                out["ReplicatingTo"] = aggregator
        return out

    @operation("CreateIndex")
    def create_index(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        state = self._account(caller.account)
        if caller.region in state.indexes:
            raise ServiceError(
                "ConflictException",
                f"An index already exists in {caller.region}: "
                f"{state.indexes[caller.region]['Arn']}",
            )
        now = _now()
        arn = f"arn:aws:resource-explorer-2:{caller.region}:{caller.account}:index/{uuid.uuid4()}"
        state.indexes[caller.region] = {
            "Arn": arn,
            "Type": "LOCAL",
            "CreatedAt": now,
            "LastUpdatedAt": now,
            "Tags": dict(params.get("Tags") or {}),
        }
        return {"Arn": arn, "State": "CREATING", "CreatedAt": now}

    def _index_by_arn(self, state: _Account, arn: str) -> tuple[str, dict[str, Any]]:
        for region, index in state.indexes.items():
            if index["Arn"] == arn:
                return region, index
        raise ServiceError("ResourceNotFoundException", f"Index {arn} not found")

    @operation("UpdateIndexType")
    def update_index_type(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        state = self._account(caller.account)
        region, index = self._index_by_arn(state, params["Arn"])
        wanted = params["Type"]
        if wanted == "AGGREGATOR":
            for other, item in state.indexes.items():
                if other != region and item["Type"] == "AGGREGATOR":
                    raise ServiceError(
                        "ServiceQuotaExceededException",
                        f"The account already has an aggregator index in {other}",
                        Name="Aggregator index per account",
                        Value="1",
                    )
        index["Type"] = wanted
        index["LastUpdatedAt"] = _now()
        return {
            "Arn": index["Arn"],
            "Type": wanted,
            "State": "UPDATING",
            "LastUpdatedAt": index["LastUpdatedAt"],
        }

    @operation("GetIndex")
    def get_index(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        state = self._account(caller.account)
        if caller.region not in state.indexes:
            raise ServiceError("ResourceNotFoundException", f"There is no index in {caller.region}")
        return self._index_out(state, caller.region)

    @operation("DeleteIndex")
    def delete_index(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        state = self._account(caller.account)
        region, _ = self._index_by_arn(state, params["Arn"])
        del state.indexes[region]
        for arn in [a for a, v in state.views.items() if v["region"] == region]:
            del state.views[arn]
        state.default_views.pop(region, None)
        return {"Arn": params["Arn"], "State": "DELETING", "LastUpdatedAt": _now()}

    @operation("ListIndexes")
    def list_indexes(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        state = self._account(caller.account)
        regions = set(params.get("Regions") or [])
        items = [
            {"Region": region, "Arn": index["Arn"], "Type": index["Type"]}
            for region, index in sorted(state.indexes.items())
            if (not regions or region in regions)
            and (not params.get("Type") or index["Type"] == params["Type"])
        ]
        page, token = _page(items, params, params.get("MaxResults") or 100, "ListIndexes")
        out: dict[str, Any] = {"Indexes": page}
        if token:
            out["NextToken"] = token
        return out

    # -- views

    def _view_out(self, view: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in view.items() if k not in ("region", "Tags")}

    @operation("CreateView")
    def create_view(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        state = self._account(caller.account)
        name = params["ViewName"]
        for view in state.views.values():
            if view["region"] == caller.region and view["ViewName"] == name:
                raise ServiceError(
                    "ConflictException", f"A view named {name} exists in {caller.region}"
                )
        filters = params.get("Filters") or {"FilterString": ""}
        try:
            compile_query(filters.get("FilterString", ""), allow_keywords=False)
        except QueryError as err:
            raise ServiceError(
                "ValidationException",
                f"Invalid Filters.FilterString: {err}",
                FieldList=[{"Name": "Filters.FilterString", "ValidationIssue": str(err)}],
            ) from None
        arn = (
            f"arn:aws:resource-explorer-2:{caller.region}:{caller.account}:view/{name}/"
            f"{uuid.uuid4()}"
        )
        view = {
            "ViewArn": arn,
            "ViewName": name,
            "Owner": caller.account,
            "LastUpdatedAt": _now(),
            "Scope": params.get("Scope") or f"arn:aws:iam::{caller.account}:root",
            "IncludedProperties": list(params.get("IncludedProperties") or []),
            "Filters": filters,
            "region": caller.region,
            "Tags": dict(params.get("Tags") or {}),
        }
        state.views[arn] = view
        return {"View": self._view_out(view)}

    def _view(self, state: _Account, arn: str) -> dict[str, Any]:
        view = state.views.get(arn)
        if view is None:
            raise ServiceError("ResourceNotFoundException", f"View {arn} not found")
        return view

    @operation("GetView")
    def get_view(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        view = self._view(self._account(caller.account), params["ViewArn"])
        return {"View": self._view_out(view), "Tags": dict(view["Tags"])}

    @operation("ListViews")
    def list_views(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        state = self._account(caller.account)
        arns = sorted(a for a, v in state.views.items() if v["region"] == caller.region)
        page, token = _page(arns, params, params.get("MaxResults") or 50, "ListViews")
        out: dict[str, Any] = {"Views": page}
        if token:
            out["NextToken"] = token
        return out

    @operation("DeleteView")
    def delete_view(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        state = self._account(caller.account)
        view = self._view(state, params["ViewArn"])
        del state.views[params["ViewArn"]]
        if state.default_views.get(view["region"]) == params["ViewArn"]:
            del state.default_views[view["region"]]
        return {"ViewArn": params["ViewArn"]}

    @operation("AssociateDefaultView")
    def associate_default_view(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        state = self._account(caller.account)
        view = self._view(state, params["ViewArn"])
        if view["region"] != caller.region:
            raise ServiceError(
                "ValidationException",
                f"View {params['ViewArn']} is not in {caller.region}",
                FieldList=[{"Name": "ViewArn", "ValidationIssue": "view is in another Region"}],
            )
        state.default_views[caller.region] = params["ViewArn"]
        return {"ViewArn": params["ViewArn"]}

    @operation("DisassociateDefaultView")
    def disassociate_default_view(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        self._account(caller.account).default_views.pop(caller.region, None)
        return {}

    @operation("GetDefaultView")
    def get_default_view(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        arn = self._account(caller.account).default_views.get(caller.region)
        return {"ViewArn": arn} if arn else {}

    @operation("ListSupportedResourceTypes")
    def list_supported_resource_types(
        self, caller: Caller, params: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "ResourceTypes": [
                {"Service": kind.split(":", 1)[0], "ResourceType": kind} for kind in INDEXED_TYPES
            ]
        }

    # -- search

    @operation("Search")
    def search(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        state = self._account(caller.account)
        arn = params.get("ViewArn") or state.default_views.get(caller.region)
        if not arn:
            raise ServiceError(
                "UnauthorizedException",
                f"There is no default view in {caller.region} and no ViewArn was given; "
                "a search always uses a view",
            )
        view = state.views.get(arn)
        if view is None or view["region"] != caller.region:
            raise ServiceError(
                "UnauthorizedException", f"The view {arn} does not exist or is not accessible"
            )
        index = state.indexes.get(caller.region)
        if index is None:
            raise ServiceError("ResourceNotFoundException", f"There is no index in {caller.region}")
        # An aggregator holds what the Regions with an index replicate to it.
        regions = sorted(state.indexes) if index["Type"] == "AGGREGATOR" else [caller.region]
        query = params["QueryString"]
        try:
            view_filter = compile_query(view["Filters"].get("FilterString", ""))
            wanted = compile_query(query)
        except QueryError as err:
            raise ServiceError(
                "ValidationException",
                f"Invalid QueryString: {err}",
                FieldList=[{"Name": "QueryString", "ValidationIssue": str(err)}],
            ) from None
        matches: list[IndexedResource] = []
        complete = True
        for collect in [*self._collectors, *registered_collectors()]:
            for resource in collect(caller.account, regions):
                if view_filter(resource) and wanted(resource):
                    if len(matches) == MAX_RESULTS_TOTAL:
                        complete = False
                        break
                    matches.append(resource)
            if not complete:
                break
        with_tags = any(p.get("Name") == "tags" for p in view["IncludedProperties"])
        key = f"{arn}|{query}"
        size = params.get("MaxResults") or PAGE_SIZE_DEFAULT
        page, token = _page(matches, params, size, key)
        now = _now()
        resources = []
        for resource in page:
            item: dict[str, Any] = {
                "Arn": resource.arn,
                "OwningAccountId": resource.account,
                "Region": resource.region,
                "ResourceType": resource.resource_type,
                "Service": resource.service,
                "LastReportedAt": resource.last_reported_at,
                "Properties": [],
            }
            if with_tags:
                item["Properties"].append(
                    {
                        "Name": "tags",
                        "LastReportedAt": now,
                        "Data": [{"Key": k, "Value": v} for k, v in resource.tags.items()],
                    }
                )
            resources.append(item)
        out: dict[str, Any] = {
            "Resources": resources,
            "ViewArn": arn,
            "Count": {"TotalResources": len(matches), "Complete": complete},
        }
        if token:
            out["NextToken"] = token
        return out


def _page(
    items: list[Any], params: dict[str, Any], size: int, key: str
) -> tuple[list[Any], str | None]:
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    start = 0
    token = params.get("NextToken")
    if token:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
            start, their_digest = int(decoded["o"]), decoded["k"]
        except (ValueError, KeyError, TypeError):
            their_digest = None
        if their_digest != digest:
            raise ServiceError(
                "ValidationException",
                "The NextToken is not valid for this request",
                FieldList=[{"Name": "NextToken", "ValidationIssue": "invalid token"}],
            )
    chunk = items[start : start + size]
    if start + size < len(items):
        raw = json.dumps({"o": start + size, "k": digest}).encode()
        return chunk, base64.urlsafe_b64encode(raw).decode()
    return chunk, None
