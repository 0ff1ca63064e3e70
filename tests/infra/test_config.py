"""The deployment configuration: typed, documented by the example, clear about bad values."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from drcore.registry import CustomerEntry
from infra.config import ConfigError, load_config
from infra.orchestration import schedule_expression, settings_for

from .conftest import EXAMPLE_CONFIG


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _example() -> dict:
    return yaml.safe_load(EXAMPLE_CONFIG.read_text())


def test_given_the_example_when_loaded_then_customers_are_registry_entries() -> None:
    config = load_config(EXAMPLE_CONFIG)
    assert config.orchestration.archive_retention_days >= 365 * 2
    for customer in config.customers:
        entry = customer.registry_entry()
        assert isinstance(entry, CustomerEntry)
        assert entry.account == customer.account


def test_given_a_bad_value_when_loaded_then_the_error_names_file_key_and_value(
    tmp_path: Path,
) -> None:
    data = _example()
    data["orchestration"]["account"] = "12345"
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert str(path) in message and "orchestration.account" in message and "'12345'" in message


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["orchestration"].update(log_retention_days=100), "log_retention_days"),
        (lambda d: d["bubble_networks"][0].update(customer="nobody"), "unknown customer"),
        (lambda d: d["bubble_networks"][0]["subnets"][0].update(cidr="10.9.0.0/24"), "outside"),
        (lambda d: d["access"].update(operator_principals=["bob"]), "not an IAM"),
        (lambda d: d.update(surprise=1), "surprise"),
        (lambda d: d["customers"].append(dict(d["customers"][0])), "listed twice"),
    ],
)
def test_given_an_inconsistent_configuration_when_loaded_then_it_is_refused(
    tmp_path: Path, mutate, expected: str
) -> None:
    data = _example()
    mutate(data)
    with pytest.raises(ConfigError, match=expected):
        load_config(_write(tmp_path, data))


def test_given_a_missing_file_when_loaded_then_the_error_says_what_to_copy(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config\.example\.yaml"):
        load_config(tmp_path / "absent.yaml")


def test_given_dr_variables_on_this_machine_when_settings_are_built_then_they_are_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DR_OPERATIONS_TABLE", "my-laptop-table")
    settings = settings_for(load_config(EXAMPLE_CONFIG))
    assert settings.operations_table == "dr-operations"
    assert settings.orchestration_account == "123456789012"


@pytest.mark.parametrize(
    ("seconds", "expression"),
    [
        (1, "rate(1 minute)"),
        (60, "rate(1 minute)"),
        (61, "rate(2 minutes)"),
        (900, "rate(15 minutes)"),
    ],
)
def test_given_a_schedule_rate_when_expressed_then_it_is_whole_minutes_rounded_up(
    seconds: int, expression: str
) -> None:
    assert schedule_expression(seconds) == expression


def test_given_a_bad_configuration_when_the_app_runs_then_it_exits_2_naming_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from infra.app import main

    data = _example()
    data["orchestration"]["region"] = "mars-1"
    assert main(["--config", str(_write(tmp_path, data)), "--outdir", str(tmp_path)]) == 2
    assert "orchestration.region" in capsys.readouterr().err
