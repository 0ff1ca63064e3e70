"""What the sqlag scripts are built from: parameter checks, quoting, the statements each script
holds, and the parsing of the JSON they write."""

from __future__ import annotations

import json
import re

import pytest

from services.sqlag.commands import (
    AG_NAME_PATTERN,
    CLONE_DRILL,
    FAILOVER,
    RESUME,
    SCRIPTS,
    STATUS,
    AgStatus,
    FailoverOutput,
    Script,
    ScriptOutputError,
    ScriptParameterError,
    build_commands,
    parse_output,
    ps_quote,
    script_text,
)


def test_given_a_script_when_built_then_it_is_marker_here_string_and_one_invocation() -> None:
    commands = build_commands(FAILOVER, AgName="orders-ag", Mode="Planned")
    assert commands[0] == "# dr-orchestrator: Invoke-SqlAgFailover v1"
    assert commands[1] == "$script = @'"
    assert commands[2] == script_text(FAILOVER)
    assert commands[3] == "'@"
    assert commands[4] == "& ([scriptblock]::Create($script)) -AgName 'orders-ag' -Mode 'Planned'"


@pytest.mark.parametrize(
    "bad",
    ["orders'; DROP DATABASE x;--", "ag]FAILOVER", "ag name", "1ag", "", "ag\u2019x", "a" * 129],
)
def test_given_an_unsafe_ag_name_then_nothing_is_built_and_the_value_is_named(bad: str) -> None:
    with pytest.raises(ScriptParameterError) as raised:
        build_commands(STATUS, AgName=bad)
    assert repr(bad) in str(raised.value)
    assert "-AgName" in str(raised.value)


def test_given_a_mode_outside_the_set_then_it_is_refused() -> None:
    with pytest.raises(ScriptParameterError, match="-Mode 'Forced; Stop-Computer'"):
        build_commands(FAILOVER, AgName="ag1", Mode="Forced; Stop-Computer")


def test_given_missing_or_unknown_parameters_then_they_are_named() -> None:
    with pytest.raises(ScriptParameterError, match="needs -Mode"):
        build_commands(FAILOVER, AgName="ag1")
    with pytest.raises(ScriptParameterError, match="no parameter SqlInstance"):
        build_commands(STATUS, AgName="ag1", SqlInstance="x")


def test_quoting_doubles_every_kind_of_single_quote() -> None:
    assert ps_quote("it's") == "'it''s'"
    assert ps_quote("a\u2018b\u2019c") == "'a\u2018\u2018b\u2019\u2019c'"
    assert ps_quote("$env:PATH") == "'$env:PATH'"  # single quotes: never expanded


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda s: s.name)
def test_every_script_validates_its_ag_name_like_the_orchestrator(script: Script) -> None:
    text = script_text(script)
    assert f"[ValidatePattern('{AG_NAME_PATTERN}')][string]$AgName" in text
    assert "$ErrorActionPreference = 'Stop'" in text
    assert "Import-Module SqlServer" in text
    assert "ConvertTo-Json" in text
    assert not re.search(r"^'@", text, flags=re.MULTILINE)  # cannot end the here-string early


def test_the_status_script_reads_the_hadr_views_and_changes_nothing() -> None:
    text = script_text(STATUS)
    for view in (
        "sys.dm_hadr_database_replica_states",
        "sys.availability_groups",
        "sys.dm_hadr_availability_replica_states",
        "last_commit_time",
        "last_hardened_time",
        "synchronization_state_desc",
    ):
        assert view in text
    assert "ALTER " not in text.upper().replace("ALTER_", "")
    # The group name filters rows in PowerShell: it never becomes T-SQL text.
    assert "$_.ag_name -eq $AgName" in text
    assert "'$AgName'" not in text


def test_the_failover_script_refuses_what_the_rules_refuse_before_acting() -> None:
    text = script_text(FAILOVER)
    assert "ALTER AVAILABILITY GROUP $agIdentifier FAILOVER;" in text
    assert "ALTER AVAILABILITY GROUP $agIdentifier FORCE_FAILOVER_ALLOW_DATA_LOSS;" in text
    assert "'[' + $AgName.Replace(']', ']]') + ']'" in text  # QUOTENAME-like identifier
    assert "SYNCHRONOUS_COMMIT" in text and "'SYNCHRONIZED'" in text
    assert "@('REVERTING', 'INITIALIZING')" in text
    assert "[ValidateSet('Planned', 'Forced')]" in text
    # The checks come before the statements they guard.
    assert text.index("NOT_SYNCHRONIZED") < text.index("FAILOVER;")
    assert text.index("UNSAFE_SYNC_STATE") < text.index("FORCE_FAILOVER_ALLOW_DATA_LOSS;")
    assert text.index("already the primary replica") < text.index("FAILOVER;")


def test_the_resume_and_clone_scripts_hold_their_statements() -> None:
    assert "SET HADR RESUME;" in script_text(RESUME)
    clone = script_text(CLONE_DRILL)
    assert "CLONE_NOT_ISOLATED" in clone and "connected_state" in clone
    assert clone.index("CLONE_NOT_ISOLATED") < clone.index("FORCE_FAILOVER_ALLOW_DATA_LOSS;")
    assert "sys.objects" in clone  # each database is read


STATUS_DOC = {
    "script": "Get-SqlAgStatus",
    "version": 1,
    "ok": True,
    "server": "sql2",
    "ag_name": "ag1",
    "ag_found": True,
    "collected_at": "2026-11-26T10:00:00.000Z",
    "replicas": [{"server": "sql2", "role": "SECONDARY", "is_local": True}],
    "databases": [
        {
            "name": "AppDb",
            "replica_server": "sql2",
            "is_local": True,
            "sync_state": "SYNCHRONIZED",
            "last_commit_time": "2026-11-26T09:59:59.000Z",
        }
    ],
}


def test_given_module_noise_before_the_json_then_the_document_is_parsed() -> None:
    stdout = "WARNING: something\n" + json.dumps(STATUS_DOC) + "\n"
    status = parse_output(AgStatus, stdout)
    assert status.local is not None and status.local.role == "SECONDARY"
    assert [d.name for d in status.local_databases] == ["AppDb"]


def test_given_no_json_or_the_wrong_document_then_the_error_says_so() -> None:
    with pytest.raises(ScriptOutputError, match="no JSON document"):
        parse_output(AgStatus, "Invoke-Sqlcmd : Login failed")
    with pytest.raises(ScriptOutputError, match="'Get-SqlAgStatus' where 'Invoke-SqlAgFailover'"):
        parse_output(FailoverOutput, json.dumps(STATUS_DOC | {"mode": "x", "action": "none"}))
    broken = dict(STATUS_DOC)
    del broken["server"]
    with pytest.raises(ScriptOutputError, match="field server"):
        parse_output(AgStatus, json.dumps(broken))
