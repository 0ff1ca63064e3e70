"""Fixtures for the sandbox's own tests: one endpoint per module, on a free loopback port."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from sandbox.endpoint import SandboxEndpoint

DEFAULT_ACCOUNT = "123456789012"
DR = "us-east-2"
FAST = [0.05, 0.2]


class Admin:
    """The endpoint's admin paths (`/_sandbox/...`)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def call(self, path: str, body: Any = None, method: str | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method or ("GET" if body is None else "POST"),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def post(self, path: str, body: Any = None) -> Any:
        status, data = self.call(path, {} if body is None else body)
        assert status == 200, data
        return data

    def get(self, path: str) -> Any:
        status, data = self.call(path)
        assert status == 200, data
        return data

    def reset(self, **config: Any) -> None:
        self.post("/_sandbox/reset")
        self.post("/_sandbox/config", {"drs_launch_seconds": FAST, **config})


@pytest.fixture(scope="module")
def endpoint() -> Iterator[SandboxEndpoint]:
    server = SandboxEndpoint()
    server.start(port=0)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def admin(endpoint: SandboxEndpoint) -> Admin:
    return Admin(endpoint.url)


ClientFactory = Callable[..., Any]


@pytest.fixture(scope="module")
def client(endpoint: SandboxEndpoint) -> ClientFactory:
    """`client(service, region=DR, creds=None, retries=None)`: a boto3 client on the endpoint,
    with dummy credentials (moto's default account) unless `creds` are given."""
    session = boto3.Session()

    def make(
        service: str,
        region: str = DR,
        creds: dict[str, str] | None = None,
        retries: int | None = None,
        validate: bool = True,
    ) -> Any:
        keys = creds or {"AccessKeyId": "testing", "SecretAccessKey": "testing"}
        config = Config(
            retries={"mode": "standard", "total_max_attempts": retries or 3},
            parameter_validation=validate,
        )
        return session.client(
            service,
            region_name=region,
            endpoint_url=endpoint.url,
            aws_access_key_id=keys["AccessKeyId"],
            aws_secret_access_key=keys["SecretAccessKey"],
            aws_session_token=keys.get("SessionToken"),
            config=config,
        )

    return make


def assume(client: ClientFactory, account: str, external_id: str = "dr-tests") -> dict[str, str]:
    """Credentials for `account` the way the orchestrator gets them (STS AssumeRole)."""
    creds = client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/dr-orchestrator-workload",
        RoleSessionName="tests",
        ExternalId=external_id,
    )["Credentials"]
    return {k: creds[k] for k in ("AccessKeyId", "SecretAccessKey", "SessionToken")}
