"""Lambda packages assembled locally, without Docker and without downloading anything.

Each service's package holds the project code it runs (`drcore`, `events` without the golden
samples, `services/__init__.py` and the service's own package) plus the pure-Python
distributions named in the configuration, copied from the environment the app runs in. The
compiled dependencies (pydantic-core) and Powertools come from the Powertools layer, which is
published per Python version and architecture: a package built here stays architecture-neutral,
so `make synth` works offline on any machine. A compiled distribution is refused, never copied.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from drcore.subscriptions import ServiceSpec

REPO_ROOT = Path(__file__).resolve().parent.parent
# Project packages every function needs; paths relative to the repository root.
SHARED_PACKAGES = ("drcore", "events")
EXCLUDED_DIRS = {"__pycache__", "golden", "tests"}
EXCLUDED_SUFFIXES = {".pyc", ".pyo"}


class BundlingError(RuntimeError):
    pass


@dataclass(frozen=True)
class Package:
    service: str
    path: Path

    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())


def service_package_name(spec: ServiceSpec) -> str:
    """The Python package of a service, from its handler path (`services.drs.handler:handler`)."""
    module = spec.handler.partition(":")[0]
    parts = module.split(".")
    if len(parts) < 3 or parts[0] != "services":
        raise BundlingError(
            f"{spec.name}: handler {spec.handler!r} is not services.<name>.<module>"
        )
    return parts[1]


def _copy_tree(source: Path, target: Path) -> None:
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if any(part in EXCLUDED_DIRS for part in relative.parts):
            continue
        if path.is_dir() or path.suffix in EXCLUDED_SUFFIXES:
            continue
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)


def _copy_distribution(name: str, target: Path) -> None:
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        raise BundlingError(
            f"lambda.bundled_distributions: {name!r} is not installed here "
            "(install the project's dependencies first: make setup)"
        ) from None
    wheel = dist.read_text("WHEEL") or ""
    if "Root-Is-Purelib: true" not in wheel:
        raise BundlingError(
            f"lambda.bundled_distributions: {name!r} is not pure Python; it must come from a "
            "layer built for the Lambda architecture (lambda.extra_layer_arns)"
        )
    root = Path(str(dist.locate_file("")))
    for file in dist.files or []:
        parts = Path(str(file)).parts
        if not parts or parts[0] == ".." or "__pycache__" in parts:
            continue
        if Path(str(file)).suffix in EXCLUDED_SUFFIXES or parts[0].endswith(".data"):
            continue
        source = root / Path(str(file))
        if not source.is_file():
            continue
        destination = target / Path(str(file))
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)


def assemble(
    spec: ServiceSpec, build_dir: Path, distributions: list[str], repo_root: Path = REPO_ROOT
) -> Package:
    """Write the service's package into `build_dir/<service>` (replacing what was there)."""
    target = build_dir / spec.name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for package in SHARED_PACKAGES:
        _copy_tree(repo_root / package, target / package)
    service_package = service_package_name(spec)
    (target / "services").mkdir()
    shutil.copyfile(repo_root / "services" / "__init__.py", target / "services" / "__init__.py")
    _copy_tree(repo_root / "services" / service_package, target / "services" / service_package)
    for name in distributions:
        _copy_distribution(name, target)
    return Package(spec.name, target)
