"""Member H5 pages of the KOC program: the application form (`/m/koc`) and any open form (`/m/forms/{slug}`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from siyu.community.koc import questionnaires as qs
from siyu.community.koc.errors import InvalidAnswers, QuestionnaireNotOpen
from siyu.community.koc.service import apply, profile_of
from siyu.loyalty.h5.views.common import (
    FormDep,
    MemberDep,
    MemberRoute,
    clock_of,
    member_transaction,
    render_member,
    translator,
)
from siyu.models.koc import Questionnaire

router = APIRouter(route_class=MemberRoute)


def raw_answers(form: dict[str, str], fields: list[dict[str, Any]]) -> dict[str, Any]:
    """Answers from the posted form; a multi field's checkboxes are named `{key}:{index}`."""
    raw: dict[str, Any] = {}
    for field in fields:
        key = field["key"]
        if field["type"] == "multi":
            raw[key] = [value for name, value in form.items() if name.startswith(f"{key}:")]
        else:
            raw[key] = form.get(key, "")
    return raw


def _page(
    request: Request,
    member: MemberDep,
    questionnaire: Questionnaire | None,
    *,
    action: str,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    just_sent: bool = False,
    status_code: int = 200,
) -> Response:
    with member_transaction(request, member, read_only=True) as session:
        response = profile = None
        if questionnaire is not None:
            session.add(questionnaire)
            response = qs.find_response(session, questionnaire_id=questionnaire.id, customer_id=member.customer_id)
        if (questionnaire is None and action == "/m/koc") or (
            questionnaire is not None and questionnaire.purpose == "koc_application"
        ):
            profile = profile_of(session, workspace_id=member.workspace_id, customer_id=member.customer_id)
        answers = (
            qs.shown_answers(questionnaire, dict(response.answers), whole_phone=True)
            if response is not None and questionnaire is not None
            else []
        )
        return render_member(
            request,
            session,
            member,
            "member/koc.html",
            {
                "questionnaire": questionnaire,
                "response": response,
                "answers": answers,
                "profile": profile,
                "values": values or {},
                "errors": errors or {},
                "just_sent": just_sent,
                "action": action,
            },
            tab="home",
            status_code=status_code,
        )


def _koc_form(request: Request, member: MemberDep) -> Questionnaire | None:
    with member_transaction(request, member, read_only=True) as session:
        q = qs.open_koc_application(session, workspace_id=member.workspace_id)
        if q is not None:
            session.expunge(q)
        return q


def _form_by_slug(request: Request, member: MemberDep, slug: str) -> Questionnaire | None:
    with member_transaction(request, member, read_only=True) as session:
        q = qs.open_by_slug(session, workspace_id=member.workspace_id, slug=slug)
        if q is not None:
            session.expunge(q)
        return q


def _submit(
    request: Request, member: MemberDep, form: dict[str, str], q: Questionnaire | None, action: str
) -> Response:
    if q is None:
        return _page(request, member, None, action=action, status_code=404)
    raw = raw_answers(form, list(q.fields))
    try:
        with member_transaction(request, member) as session:
            fresh = qs.get_questionnaire(session, workspace_id=member.workspace_id, questionnaire_id=q.id)
            apply(session, questionnaire=fresh, customer_id=member.customer_id, raw=raw, clock=clock_of(request))
    except InvalidAnswers as exc:
        _ = translator(request)
        errors = {key: _(template).format(**params) for key, (template, params) in exc.templates.items()}
        return _page(request, member, q, action=action, values=raw, errors=errors, status_code=422)
    except QuestionnaireNotOpen:
        return _page(request, member, None, action=action, status_code=409)
    return _page(request, member, q, action=action, just_sent=True)


@router.get("/koc")
def koc_form(request: Request, member: MemberDep) -> Response:
    """The open KOC application form, or what the member answered and where their application stands."""
    return _page(request, member, _koc_form(request, member), action="/m/koc")


@router.post("/koc")
def koc_submit(request: Request, member: MemberDep, form: FormDep) -> Response:
    """Submit the KOC application (once; a resubmission shows the first answers)."""
    return _submit(request, member, form, _koc_form(request, member), "/m/koc")


@router.get("/forms/{slug}")
def any_form(request: Request, member: MemberDep, slug: str) -> Response:
    """Any open questionnaire by its slug."""
    q = _form_by_slug(request, member, slug)
    return _page(request, member, q, action=f"/m/forms/{slug}", status_code=200 if q is not None else 404)


@router.post("/forms/{slug}")
def any_form_submit(request: Request, member: MemberDep, form: FormDep, slug: str) -> Response:
    """Submit an open questionnaire by its slug."""
    return _submit(request, member, form, _form_by_slug(request, member, slug), f"/m/forms/{slug}")
