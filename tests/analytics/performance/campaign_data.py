"""A broadcast with a holdout and a journey, both inside 2026-11-01 ~ 11-23, plus rows that must be left out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from siyu.kit.clock import Clock
from siyu.models import Broadcast, BroadcastStatus, DeliveryStatus, Journey, JourneyStatus, Workspace
from tests.campaigns.results_factories import make_delivery, make_order
from tests.factories import actor_for, make_customer
from tests.messaging.factories import make_account, make_broadcast, make_content
from tests.segments.factories import make_segment


@dataclass
class Campaigns:
    broadcast: Broadcast
    old: Broadcast
    journey: Journey


def build_campaigns(db: Session, clock: Clock, ws: Workspace) -> Campaigns:
    """双十一预热 started 5 days ago to 10 customers: c0–c7 treated (sent), c8–c9 holdout.
    c0 and c1 buy ¥100 each the next day, c2 ¥50 two days ago (within the 7-day goal) → treated
    3/8 = 37.5 %, ¥250; holdout 0/2 = 0 %. An older broadcast (started 2026-10-01) is outside the period.
    新客 SOP (active) sent its step s1 to c0 and c2 three days ago: c0 bought before the message,
    c2 buys ¥50 a day after it → 1 conversion of 2 planned (50 %), ¥50, no holdout.
    """
    actor = actor_for(ws)
    ids = [make_customer(db, actor=actor, clock=clock, name=f"顾客{i}").customer.id for i in range(10)]
    segment = make_segment(db, workspace=ws, clock=clock, members=ids)
    account = make_account(db, workspace=ws, clock=clock)
    content = make_content(db, workspace=ws, clock=clock, body="上新")
    now = clock.now()
    day = timedelta(days=1)

    def broadcast(name: str, start_at: object) -> Broadcast:
        b = make_broadcast(
            db,
            workspace=ws,
            clock=clock,
            segment_id=segment.id,
            accounts=[account],
            contents=[content],
            holdout_pct=20,
            goal={"type": "order", "days": 7},
            name=name,
        )
        b.status, b.started_at, b.planned_at = BroadcastStatus.DONE, start_at, start_at
        return b

    start = now - 5 * day
    main = broadcast("双十一预热", start)
    old = broadcast("国庆", now - 53 * day)
    for i, cid in enumerate(ids):
        if i >= 8:
            make_delivery(db, broadcast=main, customer_id=cid, status=DeliveryStatus.HOLDOUT, planned_at=start)
        else:
            make_delivery(
                db, broadcast=main, customer_id=cid, status=DeliveryStatus.SENT, planned_at=start, sent_at=start
            )
    make_order(db, workspace_id=ws.id, customer_id=ids[0], total_fen=10_000, paid_at=start + day)
    make_order(db, workspace_id=ws.id, customer_id=ids[1], total_fen=10_000, paid_at=start + day)
    journey = Journey(
        workspace_id=ws.id,
        name="新客 SOP",
        status=JourneyStatus.ACTIVE,
        trigger={"type": "relationship_added"},
        steps=[{"id": "s1", "type": "send", "content_id": content.id}],
        goal={"type": "order"},
        activated_at=now - 20 * day,
        created_at=now - 20 * day,
        updated_at=now,
    )
    db.add(journey)
    db.flush()
    sent = now - 3 * day
    for n, cid in enumerate((ids[0], ids[2])):
        make_delivery(
            db,
            workspace_id=ws.id,
            source="journey",
            source_id=journey.id,
            step=f"s1:{n + 1}",
            customer_id=cid,
            status=DeliveryStatus.READ,
            planned_at=sent,
            variant=None,
            sent_at=sent,
            read_at=sent,
        )
    make_order(db, workspace_id=ws.id, customer_id=ids[2], total_fen=5_000, paid_at=sent + day)
    db.flush()
    return Campaigns(main, old, journey)
