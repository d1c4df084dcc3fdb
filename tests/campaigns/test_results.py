"""Broadcast and journey results: exact numbers on a small fixture, the uplift against a holdout,
and the sandbox's simulated engagement."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.campaigns.broadcasts.service import submit_broadcast
from siyu.campaigns.broadcasts.tasks import dispatch
from siyu.campaigns.results import Arm, broadcast_results, journey_step_results, simulate_engagement, uplift
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import NotFound, PermissionDenied
from siyu.models import (
    AdapterKind,
    Broadcast,
    BroadcastStatus,
    CustomerEvent,
    Delivery,
    DeliveryStatus,
    Journey,
    JourneyEnrolment,
    JourneyStatus,
    JourneyStepRun,
    ShortLink,
    ShortLinkClick,
    Workspace,
)
from tests.campaigns.results_factories import (
    make_click,
    make_delivery,
    make_order,
    make_recipient_link,
    make_timeline_event,
)
from tests.factories import actor_for, make_customer, make_staff, make_workspace
from tests.messaging.factories import make_account, make_broadcast, make_content
from tests.segments.factories import make_segment

S = DeliveryStatus


@dataclass
class Campaign:
    workspace: Workspace
    actor: Actor
    broadcast: Broadcast
    customers: list[int]
    start: Any
    contents: dict[str, int]


def _campaign(db: Session, clock: FrozenClock, *, goal: dict[str, Any] | None = None, holdout: bool = True) -> Campaign:
    """20 customers of a broadcast started ten days ago: c15–c19 are the holdout (25 %); of the 15
    treated, c0–c4 read, c5–c9 delivered, c10–c11 sent, c12 failed, c13 unsubscribed, c14 capped.
    Even customers got variant A, odd ones B. Sent customers have their own short link."""
    workspace = make_workspace(db, clock=clock)
    actor = actor_for(workspace)
    ids = [make_customer(db, actor=actor, clock=clock, name=f"顾客{i}").customer.id for i in range(20)]
    segment = make_segment(db, workspace=workspace, clock=clock, members=ids)
    account = make_account(db, workspace=workspace, clock=clock)
    a, b = (make_content(db, workspace=workspace, clock=clock, body=body) for body in ("上新", "会员日"))
    broadcast = make_broadcast(
        db,
        workspace=workspace,
        clock=clock,
        segment_id=segment.id,
        accounts=[account],
        contents=[a, b],
        holdout_pct=25 if holdout else 0,
        goal=goal or {"type": "order", "days": 7},
    )
    start = clock.now() - timedelta(days=10)
    broadcast.status, broadcast.started_at, broadcast.planned_at = BroadcastStatus.DONE, start, start
    sent_at = start + timedelta(minutes=5)
    for i, cid in enumerate(ids):
        variant, content = ("A", a.id) if i % 2 == 0 else ("B", b.id)
        values: dict[str, Any] = {}
        if i >= 15:
            status = S.HOLDOUT if holdout else S.SENT
        elif i < 5:
            status = S.READ
        elif i < 10:
            status = S.DELIVERED
        elif i < 12:
            status = S.SENT
        elif i == 12:
            status, values = S.FAILED, {"reason": "isv.MOBILE_NUMBER_ILLEGAL"}
        else:
            status, values = S.SUPPRESSED, {"reason": "unsubscribed" if i == 13 else "capped"}
        if status in (S.READ, S.DELIVERED, S.SENT):
            link = make_recipient_link(db, workspace_id=workspace.id, customer_id=cid, at=sent_at)
            values |= {"sent_at": sent_at, "short_link_id": link.id, "channel_account_id": account.id}
        if status in (S.READ, S.DELIVERED):
            values["delivered_at"] = sent_at + timedelta(minutes=1)
        if status == S.READ:
            values["read_at"] = sent_at + timedelta(minutes=5)
        make_delivery(
            db,
            broadcast=broadcast,
            customer_id=cid,
            status=status,
            planned_at=start,
            variant=variant,
            content_id=content,
            **values,
        )
    return Campaign(workspace, actor, broadcast, ids, start, {"A": a.id, "B": b.id})


def _delivery(db: Session, campaign: Campaign, i: int) -> Delivery:
    delivery = db.scalar(
        select(Delivery).where(
            Delivery.source_id == campaign.broadcast.id, Delivery.customer_id == campaign.customers[i]
        )
    )
    assert delivery is not None
    return delivery


def _orders(db: Session, c: Campaign, extra_buyers: int = 0) -> None:
    """3 treated buyers in the window (c0; c1 partly refunded; c13, suppressed), 1 holdout buyer (c15);
    not counted: c2 before the send and after the window, c4 refunded in full, c16 at the window's end."""
    day = timedelta(days=1)
    ws, ids, t0 = c.workspace.id, c.customers, c.start
    make_order(db, workspace_id=ws, customer_id=ids[0], total_fen=10_000, paid_at=t0 + day)
    make_order(db, workspace_id=ws, customer_id=ids[1], total_fen=20_000, refunded_fen=5_000, paid_at=t0 + 2 * day)
    make_order(db, workspace_id=ws, customer_id=ids[13], total_fen=8_000, paid_at=t0 + 3 * day)
    make_order(db, workspace_id=ws, customer_id=ids[2], total_fen=40_000, paid_at=t0 - day)
    make_order(db, workspace_id=ws, customer_id=ids[2], total_fen=30_000, paid_at=t0 + 8 * day)
    make_order(db, workspace_id=ws, customer_id=ids[4], total_fen=15_000, refunded_fen=15_000, paid_at=t0 + day)
    make_order(db, workspace_id=ws, customer_id=ids[15], total_fen=12_000, paid_at=t0 + day)
    make_order(db, workspace_id=ws, customer_id=ids[16], total_fen=9_000, paid_at=t0 + 7 * day)
    for i in range(extra_buyers):  # c6, c7, c8…
        make_order(db, workspace_id=ws, customer_id=ids[6 + i], total_fen=1_000, paid_at=t0 + day)


