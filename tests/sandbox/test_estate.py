"""The estate file: shape, the `generate` shorthand, tags, and errors that name file, key, value."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from drcore.tags import parse_dr_tags
from sandbox.estate import EstateError, load_estate, parse_estate, wave_sizes

ROOT = Path(__file__).parents[2]
DEMO = ROOT / "examples" / "estates" / "demo.yaml"

BASE = """\
regions: {us-east-1: us-east-2}
timing: {drs_launch_seconds: [2, 6]}
faults: {drs_launch_failure_rate: 0, throttle_rate: 0, drop_native_event_rate: 0}
customers:
  - name: acme
    account: "111111111111"
    region: us-east-1
    environments:
      - name: production
        generate: {servers: 10, waves: 3}
        servers:
          - {name: acme-prod-ad-01, wave: 1, priority: critical, ip: 10.1.10.10, twin: true,
             replication: {state: CONTINUOUS, lag_seconds: 30}}
          - {name: acme-prod-legacy-01, wave: 3, ip: 10.1.10.200, twin: false,
             tags: {"dr:wave": "zero", "dr:rpo-target": null, Owner: ops}}
        eks_clusters: [{name: acme-prod-eks, wave: 3, version: "1.30"}]
        sql_ags: [{name: acme-prod-ag, wave: 2}]
        efs: [{name: acme-prod-files, wave: 2}]
      - name: staging
        generate: {servers: 3, waves: 2}
