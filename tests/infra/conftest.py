"""One synthesis of the whole CDK app per test session (example configuration, cdk-nag on)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aws_cdk", reason="the infra extra is not installed (make setup)")

from infra.app import REPO_ROOT, build_app
from infra.config import InfraConfig, load_config
from infra.nag import Acknowledged, acknowledged

EXAMPLE_CONFIG = REPO_ROOT / "infra" / "config.example.yaml"


@dataclass
class Synth:
    config: InfraConfig
    outdir: Path
    templates: dict[str, dict[str, Any]]
    acknowledged: list[Acknowledged]

    def resources(self, stack: str, type_: str) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resource
            for logical_id, resource in self.templates[stack]["Resources"].items()
            if resource["Type"] == type_
        }

    def properties(self, stack: str, type_: str) -> list[dict[str, Any]]:
        return [r.get("Properties", {}) for r in self.resources(stack, type_).values()]


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    config = load_config(EXAMPLE_CONFIG)
    outdir = tmp_path_factory.mktemp("cdk.out")
    app = build_app(config, outdir)
    # Raises when cdk-nag (AwsSolutions, HIPAA Security) reports an unacknowledged finding.
    assembly = app.synth()
    templates = {
        stack.stack_name: json.loads((outdir / stack.template_file).read_text())
        for stack in assembly.stacks
    }
    yield Synth(config, outdir, templates, acknowledged(app))
