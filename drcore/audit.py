"""The event archive and the audit destination replays go to.

Every orchestration event is archived. An audit replays one operation's events into the audit
queue through a rule that matches only replayed events (`replay-name` exists), named in the
replay's `FilterArns`, so no recovery rule ever sees them (those exclude replays too).
"""

from __future__ import annotations

from typing import Any

ARCHIVE_NAME = "dr-orchestration-archive"
AUDIT_RULE_NAME = "dr-audit-replays"
AUDIT_QUEUE_NAME = "dr-audit"


def audit_rule_pattern() -> dict[str, Any]:
    return {"replay-name": [{"exists": True}]}
