"""Emulators for the AWS services moto lacks (DRS, Resource Explorer), and the knobs they share.

Each emulator speaks the service's real wire protocol (rest-json), validated both ways against
botocore's service model (`validation.py`). The knobs (timing and fault injection) live in one
`Knobs` object that the endpoint owns and the admin path `/_sandbox/config` updates.
"""

from __future__ import annotations

import math
import random
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
)


@dataclass(frozen=True)
class Caller:
    """Who is calling: the account moto attributes the credentials to, and the signing region."""

    account: str
    region: str
    access_key: str = ""


OutageMode = Literal["unavailable", "connection"]
REGION_NAME = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")


class SandboxConfig(BaseModel):
    """Timing and fault knobs (estate file `timing:` and `faults:`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Each DRS server launch takes a duration drawn uniformly from [min, max] seconds.
    drs_launch_seconds: tuple[float, float] = (2.0, 6.0)
    # Probability that one server's launch ends FAILED.
    drs_launch_failure_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    # Probability that any emulator call answers ThrottlingException.
    throttle_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    # Probability that a native `aws.drs` event is not delivered (EventBridge is best effort).
    drop_native_event_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    # Seed of the RNG behind every draw above.
    seed: int = 0
    # Regional outage: every call signed for one of these regions fails, for moto's services and
    # the emulators alike, as during a regional outage (the estate seeder, which builds the
    # world, is not affected). Both outage keys appear in the dump only while a region is down.
    regions_down: tuple[str, ...] = ()
    # How such a call fails: "unavailable" answers HTTP 503 with the generic body AWS front ends
    # send ("Service Unavailable"); "connection" drops the connection without an answer.
    outage_mode: OutageMode = "unavailable"

    @field_validator("regions_down", mode="before")
    @classmethod
    def _region_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list | tuple):
            for item in value:
                if not (isinstance(item, str) and REGION_NAME.match(item)):
                    raise ValueError(f"{item!r} is not a region name")
            return tuple(sorted(set(value)))
        return value

    @model_serializer(mode="wrap")
    def _omit_outage_when_none(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if not self.regions_down:
            data.pop("regions_down", None)
            data.pop("outage_mode", None)
        return data

    @field_validator("drs_launch_seconds")
    @classmethod
    def _launch_seconds(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not all(math.isfinite(v) and v >= 0 for v in (low, high)):
            raise ValueError("values must be finite and >= 0")
        if low > high:
            raise ValueError(f"min {low} is greater than max {high}")
        return value


class ConfigError(ValueError):
    """A bad knob value; the message names the key and the value."""


def _child(node: Any, part: str | int) -> tuple[bool, Any]:
    if isinstance(node, Mapping) and part in node:
        return True, node[part]
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return True, node[part]
    return False, None


def describe_validation_error(err: ValidationError, data: Any) -> str:
    """One line per problem, `key.path=value: reason`, with the value as the caller sent it
    (a problem inside a pair such as `drs_launch_seconds` shows the whole pair)."""
    lines = []
    for item in err.errors():
        value: Any = data
        shown: list[str] = []
        for part in item["loc"]:
            found, child = _child(value, part)
            if not found:
                break
            value = child
            shown.append(str(part))
        if not shown:
            value = item.get("input")
        key = ".".join(shown) or ".".join(str(p) for p in item["loc"]) or "<root>"
        reason = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"{key}={value!r}: {reason}")
    return "; ".join(lines)


class Knobs:
    """Thread-safe holder of the current `SandboxConfig` and the seeded RNG that draws from it."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self._lock = threading.Lock()
        self._config = config or SandboxConfig()
        self._rng = random.Random(self._config.seed)

    @property
    def config(self) -> SandboxConfig:
        with self._lock:
            return self._config

    def update(self, changes: Mapping[str, Any]) -> SandboxConfig:
        """Apply a partial update; raises `ConfigError` naming the bad key and value."""
        if not isinstance(changes, Mapping):
            raise ConfigError(f"config must be a JSON object, got {changes!r}")
        with self._lock:
            merged = {**self._config.model_dump(), **changes}
            try:
                new = SandboxConfig.model_validate(merged)
            except ValidationError as err:
                raise ConfigError(describe_validation_error(err, merged)) from None
            if "seed" in changes:
                self._rng = random.Random(new.seed)
            self._config = new
            return new

    def reset(self) -> None:
        with self._lock:
            self._config = SandboxConfig()
            self._rng = random.Random(self._config.seed)

    def chance(self, rate: float) -> bool:
        """True with probability `rate` (never draws when the rate is 0 or 1)."""
        if rate <= 0.0:
            return False
        if rate >= 1.0:
            return True
        with self._lock:
            return self._rng.random() < rate

    def launch_seconds(self) -> float:
        with self._lock:
            low, high = self._config.drs_launch_seconds
            return self._rng.uniform(low, high)

    def throttled(self) -> bool:
        return self.chance(self.config.throttle_rate)

    def launch_fails(self) -> bool:
        return self.chance(self.config.drs_launch_failure_rate)

    def drop_native_event(self) -> bool:
        return self.chance(self.config.drop_native_event_rate)

    def region_down(self, region: str) -> bool:
        """Whether calls signed for `region` fail (the `regions_down` knob)."""
        return region in self.config.regions_down
