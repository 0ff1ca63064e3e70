"""Wave parts made idempotent (Powertools idempotency, DynamoDB persistence): a part is
recovered once per operation, wave, strategy, part and attempt, whichever service recovers it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from events.schemas import WaveStarted

from .settings import Settings

PART_KEY = "[operation_id, to_string(wave), strategy, to_string(part), to_string(attempt)]"


def idempotent_parts(
    recover: Callable[[WaveStarted], dict[str, Any]],
    persistence: DynamoDBPersistenceLayer,
    settings: Settings,
    key_prefix: str,
) -> tuple[Callable[[WaveStarted], dict[str, Any]], IdempotencyConfig]:
    """`recover` made idempotent on operation, wave, strategy, part and attempt; records are
    kept under `key_prefix` (one per service)."""
    config = IdempotencyConfig(
        event_key_jmespath=PART_KEY,
        expires_after_seconds=settings.idempotency_ttl_seconds,
        raise_on_no_idempotency_key=True,
    )

    @idempotent_function(
        data_keyword_argument="part",
        persistence_store=persistence,
        config=config,
        key_prefix=key_prefix,
    )
    def recover_part(part: WaveStarted) -> dict[str, Any]:
        return recover(part)

    return (lambda part: recover_part(part=part)), config
