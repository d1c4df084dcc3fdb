"""The KOC JSON API: questionnaires, candidates and decisions."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from siyu.auth.permissions import ROLE_SCOPES, Role
from siyu.community.koc.service import apply, approved_koc
from siyu.kit.clock import FrozenClock
from siyu.models import Workspace
from tests.api import conftest as api_fixtures
from tests.api.conftest import bearer
from tests.community.koc.factories import APPLICATION_FIELDS, VALID_ANSWERS, make_questionnaire
from tests.factories import actor_for, make_customer, make_token, make_workspace

app = api_fixtures.app
client = api_fixtures.client


def _headers(db: Session, clock: FrozenClock, ws: Workspace, role: Role = Role.ADMIN) -> dict[str, str]:
    token = make_token(db, clock=clock, workspace=ws, scopes=sorted(str(s) for s in ROLE_SCOPES[role]))
    db.commit()
    return bearer(token)


def test_build_open_and_lock_a_questionnaire(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given an admin token
    ws = make_workspace(db, clock=clock)
    headers = _headers(db, clock, ws)
    # when a questionnaire is created with a bad field, then 422 names it
    bad = {"slug": "apply", "title": "招募", "fields": [{"key": "x", "label": "X", "type": "single"}]}
    response = client.post("/api/v1/questionnaires", json=bad, headers=headers)
    assert response.status_code == 422
    assert response.json()["error"]["details"] == {"field": "fields[0].choices"}
    # when created properly and opened
    body = {"slug": "apply", "title": "招募", "fields": APPLICATION_FIELDS}
    created = client.post("/api/v1/questionnaires", json=body, headers=headers)
    assert created.status_code == 201, created.text
    qid = created.json()["id"]
    opened = client.post(f"/api/v1/questionnaires/{qid}/status", json={"status": "open"}, headers=headers)
    assert (opened.status_code, opened.json()["status"], opened.json()["responses"]) == (200, "open", 0)
    # and a member answers
    customer = make_customer(db, actor=actor_for(ws), clock=clock).customer
    from siyu.community.koc.questionnaires import get_questionnaire

    apply(
        db,
        questionnaire=get_questionnaire(db, workspace_id=ws.id, questionnaire_id=qid),
        customer_id=customer.id,
        raw=VALID_ANSWERS,
        clock=clock,
    )
    db.commit()
    # then changing an answered field's type is refused with 409
    changed = {**body, "fields": [{**APPLICATION_FIELDS[0], "type": "textarea"}, *APPLICATION_FIELDS[1:]]}
    locked = client.put(f"/api/v1/questionnaires/{qid}", json=changed, headers=headers)
    assert locked.status_code == 409
    assert locked.json()["error"]["details"] == {"field": "nickname"}
    # and the answers are listed with labels
    answers = client.get(f"/api/v1/questionnaires/{qid}/responses", headers=headers).json()
    assert [(a["label"], a["text"]) for a in answers[0]["answers"]] == [
        ("昵称", "小雨"),
        ("自我介绍", "爱分享"),
        ("粉丝数", "1200"),
        ("手机号", "+8613800138000"),
        ("主要平台", "小红书"),
        ("擅长内容", "穿搭、护肤"),
    ]


def test_candidates_and_decision(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given an applicant
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    customer = make_customer(db, actor=actor, clock=clock, name="周周").customer
    apply(
        db,
        questionnaire=make_questionnaire(db, actor=actor, clock=clock),
        customer_id=customer.id,
        raw=VALID_ANSWERS,
        clock=clock,
    )
    admin = _headers(db, clock, ws)
    analyst = _headers(db, clock, ws, Role.ANALYST)
    # when listed, then the applicant is there with their answers
    listed = client.get("/api/v1/koc/candidates?status=applied&min_score=0", headers=admin).json()
    assert [(c["customer_id"], c["name"], c["status"], c["score"]) for c in listed] == [
        (customer.id, "周周", "applied", 0)
    ]
    assert listed[0]["answers"][0] == {"key": "nickname", "label": "昵称", "text": "小雨"}
    # when an analyst decides, then 403; the admin approves
    approve = {"decision": "approve", "note": "好"}
    denied = client.post(f"/api/v1/koc/{customer.id}/decision", json=approve, headers=analyst)
    assert denied.status_code == 403
    done = client.post(f"/api/v1/koc/{customer.id}/decision", json=approve, headers=admin)
    assert (done.status_code, done.json()["status"], done.json()["decision_note"]) == (200, "approved", "好")
    db.expire_all()
    assert approved_koc(db, workspace_id=ws.id, customer_id=customer.id) is not None
    # and the detail has an (empty) history; a reject now conflicts
    detail = client.get(f"/api/v1/koc/{customer.id}", headers=admin).json()
    assert (detail["status"], detail["history"]) == ("approved", [])
    again = client.post(f"/api/v1/koc/{customer.id}/decision", json={"decision": "reject", "note": "x"}, headers=admin)
    assert again.status_code == 409
    missing = client.get("/api/v1/koc/99999999", headers=admin)
    assert missing.status_code == 404
