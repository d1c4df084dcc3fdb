"""Importing orders from a CSV/XLSX export: read, recognise the layout, group rows into orders,
check every row, and hand the good orders to `ingest_orders` in batches of 1,000.

A bad row is reported with its line number (the header is line 1) and the column at fault, and its
whole order is left out (an order is never written with a line missing). The report is the job's
result. Re-importing the same file changes nothing: orders are idempotent on (platform, order no).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.commerce.orders.importing.layouts import (
    CellError,
    LineRow,
    ResolvedLayout,
    detect_layout,
    parse_paid_at,
    quantity,
    yuan_to_fen,
)
from siyu.commerce.orders.schemas import OrderIn
from siyu.customers.importing.reader import SourceFile, iter_rows, open_source
from siyu.kit.clock import Clock
from siyu.loyalty.program import brand_zone
from siyu.models import OrderSource, Platform

BATCH_ORDERS = 1000
MAX_REPORTED = 1000

Transaction = Callable[[], AbstractContextManager[Session]]
ProgressFn = Callable[[int, int | None], None]


@dataclass
class OrderImportReport:
    layout: str = ""
    file_kind: str = ""
    rows: int = 0
    orders: int = 0
    created: int = 0
    unchanged: int = 0
    parked: int = 0
    rejected: int = 0
    """Orders refused (a bad row, or ingestion refused them: a conflict, an unknown coupon…)."""
    skipped_unpaid: int = 0
    """Rows without a payment time (unpaid or closed orders in a platform export)."""
    rejections: list[dict[str, Any]] = field(default_factory=list)
    """First rejections: `{"row", "field", "order_no", "reason"}`."""

    def reject(self, row: int, column: str, order_no: str, reason: str) -> None:
        if len(self.rejections) < MAX_REPORTED:
            self.rejections.append({"row": row, "field": column, "order_no": order_no, "reason": reason})

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# --- reading ------------------------------------------------------------------------------------


def _rows(source: SourceFile) -> Iterator[tuple[int, list[Any] | None, str | None]]:
    """CSV rows from the customer importer's reader; XLSX rows read here so times keep their clock time."""
    if source.kind != "xlsx":
        yield from iter_rows(source)
        return
    from openpyxl import load_workbook

    workbook = load_workbook(source.path, read_only=True, data_only=True)
    try:
        rows = workbook.worksheets[0].iter_rows(values_only=True)
        header = next(rows, ())
        width = len(header)
        for line, values in enumerate(rows, start=2):
            cells: list[Any] = []
            for value in values[:width]:
                if value is None:
                    cells.append("")
                elif isinstance(value, datetime):
                    cells.append(value)
                elif isinstance(value, float) and value.is_integer():
                    cells.append(str(int(value)))
                else:
                    cells.append(str(value))
            if any(c != "" for c in cells):
                yield line, cells + [""] * (width - len(cells)), None
    finally:
        workbook.close()


