"""API and form shapes of distribution commission."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Key = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
MAX_FEN = 10**12


class RuleIn(BaseModel):
    """A commission rule as created or replaced (PUT)."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    rate_bp: int = Field(ge=1, le=5000)
    """Basis points of the order's paid amount: 1..5000 (0.01% .. 50%)."""
    days: int = Field(ge=1, le=3650)
    cap_per_referee_fen: int | None = Field(default=None, ge=0, le=MAX_FEN)
    cap_per_month_fen: int | None = Field(default=None, ge=0, le=MAX_FEN)
    is_active: bool = True


class AdjustIn(BaseModel):
    """An operator's correction of one KOC's commission (either sign, never zero)."""

    model_config = ConfigDict(extra="forbid")

    koc_customer_id: int = Field(ge=1)
    amount_fen: int = Field(ge=-MAX_FEN, le=MAX_FEN)
    reason: Reason
    idempotency_key: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] | None = (
        None
    )

    @model_validator(mode="after")
    def _not_zero(self) -> AdjustIn:
        if self.amount_fen == 0:
            raise ValueError("amount_fen must not be 0")
        return self


class PeriodIn(BaseModel):
    """A statement period: inclusive brand-local dates."""

    model_config = ConfigDict(extra="forbid")

    period_start: date
    period_end: date

    @model_validator(mode="after")
    def _ordered(self) -> PeriodIn:
        if self.period_end < self.period_start:
            raise ValueError("period_end must not be before period_start")
        if (self.period_end - self.period_start).days > 366:
            raise ValueError("a period spans at most 366 days")
        return self


class SettleIn(BaseModel):
    """Settling (paying) a statement."""

    model_config = ConfigDict(extra="forbid")

    payment_ref: Key
