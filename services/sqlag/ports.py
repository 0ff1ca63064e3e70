"""What the sqlag domain reads and calls: value types and the ports `adapters.py` implements.

No AWS here. A `Workload` is EC2 and SSM Run Command of one workload account in one region; `Dns`
is Route 53 of that account; the others are the orchestration account's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from drcore.registry import CustomerEntry
from events.schemas import Detail

# SSM command invocation statuses (GetCommandInvocation).
SUCCESS = "Success"
TERMINAL_STATUSES = frozenset({"Success", "Cancelled", "TimedOut", "Failed", "Cancelling"})
RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "InternalServerException",
        "ServiceUnavailable",
        "EndpointError",
        "PriorRequestNotComplete",
        "503",
    }
)


class AwsError(Exception):
    """An AWS call that failed, with AWS's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE_CODES


@dataclass(frozen=True)
class Instance:
    instance_id: str
    region: str
    state: str
    private_ip: str | None
    vpc_id: str | None
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.tags.get("Name", self.instance_id)


@dataclass(frozen=True)
class Invocation:
    """One command on one instance (GetCommandInvocation / ListCommandInvocations)."""

    command_id: str
    instance_id: str
    status: str
    comment: str = ""
    response_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    status_details: str = ""

    @property
    def succeeded(self) -> bool:
        return self.status == SUCCESS


@dataclass(frozen=True)
class ARecord:
    values: tuple[str, ...]
    ttl: int


class Workload(Protocol):
    """EC2 and SSM Run Command of one workload account in one region."""

    region: str

    def instance(self, instance_id: str) -> Instance | None: ...

    def instances_tagged(
        self, customer: str, environment: str, tags: Mapping[str, str]
    ) -> list[Instance]: ...

    def vpc_name(self, vpc_id: str) -> str | None: ...

    def send_command(
        self, instance_id: str, commands: Sequence[str], comment: str, timeout_seconds: int
    ) -> str: ...

    def wait_command(self, command_id: str, instance_id: str) -> Invocation: ...

    def find_command(
        self, instance_id: str, comment: str, since: datetime
    ) -> Invocation | None: ...


class Dns(Protocol):
    """Route 53 of one workload account."""

    def a_record(self, zone_id: str, name: str) -> ARecord | None: ...

    def upsert_a(
        self, zone_id: str, name: str, values: Sequence[str], ttl: int, comment: str
    ) -> str: ...

    def wait_in_sync(self, change_id: str) -> None: ...


class Workloads(Protocol):
    def get(self, entry: CustomerEntry, region: str, *, primary: bool = False) -> Workload: ...

    def dns(self, entry: CustomerEntry) -> Dns: ...


class Registry(Protocol):
    def customer(self, name: str) -> CustomerEntry | None: ...


class Options(Protocol):
    def allow_data_loss(self, operation_id: str) -> bool: ...


class Results(Protocol):
    def publish(self, details: Sequence[Detail]) -> None: ...


class Log(Protocol):
    def info(self, msg: str, *args: Any, **kwargs: Any) -> None: ...

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None: ...

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None: ...
