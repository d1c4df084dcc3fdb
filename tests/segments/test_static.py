"""Static segments: uploads of identities (CSV in several encodings and layouts, XLSX) with their
exact match report, bad files refused with nothing written, and snapshots of a segment's members."""

from __future__ import annotations

import dataclasses
import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import Workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.config import Settings
from siyu.customers.service.merge import merge_customers
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput, PermissionDenied
from siyu.models import (
    AuditEntry,
    Customer,
    Role,
    Segment,
    SegmentMember,
    SegmentSizePoint,
    Workspace,
)
from siyu.segments.service.static import UploadReport, create_static_from_upload, snapshot_segment
from tests.api import conftest as api_fixtures
from tests.api.conftest import bearer
from tests.factories import actor_for, make_customer, make_token, make_workspace
from tests.segments.factories import make_event, make_segment

# The API app and client over the test's transaction (tests/segments/conftest.py is not ours to extend).
app = api_fixtures.app
client = api_fixtures.client


@dataclasses.dataclass
class Pool:
    ws: Workspace
    actor: Actor
    ids: dict[str, int]


def _pool(db: Session, clock: FrozenClock) -> Pool:
    """Customers known by phone and Taobao id; 'gone' was merged into 'two'; another workspace
    holds a customer with 'one''s phone (it must never match here)."""
    ws = make_workspace(db, clock=clock)
    actor = Actor.system(ws.id)

    def person(phone: str | None, identities: list[tuple[str, str]] | None = None) -> int:
        return make_customer(db, actor=actor, clock=clock, phone=phone, identities=identities).customer.id

    ids = {
        "one": person("13800130001"),
        "two": person("13800130002"),
        "tb": person(None, [("taobao", "tb_小雨")]),
        "gone": person("13800130005", [("jd", "jd_gone")]),
        "bystander": person("13800130009"),
    }
    merge_customers(db, actor=actor, survivor_id=ids["two"], merged_id=ids["gone"], reason="同一人", clock=clock)
    other = make_workspace(db, clock=clock)
    make_customer(db, actor=Actor.system(other.id), clock=clock, phone="13900139000")
    db.commit()
    return Pool(ws, actor, ids)


def _upload(
    db: Session, pool: Pool, clock: FrozenClock, path: Path, name: str = "名单"
) -> tuple[Segment, dict[str, Any]]:
    segment, report = create_static_from_upload(
        db, actor=pool.actor, name=name, path=path, filename=path.name, clock=clock
    )
    assert isinstance(report, UploadReport)
    return segment, report.as_dict()


ANY_REASON = None
"""A row without any identity value: it must be listed, whatever the wording of its reason."""


def _expect(report: dict[str, Any], counts: dict[str, int], problems: list[tuple[int, str | None]]) -> None:
    """The report's counts exactly, and every unmatched or invalid row listed in line order."""
    assert {k: v for k, v in report.items() if k != "problems"} == counts
    assert [p["line"] for p in report["problems"]] == [line for line, _ in problems]
    reasons = [p["reason"] for p in report["problems"]]
    assert [got if wanted is not None else None for got, (_, wanted) in zip(reasons, problems, strict=True)] == [
        wanted for _, wanted in problems
    ]
    assert len(report["problems"]) == counts["unmatched"] + counts["invalid"]


def _members(db: Session, segment: Segment) -> list[int]:
    return list(
        db.scalars(
            select(SegmentMember.customer_id)
            .where(SegmentMember.segment_id == segment.id)
            .order_by(SegmentMember.customer_id)
        )
    )


def _segments(db: Session) -> tuple[int, int]:
    return (
        int(db.scalar(select(func.count()).select_from(Segment)) or 0),
        int(db.scalar(select(func.count()).select_from(SegmentMember)) or 0),
    )


# --- uploads through the service -----------------------------------------------------------------


