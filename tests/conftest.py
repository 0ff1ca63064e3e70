"""Shared fixtures. Unit tests run without network: sockets are blocked unless a test is marked
`sandbox` (it starts the local endpoint on loopback) or uses moto in-process (no sockets)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import aws_xray_sdk.core  # noqa: F401  (opens a UDP socket on import: before sockets are blocked)
import boto3
import pytest

from drcore.settings import Settings
from drcore.tables import TABLES, create_table, table_name

ORCHESTRATION_REGION = "us-east-2"


@pytest.fixture(autouse=True)
def _aws_test_environment(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """Dummy credentials and no real endpoint: nothing in a test can reach real AWS."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", ORCHESTRATION_REGION)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    if "sandbox" not in request.keywords:
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "DrOrchestratorTest")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_DEV", "false")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Block sockets for every test not marked `sandbox` (pytest-socket)."""
    from pytest_socket import disable_socket, enable_socket

    if "sandbox" in item.keywords:
        enable_socket()
    else:
        disable_socket(allow_unix_socket=True)


@pytest.fixture
def settings() -> Settings:
    return Settings()


@pytest.fixture
def moto_aws() -> Iterator[None]:
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture
def tables(moto_aws: None, settings: Settings) -> dict[str, Any]:
    """The declared DynamoDB tables in moto, as boto3 Table resources by logical name."""
    client = boto3.client("dynamodb", region_name=settings.orchestration_region)
    resource = boto3.resource("dynamodb", region_name=settings.orchestration_region)
    out: dict[str, Any] = {}
    for spec in TABLES:
        name = table_name(spec, settings)
        create_table(client, spec, name)
        out[spec.logical_name] = resource.Table(name)
    return out


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
