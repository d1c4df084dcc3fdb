"""A WeCom transfer (在职/离职继承) keeps the add on its channel and is not a deletion."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from siyu.channels.metrics import channel_report
from siyu.kit.clock import FrozenClock
from tests.channels.factories import add_edge, new_customer
from tests.channels.scenario import FROM, TO, local
from tests.factories import actor_for, make_channel, make_staff, make_workspace


def test_a_transferred_edge_is_not_deleted_and_the_takeover_is_not_a_touch(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    s1, s2 = (make_staff(db, workspace=ws, clock=clock).id for _ in range(2))
    channel = make_channel(db, workspace=ws, clock=clock, name="短信")
    added = local(10, 22, 9)
    moved, gone = (new_customer(db, workspace=ws, clock=clock) for _ in range(2))
    at = added + timedelta(days=2)
    add_edge(db, customer=moved, staff_id=s1, channel=channel, added_at=added, removed_at=at, removed_by="transferred")
    takeover = add_edge(db, customer=moved, staff_id=s2, added_at=at)
    takeover.channel = "transfer"
    add_edge(db, customer=gone, staff_id=s1, channel=channel, added_at=added, removed_at=at, removed_by="customer")
    db.flush()

    report = channel_report(db, actor=actor_for(ws), date_from=FROM, date_to=TO, clock=clock)

    totals = report.totals
    assert (totals.adds, totals.deleted_7d, totals.deleted_30d, totals.deletion_rate_7d) == (2, 1, 1, 0.5)
