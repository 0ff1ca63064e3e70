"""The discovery service's own queue messages (light: the handler imports it at start)."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from .subscriptions import INVENTORY_REFRESH


class InventoryRefreshMessage(BaseModel):
    """Refresh the inventory cache: the schedule's message (just the kind), or drctl's (with a
    request id and time, so a request already answered by a newer refresh is not redone)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: str = Field(default=INVENTORY_REFRESH, pattern=f"^{INVENTORY_REFRESH}$")
    request_id: str | None = Field(default=None, max_length=128)
    requested_at: AwareDatetime | None = None
    requested_by: str | None = Field(default=None, max_length=256)
