"""Report tables: every chart has one, and every one exports as CSV or XLSX with the same cells.

A `ReportTable` holds typed columns and plain rows; the console renders it with the
`report_table` macro (templates/analytics/_macros.html) and `export_response` serves it as a file.
Money is kept in fen and shown in yuan; rates are kept as fractions (0.25) and shown as percents;
None means "no denominator" and is shown as "—", never as NaN or 0.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, WriteOnlyCell
from starlette.responses import Response, StreamingResponse

from siyu.customers.export import safe_cell
from siyu.kit.errors import InvalidInput


class Kind(StrEnum):
    TEXT = "text"
    INT = "int"
    FEN = "fen"  # money in fen; shown and exported in yuan
    RATE = "rate"  # a fraction; shown as a percent, exported as the fraction
    NUMBER = "number"  # any other float, shown with two decimals
    DATE = "date"


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: Kind = Kind.TEXT


@dataclass
class ReportTable:
    """A table of figures: `rows` are dicts keyed by the columns' keys."""

    title: str
    columns: list[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)
    footer: dict[str, Any] | None = None
    """An optional totals row, rendered and exported last."""

    def all_rows(self) -> list[dict[str, Any]]:
        return self.rows + ([self.footer] if self.footer else [])


def clean(value: float | None) -> float | None:
    """None for NaN or infinity, so no page or file ever shows "nan"."""
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return value


def display(value: Any, kind: Kind) -> str:
    """The text a cell shows in the console."""
    if value is None or (isinstance(value, float) and clean(value) is None):
        return "—"
    if kind == Kind.FEN:
        return f"¥{value / 100:,.2f}"
    if kind == Kind.RATE:
        return f"{value * 100:.1f}%"
    if kind == Kind.NUMBER:
        return f"{value:,.2f}"
    if kind == Kind.INT:
        return f"{int(value):,}"
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)


def _file_value(value: Any, kind: Kind) -> Any:
    """The value a cell exports: yuan for money, the fraction for rates, blank for None; text that a
    spreadsheet would run as a formula gets a leading quote, and control characters are dropped."""
    if value is None or (isinstance(value, float) and clean(value) is None):
        return None
    if isinstance(value, str):
        return safe_cell(ILLEGAL_CHARACTERS_RE.sub("", value))
    if kind == Kind.FEN:
        return round(value / 100, 2)
    if kind == Kind.RATE:
        return round(float(value), 6)
    return value


