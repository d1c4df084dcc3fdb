"""The questionnaire builder, answer validation and one response per member."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Role
from siyu.community.koc import questionnaires as qs
from siyu.community.koc.errors import InvalidAnswers, InvalidQuestionnaire, QuestionnaireLocked, QuestionnaireNotOpen
from siyu.community.koc.schemas import FieldIn, QuestionnaireIn
from siyu.community.koc.service import apply, approved_koc, profile_of, profile_panel
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import PermissionDenied
from siyu.models.koc import KocStatus, QuestionnaireResponse
from tests.community.koc.factories import APPLICATION_FIELDS, VALID_ANSWERS, make_questionnaire
from tests.factories import actor_for, make_customer, make_workspace


def _data(fields: list[dict[str, Any]], **head: Any) -> QuestionnaireIn:
    return QuestionnaireIn(**{"slug": "apply", "title": "KOC 招募", **head}, fields=[FieldIn(**f) for f in fields])


@pytest.mark.parametrize(
    ("fields", "head", "field"),
    [
        ([{"key": "Bad Key", "label": "x", "type": "text"}], {}, "fields[0].key"),
        ([{"key": "a", "label": "x", "type": "text"}, {"key": "a", "label": "y", "type": "text"}], {}, "fields[1].key"),
        ([{"key": "a", "label": " ", "type": "text"}], {}, "fields[0].label"),
        ([{"key": "a", "label": "x", "type": "date"}], {}, "fields[0].type"),
        ([{"key": "a", "label": "x", "type": "single"}], {}, "fields[0].choices"),
        ([{"key": "a", "label": "x", "type": "multi", "choices": ["甲", "甲"]}], {}, "fields[0].choices"),
        ([{"key": "a", "label": "x", "type": "text", "max_length": 0}], {}, "fields[0].max_length"),
        ([{"key": "a", "label": "x", "type": "number", "min": 5, "max": 1}], {}, "fields[0].min"),
        ([], {"slug": "Not a slug!"}, "slug"),
        ([], {"title": ""}, "title"),
        ([], {"purpose": "quiz"}, "purpose"),
    ],
)
def test_the_builder_refuses_bad_fields_naming_them(
    db: Session, clock: FrozenClock, fields: list[dict[str, Any]], head: dict[str, Any], field: str
) -> None:
    # given a workspace admin
    actor = actor_for(make_workspace(db, clock=clock))
    # when a questionnaire with a bad field is saved
    with pytest.raises(InvalidQuestionnaire) as caught:
        qs.create_questionnaire(db, actor=actor, data=_data(fields, **head), clock=clock)
    # then the error names the field and nothing was written
    assert caught.value.details == {"field": field}
    assert qs.list_questionnaires(db, workspace_id=actor.workspace_id) == []


def test_fields_are_stored_in_order_with_defaults(db: Session, clock: FrozenClock) -> None:
    # given an admin
    actor = actor_for(make_workspace(db, clock=clock))
    # when a questionnaire is built with a text field without max_length and a number field
    q = qs.create_questionnaire(
        db,
        actor=actor,
        data=_data(
            [
                {"key": "why", "label": "申请理由", "type": "textarea", "required": True},
                {"key": "age", "label": "年龄", "type": "number", "min": 18},
            ]
        ),
        clock=clock,
    )
    # then the fields keep their order, defaults are filled in and it starts as a draft
    assert q.fields == [
        {"key": "why", "label": "申请理由", "type": "textarea", "required": True, "max_length": 2000},
        {"key": "age", "label": "年龄", "type": "number", "required": False, "min": 18, "max": None},
    ]
    assert q.status == "draft"


def test_a_viewer_cannot_build_questionnaires(db: Session, clock: FrozenClock) -> None:
    # given a read-only analyst
    actor = actor_for(make_workspace(db, clock=clock), role=Role.ANALYST)
    # when they try to create one, then it is refused and nothing is written
    with pytest.raises(PermissionDenied):
        qs.create_questionnaire(db, actor=actor, data=_data([]), clock=clock)
    assert qs.list_questionnaires(db, workspace_id=actor.workspace_id) == []


def test_an_empty_form_cannot_open(db: Session, clock: FrozenClock) -> None:
    actor = actor_for(make_workspace(db, clock=clock))
    q = make_questionnaire(db, actor=actor, clock=clock, fields=[], is_open=False)
    with pytest.raises(InvalidQuestionnaire) as caught:
        qs.set_status(db, actor=actor, questionnaire_id=q.id, status="open", clock=clock)
    assert caught.value.details == {"field": "fields"}
    assert q.status == "draft"


def test_keys_and_types_are_locked_once_answers_exist(db: Session, clock: FrozenClock) -> None:
    # given an open form that a member answered
    actor = actor_for(make_workspace(db, clock=clock))
    q = make_questionnaire(db, actor=actor, clock=clock)
    member = make_customer(db, actor=actor, clock=clock).customer
    apply(db, questionnaire=q, customer_id=member.id, raw=VALID_ANSWERS, clock=clock)
    fields = [dict(f) for f in APPLICATION_FIELDS]
    # when the type of an answered field changes, then 409 naming it
    changed = [dict(f, type="textarea") if f["key"] == "nickname" else f for f in fields]
    with pytest.raises(QuestionnaireLocked) as caught:
        qs.update_questionnaire(db, actor=actor, questionnaire_id=q.id, data=_data(changed, slug=q.slug), clock=clock)
    assert caught.value.details == {"field": "nickname"}
    # when an answered field is removed, then 409 too
    with pytest.raises(QuestionnaireLocked):
        qs.update_questionnaire(
            db, actor=actor, questionnaire_id=q.id, data=_data(fields[1:], slug=q.slug), clock=clock
        )
    # when the fields are reordered and one is added, then it is accepted
    reordered = [*reversed(fields), {"key": "city", "label": "城市", "type": "text"}]
    qs.update_questionnaire(db, actor=actor, questionnaire_id=q.id, data=_data(reordered, slug=q.slug), clock=clock)
    assert [f["key"] for f in q.fields] == ["topics", "platform", "phone", "followers", "about", "nickname", "city"]


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        ({"nickname": ""}, {"nickname": "此项必填"}),
        ({"nickname": "一二三四五六七八九十十"}, {"nickname": "最多 10 个字"}),
        ({"about": "x" * 51}, {"about": "最多 50 个字"}),
        ({"followers": "12.5"}, {"followers": "请输入整数"}),
        ({"followers": "abc"}, {"followers": "请输入整数"}),
        ({"followers": "-1"}, {"followers": "不能小于 0"}),
        ({"followers": "1000001"}, {"followers": "不能大于 1000000"}),
        ({"phone": "12345"}, {"phone": "手机号格式不正确"}),
        ({"phone": "+86 138 0013 800"}, {"phone": "手机号格式不正确"}),
        ({"platform": "快手"}, {"platform": "请选择列表中的选项"}),
        ({"platform": ""}, {"platform": "此项必填"}),
        ({"topics": ["穿搭", "旅行"]}, {"topics": "请选择列表中的选项"}),
        ({"nickname": "", "phone": ""}, {"nickname": "此项必填", "phone": "此项必填"}),
    ],
)
def test_answers_are_validated_per_field(change: dict[str, Any], errors: dict[str, str]) -> None:
    # given valid answers with one or two changed, when validated, then each failing field has its message
    with pytest.raises(InvalidAnswers) as caught:
        qs.validate_answers(APPLICATION_FIELDS, {**VALID_ANSWERS, **change})
    assert caught.value.details == {"fields": errors}


def test_valid_answers_are_cleaned() -> None:
    # given answers with spaces, a local phone and a repeated choice; optional ones left out
    raw = {**VALID_ANSWERS, "nickname": " 小雨 ", "phone": "138 0013 8000", "topics": ["护肤", "护肤"], "about": ""}
    raw["extra"] = "ignored"
    # when validated, then they are trimmed, normalised and unknown keys dropped
    assert qs.validate_answers(APPLICATION_FIELDS, raw) == {
        "nickname": "小雨",
        "followers": 1200,
        "phone": "+8613800138000",
        "platform": "小红书",
        "topics": ["护肤"],
    }


def test_a_member_answers_once_and_applies(db: Session, clock: FrozenClock) -> None:
    # given an open KOC application form and a member
    actor = actor_for(make_workspace(db, clock=clock))
    q = make_questionnaire(db, actor=actor, clock=clock)
    member = make_customer(db, actor=actor, clock=clock).customer
    # when the member submits twice (the second time with other answers)
    first, created = apply(db, questionnaire=q, customer_id=member.id, raw=VALID_ANSWERS, clock=clock)
    again, created_again = apply(
        db, questionnaire=q, customer_id=member.id, raw={**VALID_ANSWERS, "nickname": "别的"}, clock=clock
    )
    # then one response with the first answers, and the member has applied
    assert (created, created_again, again.id) == (True, False, first.id)
    assert first.answers["nickname"] == "小雨"
    count = db.scalar(
        select(func.count(QuestionnaireResponse.id)).where(QuestionnaireResponse.questionnaire_id == q.id)
    )
    assert count == 1
    profile = profile_of(db, workspace_id=actor.workspace_id, customer_id=member.id)
    assert profile is not None
    assert (profile.status, profile.response_id, profile.applied_at) == (KocStatus.APPLIED, first.id, clock.now())
    assert approved_koc(db, workspace_id=actor.workspace_id, customer_id=member.id) is None


def test_invalid_answers_write_nothing(db: Session, clock: FrozenClock) -> None:
    actor = actor_for(make_workspace(db, clock=clock))
    q = make_questionnaire(db, actor=actor, clock=clock)
    member = make_customer(db, actor=actor, clock=clock).customer
    with pytest.raises(InvalidAnswers):
        apply(db, questionnaire=q, customer_id=member.id, raw={**VALID_ANSWERS, "phone": "1"}, clock=clock)
    assert qs.find_response(db, questionnaire_id=q.id, customer_id=member.id) is None
    assert profile_of(db, workspace_id=actor.workspace_id, customer_id=member.id) is None


def test_a_closed_form_takes_no_answers_and_a_survey_does_not_apply(db: Session, clock: FrozenClock) -> None:
    # given a closed application form and an open survey
    actor = actor_for(make_workspace(db, clock=clock))
    closed = make_questionnaire(db, actor=actor, clock=clock)
    qs.set_status(db, actor=actor, questionnaire_id=closed.id, status="closed", clock=clock)
    survey = make_questionnaire(db, actor=actor, clock=clock, purpose="survey")
    member = make_customer(db, actor=actor, clock=clock).customer
    # when the member answers both, then the closed one refuses and the survey makes no KOC profile
    with pytest.raises(QuestionnaireNotOpen):
        apply(db, questionnaire=closed, customer_id=member.id, raw=VALID_ANSWERS, clock=clock)
    apply(db, questionnaire=survey, customer_id=member.id, raw=VALID_ANSWERS, clock=clock)
    assert profile_of(db, workspace_id=actor.workspace_id, customer_id=member.id) is None
    assert [q.id for q, _ in qs.responses_of(db, workspace_id=actor.workspace_id, customer_id=member.id)] == [survey.id]


def test_the_profile_panel_shows_answers_with_the_phone_masked_for_staff(db: Session, clock: FrozenClock) -> None:
    # given a member who applied
    ws = make_workspace(db, clock=clock)
    admin = actor_for(ws)
    q = make_questionnaire(db, actor=admin, clock=clock)
    member = make_customer(db, actor=admin, clock=clock).customer
    apply(db, questionnaire=q, customer_id=member.id, raw=VALID_ANSWERS, clock=clock)
    # when an admin and an analyst (no PII scope) read the profile panel
    whole = profile_panel(db, actor=admin, customer=member)
    masked = profile_panel(db, actor=actor_for(ws, role=Role.ANALYST), customer=member)
    # then both see the status and answers; only the admin sees the whole phone
    assert whole.profile is not None and whole.profile.status == KocStatus.APPLIED
    (title, submitted_at, answers) = whole.responses[0]
    assert (title, submitted_at) == ("KOC 招募", clock.now())
    assert answers[3] == ("phone", "手机号", "+8613800138000")
    assert masked.responses[0][2][3] == ("phone", "手机号", "138****8000")
