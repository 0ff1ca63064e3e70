"""Where moto's behaviour differs from AWS in a way the orchestration depends on, the sandbox
puts AWS's behaviour back. Each patch names the difference; `install()` is idempotent.

1. Events forwarded to another event bus (cross-account or cross-region rule target).
   AWS delivers the same event: its `id`, `account`, `region`, `time` and `resources` keep the
   source's values. moto re-publishes a new event on the target bus that drops `resources` and
   `time` and takes the target's account — a forwarded "DRS Source Server Launch Result" would
   no longer say which account's source server it is about.
2. Events delivered to a target. AWS delivers the whole event, `account` included; moto's
   default input template leaves `account` out.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

from moto.core.utils import unix_time
from moto.events import models as events_models
from moto.events import utils as events_utils

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
        _installed = True
