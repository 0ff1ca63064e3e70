"""The event contract: committed JSON Schemas, frozen golden samples, breaking-change guard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from events.schemas import CATALOG, MODEL_BY_DETAIL_TYPE, Detail
from events.schemas.export import SCHEMA_DIR, render, schema_path

GOLDEN_DIR = Path(__file__).parents[2] / "events" / "schemas" / "golden"
GOLDENS = sorted(GOLDEN_DIR.glob("*.v*.json"))


def _golden(path: Path) -> tuple[type[Detail], str, dict]:
    detail_type, version = path.name.removesuffix(".json").rsplit(".v", 1)
    return MODEL_BY_DETAIL_TYPE[detail_type], version, json.loads(path.read_text())


@pytest.mark.parametrize("model", CATALOG, ids=lambda m: m.DETAIL_TYPE.value)
def test_given_a_model_then_its_committed_json_schema_is_current(model: type[Detail]) -> None:
    path = schema_path(model)
    assert path.exists(), f"{path.name} missing: run `python -m events.schemas.export`"
    assert path.read_text() == render(model), (
        f"{path.name} drifted from the model: run `python -m events.schemas.export` and review "
        "the diff (a breaking change needs a SCHEMA_VERSION bump)"
    )


def test_every_committed_schema_belongs_to_a_catalog_model() -> None:
    names = {p.name.rsplit(".v", 1)[0] for p in SCHEMA_DIR.glob("*.json")}
    assert names == set(MODEL_BY_DETAIL_TYPE)


@pytest.mark.parametrize("model", CATALOG, ids=lambda m: m.DETAIL_TYPE.value)
def test_every_detail_type_has_a_golden_sample_of_its_current_version(model: type[Detail]) -> None:
    assert (GOLDEN_DIR / f"{model.DETAIL_TYPE.value}.v{model.SCHEMA_VERSION}.json").exists()


@pytest.mark.parametrize("path", GOLDENS, ids=lambda p: p.name)
def test_given_a_frozen_golden_sample_when_parsed_by_the_current_model_then_nothing_broke(
    path: Path,
) -> None:
    model, version, event = _golden(path)
    if version.split(".")[0] != model.SCHEMA_VERSION.split(".")[0]:
        pytest.skip(f"{path.name} documents an older major version")
    detail = model.model_validate(event["detail"])
    assert event["source"] in {s.value for s in model.SOURCES}
    # A field the sample carries but the model dropped (or renamed) is a breaking change.
    dropped = set(event["detail"]) - set(type(detail).model_fields)
    assert not dropped, f"{model.__name__} no longer has {sorted(dropped)}: bump SCHEMA_VERSION"
    # Round trip: what we publish parses back to the same thing.
    assert model.model_validate_json(detail.model_dump_json()) == detail


def test_given_a_new_required_field_then_old_samples_fail_so_the_guard_catches_it() -> None:
    """The guard itself must be able to fail: a model with an extra required field rejects v1."""
    from pydantic import ValidationError, create_model

    model, _, event = _golden(GOLDEN_DIR / "WaveStarted.v1.json")
    stricter = create_model("StricterWaveStarted", __base__=model, region_group=(str, ...))
    with pytest.raises(ValidationError, match="region_group"):
        stricter.model_validate(event["detail"])


def test_given_a_detail_with_an_unknown_major_version_then_it_is_rejected_by_name() -> None:
    model, _, event = _golden(GOLDEN_DIR / "PlanReady.v1.json")
    with pytest.raises(ValueError, match="schema_version '2'"):
        model.model_validate(event["detail"] | {"schema_version": "2"})
