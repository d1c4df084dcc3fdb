"""A small hand-built funnel history: scans, adds, orders, events and group joins in November 2026.

Brand time zone Asia/Shanghai; the period is 2026-11-01 … 2026-11-20 (UTC 10-31T16:00 … 11-20T16:00).

| customer | scan (channel)      | added (staff, variant)      | first pool order | other                  |
|----------|---------------------|-----------------------------|------------------|------------------------|
| c1       | 11-02 10:00 (A)     | 11-02 12:00 (s1, "B")       | 11-05 10:00      | coupon.claim 11-03     |
| c2       | 11-03 00:00 (A)     | —                           | —                |                        |
| c3       | 11-04 00:00 (B)     | 11-04 06:00 (s2)            | —                |                        |
| c4       | 10-20 00:00 (A)     | 11-02 00:00 (s1)            | —                | (entered before period)|
| c5       | 11-06 00:00 (none)  | 11-06 01:00 (s1, "A")       | only a 2nd order 11-07 |                  |
| c6       | 11-06 00:00 (A), merged into c2                                                              |

Scan → added within 1 day → private-domain order #1 within 30 days (ordered):
entered {c1, c2, c3, c5} = 4; added {c1, c3, c5} = 3; first order {c1} = 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import count
from typing import Any

from sqlalchemy.orm import Session

from siyu.analytics.periods import Period
from siyu.kit.clock import Clock
from siyu.models import Channel, Customer, CustomerEvent, LiveCode, LiveCodeKind, LiveCodeScan, Staff, Workspace
from tests.factories import actor_for, make_channel, make_customer, make_order, make_relationship, make_staff

PERIOD = Period(datetime(2026, 11, 1).date(), datetime(2026, 11, 20).date())
_seq = count(1)


def at(month: int, day: int, hour: int = 0) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


BASIC: dict[str, Any] = {
    "steps": [
        {"kind": "scan"},
        {"kind": "added", "within": {"days": 1}},
        {"kind": "order", "nth": 1, "within": {"days": 30}},
    ]
}


@dataclass
class Scenario:
    workspace: Workspace
    a: Channel
    b: Channel
    s1: Staff
    s2: Staff
    c: dict[str, Customer]


def scan(db: Session, code: LiveCode, customer: Customer, when: datetime, channel: Channel | None) -> None:
    db.add(
        LiveCodeScan(
            workspace_id=customer.workspace_id,
            live_code_id=code.id,
            channel_id=channel.id if channel else None,
            visitor_id=f"v{next(_seq)}",
            outcome="routed",
            scanned_at=when,
            customer_id=customer.id,
        )
    )
    db.flush()


def event(db: Session, customer: Customer, type_: str, when: datetime, **properties: object) -> None:
    db.add(
        CustomerEvent(
            workspace_id=customer.workspace_id,
            customer_id=customer.id,
            type=type_,
            occurred_at=when,
            properties=dict(properties),
            source="test",
            idempotency_key=f"e{next(_seq)}",
            recorded_at=when,
        )
    )
    db.flush()


def build(db: Session, clock: Clock, workspace: Workspace) -> Scenario:
    actor = actor_for(workspace)
    a = make_channel(db, workspace=workspace, clock=clock, name="包裹卡")
    b = make_channel(db, workspace=workspace, clock=clock, name="门店")
    s1 = make_staff(db, workspace=workspace, clock=clock, name="小美")
    s2 = make_staff(db, workspace=workspace, clock=clock, name="小丽")
    code = LiveCode(
        workspace_id=workspace.id, slug=f"lc{next(_seq)}", name="活码", kind=LiveCodeKind.STAFF, created_at=clock.now()
    )
    db.add(code)
    db.flush()
    c = {name: make_customer(db, actor=actor, clock=clock).customer for name in ("c1", "c2", "c3", "c4", "c5", "c6")}
    scan(db, code, c["c1"], at(11, 2, 10), a)
    make_relationship(db, customer=c["c1"], staff=s1, added_at=at(11, 2, 12), channel=a).variant = "B"
    event(db, c["c1"], "coupon.claim", at(11, 3))
    make_order(db, customer=c["c1"], paid_at=at(11, 5, 10)).pool_sequence = 1
    scan(db, code, c["c2"], at(11, 3), a)
    scan(db, code, c["c3"], at(11, 4), b)
    make_relationship(db, customer=c["c3"], staff=s2, added_at=at(11, 4, 6), channel=b)
    scan(db, code, c["c4"], at(10, 20), a)
    make_relationship(db, customer=c["c4"], staff=s1, added_at=at(11, 2), channel=a)
    scan(db, code, c["c5"], at(11, 6), None)
    make_relationship(db, customer=c["c5"], staff=s1, added_at=at(11, 6, 1)).variant = "A"
    make_order(db, customer=c["c5"], paid_at=at(11, 7)).pool_sequence = 2
    scan(db, code, c["c6"], at(11, 6), a)
    c["c6"].merged_into_id = c["c2"].id
    db.flush()
    return Scenario(workspace, a, b, s1, s2, c)
