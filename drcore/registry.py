"""The customer registry: which customers exist, their accounts, regions and environments.

Stored in SSM Parameter Store (one JSON parameter per customer under `PARAMETER_PREFIX`) in the
orchestration account; the CDK app writes it from configuration, the sandbox from the estate file.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from events.schemas.models import NAME_PATTERN

PARAMETER_PREFIX = "/dr-orchestrator/customers/"


class EnvironmentEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    production: bool = False


class CustomerEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    account: str = Field(pattern=r"^\d{12}$")
    # primary region -> DR region, e.g. {"us-east-1": "us-east-2"}
    regions: dict[str, str] = Field(min_length=1)
    environments: list[EnvironmentEntry] = Field(min_length=1)
    # Role the orchestrator assumes in the workload account, and its external id.
    role_name: str = "dr-orchestrator-workload"
    external_id: str = Field(min_length=2)

    @property
    def primary_region(self) -> str:
        return next(iter(self.regions))

    @property
    def dr_region(self) -> str:
        return self.regions[self.primary_region]

    def environment(self, name: str) -> EnvironmentEntry | None:
        return next((e for e in self.environments if e.name == name), None)


def parameter_name(customer: str) -> str:
    return f"{PARAMETER_PREFIX}{customer}"
