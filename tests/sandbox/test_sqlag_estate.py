"""The estate's `sql_ags`: defaults that seed a healthy group, bad values named with their key."""

from __future__ import annotations

import pytest

from sandbox.estate import EstateError, parse_estate

BASE = """
regions: {us-east-1: us-east-2}
customers:
  - name: acme
    account: "111111111111"
    region: us-east-1
    environments:
      - name: production
        sql_ags: [%s]
"""


def test_given_name_wave_and_replicas_then_a_healthy_synchronized_group() -> None:
    estate = parse_estate(BASE % "{name: orders-ag, wave: 2, replicas: 2}", "t")
    [spec] = estate.customers[0].environments[0].sql_ags
    assert (spec.sync_state, spec.lag, spec.availability_mode) == (
        "SYNCHRONIZED",
        0.0,
        "SYNCHRONOUS_COMMIT",
    )
    assert spec.databases == ["AppDb", "ReportingDb"] and not spec.clone
    assert [spec.instance_name(i) for i in (1, 2)] == ["orders-ag-sql1", "orders-ag-sql2"]


def test_a_lagging_group_gets_a_lag_unless_given() -> None:
    estate = parse_estate(BASE % "{name: lag-ag, wave: 1, sync_state: SYNCHRONIZING}", "t")
    assert estate.customers[0].environments[0].sql_ags[0].lag == 45.0


@pytest.mark.parametrize(
    ("entry", "shown"),
    [
        ("{name: 'bad ag', wave: 1}", "bad ag"),
        ("{name: ag1, wave: 1, databases: ['Db;1']}", "Db;1"),
        ("{name: ag1, wave: 1, sync_state: HEALTHY}", "HEALTHY"),
        ("{name: ag1, wave: 1, replicas: 1}", "1"),
        ("{name: ag1, wave: 1, colne: true}", "colne"),
    ],
)
def test_bad_entries_name_the_key_and_value(entry: str, shown: str) -> None:
    with pytest.raises(EstateError) as raised:
        parse_estate(BASE % entry, "t.yaml")
    message = str(raised.value)
    assert "sql_ags[0]" in message and shown in message
