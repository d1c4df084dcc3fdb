"""Console pages: the questionnaire builder, the candidate list and decisions."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Role
from siyu.community.koc import questionnaires as qs
from siyu.community.koc.service import apply, profile_of
from siyu.kit.clock import FrozenClock
from siyu.models import CustomerTag, User, Workspace
from siyu.models.koc import KocStatus
from tests.community.koc.factories import VALID_ANSWERS, make_questionnaire
from tests.factories import actor_for, make_customer, make_tag
from tests.web.conftest import app, client, login, user_with_role, workspace

__all__ = ["app", "client", "user_with_role", "workspace"]


def _row(
    i: int, position: int, key: str, label: str, type_: str, *, choices: str = "", required: bool = True
) -> dict[str, str]:
    row = {
        f"f{i}_position": str(position),
        f"f{i}_key": key,
        f"f{i}_label": label,
        f"f{i}_type": type_,
        f"f{i}_choices": choices,
    }
    if required:
        row[f"f{i}_required"] = "on"
    return row


def test_build_reorder_and_open_a_form(
    db: Session, workspace: Workspace, client: TestClient, user_with_role: Callable[..., User]
) -> None:
    # given a signed-in admin on the builder
    token = login(client, user_with_role().email)
    assert client.get("/growth/koc/questionnaires/new").status_code == 200
    head = {"csrf_token": token, "title": "KOC 招募", "slug": "koc", "purpose": "koc_application", "rows": "3"}
    # when a single-choice field has no choices, then 422 names it and nothing is saved
    bad = client.post("/growth/koc/questionnaires", data={**head, **_row(0, 1, "platform", "平台", "single")})
    assert bad.status_code == 422
    assert "fields[0].choices" in bad.text
    assert qs.list_questionnaires(db, workspace_id=workspace.id) == []
    # when saved with two fields, the second given position 1, and a blank row
    data = {
        **head,
        **_row(0, 2, "nickname", "昵称", "text"),
        **_row(1, 1, "platform", "平台", "single", choices="抖音\n小红书"),
    }
    saved = client.post("/growth/koc/questionnaires", data=data)
    assert saved.status_code == 303
    # then the fields are stored in the chosen order
    (q,) = qs.list_questionnaires(db, workspace_id=workspace.id)
    assert [(f["key"], f.get("choices")) for f in q.fields] == [("platform", ["抖音", "小红书"]), ("nickname", None)]
    # and it opens
    opened = client.post(f"/growth/koc/questionnaires/{q.id}/status", data={"csrf_token": token, "status": "open"})
    assert opened.status_code == 303
    db.expire_all()
    assert q.status == "open"
    page = client.get("/growth/koc/questionnaires")
    assert "/m/forms/koc" in page.text and "开放中" in page.text


def test_candidates_detail_and_approval(
    db: Session, workspace: Workspace, clock: FrozenClock, client: TestClient, user_with_role: Callable[..., User]
) -> None:
    # given an applicant whose nickname holds HTML, and a tag
    actor = actor_for(workspace)
    member = make_customer(db, actor=actor, clock=clock, name="陈晨").customer
    q = make_questionnaire(db, actor=actor, clock=clock)
    apply(db, questionnaire=q, customer_id=member.id, raw={**VALID_ANSWERS, "nickname": "<i>x</i>"}, clock=clock)
    tag = make_tag(db, workspace=workspace, name="品牌KOC")
    db.commit()
    analyst = user_with_role(Role.ANALYST)
    admin = user_with_role()
    # when an analyst views the list, then the applicant shows with escaped answers and a masked phone
    login(client, analyst.email)
    listing = client.get("/growth/koc?status=applied&min_score=0")
    assert listing.status_code == 200
    assert f'data-customer="{member.id}"' in listing.text
    assert "&lt;i&gt;x&lt;/i&gt;" in listing.text and "<i>x</i>" not in listing.text
    detail = client.get(f"/growth/koc/{member.id}")
    assert "138****8000" in detail.text and "approve-form" not in detail.text
    # and the analyst cannot decide
    denied = client.post(
        f"/growth/koc/{member.id}/decision", data={"decision": "approve", "csrf_token": _csrf(client, member.id)}
    )
    assert denied.status_code == 403
    # when the admin approves with the tag
    client.cookies.clear()
    login(client, admin.email)
    csrf = _csrf(client, member.id)
    done = client.post(
        f"/growth/koc/{member.id}/decision",
        data={"decision": "approve", "tag_id": str(tag.id), "note": "优质", "csrf_token": csrf},
    )
    # then approved and tagged
    assert done.status_code == 303
    db.expire_all()
    profile = profile_of(db, workspace_id=workspace.id, customer_id=member.id)
    assert profile is not None and (profile.status, profile.decision_note) == (KocStatus.APPROVED, "优质")
    assert db.scalar(select(CustomerTag.tag_id).where(CustomerTag.customer_id == member.id)) == tag.id
    # and a revoke without a note shows the error on the page
    again = client.post(f"/growth/koc/{member.id}/decision", data={"decision": "revoke", "csrf_token": csrf})
    assert again.status_code == 422 and 'id="decision-error"' in again.text


def _csrf(client: TestClient, customer_id: int) -> str:
    from tests.web.conftest import csrf_of

    return csrf_of(client.get(f"/growth/koc/{customer_id}").text)
