"""Where moto's behaviour differs from AWS in a way the orchestration depends on, the sandbox
puts AWS's behaviour back. Each patch names the difference; `install()` is idempotent.

1. Events forwarded to another event bus (cross-account or cross-region rule target).
   AWS delivers the same event: its `id`, `account`, `region`, `time` and `resources` keep the
   source's values. moto re-publishes a new event on the target bus that drops `resources` and
   `time` and takes the target's account — a forwarded "DRS Source Server Launch Result" would
   no longer say which account's source server it is about.
2. Events delivered to a target. AWS delivers the whole event, `account` included; moto's
   default input template leaves `account` out.
3. Replays. AWS replays only the events of the requested time window, and only to the rules
   named in the destination's `FilterArns` when given; moto replays the whole archive to every
   rule of the bus.
4. Memory. moto keeps every model object it ever creates in a per-class list (for its
   dashboard), including the copies of DynamoDB items it makes for each query result: the
   sandbox grew by gigabytes over a 1,000-server run. Only S3, which cleans up through that list,
   still tracks its objects; the sandbox serves no moto dashboard.
5. Speed (no AWS behaviour changes). moto finds the backend of each request by listing its own
   package directory and trying its URL patterns in turn, under one lock; and it parses the
   JSONPath expressions of an event target's input template again for every delivery. Both
   answers depend only on their (few, fixed) inputs, so the sandbox remembers them: that was a
   quarter of the endpoint's CPU time at 250 servers. And SQS, to check one received message's
   retention, computes every attribute of its queue, counting all its messages twice: per
   message received, so a queue with a backlog cost O(backlog) per message.
6. Speed, DynamoDB transactions. moto deep-copies every table a TransactWriteItems touches,
   to restore it if the transaction is cancelled: each transaction cost O(table), half of the
   endpoint's CPU time at 1,000 servers. The sandbox keeps a copy of the items the transaction
   names instead, and puts those back: the same all-or-nothing outcome. And a Query on a
   table's key lists and sorts every item of the table before keeping those of the one
   partition it names: the sandbox hands it that partition's items only.
"""

from __future__ import annotations

import copy
import functools
import threading
from datetime import datetime
from typing import Any

import jsonpath_ng.ext
from moto.core import common_models
from moto.core.utils import unix_time
from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.events import models as events_models
from moto.events import utils as events_utils
from moto.moto_api._internal import mock_random
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.sqs import models as sqs_models

_installed = False
_lock = threading.Lock()


def _is_bus(target: dict[str, Any]) -> bool:
    arn = events_models.parse_arn(target["Arn"])
    return bool(arn.service == "events" and arn.resource_type == "event-bus")


def _forward(target_arn: str, event: dict[str, Any]) -> None:
    arn = events_models.parse_arn(target_arn)
    backend = events_models.events_backends[arn.account][arn.region]
    bus = backend.describe_event_bus(arn.resource_id)
    for rule in list(bus.rules.values()):
        message = copy.deepcopy(event)
        message["ingestion-time"] = unix_time()
        rule.send_to_targets(message)  # type: ignore[arg-type]


def _epoch(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return float(value)
    except ValueError:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _replay_events(self: Any, archive: Any) -> None:
    bus_name = self.destination["Arn"].split("/")[-1]
    bus = events_models.events_backends[self.account_id][self.region].describe_event_bus(bus_name)
    filters = set(self.destination.get("FilterArns") or [])
    start, end = _epoch(self.event_start_time), _epoch(self.event_end_time)
    for event in list(archive.events):
        moment = _epoch(event.get("time"))
        if moment is not None and (
            (start is not None and moment < start) or (end is not None and moment > end)
        ):
            continue
        for rule in list(bus.rules.values()):
            if filters and rule.arn not in filters:
                continue
            replayed = dict(event, id=str(mock_random.uuid4()))
            replayed["replay-name"] = self.name
            rule.send_to_targets(replayed, transform_input=False)  # type: ignore[arg-type]
    self.state = events_models.ReplayState.COMPLETED
    self.end_time = unix_time()


# moto's S3 removes keys and multipart uploads through the tracked instances: keep those.
_TRACKED_SERVICES = frozenset({"s3"})


def _new_model(cls: Any, *args: Any, **kwargs: Any) -> Any:
    instance = object.__new__(cls)
    if cls.__module__.split(".")[1] in _TRACKED_SERVICES:
        cls.instances_tracked.append(instance)
    return instance


def _retained(self: Any, queue_name: str, message: Any) -> bool:
    """moto's retention check, reading the one attribute it needs."""
    retention = int(self.get_queue(queue_name).message_retention_period)
    return bool(retention + message.sent_timestamp / 1000 > unix_time())


class _TableCopies:
    """Stands in for the `copy` module inside moto's DynamoDB backend: a table is not copied
    while a transaction runs under `_transact_write_items` (which keeps the items instead)."""

    def __init__(self) -> None:
        self.skip = threading.local()

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        if getattr(self.skip, "on", False) and isinstance(value, dynamodb_models.Table):
            return value
        return copy.deepcopy(value, memo)


_TABLE_COPIES = _TableCopies()


def _item_key(table: Any, op: dict[str, Any]) -> tuple[Any, Any] | None:
    key = op.get("Key") or op.get("Item") or {}
    if not isinstance(key, dict) or table.hash_key_attr not in key:
        return None  # malformed: moto refuses it before changing anything
    range_attr = table.range_key_attr
    if range_attr is not None and range_attr not in key:
        return None
    return DynamoType(key[table.hash_key_attr]), (
        DynamoType(key[range_attr]) if range_attr is not None else None
    )


def _restore(table: Any, hash_value: Any, range_value: Any, before: Any) -> None:
    if range_value is None:
        if before is None:
            table.items.pop(hash_value, None)
        else:
            table.items[hash_value] = before
    elif before is None:
        table.items.get(hash_value, {}).pop(range_value, None)
    else:
        table.items[hash_value][range_value] = before


def _journaled_transactions() -> None:
    transact = dynamodb_models.DynamoDBBackend.transact_write_items

    def _transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved: list[tuple[Any, Any, Any, Any]] = []
        for entry in transact_items[:100]:
            op = next(iter(entry.values()), None)
            if not isinstance(op, dict):
                continue
            table = self.tables.get(op.get("TableName", ""))
            key = _item_key(table, op) if table is not None else None
            if table is None or key is None:
                continue
            before = table.get_item(*key)
            saved.append((table, *key, copy.deepcopy(before)))
        _TABLE_COPIES.skip.on = True
        try:
            transact(self, transact_items)
        except Exception:
            for table, hash_value, range_value, before in reversed(saved):
                _restore(table, hash_value, range_value, before)
            raise
        finally:
            _TABLE_COPIES.skip.on = False

    dynamodb_models.copy = _TABLE_COPIES  # type: ignore[assignment]
    dynamodb_models.DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]


