"""The estate's managed-service entries, as the sandbox seeds them (`seed_managed.py`).

```yaml
efs:
  - {name: acme-prod-files, wave: 2}          # healthy: replicated to the DR region, lag 60 s
  - {name: acme-prod-shared, wave: 2, lag_seconds: 7200}         # lag over the RPO (15 min)
  - {name: acme-prod-scratch, wave: 2, replication: false}       # no DR copy at all
load_balancers:
  - {name: acme-prod-web, wave: 3}            # ALB pair + failover records + health check
  - {name: acme-prod-api, wave: 3, type: network, mode: simple}  # one CNAME, UPSERTed
caches:
  - {name: acme-prod-sessions, wave: 2}       # Valkey + DR twin; the endpoint CNAME switches
fsx_ontap:
  - {name: acme-prod-nas, wave: 2}            # FSx ONTAP pair, SnapMirror healthy, lag 5 min
  - {name: acme-prod-old, wave: 2, lag_seconds: 7200, healthy: false}   # not ready
private_zone: acme-prod.internal              # servers tagged dr:managed:dns-record live here
```

Each entry takes `priority` (default high), `rto` / `rpo` minutes (default 60 / 15) and `tags`
(override or extend the seeded tags; a null removes one, to make a bad tag on purpose).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
LB_NAME = r"^[A-Za-z0-9]([A-Za-z0-9-]{0,28}[A-Za-z0-9])?$"  # room for the DR twin's "-dr"
ZONE_NAME = r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\.?$"
TagValue = str | int | float | bool | None
Priority = Literal["critical", "high", "medium", "low"]
EfsStatus = Literal["ENABLED", "ENABLING", "PAUSED", "ERROR"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Managed(_Model):
    wave: int = Field(ge=1)
    priority: Priority = "high"
    rto: int = Field(default=60, ge=1)
    rpo: int = Field(default=15, ge=1)
    tags: dict[str, TagValue] = Field(default_factory=dict)


class EfsSpec(_Managed):
    """An EFS file system in the primary region and its replica in the DR region."""

    name: str = Field(pattern=NAME_PATTERN)
    replication: bool = True
    lag_seconds: float = Field(default=60.0, ge=0)
    status: EfsStatus = "ENABLED"


class LoadBalancerSpec(_Managed):
    """An ALB/NLB in the primary region, its DR twin (`<name>-dr`) and the Route 53 name that
    fails over between them: a PRIMARY/SECONDARY pair with a health check on the primary
    (`mode: failover`), or one plain CNAME (`mode: simple`), named `<record>.<zone>`."""

    name: str = Field(pattern=LB_NAME)
    type: Literal["application", "network"] = "application"
    mode: Literal["failover", "simple"] = "failover"
    record: str | None = Field(default=None, pattern=r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$")
    dr_twin: bool = True


class CacheSpec(_Managed):
    """An ElastiCache (Valkey) replication group in the primary region, its DR twin
    (`<name>-dr`, no replication between them: "endpoint updates, no replication needed") and
    the application's endpoint record `<record>.<zone>`, a CNAME to the primary endpoint."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,36}[a-z0-9]$")  # room for "-dr"
    record: str | None = Field(default=None, pattern=r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$")
    dr_twin: bool = True
    # A Global Datastore (N primary, `<name>-dr` secondary; emulated): failover moves the primary.
    global_datastore: bool = False


class FsxOntapSpec(_Managed):
    """An FSx for NetApp ONTAP file system in the primary region, its DR file system in the DR
    region (same `Name`), the DR file system's fsxadmin secret (Secrets Manager, DR region) and
    the SnapMirror relationships `<name>-svm:<volume>` -> `<name>-dr-svm:<volume>_dst` that the
    emulated ONTAP REST API of the DR file system reports (an emulation)."""

    name: str = Field(pattern=NAME_PATTERN)
    volumes: list[str] = Field(default_factory=lambda: ["vol1"], min_length=1, max_length=20)
    lag_seconds: float = Field(default=300.0, ge=0)
    healthy: bool = True
    state: Literal["snapmirrored", "broken_off", "paused", "uninitialized"] = "snapmirrored"
    # ONTAP break / resync jobs take this long in the emulation.
    job_seconds: float = Field(default=0.0, ge=0, le=60)