def _clicks(db: Session, c: Campaign) -> None:
    """c0 clicks twice, c1 a day later, c2 after the 7-day window; c3 unsubscribes through its link."""
    t0 = c.start
    for i, at in (
        (0, t0 + timedelta(hours=1)),
        (0, t0 + timedelta(hours=2)),
        (1, t0 + timedelta(days=1)),
        (2, t0 + timedelta(days=9)),
    ):
        link = db.get(ShortLink, _delivery(db, c, i).short_link_id)
        assert link is not None
        make_click(db, link=link, at=at)
    _delivery(db, c, 3).unsubscribed_at = t0 + timedelta(hours=1)
    db.flush()


def test_broadcast_results_count_every_row_and_compare_the_arms(db: Session, clock: FrozenClock) -> None:
    # given the 20-customer campaign with its orders and clicks
    c = _campaign(db, clock)
    _orders(db, c)
    _clicks(db, c)
    # when its results are read
    results = broadcast_results(db, actor=c.actor, broadcast_id=c.broadcast.id, clock=clock)
    # then every audience row is counted once, by status and suppression reason
    assert results.planned == 20
    assert results.by_status == {"read": 5, "delivered": 5, "sent": 2, "failed": 1, "suppressed": 2, "holdout": 5}
    assert results.suppressed_by_reason == {"unsubscribed": 1, "capped": 1}
    assert (results.sent, results.delivered, results.read, results.failed) == (12, 10, 5, 1)
    assert (results.clicked, results.unsubscribed) == (3, 1)
    # and the arms are compared on the intention-to-treat basis: c13 (suppressed) counts, GMV is net of refunds
    assert results.treated == Arm(customers=15, conversions=3, gmv_fen=33_000)
    assert results.holdout == Arm(customers=5, conversions=1, gmv_fen=12_000)
    assert results.goal == {"type": "order", "days": 7, "event_type": None, "is_default": False}
    assert [
        (v.key, v.content_id, v.recipients, v.sent, v.clicked, v.conversions, v.gmv_fen) for v in results.variants
    ] == [
        ("A", c.contents["A"], 8, 6, 2, 1, 10_000),
        ("B", c.contents["B"], 7, 6, 1, 2, 23_000),
    ]
    # and the uplift is 0.2 − 0.2 with Newcombe's interval, computed by hand from the Wilson limits
    # of 3/15 (0.070475, 0.451854) and 1/5 (0.036224, 0.624465)
    assert results.uplift is not None
    assert results.uplift.rate_treated == pytest.approx(0.2)
    assert results.uplift.rate_holdout == pytest.approx(0.2)
    assert results.uplift.difference == pytest.approx(0.0, abs=1e-12)
    assert results.uplift.ci_low == pytest.approx(-0.443788, abs=1e-6)
    assert results.uplift.ci_high == pytest.approx(0.300422, abs=1e-6)
    assert results.uplift.p_value == pytest.approx(1.0)
    assert results.uplift.relative == pytest.approx(0.0, abs=1e-12)
    assert results.staff == []


