"""Size and import time of the Lambda packages (`python -m infra.packages [cdk.out]`).

Import time is the cold-start proxy: a fresh interpreter imports the handler module from the
package alone (the project's own editable install is taken off the import path, so a module
missing from the package fails here as it would in Lambda). Third-party modules come from this
environment, as they come from the layer in Lambda. No bytecode is written, as in Lambda's
read-only /var/task: the package's own modules are compiled at every cold start.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from drcore.subscriptions import ServiceSpec

from .bundling import service_package_name

PACKAGES_DIR = ".lambda-packages"

_PROBE = r"""
import importlib, json, pkgutil, sys, time
sys.meta_path[:] = [f for f in sys.meta_path
                    if not getattr(f, "__module__", "").startswith("__editable__")]
sys.path_hooks[:] = [h for h in sys.path_hooks
                     if not getattr(h, "__module__", "").startswith("__editable__")]
sys.path_importer_cache.clear()
package, handler, service_package = sys.argv[1:4]
sys.path.insert(0, package)
started = time.perf_counter()
module = importlib.import_module(handler)
elapsed = time.perf_counter() - started
# Modules the handler imports lazily (adapters on first use) must be in the package too.
prefix = f"services.{service_package}."
for info in pkgutil.iter_modules([f"{package}/services/{service_package}"]):
    importlib.import_module(prefix + info.name)
print(json.dumps({"seconds": elapsed, "file": module.__file__}))
"""


@dataclass(frozen=True)
class PackageReport:
    service: str
    size_bytes: int
    files: int
    import_seconds: float  # median over the runs


def import_seconds(package: Path, spec: ServiceSpec, environment: dict[str, str]) -> float:
    handler = spec.handler.partition(":")[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DR_", "PYTHON"))}
    env.update(environment)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    result = subprocess.run(
        [sys.executable, "-I", "-B", "-c", _PROBE, str(package), handler,
         service_package_name(spec)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"{spec.name}: the handler does not import from its package:\n"
                           f"{result.stderr.strip()}")  # fmt: skip
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    if not str(probe["file"]).startswith(str(package)):
        raise RuntimeError(f"{spec.name}: {handler} was imported from {probe['file']}")
    return float(probe["seconds"])


def report(
    assembly_dir: Path, services: list[ServiceSpec], environment: dict[str, str], runs: int = 3
) -> list[PackageReport]:
    reports = []
    for spec in services:
        package = (assembly_dir / PACKAGES_DIR / spec.name).resolve()
        files = [f for f in package.rglob("*") if f.is_file()]
        times = [import_seconds(package, spec, environment) for _ in range(runs)]
        reports.append(
            PackageReport(
                spec.name,
                sum(f.stat().st_size for f in files),
                len(files),
                statistics.median(times),
            )
        )
    return reports


def main(argv: list[str] | None = None) -> int:
    from services.catalog import SERVICES

    args = sys.argv[1:] if argv is None else argv
    assembly_dir = Path(args[0] if args else "cdk.out")
    if not (assembly_dir / PACKAGES_DIR).is_dir():
        print(f"{assembly_dir}: no Lambda packages here (run make synth first)", file=sys.stderr)
        return 2
    env = {"POWERTOOLS_SERVICE_NAME": "probe", "AWS_DEFAULT_REGION": "us-east-2"}
    print(f"{'service':<14}{'size':>10}{'files':>8}{'handler import':>18}")
    for line in report(assembly_dir, list(SERVICES), env):
        print(
            f"{line.service:<14}{line.size_bytes / 1024:>8.0f}KB{line.files:>8}"
            f"{line.import_seconds * 1000:>15.0f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
