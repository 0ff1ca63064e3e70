"""Wiring of the managed service: settings, adapters, the domain, and idempotent wave parts."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
)
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from drcore.aws import AwsClients
from drcore.idempotency import idempotent_parts
from drcore.publisher import EventPublisher
from drcore.settings import Settings
from events.schemas import WaveStarted

from .adapters import BotoWorkloads, CachedRegistry, DynamoLedger, EventResults, OntapEndpoints
from .domain import ManagedRecovery


class ManagedSettings(BaseSettings):
    """The module's own settings (prefix `DR_MANAGED_`)."""

    model_config = SettingsConfigDict(env_prefix="DR_MANAGED_", extra="ignore", frozen=True)

    # A claimed resource whose worker died is taken over after this long (seconds).
    lease_seconds: int = Field(default=300, ge=10, le=3600)
    # A resource AWS is still working on (EFS ending a replication) is held this long, then the
    # reconciler's next check takes it over (seconds).
    pending_seconds: int = Field(default=60, ge=5, le=3600)
    # FSx for NetApp ONTAP: the REST API's base URL, from the DR file system's management
    # endpoint (`{management_dns}`, `{management_ip}`, `{file_system_id}`, `{region}`).
    ontap_url_template: str = Field(default="https://{management_dns}", min_length=8)
    # FSx management endpoints present ONTAP's own certificate: verified unless turned off.
    ontap_verify_tls: bool = True
    ontap_timeout_seconds: float = Field(default=30, gt=0, le=300)
    # A SnapMirror break / resync job is polled this often, this many times, before the
    # resource is held and left to the reconciler's next check.
    ontap_job_polls: int = Field(default=20, ge=0, le=600)
    ontap_poll_seconds: float = Field(default=1.0, ge=0, le=60)

    @field_validator("ontap_url_template")
    @classmethod
    def _template(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError(f"ontap_url_template {value!r} must start with https:// or http://")
        try:
            value.format(management_dns="x", management_ip="x", file_system_id="x", region="x")
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(
                f"ontap_url_template {value!r} uses an unknown field: {error}"
            ) from None
        return value


@dataclass
class ManagedService:
    """What the handler calls."""

    domain: ManagedRecovery
    recover_part: Callable[[WaveStarted], dict[str, Any]]
    idempotency: IdempotencyConfig

    def begin_batch(self, context: Any) -> None:
        if hasattr(context, "get_remaining_time_in_millis"):
            self.idempotency.register_lambda_context(context)

    @classmethod
    def build(
        cls, log: Any, settings: Settings | None = None, own: ManagedSettings | None = None
    ) -> ManagedService:
        settings = settings or Settings()
        own = own or ManagedSettings()
        clients = AwsClients(settings)
        dynamodb = clients.client("dynamodb")
        domain = ManagedRecovery(
            registry=CachedRegistry(clients.client("ssm")),
            workloads=BotoWorkloads(clients),
            ledger=DynamoLedger(dynamodb, settings.operations_table),
            results=EventResults(EventPublisher(clients.client("events"), settings.bus_name)),
            log=log,
            lease_seconds=own.lease_seconds,
            pending_seconds=own.pending_seconds,
            ontap=OntapEndpoints(
                own.ontap_url_template, own.ontap_timeout_seconds, own.ontap_verify_tls
            ),
            ontap_job_polls=own.ontap_job_polls,
            ontap_poll_seconds=own.ontap_poll_seconds,
            sleep=time.sleep,
            primary_workloads=BotoWorkloads(
                clients.with_settings(
                    settings.model_copy(
                        update={"max_attempts": settings.primary_region_retries + 1}
                    )
                )
            ),
        )
        persistence = DynamoDBPersistenceLayer(
            table_name=settings.idempotency_table, boto3_client=dynamodb
        )
        recover, config = idempotent_parts(
            domain.recover_part, persistence, settings, key_prefix="managed-part"
        )
        return cls(domain=domain, recover_part=recover, idempotency=config)