def test_uplift_with_more_treated_buyers(db: Session, clock: FrozenClock) -> None:
    # given three more treated buyers: 6 of 15 against 1 of 5
    c = _campaign(db, clock)
    _orders(db, c, extra_buyers=3)
    # when the results are read
    results = broadcast_results(db, actor=c.actor, broadcast_id=c.broadcast.id, clock=clock)
    # then the uplift is 0.2 with the hand-computed interval and the pooled z-test's p-value (z = 0.811998)
    assert results.treated == Arm(customers=15, conversions=6, gmv_fen=36_000)
    assert results.uplift is not None
    assert results.uplift.difference == pytest.approx(0.2)
    assert (results.uplift.ci_low, results.uplift.ci_high) == (
        pytest.approx(-0.269974, abs=1e-6),
        pytest.approx(0.492650, abs=1e-6),
    )
    assert results.uplift.p_value == pytest.approx(0.416793, abs=1e-6)
    assert results.uplift.relative == pytest.approx(1.0)


def test_a_click_goal_counts_clicks_on_the_recipient_link_within_the_window(db: Session, clock: FrozenClock) -> None:
    # given the campaign with a click goal: c0 and c1 click within 7 days of their send, c2 after 9 days
    c = _campaign(db, clock, goal={"type": "click", "days": 7})
    _orders(db, c)
    _clicks(db, c)
    # when the results are read
    results = broadcast_results(db, actor=c.actor, broadcast_id=c.broadcast.id, clock=clock)
    # then two treated customers converted and the holdout, who got no link, none; GMV is still counted
    assert results.treated == Arm(customers=15, conversions=2, gmv_fen=33_000)
    assert results.holdout == Arm(customers=5, conversions=0, gmv_fen=12_000)
    assert [(v.key, v.conversions) for v in results.variants] == [("A", 1), ("B", 1)]


def test_an_event_goal_counts_timeline_events_of_its_type(db: Session, clock: FrozenClock) -> None:
    # given a check-in goal: c5 checks in after the send, c13 (suppressed) after the start, c6 before,
    # holdout c16 during the window and c17 checks out (another type)
    c = _campaign(db, clock, goal={"type": "event", "days": 7, "event_type": "checkin"})
    for i, type_, at in (
        (5, "checkin", timedelta(days=2)),
        (13, "checkin", timedelta(hours=1)),
        (6, "checkin", timedelta(hours=-1)),
        (16, "checkin", timedelta(days=3)),
        (17, "page.view", timedelta(days=1)),
    ):
        make_timeline_event(db, workspace_id=c.workspace.id, customer_id=c.customers[i], type_=type_, at=c.start + at)
    # when the results are read
    results = broadcast_results(db, actor=c.actor, broadcast_id=c.broadcast.id, clock=clock)
    # then
    assert (results.treated.conversions, results.holdout and results.holdout.conversions) == (2, 1)


def test_without_a_holdout_there_is_no_uplift(db: Session, clock: FrozenClock) -> None:
    # given the same campaign sent to everyone
    c = _campaign(db, clock, holdout=False)
    _orders(db, c)
    # when the results are read
    results = broadcast_results(db, actor=c.actor, broadcast_id=c.broadcast.id, clock=clock)
    # then everyone is treated, c15 buys within a week of her send (c16's order is 5 minutes inside too)
    assert results.treated == Arm(customers=20, conversions=5, gmv_fen=54_000)
    assert results.holdout is None and results.uplift is None


def test_a_broadcast_without_a_goal_is_measured_on_orders_within_7_days(db: Session, clock: FrozenClock) -> None:
    # given the campaign whose goal was never set
    c = _campaign(db, clock)
    c.broadcast.goal = {}
    _orders(db, c)
    # when the results are read
    results = broadcast_results(db, actor=c.actor, broadcast_id=c.broadcast.id, clock=clock)
    # then the default goal is used, and said to be the default
    assert results.goal == {"type": "order", "days": 7, "is_default": True}
    assert results.treated.conversions == 3


