"""How services declare the events they listen to.

Each service's `subscriptions.py` declares `SERVICE = ServiceSpec(...)`. These declarations are
the single source of truth for routing: the sandbox runtime and the CDK app both build their
EventBridge rules and SQS queues from them, and contract tests match them against golden events.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from events.schemas import DetailType, NativeDetailType, Source

# Replayed archive events carry a top-level `replay-name`; no live rule may match them.
NOT_A_REPLAY: dict[str, Any] = {"replay-name": [{"exists": False}]}


@dataclass(frozen=True)
class Subscription:
    """One EventBridge rule on the orchestration bus, targeting the service's queue."""

    name: str
    sources: tuple[Source, ...]
    detail_types: tuple[DetailType | NativeDetailType, ...]
    # Extra conditions on `detail` (EventBridge pattern syntax).
    detail: dict[str, Any] = field(default_factory=dict)

    def pattern(self) -> dict[str, Any]:
        pattern: dict[str, Any] = {
            "source": [s.value for s in self.sources],
            "detail-type": [d.value for d in self.detail_types],
        }
        if self.detail:
            pattern["detail"] = copy.deepcopy(self.detail)
        pattern.update(copy.deepcopy(NOT_A_REPLAY))
        return pattern


@dataclass(frozen=True)
class Schedule:
    """A recurring message to the service's own queue (EventBridge Scheduler → SQS in AWS;
    the sandbox runtime sends it itself). `message` must carry a `kind` the service routes."""

    name: str
    rate_seconds: int
    message: dict[str, Any]


@dataclass(frozen=True)
class ServiceSpec:
    """A consuming service: its handler, its subscriptions and how its queue is consumed."""

    name: str
    handler: str  # "module.path:function"
    subscriptions: tuple[Subscription, ...]
    batch_size: int = 10
    # Seconds a failed message stays invisible before it is redelivered.
    visibility_timeout: int = 30
    # Deliveries before a message moves to the dead-letter queue.
    max_receive_count: int = 5
    # Lambda's MaximumBatchingWindowInSeconds: waits to fill a batch (fewer, larger calls).
    batching_window_seconds: float = 0.0
    # Whether the service sends itself delayed follow-up messages on its own queue.
    self_scheduling: bool = False
    # Recurring messages (janitors, reconcilers, cache refreshes).
    schedules: tuple[Schedule, ...] = ()

    def rule_name(self, subscription: Subscription) -> str:
        return f"dr-{self.name}-{subscription.name}"

    def queue_name(self) -> str:
        return f"dr-{self.name}"

    def dlq_name(self) -> str:
        return f"dr-{self.name}-dlq"
