"""Wiring of the sqlag service: the domain with its AWS adapters, each resource's work made
idempotent (Powertools idempotency, DynamoDB) on operation + resource + step + attempt, and the
handling of a part or a re-check request (resources worked on concurrently, one result each)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
)

from drcore.aws import AwsClients
from drcore.publisher import EventPublisher
from drcore.settings import Settings
from events.schemas import Detail, OperationType, ResourceRef, Strategy, WaveStarted
from events.schemas.models import ResourceCheckRequested

from .adapters import BotoWorkloads, CachedRegistry, CoordinatorOptions, EventResults
from .domain import SqlAgRecovery, Task, Tuning, result_detail
from .ports import Log, Results

STEP = "recover"
IDEMPOTENCY_KEY = "[operation_id, resource.resource_id, step, to_string(attempt)]"


def tasks_of(event: WaveStarted | ResourceCheckRequested) -> list[Task]:
    return [
        Task(
            operation_id=event.operation_id,
            customer=event.customer,
            environment=event.environment,
            operation=OperationType(event.operation),
            wave=event.wave,
            attempt=event.attempt,
            step=STEP,
            resource=ref,
            occurred_at=event.occurred_at,
        )
        for ref in _unique(event.resources)
    ]


def _unique(refs: Sequence[ResourceRef]) -> list[ResourceRef]:
    seen: dict[str, ResourceRef] = {}
    for ref in refs:
        seen.setdefault(ref.resource_id, ref)
    return list(seen.values())


@dataclass
class SqlAgService:
    """What the handler calls."""

    run: Callable[[Task], dict[str, Any]]  # idempotent `SqlAgRecovery.recover`
    results: Results
    log: Log
    idempotency: IdempotencyConfig
    parallel: int = 8

    def begin_batch(self, context: Any) -> None:
        if hasattr(context, "get_remaining_time_in_millis"):
            # Work in flight when an invocation dies becomes retryable after its timeout.
            self.idempotency.register_lambda_context(context)

    def recover_part(self, part: WaveStarted) -> None:
        if part.strategy != Strategy.SQL_AG:
            return
        self._work(tasks_of(part), recheck=False)

    def check(self, request: ResourceCheckRequested) -> None:
        """Publish again a result already reached; leave work in flight alone; start what never
        started (its `WaveStarted` was lost). Never acts twice: the same idempotent work."""
        if request.strategy != Strategy.SQL_AG:
            return
        self._work(tasks_of(request), recheck=True)

    def _work(self, tasks: list[Task], *, recheck: bool) -> None:
        def one(task: Task) -> Detail | Exception | None:
            try:
                return result_detail(self.run(task))
            except IdempotencyAlreadyInProgressError:
                self.log.info(
                    "Resource in flight: its worker publishes the result",
                    extra={"resource_id": task.resource_id, "recheck": recheck},
                )
                return None
            except Exception as error:  # the others still publish; this record is retried
                self.log.exception("Resource work crashed", extra={"resource_id": task.resource_id})
                return error

        with ThreadPoolExecutor(max_workers=max(1, min(self.parallel, len(tasks)))) as pool:
            outcomes = list(pool.map(one, tasks))
        self.results.publish([o for o in outcomes if isinstance(o, Detail)])
        errors = [o for o in outcomes if isinstance(o, Exception)]
        if errors:
            raise errors[0]

    @classmethod
    def build(cls, log: Any, settings: Settings | None = None) -> SqlAgService:
        settings = settings or Settings()
        clients = AwsClients(settings)
        # Reads in the primary region (which may be the region in outage) give up quickly.
        primary_clients = clients.with_settings(
            settings.model_copy(update={"max_attempts": settings.primary_region_retries + 1})
        )
        recovery = SqlAgRecovery(
            registry=CachedRegistry(clients.client("ssm")),
            workloads=BotoWorkloads(
                clients,
                primary_clients,
                settings.sqlag_poll_seconds,
                settings.sqlag_command_timeout_seconds,
            ),
            options=CoordinatorOptions(clients.client("dynamodb"), settings.operations_table),
            log=log,
            tuning=Tuning(
                command_timeout_seconds=settings.sqlag_command_timeout_seconds,
                sync_wait_seconds=settings.sqlag_sync_wait_seconds,
                sync_poll_seconds=settings.sqlag_poll_seconds,
            ),
            sleep=_sleep,
        )
        persistence = DynamoDBPersistenceLayer(
            table_name=settings.idempotency_table, boto3_client=clients.client("dynamodb")
        )
        config = IdempotencyConfig(
            event_key_jmespath=IDEMPOTENCY_KEY,
            expires_after_seconds=settings.idempotency_ttl_seconds,
            raise_on_no_idempotency_key=True,
        )

        @idempotent_function(
            data_keyword_argument="task",
            persistence_store=persistence,
            config=config,
            key_prefix="sqlag-resource",
        )
        def recover(task: Task) -> dict[str, Any]:
            return recovery.recover(task)

        return cls(
            run=lambda task: recover(task=task),
            results=EventResults(EventPublisher(clients.client("events"), settings.bus_name)),
            log=log,
            idempotency=config,
            parallel=settings.sqlag_parallel,
        )


def _sleep(seconds: float) -> None:
    # Failback waits for SQL Server to catch up (not an AWS retry: those are botocore's).
    import time

    time.sleep(seconds)
