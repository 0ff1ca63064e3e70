"""The tagging taxonomy (seed "Tagging Taxonomy") and its validation.

A resource with a missing or invalid DR tag is excluded from a plan and reported, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

from events.schemas import Priority, Strategy

ENABLED = "dr:enabled"
PRIORITY = "dr:priority"
WAVE = "dr:wave"
STRATEGY = "dr:recovery-strategy"
RTO_TARGET = "dr:rto-target"
RPO_TARGET = "dr:rpo-target"
CUSTOMER = "Customer"
ENVIRONMENT = "Environment"
NAME = "Name"
# DRS requires this on an instance it may launch into.
DRS_LAUNCH_INTO = "AWSDRS"
DRS_LAUNCH_INTO_VALUE = "AllowLaunchingIntoThisInstance"
# Tags on drill resources (issue: bubble tests).
BUBBLE_ENABLED = "bubble-test:enabled"
BUBBLE_ID = "bubble-test:id"
BUBBLE_TIMESTAMP = "bubble-test:timestamp"
# On an EC2 launch template a drill switched to its bubble version: the version to restore.
BUBBLE_RESTORE_VERSION = "bubble-test:restore-version"
BUBBLE_TAG_KEYS = (BUBBLE_ENABLED, BUBBLE_ID, BUBBLE_TIMESTAMP, BUBBLE_RESTORE_VERSION)
# A security group of the bubble VPC with this tag (value "drill") is what drilled servers get.
BUBBLE_ROLE = "dr:bubble-role"
BUBBLE_ROLE_DRILL = "drill"

# Tags the orchestrator puts on DRS jobs so results can be traced to an operation without state.
JOB_OPERATION_ID = "dr:operation-id"
JOB_WAVE = "dr:wave"
JOB_CUSTOMER = "dr:customer"
JOB_ENVIRONMENT = "dr:environment"
JOB_OPERATION = "dr:operation"
JOB_ATTEMPT = "dr:attempt"
# DRS jobs also carry: the launch batch, which try of a failed launch, and the quota hold.
JOB_BATCH = "dr:batch"
JOB_LAUNCH_TRY = "dr:launch-try"
JOB_HOLD = "dr:quota-hold"
JOB_HOLD_SERVERS = "dr:quota-hold-servers"

REQUIRED_DR_TAGS = (PRIORITY, WAVE, STRATEGY, RTO_TARGET, RPO_TARGET)
MAX_WAVE = 100
MAX_TARGET_MINUTES = 7 * 24 * 60


@dataclass(frozen=True)
class TagProblem:
    code: str
    tag: str
    message: str


@dataclass(frozen=True)
class DrTags:
    priority: Priority
    wave: int
    strategy: Strategy
    rto_target_minutes: int
    rpo_target_minutes: int


def _positive_int(tags: dict[str, str], key: str, upper: int) -> int | TagProblem:
    raw = tags[key].strip()
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= upper:
        return TagProblem(
            "INVALID_TAG", key, f"{key}={tags[key]!r} is not a whole number from 1 to {upper}"
        )
    return int(raw)


def parse_dr_tags(tags: dict[str, str]) -> DrTags | list[TagProblem]:
    """Parse the `dr:*` tags of one resource; return every problem found, not just the first."""
    problems: list[TagProblem] = []
    if tags.get(ENABLED, "").lower() != "true":
        problems.append(
            TagProblem("NOT_ENABLED", ENABLED, f"{ENABLED} is {tags.get(ENABLED)!r}, not 'true'")
        )
    missing = [key for key in REQUIRED_DR_TAGS if not tags.get(key, "").strip()]
    problems += [
        TagProblem("MISSING_TAG", key, f"required tag {key} is missing") for key in missing
    ]

    priority: Priority | None = None
    if PRIORITY not in missing:
        try:
            priority = Priority(tags[PRIORITY].strip().lower())
        except ValueError:
            allowed = ", ".join(p.value for p in Priority)
            problems.append(
                TagProblem(
                    "INVALID_TAG",
                    PRIORITY,
                    f"{PRIORITY}={tags[PRIORITY]!r} is not one of {allowed}",
                )
            )
    strategy: Strategy | None = None
    if STRATEGY not in missing:
        try:
            strategy = Strategy(tags[STRATEGY].strip().lower())
        except ValueError:
            allowed = ", ".join(s.value for s in Strategy)
            problems.append(
                TagProblem(
                    "INVALID_TAG",
                    STRATEGY,
                    f"{STRATEGY}={tags[STRATEGY]!r} is not one of {allowed}",
                )
            )
    numbers: dict[str, int] = {}
    for key, upper in (
        (WAVE, MAX_WAVE),
        (RTO_TARGET, MAX_TARGET_MINUTES),
        (RPO_TARGET, MAX_TARGET_MINUTES),
    ):
        if key in missing:
            continue
        parsed = _positive_int(tags, key, upper)
        if isinstance(parsed, TagProblem):
            problems.append(parsed)
        else:
            numbers[key] = parsed

    if problems or priority is None or strategy is None:
        return problems
    return DrTags(
        priority=priority,
        wave=numbers[WAVE],
        strategy=strategy,
        rto_target_minutes=numbers[RTO_TARGET],
        rpo_target_minutes=numbers[RPO_TARGET],
    )


def tag_list_to_dict(tags: list[dict[str, str]] | None) -> dict[str, str]:
    """EC2/Tagging-API style `[{Key, Value}]` to a dict."""
    return {t["Key"]: t.get("Value", "") for t in tags or []}


def bubble_network_name(customer: str, environment: str) -> str:
    """`Name` of the isolated bubble-test VPC of a customer environment in its DR region (the
    name the infra stack gives it; drills look it up by this name in the customer's account)."""
    return f"dr-bubble-{customer}-{environment}"
