"""Turning SQS records into typed events for a service's domain code.

Every service consumes its queue the same way: an SQS batch (from EventBridge rules, or the
service's own delayed follow-up messages), processed with Powertools batch processing so that
only failed records are redelivered. Replayed archive events are refused here as well as by the
rules' patterns.

A malformed record can never succeed, so it is not retried: it is sent straight to the service's
dead-letter queue with the reason as a message attribute (and logged). If that send fails, the
record fails instead and SQS's redrive policy moves it there after `max_receive_count`
deliveries. Errors in the domain code fail only their record, which SQS redelivers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import BaseModel, ValidationError

from events.schemas import MODEL_BY_DETAIL_TYPE, Detail, EventEnvelope

EventHandler = Callable[[Any, EventEnvelope], None]
MessageHandler = Callable[[Any], None]
# Many events of the same kinds at once: every record of the batch succeeds or fails together.
ManyHandler = Callable[[list[tuple[Any, EventEnvelope]]], None]
DeadLetter = Callable[[SQSRecord, str], bool]
DLQ_SUFFIX = "-dlq"


class SqsDeadLetter:
    """Sends a record to `<queue>-dlq` (the naming of `ServiceSpec.dlq_name`) with its reason."""

    def __init__(self) -> None:
        self._urls: dict[str, str] = {}
        self._client: Any = None

    def __call__(self, record: SQSRecord, reason: str) -> bool:
        import boto3

        try:
            _, _, _, region, account, name = record.event_source_arn.split(":", 5)
            if self._client is None:
                self._client = boto3.client("sqs", region_name=region)
            key = f"{account}:{name}"
            if key not in self._urls:
                self._urls[key] = self._client.get_queue_url(
                    QueueName=name + DLQ_SUFFIX, QueueOwnerAWSAccountId=account
                )["QueueUrl"]
            self._client.send_message(
                QueueUrl=self._urls[key],
                MessageBody=record.body,
                MessageAttributes={
                    "reason": {"DataType": "String", "StringValue": reason[:1000]},
                    "source_queue": {"DataType": "String", "StringValue": name},
                },
            )
            return True
        except Exception:  # fall back to SQS's own redrive
            return False


class MalformedRecord(ValueError):
    """A record that can never be processed: it goes to the dead-letter queue."""


@dataclass(frozen=True)
class _Route:
    model: type[BaseModel]
    handle: Callable[[Any, Any], None]


class EventRouter:
    """Routes each record to the function registered for its detail-type (or message kind)."""

    def __init__(self, logger: Logger, dead_letter: DeadLetter | None = None) -> None:
        self._logger = logger
        self._dead_letter: DeadLetter | None = dead_letter or SqsDeadLetter()
        self._events: dict[str, _Route] = {}
        self._messages: dict[str, _Route] = {}
        self._many: dict[str, tuple[type[BaseModel], ManyHandler]] = {}

    def on(self, detail_type: str, model: type[BaseModel] | None = None) -> Callable[[Any], Any]:
        """Register `fn(detail, envelope)` for a detail-type (model: the catalog's by default)."""
        chosen = model or MODEL_BY_DETAIL_TYPE[detail_type]

        def register(fn: EventHandler) -> EventHandler:
            self._events[detail_type] = _Route(chosen, fn)
            return fn

        return register

    def on_many(self, *detail_types: str) -> Callable[[ManyHandler], ManyHandler]:
        """Register `fn([(detail, envelope), ...])` for these detail-types: the valid, live
        records of a batch with one of them are handed over together (fewer reads and writes
        than one by one). If `fn` raises, all of them fail and are redelivered, so `fn` must be
        idempotent. Anything else (replays, malformed records) takes the one-by-one path."""

        def register(fn: ManyHandler) -> ManyHandler:
            for detail_type in detail_types:
                self._many[detail_type] = (MODEL_BY_DETAIL_TYPE[detail_type], fn)
            return fn

        return register

    def on_message(self, kind: str, model: type[BaseModel]) -> Callable[[Any], Any]:
        """Register `fn(message)` for a service's own follow-up message of this `kind`."""

        def register(fn: MessageHandler) -> MessageHandler:
            self._messages[kind] = _Route(model, lambda message, _unused: fn(message))
            return fn

        return register

    def handle_batch(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        records = event.get("Records", [])
        grouped: dict[int, tuple[ManyHandler, list[tuple[str, Any, EventEnvelope]]]] = {}
        single: list[dict[str, Any]] = []
        for raw in records:
            taken = self._many_item(raw) if self._many else None
            if taken is None:
                single.append(raw)
                continue
            fn, detail, envelope = taken
            grouped.setdefault(id(fn), (fn, []))[1].append((raw["messageId"], detail, envelope))
        failures: list[dict[str, str]] = []
        if single:
            # One processor per batch: it holds per-batch state, and workers may run concurrently.
            response = process_partial_response(
                event={**event, "Records": single},
                record_handler=self._record,
                processor=BatchProcessor(
                    event_type=EventType.SQS, raise_on_entire_batch_failure=not grouped
                ),
                context=context,
            )
            failures += [
                {"itemIdentifier": str(f["itemIdentifier"])} for f in response["batchItemFailures"]
            ]
        for fn, items in grouped.values():
            try:
                fn([(detail, envelope) for _, detail, envelope in items])
            except Exception as error:  # redelivered (e.g. RetryLater: a predecessor is missing)
                self._logger.warning(
                    "Records failed together: redelivered",
                    extra={"records": len(items), "error": f"{type(error).__name__}: {error}"},
                )
                failures += [{"itemIdentifier": message_id} for message_id, _, _ in items]
        return {"batchItemFailures": failures}

    def _many_item(self, raw: dict[str, Any]) -> tuple[ManyHandler, Any, EventEnvelope] | None:
        """The handler, detail and envelope of a record that goes with others, else None."""
        try:
            body = json.loads(raw.get("body", ""))
            if not isinstance(body, dict) or body.get("detail-type") not in self._many:
                return None
            envelope = EventEnvelope.model_validate(body)
            if envelope.is_replay:
                return None
            model, fn = self._many[envelope.detail_type]
            return fn, model.model_validate(envelope.detail), envelope
        except (ValueError, TypeError):  # not JSON, not valid: the one-by-one path says why
            return None

    def without_dead_letter(self) -> EventRouter:
        """Malformed records fail (and are redelivered) instead of going to the DLQ at once."""
        self._dead_letter = None
        return self

    def _record(self, record: SQSRecord) -> None:
        try:
            self._dispatch(record)
        except _Rejected as rejected:
            if self._dead_letter is not None and self._dead_letter(record, rejected.reason):
                return
            raise MalformedRecord(rejected.reason) from None

    def _dispatch(self, record: SQSRecord) -> None:
        try:
            body = json.loads(record.body)
        except json.JSONDecodeError as error:
            self._reject(record, f"body is not JSON: {error}")
        if not isinstance(body, dict):
            self._reject(record, "body is not a JSON object")
        if "detail-type" in body:
            self._event(record, body)
        elif "kind" in body:
            self._message(record, body)
        else:
            self._reject(record, "neither an EventBridge event nor a known message")

    def _event(self, record: SQSRecord, body: dict[str, Any]) -> None:
        try:
            envelope = EventEnvelope.model_validate(body)
        except ValidationError as error:
            self._reject(record, f"not an EventBridge event: {_first_error(error)}")
        if envelope.is_replay:
            # Replays are for audit; they must never trigger an action.
            self._logger.warning(
                "Refusing replayed event",
                extra={"replay_name": envelope.replay_name, "detail_type": envelope.detail_type},
            )
            return
        route = self._events.get(envelope.detail_type)
        if route is None:
            self._reject(record, f"no handler for detail-type {envelope.detail_type!r}")
        try:
            detail = route.model.model_validate(envelope.detail)
        except ValidationError as error:
            self._reject(record, f"invalid {envelope.detail_type} detail: {_first_error(error)}")
        if isinstance(detail, Detail):
            self._logger.append_keys(operation_id=detail.operation_id)
        route.handle(detail, envelope)

    def _message(self, record: SQSRecord, body: dict[str, Any]) -> None:
        route = self._messages.get(str(body["kind"]))
        if route is None:
            self._reject(record, f"no handler for message kind {body['kind']!r}")
        try:
            message = route.model.model_validate(body)
        except ValidationError as error:
            self._reject(record, f"invalid {body['kind']} message: {_first_error(error)}")
        route.handle(message, None)

    def _reject(self, record: SQSRecord, reason: str) -> NoReturn:
        self._logger.error(
            "Malformed record",
            extra={"reason": reason, "message_id": record.message_id, "body": record.body[:2000]},
        )
        raise _Rejected(reason)


class _Rejected(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"]) or "(root)"
    return f"{location}: {first['msg']} (got {first.get('input')!r})"[:500]