def test_a_phone_column_in_several_spellings(db: Session, clock: FrozenClock, tmp_path: Path) -> None:
    pool = _pool(db, clock)
    path = tmp_path / "名单.csv"
    path.write_text(
        "phone\n"
        "138 0013 0001\n"  # 2: one
        "+86 13800130002\n"  # 3: two
        "138-0013-0001\n"  # 4: one again
        "13700000000\n"  # 5: nobody
        "12345\n"  # 6: not a phone
        "\n"  # 7: blank, skipped
        "+86 138 0013 0005\n"  # 8: merged away into two
        "13900139000\n",  # 9: a customer of another workspace
        encoding="utf-8",
    )
    segment, report = _upload(db, pool, clock, path)
    assert report == {
        "rows": 7,
        "matched": 2,
        "duplicates": 2,
        "unmatched": 2,
        "invalid": 1,
        "problems": [
            {"line": 5, "reason": "no customer with this identity"},
            {"line": 6, "reason": "invalid phone number"},
            {"line": 9, "reason": "no customer with this identity"},
        ],
    }
    assert _members(db, segment) == sorted([pool.ids["one"], pool.ids["two"]])
    assert (segment.kind, segment.source, segment.member_count, segment.definition) == (
        "static",
        "upload:名单.csv",
        2,
        None,
    )
    audit = db.scalars(
        select(AuditEntry).where(AuditEntry.entity_type == "segment", AuditEntry.entity_id == str(segment.id))
    ).one()
    assert (audit.action, audit.after) == (
        "upload",
        {"file": "名单.csv", "rows": 7, "matched": 2, "duplicates": 2, "unmatched": 2, "invalid": 1},
    )
    point = db.scalars(select(SegmentSizePoint).where(SegmentSizePoint.segment_id == segment.id)).one()
    assert (point.day.isoformat(), point.size) == ("2026-11-23", 2)


def test_one_duplicate_row_counts_one(db: Session, clock: FrozenClock, tmp_path: Path) -> None:
    pool = _pool(db, clock)
    path = tmp_path / "dup.csv"
    path.write_text("Phone\n13800130001\n13800130001\n", encoding="utf-8")
    segment, report = _upload(db, pool, clock, path)
    assert report == {"rows": 2, "matched": 1, "duplicates": 1, "unmatched": 0, "invalid": 0, "problems": []}
    assert _members(db, segment) == [pool.ids["one"]]


def test_a_merged_away_identity_resolves_to_the_survivor(db: Session, clock: FrozenClock, tmp_path: Path) -> None:
    pool = _pool(db, clock)
    path = tmp_path / "merged.csv"
    path.write_text("jd\njd_gone\n", encoding="utf-8")
    segment, report = _upload(db, pool, clock, path)
    assert report == {"rows": 1, "matched": 1, "duplicates": 0, "unmatched": 0, "invalid": 0, "problems": []}
    assert _members(db, segment) == [pool.ids["two"]]


def test_type_value_pairs(db: Session, clock: FrozenClock, tmp_path: Path) -> None:
    pool = _pool(db, clock)
    path = tmp_path / "pairs.csv"
    path.write_text(
        "Type,Value\n"
        "taobao,tb_小雨\n"  # 2
        "PHONE,13800130002\n"  # 3: the type is read case-insensitively
        "alipay,2088\n"  # 4: no such identity type
        "taobao,tb_nobody\n"  # 5
        "phone,\n"  # 6: empty value
        "email,not-an-email\n",  # 7
        encoding="utf-8",
    )
    segment, report = _upload(db, pool, clock, path)
    _expect(
        report,
        {"rows": 6, "matched": 2, "duplicates": 0, "unmatched": 1, "invalid": 3},
        [
            (4, "unknown identity type 'alipay'"),
            (5, "no customer with this identity"),
            (6, ANY_REASON),
            (7, "invalid e-mail address"),
        ],
    )
    assert _members(db, segment) == sorted([pool.ids["tb"], pool.ids["two"]])


def test_a_gbk_csv_with_chinese_columns_and_two_identity_columns(
    db: Session, clock: FrozenClock, tmp_path: Path
) -> None:
    pool = _pool(db, clock)
    path = tmp_path / "名单-gbk.csv"
    path.write_bytes(
        (
            "姓名,phone,taobao,备注\n"
            "张伟,13800130001,,老客\n"  # 2: one
            "王芳,,tb_小雨,\n"  # 3: tb
            "李娜,13800130002,tb_小雨,两个身份\n"  # 4: two, and tb again (one row, two customers)
            "赵敏,,,没有身份\n"  # 5: nothing to look up
        ).encode("gbk")
    )
    segment, report = _upload(db, pool, clock, path)
    _expect(report, {"rows": 4, "matched": 3, "duplicates": 0, "unmatched": 0, "invalid": 1}, [(5, ANY_REASON)])
    assert _members(db, segment) == sorted([pool.ids["one"], pool.ids["tb"], pool.ids["two"]])


