"""The member's application form at /m/koc and /m/forms/{slug}."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.community.koc.service import profile_of
from siyu.kit.clock import FrozenClock
from siyu.models.koc import KocStatus, QuestionnaireResponse
from tests.community.koc.factories import make_questionnaire
from tests.factories import actor_for, make_customer, make_workspace
from tests.loyalty.h5.conftest import client, csrf_of, sign_in

__all__ = ["client"]

GOOD = {
    "nickname": "<b>小雨</b>",
    "about": "第一行\n第二行",
    "followers": "1200",
    "phone": "13800138000",
    "platform": "抖音",
    "topics:0": "穿搭",
    "topics:2": "美食",
}


def test_the_member_applies_once_with_errors_next_to_fields(
    db: Session, clock: FrozenClock, client: TestClient
) -> None:
    # given an open application form and a signed-in member
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    q = make_questionnaire(db, actor=actor, clock=clock)
    member = make_customer(db, actor=actor, clock=clock).customer
    db.commit()
    sign_in(client, ws.id, member.id, clock)
    page = client.get("/m/koc")
    assert page.status_code == 200
    assert "KOC 招募" in page.text
    token = csrf_of(page.text)
    # when the form is sent with a bad phone, a missing platform and an unknown choice
    bad = client.post("/m/koc", data={**GOOD, "csrf_token": token, "phone": "123", "platform": "", "topics:1": "x"})
    # then 422 with the message next to each failing field and the typed values kept
    assert bad.status_code == 422
    assert 'data-testid="error-phone">手机号格式不正确<' in bad.text
    assert 'data-testid="error-platform">此项必填<' in bad.text
    assert 'data-testid="error-topics">请选择列表中的选项<' in bad.text
    assert 'data-testid="error-nickname"' not in bad.text
    assert 'value="&lt;b&gt;小雨&lt;/b&gt;"' in bad.text
    # when sent correctly, twice
    ok = client.post("/m/koc", data={**GOOD, "csrf_token": token})
    again = client.post("/m/koc", data={**GOOD, "csrf_token": token, "nickname": "别的"})
    # then "已提交" with the first answers (escaped), one response, the member applied
    assert (ok.status_code, again.status_code) == (200, 200)
    assert "已提交" in again.text and "申请审核中" in again.text
    assert "&lt;b&gt;小雨&lt;/b&gt;" in again.text and "<b>小雨" not in again.text and "别的" not in again.text
    assert "穿搭、美食" in again.text
    db.expire_all()
    count = db.scalar(
        select(func.count(QuestionnaireResponse.id)).where(QuestionnaireResponse.questionnaire_id == q.id)
    )
    assert count == 1
    profile = profile_of(db, workspace_id=ws.id, customer_id=member.id)
    assert profile is not None and profile.status == KocStatus.APPLIED
    # and a post without the CSRF token is refused
    assert client.post("/m/koc", data=GOOD).status_code == 403


def test_no_open_form_and_forms_by_slug(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given only a draft application and an open survey
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    make_questionnaire(db, actor=actor, clock=clock, is_open=False)
    make_questionnaire(
        db,
        actor=actor,
        clock=clock,
        purpose="survey",
        slug="feedback",
        fields=[{"key": "score", "label": "打分", "type": "number", "required": True, "min": 1, "max": 5}],
    )
    member = make_customer(db, actor=actor, clock=clock).customer
    db.commit()
    sign_in(client, ws.id, member.id, clock)
    # then /m/koc (linked from the home page: 200) says no form is open; the survey is answered by its slug
    closed = client.get("/m/koc")
    assert closed.status_code == 200 and "暂无开放的申请表" in closed.text
    survey = client.get("/m/forms/feedback")
    token = csrf_of(survey.text)
    out_of_range = client.post("/m/forms/feedback", data={"csrf_token": token, "score": "9"})
    assert out_of_range.status_code == 422 and "不能大于 5" in out_of_range.text
    done = client.post("/m/forms/feedback", data={"csrf_token": token, "score": "4"})
    assert done.status_code == 200 and "已提交" in done.text
    assert client.get("/m/forms/nope").status_code == 404
