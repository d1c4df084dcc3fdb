"""Background jobs and listeners of referrals (imported by `siyu.tasks` and the app).

Each listener costs at most one indexed query when nothing concerns referrals."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from siyu.customers.activity import on_group_joined, on_order_refunded, on_orders_paid
from siyu.kit.clock import Clock
from siyu.livecodes.adds import AddOutcome, on_live_code_add
from siyu.models import Order, Refund
from siyu.referrals import attribution


@on_live_code_add
def attribute_live_code_add(session: Session, outcome: AddOutcome, clock: Clock) -> None:
    """A new friend through a live code: attribute it to the referral link the visitor scanned."""
    if outcome.scan is None:
        return
    attribution.on_add(
        session,
        workspace_id=outcome.customer.workspace_id,
        customer_id=outcome.customer.id,
        is_new_customer=outcome.is_new_customer,
        visitor_id=outcome.scan.visitor_id,
        clock=clock,
    )


@on_orders_paid
def qualify_first_orders(session: Session, orders: Sequence[Order], clock: Clock) -> None:
    """Paid orders: qualify the pending referrals whose condition is the referee's first order."""
    attribution.on_orders(session, orders, clock)


@on_group_joined
def qualify_group_joins(session: Session, workspace_id: int, customer_id: int, group_id: int, clock: Clock) -> None:
    """A group join: qualify a pending joined-group referral."""
    attribution.on_group_join(
        session, workspace_id=workspace_id, customer_id=customer_id, group_id=group_id, clock=clock
    )


@on_order_refunded
def reverse_refunded(session: Session, order: Order, refund: Refund, clock: Clock) -> None:
    """A refund of a qualifying order: reverse the referral when the order no longer qualifies."""
    attribution.on_refund(session, order, refund, clock)
