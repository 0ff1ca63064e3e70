"""EventBridge schema registry entries from the committed JSON Schemas (`events/schemas/json/`).

The committed files describe `detail` (JSON Schema 2020-12, as pydantic exports it). The registry
takes JSON Schema draft 4, so each becomes a draft-4 schema of the whole event: `detail-type`
and `source` pinned to the contract's values, `detail` the committed schema with its `$defs`
moved to draft 4's `definitions`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "events" / "schemas" / "json"
DRAFT4 = "http://json-schema.org/draft-04/schema#"
REGISTRY_NAME = "dr-orchestration"


@dataclass(frozen=True)
class RegistrySchema:
    name: str  # e.g. dr-orchestrator@WaveStarted.v1
    detail_type: str
    version: int
    content: dict[str, Any]


def to_registry_schema(detail_schema: dict[str, Any]) -> RegistrySchema:
    detail_type = str(detail_schema["x-detail-type"])
    version = int(detail_schema["x-schema-version"])
    detail = json.loads(json.dumps(detail_schema).replace('"#/$defs/', '"#/definitions/'))
    definitions = detail.pop("$defs", {})
    detail.pop("$id", None)
    content: dict[str, Any] = {
        "$schema": DRAFT4,
        "title": f"{detail_type} v{version}",
        "type": "object",
        "required": ["detail-type", "source", "detail"],
        "properties": {
            "detail-type": {"type": "string", "enum": [detail_type]},
            "source": {"type": "string", "enum": list(detail_schema.get("x-sources", []))},
            "detail": detail,
        },
    }
    if definitions:
        content["definitions"] = definitions
    return RegistrySchema(
        f"dr-orchestrator@{detail_type}.v{version}", detail_type, version, content
    )


def registry_schemas(schema_dir: Path = SCHEMA_DIR) -> list[RegistrySchema]:
    return [
        to_registry_schema(json.loads(path.read_text()))
        for path in sorted(schema_dir.glob("*.json"))
    ]
