"""A WeCom transfer (在职/离职继承) is neither a deletion nor a new add on the overview."""

from __future__ import annotations

from sqlalchemy.orm import Session

from siyu.analytics.overview.drill import customers_behind
from siyu.analytics.overview.schemas import Filters, Metric
from siyu.analytics.overview.service import overview
from siyu.analytics.periods import Grain
from siyu.kit.clock import FrozenClock
from siyu.models import Role
from tests.analytics.overview.scenario import PERIOD, at
from tests.factories import actor_for, make_customer, make_relationship, make_staff, make_workspace


def test_a_transfer_is_not_a_deletion_and_the_takeover_is_not_an_add(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    admin = actor_for(ws, role=Role.ADMIN)
    s1, s2 = make_staff(db, workspace=ws, clock=clock), make_staff(db, workspace=ws, clock=clock)
    moved, left = (make_customer(db, actor=admin, clock=clock).customer for _ in range(2))
    make_relationship(db, customer=moved, staff=s1, added_at=at(10), removed_at=at(19), removed_by="transferred")
    takeover = make_relationship(db, customer=moved, staff=s2, added_at=at(19))
    takeover.channel = "transfer"
    make_relationship(db, customer=left, staff=s1, added_at=at(17), removed_at=at(20), removed_by="staff")
    db.flush()
    analyst = actor_for(ws, role=Role.ANALYST)

    o = overview(db, actor=analyst, period=PERIOD, grain=Grain.DAY, filters=Filters(), clock=clock)

    values = {k: o.stats[k].value for k in ("adds", "deleted_by_customer", "deleted_by_staff")}
    assert values == {"adds": 1, "deleted_by_customer": 0, "deleted_by_staff": 1}  # moved: added 11-10, before
    trend = {row.bucket.day: (row.adds, row.deleted_by_staff) for row in o.trend if row.adds or row.deleted_by_staff}
    assert trend == {17: (1, 0), 20: (0, 1)}

    def ids(metric: Metric) -> list[int]:
        return customers_behind(db, actor=analyst, metric=metric, period=PERIOD, filters=Filters(), clock=clock)

    assert ids(Metric.DELETED_BY_STAFF) == [left.id]
    assert ids(Metric.ADDS) == [left.id]
