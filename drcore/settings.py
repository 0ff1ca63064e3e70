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
    enabled_strategies: tuple[str, ...] = ("drs", "managed-service", "eks-dns", "sql-ag")
    # Resources per WaveStarted part (each part stays far below the 256 KB entry limit).
    wave_part_size: int = Field(default=100, ge=1, le=400)
    # DRS: servers per StartRecovery call (DRS launches at most 100 per job).
    drs_batch_size: int = Field(default=100, ge=1, le=100)
    # DRS job reconciliation backoff (seconds between DescribeJobs checks).
    drs_poll_backoff: tuple[int, ...] = (5, 10, 20, 40, 60)
    # Coordinator: approval requests go to this SNS topic (orchestration account and region).
    approval_topic_name: str = "dr-approvals"
    # An approval token is valid this long; then a new one is sent (never auto-approved).
    approval_token_ttl_seconds: int = Field(default=3600, ge=60)
    # A wave still awaiting approval after this long is notified again (escalation).
    approval_escalation_seconds: int = Field(default=900, ge=30)
    # Pre/post-wave hook (SSM Automation) time limit when its configuration names none.
    hook_timeout_seconds: int = Field(default=1800, ge=10)
    # Polling of a running hook (seconds between GetAutomationExecution checks).
    hook_poll_backoff: tuple[int, ...] = (5, 10, 20, 40, 60)
    # The reconciler asks again about a resource stuck in flight at most this often.
    reconcile_recheck_seconds: int = Field(default=300, ge=10)
    # DR-region inventory cache (discovery): table, history kept, age thresholds (seconds) and
    # the share of a scope's resources that may vanish between two versions before it is flagged.
    inventory_table: str = "dr-inventory"
    inventory_history_hours: int = Field(default=24, ge=1, le=24 * 14)
    inventory_warning_age_seconds: int = Field(default=20 * 60, ge=60)
    inventory_critical_age_seconds: int = Field(default=30 * 60, ge=60)
    inventory_drop_ratio: float = Field(default=0.1, gt=0.0, le=1.0)
    # Retries (after the first try) of discovery's calls into primary regions: few, so that a
    # regional outage is recognised in seconds and the plan falls back to the cache.
    primary_region_retries: int = Field(default=1, ge=0, le=20)
    # DRS: a failed launch is launched again this many times (with this backoff, seconds) before
    # it is reported failed with DRS's own error.
    drs_launch_retries: int = Field(default=3, ge=0, le=10)
    drs_relaunch_backoff: tuple[int, ...] = (10, 30, 60)
    # DRS: the janitor removes bubble-test resources older than this (seconds).
    drs_drill_max_age_seconds: int = Field(default=8 * 3600, ge=60)
    # DRS: quotas read from Service Quotas are kept this long (seconds) per account + region.
    drs_quota_cache_seconds: int = Field(default=300, ge=0)
    # DRS: checks of reverse replication, drill teardown and waiting launches (seconds apart).
    drs_progress_backoff: tuple[int, ...] = (5, 10, 20, 40, 60)
    # sqlag: SSM Run Command execution limit per script (seconds), the pause between two
    # GetCommandInvocation reads, how long failback waits for the original primary to be
    # SYNCHRONIZED, and how many availability groups of a part are worked on at once.
    sqlag_command_timeout_seconds: int = Field(default=600, ge=30, le=172800)
    sqlag_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    sqlag_sync_wait_seconds: float = Field(default=120.0, ge=0, le=3600)
    sqlag_parallel: int = Field(default=8, ge=1, le=32)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
