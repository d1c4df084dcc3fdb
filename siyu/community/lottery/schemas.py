"""Request shapes of the lottery (API and console share them)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field

from siyu.community.lottery.fairness import PPM
from siyu.kit.ids import DbId
from siyu.kit.schemas import Input
from siyu.models import DrawMethod, EntrySource

MAX_PRIZES = 50
MAX_STOCK = 1_000_000


class PrizeIn(Input):
    """A prize; `winners` (fixed draws) or `probability_ppm` (probability draws) per the draw's method."""

    name: Annotated[str, Field(min_length=1, max_length=100)]
    stock: Annotated[int, Field(ge=1, le=MAX_STOCK)]
    winners: Annotated[int | None, Field(ge=1, le=MAX_STOCK)] = None
    probability_ppm: Annotated[int | None, Field(ge=1, le=PPM)] = None
    points: Annotated[int, Field(ge=0, le=100_000_000)] = 0
    coupon_template_id: DbId | None = None


class DrawIn(Input):
    """A draw with its prizes (the prizes replace the old ones while the draw is a draft)."""

    name: Annotated[str, Field(min_length=1, max_length=100)]
    description: Annotated[str, Field(max_length=5000)] = ""
    method: DrawMethod
    entry_points: Annotated[int | None, Field(ge=1, le=100_000_000)] = None
    max_entries_per_member: Annotated[int, Field(ge=1, le=1000)] = 1
    one_win_per_customer: bool = True
    opens_at: datetime | None = None
    closes_at: datetime | None = None
    notify_channel_account_id: DbId | None = None
    notify_content_id: DbId | None = None
    prizes: Annotated[list[PrizeIn], Field(min_length=1, max_length=MAX_PRIZES)]


class EntryIn(Input):
    """An entry granted by a task or campaign (API)."""

    customer_id: DbId
    source: EntrySource = EntrySource.TASK
    source_ref: Annotated[str | None, Field(max_length=100)] = None
    idempotency_key: Annotated[str, Field(min_length=1, max_length=196)]
    """Stored as `api:{key}` (200 characters at most), apart from the system's own keys."""