def test_an_xlsx_with_phones_typed_as_numbers(db: Session, clock: FrozenClock, tmp_path: Path) -> None:
    pool = _pool(db, clock)
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["姓名", "phone"])
    sheet.append(["张伟", 13800130001])
    sheet.append(["无名", None])
    sheet.append(["李娜", "+86 138 0013 0002"])
    sheet.append(["查无此人", 13600000000])
    sheet.append(["坏号码", "abc"])
    path = tmp_path / "名单.xlsx"
    workbook.save(path)
    segment, report = _upload(db, pool, clock, path)
    _expect(
        report,
        {"rows": 5, "matched": 2, "duplicates": 0, "unmatched": 1, "invalid": 2},
        [(3, ANY_REASON), (5, "no customer with this identity"), (6, "invalid phone number")],
    )
    assert _members(db, segment) == sorted([pool.ids["one"], pool.ids["two"]])


@pytest.mark.parametrize(
    ("filename", "content", "code", "details"),
    [
        ("list.csv", "姓名,城市\n张伟,上海\n".encode(), "invalid_input", {"field": "file"}),
        ("list.csv", b"", "invalid_file", {"field": "file"}),
        ("list.xlsx", b"PK\x03\x04 not really a zip", "invalid_file", {"field": "file"}),
    ],
)
def test_unusable_files_are_refused_and_nothing_is_written(
    db: Session, clock: FrozenClock, tmp_path: Path, filename: str, content: bytes, code: str, details: Any
) -> None:
    pool = _pool(db, clock)
    path = tmp_path / filename
    path.write_bytes(content)
    before = _segments(db)
    with pytest.raises(InvalidInput) as caught:
        _upload(db, pool, clock, path)
    assert (caught.value.code, caught.value.details) == (code, details)
    assert _segments(db) == before


def test_an_upload_under_a_taken_name_writes_nothing(db: Session, clock: FrozenClock, tmp_path: Path) -> None:
    pool = _pool(db, clock)
    make_segment(db, workspace=pool.ws, clock=clock, members=[], name="名单")
    path = tmp_path / "a.csv"
    path.write_text("phone\n13800130001\n", encoding="utf-8")
    before = _segments(db)
    with pytest.raises(Exception) as caught:
        _upload(db, pool, clock, path)
    assert getattr(caught.value, "code", None) == "segment_name_taken"
    assert _segments(db) == before


# --- uploads through the API ---------------------------------------------------------------------


def _headers(db: Session, clock: FrozenClock, ws: Workspace, scopes: list[str] | None = None) -> dict[str, str]:
    token = make_token(db, clock=clock, workspace=ws, scopes=scopes)
    db.commit()
    return bearer(token)


