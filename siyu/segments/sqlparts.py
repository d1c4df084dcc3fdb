"""Small SQL building blocks the segment compiler needs on both SQLite and PostgreSQL: typed
reads from JSON documents, byte-order string comparison, substring tests and brand-local time."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Boolean, ColumnElement, Float, Integer, Numeric, String, case, cast, func, literal

_JSON_KEY = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


def local_start(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant a brand-local day begins."""
    return datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)


def local_today(now: datetime, tz: ZoneInfo) -> date:
    return now.astimezone(tz).date()


def json_value(doc: Any, key: str, kind: str, dialect: str) -> ColumnElement[Any]:
    """The value at `key` of a JSON object column when it has JSON type `kind` ("string",
    "number" or "boolean"), else NULL — never a cast error on PostgreSQL, whatever is stored.

    Booleans come back as 1/0 on SQLite and as booleans on PostgreSQL; compare them with
    `json_bool_literal`.
    """
    if not _JSON_KEY.match(key):
        raise ValueError(f"unsafe JSON key {key!r}")
    if dialect == "postgresql":
        node = doc.op("->")(literal(key, String))
        text_value = doc.op("->>", return_type=String)(literal(key, String))
        typeof = func.jsonb_typeof(node)
        if kind == "string":
            return case((typeof == "string", text_value), else_=None)
        if kind == "number":
            # Nested CASE: the inner cast runs only for numbers, and a number beyond ±1e300 (JSON
            # allows 1e400) counts as unset instead of failing the whole query with an overflow.
            limit = literal(Decimal("1e300"), Numeric())  # numeric against numeric: no float cast to overflow
            in_range = case((func.abs(cast(text_value, Numeric)) < limit, cast(text_value, Float)), else_=None)
            return case((typeof == "number", in_range), else_=None)
        return case((typeof == "boolean", cast(text_value, Boolean)), else_=None)
    path = f'$."{key}"'
    typeof = func.json_type(doc, path)
    extracted = func.json_extract(doc, path)
    if kind == "string":
        return case((typeof == "text", extracted), else_=None)
    if kind == "number":
        in_range = case((func.abs(extracted) < 1e300, extracted), else_=None)
        return case((typeof.in_(["integer", "real"]), in_range), else_=None)
    return case((typeof == "true", literal(1, Integer)), (typeof == "false", literal(0, Integer)), else_=None)


def json_bool_literal(value: bool, dialect: str) -> Any:
    return value if dialect == "postgresql" else int(value)


def byte_order(expr: ColumnElement[Any], dialect: str) -> ColumnElement[Any]:
    """Compare strings by code point on both databases (PostgreSQL's default collation does not)."""
    return expr.collate("C") if dialect == "postgresql" else expr


def contains(expr: ColumnElement[Any], text: str, dialect: str) -> ColumnElement[bool]:
    """Case-sensitive substring test (LIKE is case-insensitive on SQLite and treats % and _ specially)."""
    position = func.strpos(expr, text) if dialect == "postgresql" else func.instr(expr, text)
    return position > 0


def starts_with(expr: ColumnElement[Any], text: str) -> ColumnElement[bool]:
    return func.substr(expr, 1, len(text)) == text


def month_day(expr: ColumnElement[Any], *, is_date_column: bool, dialect: str) -> ColumnElement[str]:
    """'MM-DD' of a date column or of an ISO date string."""
    if dialect == "postgresql" and is_date_column:
        return func.to_char(expr, "MM-DD")
    return func.substr(expr, 6, 5)
