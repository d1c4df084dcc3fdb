"""Streaming readers for CSV and XLSX files: rows come one at a time, never the whole file.

CSV encodings are checked in a first streaming pass (which also counts rows for progress):
a BOM means UTF-8; otherwise UTF-8 if the whole file decodes as UTF-8, else GB18030 (a
superset of GBK and GB2312, which Excel on Chinese Windows writes).
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from siyu.kit.errors import InvalidInput

ENCODINGS = {"utf-8": "utf-8", "utf-8-sig": "utf-8-sig", "gbk": "gb18030", "gb2312": "gb18030", "gb18030": "gb18030"}
_CHUNK = 1 << 20
MAX_FIELD_LENGTH = 10_000


class ImportFileError(InvalidInput):
    """The file as a whole cannot be read (wrong encoding, malformed CSV, not a spreadsheet)."""

    code = "invalid_file"


@dataclass
class SourceFile:
    """A readable import file: its header, encoding, and an estimate of data rows."""

    path: Path
    kind: str  # "csv" or "xlsx"
    encoding: str | None
    headers: list[str]
    total_rows: int | None


def _has_utf8_bom(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(3) == codecs.BOM_UTF8


def _decodes(path: Path, encoding: str) -> tuple[bool, int, int]:
    """Stream-decode the file; returns (ok, line number of the first bad byte, newline count)."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    lines = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                return False, lines + chunk[: exc.start].count(b"\n") + 1, lines
            lines += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False, lines + 1, lines
    return True, 0, lines


def detect_encoding(path: Path, requested: str | None = None) -> tuple[str, int]:
    """The encoding to read `path` with, and its newline count; 422 if it does not decode."""
    if requested:
        key = requested.strip().lower().replace("_", "-")
        if key not in ENCODINGS:
            raise ImportFileError(
                f"unsupported encoding {requested!r}; use utf-8 or gbk", details={"field": "encoding"}
            )
        encoding = "utf-8-sig" if ENCODINGS[key].startswith("utf-8") else ENCODINGS[key]
        ok, bad_line, lines = _decodes(path, encoding)
        if not ok:
            raise ImportFileError(
                f"the file is not valid {requested} (line {bad_line}); choose another encoding",
                details={"field": "encoding", "line": bad_line},
            )
        return encoding, lines
    if _has_utf8_bom(path):
        ok, bad_line, lines = _decodes(path, "utf-8-sig")
        if not ok:
            raise ImportFileError(
                f"the file starts as UTF-8 but is not valid UTF-8 at line {bad_line}",
                details={"field": "encoding", "line": bad_line},
            )
        return "utf-8-sig", lines
    ok, _, lines = _decodes(path, "utf-8")
    if ok:
        return "utf-8", lines
    ok, bad_line, lines = _decodes(path, "gb18030")
    if ok:
        return "gb18030", lines
    raise ImportFileError(
        f"cannot tell the file's encoding (not UTF-8, not GBK; line {bad_line})",
        details={"field": "encoding", "line": bad_line},
    )


def _is_xlsx(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) == b"PK\x03\x04"


def open_source(path: Path, *, encoding: str | None = None) -> SourceFile:
    """Inspect a file: kind, encoding, header row and row count."""
    if not path.exists() or path.stat().st_size == 0:
        raise ImportFileError("the file is empty", details={"field": "file"})
    if _is_xlsx(path):
        headers, total = _xlsx_header(path)
        return SourceFile(path=path, kind="xlsx", encoding=None, headers=headers, total_rows=total)
    detected, lines = detect_encoding(path, encoding)
    with path.open("r", encoding=detected, newline="") as handle:
        try:
            headers = next(csv.reader(handle, dialect=_dialect(path, detected)), [])
        except csv.Error as exc:
            raise ImportFileError(f"malformed CSV header: {exc}", details={"line": 1}) from exc
    headers = [h.strip() for h in headers]
    if not any(headers):
        raise ImportFileError("the first row must name the columns", details={"line": 1})
    return SourceFile(path=path, kind="csv", encoding=detected, headers=headers, total_rows=max(lines - 1, 0))


def _dialect(path: Path, encoding: str) -> type[csv.Dialect]:
    with path.open("r", encoding=encoding, newline="") as handle:
        sample = handle.read(16_384)
    first_line = sample.splitlines()[0] if sample else ""
    # Exports from Chinese shops use commas, tabs or semicolons; pick what the header uses.
    counts = {d: first_line.count(d) for d in (",", "\t", ";")}
    delimiter = max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","

    class Dialect(csv.excel):
        pass

    Dialect.delimiter = delimiter
    Dialect.strict = True  # a stray or unclosed quote is an error, not a silently joined row
    return Dialect


def iter_rows(source: SourceFile) -> Iterator[tuple[int, list[Any] | None, str | None]]:
    """Yield `(line number, cells, problem)` for each data row; cells is None when the row is unreadable."""
    if source.kind == "xlsx":
        yield from _xlsx_rows(source.path)
        return
    assert source.encoding is not None
    csv.field_size_limit(MAX_FIELD_LENGTH)
    width = len(source.headers)
    with source.path.open("r", encoding=source.encoding, newline="") as handle:
        reader = csv.reader(handle, dialect=_dialect(source.path, source.encoding))
        try:
            next(reader)
        except (StopIteration, csv.Error):
            return
        while True:
            start = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                # The reader resets after an error and goes on with the next line.
                yield start, None, f"malformed CSV: {exc}"
                continue
            line = start
            if not any(c.strip() for c in cells):
                continue
            if len(cells) > width and any(c.strip() for c in cells[width:]):
                yield line, None, f"expected {width} columns, found {len(cells)}"
                continue
            yield line, cells[:width] + [""] * (width - len(cells)), None


def _xlsx_header(path: Path) -> tuple[list[str], int | None]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for broken files
        raise ImportFileError("not a readable XLSX file", details={"field": "file"}) from exc
    try:
        sheet = workbook.worksheets[0]
        first = next(sheet.iter_rows(min_row=1, max_row=1, values_only=True), ())
        headers = ["" if v is None else str(v).strip() for v in first]
        total = (sheet.max_row or 1) - 1 if sheet.max_row else None
    finally:
        workbook.close()
    while headers and not headers[-1]:
        headers.pop()
    if not any(headers):
        raise ImportFileError("the first row must name the columns", details={"line": 1})
    return headers, total


def _xlsx_rows(path: Path) -> Iterator[tuple[int, list[Any] | None, str | None]]:
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        sheet = workbook.worksheets[0]
        rows = sheet.iter_rows(values_only=True)
        header = next(rows, ())
        width = len([h for h in header if h is not None]) or len(header)
        for line, values in enumerate(rows, start=2):
            cells = [_xlsx_cell(v) for v in values[:width]]
            if not any(cells):
                continue
            yield line, cells + [""] * (width - len(cells)), None
    finally:
        workbook.close()


def _xlsx_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # phone numbers typed as numbers
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)
