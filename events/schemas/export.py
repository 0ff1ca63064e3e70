"""Export the JSON Schema of every detail model: `python -m events.schemas.export`.

The files under `events/schemas/json/` are committed; a test fails when they drift from the
models, and a compatibility test compares them across changes (DESIGN §3).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .models import CATALOG, Detail

SCHEMA_DIR = Path(__file__).parent / "json"


def schema_path(model: type[Detail]) -> Path:
    return SCHEMA_DIR / f"{model.DETAIL_TYPE.value}.v{model.SCHEMA_VERSION}.json"


def schema_of(model: type[Detail]) -> dict[str, Any]:
    schema = model.model_json_schema(mode="validation")
    schema["$id"] = f"dr-orchestrator/{model.DETAIL_TYPE.value}/v{model.SCHEMA_VERSION}"
    schema["x-detail-type"] = model.DETAIL_TYPE.value
    schema["x-sources"] = [s.value for s in model.SOURCES]
    schema["x-schema-version"] = model.SCHEMA_VERSION
    return schema


def render(model: type[Detail]) -> str:
    return json.dumps(schema_of(model), indent=2, sort_keys=True) + "\n"


def main() -> int:
    SCHEMA_DIR.mkdir(exist_ok=True)
    for model in CATALOG:
        schema_path(model).write_text(render(model))
    print(f"wrote {len(CATALOG)} schemas to {SCHEMA_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
