"""Wiring: the eks service's settings and the domain assembled with its adapters, parts made
idempotent (Powertools, DynamoDB persistence)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
)
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from drcore.aws import AwsClients
from drcore.idempotency import idempotent_parts
from drcore.publisher import EventPublisher
from drcore.settings import Settings
from events.schemas import WaveStarted
from events.schemas.models import ResourceCheckRequested

from .adapters import BotoWorkloads, DynamoLedger, EventResults, RegistryReader
from .domain import EksRecovery


class EksSettings(BaseSettings):
    """The eks service's own settings (environment prefix `DR_EKS_`)."""

    model_config = SettingsConfigDict(env_prefix="DR_EKS_", extra="ignore", frozen=True)

    # Seconds between Route 53 answer checks after a flip: a health check's status changes after
    # failure threshold x request interval (30-90 s with Route 53's defaults).
    dns_backoff: tuple[float, ...] = (0, 5, 10, 15, 20, 30, 30)
    kubernetes_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # How long the per-resource records (results, flip claims) are kept.
    record_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=3600)


@dataclass
class EksService:
    """What the handler calls: the domain, with wave parts made idempotent."""

    domain: EksRecovery
    recover_part: Callable[[WaveStarted], dict[str, Any]]
    idempotency: IdempotencyConfig

    def check(self, request: ResourceCheckRequested) -> dict[str, Any]:
        # Not idempotent on purpose: every reconciler request looks again (the ledger's result
        # and flip claim keep it from acting twice).
        return self.domain.check(request)

    def begin_batch(self, context: Any) -> None:
        if hasattr(context, "get_remaining_time_in_millis"):
            # An in-progress part that crashed becomes retryable when the invocation times out.
            self.idempotency.register_lambda_context(context)

    @classmethod
    def build(
        cls, log: Any, settings: Settings | None = None, own: EksSettings | None = None
    ) -> EksService:
        settings = settings or Settings()
        own = own or EksSettings()
        clients = AwsClients(settings)
        dynamodb = clients.client("dynamodb")
        domain = EksRecovery(
            registry=RegistryReader(clients.client("ssm")),
            workloads=BotoWorkloads(clients, own.kubernetes_timeout_seconds),
            ledger=DynamoLedger(dynamodb, settings.operations_table),
            results=EventResults(EventPublisher(clients.client("events"), settings.bus_name)),
            log=log,
            dns_backoff=own.dns_backoff,
            record_ttl_seconds=own.record_ttl_seconds,
        )
        persistence = DynamoDBPersistenceLayer(
            table_name=settings.idempotency_table, boto3_client=dynamodb
        )
        recover, config = idempotent_parts(
            domain.recover_part, persistence, settings, key_prefix="eks-part"
        )
        return cls(domain=domain, recover_part=recover, idempotency=config)
