"""Turning what the planner form or the API sent into a `PlanInput`, with defaults from history."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.orm import Session

from siyu.analytics.periods import add_months, parse_whole
from siyu.analytics.planning.history import History, measure_history
from siyu.analytics.planning.kpi import MAX_FEN, PlanInput, parse_month
from siyu.auth.permissions import Actor
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput

DEFAULT_PLAN_MONTHS = 6
MAX_TEXT = 40
"""Longest number text accepted; anything longer is a field error before any arithmetic."""
MAX_TYPED_POOL = 9_999_999
"""Pools typed on the form: `parse_whole` takes at most 7 digits (the API takes up to 2^31 − 1)."""


def plan_defaults(history: History) -> dict[str, str]:
    """The planner form pre-filled: next month for six months, the pool now, the measured rates."""
    first = add_months(history.as_of.replace(day=1), 1)

    def rate(value: float | None) -> str:
        return "" if value is None else f"{value:.4f}".rstrip("0").rstrip(".")

    aov = history.aov.value
    return {
        "name": "",
        "first_month": first.isoformat()[:7],
        "last_month": add_months(first, DEFAULT_PLAN_MONTHS - 1).isoformat()[:7],
        "start_pool": str(history.pool_now),
        "start_buyers": str(history.buyers_in_pool),
        "target_pool": "",
        "target_gmv_yuan": "",
        "monthly_deletion_rate": rate(history.deletion_rate.value) or "0",
        "first_order_rate": rate(history.conversion[30].value) or "0",
        "repurchase_rate": rate(history.repurchase_rate.value) or "0",
        "aov_yuan": "" if aov is None else f"{aov / 100:.2f}",
    }


def _text(values: dict[str, Any], key: str) -> str:
    value = values.get(key)
    return "" if value is None else str(value).strip()


def _int(values: dict[str, Any], key: str, default: int | None = None, *, high: int = MAX_TYPED_POOL) -> int:
    """A whole number: an API integer as it came (pydantic checked its bounds), typed text through
    `parse_whole` (ASCII digits, at most 7, 0..`high`)."""
    value = values.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return parse_whole(_text(values, key), key, low=0, high=high, default=default)


def _fen(values: dict[str, Any], key: str, default: int | None = None) -> int:
    """Money from `<key>_fen` (API) or `<key>_yuan` (form, up to two decimals)."""
    if _text(values, f"{key}_fen"):
        return _int(values, f"{key}_fen", high=MAX_FEN)
    text = _text(values, f"{key}_yuan").replace(",", "")
    if not text and default is not None:
        return default
    field = f"{key}_yuan"
    try:
        if len(text) > MAX_TEXT:
            raise InvalidOperation(text)
        amount = Decimal(text)
        if not amount.is_finite() or amount != amount.quantize(Decimal("0.01")):
            raise InvalidOperation(text)
        fen = int(amount * 100)
    except ArithmeticError:  # InvalidOperation, Overflow: too many digits or an exponent like 1e30
        raise InvalidInput(f"{key} must be an amount in yuan", details={"field": field}) from None
    if fen > MAX_FEN:
        raise InvalidInput(f"{key} must be at most {MAX_FEN // 100} yuan", details={"field": field})
    return fen


def _rate(values: dict[str, Any], key: str, default: float | None) -> float:
    text = _text(values, key)
    if not text:
        if default is None:
            raise InvalidInput(f"{key} is required (no history to measure it)", details={"field": key})
        return default
    try:
        if len(text) > MAX_TEXT:
            raise ValueError(text)
        value = float(text)
    except ValueError:
        raise InvalidInput(f"{key} must be a number between 0 and 1", details={"field": key}) from None
    if value != value:
        raise InvalidInput(f"{key} must be a number between 0 and 1", details={"field": key})
    return value


def plan_input(
    session: Session, *, actor: Actor, clock: Clock, values: dict[str, Any], history: History | None = None
) -> PlanInput:
    """A `PlanInput` from form text or API values; blanks take the measured history (pass `history`
    when the caller already has it)."""
    if history is None:
        history = measure_history(session, actor=actor, clock=clock)
    aov = history.aov.value
    aov_fen = _fen(values, "aov", round(aov) if aov else None)
    return PlanInput(
        name=_text(values, "name"),
        first_month=parse_month(_text(values, "first_month"), "first_month"),
        last_month=parse_month(_text(values, "last_month"), "last_month"),
        start_pool=_int(values, "start_pool", history.pool_now),
        target_pool=_int(values, "target_pool"),
        target_gmv_fen=_fen(values, "target_gmv"),
        monthly_deletion_rate=_rate(values, "monthly_deletion_rate", history.deletion_rate.value or 0.0),
        first_order_rate=_rate(values, "first_order_rate", history.conversion[30].value or 0.0),
        repurchase_rate=_rate(values, "repurchase_rate", history.repurchase_rate.value or 0.0),
        aov_fen=aov_fen,
        start_buyers=_int(values, "start_buyers", history.buyers_in_pool),
    )
