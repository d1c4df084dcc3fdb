"""Products (SKUs) the brand sells: create, edit, list, and upsert from a CSV catalogue.

Order items refer to products by SKU; ingestion takes a missing item name or category from here.
A CSV upload upserts by SKU: rows that fail are reported by row number and field, the good rows
are written (each in its own savepoint), and the whole upload is one audit row.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import Field, field_validator
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.commerce.errors import ProductNotFound
from siyu.kit.clock import Clock
from siyu.kit.errors import Conflict, InvalidInput
from siyu.kit.pagination import Page, decode_id_cursor, encode_cursor
from siyu.kit.schemas import Input
from siyu.models import Product

MAX_PRICE_FEN = 10**11
MAX_CSV_ROWS = 20_000


class ProductIn(Input):
    sku: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    category: str | None = Field(default=None, max_length=100)
    price_fen: int = Field(ge=0, le=MAX_PRICE_FEN)
    repurchase_cycle_days: int | None = Field(default=None, ge=1, le=3650)
    is_active: bool = True

    @field_validator("sku", "name")
    @classmethod
    def _stripped(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        return value

    @field_validator("category")
    @classmethod
    def _category(cls, value: str | None) -> str | None:
        return (value or "").strip() or None


class ProductPatch(Input):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    category: str | None = Field(default=None, max_length=100)
    price_fen: int | None = Field(default=None, ge=0, le=MAX_PRICE_FEN)
    repurchase_cycle_days: int | None = Field(default=None, ge=1, le=3650)
    is_active: bool | None = None


class DuplicateSku(Conflict):
    code = "duplicate_sku"


def _snapshot(product: Product) -> dict[str, Any]:
    return {
        "sku": product.sku,
        "name": product.name,
        "category": product.category,
        "price_fen": product.price_fen,
        "repurchase_cycle_days": product.repurchase_cycle_days,
        "is_active": product.is_active,
    }


def get_product(session: Session, *, workspace_id: int, product_id: int) -> Product:
    product = session.scalar(select(Product).where(Product.workspace_id == workspace_id, Product.id == product_id))
    if product is None:
        raise ProductNotFound(f"no product {product_id}", details={"product_id": product_id})
    return product


def by_sku(session: Session, *, workspace_id: int, sku: str) -> Product | None:
    return session.scalar(select(Product).where(Product.workspace_id == workspace_id, Product.sku == sku))


def by_skus(session: Session, *, workspace_id: int, skus: set[str]) -> dict[str, Product]:
    """The products of these SKUs, in one query (for batch ingestion)."""
    if not skus:
        return {}
    rows = session.scalars(select(Product).where(Product.workspace_id == workspace_id, Product.sku.in_(sorted(skus))))
    return {p.sku: p for p in rows}


def list_products(
    session: Session,
    *,
    workspace_id: int,
    q: str | None = None,
    category: str | None = None,
    is_active: bool | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[Product]:
    """Products by id; `q` matches SKU or name."""
    query = select(Product).where(Product.workspace_id == workspace_id)
    if q:
        escaped = q.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        query = query.where(or_(Product.sku.like(pattern, escape="\\"), Product.name.like(pattern, escape="\\")))
    if category:
        query = query.where(Product.category == category)
    if is_active is not None:
        query = query.where(Product.is_active.is_(is_active))
    if cursor:
        query = query.where(Product.id > decode_id_cursor(cursor))
    rows = list(session.scalars(query.order_by(Product.id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(items=rows, next_cursor=encode_cursor(rows[-1].id) if more and rows else None)


def create_product(session: Session, *, actor: Actor, data: ProductIn, clock: Clock) -> Product:
    actor.require(Scope.COMMERCE_WRITE)
    if by_sku(session, workspace_id=actor.workspace_id, sku=data.sku) is not None:
        raise DuplicateSku(f"a product with SKU {data.sku!r} exists", details={"field": "sku"})
    now = clock.now()
    product = Product(workspace_id=actor.workspace_id, **data.model_dump(), created_at=now, updated_at=now)
    session.add(product)
    session.flush()
    record(
        session,
        actor,
        action="create",
        entity_type="product",
        entity_id=product.id,
        after=_snapshot(product),
        clock=clock,
    )
    return product


def update_product(session: Session, *, actor: Actor, product_id: int, patch: ProductPatch, clock: Clock) -> Product:
    actor.require(Scope.COMMERCE_WRITE)
    product = get_product(session, workspace_id=actor.workspace_id, product_id=product_id)
    before = _snapshot(product)
    changes = patch.model_dump(exclude_unset=True)
    if "name" in changes and (changes["name"] is None or not changes["name"].strip()):
        raise InvalidInput("name must not be blank", details={"field": "name"})
    if "is_active" in changes and changes["is_active"] is None:
        raise InvalidInput("is_active must be true or false", details={"field": "is_active"})
    if "price_fen" in changes and changes["price_fen"] is None:
        raise InvalidInput("price_fen is required", details={"field": "price_fen"})
    for key, value in changes.items():
        if isinstance(value, str):
            value = value.strip() or None  # an empty category clears it; an empty name was refused above
        setattr(product, key, value)
    product.updated_at = clock.now()
    session.flush()
    record(
        session,
        actor,
        action="update",
        entity_type="product",
        entity_id=product.id,
        before=before,
        after=_snapshot(product),
        clock=clock,
    )
    return product


def delete_product(session: Session, *, actor: Actor, product_id: int, clock: Clock) -> None:
    """Remove a product from the catalogue. Orders keep their items (they hold SKU, name and category
    themselves); to stop selling a product but keep it listed, set `is_active` false instead."""
    actor.require(Scope.COMMERCE_WRITE)
    product = get_product(session, workspace_id=actor.workspace_id, product_id=product_id)
    before = _snapshot(product)
    session.delete(product)
    session.flush()
    record(session, actor, action="delete", entity_type="product", entity_id=product_id, before=before, clock=clock)


# --- CSV upsert ----------------------------------------------------------------------------------

CSV_COLUMNS = {
    "sku": ("sku", "商家编码", "商品编码", "货号"),
    "name": ("name", "商品名称", "名称"),
    "category": ("category", "品类", "类目"),
    "price": ("price", "价格", "售价", "单价"),
    "price_fen": ("price_fen",),
    "repurchase_cycle_days": ("repurchase_cycle_days", "复购周期", "复购周期天数"),
    "is_active": ("is_active", "在售"),
}
_TRUE = {"1", "true", "yes", "y", "是", "在售"}
_FALSE = {"0", "false", "no", "n", "否", "停售"}


@dataclass
class ProductCsvReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    rejections: list[dict[str, Any]] = field(default_factory=list)
    """`{"row", "field", "reason"}`; `row` is the line number in the file (the header is line 1)."""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def yuan_to_fen(text: str) -> int:
    """ "12.5" → 1250 exactly (Decimal); more than two decimals, negatives or non-numbers raise ValueError."""
    cleaned = text.strip().replace(",", "").replace("¥", "").replace("￥", "")
    try:
        value = Decimal(cleaned)
    except InvalidOperation as exc:
        raise ValueError(f"{text!r} is not an amount in yuan") from exc
    if not value.is_finite():
        raise ValueError(f"{text!r} is not an amount in yuan")
    fen = value * 100
    if fen != fen.to_integral_value():
        raise ValueError(f"{text!r} has more than two decimals")
    if fen < 0:
        raise ValueError(f"{text!r} is negative")
    return int(fen)


def _csv_text(data: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InvalidInput("the file is neither UTF-8 nor GBK", details={"field": "file"})


def _column_map(headers: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for index, header in enumerate(headers):
        name = header.strip().lower()
        for target, aliases in CSV_COLUMNS.items():
            if name in aliases and target not in found:
                found[target] = index
    if "sku" not in found:
        raise InvalidInput("the header row needs a sku column (sku / 商家编码)", details={"field": "sku", "row": 1})
    return found


def _parse_csv_row(cells: list[str], columns: dict[str, int], existing: Product | None) -> dict[str, Any]:
    """The row as product fields; raises (field, reason) as ValueError args."""

    def cell(name: str) -> str | None:
        index = columns.get(name)
        if index is None or index >= len(cells):
            return None
        return cells[index].strip()

    values: dict[str, Any] = {}
    sku = cell("sku") or ""
    if not sku or len(sku) > 64:
        raise ValueError("sku", "required, at most 64 characters")
    values["sku"] = sku
    name = cell("name")
    if name:
        if len(name) > 200:
            raise ValueError("name", "at most 200 characters")
        values["name"] = name
    elif existing is None:
        raise ValueError("name", "required for a new product")
    category = cell("category")
    if category is not None:
        if len(category) > 100:
            raise ValueError("category", "at most 100 characters")
        values["category"] = category or None
    price_fen = cell("price_fen")
    price = cell("price")
    if price_fen:
        if not price_fen.isdigit() or int(price_fen) > MAX_PRICE_FEN:
            raise ValueError("price_fen", f"{price_fen!r} is not a whole number of fen")
        values["price_fen"] = int(price_fen)
    elif price:
        try:
            values["price_fen"] = yuan_to_fen(price)
        except ValueError as exc:
            raise ValueError("price", str(exc)) from exc
        if values["price_fen"] > MAX_PRICE_FEN:
            raise ValueError("price", "too large")
    elif existing is None:
        raise ValueError("price", "required for a new product")
    cycle = cell("repurchase_cycle_days")
    if cycle is not None:
        if cycle == "":
            values["repurchase_cycle_days"] = None
        elif not cycle.isdigit() or not 1 <= int(cycle) <= 3650:
            raise ValueError("repurchase_cycle_days", f"{cycle!r} is not a number of days from 1 to 3650")
        else:
            values["repurchase_cycle_days"] = int(cycle)
    active = cell("is_active")
    if active:
        if active.lower() in _TRUE:
            values["is_active"] = True
        elif active.lower() in _FALSE:
            values["is_active"] = False
        else:
            raise ValueError("is_active", f"{active!r} is not yes/no")
    return values


def upsert_products_csv(session: Session, *, actor: Actor, data: bytes, clock: Clock) -> ProductCsvReport:
    """Create or update products from a CSV (UTF-8 or GBK), keyed by SKU. Bad rows are reported, not written."""
    actor.require(Scope.COMMERCE_WRITE)
    text = _csv_text(data)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        headers = next(reader)
    except StopIteration:
        raise InvalidInput("the file is empty", details={"field": "file"}) from None
    except csv.Error as exc:
        raise InvalidInput(f"malformed CSV: {exc}", details={"field": "file", "row": 1}) from exc
    columns = _column_map(headers)
    report = ProductCsvReport()
    rows: list[tuple[int, list[str]]] = []
    try:
        for cells in reader:
            if any(c.strip() for c in cells):
                rows.append((reader.line_num, cells))
            if len(rows) > MAX_CSV_ROWS:
                raise InvalidInput(f"at most {MAX_CSV_ROWS} products per file", details={"field": "file"})
    except csv.Error as exc:
        raise InvalidInput(f"malformed CSV at line {reader.line_num}: {exc}", details={"row": reader.line_num}) from exc
    skus = {c[columns["sku"]].strip() for _, c in rows if columns["sku"] < len(c)}
    known = by_skus(session, workspace_id=actor.workspace_id, skus=skus)
    seen: set[str] = set()
    now = clock.now()
    for line, cells in rows:
        report.rows += 1
        sku = cells[columns["sku"]].strip() if columns["sku"] < len(cells) else ""
        existing = known.get(sku)
        try:
            if sku in seen:
                raise ValueError("sku", f"SKU {sku!r} appears twice in the file")
            values = _parse_csv_row(cells, columns, existing)
        except ValueError as exc:
            field_name, reason = exc.args if len(exc.args) == 2 else ("", str(exc))
            report.rejected += 1
            report.rejections.append({"row": line, "field": field_name, "reason": reason})
            continue
        seen.add(sku)
        with session.begin_nested():
            if existing is None:
                product = Product(
                    workspace_id=actor.workspace_id,
                    sku=sku,
                    name=values["name"],
                    category=values.get("category"),
                    price_fen=values["price_fen"],
                    repurchase_cycle_days=values.get("repurchase_cycle_days"),
                    is_active=values.get("is_active", True),
                    created_at=now,
                    updated_at=now,
                )
                session.add(product)
                session.flush()
                known[sku] = product
                report.created += 1
                continue
            before = _snapshot(existing)
            for key, value in values.items():
                setattr(existing, key, value)
            if _snapshot(existing) == before:
                report.unchanged += 1
            else:
                existing.updated_at = now
                report.updated += 1
            session.flush()
    record(
        session,
        actor,
        action="import",
        entity_type="product",
        entity_id=None,
        after={k: v for k, v in report.as_dict().items() if k != "rejections"},
        clock=clock,
    )
    return report


def count_products(session: Session, *, workspace_id: int) -> int:
    return session.scalar(select(func.count()).select_from(Product).where(Product.workspace_id == workspace_id)) or 0
