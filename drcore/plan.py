"""The recovery plan: what discovery found, in waves, with machine-readable warnings.

Discovery writes it (claim check: stored in the operations table, the `PlanReady` event carries
only its key); the coordinator and `drctl plan/status` read it.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from events.schemas import OperationType, PlanSource, ResourceRef, Strategy


class PlanWarning(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    resource_id: str
    message: str


class PlannedResource(ResourceRef):
    wave: int = Field(ge=1)
    strategy: Strategy
    tags: dict[str, str] = Field(default_factory=dict)


class PlanWave(BaseModel):
    model_config = ConfigDict(frozen=True)

    number: int = Field(ge=1)
    resources: list[PlannedResource]

    @property
    def rto_target_minutes(self) -> int:
        return min((r.rto_target_minutes for r in self.resources), default=0)


class Plan(BaseModel):
    model_config = ConfigDict(frozen=True)

    customer: str
    environment: str
    operation: OperationType
    created_at: AwareDatetime
    plan_source: PlanSource
    inventory_age_seconds: int | None = None
    waves: list[PlanWave]
    warnings: list[PlanWarning] = Field(default_factory=list)

    @property
    def resource_count(self) -> int:
        return sum(len(w.resources) for w in self.waves)

    @property
    def expected_rto_minutes(self) -> int:
        """Waves run one after another: the plan's RTO budget is the sum of the wave targets."""
        return sum(w.rto_target_minutes for w in self.waves)

    def wave(self, number: int) -> PlanWave:
        for wave in self.waves:
            if wave.number == number:
                return wave
        raise KeyError(f"plan has no wave {number}")


def plan_key(operation_id: str) -> str:
    return f"OP#{operation_id}"


def created_now() -> datetime:
    from events.schemas.models import utc_now

    return utc_now()
