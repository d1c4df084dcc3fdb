"""The CLV page, its exports and JSON API: exact figures, empty states, permissions and bad input."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import date

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

import siyu.analytics.clv.views as clv_views
from siyu.analytics.clv.tasks import FIT_KIND, fit_all
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.models import ClvFit, ClvFitStatus, CustomerValue, Job, Role, Segment, SegmentMember, User, Workspace
from tests.analytics.clv.factories import bulk_customers, simulated_history
from tests.analytics.clv.test_service import _pareto_shop
from tests.factories import make_staff, make_token
from tests.web.conftest import login

UNSCOPED = {"siyu_unscoped": True}


def _fitted(db: Session, ws: Workspace, clock: FrozenClock, ids: list[int]) -> ClvFit:
    """A finished fit with two customers' values: c1 (rank 1, super user) and c2 (rank 2)."""
    fit = ClvFit(
        workspace_id=ws.id,
        status=ClvFitStatus.DONE,
        calibration_end=date(2026, 11, 23),
        time_unit="week",
        horizon_days=365,
        customers=2,
        params={"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5, "bgnbd_ll": -1234.5, "p": 6.0, "q": 4.0, "v": 15.0}
        | {"gg_ll": -99.25, "gg_customers": 1},
        validation={"buckets": [{"label": "0", "customers": 2, "predicted": 0.5, "actual": 0.25}]},
        started_at=clock.now(),
        finished_at=clock.now(),
    )
    db.add(fit)
    db.flush()
    for rank, (cid, purchases, alive, spend, value) in enumerate(
        [(ids[0], 3.0, 0.9, 20_000, 60_000), (ids[1], 1.5, 0.5, 10_000, 15_000)], start=1
    ):
        db.add(
            CustomerValue(
                workspace_id=ws.id,
                customer_id=cid,
                fit_id=fit.id,
                frequency=2,
                recency=2.0,
                age=3.0,
                average_spend_fen=spend,
                expected_purchases=purchases,
                p_alive=alive,
                expected_spend_fen=spend,
                expected_value_fen=value,
                value_rank=rank,
                is_super_user=rank == 1,
                computed_at=clock.now(),
            )
        )
    db.flush()
    return fit


def test_page_and_exports_show_exact_figures(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    ids = _pareto_shop(db, workspace, clock)  # see test_service: top 20 % of buyers = c1 = 50 %
    _fitted(db, workspace, clock, ids)
    db.commit()
    login(client, user_with_role(Role.ANALYST).email)
    page = client.get("/analytics/clv")
    assert page.status_code == 200
    html = page.text
    assert 'data-col="share" class="text-end">50.0%' in html and 'data-col="pool_share" class="text-end">75.0%' in html
    assert 'data-col="multiple" class="text-end">3.00' in html and "头部人数（全部客户）" in html
    assert html.count('action="/analytics/clv/pareto-drill"') == 4
    assert "贡献了 50.0% 的收入" in html and "3.0 倍" in html
    assert "r = 0.2500" in html and "-1234.50" in html and "p = 6.0000" in html
    assert (
        'data-col="expected_value_fen" class="text-end">¥600.00' in html
        and 'data-col="p_alive" class="text-end">90.0%' in html
    )
    # super users: c1 alone, ¥1,000 of ¥2,000 in the window
    assert 'data-stat="super_users"' in html and 'data-stat="super_share"' in html and ">50.0%<" in html
    assert 'id="refit"' in html and 'id="make-super-segment"' in html

    csv = client.get("/analytics/clv/export?table=pareto&format=csv")
    assert csv.status_code == 200
    assert csv.content.decode("utf-8-sig").splitlines() == [
        "头部客户,购买客户数,收入,收入占比,人均是其余购买客户的倍数,头部人数（全部客户）,收入占比（全部客户）",
        "Top 1%,1,1000.0,0.5,3.0,1,0.5",
        "Top 5%,1,1000.0,0.5,3.0,1,0.5",
        "Top 10%,1,1000.0,0.5,3.0,1,0.5",
        "Top 20%,1,1000.0,0.5,3.0,2,0.75",
    ]
    xlsx = client.get("/analytics/clv/export?table=customers&format=xlsx")
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    assert sheet is not None
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert rows[0][:4] == ["排名", "客户 ID", "姓名", "复购天数"]
    assert rows[1] == [1, str(ids[0]), "客户0", 2, 3.0, 0.9, 200.0, 600.0, "✓"]
    assert rows[2] == [2, str(ids[1]), "客户1", 2, 1.5, 0.5, 100.0, 150.0, None]
    validation = client.get("/analytics/clv/export?table=validation&format=csv")
    assert validation.content.decode("utf-8-sig").splitlines()[1] == "0,2,0.5,0.25"


def test_empty_workspace_page_and_api(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    login(client, user_with_role(Role.ANALYST).email)
    page = client.get("/analytics/clv")
    assert page.status_code == 200
    assert "订单不足，无法拟合。" in page.text and "这个范围内还没有数据。" in page.text
    assert "nan" not in page.text.lower().replace("nanum", "")
    headers = {"Authorization": f"Bearer {make_token(db, clock=clock, workspace=workspace)}"}
    db.commit()
    pareto = client.get("/api/v1/analytics/pareto", headers=headers).json()
    assert (pareto["pool"], pareto["buyers"], pareto["revenue_fen"], pareto["top20_multiple"]) == (0, 0, 0, None)
    assert pareto["rows"][3] == {
        "top_pct": 20,
        "customers": 0,
        "revenue_fen": 0,
        "share": None,
        "pool_customers": 0,
        "pool_share": None,
        "multiple": None,
    }
    assert client.get("/api/v1/analytics/clv/fits/latest", headers=headers).json() == {"fit": None, "values_from": None}
    assert client.get("/api/v1/analytics/clv/customers", headers=headers).json() == {"items": [], "next_cursor": None}


def test_refit_button_queues_a_job_and_the_job_stores_a_fit(
    client: TestClient,
    db: Session,
    clock: FrozenClock,
    workspace: Workspace,
    user_with_role: Callable[..., User],
    database: Database,
) -> None:
    csrf = login(client, user_with_role(Role.ANALYST).email)
    done = client.post("/analytics/clv/fit", data={"csrf_token": csrf})
    assert (done.status_code, done.headers["location"]) == (303, "/analytics/clv")
    job = db.scalar(select(Job).where(Job.workspace_id == workspace.id, Job.kind == FIT_KIND))
    assert job is not None and job.args == {"created_by": job.created_by}
    # the job's function on a simulated history: one DONE fit with every customer valued
    simulated_history(db, workspace, clock, customers=500, end=date(2026, 11, 23), days=540)
    db.commit()
    result = fit_all(database, clock, workspace_id=workspace.id, args={"holdout_days": 60})
    (entry,) = result["fits"]
    assert entry["status"] == "done"
    assert db.scalar(select(func.count()).select_from(CustomerValue), execution_options=UNSCOPED) == 500
    latest = client.get("/analytics/clv")
    assert 'data-status="done"' in latest.text
    # the API: latest fit and a page of customers with a cursor
    headers = {"Authorization": f"Bearer {make_token(db, clock=clock, workspace=workspace)}"}
    db.commit()
    body = client.get("/api/v1/analytics/clv/fits/latest", headers=headers).json()
    assert body["fit"]["id"] == entry["fit_id"] and body["fit"]["validation"]["holdout_days"] == 60
    first = client.get("/api/v1/analytics/clv/customers?limit=2", headers=headers).json()
    assert [i["rank"] for i in first["items"]] == [1, 2]
    second = client.get(
        f"/api/v1/analytics/clv/customers?limit=2&cursor={first['next_cursor']}", headers=headers
    ).json()
    assert [i["rank"] for i in second["items"]] == [3, 4]
    queued = client.post("/api/v1/analytics/clv/fits", json={"holdout_days": 30}, headers=headers)
    assert queued.status_code == 202 and queued.json()["job_id"] > 0


def test_super_user_segment_button(
    client: TestClient, db: Session, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    csrf = login(client, user_with_role(Role.ANALYST).email)
    refused = client.post("/analytics/clv/super-users", data={"csrf_token": csrf})
    assert (refused.status_code, refused.headers["location"]) == (303, "/analytics/clv")
    assert "segments:write" in client.get("/analytics/clv").text
    client.post("/logout", data={"csrf_token": csrf})
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    made = client.post("/analytics/clv/super-users", data={"csrf_token": csrf})
    segment = db.scalar(select(Segment).where(Segment.workspace_id == workspace.id))
    assert segment is not None and made.headers["location"] == f"/segments/{segment.id}"
    assert f'href="/segments/{segment.id}"' in client.get("/analytics/clv").text


def test_staff_are_refused_and_bad_input_names_the_field(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    staff_token = make_token(db, clock=clock, workspace=workspace, scopes=["customers:read"])
    token = make_token(db, clock=clock, workspace=workspace)
    db.commit()
    assert client.get("/api/v1/analytics/pareto", headers={"Authorization": f"Bearer {staff_token}"}).status_code == 403
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/analytics/pareto?window_days=0", headers=headers).status_code == 422
    bad_fit = client.post("/api/v1/analytics/clv/fits", json={"holdout_days": -1}, headers=headers)
    assert bad_fit.status_code == 422 and "holdout_days" in bad_fit.text
    bad_cursor = client.get("/api/v1/analytics/clv/customers?cursor=zzz", headers=headers)
    assert bad_cursor.status_code == 422 and "cursor" in bad_cursor.text
    assert db.scalar(select(func.count()).select_from(Job), execution_options=UNSCOPED) == 0

    login(client, user_with_role(Role.ANALYST).email)
    page = client.get("/analytics/clv?window_days=abc")
    assert page.status_code == 422 and 'data-error="window_days"' in page.text
    assert client.get("/analytics/clv/export?table=nope&format=csv").status_code == 422
    assert client.get("/analytics/clv/export?table=pareto&format=pdf").status_code == 422
    assert client.get("/analytics/clv/export?table=customers&format=pdf").status_code == 422
    # 5,000 digits never reach int(): a field error, not a 500
    huge = "9" * 5000
    page = client.get(f"/analytics/clv?window_days={huge}")
    assert page.status_code == 422 and 'data-error="window_days"' in page.text
    export = client.get(f"/analytics/clv/export?table=pareto&format=csv&window_days={huge}")
    assert export.status_code == 422 and "window_days" in export.text
    client.cookies.clear()
    staff = make_staff(db, workspace=workspace, clock=clock)
    login(client, user_with_role(Role.STAFF, staff_id=staff.id).email)
    assert client.get("/analytics/clv").status_code == 403


def test_a_fit_that_crashes_is_stored_failed_with_its_error(
    db: Session, clock: FrozenClock, workspace: Workspace, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    import siyu.analytics.clv.service as service

    def boom(*args: object, **kwargs: object) -> ClvFit:
        raise RuntimeError("disk full")

    monkeypatch.setattr(service, "run_fit", boom)  # the job imports it when it runs
    db.commit()
    (entry,) = fit_all(database, clock, workspace_id=workspace.id, args={"created_by": "alice"})["fits"]
    assert entry["status"] == "error" and entry["fit_id"] is not None
    fit = db.get(ClvFit, entry["fit_id"])
    assert fit is not None and fit.workspace_id == workspace.id
    assert (fit.status, fit.error, fit.created_by) == (ClvFitStatus.FAILED, "RuntimeError: disk full", "alice")
    assert fit.calibration_end == date(2026, 11, 23) and fit.finished_at is not None


def test_a_fit_after_today_is_refused_before_it_is_queued(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    token = make_token(db, clock=clock, workspace=workspace)
    db.commit()
    headers = {"Authorization": f"Bearer {token}"}
    late = client.post("/api/v1/analytics/clv/fits", json={"calibration_end": "2026-11-24"}, headers=headers)
    assert late.status_code == 422 and "calibration_end" in late.text
    today = client.post("/api/v1/analytics/clv/fits", json={"calibration_end": "2026-11-23"}, headers=headers)
    assert today.status_code == 202
    assert db.scalar(select(func.count()).select_from(Job), execution_options=UNSCOPED) == 1


def test_customers_csv_holds_every_value_and_big_xlsx_is_refused(
    client: TestClient,
    db: Session,
    clock: FrozenClock,
    workspace: Workspace,
    user_with_role: Callable[..., User],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given 250 valued customers (more than the page's top 20 and the old 200-row cap): c0, c1 from
    # _fitted, then ranks 3…250 with value 250 − rank fen.
    ids = bulk_customers(db, workspace, 250, clock)
    fit = _fitted(db, workspace, clock, ids)
    db.execute(
        insert(CustomerValue),
        [
            {
                "workspace_id": workspace.id,
                "customer_id": cid,
                "fit_id": fit.id,
                "frequency": 0,
                "recency": 0.0,
                "age": 1.0,
                "average_spend_fen": 0,
                "expected_purchases": 0.5,
                "p_alive": 1.0,
                "expected_spend_fen": 500,
                "expected_value_fen": 250 - rank,
                "value_rank": rank,
                "is_super_user": False,
                "computed_at": clock.now(),
            }
            for rank, cid in enumerate(ids[2:], start=3)
        ],
    )
    db.commit()
    login(client, user_with_role(Role.ANALYST).email)
    csv = client.get("/analytics/clv/export?table=customers&format=csv")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    lines = csv.content.decode("utf-8-sig").splitlines()
    assert len(lines) == 251  # the header and all 250 customers
    assert lines[1] == f"1,{ids[0]},客户0,2,3.0,0.9,200.0,600.0,✓"
    assert lines[250] == f"250,{ids[249]},客户249,0,0.5,1.0,5.0,0.0,"
    xlsx = client.get("/analytics/clv/export?table=customers&format=xlsx")
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    assert sheet is not None and sheet.max_row == 251
    # when the values do not fit in one sheet, XLSX is refused on "format" (CSV still works)
    monkeypatch.setattr(clv_views, "MAX_XLSX_ROWS", 249)
    refused = client.get("/analytics/clv/export?table=customers&format=xlsx")
    assert refused.status_code == 422 and "export CSV instead" in refused.text


def test_pareto_rows_drill_into_static_segments(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    ids = _pareto_shop(db, workspace, clock)  # buyers by revenue: c1 ¥1,000, c2 ¥500, c3 ¥300, c4 ¥200
    db.commit()
    csrf = login(client, user_with_role(Role.ANALYST).email)
    # the page form: top 20 % of 4 buyers = ⌈0.8⌉ = 1 → c1
    made = client.post("/analytics/clv/pareto-drill", data={"csrf_token": csrf, "window_days": "365", "top_pct": "20"})
    assert made.status_code == 303
    segment = db.scalar(select(Segment).where(Segment.workspace_id == workspace.id))
    assert segment is not None and made.headers["location"] == f"/segments/{segment.id}"
    assert segment.name == "帕累托 Top 20% 购买客户 2025-11-24~2026-11-23"
    assert list(
        db.scalars(
            select(SegmentMember.customer_id).where(
                SegmentMember.workspace_id == workspace.id, SegmentMember.segment_id == segment.id
            )
        )
    ) == [ids[0]]
    bad = client.post(
        "/analytics/clv/pareto-drill", data={"csrf_token": csrf, "window_days": "9" * 5000, "top_pct": "20"}
    )
    assert bad.status_code == 422
    bad = client.post("/analytics/clv/pareto-drill", data={"csrf_token": csrf, "top_pct": "101"})
    assert bad.status_code == 422
    # the API twin: the 30-day window's top 100 % = the 4 buyers
    token = make_token(db, clock=clock, workspace=workspace)
    reader = make_token(db, clock=clock, workspace=workspace, scopes=["analytics:read"])
    db.commit()
    headers = {"Authorization": f"Bearer {token}"}
    body = client.post("/api/v1/analytics/pareto/drill", json={"top_pct": 100, "window_days": 30}, headers=headers)
    assert body.status_code == 200 and body.json()["members"] == 4
    members = db.scalars(
        select(SegmentMember.customer_id).where(
            SegmentMember.workspace_id == workspace.id, SegmentMember.segment_id == body.json()["segment_id"]
        )
    )
    assert sorted(members) == sorted(ids[:4])
    assert client.post("/api/v1/analytics/pareto/drill", json={"top_pct": 0}, headers=headers).status_code == 422
    refused = client.post(
        "/api/v1/analytics/pareto/drill", json={"top_pct": 20}, headers={"Authorization": f"Bearer {reader}"}
    )
    assert refused.status_code == 403
    assert db.scalar(select(func.count()).select_from(Segment).where(Segment.workspace_id == workspace.id)) == 2
