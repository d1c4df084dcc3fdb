"""`/api/v1/resources`: create, upload (checked by bytes), publish, list with counts, patch,
and the read-only token kept out."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import ROLE_SCOPES
from siyu.kit.clock import FrozenClock
from siyu.models import Role, Workspace
from siyu.models.resource import Resource
from tests.api import conftest as api_fixtures
from tests.api.conftest import bearer
from tests.community.resources import factories as f
from tests.factories import make_token, make_workspace

app = api_fixtures.app
client = api_fixtures.client


def _headers(db: Session, clock: FrozenClock, ws: Workspace, role: Role) -> dict[str, str]:
    token = make_token(db, clock=clock, workspace=ws, scopes=sorted(str(s) for s in ROLE_SCOPES[role]))
    db.commit()
    return bearer(token)


def test_resource_lifecycle_through_the_api(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given an operator token and an analyst token
    ws = make_workspace(db, clock=clock)
    operator = _headers(db, clock, ws, Role.OPERATOR)
    analyst = _headers(db, clock, ws, Role.ANALYST)
    # when the operator creates a file resource and uploads a disguised executable, then a PDF
    created = client.post("/api/v1/resources", headers=operator, json={"kind": "file", "title": "价目表"})
    rid = created.json()["id"]
    bad = client.put(
        f"/api/v1/resources/{rid}/file", headers=operator, files={"file": ("a.pdf", f.EXE, "application/pdf")}
    )
    empty = client.put(
        f"/api/v1/resources/{rid}/file", headers=operator, files={"file": ("a.pdf", b"", "application/pdf")}
    )
    good = client.put(
        f"/api/v1/resources/{rid}/file", headers=operator, files={"file": ("价目表.pdf", f.PDF, "text/html")}
    )
    published = client.post(f"/api/v1/resources/{rid}/publish", headers=operator)
    patched = client.patch(f"/api/v1/resources/{rid}", headers=operator, json={"is_pinned": True, "summary": "2026"})
    # then the bad uploads are 422 naming the file, the good one is stored as a PDF by its bytes
    assert created.status_code == 201 and created.json()["status"] == "draft"
    assert (bad.status_code, bad.json()["error"]["details"]) == (422, {"field": "file"})
    assert (empty.status_code, empty.json()["error"]["message"]) == (422, "the file is empty")
    assert good.status_code == 200
    assert {k: good.json()[k] for k in ("file_name", "file_type", "file_size")} == {
        "file_name": "价目表.pdf",
        "file_type": "application/pdf",
        "file_size": len(f.PDF),
    }
    assert published.json()["status"] == "published" and published.json()["published_at"] is not None
    assert (patched.json()["is_pinned"], patched.json()["summary"], patched.json()["title"]) == (True, "2026", "价目表")
    # and the analyst can list and download but not write; bad fields are named
    listing = client.get("/api/v1/resources?status=published", headers=analyst)
    assert [(r["id"], r["reads_count"], r["unique_readers"]) for r in listing.json()] == [(rid, 0, 0)]
    assert client.get(f"/api/v1/resources/{rid}/file", headers=analyst).content == f.PDF
    assert client.post(f"/api/v1/resources/{rid}/archive", headers=analyst).status_code == 403
    wrong = client.post(
        "/api/v1/resources", headers=operator, json={"kind": "guide", "title": "x", "visible_segment_id": 999}
    )
    assert (wrong.status_code, wrong.json()["error"]["details"]) == (422, {"field": "visible_segment_id"})
    assert db.scalar(select(func.count()).select_from(Resource).where(Resource.workspace_id == ws.id)) == 1
    assert client.get("/api/v1/resources/999999", headers=analyst).status_code == 404
