"""Coupons in touches: a journey `coupon` step issues one per enrolment and fills the next send's
`{{ coupon_code }}`; a broadcast with a coupon template issues each recipient one."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.campaigns.broadcasts.planner import run_planning
from siyu.campaigns.broadcasts.service import submit_broadcast
from siyu.campaigns.broadcasts.tasks import dispatch
from siyu.campaigns.journeys.engine import run_journeys
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput
from siyu.models import Coupon, Customer, Delivery, Journey, SandboxMessage, Workspace
from tests.campaigns.journeys.factories import enrolments_of, make_journey, runs_of
from tests.commerce.coupons.factories import make_template
from tests.factories import actor_for, make_customer, make_workspace
from tests.messaging.factories import make_account, make_broadcast, make_content, make_policy
from tests.segments.factories import make_event, make_segment


def _customer(db: Session, workspace: Workspace, clock: FrozenClock, name: str) -> Customer:
    return make_customer(db, actor=actor_for(workspace), clock=clock, name=name).customer


def _journey(db: Session, ws: Workspace, clock: FrozenClock, steps: list[dict[str, Any]], account_id: int) -> Journey:
    return make_journey(
        db, workspace=ws, clock=clock, trigger={"type": "group_joined"}, steps=steps, channel_account_ids=[account_id]
    )


def _messages(db: Session, ws: Workspace) -> list[str]:
    db.expire_all()
    rows = db.scalars(
        select(SandboxMessage)
        .join(Customer, Customer.id == SandboxMessage.customer_id)
        .where(Customer.workspace_id == ws.id)
        .order_by(SandboxMessage.customer_id)
    )
    return [m.message["text"] for m in rows]


def test_journey_coupon_step_fills_the_next_send(db: Session, database: Database, clock: FrozenClock) -> None:
    # given a journey "coupon → send {{ coupon_code }}" and a customer who joins a group
    ws = make_workspace(db, clock=clock)
    make_policy(db, workspace=ws, clock=clock)
    account = make_account(db, workspace=ws, clock=clock)
    template = make_template(db, workspace=ws, clock=clock, name="入群礼")
    item = make_content(db, workspace=ws, clock=clock, body="{{ name }}，入群礼券 {{ coupon_code }}")
    journey = _journey(
        db,
        ws,
        clock,
        [
            {"id": "gift", "type": "coupon", "template_id": template.id},
            {"id": "hi", "type": "send", "content_id": item.id},
        ],
        account.id,
    )
    customer = _customer(db, ws, clock, "王芳")
    make_event(db, customer=customer, type="group.joined", occurred_at=clock.now())
    db.commit()
    # when the engine and the sender run, twice
    for _ in range(2):
        run_journeys(database, clock)
        dispatch(database, clock)
    # then one coupon was issued and its code went out
    [entry] = enrolments_of(db, journey)
    coupon = db.scalar(select(Coupon).where(Coupon.customer_id == customer.id))
    assert coupon is not None
    assert (coupon.source, coupon.idempotency_key) == (f"journey:{journey.id}:step:gift", f"journey:{entry.id}:0")
    assert runs_of(db, entry) == [("gift", "coupon:issued"), ("hi", "queued")]
    assert _messages(db, ws) == [f"王芳，入群礼券 {coupon.code}"]


def test_journey_coupon_step_out_of_stock_skips_the_coupon_send(
    db: Session, database: Database, clock: FrozenClock
) -> None:
    ws = make_workspace(db, clock=clock)
    make_policy(db, workspace=ws, clock=clock)
    account = make_account(db, workspace=ws, clock=clock)
    template = make_template(db, workspace=ws, clock=clock, total_stock=0)
    item = make_content(db, workspace=ws, clock=clock, body="券码 {{ coupon_code }}")
    journey = _journey(
        db,
        ws,
        clock,
        [
            {"id": "gift", "type": "coupon", "template_id": template.id},
            {"id": "hi", "type": "send", "content_id": item.id},
        ],
        account.id,
    )
    customer = _customer(db, ws, clock, "李雷")
    make_event(db, customer=customer, type="group.joined", occurred_at=clock.now())
    db.commit()
    run_journeys(database, clock)
    [entry] = enrolments_of(db, journey)
    assert runs_of(db, entry) == [("gift", "coupon:coupon_out_of_stock"), ("hi", "skipped:no_coupon")]


def test_journey_coupon_step_needs_an_active_template(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    with pytest.raises(InvalidInput) as caught:
        make_journey(
            db,
            workspace=ws,
            clock=clock,
            trigger={"type": "group_joined"},
            steps=[{"id": "c", "type": "coupon", "template_id": 999_999}],
        )
    assert caught.value.details == {"field": "steps", "path": "$.steps[0].template_id"}


def _broadcast_world(db: Session, clock: FrozenClock, names: list[str], **template: Any) -> tuple[Workspace, Any, Any]:
    ws = make_workspace(db, clock=clock)
    make_policy(db, workspace=ws, clock=clock)
    ids = [_customer(db, ws, clock, name).id for name in names]
    segment = make_segment(db, workspace=ws, clock=clock, members=ids)
    account = make_account(db, workspace=ws, clock=clock)
    item = make_content(db, workspace=ws, clock=clock, body="{{ name }}，专属券 {{ coupon_code }}")
    coupon_template = make_template(db, workspace=ws, clock=clock, **template)
    broadcast = make_broadcast(
        db,
        workspace=ws,
        clock=clock,
        segment_id=segment.id,
        accounts=[account],
        contents=[item],
        coupon_template_id=coupon_template.id,
    )
    return ws, broadcast, coupon_template


def test_broadcast_issues_each_recipient_a_coupon(db: Session, database: Database, clock: FrozenClock) -> None:
    # given a broadcast carrying a coupon template, to three customers
    ws, broadcast, template = _broadcast_world(db, clock, ["甲", "乙", "丙"])
    assert broadcast.brief["coupon_template_id"] == template.id
    submit_broadcast(db, actor=actor_for(ws), broadcast_id=broadcast.id, clock=clock)
    db.commit()
    # when it is planned (twice: a replayed job) and sent
    run_planning(database, ws.id, broadcast.id, clock, batch_size=2)
    run_planning(database, ws.id, broadcast.id, clock, batch_size=2)
    dispatch(database, clock)
    # then each got one coupon keyed by the broadcast, and the message carries it
    db.expire_all()
    coupons = db.scalars(select(Coupon).where(Coupon.template_id == template.id).order_by(Coupon.customer_id)).all()
    assert [c.idempotency_key for c in coupons] == [f"broadcast:{broadcast.id}:c{c.customer_id}" for c in coupons]
    assert len(coupons) == 3
    assert _messages(db, ws) == [f"{n}，专属券 {c.code}" for n, c in zip(["甲", "乙", "丙"], coupons, strict=True)]


def test_broadcast_recipients_beyond_the_stock_are_suppressed(
    db: Session, database: Database, clock: FrozenClock
) -> None:
    ws, broadcast, _template = _broadcast_world(db, clock, ["甲", "乙", "丙"], total_stock=2)
    submit_broadcast(db, actor=actor_for(ws), broadcast_id=broadcast.id, clock=clock)
    db.commit()
    counts = run_planning(database, ws.id, broadcast.id, clock)
    assert dict(counts.by_reason) == {"coupon_out_of_stock": 1}
    db.expire_all()
    statuses = db.scalars(
        select(Delivery.status)
        .where(Delivery.source == "broadcast", Delivery.source_id == broadcast.id)
        .order_by(Delivery.customer_id)
    ).all()
    assert list(statuses) == ["queued", "queued", "suppressed"]


def test_broadcast_coupon_code_needs_a_template(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    segment = make_segment(db, workspace=ws, clock=clock, members=[])
    account = make_account(db, workspace=ws, clock=clock)
    item = make_content(db, workspace=ws, clock=clock, body="券码 {{ coupon_code }}")
    with pytest.raises(InvalidInput) as caught:
        make_broadcast(db, workspace=ws, clock=clock, segment_id=segment.id, accounts=[account], contents=[item])
    assert caught.value.details == {"field": "variants.0.content_id", "variable": "coupon_code"}
    assert "coupon_template_id" in caught.value.message
    with pytest.raises(InvalidInput) as unknown:
        make_broadcast(
            db,
            workspace=ws,
            clock=clock,
            segment_id=segment.id,
            accounts=[account],
            contents=[item],
            coupon_template_id=999_999,
        )
    assert unknown.value.details == {"field": "coupon_template_id"}
