"""Console pages of the KOC program: candidates, KOC detail with decisions, and the questionnaire builder."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select
from starlette.datastructures import FormData
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.community.koc import questionnaires as qs
from siyu.community.koc import scoring
from siyu.community.koc import service as koc
from siyu.community.koc.schemas import Decision, DecisionIn, FieldIn, QuestionnaireIn
from siyu.customers.masking import sees_pii
from siyu.kit.errors import DomainError, InvalidInput
from siyu.models import Tag, Tier
from siyu.models.commission import CommissionRule
from siyu.models.group import CommunityGroup, GroupMember
from siyu.models.koc import KocStatus, Questionnaire
from siyu.web.deps import ConsoleCtx, Ctx, FormDep, IdPath
from siyu.web.pages import error_text, redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)


def _(message: str) -> str:
    return message


STATUSES = (
    ("candidate", _("候选")),
    ("applied", _("已申请")),
    ("approved", _("已通过")),
    ("rejected", _("已拒绝")),
    ("revoked", _("已撤销")),
)
FIELD_TYPES = (
    ("text", _("单行文本")),
    ("textarea", _("多行文本")),
    ("number", _("数字")),
    ("phone", _("手机号")),
    ("single", _("单选")),
    ("multi", _("多选")),
)
PURPOSES = (("koc_application", _("KOC 申请")), ("survey", _("问卷调查")))
BLANK_ROWS = 3


def _int_or_none(text: str | None) -> int | None:
    text = (text or "").strip()
    return int(text) if text.lstrip("-").isdigit() and len(text) <= 18 else None


# --- questionnaires --------------------------------------------------------------------------------------


def builder_rows(form: FormData) -> list[dict[str, Any]]:
    """The builder's field rows from the posted form, in the order given by each row's position number;
    rows without key and label are dropped (that is how a field is removed)."""
    rows: list[tuple[int, int, dict[str, Any]]] = []
    count = min(_int_or_none(str(form.get("rows", "0"))) or 0, qs.MAX_FIELDS + BLANK_ROWS)
    for i in range(count):

        def get(name: str, i: int = i) -> str:
            return str(form.get(f"f{i}_{name}", "")).strip()

        if not get("key") and not get("label"):
            continue
        row = {
            "key": get("key"),
            "label": get("label"),
            "type": get("type"),
            "required": bool(form.get(f"f{i}_required")),
            "choices": [c.strip() for c in get("choices").splitlines() if c.strip()],
            "max_length": _int_or_none(get("max_length")),
            "min": _int_or_none(get("min")),
            "max": _int_or_none(get("max")),
        }
        rows.append((_int_or_none(get("position")) or i + 1, i, row))
    return [row for _, _, row in sorted(rows, key=lambda r: (r[0], r[1]))]


def _builder(
    request: Request,
    ctx: Ctx,
    *,
    q: Questionnaire | None,
    head: dict[str, str],
    fields: list[dict[str, Any]],
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    responses = qs.visible_responses(ctx.session, actor=ctx.actor, questionnaire_id=q.id) if q else []
    whole = sees_pii(ctx.actor)
    context = {
        "q": q,
        "head": head,
        "fields": fields,
        "blank_rows": BLANK_ROWS,
        "field_types": FIELD_TYPES,
        "purposes": PURPOSES,
        "error": error,
        "responses": [(r, qs.shown_answers(q, dict(r.answers), whole_phone=whole)) for r in responses],
        "locked": bool(responses) or (q is not None and qs.response_count(ctx.session, q.id) > 0),
    }
    return render(request, "koc/questionnaire.html", context, status_code=status_code)


def _head(form: FormData) -> dict[str, str]:
    return {name: str(form.get(name, "")).strip() for name in ("slug", "title", "intro", "purpose")}


def _input(head: dict[str, str], fields: list[dict[str, Any]]) -> QuestionnaireIn:
    return QuestionnaireIn(**head, fields=[FieldIn(**f) for f in fields])


@router.get("/growth/koc/questionnaires")
def questionnaires_page(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.GROWTH_READ)
    rows = qs.list_questionnaires(ctx.session, workspace_id=ctx.actor.workspace_id)
    counts = {q.id: qs.response_count(ctx.session, q.id) for q in rows}
    return render(request, "koc/questionnaires.html", {"rows": rows, "counts": counts, "purposes": dict(PURPOSES)})


@router.get("/growth/koc/questionnaires/new")
def new_questionnaire_page(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.GROWTH_WRITE)
    return _builder(request, ctx, q=None, head={"purpose": "koc_application"}, fields=[])


@router.post("/growth/koc/questionnaires")
def create_questionnaire(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    ctx.actor.require(Scope.GROWTH_WRITE)
    head, fields = _head(form), builder_rows(form)
    try:
        q = qs.create_questionnaire(ctx.session, actor=ctx.actor, data=_input(head, fields), clock=ctx.clock)
    except DomainError as exc:
        ctx.session.rollback()
        return _builder(request, ctx, q=None, head=head, fields=fields, error=_error(request, exc), status_code=422)
    flash(request, translator(request)("问卷已保存"))
    return redirect(f"/growth/koc/questionnaires/{q.id}")


def _error(request: Request, exc: DomainError) -> str:
    field = (exc.details or {}).get("field") if isinstance(exc.details, dict) else None
    return error_text(request, exc) + (f" ({field})" if field else "")


@router.get("/growth/koc/questionnaires/{questionnaire_id}")
def questionnaire_page(request: Request, ctx: ConsoleCtx, questionnaire_id: IdPath) -> Response:
    ctx.actor.require(Scope.GROWTH_READ)
    q = qs.get_questionnaire(ctx.session, workspace_id=ctx.actor.workspace_id, questionnaire_id=questionnaire_id)
    head = {"slug": q.slug, "title": q.title, "intro": q.intro, "purpose": q.purpose}
    return _builder(request, ctx, q=q, head=head, fields=list(q.fields))


@router.post("/growth/koc/questionnaires/{questionnaire_id}")
def update_questionnaire(request: Request, ctx: ConsoleCtx, questionnaire_id: IdPath, form: FormDep) -> Response:
    ctx.actor.require(Scope.GROWTH_WRITE)
    head, fields = _head(form), builder_rows(form)
    try:
        qs.update_questionnaire(
            ctx.session, actor=ctx.actor, questionnaire_id=questionnaire_id, data=_input(head, fields), clock=ctx.clock
        )
    except DomainError as exc:
        if exc.status_code == 404:
            raise
        ctx.session.rollback()
        q = qs.get_questionnaire(ctx.session, workspace_id=ctx.actor.workspace_id, questionnaire_id=questionnaire_id)
        status = exc.status_code if exc.status_code in (409, 422) else 422
        return _builder(request, ctx, q=q, head=head, fields=fields, error=_error(request, exc), status_code=status)
    flash(request, translator(request)("问卷已保存"))
    return redirect(f"/growth/koc/questionnaires/{questionnaire_id}")


@router.post("/growth/koc/questionnaires/{questionnaire_id}/status")
def questionnaire_status(request: Request, ctx: ConsoleCtx, questionnaire_id: IdPath, form: FormDep) -> Response:
    ctx.actor.require(Scope.GROWTH_WRITE)
    _t = translator(request)
    try:
        qs.set_status(
            ctx.session,
            actor=ctx.actor,
            questionnaire_id=questionnaire_id,
            status=str(form.get("status", "")),
            clock=ctx.clock,
        )
    except DomainError as exc:
        if exc.status_code == 404:
            raise
        ctx.session.rollback()
        flash(request, _error(request, exc), kind="danger")
    else:
        flash(request, _t("状态已更新"))
    return redirect(f"/growth/koc/questionnaires/{questionnaire_id}")


# --- candidates and decisions --------------------------------------------------------------------------


@router.get("/growth/koc")
def candidates_page(request: Request, ctx: ConsoleCtx, status: str = "", min_score: str = "") -> Response:
    ctx.actor.require(Scope.GROWTH_READ)
    statuses = [status] if status in {s for s, _ in STATUSES} else None
    floor = _int_or_none(min_score)
    rows = koc.candidates(ctx.session, actor=ctx.actor, statuses=statuses, min_score=floor)
    whole = sees_pii(ctx.actor)
    context = {
        "rows": [
            (c, qs.shown_answers(c.questionnaire, dict(c.response.answers), whole_phone=whole) if c.response else [])
            for c in rows
        ],
        "statuses": STATUSES,
        "status_names": dict(STATUSES),
        "status": status if statuses else "",
        "min_score": "" if floor is None else str(floor),
    }
    return render(request, "koc/candidates.html", context)


def _detail(
    request: Request, ctx: Ctx, customer_id: int, *, error: str | None = None, status_code: int = 200
) -> Response:
    c = koc.get_candidate(ctx.session, actor=ctx.actor, customer_id=customer_id)
    ws = ctx.actor.workspace_id
    days = scoring.history(ctx.session, workspace_id=ws, profile_id=c.profile.id)
    groups = ctx.session.execute(
        select(CommunityGroup.id, CommunityGroup.name, GroupMember.role)
        .join(GroupMember, GroupMember.group_id == CommunityGroup.id)
        .where(GroupMember.workspace_id == ws, GroupMember.customer_id == c.customer.id, GroupMember.left_at.is_(None))
        .order_by(CommunityGroup.name)
    ).all()
    context = {
        "c": c,
        "answers": qs.shown_answers(c.questionnaire, dict(c.response.answers), whole_phone=sees_pii(ctx.actor))
        if c.response
        else [],
        "status_names": dict(STATUSES),
        "chart": {
            "days": [d.day.isoformat() for d in days],
            "score": [d.score for d in days],
            "referrals": [d.referrals for d in days],
            "featured": [d.featured_posts for d in days],
            "gmv": [round(d.referred_gmv_fen / 100, 2) for d in days],
            "commission": [round(d.commission_fen / 100, 2) for d in days],
        },
        "days": days,
        "tags": ctx.session.scalars(select(Tag).where(Tag.workspace_id == ws).order_by(Tag.name)).all(),
        "tiers": ctx.session.scalars(
            select(Tier).where(Tier.workspace_id == ws, Tier.is_paid.is_(False)).order_by(Tier.rank)
        ).all(),
        "groups": groups,
        "rules": ctx.session.scalars(
            select(CommissionRule).where(CommissionRule.workspace_id == ws, CommissionRule.is_active.is_(True))
        ).all(),
        "error": error,
        "can_approve": c.profile.status in koc.ALLOWED_FROM[Decision.APPROVE],
        "can_reject": c.profile.status in koc.ALLOWED_FROM[Decision.REJECT],
        "can_revoke": c.profile.status == KocStatus.APPROVED,
    }
    return render(request, "koc/detail.html", context, status_code=status_code)


@router.get("/growth/koc/{customer_id}")
def koc_page(request: Request, ctx: ConsoleCtx, customer_id: IdPath) -> Response:
    ctx.actor.require(Scope.GROWTH_READ)
    return _detail(request, ctx, customer_id)


@router.post("/growth/koc/{customer_id}/decision")
def decide(request: Request, ctx: ConsoleCtx, customer_id: IdPath, form: FormDep) -> Response:
    ctx.actor.require(Scope.GROWTH_REVIEW)
    decision = str(form.get("decision", ""))
    try:
        if decision not in set(Decision):
            raise InvalidInput("unknown decision", details={"field": "decision"})
        data = DecisionIn(
            decision=Decision(decision),
            note=str(form.get("note", "")),
            tag_id=_int_or_none(str(form.get("tag_id", ""))),
            tier_id=_int_or_none(str(form.get("tier_id", ""))),
            group_ids=[g for g in (_int_or_none(str(v)) for v in form.getlist("group_ids")) if g],
            commission_rule_id=_int_or_none(str(form.get("commission_rule_id", ""))),
        )
        koc.decide(ctx.session, actor=ctx.actor, customer_id=customer_id, data=data, clock=ctx.clock)
    except DomainError as exc:
        if exc.status_code in (403, 404):
            raise
        ctx.session.rollback()
        return _detail(request, ctx, customer_id, error=_error(request, exc), status_code=exc.status_code)
    flash(request, translator(request)("审核结果已保存"))
    return redirect(f"/growth/koc/{customer_id}")
