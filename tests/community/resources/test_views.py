"""The console library: create with an upload (bad files refused naming the field, nothing
written), edit, publish/archive, counts in the list, and read-only roles kept out."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.community.resources.files import DOCX, MAX_FILE_BYTES
from siyu.community.resources.service import record_view
from siyu.kit.clock import FrozenClock
from siyu.models import Role, User, Workspace
from siyu.models.resource import Resource, ResourceStatus
from tests.community.resources import factories as f
from tests.factories import actor_for, make_customer
from tests.web.conftest import app, client, csrf_of, login, user_with_role, workspace

__all__ = ["app", "client", "user_with_role", "workspace"]

FORM = {
    "kind": "file",
    "title": "秋冬价目表",
    "summary": "",
    "visible_tier_ids": "",
    "visible_segment_id": "",
    "body": "见附件",
}


def _count(db: Session, ws: Workspace) -> int:
    return int(db.scalar(select(func.count()).select_from(Resource).where(Resource.workspace_id == ws.id)) or 0)


def test_bad_uploads_are_refused_naming_the_file_and_write_nothing(
    db: Session, client: TestClient, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    # given a signed-in operator
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    uploads = {
        "wrong magic": ("价目表.pdf", b"MZ\x90\x00 not a pdf"),
        "empty": ("价目表.pdf", b""),
        "oversized": ("价目表.pdf", b"%PDF-" + b"0" * MAX_FILE_BYTES),
    }
    for label, (name, data) in uploads.items():
        # when the form is posted with a bad file
        response = client.post(
            "/community/resources", data=FORM | {"csrf_token": csrf}, files={"file": (name, data, "application/pdf")}
        )
        # then 422, the error sits under the file input, the typed title is kept, and nothing is saved
        assert response.status_code == 422, label
        assert 'data-error="file"' in response.text, label
        assert 'value="秋冬价目表"' in response.text, label
    assert _count(db, workspace) == 0


def test_create_upload_edit_publish_archive(
    db: Session, clock: FrozenClock, client: TestClient, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    # given a signed-in operator
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    # when a file resource is created with a DOCX upload
    created = client.post(
        "/community/resources",
        data=FORM | {"csrf_token": csrf, "is_pinned": "on"},
        files={"file": ("C:\\资料\\手册.docx", f.office("word"), "application/octet-stream")},
    )
    assert created.status_code == 303, created.text
    db.expire_all()
    resource = db.scalars(select(Resource).where(Resource.workspace_id == workspace.id)).one()
    # then it is a pinned draft holding the file with its sniffed type and clean name
    assert (resource.status, resource.is_pinned, resource.file_name, resource.file_type) == (
        ResourceStatus.DRAFT, True, "手册.docx", DOCX,
    )  # fmt: skip
    # when a file resource without its file is published: the list says why, it stays a draft
    client.post("/community/resources", data=FORM | {"title": "空文件", "csrf_token": csrf})
    empty = db.scalars(select(Resource).where(Resource.title == "空文件")).one()
    early = client.post(f"/community/resources/{empty.id}/publish", data={"csrf_token": csrf})
    assert "upload the file before publishing" in client.get(early.headers["location"]).text
    db.expire_all()
    assert (db.get(Resource, empty.id) or empty).status == ResourceStatus.DRAFT
    # when edited with an unknown tier: refused naming the field
    edit = {
        "title": "秋冬价目表 v2",
        "summary": "新版",
        "visible_tier_ids": "999",
        "visible_segment_id": "",
        "body": "x",
    }
    refused = client.post(f"/community/resources/{resource.id}/edit", data=edit | {"csrf_token": csrf})
    assert refused.status_code == 422 and 'data-error="visible_tier_ids"' in refused.text
    # when edited properly, published, then archived
    saved = client.post(
        f"/community/resources/{resource.id}/edit", data=edit | {"visible_tier_ids": "", "csrf_token": csrf}
    )
    published = client.post(f"/community/resources/{resource.id}/publish", data={"csrf_token": csrf})
    db.expire_all()
    assert (db.get(Resource, resource.id) or resource).status == ResourceStatus.PUBLISHED
    archived = client.post(f"/community/resources/{resource.id}/archive", data={"csrf_token": csrf})
    # then each step landed
    assert [saved.status_code, published.status_code, archived.status_code] == [303, 303, 303]
    db.expire_all()
    row = db.get(Resource, resource.id)
    assert row is not None
    assert (row.title, row.summary, row.is_pinned, row.status) == (
        "秋冬价目表 v2",
        "新版",
        False,
        ResourceStatus.ARCHIVED,
    )
    # and the operator can fetch the stored file
    stored = client.get(f"/community/resources/{resource.id}/file")
    assert (stored.status_code, stored.content) == (200, f.office("word"))


def test_list_shows_counts_and_read_only_roles_cannot_write(
    db: Session, clock: FrozenClock, client: TestClient, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    # given a guide read by two members (one twice) and downloaded by one
    guide = f.make_resource(db, workspace=workspace, clock=clock, title="入门必读")
    a = make_customer(db, actor=actor_for(workspace), clock=clock).customer
    b = make_customer(db, actor=actor_for(workspace), clock=clock).customer
    for customer_id, action in ((a.id, "read"), (a.id, "read"), (b.id, "read"), (a.id, "download")):
        record_view(db, resource=guide, customer_id=customer_id, action=action, clock=clock)
    db.commit()
    # when an analyst opens the list
    login(client, user_with_role(Role.ANALYST).email)
    page = client.get("/community/resources")
    # then the counts show, and there is no create button for them
    assert page.status_code == 200
    row = page.text.split(f'data-resource="{guide.id}"')[1].split("</tr>")[0]
    assert '"text-end reads">2<' in row and '"text-end downloads">1<' in row and '"text-end readers">2<' in row
    assert 'id="new-resource"' not in page.text
    # and posting the create form anyway is refused, nothing saved
    refused = client.post("/community/resources", data=FORM | {"kind": "guide", "csrf_token": csrf_of(page.text)})
    assert refused.status_code == 403
    assert _count(db, workspace) == 1
