"""Exporting a segment's members: CSV (UTF-8 with BOM) and XLSX with exactly the members, phones
masked unless the token may see them, cells that would run as formulas defused, an audit entry;
limited roles export only their part of the pool."""

from __future__ import annotations

import csv
import io
from typing import Any

from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.customers.export import COLUMNS
from siyu.kit.clock import FrozenClock
from siyu.models import AuditEntry, Customer, CustomerTag, Role, Workspace
from siyu.segments.service.members import export_member_rows
from tests.api import conftest as api_fixtures
from tests.api.conftest import bearer
from tests.factories import actor_for, make_customer, make_staff, make_store, make_tag, make_token, make_workspace
from tests.segments.factories import make_segment

# The API app and client over the test's transaction (tests/segments/conftest.py is not ours to extend).
app = api_fixtures.app
client = api_fixtures.client

SHANGHAI = {"kind": "field", "field": "city", "op": "eq", "value": "上海"}
NO_PII = ["segments:read", "customers:read"]
PII = [*NO_PII, "customers:pii"]


def _headers(db: Session, clock: FrozenClock, ws: Workspace, scopes: list[str]) -> dict[str, str]:
    token = make_token(db, clock=clock, workspace=ws, scopes=scopes)
    db.commit()
    return bearer(token)


def _setup(db: Session, clock: FrozenClock) -> tuple[Workspace, int, list[int]]:
    """A workspace with three Shanghai customers (one tagged, one with a Taobao id, one whose name
    starts like a formula), one in Hangzhou, and a Shanghai customer of another workspace."""
    ws = make_workspace(db, clock=clock)
    actor = Actor.system(ws.id)
    first = make_customer(db, actor=actor, clock=clock, phone="13800130001", name="周小姐", city="上海").customer
    second = make_customer(
        db,
        actor=actor,
        clock=clock,
        phone="13800130002",
        name="=HYPERLINK(1)",
        city="上海",
        identities=[("taobao", "tb_zhou")],
    ).customer
    make_customer(db, actor=actor, clock=clock, phone="13800130003", name="杭州人", city="杭州")
    third = make_customer(db, actor=actor, clock=clock, phone="13800130004", email="Lily@Example.com", city="上海")
    tag = make_tag(db, workspace=ws, name="高价值")
    db.add(
        CustomerTag(workspace_id=ws.id, customer_id=first.id, tag_id=tag.id, source="manual", assigned_at=clock.now())
    )
    other = make_workspace(db, clock=clock)
    make_customer(db, actor=Actor.system(other.id), clock=clock, phone="13800130001", city="上海")
    segment = make_segment(db, workspace=ws, clock=clock, definition=SHANGHAI, name="上海: VIP/老客")
    db.commit()
    return ws, segment.id, [first.id, second.id, third.customer.id]


def _expected(db: Session, ids: list[int], *, whole: bool) -> list[list[str]]:
    created = {c.id: c.created_at for c in db.scalars(select(Customer).where(Customer.id.in_(ids)))}
    rows = {
        ids[0]: [str(ids[0]), "周小姐", "13800130001" if whole else "138****0001", "", "高价值", ""],
        ids[1]: [str(ids[1]), "'=HYPERLINK(1)", "13800130002" if whole else "138****0002", "", "", "taobao:tb_zhou"],
        ids[2]: [
            str(ids[2]),
            "",
            "13800130004" if whole else "138****0004",
            "lily@example.com" if whole else "l***@example.com",
            "",
            "",
        ],
    }
    out = []
    for customer_id in ids:
        cid, name, phone, email, tags, identities = rows[customer_id]
        out.append(
            [
                cid,
                name,
                phone,
                email,
                "",
                "",
                "",
                "上海",
                "new",
                "",
                "",
                tags,
                identities,
                created[customer_id].isoformat(),
            ]
        )
    return out


def _csv(response: Any) -> list[list[str]]:
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    raw = response.content
    assert raw.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))


def _created_at(rows: list[list[str]]) -> list[list[str]]:
    """Rows without the created_at column (its text depends on how the database returns times)."""
    return [row[:-1] for row in rows]


def test_csv_rows_are_the_members_with_masked_phones(client: TestClient, db: Session, clock: FrozenClock) -> None:
    ws, segment_id, ids = _setup(db, clock)
    response = client.get(f"/api/v1/segments/{segment_id}/export", headers=_headers(db, clock, ws, NO_PII))
    assert response.status_code == 200
    assert response.headers["content-disposition"] == f'attachment; filename="segment-{segment_id}-20261123-0200.csv"'
    rows = _csv(response)
    assert rows[0] == COLUMNS
    assert _created_at(rows[1:]) == _created_at(_expected(db, ids, whole=False))
    assert [row[-1][:19] for row in rows[1:]] == ["2026-11-23T02:00:00"] * 3


