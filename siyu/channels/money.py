"""Money as people type and read it: yuan with two decimals in, integer fen out (and back)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from siyu.kit.errors import InvalidInput
from siyu.kit.ids import MAX_ID

MAX_FEN = MAX_ID
"""Largest amount a BIGINT column holds."""
CENT = Decimal("0.01")


def format_yuan(fen: int | None) -> str:
    """`123450` → `¥1,234.50`; None → an empty string (a metric that has no value)."""
    if fen is None:
        return ""
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), 100)
    return f"{sign}¥{yuan:,}.{cents:02d}"


def _decimal(text: str, field: str) -> Decimal:
    cleaned = text.strip().replace(",", "").removeprefix("¥").strip()
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise InvalidInput(f"{field} is not a number", details={"field": field}) from None
    if not value.is_finite():
        raise InvalidInput(f"{field} is not a number", details={"field": field})
    if value < 0:
        raise InvalidInput(f"{field} may not be negative", details={"field": field})
    if value * 100 > MAX_FEN:
        raise InvalidInput(f"{field} is too large", details={"field": field})
    # "1.50" and "1.500" are the same money; "1.505" would lose half a fen, so it is refused.
    if value != value.quantize(CENT):
        raise InvalidInput(f"{field} has more than 2 decimals", details={"field": field})
    return value


def parse_yuan(text: str, *, field: str) -> int:
    """Exact fen from a yuan amount typed by a person ("1,234.5" → 123450).

    Parsed with `Decimal`, never a float; more than two decimals, negatives and non-numbers are a
    422 naming `field`.
    """
    return int(_decimal(text, field) * 100)


def parse_percent(text: str, *, field: str) -> int:
    """Basis points from a percentage typed by a person ("15.5" → 1550), at most two decimals."""
    return int(_decimal(text, field) * 100)
