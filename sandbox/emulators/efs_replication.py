"""EFS replication emulator (moto has EFS file systems but not replication configurations or
file system protection). An emulation, not AWS: botocore's `efs` model is the truth for shapes
(requests and responses are validated against it); the semantics follow the EFS user guide
("Replicating file systems", "Deleting replication configurations"):

- Only these operations are emulated, routed by operation name (the endpoint's `by_operation`
  table); every other EFS call goes to moto: CreateReplicationConfiguration,
  DescribeReplicationConfigurations, DeleteReplicationConfiguration, UpdateFileSystemProtection,
  and DescribeFileSystems (moto's file systems, with `FileSystemProtection` added).
- File systems are moto's (`efs_backends`, caller's account and region). Replication goes into an
  existing destination file system (`Destinations[0].FileSystemId`) whose replication overwrite
  protection is DISABLED (else ValidationException); the destination then reports REPLICATING
  (read-only). A file system already in a replication answers ValidationException.
- A configuration is seen from both regions: DescribeReplicationConfigurations with the source
  or the destination file system id, or with no id (every configuration touching the region).
  `LastReplicatedTimestamp` is now minus the destination's lag (`lag_seconds`, set through
  `POST /_sandbox/efs/replication`), so a healthy replication keeps advancing; a new one is
  ENABLED at once (`initial_sync_seconds` 0) or ENABLING with no timestamp until then.
- DeleteReplicationConfiguration takes the source or the destination file system id (as AWS
  does). ALL_CONFIGURATIONS removes it from both regions; LOCAL_CONFIGURATION_ONLY only from the
  caller's region (the other side keeps it, its destination then ERROR). The destination becomes
  writable at once (AWS takes minutes) and its protection is ENABLED again.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import Caller, ConfigError, Knobs, describe_validation_error
from .validation import RestJsonEmulator, ServiceError, operation

OPERATIONS = (
    "CreateReplicationConfiguration",
    "DescribeReplicationConfigurations",
    "DeleteReplicationConfiguration",
    "UpdateFileSystemProtection",
    "DescribeFileSystems",
)
SIGNING_NAME = "elasticfilesystem"
PAGE_SIZE_DEFAULT = 100


def _error(code: str, message: str) -> ServiceError:
    """An EFS error: its `ErrorCode` member repeats the code, as EFS answers."""
    return ServiceError(code, message, ErrorCode=code)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class _Destination:
    file_system_id: str
    region: str
    lag_seconds: float = 0.0
    status: str = "ENABLED"
    status_message: str | None = None
    synced_at: dt.datetime | None = None  # when the initial sync completes


@dataclass
class _Replication:
    account: str
    source_id: str
    source_region: str
    source_arn: str
    original_source_arn: str
    created: dt.datetime
    destination: _Destination
    # Regions whose side of the configuration is deleted (LOCAL_CONFIGURATION_ONLY).
    deleted_in: set[str] = field(default_factory=set)

    def regions(self) -> set[str]:
        return {self.source_region, self.destination.region} - self.deleted_in

    def involves(self, fs_id: str) -> bool:
        return fs_id in (self.source_id, self.destination.file_system_id)


class ReplicationKnob(BaseModel):
    """`POST /_sandbox/efs/replication`: the lag (and status) of a replication's destination."""

    model_config = ConfigDict(extra="forbid")

    account: str = Field(pattern=r"^\d{12}$")
    region: str
    file_system_id: str = Field(pattern=r"^fs-[0-9a-f]{8,40}$")
    lag_seconds: float | None = Field(default=None, ge=0)
    status: str | None = Field(
        default=None, pattern="^(ENABLED|ENABLING|DELETING|ERROR|PAUSED|PAUSING)$"
    )
    status_message: str | None = None


def _moto_file_systems(account: str, region: str) -> dict[str, Any]:
    from moto.efs.models import efs_backends

    if account not in efs_backends:
        return {}
    return dict(efs_backends[account][region].file_systems_by_id)


