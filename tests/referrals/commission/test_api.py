"""`/api/v1/commission-rules`, `/api/v1/commission/entries`, `/api/v1/commission/statements` (+ settle, export)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.app import create_app
from siyu.config import Settings
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.models import CommissionRule
from siyu.referrals.commission import ledger
from tests.factories import make_order, make_token
from tests.referrals.commission.factories import Distribution, make_distribution, refer


@pytest.fixture
def api(settings: Settings, database: Database, clock: FrozenClock) -> Iterator[TestClient]:
    app = create_app(settings, database=database, clock=clock, run_worker=False)
    with TestClient(app, follow_redirects=False) as c:
        yield c


def _auth(db: Session, setup: Distribution, clock: FrozenClock, *scopes: str) -> dict[str, str]:
    token = make_token(db, clock=clock, workspace=setup.workspace, scopes=list(scopes) or None)
    db.commit()
    return {"Authorization": f"Bearer {token}"}


def test_rules_are_created_listed_and_replaced(db: Session, clock: FrozenClock, api: TestClient) -> None:
    # given a token with growth:read and growth:write
    setup = make_distribution(db, clock=clock)
    headers = _auth(db, setup, clock, "growth:read", "growth:write")
    # when a rule is created, then replaced
    body = {"name": "达人 8%", "rate_bp": 800, "days": 15, "cap_per_referee_fen": 5_000, "cap_per_month_fen": None}
    created = api.post("/api/v1/commission-rules", json=body, headers=headers)
    assert created.status_code == 201, created.text
    rule_id = created.json()["id"]
    replaced = api.put(
        f"/api/v1/commission-rules/{rule_id}", json={**body, "rate_bp": 900, "is_active": False}, headers=headers
    )
    # then the list shows both rules with the new settings
    assert replaced.status_code == 200, replaced.text
    listed = {r["id"]: (r["name"], r["rate_bp"], r["days"], r["cap_per_referee_fen"], r["is_active"])
              for r in api.get("/api/v1/commission-rules", headers=headers).json()}  # fmt: skip
    assert listed == {setup.rule.id: ("KOC 10%", 1_000, 30, None, True), rule_id: ("达人 8%", 900, 15, 5_000, False)}


BAD_RULES = [
    ({"rate_bp": 0}, "rate_bp"),
    ({"rate_bp": 5_001}, "rate_bp"),
    ({"days": 0}, "days"),
    ({"cap_per_month_fen": -1}, "cap_per_month_fen"),
    ({"cap_per_referee_fen": "lots"}, "cap_per_referee_fen"),
    ({"name": " "}, "name"),
]


def test_bad_rules_are_refused_naming_the_field(db: Session, clock: FrozenClock, api: TestClient) -> None:
    # given a writer
    setup = make_distribution(db, clock=clock)
    headers = _auth(db, setup, clock, "growth:write")
    for change, field in BAD_RULES:
        # when a rule with one bad value is sent
        body = {"name": "r", "rate_bp": 100, "days": 7, **change}
        response = api.post("/api/v1/commission-rules", json=body, headers=headers)
        # then 422 names the field
        assert response.status_code == 422, change
        assert [d["field"] for d in response.json()["error"]["details"]] == [field], response.text
    # and nothing was written
    assert db.scalars(select(CommissionRule).where(CommissionRule.workspace_id == setup.workspace.id)).all() == [
        setup.rule
    ]


def test_entries_adjustments_statements_settlement_and_export(db: Session, clock: FrozenClock, api: TestClient) -> None:
    # given a KOC who earned 19.90 yuan on 10 November
    setup = make_distribution(db, clock=clock)
    referee = refer(db, setup, clock=clock, attributed_at=datetime(2026, 11, 1, tzinfo=UTC))
    order = make_order(db, customer=referee, paid_at=datetime(2026, 11, 10, 2, tzinfo=UTC), total_fen=19_900)
    ledger.earn_for_orders(db, [order], clock)
    headers = _auth(db, setup, clock)
    # when an adjustment of +1 yuan is posted, November generated, settled and exported
    adjust = {"koc_customer_id": setup.koc.id, "amount_fen": 100, "reason": "活动奖励", "idempotency_key": "a1"}
    assert api.post("/api/v1/commission/entries", json=adjust, headers=headers).status_code == 201
    entries = api.get(f"/api/v1/commission/entries?koc_customer_id={setup.koc.id}", headers=headers).json()
    generated = api.post(
        "/api/v1/commission/statements",
        json={"period_start": "2026-11-01", "period_end": "2026-11-30"},
        headers=headers,
    )
    statement_id = generated.json()[0]["id"]
    settled = api.post(
        f"/api/v1/commission/statements/{statement_id}/settle", json={"payment_ref": "WX-1"}, headers=headers
    )
    again = api.post(
        f"/api/v1/commission/statements/{statement_id}/settle", json={"payment_ref": "WX-2"}, headers=headers
    )
    period = "period_start=2026-11-01&period_end=2026-11-30"
    csv_export = api.get(f"/api/v1/commission/statements/export?{period}&format=csv", headers=headers)
    xlsx_export = api.get(f"/api/v1/commission/statements/export?{period}&format=xlsx", headers=headers)
    # then the ledger, the statement and both exports agree on 20.90 yuan
    assert [(e["kind"], e["amount_fen"], e["reason"]) for e in entries] == [
        ("adjust", 100, "活动奖励"),
        ("earn", 1_990, order.external_id),
    ]
    assert (generated.status_code, generated.json()[0]["total_fen"], generated.json()[0]["entries_count"]) == (
        201,
        2_090,
        2,
    )
    assert (settled.status_code, settled.json()["status"], settled.json()["payment_ref"]) == (200, "settled", "WX-1")
    assert again.status_code == 409
    assert csv_export.headers["content-disposition"] == 'attachment; filename="commission-2026-11-01-2026-11-30.csv"'
    lines = csv_export.content.decode("utf-8-sig").splitlines()
    assert lines[1] == f"{statement_id},小红,138****8000,2026-11-01,2026-11-30,2,20.90,settled,WX-1"
    sheet = load_workbook(io.BytesIO(xlsx_export.content)).active
    assert sheet is not None
    assert list(sheet.iter_rows(min_row=2, values_only=True)) == [
        (statement_id, "小红", "138****8000", "2026-11-01", "2026-11-30", 2, "20.90", "settled", "WX-1")
    ]
    detail = api.get(f"/api/v1/commission/statements/{statement_id}", headers=headers).json()
    assert [e["amount_fen"] for e in detail["entries"]] == [1_990, 100]
    kocs = api.get("/api/v1/commission/kocs", headers=headers).json()
    assert [(k["customer_id"], k["balance_fen"], k["unsettled_fen"]) for k in kocs] == [(setup.koc.id, 2_090, 0)]


def test_bad_periods_and_missing_scopes_are_refused(db: Session, clock: FrozenClock, api: TestClient) -> None:
    # given a reader-only token and a writer without growth:review
    setup = make_distribution(db, clock=clock)
    reader = _auth(db, setup, clock, "growth:read")
    writer = _auth(db, setup, clock, "growth:read", "growth:write")
    # when they overreach or send a backwards period
    adjust = {"koc_customer_id": setup.koc.id, "amount_fen": 100, "reason": "x"}
    assert api.post("/api/v1/commission/entries", json=adjust, headers=reader).status_code == 403
    backwards = api.post(
        "/api/v1/commission/statements", json={"period_start": "2026-11-30", "period_end": "2026-11-01"}, headers=writer
    )
    bad_export = api.get(
        "/api/v1/commission/statements/export?period_start=2026-11-30&period_end=2026-11-01", headers=reader
    )
    wrong_format = api.get(
        "/api/v1/commission/statements/export?period_start=2026-11-01&period_end=2026-11-30&format=pdf", headers=reader
    )
    zero = api.post("/api/v1/commission/entries", json={**adjust, "amount_fen": 0}, headers=writer)
    # then 403 / 422 naming the problem, and nothing written
    assert backwards.status_code == 422 and "period_end" in backwards.text
    assert bad_export.status_code == 422 and "period_end" in bad_export.text
    assert wrong_format.status_code == 422 and "format" in wrong_format.text
    assert zero.status_code == 422 and "amount_fen" in zero.text
    assert api.get("/api/v1/commission/entries", headers=reader).json() == []
    assert (
        api.post("/api/v1/commission/statements/999/settle", json={"payment_ref": "P"}, headers=writer).status_code
        == 403
    )