def test_results_need_touch_read_and_stay_in_the_workspace(db: Session, clock: FrozenClock) -> None:
    # given a campaign and an actor of another workspace, and one without touch:read
    c = _campaign(db, clock)
    other = actor_for(make_workspace(db, clock=clock))
    blind = Actor(kind="token", workspace_id=c.workspace.id, label="t", scopes=frozenset({"customers:read"}))
    # when / then
    with pytest.raises(NotFound):
        broadcast_results(db, actor=other, broadcast_id=c.broadcast.id, clock=clock)
    with pytest.raises(PermissionDenied):
        broadcast_results(db, actor=blind, broadcast_id=c.broadcast.id, clock=clock)


def test_staff_completion_counts_the_wecom_sends_of_each_staff_member(db: Session, clock: FrozenClock) -> None:
    # given a WeCom broadcast whose rows were assigned to two staff members
    workspace = make_workspace(db, clock=clock)
    actor = actor_for(workspace)
    lin, wang = (make_staff(db, workspace=workspace, clock=clock, name=n) for n in ("林晓雨", "王芳"))
    ids = [make_customer(db, actor=actor, clock=clock).customer.id for _ in range(5)]
    account = make_account(db, workspace=workspace, clock=clock)
    broadcast = make_broadcast(
        db,
        workspace=workspace,
        clock=clock,
        segment_id=make_segment(db, workspace=workspace, clock=clock, members=ids).id,
        accounts=[account],
        contents=[make_content(db, workspace=workspace, clock=clock)],
    )
    now = clock.now()
    for cid, staff, status in zip(
        ids, (lin, lin, lin, wang, wang), (S.DELIVERED, S.SENT, S.QUEUED, S.READ, S.FAILED), strict=True
    ):
        sent: dict[str, Any] = {"sent_at": now} if status in (S.DELIVERED, S.SENT, S.READ) else {}
        make_delivery(
            db, broadcast=broadcast, customer_id=cid, status=status, planned_at=now, staff_id=staff.id, **sent
        )
    # when the results are read
    results = broadcast_results(db, actor=actor, broadcast_id=broadcast.id, clock=clock)
    # then each staff member's share is counted
    assert [(s.name, s.assigned, s.sent, s.delivered) for s in results.staff] == [
        ("林晓雨", 3, 2, 1),
        ("王芳", 2, 1, 1),
    ]


