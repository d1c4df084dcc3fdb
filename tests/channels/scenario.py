"""A small fixed acquisition history whose metrics are computed by hand in test_metrics.py.

Brand time zone Asia/Shanghai (UTC+8); the clock stands at 2026-11-23 10:00 local. Report range
2026-10-20 … 2026-10-29. Three channels:
  A 包裹卡  dated entries: 10-20 ¥100.00 (1,000 exposures), 10-21 ¥50.00, 11-05 ¥999.99 (outside)
  B KOL    CPA ¥20.00 per add, plus an entry 10-22 ¥30.00
  C 淘宝CPS CPS 12.5 % of attributed GMV
Customers (local times):
  c1 A 10-20 09:00, removed by the customer 3 days later; orders 10-21 ¥100, 11-10 ¥50
  c2 A 10-21 10:00, removed by staff 10 days later; order 10-25 ¥200 with ¥50 refunded
  c3 B 10-22 20:00, then C 10-24 10:30; order 10-25 ¥300.04
  c4 C 10-23 08:00; had bought before (10-10 ¥70); order 10-26 ¥400
  c5 an add without channel 10-01, then B 10-29 00:30 (10-28 UTC); order 10-29 01:00 ¥80
  c6 A 10-15 (before the range), then B 10-25 12:00; order 10-26 ¥60
Scans: A 3 on 10-20 and 1 at 10-21 00:10 (10-20 UTC), 1 on 10-30 (outside); B 2 on 10-22.
Clicks: a C campaign link 2 on 10-23 plus 1 on its per-recipient link 10-24; an A link 1 on 10-20.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.kit.clock import Clock
from siyu.models import Channel, ChannelType, CostModel, RemovedBy, Workspace
from tests.channels.factories import (
    add_edge,
    make_clicks,
    make_cost,
    make_link,
    make_live_code,
    make_scans,
    new_customer,
)
from tests.factories import actor_for, make_channel, make_order, make_staff, make_workspace

SHANGHAI = ZoneInfo("Asia/Shanghai")
FROM = date(2026, 10, 20)
TO = date(2026, 10, 29)


def local(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """A Shanghai wall-clock time in 2026, as the UTC instant it is."""
    return datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


@dataclass
class Scenario:
    workspace: Workspace
    actor: Actor
    a: Channel
    b: Channel
    c: Channel


def build(db: Session, clock: Clock, workspace: Workspace | None = None) -> Scenario:
    """Write the scenario described in the module docstring (in a new workspace unless given)."""
    ws = workspace or make_workspace(db, clock=clock, name="花间集")
    actor = actor_for(ws)
    staff = make_staff(db, workspace=ws, clock=clock).id
    a = make_channel(db, workspace=ws, clock=clock, name="包裹卡")
    b = make_channel(
        db, workspace=ws, clock=clock, name="KOL 小红书", type=ChannelType.KOL, cost_model=CostModel.CPA, cpa_fen=2000
    )
    c = make_channel(
        db,
        workspace=ws,
        clock=clock,
        name="淘宝 CPS",
        type=ChannelType.ECOMMERCE,
        cost_model=CostModel.CPS,
        cps_basis_points=1250,
    )
    make_cost(db, channel=a, spent_on=date(2026, 10, 20), amount_fen=10_000, exposures=1000, clock=clock)
    make_cost(db, channel=a, spent_on=date(2026, 10, 21), amount_fen=5_000, clock=clock)
    make_cost(db, channel=a, spent_on=date(2026, 11, 5), amount_fen=99_999, exposures=50, clock=clock)
    make_cost(db, channel=b, spent_on=date(2026, 10, 22), amount_fen=3_000, clock=clock)

    c1, c2, c3, c4, c5, c6 = (new_customer(db, workspace=ws, clock=clock) for _ in range(6))
    add_edge(
        db,
        customer=c1,
        staff_id=staff,
        channel=a,
        added_at=local(10, 20, 9),
        removed_at=local(10, 23, 9),
        removed_by=RemovedBy.CUSTOMER,
    )
    make_order(db, customer=c1, paid_at=local(10, 21, 12), total_fen=10_000)
    make_order(db, customer=c1, paid_at=local(11, 10, 12), total_fen=5_000)
    add_edge(
        db,
        customer=c2,
        staff_id=staff,
        channel=a,
        added_at=local(10, 21, 10),
        removed_at=local(10, 31, 10),
        removed_by=RemovedBy.STAFF,
    )
    make_order(db, customer=c2, paid_at=local(10, 25, 12), total_fen=20_000, refunded_fen=5_000)
    add_edge(db, customer=c3, staff_id=staff, channel=b, added_at=local(10, 22, 20))
    add_edge(db, customer=c3, staff_id=staff, channel=c, added_at=local(10, 24, 10, 30))
    make_order(db, customer=c3, paid_at=local(10, 25, 15), total_fen=30_004)
    add_edge(db, customer=c4, staff_id=staff, channel=c, added_at=local(10, 23, 8))
    make_order(db, customer=c4, paid_at=local(10, 10, 12), total_fen=7_000)
    make_order(db, customer=c4, paid_at=local(10, 26, 12), total_fen=40_000)
    add_edge(db, customer=c5, staff_id=staff, added_at=local(10, 1, 12))
    add_edge(db, customer=c5, staff_id=staff, channel=b, added_at=local(10, 29, 0, 30))
    make_order(db, customer=c5, paid_at=local(10, 29, 1), total_fen=8_000)
    add_edge(db, customer=c6, staff_id=staff, channel=a, added_at=local(10, 15, 12))
    add_edge(db, customer=c6, staff_id=staff, channel=b, added_at=local(10, 25, 12))
    make_order(db, customer=c6, paid_at=local(10, 26, 18), total_fen=6_000)

    code_a = make_live_code(db, channel=a, workspace=ws, clock=clock)
    code_b = make_live_code(db, channel=b, workspace=ws, clock=clock)
    make_scans(db, code=code_a, at=local(10, 20, 14), count=3)
    make_scans(db, code=code_a, at=local(10, 21, 0, 10))
    make_scans(db, code=code_a, at=local(10, 30, 9))
    make_scans(db, code=code_b, at=local(10, 22, 19), count=2)
    campaign = make_link(db, workspace=ws, clock=clock, channel=c)
    recipient = make_link(db, workspace=ws, clock=clock, channel=None, parent=campaign)
    make_clicks(db, link=campaign, at=local(10, 23, 11), count=2)
    make_clicks(db, link=recipient, at=local(10, 24, 11))
    make_clicks(db, link=make_link(db, workspace=ws, clock=clock, channel=a), at=local(10, 20, 15))
    return Scenario(workspace=ws, actor=actor, a=a, b=b, c=c)
