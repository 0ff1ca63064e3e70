"""The estate's SQL Server Always On availability groups, as the sandbox seeds them
(`seed_sqlag.py`; SQL Server itself is emulated behind SSM Run Command,
`emulators/ssm_run_command.py`).

```yaml
sql_ags:
  - {name: acme-prod-ag, wave: 2}                     # healthy: 2 replicas, SYNCHRONIZED
  - {name: acme-prod-ag, wave: 2, replicas: 2, clone: true}   # + a clone in the bubble network
  - {name: acme-lag-ag, wave: 2, sync_state: SYNCHRONIZING, lag_seconds: 90}  # not synchronized
  - {name: acme-bad-ag, wave: 2, sync_state: REVERTING}        # no failover at all
```

Per group: the primary replica `<name>-sql1` (EC2, primary region; the resource discovery finds:
DR tags with `dr:recovery-strategy=sql-ag` and the `dr:sqlag:*` tags), the DR replica
`<name>-sql2` (DR region), `replicas - 2` more synchronous secondaries in the primary region,
the listener `<name>.sql.<environment>.<customer>.internal` (an A record on the primary replica's
IP, in a private hosted zone of the DR region's default VPC), and with `clone: true` a clone
`<name>-clone` in the environment's bubble-test network (outside it when the environment has
none, which the drill refuses). `databases` default to AppDb and ReportingDb; `sync_state` and
`lag_seconds` describe the DR replica's databases; `tags` override or extend the primary's tags
(a null removes one, to make a bad tag on purpose).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

AG_NAME = r"^[A-Za-z][A-Za-z0-9_-]{0,56}$"  # room for "-clone" in the Name tags
DATABASE_NAME = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"
TagValue = str | int | float | bool | None
Priority = Literal["critical", "high", "medium", "low"]
SyncState = Literal[
    "SYNCHRONIZED", "SYNCHRONIZING", "NOT SYNCHRONIZING", "REVERTING", "INITIALIZING"
]


class SqlAgSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=AG_NAME)
    wave: int = Field(ge=1)
    replicas: int = Field(default=2, ge=2, le=5)
    databases: list[str] = Field(default=["AppDb", "ReportingDb"], min_length=1, max_length=20)
    sync_state: SyncState = "SYNCHRONIZED"
    # How far the DR replica's databases are behind (0 when SYNCHRONIZED unless given).
    lag_seconds: float | None = Field(default=None, ge=0)
    availability_mode: Literal["SYNCHRONOUS_COMMIT", "ASYNCHRONOUS_COMMIT"] = "SYNCHRONOUS_COMMIT"
    clone: bool = False
    priority: Priority = "high"
    rto: int = Field(default=60, ge=1)
    rpo: int = Field(default=15, ge=1)
    tags: dict[str, TagValue] = Field(default_factory=dict)
    # Emulated duration of each script run and of a resumed database's catch-up (seconds).
    command_seconds: float = Field(default=0.3, ge=0, le=600)
    resync_seconds: float = Field(default=1.0, ge=0, le=3600)

    @model_validator(mode="after")
    def _databases(self) -> SqlAgSpec:
        import re

        for database in self.databases:
            if not re.fullmatch(DATABASE_NAME, database):
                raise ValueError(f"database {database!r} is not a database name ({DATABASE_NAME})")
        if len(set(self.databases)) != len(self.databases):
            raise ValueError(f"databases {self.databases} name one database twice")
        return self

    @property
    def lag(self) -> float:
        if self.lag_seconds is not None:
            return self.lag_seconds
        return 0.0 if self.sync_state == "SYNCHRONIZED" else 45.0

    def instance_name(self, index: int) -> str:
        return f"{self.name}-sql{index}"

    @property
    def clone_name(self) -> str:
        return f"{self.name}-clone"