"""


def write(tmp_path: Path, text: str, name: str = "estate.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_the_demo_estate() -> None:
    # Given the demo estate file, when it is loaded
    estate = load_estate(DEMO)
    servers = estate.servers()

    # Then it is one customer's 50 production servers over 4 waves, all with twins
    assert estate.regions == {"us-east-1": "us-east-2"}
    assert estate.timing.drs_launch_seconds == (2, 6)
    assert estate.faults.model_dump() == {
        "drs_launch_failure_rate": 0,
        "throttle_rate": 0,
        "drop_native_event_rate": 0,
    }
    assert len(servers) == 50
    assert {s.wave for s in servers} == {1, 2, 3, 4}
    assert all(s.twin and s.replication_state == "CONTINUOUS" for s in servers)
    assert all(s.lag_seconds == 30 for s in servers)
    assert all(s.production and s.account == "111111111111" for s in servers)
    assert {(s.primary_region, s.dr_region) for s in servers} == {("us-east-1", "us-east-2")}
    wave1 = [s for s in servers if s.wave == 1]
    assert 1 <= len(wave1) <= 5 and all(s.priority == "critical" for s in wave1)
    assert {s.name.split("-")[2] for s in wave1} == {"ad", "dns"}
    # Every generated server has valid DR tags (discovery would plan it)
    assert all(not isinstance(parse_dr_tags(s.tags), list) for s in servers)
    assert len({s.ip for s in servers}) == 50


def test_generate_is_deterministic_with_names_ips_and_tags() -> None:
    first = parse_estate(BASE).servers()
    assert first == parse_estate(BASE).servers()
    by_name = {s.name: s for s in first}
    # 10 generated (3 waves) + 1 new explicit in production, 3 in staging
    assert len(first) == 14
    assert [s.name for s in first[:3]] == [
        "acme-prod-ad-01",
        "acme-prod-dns-01",
        "acme-prod-db-001",
    ]
    app = by_name["acme-prod-app-001"]
    assert app.wave == 3 and app.priority == "medium"
    assert app.tags == {
        "Name": "acme-prod-app-001",
        "Customer": "acme",
        "Environment": "production",
        "dr:enabled": "true",
        "dr:priority": "medium",
        "dr:wave": "3",
        "dr:recovery-strategy": "drs",
        "dr:rto-target": "240",
        "dr:rpo-target": "15",
    }
    assert by_name["acme-prod-ad-01"].tags["dr:rto-target"] == "15"
    assert app.ip.startswith("10.1.10.") and app.dr_ip == "10.101.10." + app.ip.split(".")[3]
    staging = [s for s in first if s.environment == "staging"]
    assert [s.name for s in staging] == ["acme-stg-ad-01", "acme-stg-dns-01", "acme-stg-db-001"]
    assert all(s.ip.startswith("10.1.30.") and not s.production for s in staging)


def test_explicit_servers_override_and_extend_and_tags_can_be_broken_on_purpose() -> None:
    by_name = {s.name: s for s in parse_estate(BASE).servers()}
    legacy = by_name["acme-prod-legacy-01"]
    assert legacy.twin is False and legacy.ip == "10.1.10.200" and legacy.dr_ip == "10.101.10.200"
    assert legacy.tags["dr:wave"] == "zero"
    assert "dr:rpo-target" not in legacy.tags
    assert legacy.tags["Owner"] == "ops"
    problems = parse_dr_tags(legacy.tags)
    assert isinstance(problems, list) and {p.tag for p in problems} == {"dr:wave", "dr:rpo-target"}
    estate = parse_estate(BASE)
    env = estate.customers[0].environments[0]
    assert [c.name for c in env.eks_clusters] == ["acme-prod-eks"]
    assert env.eks_clusters[0].version == "1.30"  # a typed field of the EKS estate model


def test_production_flag_defaults_by_name() -> None:
    text = BASE.replace("- name: staging", "- name: prod\n        production: false")
    estate = parse_estate(BASE)
    assert [e.is_production for e in estate.customers[0].environments] == [True, False]
    overridden = parse_estate(text).customers[0].environments[1]
    assert overridden.name == "prod" and overridden.is_production is False


@pytest.mark.parametrize(
    ("change", "key", "value"),
    [
        (
            ("ip: 10.1.10.200", "ip: 10.1.10.300"),
            "customers[0].environments[0].servers[1].ip",
            "'10.1.10.300'",
        ),
        (
            ('account: "111111111111"', 'account: "11111111111"'),
            "customers[0].account",
            "'11111111111'",
        ),
        (("region: us-east-1\n", "region: us-west-2\n"), "customers[0].region", "'us-west-2'"),
        (
            ("regions: {us-east-1: us-east-2}", "regions: {us-east-1: us-middle-9}"),
            "regions.us-east-1",
            "'us-middle-9'",
        ),
        (
            ("priority: critical", "priority: urgent"),
            "customers[0].environments[0].servers[0].priority",
            "'urgent'",
        ),
        (
            ("wave: 1, priority", "wave: 0, priority"),
            "customers[0].environments[0].servers[0].wave",
            "0",
        ),
        (("throttle_rate: 0", "throttle_rate: 1.5"), "faults.throttle_rate", "1.5"),
        (("[2, 6]", "[6, 2]"), "timing.drs_launch_seconds", "[6, 2]"),
        (
            ("{servers: 3, waves: 2}", "{servers: 3, waves: 4}"),
            "customers[0].environments[1].generate.waves",
            "4",
        ),
        (
            ("{servers: 3, waves: 2}", "{servers: 0, waves: 1}"),
            "customers[0].environments[1].generate.servers",
            "0",
        ),
        (
            ("ip: 10.1.10.200", "ip: 10.1.10.11"),
            "customers[0].environments[0].servers[1].ip",
            "'10.1.10.11'",
        ),
        (
            ("ip: 10.1.10.200", "ip: 10.2.10.200"),
            "customers[0].environments[0].servers[1].ip",
            "'10.2.10.200'",
        ),
        (("ip: 10.1.10.200, ", ""), "customers[0].environments[0].servers[1].ip", None),
        (
            ("sql_ags: [{name: acme-prod-ag, wave: 2}]", "sql_ags: [{name: acme-prod-ag}]"),
            "customers[0].environments[0].sql_ags[0].wave",
            None,
        ),
        (("    environments:", "    enviroments:"), "customers[0].enviroments", None),
        (
            ("  - name: acme\n", "  - name: acme\n    colour: blue\n"),
            "customers[0].colour",
            "'blue'",
        ),
        (
            ("Owner: ops", "Owner: [ops]"),
            "customers[0].environments[0].servers[1].tags.Owner",
            "['ops']",
        ),
    ],
)
def test_errors_name_the_file_the_key_and_the_value(
    tmp_path: Path, change: tuple[str, str], key: str, value: str | None
) -> None:
    old, new = change
    assert old in BASE
    path = write(tmp_path, BASE.replace(old, new, 1))
    with pytest.raises(EstateError) as caught:
        load_estate(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:"), message
    assert caught.value.line is not None and caught.value.line > 0, message
    assert caught.value.key == key, message
    assert f" {key}" in message
    if value is not None:
        assert f"= {value}:" in message, message


def test_duplicate_customer_names(tmp_path: Path) -> None:
    text = (
        BASE
        + '  - name: acme\n    account: "222222222222"\n    region: us-east-1\n'
        + "    environments: [{name: production, generate: {servers: 1}}]\n"
    )
    path = write(tmp_path, text)
    with pytest.raises(EstateError) as caught:
        load_estate(path)
    assert caught.value.key == "customers[1].name"
    assert "'acme'" in str(caught.value) and "duplicate" in str(caught.value)


def test_yaml_syntax_errors_name_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace("    region: us-east-1\n", "    region: [us-east-1\n"))
    with pytest.raises(EstateError) as caught:
        load_estate(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:")
    assert caught.value.line is not None
    assert "YAML syntax error" in message


def test_a_missing_file_is_an_estate_error(tmp_path: Path) -> None:
    with pytest.raises(EstateError) as caught:
        load_estate(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(caught.value)


def test_wave_sizes() -> None:
    assert wave_sizes(50, 4) == [4, 16, 15, 15]
    assert wave_sizes(3, 3) == [1, 1, 1]
    assert wave_sizes(7, 1) == [7]
    assert sum(wave_sizes(1000, 6)) == 1000
