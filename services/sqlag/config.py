"""The module's configuration: `dr:sqlag:*` tags on the AG's primary replica instance.

| tag                      | value                                                          |
|--------------------------|----------------------------------------------------------------|
| `dr:sqlag:ag-name`       | the availability group's name (letters, digits, `_`, `-`)       |
| `dr:sqlag:dr-replica`    | the DR replica in the DR region: its `Name` tag or instance id  |
| `dr:sqlag:listener`      | DNS name clients connect to (an A record), moved on failover    |
| `dr:sqlag:hosted-zone`   | the Route 53 hosted zone id holding that record                 |
| `dr:sqlag:clone`         | drills only: the clone instance in the bubble network (Name or id) |

The DR replica carries `dr:sqlag:ag-name` too and `dr:sqlag:primary-replica` (the primary
replica's `Name`): when the primary region does not answer, the configuration is read there.
A bad or missing value is reported with the tag and the value; nothing is guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .commands import AG_NAME_PATTERN

PREFIX = "dr:sqlag:"
AG_NAME = "dr:sqlag:ag-name"
DR_REPLICA = "dr:sqlag:dr-replica"
LISTENER = "dr:sqlag:listener"
HOSTED_ZONE = "dr:sqlag:hosted-zone"
CLONE = "dr:sqlag:clone"
PRIMARY_REPLICA = "dr:sqlag:primary-replica"
KNOWN = (AG_NAME, DR_REPLICA, LISTENER, HOSTED_ZONE, CLONE, PRIMARY_REPLICA)

INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,17}$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_AG = re.compile(AG_NAME_PATTERN)
_FQDN = re.compile(
    r"^(?=.{1,253}\.?$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}\.?$"
)
_ZONE = re.compile(r"^(/hostedzone/)?[A-Z0-9]{1,32}$")

MISSING_MODULE_TAG = "MISSING_MODULE_TAG"
INVALID_MODULE_TAG = "INVALID_MODULE_TAG"


@dataclass(frozen=True)
class Problem:
    code: str
    tag: str
    message: str


@dataclass(frozen=True)
class InstanceRef:
    """An instance named by a tag: by id, or by its `Name` tag."""

    value: str

    @property
    def is_id(self) -> bool:
        return bool(INSTANCE_ID.fullmatch(self.value))


@dataclass(frozen=True)
class SqlAgConfig:
    ag_name: str
    dr_replica: InstanceRef
    listener: str | None = None
    hosted_zone: str | None = None
    clone: InstanceRef | None = None

    @property
    def zone_id(self) -> str | None:
        return self.hosted_zone.removeprefix("/hostedzone/") if self.hosted_zone else None


def _instance(tags: dict[str, str], key: str, problems: list[Problem]) -> InstanceRef | None:
    raw = tags.get(key)
    if raw is None:
        return None
    value = raw.strip()
    if INSTANCE_ID.fullmatch(value) or NAME.fullmatch(value):
        return InstanceRef(value)
    problems.append(
        Problem(
            INVALID_MODULE_TAG,
            key,
            f"{key}={raw!r} is neither an instance id (i-...) nor a Name tag value",
        )
    )
    return None


def parse_config(
    tags: dict[str, str], *, dr_replica: str | None = None
) -> SqlAgConfig | list[Problem]:
    """The module's tags of one resource; every problem found, not only the first.

    `dr_replica`: the DR replica when it is already known (configuration read from the DR
    replica's own tags, which name the primary instead)."""
    problems: list[Problem] = []
    ag = tags.get(AG_NAME)
    if ag is None:
        problems.append(Problem(MISSING_MODULE_TAG, AG_NAME, f"{AG_NAME} is missing"))
    elif not _AG.fullmatch(ag.strip()):
        problems.append(
            Problem(
                INVALID_MODULE_TAG,
                AG_NAME,
                f"{AG_NAME}={ag!r} is not an availability group name ({AG_NAME_PATTERN})",
            )
        )
    replica = InstanceRef(dr_replica) if dr_replica else _instance(tags, DR_REPLICA, problems)
    if replica is None and not any(p.tag == DR_REPLICA for p in problems):
        problems.append(Problem(MISSING_MODULE_TAG, DR_REPLICA, f"{DR_REPLICA} is missing"))
    listener = tags.get(LISTENER)
    zone = tags.get(HOSTED_ZONE)
    if listener is not None and not _FQDN.fullmatch(listener.strip()):
        problems.append(
            Problem(INVALID_MODULE_TAG, LISTENER, f"{LISTENER}={listener!r} is not a DNS name")
        )
    if zone is not None and not _ZONE.fullmatch(zone.strip()):
        problems.append(
            Problem(
                INVALID_MODULE_TAG, HOSTED_ZONE, f"{HOSTED_ZONE}={zone!r} is not a hosted zone id"
            )
        )
    if (listener is None) != (zone is None):
        missing, present = (HOSTED_ZONE, LISTENER) if zone is None else (LISTENER, HOSTED_ZONE)
        problems.append(
            Problem(MISSING_MODULE_TAG, missing, f"{present} is set but {missing} is missing")
        )
    clone = _instance(tags, CLONE, problems)
    unknown = sorted(k for k in tags if k.startswith(PREFIX) and k not in KNOWN)
    problems += [
        Problem(INVALID_MODULE_TAG, key, f"{key} is not a tag of the sqlag module")
        for key in unknown
    ]
    if problems or ag is None or replica is None:
        return problems
    return SqlAgConfig(
        ag_name=ag.strip(),
        dr_replica=replica,
        listener=listener.strip().rstrip(".").lower() if listener else None,
        hosted_zone=zone.strip() if zone else None,
        clone=clone,
    )


def describe(problems: list[Problem]) -> str:
    return "; ".join(p.message for p in problems)