_QUERIED = threading.local()


def _partition_queries() -> None:
    table_class = dynamodb_models.Table
    every_item = table_class.all_items
    query = table_class.query

    def all_items(self: Any) -> list[Any]:
        queried = getattr(_QUERIED, "partition", None)
        if queried is None or queried[0] is not self:
            return every_item(self)
        partition = self.items.get(queried[1])  # .get: `items` is a defaultdict
        if partition is None:
            return []
        return list(partition.values()) if self.range_key_attr else [partition]

    def query_partition(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        # The table's own key (no index): moto keeps only items with this hash key, then sorts
        # them by range key; the other partitions' items never matter.
        on_index = kwargs.get("index_name") or (len(args) > 6 and args[6])
        _QUERIED.partition = None if on_index or hash_key is None else (self, hash_key)
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            _QUERIED.partition = None

    table_class.all_items = all_items  # type: ignore[method-assign]
    table_class.query = query_partition  # type: ignore[method-assign]


def _remember_backends() -> None:
    """Cache moto's host -> backend lookup (per dispatcher: each has its own URL patterns)."""
    find = DomainDispatcherApplication.get_backend_for_host

    def get_backend_for_host(self: Any, host: str | None) -> Any:
        cache: dict[str | None, Any] = self.__dict__.setdefault("_sandbox_backends", {})
        if host not in cache:
            cache[host] = find(self, host)
        return cache[host]

    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host  # type: ignore[method-assign]
    # moto imports `parse` from this module at each call: the cached one is what it finds.
    jsonpath_ng.ext.parse = functools.lru_cache(maxsize=512)(jsonpath_ng.ext.parse)


def install() -> None:
    global _installed
    with _lock:
        if _installed:
            return
        original = events_models.Rule.send_to_targets

        def send_to_targets(
            self: Any, original_event: dict[str, Any], transform_input: bool = True
        ) -> None:
            buses = [t for t in self.targets if _is_bus(t)]
            if not buses:
                return original(self, original_event, transform_input)  # type: ignore[arg-type]
            others = copy.copy(self)
            others.targets = [t for t in self.targets if not _is_bus(t)]
            if others.targets:
                # moto rewrites the event it delivers (its time, for one): give it a copy.
                original(others, copy.deepcopy(original_event), transform_input)  # type: ignore[arg-type]
            if self.event_pattern.matches_event(original_event):
                for target in buses:
                    _forward(target["Arn"], original_event)
            return None

        events_models.Rule.send_to_targets = send_to_targets  # type: ignore[method-assign,assignment]
        template = events_utils.EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE
        if '"account"' not in template:
            events_utils.EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE = template.replace(
                '"version": "0",', '"version": "0", "account": "<account>",'
            )
        events_models.Replay.replay_events = _replay_events  # type: ignore[method-assign]
        common_models.BaseModel.__new__ = staticmethod(_new_model)  # type: ignore[method-assign]
        _remember_backends()
        sqs_models.SQSBackend.is_message_valid_based_on_retention_period = _retained  # type: ignore[method-assign]
        _journaled_transactions()
        _partition_queries()
        _installed = True
