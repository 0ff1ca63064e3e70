"""The whole system in the sandbox: endpoint, emulators, runtime and the real handlers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.daemon import Sandbox

ESTATES = Path(__file__).parents[2] / "examples" / "estates"
# Emulated launch durations for tests: short, but long enough for waves to overlap in time
# if ordering were broken.
FAST_LAUNCH = [0.3, 1.2]


@pytest.fixture(scope="package")
def sandbox() -> Iterator[Sandbox]:
    saved = {
        k: os.environ.get(k)
        for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    }
    os.environ.pop("AWS_SESSION_TOKEN", None)
    running = Sandbox.start(port=0, workers_per_service=2)
    try:
        yield running
    finally:
        running.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
