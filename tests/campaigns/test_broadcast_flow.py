"""A broadcast end to end on the sandbox: submit, plan, send, with holdout, consent and caps."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.campaigns.broadcasts.planner import run_planning
from siyu.campaigns.broadcasts.service import submit_broadcast
from siyu.campaigns.broadcasts.tasks import dispatch
from siyu.customers.service.privacy import erase_customer
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.models import Broadcast, BroadcastStatus, Delivery, SandboxMessage, TouchState
from tests.factories import actor_for, make_customer, make_workspace
from tests.messaging.factories import make_account, make_broadcast, make_content, make_policy
from tests.segments.factories import make_consent, make_segment


def test_a_broadcast_reaches_each_eligible_customer_once(db: Session, database: Database, clock: FrozenClock) -> None:
    # given 40 customers, 3 of them unsubscribed from SMS, a 20% holdout and a per-day cap of 1
    workspace = make_workspace(db, clock=clock)
    actor = actor_for(workspace)
    customers = [make_customer(db, actor=actor, clock=clock, name=f"顾客{i}").customer for i in range(40)]
    for customer in customers[:3]:
        make_consent(db, customer=customer, channel="sms", status="unsubscribed", at=clock.now())
    make_policy(db, workspace=workspace, clock=clock, caps={"all": {"day": 1}})
    segment = make_segment(db, workspace=workspace, clock=clock, members=[c.id for c in customers])
    account = make_account(db, workspace=workspace, clock=clock, settings={"consent_channel": "sms"})
    item = make_content(db, workspace=workspace, clock=clock)
    broadcast = make_broadcast(
        db, workspace=workspace, clock=clock, segment_id=segment.id, accounts=[account], contents=[item], holdout_pct=20
    )
    # when it is submitted and dispatched twice (a second sweep must change nothing)
    submit_broadcast(db, actor=actor, broadcast_id=broadcast.id, clock=clock)
    db.commit()
    first = dispatch(database, clock)
    second = dispatch(database, clock)
    # then every member has exactly one row, and only the eligible ones got a message
    rows = db.scalars(select(Delivery).where(Delivery.source_id == broadcast.id)).all()
    assert len(rows) == 40
    statuses = Counter((r.status, r.reason) for r in rows)
    holdout = statuses[("holdout", None)]
    assert 0 < holdout < 20
    unsubscribed = [r for r in rows if r.reason == "unsubscribed"]
    assert {r.customer_id for r in unsubscribed} <= {c.id for c in customers[:3]}
    assert statuses[("sent", None)] == 40 - holdout - len(unsubscribed)
    outbox = db.scalars(select(SandboxMessage)).all()
    assert len(outbox) == statuses[("sent", None)]
    assert {m.message["text"] for m in outbox} == {
        f"{c.name}，双十一会员专享礼已到账" for c in customers if c.id in {m.customer_id for m in outbox}
    }
    assert first.sent.sent == len(outbox) and second.sent.sent == 0
    db.expire_all()
    assert db.get(Broadcast, broadcast.id).status == BroadcastStatus.DONE  # type: ignore[union-attr]


def test_erasing_a_customer_removes_their_messages_and_stops_queued_ones(
    db: Session, database: Database, clock: FrozenClock
) -> None:
    # given two customers; one message was sent, and a second broadcast is queued for later
    workspace = make_workspace(db, clock=clock)
    actor = actor_for(workspace)
    first, second = (make_customer(db, actor=actor, clock=clock, name=n).customer for n in ("王芳", "李雷"))
    make_policy(db, workspace=workspace, clock=clock)  # no caps: this test is about erasure
    segment = make_segment(db, workspace=workspace, clock=clock, members=[first.id, second.id])
    account = make_account(db, workspace=workspace, clock=clock)
    item = make_content(db, workspace=workspace, clock=clock)
    sent = make_broadcast(
        db, workspace=workspace, clock=clock, segment_id=segment.id, accounts=[account], contents=[item]
    )
    later = make_broadcast(
        db,
        workspace=workspace,
        clock=clock,
        segment_id=segment.id,
        accounts=[account],
        contents=[make_content(db, workspace=workspace, clock=clock, body="明天见")],
    )
    submit_broadcast(db, actor=actor, broadcast_id=sent.id, clock=clock)
    db.commit()
    dispatch(database, clock)
    later.scheduled_at = clock.now()
    submit_broadcast(db, actor=actor, broadcast_id=later.id, clock=clock)
    db.commit()
    run_planning(database, workspace.id, later.id, clock)
    # when the first customer is erased
    erase_customer(db, actor=actor, customer_id=first.id, clock=clock)
    db.flush()
    db.expire_all()
    # then their sandbox message is gone, their rows keep no text or address, and nothing more is sent to them
    assert [m.customer_id for m in db.scalars(select(SandboxMessage))] == [second.id]
    rows = db.scalars(select(Delivery).where(Delivery.customer_id == first.id).order_by(Delivery.id)).all()
    assert [(r.status, r.reason, r.message) for r in rows] == [("sent", None, None), ("suppressed", "erased", None)]
    assert db.get(TouchState, first.id) is None
    # and a later broadcast to both suppresses the erased profile
    third = make_broadcast(
        db,
        workspace=workspace,
        clock=clock,
        segment_id=segment.id,
        accounts=[account],
        contents=[make_content(db, workspace=workspace, clock=clock, body="周末见")],
    )
    submit_broadcast(db, actor=actor, broadcast_id=third.id, clock=clock)
    db.commit()
    dispatch(database, clock)
    db.expire_all()
    rows = db.scalars(select(Delivery).where(Delivery.source_id == third.id).order_by(Delivery.customer_id)).all()
    assert {r.customer_id: (r.status, r.reason) for r in rows} == {
        first.id: ("suppressed", "erased"),
        second.id: ("sent", None),
    }
