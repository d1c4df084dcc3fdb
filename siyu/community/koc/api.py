"""JSON API of the KOC program: questionnaires, the candidate list and decisions."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from siyu.auth.permissions import Scope
from siyu.community.koc import questionnaires as qs
from siyu.community.koc import scoring
from siyu.community.koc import service as koc
from siyu.community.koc.schemas import DecisionIn, QuestionnaireIn
from siyu.customers.masking import sees_pii
from siyu.models.koc import KocProfile, Questionnaire, QuestionnaireResponse
from siyu.web.deps import Ctx, IdPath, require

router = APIRouter(prefix="/api/v1", tags=["koc"])
Reader = Annotated[Ctx, Depends(require(Scope.GROWTH_READ))]
Writer = Annotated[Ctx, Depends(require(Scope.GROWTH_WRITE))]
Reviewer = Annotated[Ctx, Depends(require(Scope.GROWTH_REVIEW))]


class QuestionnaireRead(BaseModel):
    id: int
    slug: str
    title: str
    intro: str
    purpose: str
    status: str
    fields: list[dict[str, Any]]
    responses: int
    created_at: datetime
    updated_at: datetime


class StatusIn(BaseModel):
    status: str


class AnswerRead(BaseModel):
    key: str
    label: str
    text: str


class ResponseRead(BaseModel):
    id: int
    customer_id: int
    submitted_at: datetime
    answers: list[AnswerRead]


class ScoreDayRead(BaseModel):
    day: date
    score: int
    referrals: int
    featured_posts: int
    referred_gmv_fen: int
    commission_fen: int


class KocRead(BaseModel):
    customer_id: int
    name: str | None
    status: str
    score: int
    score_parts: dict[str, Any]
    applied_at: datetime | None
    decided_at: datetime | None
    decision_note: str | None
    commission_rule_id: int | None
    answers: list[AnswerRead]


class KocDetailRead(KocRead):
    history: list[ScoreDayRead]


def questionnaire_read(ctx: Ctx, q: Questionnaire) -> QuestionnaireRead:
    return QuestionnaireRead(
        id=q.id,
        slug=q.slug,
        title=q.title,
        intro=q.intro,
        purpose=q.purpose,
        status=str(q.status),
        fields=list(q.fields),
        responses=qs.response_count(ctx.session, q.id),
        created_at=q.created_at,
        updated_at=q.updated_at,
    )


def _answers(ctx: Ctx, q: Questionnaire | None, r: QuestionnaireResponse | None) -> list[AnswerRead]:
    if r is None:
        return []
    shown = qs.shown_answers(q, dict(r.answers), whole_phone=sees_pii(ctx.actor))
    return [AnswerRead(key=k, label=label, text=text) for k, label, text in shown]


def koc_read(ctx: Ctx, c: koc.Candidate) -> dict[str, Any]:
    p: KocProfile = c.profile
    return {
        "customer_id": c.customer.id,
        "name": c.customer.name,
        "status": str(p.status),
        "score": p.score,
        "score_parts": dict(p.score_parts or {}),
        "applied_at": p.applied_at,
        "decided_at": p.decided_at,
        "decision_note": p.decision_note,
        "commission_rule_id": p.commission_rule_id,
        "answers": _answers(ctx, c.questionnaire, c.response),
    }


@router.get("/questionnaires", response_model=list[QuestionnaireRead])
def list_questionnaires(ctx: Reader) -> list[QuestionnaireRead]:
    """Every questionnaire of the workspace, newest first."""
    return [
        questionnaire_read(ctx, q) for q in qs.list_questionnaires(ctx.session, workspace_id=ctx.actor.workspace_id)
    ]


@router.post("/questionnaires", status_code=201, response_model=QuestionnaireRead)
def create_questionnaire(body: QuestionnaireIn, ctx: Writer) -> QuestionnaireRead:
    """A new questionnaire (draft)."""
    return questionnaire_read(ctx, qs.create_questionnaire(ctx.session, actor=ctx.actor, data=body, clock=ctx.clock))


@router.get("/questionnaires/{questionnaire_id}", response_model=QuestionnaireRead)
def get_questionnaire(questionnaire_id: IdPath, ctx: Reader) -> QuestionnaireRead:
    """One questionnaire with its fields."""
    q = qs.get_questionnaire(ctx.session, workspace_id=ctx.actor.workspace_id, questionnaire_id=questionnaire_id)
    return questionnaire_read(ctx, q)


@router.put("/questionnaires/{questionnaire_id}", response_model=QuestionnaireRead)
def update_questionnaire(questionnaire_id: IdPath, body: QuestionnaireIn, ctx: Writer) -> QuestionnaireRead:
    """Replace title, intro and fields (409 when it would break existing answers)."""
    q = qs.update_questionnaire(
        ctx.session, actor=ctx.actor, questionnaire_id=questionnaire_id, data=body, clock=ctx.clock
    )
    return questionnaire_read(ctx, q)


@router.post("/questionnaires/{questionnaire_id}/status", response_model=QuestionnaireRead)
def set_questionnaire_status(questionnaire_id: IdPath, body: StatusIn, ctx: Writer) -> QuestionnaireRead:
    """Open or close."""
    q = qs.set_status(
        ctx.session, actor=ctx.actor, questionnaire_id=questionnaire_id, status=body.status, clock=ctx.clock
    )
    return questionnaire_read(ctx, q)


@router.get("/questionnaires/{questionnaire_id}/responses", response_model=list[ResponseRead])
def list_responses(questionnaire_id: IdPath, ctx: Reader) -> list[ResponseRead]:
    """Members' answers, newest first (customers the reader may see; phones masked without PII scope)."""
    q = qs.get_questionnaire(ctx.session, workspace_id=ctx.actor.workspace_id, questionnaire_id=questionnaire_id)
    return [
        ResponseRead(id=r.id, customer_id=r.customer_id, submitted_at=r.submitted_at, answers=_answers(ctx, q, r))
        for r in qs.visible_responses(ctx.session, actor=ctx.actor, questionnaire_id=q.id)
    ]


