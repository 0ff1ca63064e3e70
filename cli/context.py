"""Where `drctl` talks to: the local sandbox (the default) or real AWS, and the clients for it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import Any

import boto3
from botocore.config import Config

from drcore.aws import AwsClients
from drcore.publisher import EventPublisher
from drcore.registry import PARAMETER_PREFIX, CustomerEntry
from drcore.settings import Settings

SANDBOX_URL = "http://127.0.0.1:4566"
# Requests from drctl carry this in their user agent, so the sandbox can tell the operator's
# reads apart from the orchestration's own AWS calls when it counts them.
USER_AGENT_EXTRA = "drctl"


class Target(StrEnum):
    SANDBOX = "sandbox"
    AWS = "aws"


class UsageError(Exception):
    """Bad input from the operator: exit code 2 with a message naming the bad value."""


@dataclass
class Context:
    target: Target
    endpoint_url: str | None

    @classmethod
    def create(cls, target: Target, endpoint_url: str | None) -> Context:
        if target is Target.SANDBOX:
            endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or SANDBOX_URL
            os.environ["AWS_ENDPOINT_URL"] = endpoint_url
            # The sandbox accepts any credentials; never let real ones leave the machine.
            for key, value in (
                ("AWS_ACCESS_KEY_ID", "sandbox"),
                ("AWS_SECRET_ACCESS_KEY", "sandbox"),
            ):
                os.environ[key] = value
            os.environ.pop("AWS_SESSION_TOKEN", None)
            os.environ.pop("AWS_PROFILE", None)
        elif endpoint_url:
            os.environ["AWS_ENDPOINT_URL"] = endpoint_url
        return cls(target=target, endpoint_url=endpoint_url)

    @cached_property
    def settings(self) -> Settings:
        return Settings()

    @cached_property
    def clients(self) -> AwsClients:
        session = boto3.Session(region_name=self.settings.orchestration_region)
        return AwsClients(self.settings, session, user_agent_extra=USER_AGENT_EXTRA)

    def table(self) -> Any:
        return (
            boto3.Session(region_name=self.settings.orchestration_region)
            .resource(
                "dynamodb",
                config=Config(user_agent_extra=USER_AGENT_EXTRA, retries={"mode": "standard"}),
            )
            .Table(self.settings.operations_table)
        )

    def publisher(self) -> EventPublisher:
        return EventPublisher(self.clients.client("events"), self.settings.bus_name)

    def customers(self) -> dict[str, CustomerEntry]:
        ssm = self.clients.client("ssm")
        entries: dict[str, CustomerEntry] = {}
        for page in ssm.get_paginator("get_parameters_by_path").paginate(
            Path=PARAMETER_PREFIX, Recursive=True
        ):
            for parameter in page["Parameters"]:
                entry = CustomerEntry.model_validate_json(parameter["Value"])
                entries[entry.name] = entry
        return entries

    def resolve_scope(self, customer: str, environment: str) -> CustomerEntry:
        """The registry entry, or a UsageError naming the bad value and listing known ones."""
        customers = self.customers()
        entry = customers.get(customer)
        if entry is None:
            known = ", ".join(sorted(customers)) or "(none registered)"
            raise UsageError(f"unknown customer {customer!r}; known customers: {known}")
        if entry.environment(environment) is None:
            known = ", ".join(e.name for e in entry.environments)
            raise UsageError(
                f"unknown environment {environment!r} for customer {customer!r}; known: {known}"
            )
        return entry
