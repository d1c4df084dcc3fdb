"""Campaign and SOP results: one row per broadcast or journey in the range, with treated vs holdout."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.orm import Session

from siyu.analytics.performance.campaigns import campaign_results, parse_offset
from siyu.analytics.performance.report import campaigns_table
from siyu.analytics.periods import Period
from siyu.campaigns.results import Arm, uplift
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput
from siyu.models import DeliveryStatus, Journey, JourneyStatus, Role
from tests.analytics.performance.campaign_data import build_campaigns
from tests.analytics.performance.scenario import STAFF_PERIOD, at
from tests.campaigns.results_factories import make_delivery, make_order
from tests.factories import actor_for, make_customer, make_workspace


def test_broadcasts_and_journeys_in_the_range(db: Session, clock: FrozenClock) -> None:
    # given build_campaigns (figures in its docstring)
    ws = make_workspace(db, clock=clock)
    c = build_campaigns(db, clock, ws)
    # when an analyst reads 2026-11-01 ~ 11-23
    result = campaign_results(db, actor=actor_for(ws, role=Role.ANALYST), period=STAFF_PERIOD, clock=clock)
    # then the broadcast of 5 days ago and the SOP are listed; 国庆 (October) is not
    assert [(r.kind, r.id) for r in result.rows] == [("broadcast", c.broadcast.id), ("journey", c.journey.id)]
    b, j = result.rows
    assert (b.planned, b.sent, b.treated, b.treated_conversions, b.treated_gmv_fen) == (10, 8, 8, 3, 25_000)
    assert (b.holdout, b.holdout_conversions, b.holdout_gmv_fen) == (2, 0, 0)
    assert (b.treated_rate, b.holdout_rate) == (pytest.approx(0.375), pytest.approx(0.0))
    # the uplift is the touch module's: 3/8 − 0/2 = 0.375 with Newcombe's interval
    assert b.uplift == uplift(Arm(8, 3, 25_000), Arm(2, 0, 0))
    assert b.uplift is not None and b.uplift.difference == pytest.approx(0.375)
    assert b.url == f"/broadcasts/{c.broadcast.id}"
    # and the journey: 2 planned and sent, c2 converted → 50 %, ¥50, no holdout
    assert (j.planned, j.sent, j.treated_conversions, j.treated_rate, j.treated_gmv_fen) == (2, 2, 1, 0.5, 5_000)
    assert (j.holdout, j.holdout_rate, j.uplift) == (None, None, None)
    assert j.url == f"/journeys/{c.journey.id}"


def test_the_october_broadcast_alone(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    c = build_campaigns(db, clock, ws)
    october = Period(STAFF_PERIOD.start.replace(month=10, day=1), STAFF_PERIOD.start.replace(month=10, day=31))
    result = campaign_results(db, actor=actor_for(ws), period=october, clock=clock)
    # it has no deliveries: every arm is empty and there is no uplift
    assert [(r.kind, r.id, r.planned, r.treated_rate, r.uplift) for r in result.rows] == [
        ("broadcast", c.old.id, 0, None, None)
    ]


def test_journey_row_counts_distinct_customers_over_messages_planned_in_the_period(
    db: Session, clock: FrozenClock
) -> None:
    # given a two-step SOP: c0 gets s1 (11-10) and s2 (11-12); c1 gets s1 (11-12); c1 also got s1
    # on 10-20 (before the period) and bought ¥70 on 10-21 — outside the rows of this period
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    c0, c1 = (make_customer(db, actor=actor, clock=clock, name=n).customer for n in ("甲", "乙"))
    journey = Journey(
        workspace_id=ws.id,
        name="两步 SOP",
        status=JourneyStatus.ACTIVE,
        trigger={"type": "relationship_added"},
        steps=[{"id": "s1", "type": "send"}, {"id": "s2", "type": "send"}],
        goal={"type": "order", "days": 7},
        activated_at=at("2026-10-01T02:00"),
        created_at=at("2026-10-01T02:00"),
        updated_at=at("2026-10-01T02:00"),
    )
    db.add(journey)
    db.flush()
    for n, (cid, step, when) in enumerate(
        [
            (c0.id, "s1", "2026-11-10T02:00"),
            (c0.id, "s2", "2026-11-12T02:00"),
            (c1.id, "s1", "2026-11-12T02:00"),
            (c1.id, "s1", "2026-10-20T02:00"),
        ]
    ):
        make_delivery(
            db,
            workspace_id=ws.id,
            source="journey",
            source_id=journey.id,
            step=f"{step}:{n}",
            customer_id=cid,
            status=DeliveryStatus.SENT,
            planned_at=at(when),
            sent_at=at(when),
            variant=None,
        )
    # c0 buys ¥80 on 11-13: inside the 7-day window of both of c0's messages, counted once
    make_order(db, workspace_id=ws.id, customer_id=c0.id, total_fen=8_000, paid_at=at("2026-11-13T02:00"))
    make_order(db, workspace_id=ws.id, customer_id=c1.id, total_fen=7_000, paid_at=at("2026-10-21T02:00"))
    db.flush()
    # when the report covers 11-01 ~ 11-23
    (j,) = campaign_results(db, actor=actor, period=STAFF_PERIOD, clock=clock).rows
    # then 3 messages planned to 2 distinct customers; 1 of them converted (50 %), ¥80 once; no uplift
    assert (j.planned, j.sent, j.treated, j.treated_conversions, j.treated_gmv_fen) == (3, 3, 2, 1, 8_000)
    assert (j.treated_rate, j.holdout, j.uplift) == (0.5, None, None)
    # and over October alone: c1's single message and its ¥70 order
    october = Period(date(2026, 10, 1), date(2026, 10, 31))
    (old,) = campaign_results(db, actor=actor, period=october, clock=clock).rows
    assert (old.planned, old.treated, old.treated_conversions, old.treated_gmv_fen) == (1, 1, 1, 7_000)


def test_start_day_is_brand_local_and_pages_are_capped(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    c = build_campaigns(db, clock, ws)
    # the broadcast started 2026-11-17T18:00Z = 11-18 02:00 in Shanghai
    c.broadcast.started_at = at("2026-11-17T18:00")
    db.flush()
    result = campaign_results(db, actor=actor_for(ws), period=STAFF_PERIOD, clock=clock)
    assert campaigns_table(result).rows[0]["started_on"] == date(2026, 11, 18)
    # one of each kind per page: the first page says more may follow only when a kind overflows
    first = campaign_results(db, actor=actor_for(ws), period=STAFF_PERIOD, clock=clock, limit=1)
    assert ([r.kind for r in first.rows], first.more) == (["broadcast", "journey"], False)
    c.old.started_at = at("2026-11-02T02:00")
    db.flush()
    first = campaign_results(db, actor=actor_for(ws), period=STAFF_PERIOD, clock=clock, limit=1)
    assert ([(r.kind, r.id) for r in first.rows], first.more) == (
        [("broadcast", c.broadcast.id), ("journey", c.journey.id)],
        True,
    )
    second = campaign_results(db, actor=actor_for(ws), period=STAFF_PERIOD, clock=clock, offset=1, limit=1)
    assert ([(r.kind, r.id) for r in second.rows], second.more) == ([("broadcast", c.old.id)], False)
    with pytest.raises(InvalidInput) as bad:
        parse_offset("x")
    assert bad.value.details == {"field": "offset"}
