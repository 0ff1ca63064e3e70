"""Settings as pydantic models, read once from the environment (prefix `DR_`).

Domain code never reads `os.environ`: handlers build `Settings` once and pass what is needed.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from events.schemas import BUS_NAME_DEFAULT


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DR_", extra="ignore", frozen=True)

    bus_name: str = BUS_NAME_DEFAULT
    # Region and account the orchestration system runs in (the DR region).
    orchestration_region: str = "us-east-2"
    orchestration_account: str = "123456789012"
    operations_table: str = "dr-operations"
    idempotency_table: str = "dr-idempotency"
    # Role assumed in workload accounts (external id comes from the customer registry).
    workload_role_name: str = "dr-orchestrator-workload"
    # Retry mode for every boto3 client: botocore's, never hand-written sleeps.
    retry_mode: str = Field(default="adaptive", pattern="^(standard|adaptive|legacy)$")
    max_attempts: int = Field(default=8, ge=1, le=20)
    # How long an idempotency record lives (seconds).
    idempotency_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    # Strategies with a deployed recovery service; resources of others are excluded from plans.
    enabled_strategies: tuple[str, ...] = ("drs",)
    # Resources per WaveStarted part (each part stays far below the 256 KB entry limit).
    wave_part_size: int = Field(default=100, ge=1, le=400)
    # DRS: servers per StartRecovery call (DRS launches at most 100 per job).
    drs_batch_size: int = Field(default=100, ge=1, le=100)
    # DRS job reconciliation backoff (seconds between DescribeJobs checks).
    drs_poll_backoff: tuple[int, ...] = (5, 10, 20, 40, 60)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
