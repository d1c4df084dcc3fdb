"""Unit tests of the delivery policy's calendar and of the send queue's priority order."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.messaging import policy
from siyu.messaging.sending import send_due
from siyu.models import Delivery, DeliveryStatus, Priority, SandboxMessage
from tests.factories import actor_for, make_customer, make_workspace
from tests.messaging.factories import make_account, make_content

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        # 2026 starts on a Thursday, so it has an ISO week 53, which runs into 2027
        (datetime(2026, 12, 28, 9, 0), ("d2026-12-28", "w2026-53", "m2026-12")),
        (datetime(2026, 12, 31, 23, 59), ("d2026-12-31", "w2026-53", "m2026-12")),
        (datetime(2027, 1, 1, 0, 0), ("d2027-01-01", "w2026-53", "m2027-01")),
        (datetime(2027, 1, 3, 23, 59), ("d2027-01-03", "w2026-53", "m2027-01")),
        (datetime(2027, 1, 4, 0, 0), ("d2027-01-04", "w2027-01", "m2027-01")),
        # and the Monday 2024-12-30 already belongs to ISO week 1 of 2025
        (datetime(2024, 12, 29, 12, 0), ("d2024-12-29", "w2024-52", "m2024-12")),
        (datetime(2024, 12, 30, 12, 0), ("d2024-12-30", "w2025-01", "m2024-12")),
        (datetime(2020, 12, 31, 12, 0), ("d2020-12-31", "w2020-53", "m2020-12")),
    ],
)
def test_period_keys_around_year_ends(local: datetime, expected: tuple[str, str, str]) -> None:
    keys = policy.period_keys(local.replace(tzinfo=SHANGHAI))
    assert (keys["day"], keys["week"], keys["month"]) == expected


def test_a_send_late_on_new_years_eve_utc_counts_on_the_brands_new_year() -> None:
    # given 2026-12-31 17:00 UTC, which is 01:00 on 1 January 2027 in Shanghai
    config = policy.PolicyConfig(tz=SHANGHAI, caps={"all": {"day": 1}}, quiet_start=time(0), quiet_end=time(0))
    counts: dict[str, dict[str, int]] = {}
    request = policy.Request("sms", int(Priority.MARKETING), datetime(2026, 12, 31, 17, 0, tzinfo=UTC), None)
    # when it is admitted
    decision = policy.decide(config, counts, {}, request)
    # then it counts on the brand's 1 January, in ISO week 2026-W53 and in January
    assert decision.admitted
    assert counts == {"d2027-01-01": {"all": 1}}


def test_quiet_hours_across_midnight_hold_a_send_to_the_morning_in_kathmandu() -> None:
    # given quiet hours 21:00-09:00 in Kathmandu (+05:45) and a send at 23:30 local
    config = policy.PolicyConfig(tz=ZoneInfo("Asia/Kathmandu"), caps={}, platform_caps={})
    send_at = datetime(2026, 11, 23, 17, 45, tzinfo=UTC)
    decision = policy.decide(config, {}, {}, policy.Request("sms", int(Priority.MARKETING), send_at, None))
    # then it waits until 09:00 local the next day (03:15 UTC)
    assert decision == policy.Decision(True, None, datetime(2026, 11, 24, 3, 15, tzinfo=UTC))


def test_a_same_day_quiet_window_holds_to_its_end_on_the_same_day_in_kolkata() -> None:
    # given a 12:30-14:00 lunch-time window in Kolkata (+05:30) and a send at 13:00 local
    config = policy.PolicyConfig(
        tz=ZoneInfo("Asia/Kolkata"), caps={}, platform_caps={}, quiet_start=time(12, 30), quiet_end=time(14, 0)
    )
    send_at = datetime(2026, 11, 23, 7, 30, tzinfo=UTC)
    decision = policy.decide(config, {}, {}, policy.Request("sms", int(Priority.MARKETING), send_at, None))
    # then it goes at 14:00 local (08:30 UTC) that day; at 14:00 exactly nothing is held
    assert decision.not_before == datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
    at_end = policy.Request("sms", int(Priority.MARKETING), datetime(2026, 11, 23, 8, 30, tzinfo=UTC), None)
    assert policy.decide(config, {}, {}, at_end).not_before == at_end.send_at


def test_prune_drops_a_past_week_numbered_like_the_month() -> None:
    # given Monday 2027-01-11 in Shanghai (ISO week 2027-W02, month 2027-01) and last week's counter
    config = policy.PolicyConfig(tz=SHANGHAI)
    counts = {"w2027-01": {"all": 1}, "w2027-02": {"all": 1}, "m2027-01": {"all": 1}}
    # when pruned
    policy.prune(counts, {}, datetime(2027, 1, 11, 1, 0, tzinfo=UTC), config)
    # then the ended week 2027-W01 is gone
    assert set(counts) == {"w2027-02", "m2027-01"}


def test_the_send_queue_claims_transactional_before_marketing(
    db: Session, database: Database, clock: FrozenClock
) -> None:
    # given three due marketing deliveries planned first, then one transactional delivery
    workspace = make_workspace(db, clock=clock)
    actor = actor_for(workspace)
    account = make_account(db, workspace=workspace, clock=clock)
    item = make_content(db, workspace=workspace, clock=clock)
    customers = [make_customer(db, actor=actor, clock=clock, name=f"顾客{i}").customer for i in range(4)]
    priorities = [Priority.MARKETING, Priority.MARKETING, Priority.SERVICE, Priority.TRANSACTIONAL]
    for customer, priority in zip(customers, priorities, strict=True):
        db.add(
            Delivery(
                workspace_id=workspace.id,
                source="test",
                source_id=1,
                step="",
                customer_id=customer.id,
                channel_account_id=account.id,
                channel="sandbox",
                content_id=item.id,
                priority=int(priority),
                status=DeliveryStatus.QUEUED,
                not_before=clock.now() - timedelta(minutes=5),
                planned_at=clock.now(),
            )
        )
    db.commit()
    # when a sender claims one delivery at a time
    order = []
    for _ in range(4):
        assert send_due(database, clock, limit=1, workspace_id=workspace.id).sent == 1
        db.expire_all()
        newest = db.scalars(select(SandboxMessage).order_by(SandboxMessage.id.desc())).first()
        assert newest is not None
        order.append(newest.customer_id)
    # then the transactional one goes first, then service, then marketing
    assert order[:2] == [customers[3].id, customers[2].id]
    assert sorted(order[2:]) == sorted([customers[0].id, customers[1].id])
    assert db.scalars(select(Delivery.status).where(Delivery.workspace_id == workspace.id)).all() == ["sent"] * 4
