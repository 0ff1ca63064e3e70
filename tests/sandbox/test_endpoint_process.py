"""The endpoint served from a child process (what the benchmark runs): same admin paths, and
it never outlives the process that started it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from typing import Any

import boto3

from sandbox.endpoint import EndpointProcess


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its parent) is not serving
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"


def test_given_a_child_endpoint_then_it_serves_aws_and_admin_calls_and_stops() -> None:
    endpoint = EndpointProcess()
    url = endpoint.start(port=0)
    try:
        assert _get(url + "/_sandbox/health") == {"status": "ok"}
        sqs = boto3.client(
            "sqs",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="sandbox",
            aws_secret_access_key="sandbox",
        )
        sqs.create_queue(QueueName="in-the-child")
        assert any(u.endswith("/in-the-child") for u in sqs.list_queues()["QueueUrls"])
        assert _get(url + "/_sandbox/drs/launches") == []
        assert _get(url + "/_sandbox/stats")["calls"]["sqs"]["CreateQueue"] == 1
        memory = endpoint.peak_memory_mb()
        assert memory is not None and memory > 10
        process = endpoint._process
        assert process is not None
    finally:
        endpoint.stop()
    assert process.poll() is not None
    assert endpoint.peak_memory_mb() is None


STARTER = """
import sys
from sandbox.endpoint import EndpointProcess
endpoint = EndpointProcess()
endpoint.start(port=0)
print(endpoint._process.pid, flush=True)
sys.stdin.readline()  # killed while waiting here
"""


def test_given_the_starting_process_dies_then_the_child_endpoint_stops() -> None:
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.getcwd(),
    )
    assert starter.stdout is not None
    child = int(starter.stdout.readline())
    assert _alive(child)
    starter.kill()  # no clean-up runs in the starter
    starter.wait()
    deadline = time.monotonic() + 15
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)
