"""The segments console: list, builder (create/edit with server-side checks), live preview JSON,
detail, exports, uploads, snapshot/refresh/archive, and who may do what."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from html import unescape
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.kit.clock import FrozenClock
from siyu.models import (
    AuditEntry,
    Customer,
    Job,
    Role,
    Segment,
    SegmentMember,
    SegmentVersion,
    Tag,
    User,
    Workspace,
)
from siyu.segments.service.tracking import record_size, refresh_segment
from tests.factories import make_customer, make_staff, make_store, make_tag
from tests.segments.factories import make_segment, tag_customer
from tests.web.conftest import csrf_of, login

Users = Callable[..., User]


@dataclass
class Pool:
    """Five customers, three tagged VIP; see `DEFINITION` for what it selects."""

    vip: Tag
    customers: dict[str, Customer]

    def ids(self, *names: str) -> list[int]:
        return [self.customers[n].id for n in names]


PEOPLE = [
    ("王一", "上海", "13800138001", True),
    ("李二", "上海", "13800138002", True),
    ("张三", "杭州", "13800138003", True),
    ("赵四", "上海", "13800138004", False),
    ("钱五", "北京", "13800138005", False),
]


def make_pool(db: Session, workspace: Workspace, clock: FrozenClock) -> Pool:
    actor = Actor.system(workspace.id)
    vip = make_tag(db, workspace=workspace, name="VIP")
    make_tag(db, workspace=workspace, name="新品关注")
    customers = {}
    for name, city, phone, is_vip in PEOPLE:
        customer = make_customer(db, actor=actor, clock=clock, name=name, city=city, phone=phone).customer
        if is_vip:
            tag_customer(db, customer=customer, tag=vip, at=clock.now())
        customers[name] = customer
    db.commit()
    return Pool(vip=vip, customers=customers)


def definition(pool: Pool) -> dict[str, Any]:
    """VIP and (上海 or 北京): 王一 and 李二."""
    return {
        "all": [
            {"kind": "tag", "match": "any", "tag_ids": [pool.vip.id]},
            {
                "any": [
                    {"kind": "field", "field": "city", "op": "eq", "value": "上海"},
                    {"kind": "field", "field": "city", "op": "eq", "value": "北京"},
                ]
            },
        ]
    }


NODE_COUNTS = {"$": 2, "$.all[0]": 3, "$.all[1]": 4, "$.all[1].any[0]": 3, "$.all[1].any[1]": 1}


def _text(fragment: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment)).strip())


def _element(html: str, pattern: str) -> str:
    match = re.search(pattern, html, re.S)
    assert match, f"no match for {pattern}"
    return match.group(1)


def _builder_data(html: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        _element(html, r'<script type="application/json" id="builder-data">(.*?)</script>')
    )
    return data


def _count(db: Session, model: Any) -> int:
    return int(db.scalar(select(func.count()).select_from(model)) or 0)


def _segment_audits(db: Session) -> int:
    return int(db.scalar(select(func.count()).where(AuditEntry.entity_type == "segment")) or 0)


# --- pages render ------------------------------------------------------------------------------


def test_list_shows_kind_tracking_size_and_trend(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given a tracked dynamic segment counted yesterday (1) and today (2), and an uncounted static one
    pool = make_pool(db, workspace, clock)
    segment = make_segment(db, workspace=workspace, clock=clock, definition=definition(pool), name="沪京 VIP")
    segment.is_tracked, segment.description = True, "双11 召回"
    record_size(db, segment, 1, clock.now() - timedelta(days=1))
    record_size(db, segment, 2, clock.now())
    static = make_segment(db, workspace=workspace, clock=clock, members=pool.ids("王一"), name="名单")
    db.commit()
    login(client, user_with_role(Role.OPERATOR).email)
    # when the list opens
    page = client.get("/segments")
    # then each row shows name, kind, tracking, size with its time, the trend line and the update time
    assert page.status_code == 200
    row = _element(page.text, rf'<tr data-segment="{segment.id}">(.*?)</tr>')
    assert _text(row) == "沪京 VIP 双11 召回 动态 跟踪 2 统计于 2026-11-23 10:00 2026-11-23 10:00"
    assert 'points="0.0,26.0 120.0,2.0"' in row
    static_row = _element(page.text, rf'<tr data-segment="{static.id}">(.*?)</tr>')
    assert _text(static_row) == "名单 静态 未统计 — 2026-11-23 10:00"
    assert 'id="new-segment"' in page.text and 'id="upload-segment"' in page.text
    assert '<a class="nav-link" href="/segments"><span class="nav-link-title">人群</span></a>' in page.text


def test_new_and_edit_pages_carry_the_definition_for_the_builder(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    pool = make_pool(db, workspace, clock)
    segment = make_segment(db, workspace=workspace, clock=clock, definition=definition(pool), name="沪京 VIP")
    db.commit()
    login(client, user_with_role(Role.ADMIN).email)
    new = client.get("/segments/new")
    assert new.status_code == 200
    data = _builder_data(new.text)
    assert data["definition"] == {"all": []}
    assert data["segment_id"] is None
    assert (data["catalog_url"], data["preview_url"]) == ("/segments/catalog.json", "/segments/preview.json")
    assert data["labels"]["ui"]["any"] == "任一满足"
    assert '<script src="/static/js/segment-builder.js"></script>' in new.text
    edit = client.get(f"/segments/{segment.id}/edit")
    assert edit.status_code == 200
    assert _builder_data(edit.text)["definition"] == definition(pool)
    assert _builder_data(edit.text)["segment_id"] == segment.id
    assert 'value="沪京 VIP"' in edit.text
    # the script itself is served
    script = client.get("/static/js/segment-builder.js")
    assert script.status_code == 200 and "preview_url" in script.text


def test_catalog_json_lists_what_the_builder_picks_from(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    pool = make_pool(db, workspace, clock)
    login(client, user_with_role(Role.ANALYST).email)
    catalog = client.get("/segments/catalog.json")
    assert catalog.status_code == 200
    body = catalog.json()
    assert [t["name"] for t in body["tags"] if t["id"] == pool.vip.id] == ["VIP"]
    city = next(f for f in body["fields"] if f["key"] == "city")
    assert city["type"] == "string" and "contains" in city["ops"]
    assert body["kinds"][:3] == ["field", "identity", "tag"]


def test_detail_shows_summary_size_versions_members_and_history(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given a tracked segment refreshed once (王一 and 李二 entered)
    pool = make_pool(db, workspace, clock)
    segment = make_segment(db, workspace=workspace, clock=clock, definition=definition(pool), name="沪京 VIP")
    segment.is_tracked = True
    db.add(
        SegmentVersion(
            workspace_id=workspace.id,
            segment_id=segment.id,
            version=1,
            definition=segment.definition,
            created_by="admin@test",
            created_at=clock.now(),
        )
    )
    refresh_segment(db, segment_id=segment.id, clock=clock)
    db.commit()
    login(client, user_with_role(Role.ANALYST).email)
    # when an analyst opens it
    page = client.get(f"/segments/{segment.id}")
    # then the definition reads in Chinese, the size is counted now and the members are listed masked
    assert page.status_code == 200
    html = page.text
    summary = _text(_element(html, r'<div class="card-body" id="definition-summary">(.*?)<details'))
    assert summary == ("全部满足 标签 · 包含任一标签: VIP 任一满足 客户属性 · 城市 等于 上海 客户属性 · 城市 等于 北京")
    assert _text(_element(html, r'<div class="h1 mb-0" id="segment-size"[^>]*>(.*?)</div>')) == "2"
    members = re.findall(r'<tr data-customer-id="(\d+)">(.*?)</tr>', html, re.S)
    assert [int(i) for i, _ in members] == pool.ids("李二", "王一")
    assert _text(members[1][1]) == f"{pool.ids('王一')[0]} 王一 138****8001 新客 上海 2026-11-23 10:00"
    assert [v for v in re.findall(r'<tr data-version="(\d+)">', html)] == ["1"]
    history = re.findall(r'<tr data-change="(\w+)">(.*?)</tr>', html, re.S)
    assert [(c, _text(row)) for c, row in history] == [
        ("entered", "李二 进入 定时/手动刷新 2026-11-23 10:00"),
        ("entered", "王一 进入 定时/手动刷新 2026-11-23 10:00"),
    ]
    assert 'id="trend-chart"' in html
    # an analyst may export but not change anything
    assert 'id="export-csv"' in html and 'id="edit-segment"' not in html and 'id="snapshot-form"' not in html


# --- create and edit ---------------------------------------------------------------------------


def test_create_through_the_form_saves_version_1(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    pool = make_pool(db, workspace, clock)
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    posted = json.dumps(definition(pool), ensure_ascii=False)
    response = client.post(
        "/segments",
        data={
            "csrf_token": csrf,
            "name": "沪京 VIP",
            "description": "双11 召回",
            "definition": posted,
            "is_tracked": "1",
        },
    )
    assert response.status_code == 303, response.text
    segment = db.scalars(select(Segment)).one()
    assert response.headers["location"] == f"/segments/{segment.id}"
    db.refresh(segment)
    assert (segment.name, segment.description, str(segment.kind), segment.version, segment.is_tracked) == (
        "沪京 VIP",
        "双11 召回",
        "dynamic",
        1,
        True,
    )
    assert segment.definition == definition(pool)
    versions = db.scalars(select(SegmentVersion).where(SegmentVersion.segment_id == segment.id)).all()
    assert [(v.version, v.definition) for v in versions] == [(1, definition(pool))]
    # tracking starts with a refresh queued for after the commit
    assert db.scalars(select(Job.kind)).all() == ["refresh_segments"]
    page = client.get(response.headers["location"])
    assert "人群已保存" in page.text


def test_edit_saves_version_2_only_when_the_definition_changes(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    pool = make_pool(db, workspace, clock)
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    first = json.dumps(definition(pool))
    created = client.post("/segments", data={"csrf_token": csrf, "name": "沪京 VIP", "definition": first})
    segment_id = int(created.headers["location"].rsplit("/", 1)[1])
    # when only the name changes
    renamed = client.post(
        f"/segments/{segment_id}/edit", data={"csrf_token": csrf, "name": "沪京会员", "definition": first}
    )
    assert renamed.status_code == 303
    # then the version stays 1
    segment = db.get(Segment, segment_id)
    assert segment is not None
    db.refresh(segment)
    assert (segment.name, segment.version) == ("沪京会员", 1)
    # when the definition changes
    changed = {"all": [{"kind": "tag", "match": "none", "tag_ids": [pool.vip.id]}]}
    response = client.post(
        f"/segments/{segment_id}/edit",
        data={"csrf_token": csrf, "name": "非 VIP", "definition": json.dumps(changed), "description": "新说明"},
    )
    assert response.status_code == 303
    db.refresh(segment)
    assert (segment.name, segment.description, segment.version, segment.definition) == ("非 VIP", "新说明", 2, changed)
    versions = db.scalars(
        select(SegmentVersion).where(SegmentVersion.segment_id == segment_id).order_by(SegmentVersion.version)
    ).all()
    assert [(v.version, v.definition) for v in versions] == [(1, definition(pool)), (2, changed)]
    page = client.get(f"/segments/{segment_id}")
    assert re.findall(r'<tr data-version="(\d+)">', page.text) == ["2", "1"]
    assert _text(_element(page.text, r'id="segment-size"[^>]*>(.*?)</div>')) == "2"  # 赵四 and 钱五


def test_a_static_segment_edits_only_its_name_and_description(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    pool = make_pool(db, workspace, clock)
    static = make_segment(db, workspace=workspace, clock=clock, members=pool.ids("王一"), name="名单")
    db.commit()
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    page = client.get(f"/segments/{static.id}/edit")
    assert page.status_code == 200
    assert 'id="builder-data"' not in page.text and "segment-builder.js" not in page.text
    response = client.post(
        f"/segments/{static.id}/edit", data={"csrf_token": csrf, "name": "门店名单", "description": "十一月"}
    )
    assert response.status_code == 303
    db.refresh(static)
    assert (static.name, static.description, str(static.kind), static.definition, static.version) == (
        "门店名单",
        "十一月",
        "static",
        None,
        1,
    )


BAD_DEFINITIONS = [
    (
        {"all": [{"kind": "field", "field": "shoe_size", "op": "eq", "value": "42"}]},
        "$.all[0].field",
        "unknown field 'shoe_size'",
    ),
    (
        {
            "all": [
                {"kind": "tag", "tag_ids": [1]},
                {"kind": "field", "field": "gender", "op": "contains", "value": "f"},
            ]
        },
        "$.all[1].op",
        "contains does not apply to enum field gender",
    ),
    (
        {"all": [{"kind": "event", "type": "page.view", "op": "at_least", "value": 1, "window": {"last_days": -3}}]},
        "$.all[0].window.last_days",
        "expected a number from 1 to 3660",
    ),
    ("{not json", "$", "the definition is not valid JSON"),
]


@pytest.mark.parametrize(("bad", "path", "reason"), BAD_DEFINITIONS)
def test_an_unusable_definition_comes_back_with_its_path_and_nothing_is_saved(
    client: TestClient,
    db: Session,
    clock: FrozenClock,
    workspace: Workspace,
    user_with_role: Users,
    bad: Any,
    path: str,
    reason: str,
) -> None:
    pool = make_pool(db, workspace, clock)
    if isinstance(bad, dict) and bad["all"][0]["kind"] == "tag":
        bad["all"][0]["tag_ids"] = [pool.vip.id]
    posted = bad if isinstance(bad, str) else json.dumps(bad)
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    # when a new segment is saved with it
    response = client.post("/segments", data={"csrf_token": csrf, "name": "坏人群", "definition": posted})
    # then the form comes back (422) with the message naming the node, the builder told the path,
    # the typed name and the posted JSON kept, and nothing written
    assert response.status_code == 422
    alert = _text(
        _element(response.text, r'<div class="alert alert-danger[^"]*" role="alert" data-error="form">(.*?)</div>')
    )
    assert alert.startswith(f"人群条件有误: {path}: {reason}")
    assert _builder_data(response.text)["error_path"] == path
    assert 'value="坏人群"' in response.text
    assert unescape(_element(response.text, r'<textarea[^>]*id="definition"[^>]*>(.*?)</textarea>')) == posted
    assert (_count(db, Segment), _count(db, SegmentVersion), _segment_audits(db)) == (0, 0, 0)
    # and an edit with it changes nothing either
    good = client.post(
        "/segments", data={"csrf_token": csrf, "name": "好人群", "definition": json.dumps(definition(pool))}
    )
    segment_id = int(good.headers["location"].rsplit("/", 1)[1])
    edit = client.post(f"/segments/{segment_id}/edit", data={"csrf_token": csrf, "name": "改名", "definition": posted})
    assert edit.status_code == 422
    assert _builder_data(edit.text)["error_path"] == path
    segment = db.get(Segment, segment_id)
    assert segment is not None
    db.refresh(segment)
    assert (segment.name, segment.version, segment.definition) == ("好人群", 1, definition(pool))


def test_a_taken_name_comes_back_on_the_form(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    pool = make_pool(db, workspace, clock)
    make_segment(db, workspace=workspace, clock=clock, definition=definition(pool), name="沪京 VIP")
    db.commit()
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    response = client.post(
        "/segments", data={"csrf_token": csrf, "name": "沪京 VIP", "definition": json.dumps(definition(pool))}
    )
    assert response.status_code == 409
    assert "a segment named &#39;沪京 VIP&#39; exists" in response.text
    assert _count(db, Segment) == 1


# --- preview -----------------------------------------------------------------------------------


def test_preview_json_gives_exact_counts_per_node_sample_and_sql(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    pool = make_pool(db, workspace, clock)
    csrf = login(client, user_with_role(Role.ANALYST).email)
    response = client.post(
        "/segments/preview.json", json={"definition": definition(pool)}, headers={"X-CSRF-Token": csrf}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert body["node_counts"] == NODE_COUNTS
    assert body["sample"] == [{"id": pool.ids("李二")[0], "name": "李二"}, {"id": pool.ids("王一")[0], "name": "王一"}]
    assert body["sql"].startswith("SELECT customers.id")
    assert isinstance(body["elapsed_ms"], float)


@pytest.mark.parametrize(
    ("body", "path", "message"),
    [
        (
            {"definition": {"all": [{"kind": "field", "field": "gender", "op": "contains", "value": "x"}]}},
            "$.all[0].op",
            "$.all[0].op: contains does not apply to enum field gender; "
            "use one of eq, in, is_not_set, is_set, ne, not_in",
        ),
        ({"definition": {"all": []}}, "$.all", "$.all: expected a non-empty list of groups and conditions"),
        (
            {"definition": {"all": [{"kind": "sample", "percent": -5}]}},
            "$.all[0].percent",
            "$.all[0].percent: expected a percentage above 0 and up to 100, two decimals at most",
        ),
        ({"segment": 1}, "$", '$: expected {"definition": …}'),
    ],
)
def test_preview_json_names_the_path_of_an_error(
    client: TestClient,
    db: Session,
    clock: FrozenClock,
    workspace: Workspace,
    user_with_role: Users,
    body: dict[str, Any],
    path: str,
    message: str,
) -> None:
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    response = client.post("/segments/preview.json", json=body, headers={"X-CSRF-Token": csrf})
    assert response.status_code == 422
    assert response.json() == {"error": {"code": "invalid_segment", "message": message, "path": path}}


def test_preview_json_refuses_a_body_that_is_not_json_and_a_missing_csrf_token(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    broken = client.post(
        "/segments/preview.json",
        content=b"{definition",
        headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"},
    )
    assert broken.status_code == 422
    assert broken.json()["error"]["path"] == "$"
    assert client.post("/segments/preview.json", json={"definition": {"all": []}}).status_code == 403


def test_a_store_manager_previews_only_their_store_customers(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given 王一 and 张三 owned by staff of the store, 李二 by staff elsewhere
    pool = make_pool(db, workspace, clock)
    store = make_store(db, workspace=workspace)
    ours = make_staff(db, workspace=workspace, clock=clock, store=store)
    theirs = make_staff(db, workspace=workspace, clock=clock)
    for name, owner in (("王一", ours), ("张三", ours), ("李二", theirs)):
        pool.customers[name].owner_staff_id = owner.id
    db.commit()
    csrf = login(client, user_with_role(Role.STORE_MANAGER, store_id=store.id).email)
    # when the store manager previews VIP and (上海 or 北京)
    response = client.post(
        "/segments/preview.json", json={"definition": definition(pool)}, headers={"X-CSRF-Token": csrf}
    )
    # then only their store's customers count
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1
    assert body["node_counts"] == {"$": 1, "$.all[0]": 2, "$.all[1]": 1, "$.all[1].any[0]": 1, "$.all[1].any[1]": 0}
    assert body["sample"] == [{"id": pool.ids("王一")[0], "name": "王一"}]


def test_staff_without_segments_read_cannot_preview(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    pool = make_pool(db, workspace, clock)
    staff = make_staff(db, workspace=workspace, clock=clock)
    db.commit()
    csrf = login(client, user_with_role(Role.STAFF, staff_id=staff.id).email)
    response = client.post(
        "/segments/preview.json", json={"definition": definition(pool)}, headers={"X-CSRF-Token": csrf}
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert client.get("/segments").status_code == 403


# --- exports -----------------------------------------------------------------------------------


def _csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))


def test_exports_give_the_members_as_csv_and_xlsx(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    pool = make_pool(db, workspace, clock)
    segment = make_segment(db, workspace=workspace, clock=clock, definition=definition(pool), name="沪京 VIP")
    db.commit()
    login(client, user_with_role(Role.OPERATOR).email)
    # CSV, phones whole for a role with customers:pii
    response = client.get(f"/segments/{segment.id}/export.csv")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == f'attachment; filename="segment-{segment.id}-20261123-0200.csv"'
    assert response.text.startswith("\ufeff")
    rows = _csv_rows(response.text)
    assert rows[0][:4] == ["id", "name", "phone", "email"]
    assert [[*r[:3], r[7], r[11]] for r in rows[1:]] == [
        [str(pool.ids("王一")[0]), "王一", "13800138001", "上海", "VIP"],
        [str(pool.ids("李二")[0]), "李二", "13800138002", "上海", "VIP"],
    ]
    # XLSX, the same members
    workbook = client.get(f"/segments/{segment.id}/export.xlsx")
    assert workbook.status_code == 200
    sheet = load_workbook(io.BytesIO(workbook.content), read_only=True).active
    assert sheet is not None and sheet.title == "沪京 VIP"
    cells = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert [c[:3] for c in cells] == [
        ["id", "name", "phone"],
        [str(pool.ids("王一")[0]), "王一", "13800138001"],
        [str(pool.ids("李二")[0]), "李二", "13800138002"],
    ]
    audits = db.scalars(select(AuditEntry).where(AuditEntry.action == "export").order_by(AuditEntry.id)).all()
    assert [(a.entity_type, a.entity_id, a.after) for a in audits] == [
        ("segment", str(segment.id), {"format": "csv", "unmasked": True}),
        ("segment", str(segment.id), {"format": "xlsx", "unmasked": True}),
    ]


def test_an_analyst_exports_masked_phones(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    pool = make_pool(db, workspace, clock)
    segment = make_segment(db, workspace=workspace, clock=clock, definition=definition(pool))
    db.commit()
    login(client, user_with_role(Role.ANALYST).email)
    rows = _csv_rows(client.get(f"/segments/{segment.id}/export.csv").text)
    assert [r[2] for r in rows[1:]] == ["138****8001", "138****8002"]


# --- static segments ---------------------------------------------------------------------------


def test_an_uploaded_list_of_phones_makes_a_static_segment_with_a_report(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    pool = make_pool(db, workspace, clock)
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    assert client.get("/segments/upload").status_code == 200
    content = b"phone\n13800138001\n138 0013 8002\n13800138001\n13900000000\nabc\n"
    # when the file is uploaded
    response = client.post(
        "/segments/upload",
        data={"csrf_token": csrf, "name": "门店名单", "description": "十一月活动"},
        files={"file": ("名单.csv", content, "text/csv")},
    )
    # then the report shows what matched and the problem rows by line
    assert response.status_code == 200, response.text
    figures = dict(re.findall(r'data-figure="(\w+)">([\d,]+)</div>', response.text))
    assert figures == {"rows": "5", "matched": "2", "duplicates": "1", "unmatched": "1", "invalid": "1"}
    problems = re.findall(r"<tr><td>(\d+)</td><td>(.*?)</td></tr>", response.text)
    assert [line for line, _ in problems] == ["5", "6"]
    assert unescape(problems[0][1]) == "no customer with this identity"
    # and the static segment holds those two customers
    segment = db.scalars(select(Segment)).one()
    assert (segment.name, segment.description, str(segment.kind), segment.source, segment.member_count) == (
        "门店名单",
        "十一月活动",
        "static",
        "upload:名单.csv",
        2,
    )
    members = db.scalars(select(SegmentMember.customer_id).where(SegmentMember.segment_id == segment.id)).all()
    assert sorted(members) == sorted(pool.ids("王一", "李二"))
    detail = client.get(f"/segments/{segment.id}")
    assert "上传自文件 名单.csv" in detail.text
    assert [int(i) for i in re.findall(r'<tr data-customer-id="(\d+)">', detail.text)] == pool.ids("李二", "王一")


def test_an_upload_without_identity_columns_comes_back_with_the_reason(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    response = client.post(
        "/segments/upload",
        data={"csrf_token": csrf, "name": "名单"},
        files={"file": ("list.csv", b"shoe\n42\n", "text/csv")},
    )
    assert response.status_code == 422
    assert "name the identity columns in the first row" in response.text
    assert _count(db, Segment) == 0


def test_snapshot_refresh_and_archive(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    pool = make_pool(db, workspace, clock)
    segment = make_segment(db, workspace=workspace, clock=clock, definition=definition(pool), name="沪京 VIP")
    db.commit()
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    # snapshot: a static segment with today's members
    snap = client.post(f"/segments/{segment.id}/snapshot", data={"csrf_token": csrf, "name": "沪京 VIP 11-23"})
    assert snap.status_code == 303
    copy = db.scalars(select(Segment).where(Segment.name == "沪京 VIP 11-23")).one()
    assert snap.headers["location"] == f"/segments/{copy.id}"
    assert (str(copy.kind), copy.source) == ("static", f"snapshot:{segment.id}")
    members = db.scalars(select(SegmentMember.customer_id).where(SegmentMember.segment_id == copy.id)).all()
    assert sorted(members) == sorted(pool.ids("王一", "李二"))
    assert "快照自 沪京 VIP" in _text(client.get(snap.headers["location"]).text)
    # a taken name is flashed back, nothing written
    again = client.post(f"/segments/{segment.id}/snapshot", data={"csrf_token": csrf, "name": "沪京 VIP 11-23"})
    assert again.status_code == 303 and again.headers["location"] == f"/segments/{segment.id}"
    assert "a segment named &#39;沪京 VIP 11-23&#39; exists" in client.get(again.headers["location"]).text
    assert _count(db, Segment) == 2
    # refresh queues a job
    refreshed = client.post(f"/segments/{segment.id}/refresh", data={"csrf_token": csrf})
    assert refreshed.status_code == 303
    jobs = db.scalars(select(Job)).all()
    assert [(j.kind, j.args) for j in jobs] == [("refresh_segments", {"segment_id": segment.id})]
    assert "已开始刷新" in client.get(f"/segments/{segment.id}").text
    # archive hides it from the list
    archived = client.post(f"/segments/{segment.id}/archive", data={"csrf_token": csrf})
    assert archived.status_code == 303 and archived.headers["location"] == "/segments"
    db.refresh(segment)
    assert segment.archived_at == clock.now()
    listing = client.get("/segments").text
    assert f'data-segment="{segment.id}"' not in listing and f'data-segment="{copy.id}"' in listing
    assert f'data-segment="{segment.id}"' in client.get("/segments?archived=true").text


# --- permissions -------------------------------------------------------------------------------


def test_an_analyst_cannot_change_segments_and_nothing_is_written(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    pool = make_pool(db, workspace, clock)
    segment = make_segment(db, workspace=workspace, clock=clock, definition=definition(pool), name="沪京 VIP")
    db.commit()
    csrf = login(client, user_with_role(Role.ANALYST).email)
    posted = json.dumps(definition(pool))
    assert client.get("/segments/new").status_code == 403
    created = client.post("/segments", data={"csrf_token": csrf, "name": "新人群", "definition": posted})
    assert created.status_code == 403
    assert "没有权限" in created.text
    assert client.get(f"/segments/{segment.id}/edit").status_code == 403
    edit = client.post(f"/segments/{segment.id}/edit", data={"csrf_token": csrf, "name": "改名", "definition": posted})
    assert edit.status_code == 403
    for action in ("refresh", "archive", "snapshot"):
        assert (
            client.post(f"/segments/{segment.id}/{action}", data={"csrf_token": csrf, "name": "x"}).status_code == 403
        )
    upload = client.post(
        "/segments/upload",
        data={"csrf_token": csrf, "name": "名单"},
        files={"file": ("a.csv", b"phone\n13800138001\n")},
    )
    assert upload.status_code == 403
    db.refresh(segment)
    assert (segment.name, segment.version, segment.archived_at) == ("沪京 VIP", 1, None)
    assert (_count(db, Segment), _count(db, SegmentVersion), _count(db, Job), _segment_audits(db)) == (1, 0, 0, 0)
    # but reading is allowed
    assert client.get("/segments").status_code == 200
    assert 'id="new-segment"' not in client.get("/segments").text


def test_english_console(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    pool = make_pool(db, workspace, clock)
    segment = make_segment(db, workspace=workspace, clock=clock, definition=definition(pool), name="沪京 VIP")
    db.commit()
    csrf = login(client, user_with_role(Role.ADMIN).email)
    client.post("/locale", data={"csrf_token": csrf, "locale": "en", "next": "/segments"})
    listing = client.get("/segments").text
    assert "New segment" in listing and "Upload list" in listing
    detail = client.get(f"/segments/{segment.id}").text
    summary = _text(_element(detail, r'<div class="card-body" id="definition-summary">(.*?)<details'))
    assert summary == (
        "Match all Tags · Has any of: VIP Match any Profile field · City equals 上海 Profile field · City equals 北京"
    )
    assert _builder_data(client.get("/segments/new").text)["labels"]["ui"]["add_condition"] == "Add condition"
    assert csrf_of(listing)