def test_csv_shows_whole_phones_with_pii(client: TestClient, db: Session, clock: FrozenClock) -> None:
    ws, segment_id, ids = _setup(db, clock)
    response = client.get(f"/api/v1/segments/{segment_id}/export", headers=_headers(db, clock, ws, PII))
    assert response.status_code == 200
    assert _created_at(_csv(response)[1:]) == _created_at(_expected(db, ids, whole=True))


def test_xlsx_holds_the_same_rows(client: TestClient, db: Session, clock: FrozenClock) -> None:
    ws, segment_id, ids = _setup(db, clock)
    headers = _headers(db, clock, ws, NO_PII)
    response = client.get(f"/api/v1/segments/{segment_id}/export", headers=headers, params={"format": "xlsx"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert response.headers["content-disposition"] == f'attachment; filename="segment-{segment_id}-20261123-0200.xlsx"'
    workbook = load_workbook(io.BytesIO(response.content), read_only=True)
    assert workbook.sheetnames == ["上海 VIP老客"]
    rows = [["" if v is None else str(v) for v in row] for row in workbook.worksheets[0].iter_rows(values_only=True)]
    workbook.close()
    csv_rows = _csv(client.get(f"/api/v1/segments/{segment_id}/export", headers=headers))
    assert rows == csv_rows
    assert _created_at(rows[1:]) == _created_at(_expected(db, ids, whole=False))
    bad = client.get(f"/api/v1/segments/{segment_id}/export", headers=headers, params={"format": "pdf"})
    assert bad.status_code == 422


def test_every_export_is_audited(client: TestClient, db: Session, clock: FrozenClock) -> None:
    ws, segment_id, _ = _setup(db, clock)
    headers = _headers(db, clock, ws, NO_PII)
    client.get(f"/api/v1/segments/{segment_id}/export", headers=headers)
    client.get(f"/api/v1/segments/{segment_id}/export", headers=headers, params={"format": "xlsx"})
    entries = db.scalars(
        select(AuditEntry)
        .where(AuditEntry.workspace_id == ws.id, AuditEntry.action == "export")
        .order_by(AuditEntry.id)
    ).all()
    assert [(e.entity_type, e.entity_id, e.actor_type, e.actor_label, e.after) for e in entries] == [
        ("segment", str(segment_id), "token", "token:test", {"format": "csv", "rows": 3}),
        ("segment", str(segment_id), "token", "token:test", {"format": "xlsx", "rows": 3}),
    ]


def test_an_empty_segment_exports_the_header(client: TestClient, db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    segment = make_segment(db, workspace=ws, clock=clock, definition=SHANGHAI)
    response = client.get(f"/api/v1/segments/{segment.id}/export", headers=_headers(db, clock, ws, NO_PII))
    assert _csv(response) == [COLUMNS]


def test_exports_need_read_scopes(client: TestClient, db: Session, clock: FrozenClock) -> None:
    ws, segment_id, _ = _setup(db, clock)
    entries_before = len(db.scalars(select(AuditEntry).where(AuditEntry.action == "export")).all())
    for scopes, missing in ((["customers:read"], "segments:read"), (["segments:read"], "customers:read")):
        response = client.get(f"/api/v1/segments/{segment_id}/export", headers=_headers(db, clock, ws, scopes))
        assert response.status_code == 403
        assert response.json()["error"]["details"] == {"scope": missing}
    assert len(db.scalars(select(AuditEntry).where(AuditEntry.action == "export")).all()) == entries_before


def test_a_store_manager_exports_only_the_store_customers(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    store = make_store(db, workspace=ws)
    inside = make_staff(db, workspace=ws, clock=clock, store=store)
    outside = make_staff(db, workspace=ws, clock=clock)
    system = Actor.system(ws.id)
    ours = make_customer(db, actor=system, clock=clock, city="上海", owner_staff_id=inside.id).customer
    make_customer(db, actor=system, clock=clock, city="上海", owner_staff_id=outside.id)
    make_customer(db, actor=system, clock=clock, city="上海")
    segment = make_segment(db, workspace=ws, clock=clock, definition=SHANGHAI)
    manager = actor_for(ws, role=Role.STORE_MANAGER, store_id=store.id)
    rows = list(export_member_rows(db, actor=manager, segment=segment, now=clock.now(), unmasked=True))
    assert [row[0] for row in rows] == ["id", str(ours.id)]
    assert rows[1][9] == inside.name
    admin_rows = list(export_member_rows(db, actor=actor_for(ws), segment=segment, now=clock.now(), unmasked=True))
    assert len(admin_rows) == 4