class EfsReplicationEmulator(RestJsonEmulator):
    service_name = "efs"

    def __init__(self, knobs: Knobs, initial_sync_seconds: float = 0.0) -> None:
        super().__init__(knobs)
        self.initial_sync_seconds = initial_sync_seconds
        self._lock = threading.Lock()
        self._replications: list[_Replication] = []
        # (account, region, fs id) -> ENABLED | DISABLED (REPLICATING is derived).
        self._protection: dict[tuple[str, str, str], str] = {}

    def reset(self) -> None:
        with self._lock:
            self._replications.clear()
            self._protection.clear()

    def by_operation(self) -> dict[tuple[str, str], EfsReplicationEmulator]:
        """(signing name, operation) pairs this emulator answers (the router's table)."""
        return {(SIGNING_NAME, op): self for op in OPERATIONS}

    # -- admin

    def configure(self, data: Any) -> dict[str, Any]:
        try:
            knob = ReplicationKnob.model_validate(data)
        except ValidationError as err:
            raise ConfigError(describe_validation_error(err, data)) from None
        with self._lock:
            found = self._find(knob.account, knob.region, knob.file_system_id)
            if found is None:
                raise ConfigError(
                    f"file_system_id={knob.file_system_id!r}: no replication configuration in "
                    f"{knob.account}/{knob.region}"
                )
            if knob.lag_seconds is not None:
                found.destination.lag_seconds = knob.lag_seconds
            if knob.status is not None:
                found.destination.status = knob.status
                found.destination.status_message = knob.status_message
            d = found.destination
            return {
                "source_file_system_id": found.source_id,
                "destination_file_system_id": d.file_system_id,
                "lag_seconds": d.lag_seconds,
                "status": d.status,
            }

    # -- helpers (lock held)

    def _find(self, account: str, region: str, fs_id: str) -> _Replication | None:
        return next(
            (
                r
                for r in self._replications
                if r.account == account and region in r.regions() and r.involves(fs_id)
            ),
            None,
        )

    def _file_system(self, caller: Caller, fs_id: str) -> Any:
        fs = _moto_file_systems(caller.account, caller.region).get(fs_id)
        if fs is None:
            raise _error("FileSystemNotFound", f"File system '{fs_id}' does not exist.")
        return fs

    def _protection_of(self, account: str, region: str, fs_id: str) -> str:
        for r in self._replications:
            if (
                r.account == account
                and r.destination.region == region
                and r.destination.file_system_id == fs_id
                and region in r.regions()
            ):
                return "REPLICATING"
        return self._protection.get((account, region, fs_id), "ENABLED")

    def _out(self, r: _Replication) -> dict[str, Any]:
        d = r.destination
        now = _now()
        destination: dict[str, Any] = {
            "Status": d.status,
            "FileSystemId": d.file_system_id,
            "Region": d.region,
            "OwnerId": r.account,
        }
        if d.status == "ENABLING" and d.synced_at is not None and now >= d.synced_at:
            d.status = "ENABLED"
        if d.status != "ENABLING" and d.synced_at is not None and now >= d.synced_at:
            last = now - dt.timedelta(seconds=d.lag_seconds)
            destination["Status"] = d.status
            destination["LastReplicatedTimestamp"] = last
        if d.status_message:
            destination["StatusMessage"] = d.status_message
        return {
            "SourceFileSystemId": r.source_id,
            "SourceFileSystemRegion": r.source_region,
            "SourceFileSystemArn": r.source_arn,
            "OriginalSourceFileSystemArn": r.original_source_arn,
            "CreationTime": r.created,
            "Destinations": [destination],
            "SourceFileSystemOwnerId": r.account,
        }

    # -- operations

    @operation("CreateReplicationConfiguration")
    def create_replication_configuration(
        self, caller: Caller, params: dict[str, Any]
    ) -> dict[str, Any]:
        source_id = params["SourceFileSystemId"].split("/")[-1]
        destinations = params["Destinations"]
        if len(destinations) != 1:
            raise _error("ValidationException", "Exactly one destination is supported")
        wanted = destinations[0]
        region = wanted.get("Region") or caller.region
        dest_id = wanted.get("FileSystemId")
        with self._lock:
            source = self._file_system(caller, source_id)
            if dest_id is None:
                raise _error(
                    "ValidationException",
                    "The sandbox replicates into an existing file system only: "
                    "Destinations[0].FileSystemId is required",
                )
            if dest_id not in _moto_file_systems(caller.account, region):
                raise _error(
                    "FileSystemNotFound",
                    f"Destination file system '{dest_id}' does not exist in {region}.",
                )
            for fs_id, where in ((source_id, caller.region), (dest_id, region)):
                if self._find(caller.account, where, fs_id) is not None:
                    raise _error(
                        "ValidationException",
                        f"File system '{fs_id}' is already part of a replication configuration.",
                    )
            protection = self._protection_of(caller.account, region, dest_id)
            if protection != "DISABLED":
                raise _error(
                    "ValidationException",
                    f"Destination file system '{dest_id}' has replication overwrite protection "
                    f"{protection}; disable it (UpdateFileSystemProtection) first.",
                )
            now = _now()
            synced = now + dt.timedelta(seconds=self.initial_sync_seconds)
            replication = _Replication(
                account=caller.account,
                source_id=source_id,
                source_region=caller.region,
                source_arn=source.file_system_arn,
                original_source_arn=source.file_system_arn,
                created=now,
                destination=_Destination(
                    file_system_id=dest_id,
                    region=region,
                    status="ENABLED" if self.initial_sync_seconds <= 0 else "ENABLING",
                    synced_at=synced,
                ),
            )
            self._replications.append(replication)
            self._protection.pop((caller.account, region, dest_id), None)
            return self._out(replication)

    @operation("DescribeReplicationConfigurations")
    def describe_replication_configurations(
        self, caller: Caller, params: dict[str, Any]
    ) -> dict[str, Any]:
        fs_id = params.get("FileSystemId")
        with self._lock:
            if fs_id:
                fs_id = fs_id.split("/")[-1]
                self._file_system(caller, fs_id)
                found = self._find(caller.account, caller.region, fs_id)
                if found is None:
                    raise _error(
                        "ReplicationNotFound", f"No replication configuration found for '{fs_id}'."
                    )
                return {"Replications": [self._out(found)]}
            mine = [
                r
                for r in self._replications
                if r.account == caller.account and caller.region in r.regions()
            ]
            start = int(params.get("NextToken") or 0)
            size = int(params.get("MaxResults") or PAGE_SIZE_DEFAULT)
            page = mine[start : start + size]
            out: dict[str, Any] = {"Replications": [self._out(r) for r in page]}
            if start + size < len(mine):
                out["NextToken"] = str(start + size)
            return out

    @operation("DeleteReplicationConfiguration")
    def delete_replication_configuration(
        self, caller: Caller, params: dict[str, Any]
    ) -> dict[str, Any]:
        fs_id = params["SourceFileSystemId"].split("/")[-1]
        mode = params.get("DeletionMode") or "ALL_CONFIGURATIONS"
        with self._lock:
            self._file_system(caller, fs_id)
            found = self._find(caller.account, caller.region, fs_id)
            if found is None:
                raise _error(
                    "ReplicationNotFound", f"No replication configuration found for '{fs_id}'."
                )
            if mode == "LOCAL_CONFIGURATION_ONLY":
                if found.source_region == found.destination.region:
                    raise _error(
                        "BadRequest", "LOCAL_CONFIGURATION_ONLY is not for same-Region replication."
                    )
                found.deleted_in.add(caller.region)
                if caller.region == found.destination.region:
                    found.destination.status = "ERROR"
                    found.destination.status_message = (
                        "The destination's side of this replication configuration was deleted."
                    )
                if not found.regions():
                    self._replications.remove(found)
            else:
                self._replications.remove(found)
            dest = found.destination
            if caller.region == dest.region or mode == "ALL_CONFIGURATIONS":
                # Writable again, with replication overwrite protection re-enabled.
                self._protection[(caller.account, dest.region, dest.file_system_id)] = "ENABLED"
            return {}

    @operation("UpdateFileSystemProtection")
    def update_file_system_protection(
        self, caller: Caller, params: dict[str, Any]
    ) -> dict[str, Any]:
        fs_id = params["FileSystemId"].split("/")[-1]
        wanted = params.get("ReplicationOverwriteProtection")
        with self._lock:
            self._file_system(caller, fs_id)
            current = self._protection_of(caller.account, caller.region, fs_id)
            if wanted == "REPLICATING":
                raise _error("BadRequest", "REPLICATING cannot be set; EFS sets it.")
            if current == "REPLICATING":
                raise _error(
                    "ReplicationAlreadyExists",
                    f"File system '{fs_id}' is the destination of a replication configuration.",
                )
            if wanted:
                self._protection[(caller.account, caller.region, fs_id)] = wanted
            return {"ReplicationOverwriteProtection": wanted or current}

    @operation("DescribeFileSystems")
    def describe_file_systems(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        fs_id = params.get("FileSystemId")
        token = params.get("CreationToken")
        with self._lock:
            systems = _moto_file_systems(caller.account, caller.region)
            if fs_id:
                fs_id = fs_id.split("/")[-1]
                chosen = [self._file_system(caller, fs_id)]
            else:
                chosen = [
                    fs for fs in systems.values() if token is None or fs.creation_token == token
                ]
            start = int(params.get("Marker") or 0)
            size = int(params.get("MaxItems") or PAGE_SIZE_DEFAULT)
            page = chosen[start : start + size]
            out: dict[str, Any] = {
                "FileSystems": [self._describe(caller, fs) for fs in page],
            }
            if params.get("Marker"):
                out["Marker"] = params["Marker"]
            if start + size < len(chosen):
                out["NextMarker"] = str(start + size)
            return out

    def _describe(self, caller: Caller, fs: Any) -> dict[str, Any]:
        info = fs.info_json()
        item: dict[str, Any] = {
            "OwnerId": fs.owner_id,
            "CreationToken": fs.creation_token,
            "FileSystemId": fs.file_system_id,
            "FileSystemArn": fs.file_system_arn,
            "CreationTime": dt.datetime.fromtimestamp(fs.creation_time, dt.UTC),
            "LifeCycleState": fs.life_cycle_state,
            "NumberOfMountTargets": info.get("NumberOfMountTargets", 0),
            "SizeInBytes": info.get("SizeInBytes") or {"Value": 0},
            "PerformanceMode": fs.performance_mode,
            "Encrypted": bool(fs.encrypted),
            "ThroughputMode": fs.throughput_mode,
            "Tags": info.get("Tags", []),
            "FileSystemProtection": {
                "ReplicationOverwriteProtection": self._protection_of(
                    caller.account, caller.region, fs.file_system_id
                )
            },
        }
        if info.get("Name"):
            item["Name"] = info["Name"]
        if fs.kms_key_id:
            item["KmsKeyId"] = fs.kms_key_id
        return item
