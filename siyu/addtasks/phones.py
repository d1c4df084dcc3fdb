"""Reading a phone list (CSV or XLSX) and the greeting template: the pure parts of add-by-phone lists."""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from pathlib import Path

from siyu.customers.importing.reader import iter_rows, open_source
from siyu.kit.errors import InvalidInput
from siyu.kit.phone import InvalidPhone, normalize_phone

PHONE_HEADERS = {"phone", "mobile", "手机", "手机号", "手机号码", "电话", "联系电话"}
NAME_HEADERS = {"name", "姓名", "名字", "客户姓名", "昵称"}
MAX_NAME = 100
MAX_GREETING = 500
MAX_REPORTED_ROWS = 1000
"""Invalid rows listed one by one in a report; past this only the count grows."""


@dataclass(frozen=True)
class PhoneRow:
    """One usable row: its line in the file, the E.164 phone and the name, if given."""

    row: int
    phone: str
    name: str | None


@dataclass
class PhoneFile:
    """What a phone list file holds, row by row."""

    rows: list[PhoneRow] = field(default_factory=list)
    invalid: list[dict[str, object]] = field(default_factory=list)
    """`{"row": 7, "reason": "not a valid phone number"}` for the first `MAX_REPORTED_ROWS` bad rows."""
    invalid_count: int = 0
    total_rows: int = 0

    def reject(self, row: int, reason: str) -> None:
        self.invalid_count += 1
        if len(self.invalid) < MAX_REPORTED_ROWS:
            self.invalid.append({"row": row, "reason": reason})


def _column(headers: list[str], names: set[str]) -> int | None:
    for index, header in enumerate(headers):
        if header.strip().lower().replace(" ", "") in names:
            return index
    return None


def read_phone_file(path: Path, *, region: str = "CN") -> PhoneFile:
    """Read a phone column (手机/手机号/phone) and an optional name column (姓名/name).

    CSV encodings (UTF-8, GBK) are detected as for customer imports. A file that is empty, has no
    data rows or no phone column is a 422 naming `file`; bad rows are reported, not fatal.
    """
    source = open_source(path)
    phone_at = _column(source.headers, PHONE_HEADERS)
    if phone_at is None:
        raise InvalidInput(
            "the file has no phone column (手机 / 手机号 / phone)",
            details={"field": "file", "headers": source.headers[:20]},
        )
    name_at = _column(source.headers, NAME_HEADERS)
    result = PhoneFile()
    for line, cells, problem in iter_rows(source):
        result.total_rows += 1
        if cells is None:
            result.reject(line, problem or "unreadable row")
            continue
        raw = str(cells[phone_at] if phone_at < len(cells) else "").strip()
        if not raw:
            result.reject(line, "empty phone")
            continue
        try:
            phone = normalize_phone(raw, region=region)
        except InvalidPhone:
            result.reject(line, "not a valid phone number")
            continue
        name = str(cells[name_at]).strip()[:MAX_NAME] if name_at is not None and name_at < len(cells) else ""
        result.rows.append(PhoneRow(row=line, phone=phone, name=name or None))
    if result.total_rows == 0:
        raise InvalidInput("the file has no data rows under its header", details={"field": "file"})
    return result


def check_greeting(greeting: str | None) -> str:
    """A greeting template: at most 500 characters, `{name}` its only placeholder; else 422 naming `greeting`."""
    text = (greeting or "").strip()
    if len(text) > MAX_GREETING:
        raise InvalidInput(f"greeting is longer than {MAX_GREETING} characters", details={"field": "greeting"})
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise InvalidInput(
            "greeting has an unmatched { or }; write {{ or }} for a literal brace", details={"field": "greeting"}
        ) from exc
    for _literal, placeholder, spec, conversion in parts:
        if placeholder is None:
            continue
        if placeholder != "name" or spec or conversion:
            raise InvalidInput(
                f"unknown placeholder {{{placeholder}}} in greeting; only {{name}} is allowed",
                details={"field": "greeting", "placeholder": placeholder},
            )
    return text


def render_greeting(greeting: str, name: str | None) -> str:
    """The greeting with `{name}` filled in (empty when the list gave no name); never evaluates anything else."""
    try:
        parts = list(string.Formatter().parse(greeting))
    except ValueError:
        return greeting
    return "".join(literal + ((name or "") if placeholder == "name" else "") for literal, placeholder, _s, _c in parts)