def read_line(line: int, cells: list[Any], resolved: ResolvedLayout, zone: ZoneInfo) -> LineRow | None:
    """One row as a `LineRow`; None for an unpaid row; `CellError` naming the column otherwise."""
    layout, index = resolved.layout, resolved.index
    header = {k: resolved.column(k) for k in layout.columns}

    def cell(key: str) -> Any:
        position = index.get(key)
        if position is None or position >= len(cells):
            return ""
        value = cells[position]
        return value.strip().lstrip("\t'=\"").rstrip('"') if isinstance(value, str) else value

    order_no = str(cell("order_no"))
    if not order_no:
        raise CellError(header["order_no"], "required")
    if len(order_no) > 100:
        raise CellError(header["order_no"], "at most 100 characters")
    if layout.platform is not None:
        platform = str(layout.platform)
    else:
        platform = str(cell("platform") or "other").lower()
        if platform not in {str(p) for p in Platform}:
            raise CellError(header["platform"], f"unknown platform {platform!r}; use one of " + ", ".join(Platform))
    raw_paid = cell("paid_at")
    if raw_paid in ("", None):
        if layout.platform is not None:
            return None  # an unpaid or closed order in a platform export
        raise CellError(header["paid_at"], "required")
    order: dict[str, Any] = {"paid_at": parse_paid_at(raw_paid, header["paid_at"], zone)}
    name = str(cell("name")) or None
    sku = str(cell("sku")) or (name[:64] if name else "")
    if not sku:
        raise CellError(header["sku"], "required (or a product name to stand for it)")
    if len(sku) > 64:
        raise CellError(header["sku"], "at most 64 characters")
    line_fen = None
    if cell("line_amount") != "":
        line_fen = yuan_to_fen(str(cell("line_amount")), header["line_amount"])
    elif layout.platform is None:
        raise CellError(header["line_amount"], "required")
    if cell("total") != "":
        order["total_fen"] = yuan_to_fen(str(cell("total")), header["total"])
    elif layout.platform is not None:
        raise CellError(header["total"], "required")
    if cell("shipping") != "":
        order["shipping_fen"] = yuan_to_fen(str(cell("shipping")), header["shipping"])
    identities = []
    if phone := str(cell("phone")):
        identities.append({"type": "phone", "value": phone})
    if (buyer := str(cell("buyer_id"))) and layout.buyer_identity:
        identities.append({"type": layout.buyer_identity, "value": buyer})
    order["identities"] = identities
    if customer := str(cell("customer_id")):
        if not customer.isdigit() or not 0 < int(customer) < 2**62:
            raise CellError(header["customer_id"], f"{customer!r} is not a customer id")
        order["customer_id"] = int(customer)
    for key in ("buyer_name", "staff_code", "store_code", "coupon_code", "campaign"):
        if value := str(cell(key)):
            order[key] = value
    attributes = {k: str(cell(k)) for k in ("shop", "remark") if cell(k) != ""}
    if attributes:
        order["attributes"] = attributes
    category = str(cell("category")) or None
    qty = quantity(str(cell("quantity")), header.get("quantity", "quantity"))
    return LineRow(line, platform, order_no, sku, name, category, qty, line_fen, order)


