"""Request bodies of the performance API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from siyu.kit.ids import MAX_ID


class StaffCellIn(BaseModel):
    """One cell of the staff report to turn into a static segment (recomputed on the server)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    date_from: str | None = Field(default=None, alias="from")
    date_to: str | None = Field(default=None, alias="to")
    staff_id: int = Field(gt=0, le=MAX_ID)
    cell: str = Field(description="held, adds or first_orders")
    name: str | None = Field(default=None, max_length=90)


class RoiCellIn(BaseModel):
    """A channel's acquired customers (新获客户) to turn into a static segment (recomputed on the server)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    date_from: str | None = Field(default=None, alias="from")
    date_to: str | None = Field(default=None, alias="to")
    channel_id: int = Field(gt=0, le=MAX_ID)
    name: str | None = Field(default=None, max_length=90)


class DrillOut(BaseModel):
    segment_id: int
    members: int
