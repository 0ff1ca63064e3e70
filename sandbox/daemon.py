"""The sandbox process: the local AWS endpoint, the orchestration resources, and the runtime that
runs every service's handler on its queue. `drctl sandbox up` starts it in the background;
`python -m sandbox.daemon --port 4566` runs it in the foreground until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from dataclasses import dataclass

from drcore.registry import CustomerEntry
from drcore.settings import Settings
from services.catalog import SERVICES

from .emf import EmfBridge
from .endpoint import EndpointProcess, SandboxApp, SandboxEndpoint
from .runtime import Deployed, Runtime, build_orchestration, connect_workload_account


@dataclass
class Sandbox:
    """Everything the sandbox runs: in one process (also used in-process by tests), or with the
    endpoint in a child process (`endpoint_process`, the benchmark)."""

    endpoint: SandboxEndpoint | EndpointProcess
    runtime: Runtime
    deployed: Deployed
    settings: Settings
    metrics: EmfBridge

    @property
    def url(self) -> str:
        return self.endpoint.url

    @property
    def app(self) -> SandboxApp:
        """The in-process endpoint's application (the emulators' state), for tests."""
        if not isinstance(self.endpoint, SandboxEndpoint):
            raise RuntimeError("the endpoint runs in its own process: use its admin paths")
        return self.endpoint.app

    @classmethod
    def start(
        cls,
        host: str = "127.0.0.1",
        port: int = 4566,
        workers_per_service: int = 2,
        endpoint_process: bool = False,
    ) -> Sandbox:
        """`endpoint_process`: serve the endpoint from a child process (its own core)."""
        endpoint = EndpointProcess() if endpoint_process else SandboxEndpoint()
        url = endpoint.start(host=host, port=port)
        # Handlers run in this process and find the endpoint through ordinary configuration.
        os.environ["AWS_ENDPOINT_URL"] = url
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "sandbox")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "sandbox")
        os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
        os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "DrOrchestrator")
        # FSx for NetApp ONTAP: the emulated ONTAP REST API of a file system's management
        # endpoint is served by the sandbox endpoint (plain HTTP, see sandbox.emulators.ontap).
        os.environ["DR_MANAGED_ONTAP_URL_TEMPLATE"] = url + "/_ontap/{file_system_id}"
        settings = Settings()
        deployed = build_orchestration(url, settings, SERVICES)
        metrics = EmfBridge(url, settings.orchestration_region)
        metrics.install()
        runtime = Runtime(
            url, settings, SERVICES, deployed, workers_per_service=workers_per_service
        )
        runtime.start()
        return cls(endpoint, runtime, deployed, settings, metrics)

    def connect(self, customers: list[CustomerEntry]) -> None:
        for customer in customers:
            connect_workload_account(self.url, self.settings, customer, self.deployed.bus_arn)

    def stop(self) -> None:
        self.runtime.stop()
        self.metrics.uninstall()
        self.endpoint.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566)
    args = parser.parse_args()
    sandbox = Sandbox.start(args.host, args.port)
    print(f"sandbox ready at {sandbox.url}", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
    sandbox.stop()


if __name__ == "__main__":
    main()
