"""Listeners and jobs of distribution commission: earn on paid orders, reverse on refunds."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from siyu.customers.activity import on_order_refunded, on_orders_paid
from siyu.kit.clock import Clock
from siyu.models import Order, Refund
from siyu.referrals.commission import ledger


@on_orders_paid
def earn_commission(session: Session, orders: Sequence[Order], clock: Clock) -> None:
    """KOCs earn on their referees' newly paid orders (one query when nothing can earn)."""
    ledger.earn_for_orders(session, orders, clock)


@on_order_refunded
def reverse_commission(session: Session, order: Order, refund: Refund, clock: Clock) -> None:
    """A refund takes back the order's commission in proportion (one query when it earned none)."""
    ledger.reverse_for_refund(session, order, refund, clock)
