"""What the coordinator needs from the outside world (adapters.py implements them for AWS; tests
use in-memory fakes), and the null implementations used when a port is not wired."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel

from drcore.plan import Plan
from drcore.registry import CustomerEntry
from drcore.state import OperationState
from events.schemas import Detail, Source

from .hooks import HookConfig, HookRef, HookSpec, HookStartFailed, HookStatus, WorkloadTarget
from .records import (
    ApprovalRefusal,
    LockRecord,
    OperationRecord,
    ResourceRecord,
    ResourceResult,
    ResultOutcome,
    WavePhase,
    WaveRecord,
)
from .regional import ChildOutcome


class Repository(Protocol):
    """Storage operations of the coordinator. Every `expect` is a condition on the current state,
    every `where` an equality condition on (dotted) attributes, None meaning absent; a method that
    returns bool returns False when its condition does not hold (nothing written)."""

    def get_operation(self, operation_id: str) -> OperationRecord | None: ...

    def create_operation(self, record: OperationRecord) -> bool:
        """Put the operation item only if none exists for that id."""
        ...

    def update_operation(
        self,
        operation_id: str,
        expect: Iterable[OperationState],
        changes: Mapping[str, Any],
        where: Mapping[str, Any] | None = None,
    ) -> bool:
        """Set `changes` (OperationRecord field names; None removes) if the state is in `expect`."""
        ...

    def acquire_lock(self, lock: LockRecord) -> LockRecord:
        """Take the lock unless another operation holds it; returns the holder after the call
        (== `lock`'s operation when taken or already held by that same operation)."""
        ...

    def release_lock(self, customer: str, environment: str, operation_id: str) -> bool:
        """Delete the lock only if `operation_id` holds it."""
        ...

    def load_plan(self, operation_id: str) -> Plan | None: ...

    def put_plan_items(
        self,
        operation_id: str,
        waves: Sequence[WaveRecord],
        resources: Sequence[ResourceRecord],
        overwrite: bool,
    ) -> None:
        """Write wave and resource items (batched when `overwrite`, else only absent items)."""
        ...

    def list_waves(self, operation_id: str) -> list[WaveRecord]:
        """All waves of the operation, ordered by number (strongly consistent)."""
        ...

    def get_wave(self, operation_id: str, number: int) -> WaveRecord | None: ...

    def update_wave(
        self,
        operation_id: str,
        number: int,
        expect: Iterable[WavePhase],
        changes: Mapping[str, Any],
        where: Mapping[str, Any] | None = None,
    ) -> bool: ...

    def put_resources(self, operation_id: str, resources: Sequence[ResourceRecord]) -> None:
        """Overwrite resource items (batched); only safe before any result can exist for them."""
        ...

    def start_resources(
        self, operation_id: str, resource_ids: Sequence[str], started_at: datetime
    ) -> None:
        """Move each resource PENDING -> RECOVERING; resources in another state are left alone."""
        ...

    def list_resources(self, operation_id: str) -> list[ResourceRecord]: ...

    def retry_resources(
        self, operation_id: str, resource_ids: Sequence[str], attempt: int, started_at: datetime
    ) -> None:
        """Move each resource FAILED (attempt below `attempt`) -> RECOVERING at `attempt`,
        clearing its previous result."""
        ...

    def mark_checked(self, operation_id: str, resource_ids: Sequence[str], at: datetime) -> None:
        """Note that the resources' owner was asked to re-check them (`checks` + 1)."""
        ...

    def record_result(self, result: ResourceResult) -> ResultOutcome:
        """In one transaction: the resource PENDING/RECOVERING -> RECOVERED/FAILED (same wave and
        strategy, completed after its attempt started) and the wave's recovered/failed counter
        + 1 (wave RECOVERING)."""
        ...

    def record_results(self, results: Sequence[ResourceResult]) -> list[ResultOutcome]:
        """`record_result` for many (in order): the results of one wave move together with the
        wave's counters, each resource under its own condition, each counted once. APPLIED:
        counted and the wave still misses results; COMPLETING: counted and the wave may be
        complete (or that could not be told without reading it)."""
        ...

    def append_refusal(self, operation_id: str, number: int, refusal: ApprovalRefusal) -> None: ...

    def record_child_outcome(self, parent_id: str, child_id: str, outcome: ChildOutcome) -> None:
        """Set the outcome of one child on a regional parent (idempotent)."""
        ...

    def put_hook_ref(self, execution_id: str, ref: HookRef) -> None: ...

    def get_hook_ref(self, execution_id: str) -> HookRef | None: ...

    def mark_active(self, operation_id: str, at: datetime) -> None:
        """List the operation among the active ones (what the reconciler looks at)."""
        ...

    def clear_active(self, operation_id: str) -> None: ...

    def list_active(self) -> list[tuple[str, datetime]]:
        """Active operations and when each was listed."""
        ...


class Publisher(Protocol):
    def publish(self, source: Source, details: Iterable[Detail]) -> int: ...


class MetricsSink(Protocol):
    def record(self, name: str, unit: str, value: float, dimensions: Mapping[str, str]) -> None: ...


class LogSink(Protocol):
    """What the domain needs of a logger (stdlib `logging.Logger` and Powertools `Logger` fit)."""

    def info(self, msg: str, *, extra: Mapping[str, object] | None = None) -> Any: ...

    def warning(self, msg: str, *, extra: Mapping[str, object] | None = None) -> Any: ...


class Registry(Protocol):
    """The customer registry (drcore.registry entries)."""

    def customer(self, name: str) -> CustomerEntry | None: ...

    def customers(self) -> list[CustomerEntry]: ...


class HookConfigs(Protocol):
    def get(self, customer: str, environment: str) -> HookConfig | None:
        """None when the environment has no hooks; `HookConfigInvalid` when its configuration
        cannot be read (the operation is refused rather than run without its hooks)."""
        ...


class HookRunner(Protocol):
    """SSM Automation in the workload account."""

    def start(
        self,
        target: WorkloadTarget,
        spec: HookSpec,
        parameters: Mapping[str, list[str]],
        token: str,
    ) -> str:
        """Start (idempotent on `token`) and return the execution id; `HookStartFailed` when SSM
        refuses the document or its parameters."""
        ...

    def status(self, target: WorkloadTarget, execution_id: str) -> HookStatus | None:
        """None when SSM does not know the execution."""
        ...

    def stop(self, target: WorkloadTarget, execution_id: str) -> None: ...


class Notifier(Protocol):
    """Approval notifications (SNS)."""

    def notify(self, subject: str, message: str, attributes: Mapping[str, str]) -> None: ...


class SelfScheduler(Protocol):
    """Delayed messages to the coordinator's own queue."""

    def schedule(self, message: BaseModel, delay_seconds: int) -> None: ...


class NoMetrics:
    def record(self, name: str, unit: str, value: float, dimensions: Mapping[str, str]) -> None:
        return None


class NoHooks:
    """No hook configuration anywhere (and no way to run one)."""

    def get(self, customer: str, environment: str) -> HookConfig | None:
        return None

    def start(
        self,
        target: WorkloadTarget,
        spec: HookSpec,
        parameters: Mapping[str, list[str]],
        token: str,
    ) -> str:
        raise HookStartFailed("hooks cannot run here")

    def status(self, target: WorkloadTarget, execution_id: str) -> HookStatus | None:
        return None

    def stop(self, target: WorkloadTarget, execution_id: str) -> None:
        return None


class NoNotifier:
    def notify(self, subject: str, message: str, attributes: Mapping[str, str]) -> None:
        return None


class NoScheduler:
    def schedule(self, message: BaseModel, delay_seconds: int) -> None:
        return None
