"""Archiving a journey stops what it queued: held deliveries are cancelled and their cap slots returned."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.campaigns.journeys.engine import run_journeys
from siyu.campaigns.journeys.service import archive_journey
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.models import Delivery, Journey
from tests.campaigns.journeys.factories import make_journey
from tests.factories import actor_for, make_customer, make_workspace
from tests.messaging.factories import make_account, make_content, make_policy
from tests.segments.factories import make_event


def _deliveries(db: Session, journey: Journey) -> list[tuple[int, str, str | None, bool]]:
    db.expire_all()
    rows = db.scalars(
        select(Delivery)
        .where(Delivery.source == "journey", Delivery.source_id == journey.id)
        .order_by(Delivery.customer_id)
    )
    return [(r.customer_id, str(r.status), r.reason, r.slot_at is not None) for r in rows]


def test_archiving_cancels_queued_deliveries_and_gives_their_cap_slots_back(
    db: Session, database: Database, clock: FrozenClock
) -> None:
    # given a cap of one message a day, and a journey that queued a welcome for two customers
    workspace = make_workspace(db, clock=clock)
    make_policy(db, workspace=workspace, clock=clock, caps={"all": {"day": 1}})
    account = make_account(db, workspace=workspace, clock=clock)
    item = make_content(db, workspace=workspace, clock=clock, body="欢迎入群")
    send = [{"id": "welcome", "type": "send", "content_id": item.id}]
    journey = make_journey(
        db,
        workspace=workspace,
        clock=clock,
        trigger={"type": "group_joined"},
        steps=send,
        channel_account_ids=[account.id],
    )
    actor = actor_for(workspace)
    customers = [make_customer(db, actor=actor, clock=clock, name=n).customer for n in ("王芳", "李雷")]
    for customer in customers:
        make_event(db, customer=customer, type="group.joined", occurred_at=clock.now())
    db.commit()
    run_journeys(database, clock)
    first, second = (c.id for c in customers)
    assert _deliveries(db, journey) == [(first, "queued", None, True), (second, "queued", None, True)]
    # when the journey is archived (twice: a repeated click)
    archive_journey(db, actor=actor, journey_id=journey.id, clock=clock)
    archive_journey(db, actor=actor, journey_id=journey.id, clock=clock)
    db.commit()
    # then its queued deliveries are suppressed as cancelled, without a slot
    assert _deliveries(db, journey) == [
        (first, "suppressed", "cancelled", False),
        (second, "suppressed", "cancelled", False),
    ]
    # and the slots are free again: another journey's send today is queued, not capped
    other = make_journey(
        db,
        workspace=workspace,
        clock=clock,
        trigger={"type": "relationship_added"},
        steps=[{"id": "hello", "type": "send", "content_id": item.id}],
        channel_account_ids=[account.id],
    )
    for customer in customers:
        make_event(db, customer=customer, type="relationship.added", occurred_at=clock.now())
    db.commit()
    run_journeys(database, clock)
    assert _deliveries(db, other) == [(first, "queued", None, True), (second, "queued", None, True)]