def test_upload_through_the_api(client: TestClient, db: Session, clock: FrozenClock, settings: Settings) -> None:
    pool = _pool(db, clock)
    headers = _headers(db, clock, pool.ws)
    content = b"phone\n138 0013 0001\n+86 13800130002\n13800130001\n13700000000\n"
    response = client.post(
        "/api/v1/segments/upload",
        headers=headers,
        data={"name": "活动名单", "description": "双十一到店"},
        files={"file": ("活动名单.csv", content, "text/csv")},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["report"] == {
        "rows": 4,
        "matched": 2,
        "duplicates": 1,
        "unmatched": 1,
        "invalid": 0,
        "problems": [{"line": 5, "reason": "no customer with this identity"}],
    }
    segment = body["segment"]
    assert {k: segment[k] for k in ("name", "description", "kind", "source", "member_count", "definition")} == {
        "name": "活动名单",
        "description": "双十一到店",
        "kind": "static",
        "source": "upload:活动名单.csv",
        "member_count": 2,
        "definition": None,
    }
    page = client.get(f"/api/v1/segments/{segment['id']}/members", headers=headers).json()
    assert [c["id"] for c in page["items"]] == [pool.ids["two"], pool.ids["one"]]
    # Nothing of the upload stays on disk.
    assert [p for p in (settings.data_dir / "uploads").rglob("*") if p.is_file()] == []


def test_an_xlsx_upload_through_the_api(client: TestClient, db: Session, clock: FrozenClock) -> None:
    pool = _pool(db, clock)
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["taobao"])
    sheet.append(["tb_小雨"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    response = client.post(
        "/api/v1/segments/upload",
        headers=_headers(db, clock, pool.ws),
        data={"name": "淘宝名单"},
        files={"file": ("tb.xlsx", buffer.getvalue(), "application/octet-stream")},
    )
    assert response.status_code == 201, response.text
    assert response.json()["report"]["matched"] == 1
    assert _members(db, db.get(Segment, response.json()["segment"]["id"])) == [pool.ids["tb"]]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("名单.csv", "姓名,城市\n张伟,上海\n".encode(), "name the identity columns in the first row"),
        ("名单.csv", b"", "the file is empty"),
        ("名单.pdf", b"%PDF-1.4", "upload a .csv or .xlsx file"),
        ("名单.xls", b"\xd0\xcf\x11\xe0", "upload a .csv or .xlsx file"),
        ("名单", b"phone\n13800130001\n", "upload a .csv or .xlsx file"),
    ],
)
def test_bad_uploads_are_422_naming_the_file(
    client: TestClient, db: Session, clock: FrozenClock, filename: str, content: bytes, message: str
) -> None:
    pool = _pool(db, clock)
    headers = _headers(db, clock, pool.ws)
    before = _segments(db)
    response = client.post(
        "/api/v1/segments/upload", headers=headers, data={"name": "名单"}, files={"file": (filename, content)}
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["details"] == {"field": "file"}
    assert error["message"].startswith(message)
    assert _segments(db) == before


def test_upload_form_fields_are_checked(client: TestClient, db: Session, clock: FrozenClock) -> None:
    pool = _pool(db, clock)
    headers = _headers(db, clock, pool.ws)
    before = _segments(db)
    no_name = client.post("/api/v1/segments/upload", headers=headers, files={"file": ("a.csv", b"phone\n1\n")})
    assert no_name.status_code == 422
    assert [d["field"] for d in no_name.json()["error"]["details"]] == ["name"]
    no_file = client.post("/api/v1/segments/upload", headers=headers, data={"name": "x"})
    assert no_file.status_code == 422
    assert [d["field"] for d in no_file.json()["error"]["details"]] == ["file"]
    blank = client.post(
        "/api/v1/segments/upload", headers=headers, data={"name": "  "}, files={"file": ("a.csv", b"phone\n1\n")}
    )
    assert blank.status_code == 422
    assert blank.json()["error"]["details"] == {"field": "name"}
    assert _segments(db) == before


# --- snapshots ------------------------------------------------------------------------------------------


def test_a_snapshot_is_the_members_at_that_moment(db: Session, clock: FrozenClock) -> None:
    pool = _pool(db, clock)
    one = db.get(Customer, pool.ids["one"])
    assert one is not None
    make_event(db, customer=one, type="page.view", occurred_at=clock.now() - timedelta(days=1))
    viewers = make_segment(
        db,
        workspace=pool.ws,
        clock=clock,
        definition={"kind": "event", "type": "page.view", "op": "at_least", "value": 1, "window": {"last_days": 7}},
    )
    snap = snapshot_segment(db, actor=pool.actor, segment_id=viewers.id, name="浏览快照", clock=clock)
    assert (snap.kind, snap.source, snap.member_count, snap.definition) == (
        "static",
        f"snapshot:{viewers.id}",
        1,
        viewers.definition,
    )
    assert _members(db, snap) == [pool.ids["one"]]
    # A week later the event is out of the window, and someone else viewed: the snapshot stays.
    clock.advance(timedelta(days=8))
    two = db.get(Customer, pool.ids["two"])
    assert two is not None
    make_event(db, customer=two, type="page.view", occurred_at=clock.now())
    later = snapshot_segment(db, actor=pool.actor, segment_id=viewers.id, name="浏览快照 2", clock=clock)
    assert _members(db, later) == [pool.ids["two"]]
    assert _members(db, snap) == [pool.ids["one"]]
    # A snapshot of a static segment copies its list, without profiles merged away since.
    listed = make_segment(db, workspace=pool.ws, clock=clock, members=[pool.ids["gone"], pool.ids["tb"]])
    copy = snapshot_segment(db, actor=pool.actor, segment_id=listed.id, name="名单副本", clock=clock)
    assert _members(db, copy) == [pool.ids["tb"]]
    audit = db.scalars(
        select(AuditEntry).where(AuditEntry.action == "snapshot", AuditEntry.entity_id == str(snap.id))
    ).one()
    assert audit.after == {"from_segment": viewers.id, "members": 1}


def test_snapshots_need_write_access_and_the_whole_pool(db: Session, clock: FrozenClock) -> None:
    pool = _pool(db, clock)
    segment = make_segment(db, workspace=pool.ws, clock=clock, definition={"kind": "identity", "type": "phone"})
    before = _segments(db)
    analyst = actor_for(pool.ws, role=Role.ANALYST)
    with pytest.raises(PermissionDenied):
        snapshot_segment(db, actor=analyst, segment_id=segment.id, name="快照", clock=clock)
    manager = actor_for(pool.ws, role=Role.STORE_MANAGER, store_id=None)
    writer = dataclasses.replace(manager, scopes=manager.scopes | {"segments:write"})
    with pytest.raises(InvalidInput) as caught:
        snapshot_segment(db, actor=writer, segment_id=segment.id, name="快照", clock=clock)
    assert caught.value.details == {"field": "segment_id"}
    assert _segments(db) == before
