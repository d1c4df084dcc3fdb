"""The broadcast forecast: exact numbers on small fixtures, every suppression reason, scaling a
sample to the audience, the approval flag — and that a forecast writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.campaigns.broadcasts.forecast import OUTCOMES, forecast
from siyu.campaigns.broadcasts.schemas import BroadcastIn, VariantIn
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput, PermissionDenied
from siyu.messaging.content import content_hash
from siyu.messaging.planning import bucket
from siyu.models import (
    AdapterKind,
    AuditEntry,
    ChannelAccount,
    ContentItem,
    Customer,
    Delivery,
    Role,
    TouchState,
    Workspace,
)
from tests.factories import actor_for, make_customer, make_workspace
from tests.messaging.factories import make_account, make_content, make_policy
from tests.segments.factories import make_consent, make_segment

TODAY = "d2026-11-23"  # the brand-local day of the frozen clock (10:00 in Shanghai)


def _customers(db: Session, clock: FrozenClock, ws: Workspace, n: int, *, email: bool = False) -> list[Customer]:
    actor = Actor.system(ws.id)
    made = []
    for i in range(n):
        values: dict[str, Any] = {"email": f"c{i}@example.com"} if email else {}
        made.append(make_customer(db, actor=actor, clock=clock, name=f"顾客{i}", **values).customer)
    return made


def _state(db: Session, ws: Workspace, customer: Customer, clock: FrozenClock, **values: Any) -> None:
    db.add(
        TouchState(
            workspace_id=ws.id,
            customer_id=customer.id,
            counts=values.get("counts", {}),
            recent=values.get("recent", {}),
            updated_at=clock.now(),
        )
    )
    db.flush()


def _data(segment_id: int, accounts: list[ChannelAccount], item: ContentItem, **values: Any) -> BroadcastIn:
    return BroadcastIn(
        name="双十一预热",
        segment_id=segment_id,
        channel_account_ids=[a.id for a in accounts],
        variants=[VariantIn(key="A", content_id=item.id, weight=100)],
        **values,
    )


def _written(db: Session) -> tuple[int, int, int]:
    return tuple(  # type: ignore[return-value]
        int(db.scalar(select(func.count()).select_from(model)) or 0) for model in (Delivery, TouchState, AuditEntry)
    )


def _outcomes(**counts: int) -> dict[str, int]:
    return {outcome: counts.get(outcome, 0) for outcome in OUTCOMES}


def test_ten_customers_two_unsubscribed_three_capped(db: Session, database: Database, clock: FrozenClock) -> None:
    # given 10 customers, 2 unsubscribed from SMS and 3 who already got today's one allowed message
    ws = make_workspace(db, clock=clock)
    customers = _customers(db, clock, ws, 10)
    for customer in customers[:2]:
        make_consent(db, customer=customer, channel="sms", status="unsubscribed", at=clock.now())
    for customer in customers[2:5]:
        _state(db, ws, customer, clock, counts={TODAY: {"all": 1}})
    make_policy(db, workspace=ws, clock=clock, caps={"all": {"day": 1}})
    segment = make_segment(db, workspace=ws, clock=clock, members=[c.id for c in customers])
    account = make_account(db, workspace=ws, clock=clock, settings={"consent_channel": "sms"})
    item = make_content(db, workspace=ws, clock=clock)
    before = _written(db)
    # when an operator forecasts a broadcast to them
    result = forecast(db, actor=actor_for(ws, role=Role.OPERATOR), data=_data(segment.id, [account], item), clock=clock)
    # then 2 are unsubscribed, 3 capped, 5 would be sent — and nothing was written
    assert (result.audience, result.sampled, result.sendable, result.needs_approval) == (10, 10, 5, False)
    assert result.by_outcome == _outcomes(unsubscribed=2, capped=3, queued=5)
    assert _written(db) == before


def test_every_reason_in_planning_order(db: Session, database: Database, clock: FrozenClock) -> None:
    # given 8 customers reached by e-mail first, then the WeCom-simulating sandbox:
    # one without e-mail whom the sandbox cannot reach either (no second account for them) …
    ws = make_workspace(db, clock=clock)
    with_email = _customers(db, clock, ws, 6, email=True)
    without = _customers(db, clock, ws, 2)
    email = make_account(db, workspace=ws, clock=clock, kind=AdapterKind.EMAIL, settings={"from_address": "x@y.cn"})
    item = make_content(db, workspace=ws, clock=clock, subject="好消息", body="{{ name }}，双十一来了")
    make_policy(
        db,
        workspace=ws,
        clock=clock,
        caps={"all": {"week": 3}},
        platform_caps={"email": {"month": 2}},
        dedup_days=7,
    )
    # … one got this very content yesterday, one used up the e-mail platform cap, one the weekly cap
    _state(db, ws, with_email[0], clock, recent={content_hash(item): "2026-11-22T02:00:00+00:00"})
    _state(db, ws, with_email[1], clock, counts={"m2026-11": {"platform:email": 2}})
    _state(db, ws, with_email[2], clock, counts={"w2026-48": {"all": 3}})
    # … one who got it 8 days ago (outside the window) and two untouched; one e-mail customer unsubscribed
    _state(db, ws, with_email[3], clock, recent={content_hash(item): "2026-11-15T01:00:00+00:00"})
    make_consent(db, customer=with_email[4], channel="email", status="unsubscribed", at=clock.now())
    segment = make_segment(db, workspace=ws, clock=clock, members=[c.id for c in with_email + without])
    before = _written(db)
    # when forecast
    result = forecast(db, actor=actor_for(ws), data=_data(segment.id, [email], item), clock=clock)
    # then each reason is counted once, the rest queued
    assert result.by_outcome == _outcomes(
        no_channel=2, unsubscribed=1, duplicate=1, platform_capped=1, capped=1, queued=2
    )
    assert result.sendable == 2
    assert _written(db) == before


def test_quiet_hours_drop_and_hold(db: Session, database: Database, clock: FrozenClock) -> None:
    # given 3 customers, quiet hours 21:00–09:00 and a broadcast scheduled for 23:00 Shanghai
    ws = make_workspace(db, clock=clock)
    customers = _customers(db, clock, ws, 3)
    make_policy(db, workspace=ws, clock=clock, quiet_start="21:00", quiet_end="09:00")
    segment = make_segment(db, workspace=ws, clock=clock, members=[c.id for c in customers])
    account = make_account(db, workspace=ws, clock=clock)
    item = make_content(db, workspace=ws, clock=clock)
    late = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
    # when forecast dropping, then holding, messages in quiet hours
    dropped = forecast(
        db,
        actor=actor_for(ws),
        data=_data(segment.id, [account], item, scheduled_at=late, quiet_hours="drop"),
        clock=clock,
    )
    held = forecast(
        db,
        actor=actor_for(ws),
        data=_data(segment.id, [account], item, scheduled_at=late, quiet_hours="hold"),
        clock=clock,
    )
    # then dropping suppresses all three, holding queues them for the morning
    assert dropped.by_outcome == _outcomes(quiet_hours=3)
    assert held.by_outcome == _outcomes(queued=3)


def test_holdout_uses_the_planning_hash(db: Session, database: Database, clock: FrozenClock) -> None:
    # given 20 customers and a 30% holdout
    ws = make_workspace(db, clock=clock)
    customers = _customers(db, clock, ws, 20)
    segment = make_segment(db, workspace=ws, clock=clock, members=[c.id for c in customers])
    account = make_account(db, workspace=ws, clock=clock)
    item = make_content(db, workspace=ws, clock=clock)
    make_policy(db, workspace=ws, clock=clock)
    # when forecast
    result = forecast(db, actor=actor_for(ws), data=_data(segment.id, [account], item, holdout_pct=30), clock=clock)
    # then the holdout is who the stable hash puts there; everyone else would be sent
    expected = sum(1 for c in customers if bucket(f"forecast:segment:{segment.id}:holdout", c.id) < 3000)
    assert result.by_outcome == _outcomes(holdout=expected, queued=20 - expected)


def test_a_sample_is_scaled_to_the_audience(db: Session, database: Database, clock: FrozenClock) -> None:
    # given 10 customers of whom the first 3 (by id) are unsubscribed
    ws = make_workspace(db, clock=clock)
    customers = _customers(db, clock, ws, 10)
    for customer in customers[:3]:
        make_consent(db, customer=customer, channel="sms", status="unsubscribed", at=clock.now())
    segment = make_segment(db, workspace=ws, clock=clock, members=[c.id for c in customers])
    account = make_account(db, workspace=ws, clock=clock, settings={"consent_channel": "sms"})
    item = make_content(db, workspace=ws, clock=clock)
    make_policy(db, workspace=ws, clock=clock)
    # when forecast on a sample of the first 4
    result = forecast(db, actor=actor_for(ws), data=_data(segment.id, [account], item), clock=clock, sample=4)
    # then 3 of 4 scale to 7.5 of 10 and 1 of 4 to 2.5, rounded so they add up to the audience
    # (equal remainders: the outcome planning meets first gets the unit)
    assert (result.audience, result.sampled) == (10, 4)
    assert result.by_outcome == _outcomes(unsubscribed=8, queued=2)
    assert result.sendable == 2


def test_needs_approval_above_the_threshold_unless_the_actor_may_approve(
    db: Session, database: Database, clock: FrozenClock
) -> None:
    # given 6 customers and an approval threshold of 5
    ws = make_workspace(db, clock=clock)
    customers = _customers(db, clock, ws, 6)
    make_policy(db, workspace=ws, clock=clock, approval_threshold=5)
    segment = make_segment(db, workspace=ws, clock=clock, members=[c.id for c in customers])
    data = _data(segment.id, [make_account(db, workspace=ws, clock=clock)], make_content(db, workspace=ws, clock=clock))
    # when an operator, then an admin, forecast it
    operator = forecast(db, actor=actor_for(ws, role=Role.OPERATOR), data=data, clock=clock)
    admin = forecast(db, actor=actor_for(ws), data=data, clock=clock)
    # then only the operator's submission would wait for approval
    assert (operator.needs_approval, admin.needs_approval) == (True, False)
    # and an empty segment forecasts zeros
    empty = make_segment(db, workspace=ws, clock=clock, members=[])
    nothing = forecast(db, actor=actor_for(ws), data=data.model_copy(update={"segment_id": empty.id}), clock=clock)
    assert (nothing.audience, nothing.sampled, nothing.sendable, nothing.by_outcome) == (0, 0, 0, _outcomes())


def test_bad_references_and_roles_are_refused(db: Session, database: Database, clock: FrozenClock) -> None:
    # given a workspace and another workspace's channel account
    ws, other = make_workspace(db, clock=clock), make_workspace(db, clock=clock)
    segment = make_segment(db, workspace=ws, clock=clock, members=[])
    foreign = make_account(db, workspace=other, clock=clock)
    item = make_content(db, workspace=ws, clock=clock)
    # when forecast with it, then it is refused naming the account's place
    with pytest.raises(InvalidInput) as refused:
        forecast(db, actor=actor_for(ws), data=_data(segment.id, [foreign], item), clock=clock)
    assert refused.value.details == {"field": "channel_account_ids.0"}
    # and roles without touch:read may not forecast
    with pytest.raises(PermissionDenied):
        forecast(db, actor=actor_for(ws, role=Role.STAFF), data=_data(segment.id, [foreign], item), clock=clock)
