"""The sqlag module's tags: parsed when right, every problem named (tag and value) when not."""

from __future__ import annotations

from services.sqlag import config as C

GOOD = {
    C.AG_NAME: "orders-ag",
    C.DR_REPLICA: "orders-ag-sql2",
    C.LISTENER: "Orders-AG.sql.prod.acme.internal.",
    C.HOSTED_ZONE: "/hostedzone/Z0123456789ABC",
    C.CLONE: "i-0123456789abcdef0",
}


def test_given_good_tags_then_the_configuration_is_normalised() -> None:
    config = C.parse_config(GOOD)
    assert isinstance(config, C.SqlAgConfig)
    assert config.ag_name == "orders-ag"
    assert not config.dr_replica.is_id and config.dr_replica.value == "orders-ag-sql2"
    assert config.listener == "orders-ag.sql.prod.acme.internal"
    assert config.zone_id == "Z0123456789ABC"
    assert config.clone is not None and config.clone.is_id


def test_given_no_module_tags_then_both_required_ones_are_reported() -> None:
    problems = C.parse_config({"Name": "x"})
    assert isinstance(problems, list)
    assert {(p.code, p.tag) for p in problems} == {
        (C.MISSING_MODULE_TAG, C.AG_NAME),
        (C.MISSING_MODULE_TAG, C.DR_REPLICA),
    }


def test_given_bad_values_then_each_message_names_the_tag_and_the_value() -> None:
    tags = GOOD | {
        C.AG_NAME: "orders;--",
        C.DR_REPLICA: "bad name!",
        C.LISTENER: "not a name",
        C.HOSTED_ZONE: "zone?",
        C.CLONE: "../x",
        "dr:sqlag:colne": "typo",
    }
    problems = C.parse_config(tags)
    assert isinstance(problems, list)
    by_tag = {p.tag: p for p in problems}
    assert set(by_tag) == {
        C.AG_NAME,
        C.DR_REPLICA,
        C.LISTENER,
        C.HOSTED_ZONE,
        C.CLONE,
        "dr:sqlag:colne",
    }
    assert all(p.code == C.INVALID_MODULE_TAG for p in problems)
    assert "dr:sqlag:ag-name='orders;--'" in by_tag[C.AG_NAME].message
    assert "'bad name!'" in by_tag[C.DR_REPLICA].message
    assert "'zone?'" in by_tag[C.HOSTED_ZONE].message


def test_given_a_listener_without_its_zone_then_the_missing_tag_is_named() -> None:
    tags = {k: v for k, v in GOOD.items() if k != C.HOSTED_ZONE}
    problems = C.parse_config(tags)
    assert isinstance(problems, list)
    assert [(p.code, p.tag) for p in problems] == [(C.MISSING_MODULE_TAG, C.HOSTED_ZONE)]


def test_given_the_dr_replica_known_then_its_own_tags_configure_the_group() -> None:
    tags = {C.AG_NAME: "orders-ag", C.PRIMARY_REPLICA: "orders-ag-sql1"}
    config = C.parse_config(tags, dr_replica="i-0123456789abcdef0")
    assert isinstance(config, C.SqlAgConfig)
    assert config.dr_replica.value == "i-0123456789abcdef0" and config.listener is None