def test_journey_step_results_count_each_send_step(db: Session, clock: FrozenClock) -> None:
    # given a journey whose welcome step sent to three enrolments and was suppressed for one
    workspace = make_workspace(db, clock=clock)
    actor = actor_for(workspace)
    ids = [make_customer(db, actor=actor, clock=clock).customer.id for _ in range(4)]
    welcome = make_content(db, workspace=workspace, clock=clock, body="欢迎")
    steps = [
        {"id": "s1", "type": "send", "content_id": welcome.id},
        {"id": "s2", "type": "wait", "days": 3},
        {"id": "s3", "type": "branch", "condition": {"event_type": "order.paid"}, "then": "s5", "else": "s4"},
        {"id": "s4", "type": "send", "content_id": welcome.id},
        {"id": "s5", "type": "exit"},
    ]
    now = clock.now()
    journey = Journey(
        workspace_id=workspace.id,
        name="新客 7 天 SOP",
        status=JourneyStatus.ACTIVE,
        trigger={"type": "relationship_added"},
        steps=steps,
        goal={"type": "order"},
        created_at=now,
        updated_at=now,
    )
    db.add(journey)
    db.flush()
    sent_at = now - timedelta(days=5)
    for n, cid in enumerate(ids):
        enrolment = JourneyEnrolment(
            workspace_id=workspace.id,
            journey_id=journey.id,
            customer_id=cid,
            entry_key=f"event:{n}",
            enrolled_at=sent_at,
        )
        db.add(enrolment)
        db.flush()
        status = S.SUPPRESSED if n == 3 else S.READ
        values = {"reason": "capped"} if n == 3 else {"sent_at": sent_at, "read_at": sent_at}
        make_delivery(
            db,
            workspace_id=workspace.id,
            source="journey",
            source_id=journey.id,
            step=f"s1:{enrolment.id}",
            customer_id=cid,
            status=status,
            planned_at=sent_at,
            variant=None,
            content_id=welcome.id,
            **values,
        )
        outcomes = [("s1", "sent" if n < 3 else "suppressed")] + ([("s2", "waited")] if n < 2 else [])
        for index, (step_id, outcome) in enumerate(outcomes):
            db.add(
                JourneyStepRun(
                    workspace_id=workspace.id,
                    enrolment_id=enrolment.id,
                    journey_id=journey.id,
                    step_index=index,
                    step_id=step_id,
                    outcome=outcome,
                    ran_at=sent_at,
                )
            )
    make_order(db, workspace_id=workspace.id, customer_id=ids[0], total_fen=29_900, paid_at=sent_at + timedelta(days=1))
    # when the step results are read
    results = journey_step_results(db, actor=actor, journey_id=journey.id, clock=clock)
    # then the send steps have their numbers, the others only their type
    assert [(r.step_id, r.type, r.planned) for r in results] == [
        ("s1", "send", 4),
        ("s2", "wait", 0),
        ("s3", "branch", 0),
        ("s4", "send", 0),
        ("s5", "exit", 0),
    ]
    first = results[0]
    assert (first.content_id, first.sent, first.read, first.suppressed_by_reason) == (welcome.id, 3, 3, {"capped": 1})
    assert (first.conversions, first.gmv_fen) == (1, 29_900)
    assert [r.runs for r in results[:3]] == [{"sent": 3, "suppressed": 1}, {"waited": 2}, {}]
    with pytest.raises(NotFound):
        journey_step_results(db, actor=actor_for(make_workspace(db, clock=clock)), journey_id=journey.id, clock=clock)


def test_a_real_broadcast_then_simulated_engagement_shows_up_in_its_results(
    db: Session, database: Database, clock: FrozenClock
) -> None:
    # given a broadcast with a link, sent to 60 customers through the sandbox with a 10% holdout
    workspace = make_workspace(db, clock=clock)
    actor = actor_for(workspace)
    ids = [make_customer(db, actor=actor, clock=clock, name=f"顾客{i}").customer.id for i in range(60)]
    account = make_account(db, workspace=workspace, clock=clock)
    item = make_content(
        db,
        workspace=workspace,
        clock=clock,
        body="{{ name }}，新品上架 {{ link }}",
        link_url="https://shop.example.com/new",
    )
    broadcast = make_broadcast(
        db,
        workspace=workspace,
        clock=clock,
        segment_id=make_segment(db, workspace=workspace, clock=clock, members=ids).id,
        accounts=[account],
        contents=[item],
        holdout_pct=10,
        goal={"type": "click", "days": 3},
    )
    submit_broadcast(db, actor=actor, broadcast_id=broadcast.id, clock=clock)
    db.commit()
    dispatch(database, clock)
    # when engagement is simulated an hour later, twice
    later = FrozenClock(clock.now() + timedelta(hours=1))
    first = simulate_engagement(
        db, workspace_id=workspace.id, source="broadcast", source_id=broadcast.id, clock=later, seed=7
    )
    second = simulate_engagement(
        db, workspace_id=workspace.id, source="broadcast", source_id=broadcast.id, clock=later, seed=7
    )
    # then the results show exactly what the simulation reported, and the second run changed nothing
    results = broadcast_results(db, actor=actor, broadcast_id=broadcast.id, clock=later)
    holdout = results.by_status.get("holdout", 0)
    assert results.planned == 60 and results.sent == 60 - holdout
    assert first["considered"] == 60 - holdout
    assert (results.delivered, results.read, results.clicked) == (first["delivered"], first["read"], first["clicked"])
    assert 0 < first["clicked"] < first["read"] < first["delivered"]
    assert second == {"considered": 60 - holdout - first["delivered"], "delivered": 0, "read": 0, "clicked": 0}
    assert results.treated.conversions == first["clicked"]
    # and each click went through the public click path: a click row and a link.clicked timeline event
    assert db.scalar(select(func.count()).select_from(ShortLinkClick)) == first["clicked"]
    events = db.scalar(
        select(func.count()).where(CustomerEvent.workspace_id == workspace.id, CustomerEvent.type == "link.clicked")
    )
    assert events == first["clicked"]


