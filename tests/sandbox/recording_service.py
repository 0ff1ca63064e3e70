"""A handler for runtime tests: records each record's body; fails those that ask to fail."""

from __future__ import annotations

import json
import threading
from typing import Any

SEEN: list[dict[str, Any]] = []
CONTEXTS: list[Any] = []
_lock = threading.Lock()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    failures = []
    with _lock:
        CONTEXTS.append(context)
        for record in event["Records"]:
            body = json.loads(record["body"])
            SEEN.append(body)
            if body.get("fail"):
                failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
