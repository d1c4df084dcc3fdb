"""Order shapes for the orders tests."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from siyu.commerce.orders.schemas import OrderIn

_seq = itertools.count(1)
PAID = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)


def order_in(
    *,
    phone: str | None = None,
    customer_id: int | None = None,
    external_id: str | None = None,
    platform: str = "taobao",
    items: list[dict[str, Any]] | None = None,
    shipping_fen: int = 0,
    paid_at: datetime = PAID,
    **extra: Any,
) -> OrderIn:
    """An order of one 199-yuan line (unless `items` says otherwise) that adds up."""
    lines = items if items is not None else [{"sku": "SKU-1", "name": "洗面奶", "amount_fen": 19_900}]
    identities = [] if customer_id is not None else [{"type": "phone", "value": phone or "13800138000"}]
    data: dict[str, Any] = {
        "platform": platform,
        "external_id": external_id or f"T{next(_seq)}",
        "customer_id": customer_id,
        "identities": identities,
        "total_fen": sum(int(i["amount_fen"]) for i in lines) + shipping_fen,
        "shipping_fen": shipping_fen,
        "paid_at": paid_at.isoformat(),
        "items": lines,
    } | extra
    return OrderIn.model_validate(data)
