"""The order export layouts siyu recognises by their header row, and turning rows into `OrderIn`.

Each layout maps the columns it knows to one vocabulary (`order_no`, `phone`, `paid_at`, `total`,
`sku`…). A header names a layout when it holds the layout's marker columns; siyu's own template
(English or Chinese headers) is tried last. Amounts are yuan in the file and fen in siyu,
converted with `Decimal` (never a float): "12.30" is 1230 fen, "12.345" is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from siyu.kit.errors import InvalidInput
from siyu.models import Platform


@dataclass(frozen=True)
class Layout:
    key: str
    platform: Platform | None
    """None: the file names the platform per row (siyu's template)."""
    markers: tuple[str, ...]
    """Columns that must all be present for the header to be this layout."""
    columns: dict[str, tuple[str, ...]]
    """Vocabulary key → header names, first match wins."""
    buyer_identity: str | None = None
    """The identity type of the `buyer_id` column (taobao, jd, youzan)."""


TAOBAO = Layout(
    key="taobao",
    platform=Platform.TAOBAO,
    markers=("订单编号", "买家实际支付金额"),
    columns={
        "order_no": ("订单编号",),
        "buyer_id": ("买家会员名", "买家昵称"),
        "buyer_name": ("收货人姓名",),
        "phone": ("收货人手机", "联系手机", "收货人手机号"),
        "total": ("买家实际支付金额",),
        "shipping": ("买家应付邮费", "邮费"),
        "paid_at": ("订单付款时间", "付款时间"),
        "name": ("宝贝标题", "商品标题"),
        "sku": ("商家编码", "商品编码", "外部系统编号"),
        "quantity": ("宝贝总数量", "购买数量", "宝贝数量"),
        "line_amount": ("子订单实付金额", "宝贝实付金额"),
        "shop": ("店铺名称",),
        "remark": ("买家留言",),
    },
    buyer_identity="taobao",
)
JD = Layout(
    key="jd",
    platform=Platform.JD,
    markers=("订单号", "应付金额"),
    columns={
        "order_no": ("订单号",),
        "buyer_id": ("下单帐号", "下单账号", "客户账号"),
        "buyer_name": ("客户姓名", "收货人"),
        "phone": ("联系电话", "收货人手机", "手机号"),
        "total": ("应付金额",),
        "shipping": ("运费金额", "运费"),
        "paid_at": ("付款时间", "付款确认时间"),
        "name": ("商品名称",),
        "sku": ("商品编号", "商品ID", "商家SKU"),
        "quantity": ("订购数量", "商品数量"),
        "line_amount": ("结算金额",),
        "remark": ("订单备注",),
    },
    buyer_identity="jd",
)
YOUZAN = Layout(
    key="youzan",
    platform=Platform.YOUZAN,
    markers=("订单号", "订单实付金额"),
    columns={
        "order_no": ("订单号",),
        "phone": ("买家手机号", "收货人手机号", "收货人手机"),
        "buyer_name": ("买家姓名", "收货人姓名", "收货人"),
        "total": ("订单实付金额",),
        "shipping": ("运费", "订单运费"),
        "paid_at": ("付款时间", "订单付款时间"),
        "name": ("商品名称",),
        "sku": ("商品编码", "规格编码", "商品规格编码"),
        "quantity": ("商品数量", "数量"),
        "line_amount": ("商品实际成交金额", "商品实付金额"),
        "remark": ("买家备注", "买家留言"),
    },
)
TEMPLATE = Layout(
    key="siyu",
    platform=None,
    markers=(),
    columns={
        "platform": ("platform", "平台"),
        "order_no": ("external_id", "order_no", "订单号"),
        "customer_id": ("customer_id", "客户ID"),
        "phone": ("phone", "手机号"),
        "buyer_name": ("buyer_name", "买家姓名"),
        "paid_at": ("paid_at", "付款时间"),
        "sku": ("sku", "SKU", "商品编码"),
        "name": ("product_name", "商品名称"),
        "category": ("category", "品类"),
        "quantity": ("quantity", "数量"),
        "line_amount": ("amount", "金额"),
        "shipping": ("shipping", "运费"),
        "total": ("total", "订单金额"),
        "staff_code": ("staff_code", "导购码"),
        "store_code": ("store_code", "门店编码"),
        "coupon_code": ("coupon_code", "优惠券码"),
        "campaign": ("campaign", "活动"),
    },
)
LAYOUTS = (TAOBAO, YOUZAN, JD)
"""Youzan before JD: both say 订单号, only Youzan has 订单实付金额."""
TEMPLATE_REQUIRED = ("order_no", "paid_at", "sku", "line_amount")


@dataclass
class ResolvedLayout:
    layout: Layout
    index: dict[str, int]
    """Vocabulary key → column index."""
    headers: list[str] = field(default_factory=list)

    def column(self, key: str) -> str:
        """The header a vocabulary key was read from (the layout's name for it when the file lacks it)."""
        position = self.index.get(key)
        if position is not None and position < len(self.headers):
            return self.headers[position]
        return self.layout.columns[key][0]


def detect_layout(headers: list[str]) -> ResolvedLayout:
    """The layout of a header row, or a 422 naming what a siyu template needs."""
    names = [h.strip() for h in headers]
    present = set(names)
    for layout in LAYOUTS:
        if all(m in present for m in layout.markers):
            return ResolvedLayout(layout, _index(layout, names), names)
    lowered = [n.lower() for n in names]
    index = _index(TEMPLATE, lowered, casefold=True)
    missing = [k for k in TEMPLATE_REQUIRED if k not in index]
    if missing:
        wanted = ", ".join(TEMPLATE.columns[k][0] for k in missing)
        raise InvalidInput(
            f"unrecognised header row: not a Taobao/Tmall, JD or Youzan export, and siyu's template needs {wanted}",
            details={"field": "file", "row": 1, "missing": [TEMPLATE.columns[k][0] for k in missing]},
        )
    return ResolvedLayout(TEMPLATE, index, names)


def _index(layout: Layout, names: list[str], *, casefold: bool = False) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, aliases in layout.columns.items():
        for alias in aliases:
            wanted = alias.lower() if casefold else alias
            if wanted in names:
                out[key] = names.index(wanted)
                break
    return out


# --- cells ----------------------------------------------------------------------------------------


class CellError(ValueError):
    """A cell that cannot be read; `column` names the header."""

    def __init__(self, column: str, reason: str) -> None:
        super().__init__(f"{column}: {reason}")
        self.column = column
        self.reason = reason


def yuan_to_fen(text: str, column: str) -> int:
    """Yuan as written in an export ("1,299.00", "¥12.5") → fen exactly."""
    cleaned = text.strip().replace(",", "").replace("¥", "").replace("￥", "").replace("元", "")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise CellError(column, f"{text!r} is not an amount in yuan") from None
    if not value.is_finite():
        raise CellError(column, f"{text!r} is not an amount in yuan")
    fen = value * 100
    if fen != fen.to_integral_value():
        raise CellError(column, f"{text!r} has more than two decimals")
    if fen < 0:
        raise CellError(column, f"{text!r} is negative")
    if fen > 10**13:
        raise CellError(column, f"{text!r} is too large")
    return int(fen)


_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d")


def parse_paid_at(value: Any, column: str, zone: ZoneInfo) -> datetime:
    """A payment time: ISO with an offset as given; a wall time without one is the brand's local time."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=zone)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=zone)
    text = str(value).strip()
    if not text:
        raise CellError(column, "required")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = None
        for fmt in _FORMATS:
            try:
                parsed = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
    if parsed is None:
        raise CellError(column, f"{text!r} is not a time (use 2026-11-23 10:00:00)")
    if not 1970 <= parsed.year <= 2999:
        raise CellError(column, f"{text!r} is out of range")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def quantity(text: str, column: str) -> int:
    cleaned = text.strip()
    if not cleaned:
        return 1
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise CellError(column, f"{text!r} is not a whole number") from None
    if not value.is_finite() or value != value.to_integral_value() or not 1 <= value <= 100_000:
        raise CellError(column, f"{text!r} is not a whole number from 1 to 100000")
    return int(value)


@dataclass
class LineRow:
    """One row of the file, read: the order it belongs to and the line it adds."""

    row: int
    platform: str
    order_no: str
    sku: str
    name: str | None
    category: str | None
    quantity: int
    line_fen: int | None
    order: dict[str, Any] = field(default_factory=dict)
    """Order-level values (total_fen, shipping_fen, paid_at, identities, codes…) as far as this row gives them."""
