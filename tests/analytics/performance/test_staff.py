"""Staff performance: held, adds, deletions, messages, tasks, first orders and GMV per staff member."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from siyu.analytics.performance.staff import cell_customers, staff_performance
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput, NotFound, PermissionDenied
from siyu.models import DeliveryStatus, Role, StaffTask, StaffTaskStatus
from tests.analytics.performance.scenario import STAFF_PERIOD, at, build_staff
from tests.campaigns.results_factories import make_delivery
from tests.factories import actor_for, make_relationship, make_workspace


def test_staff_figures_on_the_hand_built_team(db: Session, clock: FrozenClock) -> None:
    # given the team of build_staff (figures worked out in its docstring)
    ws = make_workspace(db, clock=clock)
    build_staff(db, clock, ws)
    # when the report runs over 2026-11-01 ~ 11-23, ranked by customers held (the default)
    result = staff_performance(db, actor=actor_for(ws, role=Role.ANALYST), period=STAFF_PERIOD, clock=clock)
    # then the rows come ranked 小王 (2 held), 小李 (1), 小张 (0)
    assert [r.name for r in result.rows] == ["小王", "小李", "小张"]
    s1, s2, s3 = result.rows
    assert (s1.held, s1.adds, s1.deleted, s1.deleted_by_customer, s1.deleted_by_staff) == (2, 2, 2, 1, 1)
    assert (s1.messages_assigned, s1.messages_sent, s1.send_rate) == (3, 2, pytest.approx(2 / 3))
    assert (s1.tasks_due, s1.tasks_done, s1.tasks_on_time, s1.on_time_rate) == (3, 2, 1, pytest.approx(1 / 3))
    assert (s1.first_orders, s1.gmv_fen) == (1, 14_000)
    assert (s1.store, s2.store, s3.store) == ("静安店", "静安店", "徐汇店")
    # the merged-away customer's edge is not counted for 小李
    assert (s2.held, s2.adds, s2.first_orders, s2.gmv_fen) == (1, 1, 1, 3_000)
    assert (s3.held, s3.adds, s3.gmv_fen, s3.send_rate, s3.on_time_rate) == (0, 0, 0, None, None)


def test_ranking_by_a_rate_puts_missing_rates_last_and_the_store_filter(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    t = build_staff(db, clock, ws)
    actor = actor_for(ws)
    by_gmv = staff_performance(db, actor=actor, period=STAFF_PERIOD, clock=clock, sort="gmv_fen")
    assert [r.name for r in by_gmv.rows] == ["小王", "小李", "小张"]
    # on-time rate: only 小王 has tasks; 小张 and 小李 (no rate) follow by name (小张 < 小李 in code points)
    by_reply = staff_performance(db, actor=actor, period=STAFF_PERIOD, clock=clock, sort="on_time_rate")
    assert by_reply.rows[0].name == "小王"
    assert sorted(r.name for r in by_reply.rows[1:]) == ["小张", "小李"]
    only = staff_performance(db, actor=actor, period=STAFF_PERIOD, clock=clock, store_id=t.s2_store.id)
    assert [r.name for r in only.rows] == ["小张"]
    # a staff member who left with nothing in the period drops out; one with figures stays
    t.s3.is_active = t.s2.is_active = False
    db.flush()
    left = staff_performance(db, actor=actor, period=STAFF_PERIOD, clock=clock)
    assert [r.name for r in left.rows] == ["小王", "小李"]


def test_bad_sort_unknown_store_and_staff_role(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    build_staff(db, clock, ws)
    actor = actor_for(ws)
    with pytest.raises(InvalidInput) as bad:
        staff_performance(db, actor=actor, period=STAFF_PERIOD, clock=clock, sort="name")
    assert bad.value.details == {"field": "sort"}
    with pytest.raises(NotFound):
        staff_performance(db, actor=actor, period=STAFF_PERIOD, clock=clock, store_id=999_999)
    with pytest.raises(PermissionDenied):
        staff_performance(db, actor=actor_for(ws, role=Role.STAFF), period=STAFF_PERIOD, clock=clock)


def test_drill_cells_recompute_the_customers(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    t = build_staff(db, clock, ws)
    actor = actor_for(ws)

    def cell(staff_id: int, name: str) -> list[int]:
        return cell_customers(db, actor=actor, period=STAFF_PERIOD, staff_id=staff_id, cell=name)

    assert cell(t.s1.id, "held") == sorted([t.ca.id, t.cb.id])
    assert cell(t.s1.id, "adds") == sorted([t.cb.id, t.cc.id])
    assert cell(t.s1.id, "first_orders") == [t.cb.id]  # cC's first order was refunded in full
    assert cell(t.s2.id, "held") == [t.ce.id]
    with pytest.raises(InvalidInput) as bad:
        cell(t.s1.id, "gmv")
    assert bad.value.details == {"field": "cell"}
    with pytest.raises(NotFound):
        cell(999_999, "held")


def test_suppressed_messages_tasks_due_later_today_and_re_adds(db: Session, clock: FrozenClock) -> None:
    # given 小张 (s3) of build_staff, who had nothing, and the clock at 2026-11-23T02:00Z
    ws = make_workspace(db, clock=clock)
    t = build_staff(db, clock, ws)
    # cA re-added twice to 小张 in the period (added 11-02, removed 11-03, added again 11-04)
    make_relationship(
        db,
        customer=t.ca,
        staff=t.s3,
        added_at=at("2026-11-02T02:00"),
        removed_at=at("2026-11-03T02:00"),
        removed_by="customer",
    )
    make_relationship(db, customer=t.ca, staff=t.s3, added_at=at("2026-11-04T02:00"))
    # one queued and one suppressed message (the policy held it back: never 小张's to send)
    for n, status in enumerate((DeliveryStatus.QUEUED, DeliveryStatus.SUPPRESSED)):
        make_delivery(
            db,
            workspace_id=ws.id,
            source="broadcast",
            source_id=950 + n,
            customer_id=t.ca.id,
            staff_id=t.s3.id,
            status=status,
            planned_at=at("2026-11-05T02:00"),
        )
    # two open tasks due today: 01:00Z (overdue) and 08:00Z (later today, not yet due)
    for n, due in enumerate(("2026-11-23T01:00", "2026-11-23T08:00")):
        db.add(
            StaffTask(
                workspace_id=ws.id,
                staff_id=t.s3.id,
                customer_id=t.ca.id,
                source="journey",
                source_id=2,
                idempotency_key=f"perf-today-{ws.id}-{n}",
                title="回访",
                status=StaffTaskStatus.OPEN,
                due_at=at(due),
                created_at=at("2026-11-01T02:00"),
            )
        )
    db.flush()
    actor = actor_for(ws)
    (s3,) = (r for r in staff_performance(db, actor=actor, period=STAFF_PERIOD, clock=clock).rows if r.name == "小张")
    # then adds = 1 distinct customer (two edges), as the drill's segment; assigned 1 (queued only);
    # due 1 (the 08:00 task is not due yet), done 0
    assert (s3.adds, s3.deleted, s3.held) == (1, 1, 1)
    assert cell_customers(db, actor=actor, period=STAFF_PERIOD, staff_id=t.s3.id, cell="adds") == [t.ca.id]
    assert (s3.messages_assigned, s3.messages_sent, s3.send_rate) == (1, 0, 0.0)
    assert (s3.tasks_due, s3.tasks_done, s3.on_time_rate) == (1, 0, 0.0)
