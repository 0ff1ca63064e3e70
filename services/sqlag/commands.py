"""The PowerShell the service runs through SSM Run Command, and what it writes back.

Each script lives in `scripts/<Name>.ps1`: a readable PowerShell script with a `param()` block
(every parameter validated there again with `ValidatePattern` / `ValidateSet`). The command sent
to `AWS-RunPowerShellScript` carries the script verbatim in a single-quoted here-string (nothing
inside it is expanded) and invokes it with its parameters as single-quoted PowerShell literals:

    # dr-orchestrator: Invoke-SqlAgFailover v1
    $script = @'
    <the .ps1 file>
    '@
    & ([scriptblock]::Create($script)) -AgName 'orders-ag' -Mode 'Planned'

Parameter values are checked against strict patterns before anything is built, and quoted even
so (a single quote doubled, PowerShell's typographic single quotes too). No value ever reaches
T-SQL as text except the group or database name as a bracket-quoted identifier (validated).

Every script writes one JSON document on stdout; the models below parse it.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

SCRIPTS_DIR = Path(__file__).parent / "scripts"
MARKER = "# dr-orchestrator:"
# SQL Server accepts more in an availability group name; the orchestrator accepts this much.
AG_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,127}$"
_AG_NAME = re.compile(AG_NAME_PATTERN)
_MODE = re.compile(r"^(Planned|Forced)$")
# PowerShell treats these as single quotes too.
_SINGLE_QUOTES = ("'", "\u2018", "\u2019", "\u201a", "\u201b")
STDOUT_LIMIT = 24_000  # SSM truncates GetCommandInvocation's StandardOutputContent here


class ScriptParameterError(ValueError):
    """A parameter value that does not match the script's pattern (named in the message)."""


class ScriptOutputError(ValueError):
    """A script's stdout that is not the JSON document it promises."""


@dataclass(frozen=True)
class Script:
    name: str
    parameters: tuple[tuple[str, re.Pattern[str]], ...]
    version: int = 1

    @property
    def path(self) -> Path:
        return SCRIPTS_DIR / f"{self.name}.ps1"

    @property
    def marker(self) -> str:
        return f"{MARKER} {self.name} v{self.version}"


STATUS = Script("Get-SqlAgStatus", (("AgName", _AG_NAME),))
FAILOVER = Script("Invoke-SqlAgFailover", (("AgName", _AG_NAME), ("Mode", _MODE)))
RESUME = Script("Resume-SqlAgDataMovement", (("AgName", _AG_NAME),))
CLONE_DRILL = Script("Test-SqlAgClone", (("AgName", _AG_NAME),))
SCRIPTS = (STATUS, FAILOVER, RESUME, CLONE_DRILL)


@functools.cache
def script_text(script: Script) -> str:
    text = script.path.read_text(encoding="utf-8")
    if not text.startswith(script.marker):
        raise RuntimeError(f"{script.path} does not start with {script.marker!r}")
    if re.search(r"^'@", text, flags=re.MULTILINE):
        raise RuntimeError(f"{script.path} has a line starting with '@ (ends the here-string)")
    return text.rstrip("\n")


def ps_quote(value: str) -> str:
    """A PowerShell single-quoted literal: nothing in it is expanded."""
    for quote in _SINGLE_QUOTES:
        value = value.replace(quote, quote * 2)
    return f"'{value}'"


def build_commands(script: Script, **values: str) -> list[str]:
    """The `commands` parameter of AWS-RunPowerShellScript for one script run."""
    expected = [name for name, _ in script.parameters]
    unknown = sorted(set(values) - set(expected))
    if unknown:
        raise ScriptParameterError(f"{script.name} takes no parameter {', '.join(unknown)}")
    arguments = []
    for name, pattern in script.parameters:
        if name not in values:
            raise ScriptParameterError(f"{script.name} needs -{name}")
        value = values[name]
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise ScriptParameterError(
                f"{script.name} -{name} {value!r} does not match {pattern.pattern}"
            )
        arguments.append(f"-{name} {ps_quote(value)}")
    return [
        script.marker,
        "$script = @'",
        script_text(script),
        "'@",
        "& ([scriptblock]::Create($script)) " + " ".join(arguments),
    ]


def valid_ag_name(value: str) -> bool:
    return bool(_AG_NAME.fullmatch(value))


# --- what the scripts write ----------------------------------------------------------------------


class _Output(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    script: str
    version: int = 1
    ok: bool
    ag_name: str
    error_code: str | None = None
    message: str | None = None


class ReplicaState(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    server: str
    role: str | None = None  # PRIMARY | SECONDARY | RESOLVING (None: not connected)
    is_local: bool = False
    connected_state: str | None = None  # CONNECTED | DISCONNECTED
    sync_health: str | None = None
    availability_mode: str = "SYNCHRONOUS_COMMIT"
    failover_mode: str | None = None


class DatabaseState(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    replica_server: str
    is_local: bool
    is_primary_replica: bool = False
    sync_state: str  # SYNCHRONIZED | SYNCHRONIZING | NOT SYNCHRONIZING | REVERTING | INITIALIZING
    sync_health: str | None = None
    database_state: str | None = None
    is_suspended: bool = False
    suspend_reason: str | None = None
    last_hardened_time: str | None = None
    last_commit_time: str | None = None
    log_send_queue_kb: int | None = None
    redo_queue_kb: int | None = None


class AgStatus(_Output):
    server: str
    ag_found: bool
    collected_at: str
    replicas: list[ReplicaState] = Field(default_factory=list)
    databases: list[DatabaseState] = Field(default_factory=list)

    @property
    def local(self) -> ReplicaState | None:
        return next((r for r in self.replicas if r.is_local), None)

    @property
    def local_databases(self) -> list[DatabaseState]:
        return [d for d in self.databases if d.is_local]


class DatabaseSync(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    sync_state: str | None = None


class FailoverOutput(_Output):
    mode: str
    action: str
    role_before: str | None = None
    role_after: str | None = None
    databases: list[DatabaseSync] = Field(default_factory=list)


class ResumeOutput(_Output):
    resumed: list[str] = Field(default_factory=list)


class CloneDatabase(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    database_state: str | None = None
    readable: bool = False
    last_commit_time: str | None = None


class CloneOutput(_Output):
    server: str | None = None
    action: str
    role_after: str | None = None
    databases: list[CloneDatabase] = Field(default_factory=list)


ScriptOutput = _Output
OutputT = TypeVar("OutputT", bound=_Output)
OUTPUT_OF: dict[str, type[_Output]] = {
    STATUS.name: AgStatus,
    FAILOVER.name: FailoverOutput,
    RESUME.name: ResumeOutput,
    CLONE_DRILL.name: CloneOutput,
}


def parse_output(model: type[OutputT], stdout: str) -> OutputT:
    """The script's JSON document (the last line that is one: modules may print before it)."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip().startswith("{")]
    if not lines:
        shown = stdout.strip()[:200] or "(empty)"
        raise ScriptOutputError(f"no JSON document in the script's output: {shown!r}")
    try:
        data = json.loads(lines[-1])
    except json.JSONDecodeError as error:
        raise ScriptOutputError(f"script output is not valid JSON: {error}") from None
    try:
        parsed = model.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ScriptOutputError(f"script output field {where}: {first['msg']}") from None
    expected = next(name for name, m in OUTPUT_OF.items() if m is model)
    if parsed.script != expected:
        raise ScriptOutputError(f"output of {parsed.script!r} where {expected!r} was expected")
    return parsed