@router.get("/koc/candidates", response_model=list[KocRead])
def list_candidates(
    ctx: Reader,
    status: Annotated[list[str] | None, Query()] = None,
    min_score: Annotated[int | None, Query(ge=0, le=100)] = None,
) -> list[KocRead]:
    """KOC profiles ranked by score, with their answers."""
    rows = koc.candidates(ctx.session, actor=ctx.actor, statuses=status, min_score=min_score)
    return [KocRead(**koc_read(ctx, c)) for c in rows]


@router.get("/koc/{customer_id}", response_model=KocDetailRead)
def get_koc(customer_id: IdPath, ctx: Reader) -> KocDetailRead:
    """One KOC with the daily score history."""
    c = koc.get_candidate(ctx.session, actor=ctx.actor, customer_id=customer_id)
    days = scoring.history(ctx.session, workspace_id=ctx.actor.workspace_id, profile_id=c.profile.id)
    return KocDetailRead(
        **koc_read(ctx, c),
        history=[
            ScoreDayRead(
                day=d.day,
                score=d.score,
                referrals=d.referrals,
                featured_posts=d.featured_posts,
                referred_gmv_fen=d.referred_gmv_fen,
                commission_fen=d.commission_fen,
            )
            for d in days
        ],
    )


@router.post("/koc/{customer_id}/decision", response_model=KocRead)
def decide(customer_id: IdPath, body: DecisionIn, ctx: Reviewer) -> KocRead:
    """Approve (with optional tag, tier, group roles, commission rule), reject or revoke."""
    koc.decide(ctx.session, actor=ctx.actor, customer_id=customer_id, data=body, clock=ctx.clock)
    return KocRead(**koc_read(ctx, koc.get_candidate(ctx.session, actor=ctx.actor, customer_id=customer_id)))
