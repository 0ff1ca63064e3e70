"""What follows an operation's life: options recorded when it is requested, teardown (drills) or
re-protection (failover, failback) when the coordinator announces its end, cleanup requests, and
the options of the per-customer operations a regional request fans out to."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from events.schemas import (
    OperationCancelled,
    OperationCompleted,
    OperationFailed,
    OperationRequested,
    OperationType,
)
from events.schemas.models import DrillCleanupRequested, RegionalOperationStarted, utc_now

from .domain import DrsRecovery
from .drills import Drills
from .ports import Log, Operations
from .protection import Reprotection

OperationEnded = OperationCompleted | OperationFailed | OperationCancelled
STATE_OF = {
    OperationCompleted: "COMPLETED",
    OperationFailed: "FAILED",
    OperationCancelled: "CANCELLED",
}


class Lifecycle:
    def __init__(
        self,
        *,
        recovery: DrsRecovery,
        drills: Drills,
        protection: Reprotection,
        operations: Operations,
        log: Log,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._recovery = recovery
        self._drills = drills
        self._protection = protection
        self._ops = operations
        self._log = log
        self._now = now

    def requested(self, request: OperationRequested) -> None:
        self._recovery.on_operation_requested(request)

    def ended(self, event: OperationEnded) -> None:
        """Idempotent: a repeated end event continues what the first one started."""
        self._ops.mark_ended(event.operation_id, STATE_OF[type(event)], self._now())
        if event.operation == OperationType.BUBBLE_TEST:
            self._drills.on_drill_ended(event.operation_id, event.customer, event.environment)
        else:
            self._protection.start(
                event.operation_id, event.customer, event.environment, event.operation
            )

    def cleanup(self, request: DrillCleanupRequested) -> None:
        self._drills.on_cleanup_requested(request)

    def regional(self, event: RegionalOperationStarted) -> None:
        """Each per-customer operation of a regional request gets the request's options."""
        parent = self._ops.load(event.operation_id).options
        if parent is None:
            self._log.warning(
                "Regional operation without recorded options: children use the defaults",
                extra={"operation_id": event.operation_id},
            )
            return
        for child in event.children:
            self._ops.save_options(
                parent.model_copy(
                    update={
                        "operation_id": child.operation_id,
                        "customer": child.customer,
                        "environment": child.environment,
                    }
                )
            )
