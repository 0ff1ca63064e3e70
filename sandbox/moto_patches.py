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
"""

from __future__ import annotations

import copy
import threading
from datetime import datetime
from typing import Any

from moto.core import common_models
from moto.core.utils import unix_time
from moto.events import models as events_models
from moto.events import utils as events_utils
from moto.moto_api._internal import mock_random

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
        _installed = True