def csv_bytes(table: ReportTable) -> bytes:
    """UTF-8 with a BOM, so Excel opens the Chinese headers correctly."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([safe_cell(c.label) for c in table.columns])
    for row in table.all_rows():
        values = [_file_value(row.get(c.key), c.kind) for c in table.columns]
        writer.writerow(["" if v is None else v for v in values])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


MAX_XLSX_ROWS = 1_048_575
"""A sheet holds 1,048,576 rows, one of them the header; larger tables export as CSV only."""

_NUMBER_FORMATS = {Kind.FEN: "#,##0.00", Kind.RATE: "0.0%", Kind.NUMBER: "#,##0.00"}


def xlsx_bytes(table: ReportTable) -> bytes:
    """One sheet, written in openpyxl's streaming mode; numbers stay numbers (money in yuan, rates
    as fractions formatted as percents). More rows than a sheet holds: `InvalidInput` on "format"."""
    rows = table.all_rows()
    if len(rows) > MAX_XLSX_ROWS:
        raise InvalidInput(
            f"{len(rows):,} rows do not fit in one XLSX sheet; export CSV instead", details={"field": "format"}
        )
    book = Workbook(write_only=True)
    sheet = book.create_sheet(re.sub(r"[\[\]:*?/\\]", " ", table.title)[:31] or "report")
    sheet.append([safe_cell(ILLEGAL_CHARACTERS_RE.sub("", c.label)) for c in table.columns])
    formats = [_NUMBER_FORMATS.get(c.kind) for c in table.columns]
    for row in rows:
        cells: list[Any] = []
        for column, number_format in zip(table.columns, formats, strict=True):
            value = _file_value(row.get(column.key), column.kind)
            if number_format and value is not None:
                cell = WriteOnlyCell(sheet, value=value)
                cell.number_format = number_format
                cells.append(cell)
            else:
                cells.append(value)
        sheet.append(cells)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


EXPORT_FORMATS = ("csv", "xlsx")


def export_response(table: ReportTable, fmt: str, filename: str) -> Response:
    """The table as a download; `fmt` is "csv" or "xlsx" (anything else: `InvalidInput` on "format")."""
    if fmt == "csv":
        body, media = csv_bytes(table), "text/csv; charset=utf-8"
    elif fmt == "xlsx":
        body, media = xlsx_bytes(table), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    else:
        raise InvalidInput("format must be csv or xlsx", details={"field": "format"})
    return Response(body, media_type=media, headers=_disposition(f"{filename}.{fmt}"))


def table_json(table: ReportTable) -> dict[str, Any]:
    """The table for the JSON API: columns with their kinds, rows with raw values (fen, fractions)."""
    return {
        "title": table.title,
        "columns": [{"key": c.key, "label": c.label, "kind": str(c.kind)} for c in table.columns],
        "rows": [{c.key: _json_value(row.get(c.key)) for c in table.columns} for row in table.rows],
        "footer": None
        if table.footer is None
        else {c.key: _json_value(table.footer.get(c.key)) for c in table.columns},
    }


def _json_value(value: Any) -> Any:
    if isinstance(value, float):
        return clean(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


def columns(*specs: tuple[str, str] | tuple[str, str, Kind]) -> list[Column]:
    """Shorthand: `columns(("day", "日期", Kind.DATE), ("adds", "添加", Kind.INT))`."""
    return [Column(*spec) for spec in specs]


def ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator, or None when there is nothing to divide by."""
    return numerator / denominator if denominator else None


def change(current: float | None, previous: float | None) -> float | None:
    """Relative change against the previous period (0.25 = +25 %); None when the previous is 0 or unknown."""
    if current is None or previous is None or previous == 0:
        return None
    return (current - previous) / abs(previous)


__all__: Sequence[str] = (
    "EXPORT_FORMATS",
    "MAX_XLSX_ROWS",
    "Column",
    "Kind",
    "ReportTable",
    "change",
    "clean",
    "columns",
    "csv_bytes",
    "csv_line",
    "display",
    "export_response",
    "ratio",
    "stream_csv",
    "table_json",
    "xlsx_bytes",
)


def csv_line(values: list[Any]) -> str:
    """One CSV line (with its newline) of already-exported cell values."""
    out = io.StringIO()
    csv.writer(out).writerow(["" if v is None else v for v in values])
    return out.getvalue()


def stream_csv(columns: list[Column], rows: Iterator[dict[str, Any]], filename: str) -> StreamingResponse:
    """A large table as a CSV download, streamed row by row (BOM first, cells as `csv_bytes` writes them)."""

    def lines() -> Iterator[bytes]:
        # Rows go out 1,000 to a chunk: Starlette hands each chunk to a worker thread, which would
        # cost more than the row itself if every row were its own chunk.
        batch = ["\ufeff" + csv_line([safe_cell(c.label) for c in columns])]
        for row in rows:
            batch.append(csv_line([_file_value(row.get(c.key), c.kind) for c in columns]))
            if len(batch) >= 1000:
                yield "".join(batch).encode("utf-8")
                batch = []
        if batch:
            yield "".join(batch).encode("utf-8")

    return StreamingResponse(lines(), media_type="text/csv; charset=utf-8", headers=_disposition(f"{filename}.csv"))


def _disposition(name: str) -> dict[str, str]:
    ascii_name = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return {"Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"}