def test_simulated_engagement_never_touches_a_real_channel(db: Session, clock: FrozenClock) -> None:
    # given a row sent through a webhook account
    workspace = make_workspace(db, clock=clock)
    actor = actor_for(workspace)
    cid = make_customer(db, actor=actor, clock=clock).customer.id
    account = make_account(
        db, workspace=workspace, clock=clock, kind=AdapterKind.WEBHOOK, settings={"url": "https://hooks.example.com"}
    )
    row = make_delivery(
        db,
        workspace_id=workspace.id,
        source_id=99,
        customer_id=cid,
        status=S.SENT,
        planned_at=clock.now(),
        sent_at=clock.now(),
        channel_account_id=account.id,
    )
    # when engagement is simulated for its source
    outcome = simulate_engagement(db, workspace_id=workspace.id, source="broadcast", source_id=99, clock=clock, seed=1)
    # then nothing was considered or changed
    assert outcome == {"considered": 0, "delivered": 0, "read": 0, "clicked": 0}
    db.refresh(row)
    assert (row.status, row.delivered_at) == ("sent", None)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(
        st.tuples(st.sampled_from([S.HOLDOUT, S.SUPPRESSED, S.SENT, S.READ, S.FAILED]), st.booleans()),
        min_size=1,
        max_size=12,
    )
)
def test_the_arms_partition_the_audience_and_the_interval_holds_the_difference(
    db: Session, clock: FrozenClock, rows: list[tuple[DeliveryStatus, bool]]
) -> None:
    # given any mix of delivery statuses, some of whose customers bought within the window
    savepoint = db.begin_nested()
    try:
        workspace = make_workspace(db, clock=clock)
        actor = actor_for(workspace)
        broadcast = Broadcast(
            workspace_id=workspace.id,
            name="性质测试",
            status=BroadcastStatus.DONE,
            segment_id=make_segment(db, workspace=workspace, clock=clock, members=[]).id,
            variants=[{"key": "A", "content_id": 0}],
            goal={"type": "order", "days": 7},
            started_at=clock.now() - timedelta(days=3),
            created_at=clock.now(),
            updated_at=clock.now(),
        )
        db.add(broadcast)
        db.flush()
        for status, bought in rows:
            cid = make_customer(db, actor=actor, clock=clock).customer.id
            sent: dict[str, Any] = {"sent_at": broadcast.started_at} if status in (S.SENT, S.READ) else {}
            make_delivery(db, broadcast=broadcast, customer_id=cid, status=status, planned_at=clock.now(), **sent)
            if bought:
                make_order(db, workspace_id=workspace.id, customer_id=cid, total_fen=100, paid_at=clock.now())
        # when the results are read
        results = broadcast_results(db, actor=actor, broadcast_id=broadcast.id, clock=clock)
        # then treated and holdout customers are the audience rows, and conversions are the buyers
        holdout = results.holdout.customers if results.holdout else 0
        assert results.treated.customers + holdout == results.planned == len(rows)
        converted = results.treated.conversions + (results.holdout.conversions if results.holdout else 0)
        assert converted == sum(bought for _, bought in rows)
        if results.uplift is not None:
            assert results.uplift.ci_low <= results.uplift.difference <= results.uplift.ci_high
            assert 0.0 <= results.uplift.p_value <= 1.0
        else:
            assert holdout == 0 or results.treated.customers == 0
    finally:
        savepoint.rollback()


@given(
    treated=st.tuples(st.integers(1, 10_000), st.integers(0, 10_000)),
    holdout=st.tuples(st.integers(1, 2_000), st.integers(0, 2_000)),
)
def test_the_newcombe_interval_always_contains_the_difference(
    treated: tuple[int, int], holdout: tuple[int, int]
) -> None:
    # given any two arms
    t = Arm(treated[0], min(treated[1], treated[0]), 0)
    h = Arm(holdout[0], min(holdout[1], holdout[0]), 0)
    # when their uplift is computed
    result = uplift(t, h)
    # then its interval lies in [-1, 1] and holds the difference
    assert result is not None
    assert -1.0 <= result.ci_low <= result.difference <= result.ci_high <= 1.0
