"""AWS clients: one factory for the orchestration account and for workload accounts.

Workload accounts are reached through STS AssumeRole with an external id; credentials are cached
until shortly before they expire. Every client uses botocore's retry modes. Endpoints come from
ordinary configuration (`AWS_ENDPOINT_URL`), so the sandbox needs no hooks here.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config

from .settings import Settings

REFRESH_MARGIN = timedelta(minutes=5)


@dataclass(frozen=True)
class AccountAccess:
    """How to reach one workload account."""

    account: str
    role_name: str
    external_id: str


class AwsClients:
    """Thread-safe cache of boto3 clients keyed by (service, region, account)."""

    def __init__(
        self,
        settings: Settings,
        session: boto3.Session | None = None,
        user_agent_extra: str | None = None,
    ) -> None:
        self._settings = settings
        self._session = session or boto3.Session()
        self._config = Config(
            retries={"mode": settings.retry_mode, "max_attempts": settings.max_attempts},
            max_pool_connections=32,
            connect_timeout=5,
            read_timeout=30,
            user_agent_extra=user_agent_extra,
        )
        self._lock = threading.RLock()
        self._clients: dict[tuple[str, str, str], Any] = {}
        # Workload credentials per account, with the time to refresh them. Clients are built from
        # the one session above with these credentials: a boto3.Session per account would load
        # every service model again per account (about 100 MB for 20 accounts and a few services,
        # in every function that reaches them).
        self._credentials: dict[str, tuple[dict[str, str], datetime]] = {}

    @property
    def settings(self) -> Settings:
        return self._settings

    def with_settings(self, settings: Settings) -> AwsClients:
        """Clients with other settings (fewer retries, say) built from this same session, under
        the same lock: the service models this session has loaded are not loaded again (a new
        session reads them from disk: about 0.3 s for EC2's alone)."""
        derived = AwsClients(settings, self._session, self._config.user_agent_extra)
        derived._lock = self._lock
        return derived

    def client(self, service: str, region: str | None = None) -> Any:
        """A client in the orchestration account."""
        region = region or self._settings.orchestration_region
        key = (service, region, "")
        with self._lock:
            if key not in self._clients:
                self._clients[key] = self._session.client(
                    service, region_name=region, config=self._config
                )
            return self._clients[key]

    def workload_client(self, service: str, region: str, access: AccountAccess) -> Any:
        """A client in a workload account, through AssumeRole with the account's external id."""
        if access.account == self._settings.orchestration_account:
            return self.client(service, region)
        with self._lock:
            credentials = self._workload_credentials(access)
            key = (service, region, access.account)
            if key not in self._clients:
                self._clients[key] = self._session.client(
                    service, region_name=region, config=self._config, **credentials
                )
            return self._clients[key]

    def _workload_credentials(self, access: AccountAccess) -> dict[str, str]:
        cached = self._credentials.get(access.account)
        if cached and cached[1] > datetime.now(UTC):
            return cached[0]
        sts = self.client("sts")
        response = sts.assume_role(
            RoleArn=f"arn:aws:iam::{access.account}:role/{access.role_name}",
            RoleSessionName="dr-orchestrator",
            ExternalId=access.external_id,
            DurationSeconds=3600,
        )
        creds = response["Credentials"]
        credentials = {
            "aws_access_key_id": creds["AccessKeyId"],
            "aws_secret_access_key": creds["SecretAccessKey"],
            "aws_session_token": creds["SessionToken"],
        }
        expiry = creds["Expiration"]
        if expiry.tzinfo is None:
            expiry = expiry.replace(tzinfo=UTC)
        # Clients built on the old credentials must be rebuilt.
        for key in [k for k in self._clients if k[2] == access.account]:
            del self._clients[key]
        self._credentials[access.account] = (credentials, expiry - REFRESH_MARGIN)
        return credentials
