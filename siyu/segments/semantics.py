"""The few rules of the language that are arithmetic rather than SQL, shared by the compiler and
anything that must agree with it: number comparisons, anniversaries and the sampling hash."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from typing import Any

from siyu.segments.definition import Comparison

SAMPLE_MODULUS = 2_147_483_647
"""A prime (2³¹−1): the sampling hash is `((id mod P) · a + b) mod P`, exact in 64-bit SQL integers."""


def compare(value: Any, comparison: Comparison) -> bool:
    """`value op operand` for numbers, dates and strings alike (None never matches)."""
    if value is None:
        return False
    op, operand = comparison.op, comparison.value
    match op:
        case "eq":
            return bool(value == operand)
        case "ne":
            return bool(value != operand)
        case "gt":
            return bool(value > operand)
        case "gte":
            return bool(value >= operand)
        case "lt":
            return bool(value < operand)
        case "lte":
            return bool(value <= operand)
        case "between":
            return bool(operand <= value <= comparison.upper)
    raise ValueError(op)


def count_shape(comparison: Comparison) -> tuple[bool, str]:
    """How a count comparison behaves: whether zero matches, and whether every count ≥ 1 matches
    ("all"), none does ("none") or it depends ("some"). The compiler picks the cheapest SQL from this:
    "has any" needs no GROUP BY."""
    zero = compare(0, comparison)
    points = {1, 10**15}
    for bound in (comparison.value, comparison.upper):
        if bound is not None:
            whole = int(bound)
            points |= {p for p in (whole - 1, whole, whole + 1, whole + 2) if p >= 1}
    results = {compare(p, comparison) for p in points}
    if results == {True}:
        return zero, "all"
    if results == {False}:
        return zero, "none"
    return zero, "some"


def anniversary_month_days(today: date, days: int) -> set[str] | None:
    """'MM-DD' strings of the next `days` days from `today` (inclusive), or None when they cover the
    whole year. A 29 February falls on 28 February in years without one."""
    if days >= 365:
        return None
    found: set[str] = set()
    for offset in range(days + 1):
        day = today + timedelta(days=offset)
        found.add(f"{day.month:02d}-{day.day:02d}")
        if day.month == 2 and day.day == 28 and not _is_leap(day.year):
            found.add("02-29")
    return found


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def sample_parameters(seed: str) -> tuple[int, int]:
    """The multiplier and offset of the sampling hash for `seed` (multiplier ≥ 1)."""
    digest = hashlib.sha256(seed.encode()).digest()
    multiplier = 1 + int.from_bytes(digest[:8], "big") % (SAMPLE_MODULUS - 1)
    offset = int.from_bytes(digest[8:16], "big") % SAMPLE_MODULUS
    return multiplier, offset


def in_sample(customer_id: int, percent: float, seed: str) -> bool:
    """Whether a customer falls in a `percent` sample for `seed` (the SQL computes the same)."""
    multiplier, offset = sample_parameters(seed)
    bucket = ((customer_id % SAMPLE_MODULUS) * multiplier + offset) % SAMPLE_MODULUS
    return bucket * 10_000 < round(percent * 100) * SAMPLE_MODULUS
