"""AwsClients: clients with other settings come from the same session (no model reloads)."""

from __future__ import annotations

from typing import Any

import botocore.loaders
import pytest

from drcore.aws import AwsClients
from drcore.settings import Settings
from services.discovery.collect import primary_region_clients


@pytest.fixture
def loaded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    files: list[str] = []
    load = botocore.loaders.JSONFileLoader.load_file

    def recording(self: Any, path: str) -> Any:
        files.append(path)
        return load(self, path)

    monkeypatch.setattr(botocore.loaders.JSONFileLoader, "load_file", recording)
    return files


def test_given_primary_region_clients_then_they_retry_less_and_load_no_model_again(
    loaded: list[str],
) -> None:
    clients = AwsClients(Settings(), user_agent_extra="drctl")
    clients.client("ec2", "us-east-1")
    assert any("/ec2/" in path for path in loaded)  # the first client reads EC2's model
    loaded.clear()

    primary = primary_region_clients(clients, clients.settings)
    ec2 = primary.client("ec2", "us-east-1")
    assert loaded == []
    assert ec2.meta.config.retries["total_max_attempts"] == (
        clients.settings.primary_region_retries + 1
    )
    assert ec2.meta.config.user_agent_extra == "drctl"

    # a separate AwsClients (its own session) reads the models again
    AwsClients(Settings()).client("ec2", "us-east-1")
    assert any("/ec2/" in path for path in loaded)
