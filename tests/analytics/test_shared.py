"""The helpers every analytics area shares: periods, whole numbers, tables and exports, drill-downs,
the shared SQL conditions, filter pickers, settings and saved reports."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

import openpyxl
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.analytics import drill, saved, scope, tables
from siyu.analytics.periods import Grain, Period, add_months, parse_period, parse_whole, resolve_period
from siyu.analytics.settings import current_settings, settings_for_update
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import Conflict, InvalidInput, PermissionDenied
from siyu.kit.ids import parse_id
from siyu.models import Order, ReportKind, Role, Segment, SegmentMember
from tests.factories import actor_for, make_customer, make_order, make_staff, make_workspace


def test_periods_fold_days_into_clipped_buckets_and_previous_periods() -> None:
    # 2026-10-28 (Wed) … 2026-11-03 (Tue): seven days, two ISO weeks, two months
    period = Period(date(2026, 10, 28), date(2026, 11, 3))
    assert period.days == 7
    assert period.previous() == Period(date(2026, 10, 21), date(2026, 10, 27))
    assert period.buckets(Grain.WEEK) == [date(2026, 10, 26), date(2026, 11, 2)]
    assert period.buckets(Grain.MONTH) == [date(2026, 10, 1), date(2026, 11, 1)]
    assert add_months(date(2026, 11, 1), 2) == date(2027, 1, 1)
    assert add_months(date(2026, 1, 1), -1) == date(2025, 12, 1)


def test_a_period_names_the_field_it_refuses() -> None:
    today = date(2026, 11, 23)
    assert parse_period(None, None, today=today) == Period(date(2026, 10, 25), today)
    for start, end, field in [
        (None, date(2026, 11, 24), "to"),
        (date(2026, 11, 20), date(2026, 11, 19), "from"),
        (date(2024, 1, 1), today, "from"),
    ]:
        with pytest.raises(InvalidInput) as caught:
            parse_period(start, end, today=today)
        assert caught.value.details == {"field": field}


def test_resolve_period_counts_back_from_the_brand_local_today(db: Session, clock: FrozenClock) -> None:
    workspace = make_workspace(db, clock=clock)
    # 02:00 UTC on 11-23 is 10:00 in Shanghai: today is 11-23
    assert resolve_period(db, workspace.id, clock, None, None, default_days=7) == Period(
        date(2026, 11, 17), date(2026, 11, 23)
    )
    assert resolve_period(db, workspace.id, clock, "2026-11-01", date(2026, 11, 2)) == Period(
        date(2026, 11, 1), date(2026, 11, 2)
    )
    with pytest.raises(InvalidInput) as caught:
        resolve_period(db, workspace.id, clock, "11/01/2026", None)
    assert caught.value.details == {"field": "from"}


@pytest.mark.parametrize("text", ["²", "1.5", "abc", "9" * 5000, "12345678", "0", "366", " "])
def test_whole_numbers_typed_by_people_are_checked_before_int(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_whole(text, "window_days", low=1, high=365)
    assert caught.value.details == {"field": "window_days"}


def test_whole_numbers_within_range_and_defaults() -> None:
    assert parse_whole(" 30 ", "n", low=1, high=365) == 30
    assert parse_whole("", "n", low=1, high=365, default=90) == 90
    assert parse_whole("-3", "n", low=-5, high=5) == -3
    # as many digits as the bound has: money in fen (the demo's KPI plan types a 9-digit target)
    assert parse_whole("480000000", "target_gmv_fen", low=0, high=10**15) == 480_000_000
    for too_big in ("1000000000000001", "9" * 17, "9" * 5000):
        with pytest.raises(InvalidInput) as caught:
            parse_whole(too_big, "target_gmv_fen", low=0, high=10**15)
        assert caught.value.details == {"field": "target_gmv_fen"}
    with pytest.raises(InvalidInput):
        parse_whole("10000000", "n", low=0, high=9_999_999)  # 8 digits: the 7-digit cap stays
    assert parse_id("9" * 5000) is None and parse_id("42") == 42 and parse_id("²") is None


def _table() -> tables.ReportTable:
    return tables.ReportTable(
        title="名单",
        columns=tables.columns(("name", "姓名"), ("paid", "金额", tables.Kind.FEN), ("rate", "比例", tables.Kind.RATE)),
        rows=[
            {"name": '=HYPERLINK("x")\x01', "paid": 12_345, "rate": 0.25},
            {"name": None, "paid": None, "rate": float("nan")},
        ],
        footer={"name": "合计", "paid": 12_345, "rate": None},
    )


def test_csv_export_escapes_formulas_and_shows_no_nan() -> None:
    text = tables.csv_bytes(_table()).decode("utf-8")
    assert text == '\ufeff姓名,金额,比例\r\n"\'=HYPERLINK(""x"")",123.45,0.25\r\n,,\r\n合计,123.45,\r\n'


def test_xlsx_export_keeps_numbers_and_strips_control_characters() -> None:
    book = openpyxl.load_workbook(io.BytesIO(tables.xlsx_bytes(_table())))
    sheet = book.active
    assert sheet is not None
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert rows == [
        ["姓名", "金额", "比例"],
        ['\'=HYPERLINK("x")', 123.45, 0.25],
        [None, None, None],
        ["合计", 123.45, None],
    ]
    assert (sheet["B2"].number_format, sheet["C2"].number_format, sheet["A2"].data_type) == ("#,##0.00", "0.0%", "s")
    with pytest.raises(InvalidInput):
        tables.export_response(_table(), "pdf", "x")


def test_cells_display_yuan_percent_and_a_dash_for_nothing() -> None:
    assert [tables.display(v, k) for v, k in [(12_345, tables.Kind.FEN), (0.125, tables.Kind.RATE)]] == [
        "¥123.45",
        "12.5%",
    ]
    assert tables.display(float("inf"), tables.Kind.NUMBER) == "—"
    assert tables.ratio(1, 0) is None and tables.change(5, 0) is None and tables.change(6, 4) == 0.5


def test_a_drill_down_keeps_live_customers_and_never_fails_on_a_taken_name(db: Session, clock: FrozenClock) -> None:
    workspace = make_workspace(db, clock=clock)
    operator = actor_for(workspace, role=Role.OPERATOR)
    alive = make_customer(db, actor=operator, clock=clock).customer
    erased = make_customer(db, actor=operator, clock=clock).customer
    erased.erased_at = clock.now()
    first = drill.segment_from_ids(
        db, actor=operator, name="流失客户", customer_ids=[alive.id, erased.id, alive.id], source="test", clock=clock
    )
    second = drill.segment_from_ids(db, actor=operator, name="流失客户", customer_ids=[], source="test", clock=clock)
    assert (first.name, second.name) == ("流失客户", "流失客户 (2)")
    members = db.scalars(select(SegmentMember.customer_id).where(SegmentMember.segment_id == first.id)).all()
    assert list(members) == [alive.id]
    assert (first.member_count, second.member_count) == (1, 0)
    with pytest.raises(PermissionDenied):
        drill.segment_from_ids(
            db, actor=actor_for(workspace, role=Role.STAFF), name="x", customer_ids=[], source="t", clock=clock
        )


def test_counted_orders_leave_out_full_refunds_merged_customers_and_optionally_pre_pool_orders(
    db: Session, clock: FrozenClock
) -> None:
    workspace = make_workspace(db, clock=clock)
    operator = actor_for(workspace)
    buyer = make_customer(db, actor=operator, clock=clock).customer
    merged = make_customer(db, actor=operator, clock=clock).customer
    merged.merged_into_id = buyer.id
    paid = datetime(2026, 11, 1, tzinfo=UTC)
    in_pool = make_order(db, customer=buyer, paid_at=paid, total_fen=10_000, refunded_fen=2_500)
    in_pool.pool_sequence = 1
    make_order(db, customer=buyer, paid_at=paid, total_fen=5_000)  # before the pool: no sequence
    refunded = make_order(db, customer=buyer, paid_at=paid, total_fen=7_000, refunded_fen=7_000)
    refunded.status = "refunded"
    make_order(db, customer=merged, paid_at=paid, total_fen=9_000)
    db.flush()

    def net(pool_only: bool) -> list[int]:
        query = select(scope.NET_FEN).where(*scope.counted_orders(workspace.id, pool_only=pool_only))
        return sorted(db.scalars(query.order_by(Order.id)))

    assert net(pool_only=False) == [5_000, 7_500]
    assert net(pool_only=True) == [7_500]


def test_filter_choices_offer_the_selected_one_beyond_the_first_500(db: Session, clock: FrozenClock) -> None:
    workspace = make_workspace(db, clock=clock)
    for i in range(501):
        make_staff(db, workspace=workspace, clock=clock, name=f"导购{i:03d}")
    last = make_staff(db, workspace=workspace, clock=clock, name="导购999")
    choices = scope.filter_choices(db, workspace.id, "staff_id", last.id)
    assert len(choices) == 501 and choices[-1] == (last.id, "导购999")
    assert len(scope.filter_choices(db, workspace.id, "staff_id", None)) == 500


def test_settings_default_until_saved_then_one_row(db: Session, clock: FrozenClock) -> None:
    workspace = make_workspace(db, clock=clock)
    defaults = current_settings(db, workspace.id, clock)
    assert (defaults.id, defaults.rfm_window_days, defaults.super_user_top_pct, defaults.clv_time_unit) == (
        None,
        365,
        20,
        "week",
    )
    row = settings_for_update(db, workspace.id, clock)
    assert row.id is not None and settings_for_update(db, workspace.id, clock).id == row.id


def test_saved_reports_are_named_once_per_kind(db: Session, clock: FrozenClock) -> None:
    workspace = make_workspace(db, clock=clock)
    analyst = actor_for(workspace, role=Role.ANALYST)
    report = saved.save_report(db, actor=analyst, kind=ReportKind.FUNNEL, name=" 新客 ", config={"a": 1}, clock=clock)
    assert report.name == "新客"
    saved.save_report(db, actor=analyst, kind=ReportKind.RETENTION, name="新客", config={}, clock=clock)
    with pytest.raises(Conflict):
        saved.save_report(db, actor=analyst, kind=ReportKind.FUNNEL, name="新客", config={}, clock=clock)
    with pytest.raises(InvalidInput):
        saved.save_report(db, actor=analyst, kind=ReportKind.FUNNEL, name=" ", config={}, clock=clock)
    assert [r.name for r in saved.list_reports(db, actor=analyst, kind=ReportKind.FUNNEL)] == ["新客"]
    saved.delete_report(db, actor=analyst, kind=ReportKind.FUNNEL, report_id=report.id, clock=clock)
    assert db.scalars(select(Segment)).all() == []
    assert saved.list_reports(db, actor=analyst, kind=ReportKind.FUNNEL) == []


def test_a_streamed_csv_holds_the_same_cells_as_a_built_one() -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    table = _table()
    app = FastAPI()
    app.get("/export")(lambda: tables.stream_csv(table.columns, iter(table.all_rows() * 1000), "名单"))
    response = TestClient(app).get("/export")
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"__.csv\"; filename*=UTF-8''%E5%90%8D%E5%8D%95.csv"
    )
    lines = response.content.decode("utf-8").split("\r\n")
    built = tables.csv_bytes(table).decode("utf-8").split("\r\n")
    assert len(lines) == 1 + 3 * 1000 + 1  # the header, the rows, the empty string after the last newline
    assert lines[:4] == built[:4] and lines[-4:-1] == built[1:4]