def build_order(lines: list[LineRow]) -> OrderIn:
    """The order of a group of rows: order-level values from the first row that has them; line
    amounts as given, or split from the order's amount by quantity when the export has none per line
    (the remainder on the last line, so the lines add up to the fen)."""
    first = lines[0]
    merged: dict[str, Any] = {}
    for line in lines:
        for key, value in line.order.items():
            if key == "identities":
                merged.setdefault("identities", [])
                merged["identities"] += [i for i in value if i not in merged["identities"]]
            else:
                merged.setdefault(key, value)
    shipping = merged.get("shipping_fen", 0)
    amounts = [line.line_fen for line in lines]
    if any(a is None for a in amounts):
        goods = merged.get("total_fen", 0) - shipping
        if goods < 0:
            raise CellError("total", "the order's amount is smaller than its shipping")
        units = sum(line.quantity for line in lines)
        split = [goods * line.quantity // units for line in lines]
        split[-1] += goods - sum(split)
        amounts = list(split)
    line_sum = sum(a or 0 for a in amounts)
    total = merged.get("total_fen")
    if total is None:
        total = line_sum + shipping
    elif line_sum + shipping != total:
        raise CellError(
            "total",
            f"lines ({line_sum} fen) plus shipping ({shipping} fen) do not add up to the order's {total} fen",
        )
    return OrderIn.model_validate(
        {
            "platform": first.platform,
            "external_id": first.order_no,
            **{k: v for k, v in merged.items() if k not in ("total_fen", "shipping_fen")},
            "total_fen": total,
            "shipping_fen": shipping,
            "items": [
                {
                    "sku": line.sku,
                    "name": line.name,
                    "category": line.category,
                    "quantity": line.quantity,
                    "amount_fen": amount,
                }
                for line, amount in zip(lines, amounts, strict=True)
            ],
        }
    )


# --- the import ---------------------------------------------------------------------------------


def check_file(path: Path, *, encoding: str | None = None) -> tuple[SourceFile, ResolvedLayout]:
    """Read the header now, so an unreadable file or unknown layout is a 422 at upload, not a failed job."""
    source = open_source(path, encoding=encoding)
    return source, detect_layout(source.headers)


def run_order_import(
    transaction: Transaction,
    *,
    actor: Actor,
    path: Path,
    clock: Clock,
    encoding: str | None = None,
    progress: ProgressFn | None = None,
) -> OrderImportReport:
    """Import an order file; each batch of 1,000 orders commits in its own `transaction()`."""
    from siyu.commerce.orders.ingest import ingest_orders

    actor.require(Scope.COMMERCE_WRITE)
    source, resolved = check_file(path, encoding=encoding)
    report = OrderImportReport(layout=resolved.layout.key, file_kind=source.kind)
    with transaction() as session:
        zone = brand_zone(session, actor.workspace_id)
    groups: dict[tuple[str, str], list[LineRow]] = {}
    bad: dict[tuple[str, str], tuple[int, str, str]] = {}
    for line, cells, problem in _rows(source):
        report.rows += 1
        if cells is None:
            report.reject(line, "", "", problem or "unreadable row")
            report.rejected += 1
            continue
        try:
            parsed = read_line(line, cells, resolved, zone)
        except CellError as exc:
            key = _order_key(cells, resolved)
            if key is None:
                report.rejected += 1
                report.reject(line, exc.column, "", exc.reason)
            else:
                bad.setdefault(key, (line, exc.column, exc.reason))
                groups.setdefault(key, [])
            continue
        if parsed is None:
            report.skipped_unpaid += 1
            continue
        groups.setdefault((parsed.platform, parsed.order_no), []).append(parsed)
    report.orders = len(groups)
    batch: list[tuple[OrderIn, int]] = []
    done = 0
    for key, lines in groups.items():
        if key in bad:
            line, column, reason = bad[key]
            report.rejected += 1
            report.reject(line, column, key[1], reason)
            continue
        try:
            order = build_order(lines)
        except CellError as exc:
            report.rejected += 1
            report.reject(lines[0].row, exc.column, key[1], exc.reason)
            continue
        except ValidationError as exc:
            first = exc.errors()[0]
            report.rejected += 1
            report.reject(lines[0].row, ".".join(str(p) for p in first["loc"]), key[1], first["msg"])
            continue
        batch.append((order, lines[0].row))
        if len(batch) >= BATCH_ORDERS:
            _ingest(transaction, ingest_orders, actor, batch, report, clock)
            done += len(batch)
            batch = []
            if progress:
                progress(done, report.orders)
    if batch:
        _ingest(transaction, ingest_orders, actor, batch, report, clock)
    with transaction() as session:
        record(
            session,
            actor,
            action="import",
            entity_type="order_import",
            entity_id=None,
            after={k: v for k, v in report.as_dict().items() if k != "rejections"} | {"file": path.name},
            clock=clock,
        )
    if progress:
        progress(report.orders, report.orders)
    return report


def _order_key(cells: list[Any], resolved: ResolvedLayout) -> tuple[str, str] | None:
    position = resolved.index.get("order_no")
    if position is None or position >= len(cells) or not str(cells[position]).strip():
        return None
    platform = str(resolved.layout.platform) if resolved.layout.platform else None
    if platform is None:
        where = resolved.index.get("platform")
        platform = str(cells[where]).strip().lower() if where is not None and where < len(cells) else "other"
        platform = platform or "other"
    return platform, str(cells[position]).strip().lstrip("\t'=\"").rstrip('"')


def _ingest(
    transaction: Transaction,
    ingest_orders: Any,
    actor: Actor,
    batch: list[tuple[OrderIn, int]],
    report: OrderImportReport,
    clock: Clock,
) -> None:
    with transaction() as session:
        outcomes = ingest_orders(
            session, actor=actor, orders=[o for o, _ in batch], source=OrderSource.IMPORT, clock=clock
        )
    for outcome in outcomes:
        order, row = batch[outcome.row]
        if outcome.status == "created":
            report.created += 1
        elif outcome.status == "unchanged":
            report.unchanged += 1
        elif outcome.status == "parked":
            report.parked += 1
        else:
            report.rejected += 1
            error = outcome.error
            details = getattr(error, "details", None) or {}
            column = details.get("field", "") if isinstance(details, dict) else ""
            report.reject(row, str(column), order.external_id, str(getattr(error, "message", error)))
