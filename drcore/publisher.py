"""Publishing events on the orchestration bus.

PutEvents takes at most 10 entries per call and each entry must stay under 256 KB. Entries that
fail (`FailedEntryCount`) are resent alone; entries that succeeded are never resent. Anything too
large for one entry is the caller's to split or to store (claim check, see `drcore.state`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from events.schemas import Detail, Source

MAX_ENTRIES_PER_CALL = 10
MAX_ENTRY_BYTES = 256 * 1024
MAX_CALL_BYTES = 256 * 1024
RESEND_ATTEMPTS = 5
RESEND_BASE_DELAY = 0.1


class EventTooLarge(ValueError):
    """An event exceeds the EventBridge entry size limit."""


class PublishFailed(RuntimeError):
    """Some entries could not be published after every resend."""

    def __init__(self, failures: list[dict[str, Any]]) -> None:
        codes = sorted({f.get("ErrorCode", "?") for f in failures})
        super().__init__(f"{len(failures)} event(s) not published: {', '.join(codes)}")
        self.failures = failures


@dataclass(frozen=True)
class Outgoing:
    source: Source
    detail: Detail
    resources: tuple[str, ...] = ()


def entry_size(entry: dict[str, Any]) -> int:
    """Entry size as EventBridge counts it (UTF-8 of source, detail-type, detail, resources)."""
    size = len(entry["Source"].encode()) + len(entry["DetailType"].encode())
    size += len(entry["Detail"].encode())
    size += sum(len(r.encode()) for r in entry.get("Resources", []))
    return size


class EventPublisher:
    def __init__(self, events_client: Any, bus_name: str, sleep: Any = time.sleep) -> None:
        self._client = events_client
        self._bus_name = bus_name
        self._sleep = sleep

    def to_entry(self, item: Outgoing) -> dict[str, Any]:
        model = type(item.detail)
        if item.source not in model.SOURCES:
            raise ValueError(f"{model.DETAIL_TYPE} may not be published by {item.source}")
        entry: dict[str, Any] = {
            "Source": item.source.value,
            "DetailType": model.DETAIL_TYPE.value,
            "Detail": item.detail.model_dump_json(),
            "EventBusName": self._bus_name,
        }
        if item.resources:
            entry["Resources"] = list(item.resources)
        size = entry_size(entry)
        if size > MAX_ENTRY_BYTES:
            raise EventTooLarge(
                f"{model.DETAIL_TYPE} for operation {item.detail.operation_id} is {size} bytes "
                f"(limit {MAX_ENTRY_BYTES}); split it or store it and send the key"
            )
        return entry

    def publish(self, source: Source, details: Iterable[Detail]) -> int:
        return self.publish_many([Outgoing(source, d) for d in details])

    def publish_many(self, items: Sequence[Outgoing]) -> int:
        """Publish all items; returns the number of PutEvents calls made."""
        entries = [self.to_entry(item) for item in items]
        calls = 0
        for chunk in _chunks(entries):
            calls += self._put_with_resend(chunk)
        return calls

    def _put_with_resend(self, entries: list[dict[str, Any]]) -> int:
        pending = entries
        calls = 0
        for attempt in range(RESEND_ATTEMPTS):
            response = self._client.put_events(Entries=pending)
            calls += 1
            if not response.get("FailedEntryCount"):
                return calls
            results = response["Entries"]
            failed = [e for e, r in zip(pending, results, strict=True) if r.get("ErrorCode")]
            if attempt == RESEND_ATTEMPTS - 1:
                raise PublishFailed([r for r in results if r.get("ErrorCode")])
            pending = failed
            self._sleep(RESEND_BASE_DELAY * 2**attempt)
        return calls


def _chunks(entries: list[dict[str, Any]]) -> Iterable[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    chunk_bytes = 0
    for entry in entries:
        size = entry_size(entry)
        if chunk and (len(chunk) == MAX_ENTRIES_PER_CALL or chunk_bytes + size > MAX_CALL_BYTES):
            yield chunk
            chunk, chunk_bytes = [], 0
        chunk.append(entry)
        chunk_bytes += size
    if chunk:
        yield chunk


def detail_json(detail: Detail) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(detail.model_dump_json())
    return loaded
