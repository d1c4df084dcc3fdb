"""The segments API end to end: bad definitions (422 with the node's path, nothing written), CRUD
and versions, counts and member pages, the SQL, schema and catalog, archive, refresh, snapshots,
history and trend, permissions and what a limited role sees."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import PermissionDenied
from siyu.models import AuditEntry, Customer, Job, Role, Segment, SegmentMember, SegmentVersion, Workspace
from siyu.segments.definition import CONDITION_KINDS
from siyu.segments.service import members, preview
from siyu.segments.service.tracking import refresh_segment
from tests.api import conftest as api_fixtures
from tests.api.conftest import bearer
from tests.factories import (
    actor_for,
    make_customer,
    make_staff,
    make_store,
    make_tag,
    make_token,
    make_workspace,
)
from tests.segments.factories import make_attribute, make_event, make_sale, make_segment

# The API app and client over the test's transaction (tests/segments/conftest.py is not ours to extend).
app = api_fixtures.app
client = api_fixtures.client

SHANGHAI = {"kind": "field", "field": "city", "op": "eq", "value": "上海"}
READ_ONLY = ["segments:read", "customers:read"]


def _headers(db: Session, clock: FrozenClock, ws: Workspace, scopes: list[str] | None = None) -> dict[str, str]:
    token = make_token(db, clock=clock, workspace=ws, scopes=scopes)
    db.commit()
    return bearer(token)


def _rows(db: Session) -> tuple[int, int, int]:
    """Segments, versions and members in the database (everything the test wrote is in one transaction)."""
    return (
        int(db.scalar(select(func.count()).select_from(Segment)) or 0),
        int(db.scalar(select(func.count()).select_from(SegmentVersion)) or 0),
        int(db.scalar(select(func.count()).select_from(SegmentMember)) or 0),
    )


def _people(db: Session, clock: FrozenClock, ws: Workspace, cities: list[str]) -> list[int]:
    """One customer per city, in order (ids ascending)."""
    actor = Actor.system(ws.id)
    return [make_customer(db, actor=actor, clock=clock, city=city).customer.id for city in cities]


def _create(client: TestClient, headers: dict[str, str], name: str, definition: Any) -> dict[str, Any]:
    response = client.post("/api/v1/segments", headers=headers, json={"name": name, "definition": definition})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


# --- bad definitions -------------------------------------------------------------------------------


@dataclasses.dataclass
class World:
    ws: Workspace
    other: Workspace
    foreign_tag_id: int
    headers: dict[str, str]


def _world(db: Session, clock: FrozenClock) -> World:
    ws = make_workspace(db, clock=clock)
    other = make_workspace(db, clock=clock)
    make_attribute(db, workspace=ws, key="visits", type="integer")
    foreign = make_tag(db, workspace=other)
    return World(ws, other, foreign.id, _headers(db, clock, ws))


VIEWS = {"kind": "event", "type": "page.view", "op": "at_least", "value": 3}
Case = Callable[[World], Any]
BAD: list[tuple[str, Case, str, str]] = [
    ("unknown field", lambda w: {"all": [{**SHANGHAI, "field": "shoe"}]}, "$.all[0].field", "unknown field 'shoe'"),
    ("unknown kind", lambda w: {"any": [SHANGHAI, {"kind": "mood"}]}, "$.any[1].kind", "unknown condition kind"),
    (
        "contains on an integer",
        lambda w: {"all": [SHANGHAI, {"kind": "field", "field": "attributes.visits", "op": "contains", "value": "1"}]},
        "$.all[1].op",
        "contains does not apply to integer field attributes.visits; use one of",
    ),
    ("gt on an enum", lambda w: {"kind": "field", "field": "gender", "op": "gt", "value": "male"}, "$.op", "gt does"),
    (
        "anniversary on created_at",
        lambda w: {"not": {"kind": "field", "field": "created_at", "op": "anniversary_within_next", "value": 7}},
        "$.not.op",
        "anniversary_within_next does not apply to datetime field created_at",
    ),
    (
        "string for an integer",
        lambda w: {"kind": "field", "field": "attributes.visits", "op": "gte", "value": "3"},
        "$.value",
        "expected a whole number",
    ),
    (
        "abc date",
        lambda w: {"kind": "field", "field": "birthday", "op": "eq", "value": "abc"},
        "$.value",
        "expected a date",
    ),
    (
        "window of -3 days",
        lambda w: {"all": [{**VIEWS, "window": {"last_days": -3}}]},
        "$.all[0].window.last_days",
        "expected a number from 1 to 3660",
    ),
    (
        "to before from",
        lambda w: {**VIEWS, "window": {"from": "2026-11-20", "to": "2026-11-19"}},
        "$.window.to",
        "the window ends before it starts",
    ),
    ("depth over 8", lambda w: _nested(9), "$" + ".all[0]" * 8, "groups nest at most 8 deep"),
    ("over 200 nodes", lambda w: {"all": [SHANGHAI] * 200}, "$.all[199]", "at most 200 groups and conditions"),
    ("empty all", lambda w: {"all": []}, "$.all", "expected a non-empty list"),
    ("a group with two keys", lambda w: {"all": [SHANGHAI], "not": SHANGHAI}, "$", "exactly one key"),
    ("not with a list", lambda w: {"not": [SHANGHAI]}, "$.not", "expected an object"),
    ("unknown key", lambda w: {"all": [{**SHANGHAI, "colour": "red"}]}, "$.all[0].colour", "unknown key 'colour'"),
    (
        "tag of another workspace",
        lambda w: {"kind": "tag", "tag_ids": [w.foreign_tag_id]},
        "$.tag_ids[0]",
        "no tag with id",
    ),
    (
        "unknown staff",
        lambda w: {"kind": "relationship", "staff_ids": [987654321]},
        "$.staff_ids[0]",
        "no staff member with id 987654321",
    ),
    ("sample 0", lambda w: {"kind": "sample", "percent": 0}, "$.percent", "expected a percentage"),
    ("sample 100.001", lambda w: {"kind": "sample", "percent": 100.001}, "$.percent", "expected a percentage"),
    ("sample 12.345", lambda w: {"kind": "sample", "percent": 12.345}, "$.percent", "expected a percentage"),
    ("event count 2.5", lambda w: {**VIEWS, "value": 2.5}, "$.value", "an event count is a whole number"),
    ("event count -1", lambda w: {**VIEWS, "value": -1}, "$.value", "an event count is a whole number"),
    (
        "order amount 1.5",
        lambda w: {"kind": "order", "measure": "total_fen", "op": "gt", "value": 1.5},
        "$.value",
        "whole numbers",
    ),
    (
        "in with 1001 values",
        lambda w: {"kind": "field", "field": "city", "op": "in", "value": [f"c{i}" for i in range(1001)]},
        "$.value",
        "at most 1000 values",
    ),
    ("id beyond 2**63", lambda w: {"kind": "tag", "tag_ids": [2**63 + 1]}, "$.tag_ids[0]", "expected a number"),
    ("huge event count", lambda w: {**VIEWS, "value": 10**40}, "$.value", "number out of range"),
    (
        "huge property value",
        lambda w: {**VIEWS, "where": [{"property": "amount", "op": "gt", "value": 10**40}]},
        "$.where[0].value",
        "",
    ),
    (
        "huge float property value",
        lambda w: {**VIEWS, "where": [{"property": "amount", "op": "lt", "value": -1e300}]},
        "$.where[0].value",
        "",
    ),
    ("huge segment id", lambda w: {"kind": "segment", "segment_id": 10**30}, "$.segment_id", "expected a number"),
    ("not an object", lambda w: "city = 上海", "$", "expected an object"),
]


def _nested(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = SHANGHAI
    for _ in range(levels):
        node = {"all": [node]}
    return node


@pytest.mark.parametrize(("case", "definition", "path", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_definitions_are_422_with_the_path_and_nothing_is_written(
    client: TestClient, db: Session, clock: FrozenClock, case: str, definition: Case, path: str, message: str
) -> None:
    world = _world(db, clock)
    existing = _create(client, world.headers, "已有", SHANGHAI)
    before = _rows(db)
    raw = definition(world)
    for method, url, body in [
        ("POST", "/api/v1/segments", {"name": "新人群", "definition": raw}),
        ("PATCH", f"/api/v1/segments/{existing['id']}", {"name": "改名", "definition": raw}),
        ("POST", "/api/v1/segments/preview", {"definition": raw}),
    ]:
        response = client.request(method, url, headers=world.headers, json=body)
        assert response.status_code == 422, (method, url, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid_segment", error
        assert error["details"] == {"field": "definition", "path": path}
        assert error["message"].startswith(f"{path}: ")
        assert message in error["message"]
    assert _rows(db) == before
    unchanged = client.get(f"/api/v1/segments/{existing['id']}", headers=world.headers).json()
    assert (unchanged["name"], unchanged["version"], unchanged["definition"]) == ("已有", 1, SHANGHAI)


def test_malformed_json_bodies_are_422_never_500(client: TestClient, db: Session, clock: FrozenClock) -> None:
    world = _world(db, clock)
    existing = _create(client, world.headers, "已有", SHANGHAI)
    before = _rows(db)
    json_type = world.headers | {"content-type": "application/json"}
    for method, url in [
        ("POST", "/api/v1/segments"),
        ("PATCH", f"/api/v1/segments/{existing['id']}"),
        ("POST", "/api/v1/segments/preview"),
        ("POST", f"/api/v1/segments/{existing['id']}/snapshot"),
    ]:
        for raw in (b"{not json", b"", b'{"name": "x", "definition": {"all": [', b"\xff\xfe"):
            response = client.request(method, url, headers=json_type, content=raw)
            assert response.status_code == 422, (method, url, raw, response.text)
            assert response.json()["error"]["code"] == "invalid_input"
    missing = client.post("/api/v1/segments", headers=world.headers, json={"name": "x"})
    assert missing.status_code == 422
    assert [d["field"] for d in missing.json()["error"]["details"]] == ["definition"]
    nul = {"all": [{"kind": "field", "field": "city", "op": "eq", "value": "上\x00海"}]}
    for method, url in [
        ("POST", "/api/v1/segments"),
        ("PATCH", f"/api/v1/segments/{existing['id']}"),
        ("POST", "/api/v1/segments/preview"),
    ]:
        response = client.request(method, url, headers=world.headers, json={"name": "x", "definition": nul})
        assert response.status_code == 422, (method, url, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid_input"
        assert error["details"][0]["message"] == "Value error, definition.all.0.value contains a NUL character"
    assert _rows(db) == before


def test_names_are_checked(client: TestClient, db: Session, clock: FrozenClock) -> None:
    world = _world(db, clock)
    before = _rows(db)
    for name in ("", "   ", "名" * 101):
        response = client.post("/api/v1/segments", headers=world.headers, json={"name": name, "definition": SHANGHAI})
        assert response.status_code == 422, name
        assert response.json()["error"]["details"] == {"field": "name"}
    assert _rows(db) == before


def test_a_cycle_is_refused_and_leaves_the_segment_as_it_was(
    client: TestClient, db: Session, clock: FrozenClock
) -> None:
    world = _world(db, clock)
    a = _create(client, world.headers, "A", SHANGHAI)
    b = _create(client, world.headers, "B", {"all": [SHANGHAI, {"kind": "segment", "segment_id": a["id"]}]})
    before = _rows(db)
    cycle = {"any": [SHANGHAI, {"not": {"kind": "segment", "segment_id": b["id"]}}]}
    response = client.patch(f"/api/v1/segments/{a['id']}", headers=world.headers, json={"definition": cycle})
    assert response.status_code == 422
    assert response.json()["error"] == {
        "code": "invalid_segment",
        "message": "$.any[1].not.segment_id: segments refer to each other in a cycle "
        f"({a['id']} → {b['id']} → {a['id']})",
        "details": {"field": "definition", "path": "$.any[1].not.segment_id"},
    }
    itself = client.patch(
        f"/api/v1/segments/{a['id']}",
        headers=world.headers,
        json={"definition": {"kind": "segment", "segment_id": a["id"]}},
    )
    assert itself.status_code == 422
    assert itself.json()["error"]["details"] == {"field": "definition", "path": "$.segment_id"}
    assert itself.json()["error"]["message"] == "$.segment_id: a segment cannot refer to itself"
    # The preview of an edit checks cycles too, given the segment being edited.
    previewed = client.post(
        "/api/v1/segments/preview", headers=world.headers, json={"definition": cycle, "segment_id": a["id"]}
    )
    assert previewed.status_code == 422
    assert previewed.json()["error"]["details"] == {"field": "definition", "path": "$.any[1].not.segment_id"}
    assert _rows(db) == before
    got = client.get(f"/api/v1/segments/{a['id']}", headers=world.headers).json()
    assert (got["version"], got["definition"]) == (1, SHANGHAI)
    versions = client.get(f"/api/v1/segments/{a['id']}/versions", headers=world.headers).json()
    assert [(v["version"], v["definition"]) for v in versions] == [(1, SHANGHAI)]


def test_references_go_at_most_five_levels_deep(client: TestClient, db: Session, clock: FrozenClock) -> None:
    world = _world(db, clock)
    chain = [_create(client, world.headers, "L0", SHANGHAI)["id"]]
    for level in range(1, 6):
        chain.append(_create(client, world.headers, f"L{level}", {"kind": "segment", "segment_id": chain[-1]})["id"])
    before = _rows(db)
    response = client.post(
        "/api/v1/segments",
        headers=world.headers,
        json={"name": "L6", "definition": {"all": [SHANGHAI, {"kind": "segment", "segment_id": chain[-1]}]}},
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"] == {"field": "definition", "path": "$.all[1].segment_id"}
    assert response.json()["error"]["message"] == (
        "$.all[1].segment_id: segments refer to segments at most 5 levels deep"
    )
    assert _rows(db) == before


# --- CRUD, versions, counts, members -----------------------------------------------------------------


def test_create_get_patch_versions_and_name_conflict(client: TestClient, db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    headers = _headers(db, clock, ws)
    created = client.post(
        "/api/v1/segments",
        headers=headers,
        json={"name": " 上海客户 ", "description": "城市为上海", "definition": SHANGHAI},
    )
    assert created.status_code == 201
    body = created.json()
    segment_id = body["id"]
    assert {k: v for k, v in body.items() if k not in ("id", "created_at", "updated_at")} == {
        "name": "上海客户",
        "description": "城市为上海",
        "kind": "dynamic",
        "definition": SHANGHAI,
        "version": 1,
        "is_tracked": False,
        "member_count": None,
        "counted_at": None,
        "refreshed_at": None,
        "source": None,
        "created_by": "token:test",
        "archived_at": None,
    }
    assert client.get(f"/api/v1/segments/{segment_id}", headers=headers).json() == body
    hangzhou = {"any": [SHANGHAI, {"kind": "field", "field": "city", "op": "eq", "value": "杭州"}]}
    clock.advance(timedelta(minutes=5))
    patched = client.patch(f"/api/v1/segments/{segment_id}", headers=headers, json={"definition": hangzhou})
    assert patched.status_code == 200
    assert (patched.json()["version"], patched.json()["definition"], patched.json()["name"]) == (
        2,
        hangzhou,
        "上海客户",
    )
    # The same definition again is no new version.
    same = client.patch(f"/api/v1/segments/{segment_id}", headers=headers, json={"definition": hangzhou})
    assert same.json()["version"] == 2
    versions = client.get(f"/api/v1/segments/{segment_id}/versions", headers=headers).json()
    assert [(v["version"], v["definition"], v["created_by"]) for v in versions] == [
        (2, hangzhou, "token:test"),
        (1, SHANGHAI, "token:test"),
    ]
    other = _create(client, headers, "杭州客户", SHANGHAI)
    before = _rows(db)
    taken = client.patch(f"/api/v1/segments/{other['id']}", headers=headers, json={"name": "上海客户"})
    assert taken.status_code == 409
    assert taken.json()["error"] == {
        "code": "segment_name_taken",
        "message": "a segment named '上海客户' exists",
        "details": {"field": "name"},
    }
    again = client.post("/api/v1/segments", headers=headers, json={"name": "上海客户", "definition": SHANGHAI})
    assert again.status_code == 409
    assert _rows(db) == before
    actions = db.scalars(
        select(AuditEntry.action)
        .where(AuditEntry.workspace_id == ws.id, AuditEntry.entity_type == "segment")
        .order_by(AuditEntry.id)
    ).all()
    assert actions == ["create", "update", "update", "create"]


def test_count_and_member_pages_newest_first(client: TestClient, db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    ids = _people(db, clock, ws, ["上海", "杭州", "上海", "上海", "北京", "上海", "上海"])
    other = make_workspace(db, clock=clock)
    _people(db, clock, other, ["上海", "上海"])
    headers = _headers(db, clock, ws)
    segment = _create(client, headers, "上海客户", SHANGHAI)
    shanghai = [ids[i] for i in (6, 5, 3, 2, 0)]
    assert client.get(f"/api/v1/segments/{segment['id']}/count", headers=headers).json() == {
        "segment_id": segment["id"],
        "count": 5,
    }
    pages: list[list[int]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get(f"/api/v1/segments/{segment['id']}/members", headers=headers, params=params).json()
        pages.append([c["id"] for c in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [shanghai[0:2], shanghai[2:4], shanghai[4:5]]
    bad_limit = client.get(f"/api/v1/segments/{segment['id']}/members", headers=headers, params={"limit": 0})
    assert bad_limit.status_code == 422
    preview_body = client.post("/api/v1/segments/preview", headers=headers, json={"definition": SHANGHAI}).json()
    assert preview_body["count"] == 5
    assert [m["id"] for m in preview_body["sample"]] == shanghai
    assert preview_body["node_counts"] == {"$": 5}


def test_the_sql_writes_a_referenced_segment_once(client: TestClient, db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    headers = _headers(db, clock, ws)
    inner = _create(client, headers, "内层", {"kind": "field", "field": "city", "op": "eq", "value": "苏州"})
    outer = _create(
        client,
        headers,
        "外层",
        {
            "any": [
                {"kind": "segment", "segment_id": inner["id"]},
                {"all": [SHANGHAI, {"kind": "segment", "segment_id": inner["id"], "member": False}]},
            ]
        },
    )
    sql = client.get(f"/api/v1/segments/{outer['id']}/sql", headers=headers).json()
    assert sql["segment_id"] == outer["id"]
    assert sql["sql"].count(f"WITH segment_{inner['id']}") == 1
    assert sql["sql"].count(f"segment_{inner['id']} AS") == 1
    assert sql["sql"].count("'苏州'") == 1
    static = make_segment(db, workspace=ws, clock=clock, members=[])
    db.commit()
    assert client.get(f"/api/v1/segments/{static.id}/sql", headers=headers).json() == {
        "segment_id": static.id,
        "sql": None,
    }


def test_the_schema_lists_the_eighteen_condition_kinds(client: TestClient) -> None:
    schema = client.get("/api/v1/segments/schema").json()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$ref"] == "#/$defs/node"
    kinds = [c["properties"]["kind"]["const"] for c in schema["$defs"]["condition"]["oneOf"]]
    assert kinds == list(CONDITION_KINDS)
    assert len(kinds) == 18
    assert {g["required"][0] for g in schema["$defs"]["group"]["oneOf"]} == {"all", "any", "not"}


def test_the_catalog_lists_what_this_workspace_has(client: TestClient, db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    other = make_workspace(db, clock=clock)
    make_attribute(db, workspace=ws, key="visits", type="integer", label="到店次数")
    make_attribute(db, workspace=other, key="points", type="integer")
    tag = make_tag(db, workspace=ws, name="高价值")
    make_tag(db, workspace=other, name="别家")
    staff = make_staff(db, workspace=ws, clock=clock, name="小王")
    make_staff(db, workspace=other, clock=clock, name="别家导购")
    segment = make_segment(db, workspace=ws, clock=clock, definition=SHANGHAI, name="上海")
    archived = make_segment(db, workspace=ws, clock=clock, definition=SHANGHAI, name="旧的")
    archived.archived_at = clock.now()
    for workspace, types, sales in [
        (ws, ["page.view", "order.paid", "page.view"], [("taobao", "SKU-2", "面霜"), ("jd", "SKU-1", None)]),
        (other, ["coupon.used"], [("douyin", "SKU-9", "口红")]),
    ]:
        customer = make_customer(db, actor=Actor.system(workspace.id), clock=clock).customer
        for event_type in types:
            make_event(db, customer=customer, type=event_type, occurred_at=clock.now())
        for platform, sku, category in sales:
            make_sale(db, customer=customer, paid_at=clock.now(), platform=platform, items=[(sku, category)])
    headers = _headers(db, clock, ws, scopes=["segments:read"])
    catalog = client.get("/api/v1/segments/catalog", headers=headers).json()
    assert catalog["kinds"] == list(CONDITION_KINDS)
    assert catalog["event_types"] == ["order.paid", "page.view"]
    assert catalog["skus"] == ["SKU-1", "SKU-2"]
    assert catalog["categories"] == ["面霜"]
    assert catalog["platforms"] == ["jd", "taobao"]
    assert [(t["id"], t["name"]) for t in catalog["tags"]] == [(tag.id, "高价值")]
    assert catalog["staff"] == [{"id": staff.id, "name": "小王"}]
    assert catalog["segments"] == [{"id": segment.id, "name": "上海", "kind": "dynamic"}]
    fields = {f["key"]: f for f in catalog["fields"]}
    assert "attributes.points" not in fields
    assert fields["attributes.visits"] == {
        "key": "attributes.visits",
        "label": "到店次数",
        "type": "integer",
        "ops": ["between", "eq", "gt", "gte", "in", "is_not_set", "is_set", "lt", "lte", "ne", "not_in"],
        "choices": [],
    }
    assert fields["gender"]["ops"] == ["eq", "in", "is_not_set", "is_set", "ne", "not_in"]
    assert fields["gender"]["choices"] == ["female", "male", "unknown"]
    assert "anniversary_within_next" in fields["birthday"]["ops"]
    assert "anniversary_within_next" not in fields["created_at"]["ops"]
    assert list(fields)[:11] == [
        "name",
        "gender",
        "birthday",
        "province",
        "city",
        "phone",
        "email",
        "lifecycle_stage",
        "owner_staff_id",
        "first_channel",
        "created_at",
    ]


def test_archive_hides_the_segment_from_the_list(client: TestClient, db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    headers = _headers(db, clock, ws)
    kept = _create(client, headers, "保留", SHANGHAI)
    gone = _create(client, headers, "归档", SHANGHAI)
    assert client.delete(f"/api/v1/segments/{gone['id']}", headers=headers).status_code == 204
    assert [s["id"] for s in client.get("/api/v1/segments", headers=headers).json()] == [kept["id"]]
    everything = client.get("/api/v1/segments", headers=headers, params={"include_archived": "true"}).json()
    assert [s["id"] for s in everything] == [gone["id"], kept["id"]]
    assert everything[0]["archived_at"] is not None
    # Archiving twice is harmless; the archived segment still answers by id.
    assert client.delete(f"/api/v1/segments/{gone['id']}", headers=headers).status_code == 204
    assert client.get(f"/api/v1/segments/{gone['id']}/count", headers=headers).json()["count"] == 0


def test_refresh_queues_a_job(client: TestClient, db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    headers = _headers(db, clock, ws)
    segment = _create(client, headers, "上海", SHANGHAI)
    response = client.post(f"/api/v1/segments/{segment['id']}/refresh", headers=headers)
    assert response.status_code == 202
    job = response.json()
    assert (job["kind"], job["status"], job["created_by"]) == ("refresh_segments", "queued", "token:test")
    stored = db.get(Job, job["id"])
    assert stored is not None and stored.args == {"segment_id": segment["id"]}


def test_snapshot_keeps_the_members_of_that_moment(client: TestClient, db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    ids = _people(db, clock, ws, ["上海", "杭州", "上海"])
    headers = _headers(db, clock, ws)
    source = _create(client, headers, "上海", SHANGHAI)
    response = client.post(f"/api/v1/segments/{source['id']}/snapshot", headers=headers, json={"name": "上海快照"})
    assert response.status_code == 201
    snap = response.json()
    assert {k: snap[k] for k in ("name", "kind", "definition", "source", "member_count", "is_tracked")} == {
        "name": "上海快照",
        "kind": "static",
        "definition": SHANGHAI,
        "source": f"snapshot:{source['id']}",
        "member_count": 2,
        "is_tracked": False,
    }

    def member_ids(segment_id: int) -> list[int]:
        page = client.get(f"/api/v1/segments/{segment_id}/members", headers=headers).json()
        return [c["id"] for c in page["items"]]

    assert member_ids(snap["id"]) == [ids[2], ids[0]]
    # Later changes move the dynamic segment, not the snapshot.
    db.get(Customer, ids[0]).city = "北京"  # type: ignore[union-attr]
    db.get(Customer, ids[1]).city = "上海"  # type: ignore[union-attr]
    db.commit()
    assert member_ids(source["id"]) == [ids[2], ids[1]]
    assert member_ids(snap["id"]) == [ids[2], ids[0]]
    assert client.get(f"/api/v1/segments/{snap['id']}/count", headers=headers).json()["count"] == 2
    # A static segment's members are fixed.
    redefine = client.patch(f"/api/v1/segments/{snap['id']}", headers=headers, json={"definition": SHANGHAI})
    assert redefine.status_code == 422
    assert redefine.json()["error"]["code"] == "segment_not_dynamic"
    taken = client.post(f"/api/v1/segments/{source['id']}/snapshot", headers=headers, json={"name": "上海快照"})
    assert taken.status_code == 409


def test_history_and_trend(client: TestClient, db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    ids = _people(db, clock, ws, ["上海", "上海", "杭州"])
    headers = _headers(db, clock, ws)
    created = client.post(
        "/api/v1/segments", headers=headers, json={"name": "上海", "definition": SHANGHAI, "is_tracked": True}
    )
    segment_id = created.json()["id"]
    empty = client.get(f"/api/v1/segments/{segment_id}/history", headers=headers).json()
    assert empty == {"items": [], "next_cursor": None}
    assert client.get(f"/api/v1/segments/{segment_id}/trend", headers=headers).json() == []
    refresh_segment(db, segment_id=segment_id, clock=clock)
    db.commit()
    clock.advance(timedelta(days=1))
    db.get(Customer, ids[0]).city = "杭州"  # type: ignore[union-attr]
    refresh_segment(db, segment_id=segment_id, clock=clock)
    db.commit()
    history = client.get(f"/api/v1/segments/{segment_id}/history", headers=headers, params={"limit": 2}).json()
    assert [(e["customer_id"], e["change"], e["trigger"]) for e in history["items"]] == [
        (ids[0], "left", "refresh"),
        (ids[1], "entered", "refresh"),
    ]
    assert history["next_cursor"] is not None
    rest = client.get(
        f"/api/v1/segments/{segment_id}/history", headers=headers, params={"cursor": history["next_cursor"]}
    ).json()
    assert [(e["customer_id"], e["change"]) for e in rest["items"]] == [(ids[0], "entered")]
    assert rest["next_cursor"] is None
    trend = client.get(f"/api/v1/segments/{segment_id}/trend", headers=headers).json()
    assert trend == [{"day": "2026-11-23", "size": 2}, {"day": "2026-11-24", "size": 1}]
    assert client.get(f"/api/v1/segments/{segment_id}/trend", headers=headers, params={"days": 1}).json() == [
        {"day": "2026-11-24", "size": 1}
    ]
    got = client.get(f"/api/v1/segments/{segment_id}", headers=headers).json()
    assert (got["member_count"], got["is_tracked"]) == (1, True)


# --- permissions and limited roles -------------------------------------------------------------------


def test_without_write_scope_every_change_is_403_and_nothing_changes(
    client: TestClient, db: Session, clock: FrozenClock
) -> None:
    ws = make_workspace(db, clock=clock)
    writer = _headers(db, clock, ws)
    reader = _headers(db, clock, ws, scopes=READ_ONLY)
    segment = _create(client, writer, "上海", SHANGHAI)
    before = _rows(db)
    jobs = db.scalar(select(func.count()).select_from(Job))
    sid = segment["id"]
    for method, url, kwargs in [
        ("POST", "/api/v1/segments", {"json": {"name": "新", "definition": SHANGHAI}}),
        ("PATCH", f"/api/v1/segments/{sid}", {"json": {"name": "新名字"}}),
        ("DELETE", f"/api/v1/segments/{sid}", {}),
        ("POST", f"/api/v1/segments/{sid}/snapshot", {"json": {"name": "快照"}}),
        ("POST", f"/api/v1/segments/{sid}/refresh", {}),
        ("POST", "/api/v1/segments/upload", {"data": {"name": "名单"}, "files": {"file": ("a.csv", b"phone\n1")}}),
    ]:
        response = client.request(method, url, headers=reader, **kwargs)
        assert response.status_code == 403, (method, url, response.text)
        assert response.json()["error"] == {
            "code": "forbidden",
            "message": "missing permission segments:write",
            "details": {"scope": "segments:write"},
        }
    assert _rows(db) == before
    assert db.scalar(select(func.count()).select_from(Job)) == jobs
    got = client.get(f"/api/v1/segments/{sid}", headers=reader).json()
    assert (got["name"], got["archived_at"]) == ("上海", None)


def test_without_read_scope_reads_are_403(client: TestClient, db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    segment = _create(client, _headers(db, clock, ws), "上海", SHANGHAI)
    headers = _headers(db, clock, ws, scopes=["customers:read"])
    sid = segment["id"]
    for method, url in [
        ("GET", "/api/v1/segments"),
        ("GET", "/api/v1/segments/catalog"),
        ("GET", f"/api/v1/segments/{sid}"),
        ("GET", f"/api/v1/segments/{sid}/versions"),
        ("GET", f"/api/v1/segments/{sid}/count"),
        ("GET", f"/api/v1/segments/{sid}/members"),
        ("GET", f"/api/v1/segments/{sid}/export"),
        ("GET", f"/api/v1/segments/{sid}/sql"),
        ("GET", f"/api/v1/segments/{sid}/history"),
        ("GET", f"/api/v1/segments/{sid}/trend"),
        ("POST", "/api/v1/segments/preview"),
    ]:
        kwargs: dict[str, Any] = {"json": {"definition": SHANGHAI}} if method == "POST" else {}
        response = client.request(method, url, headers=headers, **kwargs)
        assert response.status_code == 403, (url, response.text)
        assert response.json()["error"]["details"] == {"scope": "segments:read"}
    members_without_customers = client.get(
        f"/api/v1/segments/{sid}/members", headers=_headers(db, clock, ws, scopes=["segments:read"])
    )
    assert members_without_customers.status_code == 403
    assert members_without_customers.json()["error"]["details"] == {"scope": "customers:read"}


def test_another_workspaces_segment_is_404(client: TestClient, db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    other = make_workspace(db, clock=clock)
    foreign = _create(client, _headers(db, clock, other), "别家", SHANGHAI)
    headers = _headers(db, clock, ws)
    before = _rows(db)
    sid = foreign["id"]
    for method, url, body in [
        ("GET", f"/api/v1/segments/{sid}", None),
        ("PATCH", f"/api/v1/segments/{sid}", {"name": "偷改"}),
        ("DELETE", f"/api/v1/segments/{sid}", None),
        ("GET", f"/api/v1/segments/{sid}/versions", None),
        ("GET", f"/api/v1/segments/{sid}/count", None),
        ("GET", f"/api/v1/segments/{sid}/members", None),
        ("GET", f"/api/v1/segments/{sid}/export", None),
        ("GET", f"/api/v1/segments/{sid}/sql", None),
        ("POST", f"/api/v1/segments/{sid}/refresh", None),
        ("POST", f"/api/v1/segments/{sid}/snapshot", {"name": "偷拍"}),
        ("GET", f"/api/v1/segments/{sid}/history", None),
        ("GET", f"/api/v1/segments/{sid}/trend", None),
    ]:
        response = client.request(method, url, headers=headers, json=body)
        assert response.status_code == 404, (method, url, response.text)
        assert response.json()["error"] == {
            "code": "segment_not_found",
            "message": f"segment {sid} not found",
            "details": None,
        }
    assert _rows(db) == before
    assert client.get(f"/api/v1/segments/{2**63}", headers=headers).status_code == 422


def test_limited_roles_count_only_their_own_customers(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    store = make_store(db, workspace=ws)
    mine = make_staff(db, workspace=ws, clock=clock, store=store)
    colleague = make_staff(db, workspace=ws, clock=clock, store=store)
    elsewhere = make_staff(db, workspace=ws, clock=clock)
    system = Actor.system(ws.id)
    owned = {
        who.id: [
            make_customer(db, actor=system, clock=clock, city="上海", owner_staff_id=who.id).customer.id
            for _ in range(n)
        ]
        for who, n in ((mine, 2), (colleague, 1), (elsewhere, 3))
    }
    make_customer(db, actor=system, clock=clock, city="上海")  # nobody's
    segment = make_segment(db, workspace=ws, clock=clock, definition=SHANGHAI)
    # Staff hold no segments scope; one given it (a custom grant) still sees only their customers.
    staff_role = actor_for(ws, role=Role.STAFF, staff_id=mine.id)
    with pytest.raises(PermissionDenied):
        preview.preview_definition(db, actor=staff_role, definition=SHANGHAI, clock=clock)
    staff = dataclasses.replace(staff_role, scopes=staff_role.scopes | {"segments:read"})
    manager = actor_for(ws, role=Role.STORE_MANAGER, store_id=store.id)
    admin = actor_for(ws)
    expected = {
        "staff": (staff, sorted(owned[mine.id], reverse=True)),
        "manager": (manager, sorted(owned[mine.id] + owned[colleague.id], reverse=True)),
        "admin": (admin, None),
    }
    for name, (actor, ids) in expected.items():
        result = preview.preview_definition(db, actor=actor, definition=SHANGHAI, clock=clock)
        count = members.count_members(db, actor=actor, segment_id=segment.id, clock=clock)
        page = members.members_page(db, actor=actor, segment_id=segment.id, clock=clock)
        if ids is None:
            assert (result.count, count, len(page.items)) == (7, 7, 7), name
            continue
        assert (result.count, count) == (len(ids), len(ids)), name
        assert result.node_counts == {"$": len(ids)}, name
        assert [c.id for c in result.sample] == ids, name
        assert [c.id for c in page.items] == ids, name


def test_junk_in_queries_and_ids_is_4xx_never_500(client: TestClient, db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    headers = _headers(db, clock, ws)
    segment = _create(client, headers, "上海", SHANGHAI)
    sid = segment["id"]
    for url, params in [
        (f"/api/v1/segments/{sid}/members", {"cursor": "not-a-cursor"}),
        (f"/api/v1/segments/{sid}/members", {"limit": 201}),
        (f"/api/v1/segments/{sid}/history", {"cursor": "%%%"}),
        (f"/api/v1/segments/{sid}/trend", {"days": 0}),
        (f"/api/v1/segments/{sid}/export", {"format": "xls"}),
        ("/api/v1/segments", {"include_archived": "maybe"}),
        ("/api/v1/segments/abc", {}),
        ("/api/v1/segments/0", {}),
        (f"/api/v1/segments/{2**64}/count", {}),
    ]:
        response = client.get(url, headers=headers, params=params)
        assert response.status_code == 422, (url, params, response.text)
        assert response.json()["error"]["code"] in ("invalid_input", "invalid_cursor"), response.text
    # The edited segment's id only feeds the cycle check: one out of range is harmless, never a 500.
    for body in (
        {"definition": SHANGHAI, "segment_id": 2**64},
        {"definition": {"kind": "segment", "segment_id": sid}, "segment_id": 2**64},
    ):
        response = client.post("/api/v1/segments/preview", headers=headers, json=body)
        assert response.status_code in (200, 422), (body, response.text)
    zero = client.post("/api/v1/segments/preview", headers=headers, json={"definition": SHANGHAI, "segment_id": 0})
    assert zero.status_code == 422
    long_name = client.post("/api/v1/segments", headers=headers, json={"name": "名" * 201, "definition": SHANGHAI})
    assert long_name.status_code == 422
