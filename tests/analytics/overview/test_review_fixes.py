"""Review fixes: the pool over merged spans, cards that say how many customers a drill holds, the
filter pickers, clipped week/month labels, the channel and conversion drills, archived segments."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, insert
from sqlalchemy.orm import Session

from siyu.analytics.drill import segment_from_ids
from siyu.analytics.overview.drill import customers_behind
from siyu.analytics.overview.schemas import Filters, Metric, PoolCounts
from siyu.analytics.overview.service import overview
from siyu.analytics.periods import Grain, Period
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput
from siyu.models import Consent, Customer, GroupMember, Role, Staff, StaffTask, User, Workspace
from tests.analytics.overview.scenario import PERIOD, at, build
from tests.factories import actor_for, make_customer, make_group, make_order, make_relationship, make_staff
from tests.factories import make_workspace as new_workspace
from tests.web.conftest import login


def _spans_world(db: Session, clock: FrozenClock, ws: Workspace) -> dict[str, Customer]:
    """Overlapping spans (local times, Asia/Shanghai; all 12:00 unless noted):

    a: edge s1 11-10 → 11-18, edge s2 11-15 → 11-20 (overlap), group stay 11-17 → 11-21
    b: edge 11-16 10:00 → 11-16 18:00 (same day: open at no day's end), SMS granted 11-19
    c: two edges 11-21 → 11-22 (identical spans: one island)
    """
    admin = actor_for(ws, role=Role.ADMIN)
    s1, s2 = make_staff(db, workspace=ws, clock=clock), make_staff(db, workspace=ws, clock=clock)
    a, b, c = (make_customer(db, actor=admin, clock=clock).customer for _ in range(3))
    make_relationship(db, customer=a, staff=s1, added_at=at(10), removed_at=at(18), removed_by="customer")
    make_relationship(db, customer=a, staff=s2, added_at=at(15), removed_at=at(20), removed_by="customer")
    make_relationship(db, customer=b, staff=s1, added_at=at(16, 10), removed_at=at(16, 18), removed_by="staff")
    for staff in (s1, s2):
        make_relationship(db, customer=c, staff=staff, added_at=at(21), removed_at=at(22), removed_by="staff")
    group = make_group(db, workspace=ws, clock=clock)
    db.add(GroupMember(workspace_id=ws.id, group_id=group.id, customer_id=a.id, joined_at=at(17), left_at=at(21)))
    db.add(
        Consent(workspace_id=ws.id, customer_id=b.id, channel="sms", status="granted", source="t", changed_at=at(19))
    )
    db.flush()
    return {"a": a, "b": b, "c": c}


def test_pool_over_overlapping_spans(db: Session, clock: FrozenClock) -> None:
    ws = new_workspace(db, clock=clock)
    who = _spans_world(db, clock, ws)
    analyst = actor_for(ws, role=Role.ANALYST)
    o = overview(db, actor=analyst, period=PERIOD, grain=Grain.DAY, filters=Filters(), clock=clock)
    # end of 11-15: a (both edges) → 1 | 16: a (b's same-day edge never counts) | 17: a (+ group)
    # 18: a (edge 2, group) | 19: a, b (SMS) | 20: a (group only), b | 21: b, c (group left 11-21)
    # 22: b (c's edges removed 11-22)
    assert [r.pool for r in o.trend] == [1, 1, 1, 2, 2, 2, 1]
    assert o.previous_pool == PoolCounts(pool=1, wecom=1)
    assert o.pool == PoolCounts(pool=1, sms=1)
    # the same as the drill, which asks "open just before the day's end instant" directly
    for row in o.trend:
        one_day = Period(row.bucket, row.bucket)
        behind = customers_behind(db, actor=analyst, metric=Metric.POOL, period=one_day, filters=Filters(), clock=clock)
        assert len(behind) == row.pool, row.bucket
    assert customers_behind(
        db, actor=analyst, metric=Metric.WECOM, period=Period(date(2026, 11, 21), date(2026, 11, 21)),
        filters=Filters(), clock=clock,
    ) == [who["c"].id]  # fmt: skip


def _count_statements(db: Session, run: Callable[[], object]) -> int:
    seen: list[str] = []

    def listen(*args: object) -> None:
        seen.append(str(args[2]))

    engine = db.get_bind()
    event.listen(engine, "before_cursor_execute", listen)
    try:
        run()
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    return len(seen)


def test_fixed_number_of_queries_at_day_grain_over_186_days(db: Session, clock: FrozenClock) -> None:
    long = Period(date(2026, 5, 21), date(2026, 11, 22))  # 186 days, the day-grain maximum

    def count(ws: Workspace, period: Period, grain: Grain) -> int:
        analyst = actor_for(ws, role=Role.ANALYST)
        return _count_statements(
            db, lambda: overview(db, actor=analyst, period=period, grain=grain, filters=Filters(), clock=clock)
        )

    empty = new_workspace(db, clock=clock)
    w = build(db, clock, new_workspace(db, clock=clock))
    short = count(w.ws, PERIOD, Grain.WEEK)
    assert count(empty, long, Grain.DAY) == count(w.ws, long, Grain.DAY) == short
    assert short <= 14


def _two_of_each(db: Session, clock: FrozenClock) -> tuple[Workspace, Customer]:
    """One customer d: two edges added 11-17 and 11-18, both removed by d on 11-20; repurchases
    (pool_sequence 2 and 3) on 11-19 ¥10 and 11-21 ¥20."""
    ws = new_workspace(db, clock=clock)
    d = make_customer(db, actor=actor_for(ws, role=Role.ADMIN), clock=clock).customer
    for day in (17, 18):
        make_relationship(
            db,
            customer=d,
            staff=make_staff(db, workspace=ws, clock=clock),
            added_at=at(day),
            removed_at=at(20),
            removed_by="customer",
        )
    for seq, day, fen in ((2, 19, 1_000), (3, 21, 2_000)):
        make_order(db, customer=d, paid_at=at(day), total_fen=fen).pool_sequence = seq
    db.flush()
    return ws, d


def test_cards_say_how_many_customers_their_drill_holds(db: Session, clock: FrozenClock) -> None:
    ws, d = _two_of_each(db, clock)
    analyst = actor_for(ws, role=Role.ANALYST)
    o = overview(db, actor=analyst, period=PERIOD, grain=Grain.DAY, filters=Filters(), clock=clock)
    # edges and orders on the card, customers beside it: 2 adds / 1 customer, 2 deletions / 1, 2 repurchases / 1
    figures = {k: (o.stats[k].value, o.stats[k].customers, o.stats[k].previous_customers) for k in
               ("adds", "deleted_by_customer", "deleted_by_staff", "repurchases", "first_orders")}  # fmt: skip
    assert figures == {
        "adds": (2, 1, 0),
        "deleted_by_customer": (2, 1, 0),
        "deleted_by_staff": (0, 0, 0),
        "repurchases": (2, 1, 0),
        "first_orders": (0, 0, 0),
    }
    for metric in (Metric.ADDS, Metric.DELETED_BY_CUSTOMER, Metric.REPURCHASES):
        ids = customers_behind(db, actor=analyst, metric=metric, period=PERIOD, filters=Filters(), clock=clock)
        assert ids == [d.id]  # the drill holds the card's customer figure


def test_page_cards_pickers_labels_and_drills(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    w = build(db, clock, workspace)
    # 500 staff named before the selected one: the selected staff is outside the first 500 by name
    db.execute(
        insert(Staff),
        [{"workspace_id": workspace.id, "name": f"A{i:03}", "created_at": clock.now()} for i in range(500)],
    )
    w.s2.name = "Z 最后"
    archived = segment_from_ids(
        db,
        actor=actor_for(workspace, role=Role.ADMIN),
        name="旧分群",
        customer_ids=[w.c[1].id],
        source="t",
        clock=clock,
    )
    archived.archived_at = clock.now()
    db.commit()
    login(client, user_with_role(Role.OPERATOR).email)

    page = client.get(f"/analytics?from=2026-11-16&to=2026-11-22&staff_id={w.s2.id}")
    assert page.status_code == 200
    assert f'<option value="{w.s2.id}" selected>Z 最后</option>' in page.text  # not "全部"
    assert "旧分群" not in page.text  # archived segments are not offered

    html = client.get("/analytics?from=2026-11-16&to=2026-11-22").text
    # adds: 2 edges of 2 customers (c2, c3); the drill button says what the segment will hold
    assert 'data-customers="adds">涉及 2 位客户' in html and "生成分群（2 位客户）" in html
    # the channel pool drills (wecom 2, group 1, official account 1, SMS 1) and the conversion drill (c7)
    for metric in ("wecom", "group", "official_account", "sms"):
        assert f'data-pool-drill="{metric}"' in html
    assert 'data-rate-drill="conversion_rate"' in html and 'name="metric" value="converted"' in html

    # week grain from a Wednesday: the row covers 11-18 … 11-22, labelled so (not the Monday 11-16)
    response = client.get("/analytics?from=2026-11-18&to=2026-11-22&grain=week&table=trend&format=csv")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["开始日期", "结束日期", "私域池"] and rows[1][:2] == ["2026-11-18", "2026-11-22"]
    assert len(rows) == 2


def test_month_rows_are_clipped_to_the_period(db: Session, clock: FrozenClock) -> None:
    w = build(db, clock, new_workspace(db, clock=clock))
    o = overview(
        db,
        actor=actor_for(w.ws, role=Role.ANALYST),
        period=Period(date(2026, 10, 25), date(2026, 11, 22)),
        grain=Grain.MONTH,
        filters=Filters(),
        clock=clock,
    )
    # October: 10-25 … 10-31 (not 10-01); November: 11-01 … 11-22 (not 11-30)
    assert [(r.bucket, r.start, r.end) for r in o.trend] == [
        (date(2026, 10, 1), date(2026, 10, 25), date(2026, 10, 31)),
        (date(2026, 11, 1), date(2026, 11, 1), date(2026, 11, 22)),
    ]


def test_archived_segment_is_refused(db: Session, clock: FrozenClock) -> None:
    w = build(db, clock, new_workspace(db, clock=clock))
    admin = actor_for(w.ws, role=Role.ADMIN)
    segment = segment_from_ids(db, actor=admin, name="s", customer_ids=[w.c[1].id], source="t", clock=clock)
    segment.archived_at = clock.now()
    db.flush()
    with pytest.raises(InvalidInput) as exc:
        overview(db, actor=admin, period=PERIOD, grain=Grain.DAY, filters=Filters(segment_id=segment.id), clock=clock)
    assert exc.value.details == {"field": "segment_id"}


def test_reply_rate_counts_only_tasks_already_due(db: Session, clock: FrozenClock) -> None:
    """Now is 11-23 10:00 local: a task due later today is not yet due (as in staff performance)."""
    ws = new_workspace(db, clock=clock)
    staff = make_staff(db, workspace=ws, clock=clock)
    for key, due, done in (
        ("on-time", at(22), at(21)),  # due yesterday, done before: on time
        ("overdue", at(23, 9), None),  # due 09:00 today, still open: late
        ("later-today", at(23, 15), None),  # due 15:00 today: not due yet
    ):
        db.add(
            StaffTask(
                workspace_id=ws.id,
                staff_id=staff.id,
                source="sop",
                source_id=1,
                idempotency_key=f"{ws.id}-{key}",
                title="跟进",
                status="done" if done else "open",
                due_at=due,
                done_at=done,
                created_at=at(10),
            )
        )
    db.flush()
    o = overview(
        db,
        actor=actor_for(ws, role=Role.ANALYST),
        period=Period(date(2026, 11, 17), date(2026, 11, 23)),
        grain=Grain.DAY,
        filters=Filters(),
        clock=clock,
    )
    reply = next(r for r in o.rates if r.key == "reply_rate")
    assert (reply.numerator, reply.denominator, reply.value) == (1, 2, 0.5)
