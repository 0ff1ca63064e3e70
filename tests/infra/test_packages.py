"""Lambda packages: assembled locally, complete on their own, measured."""

from __future__ import annotations

import json

import jsonschema
import pytest

from infra.packages import PACKAGES_DIR, report
from infra.schemas import registry_schemas
from services.catalog import SERVICES

from .conftest import REPO_ROOT, Synth

# Cold-start proxy, generous for a loaded CI machine (the README reports measured numbers).
IMPORT_LIMIT_SECONDS = 2.0


def test_given_each_package_when_its_handler_is_imported_alone_then_it_imports_quickly(
    synth: Synth,
) -> None:
    env = {"POWERTOOLS_SERVICE_NAME": "probe", "AWS_DEFAULT_REGION": "us-east-2"}
    for line in report(synth.outdir, list(SERVICES), env, runs=1):
        assert line.import_seconds < IMPORT_LIMIT_SECONDS, line
        assert line.size_bytes < 5 * 1024 * 1024, line


def test_given_each_package_when_listed_then_it_holds_no_tests_goldens_or_bytecode(
    synth: Synth,
) -> None:
    for service in SERVICES:
        package = synth.outdir / PACKAGES_DIR / service.name
        files = [p.relative_to(package).as_posix() for p in package.rglob("*") if p.is_file()]
        assert f"services/{service.name}/handler.py" in files
        assert not [f for f in files if f.endswith(".pyc") or "/golden/" in f]
        others = {s.name for s in SERVICES} - {service.name}
        assert not [f for f in files if f.split("/")[:2] in ([["services", o] for o in others])]


@pytest.mark.parametrize("schema", registry_schemas(), ids=lambda s: s.name)
def test_given_a_registry_schema_when_its_golden_event_is_validated_then_it_passes(schema) -> None:
    golden = (
        REPO_ROOT / "events" / "schemas" / "golden" / f"{schema.detail_type}.v{schema.version}.json"
    )
    if not golden.exists():
        pytest.skip(f"no golden sample for {schema.name}")
    jsonschema.Draft4Validator.check_schema(schema.content)
    jsonschema.Draft4Validator(schema.content).validate(json.loads(golden.read_text()))
