"""What the demo broadcast brought: orders after the message, and its planning job marked done."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.campaigns.broadcasts.tasks import PLAN_KIND
from siyu.demo.products import PRODUCTS
from siyu.messaging.planning import bucket
from siyu.models import (
    CustomerEvent,
    Delivery,
    Job,
    JobStatus,
    Order,
    OrderItem,
    OrderStatus,
    ShortLinkClick,
)

BUY_AFTER_CLICK_PER_10K = 4_000
BUY_AFTER_SEND_PER_10K = 400
"""Extra buyers the message made (per 10,000): among treated customers who clicked, and who did not."""


def orders_after(session: Session, ws: int, broadcast_id: int, now: datetime, seed: int) -> int:
    """Orders the message brought: a share of the treated customers who clicked and of those who
    did not buy within the window. The holdout only has what the history gave it."""
    clicked = {
        customer_id
        for (customer_id,) in session.execute(
            select(Delivery.customer_id)
            .join(ShortLinkClick, ShortLinkClick.link_id == Delivery.short_link_id)
            .where(Delivery.workspace_id == ws, Delivery.source == "broadcast", Delivery.source_id == broadcast_id)
        )
    }
    rows = session.execute(
        select(Delivery.customer_id, Delivery.sent_at)
        .where(
            Delivery.workspace_id == ws,
            Delivery.source == "broadcast",
            Delivery.source_id == broadcast_id,
            Delivery.sent_at.is_not(None),
        )
        .order_by(Delivery.customer_id)
    ).all()
    salt = f"{seed}:touch-orders:{broadcast_id}"
    made = 0
    for customer_id, sent_at in rows:
        share = BUY_AFTER_CLICK_PER_10K if customer_id in clicked else BUY_AFTER_SEND_PER_10K
        draw = bucket(salt, customer_id)
        if draw >= share:
            continue
        assert sent_at is not None  # the query keeps sent rows only
        bought = min(sent_at + timedelta(hours=2 + draw % 96), now - timedelta(minutes=5))
        paid_at = bought.replace(microsecond=0)
        product = PRODUCTS[draw % len(PRODUCTS)]
        external_id = f"WX{paid_at:%Y%m%d}T{broadcast_id:03d}{customer_id:07d}"
        order = Order(
            workspace_id=ws,
            customer_id=customer_id,
            platform="miniprogram",
            external_id=external_id,
            status=OrderStatus.PAID,
            total_fen=product.price_fen,
            refunded_fen=0,
            paid_at=paid_at,
            created_at=paid_at,
        )
        session.add(order)
        session.flush()
        session.add(
            OrderItem(
                workspace_id=ws,
                order_id=order.id,
                customer_id=customer_id,
                sku=product.sku,
                product_name=product.name,
                category=product.category,
                quantity=1,
                amount_fen=product.price_fen,
            )
        )
        session.add(
            CustomerEvent(
                workspace_id=ws,
                customer_id=customer_id,
                type="order.paid",
                occurred_at=paid_at,
                properties={"platform": "miniprogram", "external_id": external_id, "total_fen": product.price_fen},
                source="miniprogram",
                idempotency_key=f"demo:touch-order:{order.id}",
                recorded_at=paid_at,
            )
        )
        made += 1
    return made


def plan_job_done(session: Session, ws: int, broadcast_id: int, sent_at: datetime) -> None:
    """Submitting queued a planning job; the dispatch above did its work, so it is recorded as done
    (not left queued for a worker to pick up days later)."""
    counts = dict(
        session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.workspace_id == ws, Delivery.source == "broadcast", Delivery.source_id == broadcast_id)
            .group_by(Delivery.status)
        ).all()
    )
    for job in session.scalars(
        select(Job).where(Job.workspace_id == ws, Job.kind == PLAN_KIND, Job.status == JobStatus.QUEUED)
    ):
        if int(job.args.get("broadcast_id", 0)) != broadcast_id:
            continue
        job.status, job.attempts = JobStatus.SUCCEEDED, 1
        job.started_at, job.finished_at = sent_at, sent_at
        job.result = {"planned": {str(k): int(v) for k, v in counts.items()}}
