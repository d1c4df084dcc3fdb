"""KOC program: profiles, applications, the candidate list and operators' decisions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.community.koc.errors import InvalidDecision, KocNotFound
from siyu.community.koc.questionnaires import submit
from siyu.community.koc.schemas import Decision, DecisionIn
from siyu.customers.repository import get_visible, visibility_clause
from siyu.customers.service.tags import assign_tag
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput, NotFound
from siyu.models import Customer
from siyu.models.commission import CommissionRule
from siyu.models.koc import KocProfile, KocStatus, Questionnaire, QuestionnaireResponse


def approved_koc(session: Session, *, workspace_id: int, customer_id: int) -> KocProfile | None:
    """The customer's KOC profile when it is approved in the workspace, else None."""
    return session.scalar(
        select(KocProfile).where(
            KocProfile.workspace_id == workspace_id,
            KocProfile.customer_id == customer_id,
            KocProfile.status == KocStatus.APPROVED,
        )
    )


def profile_of(session: Session, *, workspace_id: int, customer_id: int, for_update: bool = False) -> KocProfile | None:
    """The customer's KOC profile in any status, if they have one."""
    query = select(KocProfile).where(KocProfile.workspace_id == workspace_id, KocProfile.customer_id == customer_id)
    if for_update:
        query = query.with_for_update()
    return session.scalar(query)


def ensure_profile(session: Session, *, workspace_id: int, customer_id: int, clock: Clock) -> KocProfile:
    """The customer's profile, created as a candidate (score 0) if missing; locked for update."""
    profile = profile_of(session, workspace_id=workspace_id, customer_id=customer_id, for_update=True)
    if profile is None:
        profile = KocProfile(
            workspace_id=workspace_id,
            customer_id=customer_id,
            status=KocStatus.CANDIDATE,
            score=0,
            score_parts={},
            created_at=clock.now(),
        )
        try:
            with session.begin_nested():
                session.add(profile)
                session.flush()
        except IntegrityError:  # a concurrent creation won the unique key: use theirs
            found = profile_of(session, workspace_id=workspace_id, customer_id=customer_id, for_update=True)
            if found is None:
                raise
            profile = found
    return profile


def apply(
    session: Session, *, questionnaire: Questionnaire, customer_id: int, raw: dict[str, Any], clock: Clock
) -> tuple[QuestionnaireResponse, bool]:
    """A member answers a questionnaire. For a KOC application form the member's profile becomes APPLIED
    (an approved KOC stays approved). Returns `(response, created)`; a resubmission changes nothing."""
    response, created = submit(session, questionnaire=questionnaire, customer_id=customer_id, raw=raw, clock=clock)
    if created and questionnaire.purpose == "koc_application":
        profile = ensure_profile(session, workspace_id=questionnaire.workspace_id, customer_id=customer_id, clock=clock)
        profile.response_id = response.id
        profile.applied_at = response.submitted_at
        if profile.status != KocStatus.APPROVED:
            profile.status = KocStatus.APPLIED
        session.flush()
    return response, created


@dataclass(frozen=True)
class Candidate:
    """One row of the ranked candidate list."""

    profile: KocProfile
    customer: Customer
    response: QuestionnaireResponse | None
    questionnaire: Questionnaire | None


def candidates(
    session: Session,
    *,
    actor: Actor,
    statuses: list[str] | None = None,
    min_score: int | None = None,
    limit: int = 200,
) -> list[Candidate]:
    """Profiles ranked by score (highest first, then earliest applied), with their answers; only customers
    the actor may see."""
    actor.require(Scope.GROWTH_READ)
    query = (
        select(KocProfile, Customer, QuestionnaireResponse, Questionnaire)
        .join(Customer, Customer.id == KocProfile.customer_id)
        .outerjoin(QuestionnaireResponse, QuestionnaireResponse.id == KocProfile.response_id)
        .outerjoin(Questionnaire, Questionnaire.id == QuestionnaireResponse.questionnaire_id)
        .where(KocProfile.workspace_id == actor.workspace_id, visibility_clause(actor), Customer.erased_at.is_(None))
    )
    if statuses:
        bad = [s for s in statuses if s not in set(KocStatus)]
        if bad:
            raise InvalidInput(f"unknown status {bad[0]}", details={"field": "status"})
        query = query.where(KocProfile.status.in_(statuses))
    if min_score is not None:
        query = query.where(KocProfile.score >= min_score)
    query = query.order_by(KocProfile.score.desc(), KocProfile.applied_at.asc(), KocProfile.id.asc()).limit(limit)
    return [Candidate(p, c, r, q) for p, c, r, q in session.execute(query).all()]


def get_candidate(session: Session, *, actor: Actor, customer_id: int) -> Candidate:
    """One customer's KOC profile with their answers, or `KocNotFound`."""
    actor.require(Scope.GROWTH_READ)
    customer = get_visible(session, actor, customer_id)
    profile = profile_of(session, workspace_id=actor.workspace_id, customer_id=customer.id)
    if profile is None:
        raise KocNotFound(f"customer {customer_id} has no KOC profile")
    response = session.get(QuestionnaireResponse, profile.response_id) if profile.response_id else None
    questionnaire = session.get(Questionnaire, response.questionnaire_id) if response else None
    return Candidate(profile, customer, response, questionnaire)


ALLOWED_FROM: dict[Decision, tuple[KocStatus, ...]] = {
    Decision.APPROVE: (KocStatus.CANDIDATE, KocStatus.APPLIED, KocStatus.REJECTED, KocStatus.REVOKED),
    Decision.REJECT: (KocStatus.CANDIDATE, KocStatus.APPLIED),
    Decision.REVOKE: (KocStatus.APPROVED,),
}
RESULT: dict[Decision, KocStatus] = {
    Decision.APPROVE: KocStatus.APPROVED,
    Decision.REJECT: KocStatus.REJECTED,
    Decision.REVOKE: KocStatus.REVOKED,
}


def decide(session: Session, *, actor: Actor, customer_id: int, data: DecisionIn, clock: Clock) -> KocProfile:
    """Approve, reject or revoke a KOC (growth:review), audited. Approval may also tag the customer,
    set a tier by hand (the note is the reason), make them KOC in groups they are in and attach a
    commission rule; any failure leaves nothing changed."""
    actor.require(Scope.GROWTH_REVIEW)
    note = data.note.strip()
    if len(note) > 300:
        raise InvalidInput("note must be at most 300 characters", details={"field": "note"})
    if data.decision is not Decision.APPROVE and not note:
        raise InvalidInput("a note is required to reject or revoke", details={"field": "note"})
    customer = get_visible(session, actor, customer_id)
    if customer.erased_at is not None:
        raise KocNotFound(f"customer {customer_id} was erased")
    with session.begin_nested():
        profile = ensure_profile(session, workspace_id=actor.workspace_id, customer_id=customer.id, clock=clock)
        if profile.status not in ALLOWED_FROM[data.decision]:
            raise InvalidDecision(
                f"cannot {data.decision} a KOC that is {profile.status}", details={"status": str(profile.status)}
            )
        before = {"status": str(profile.status), "commission_rule_id": profile.commission_rule_id}
        if data.decision is Decision.APPROVE:
            _approve_effects(session, actor=actor, profile=profile, data=data, note=note, clock=clock)
        profile.status = RESULT[data.decision]
        profile.decided_at = clock.now()
        profile.decided_by_user_id = actor.user_id
        profile.decision_note = note or None
        session.flush()
        record(
            session,
            actor,
            action=f"koc.{data.decision}",
            entity_type="koc_profile",
            entity_id=profile.id,
            clock=clock,
            before=before,
            after={
                "status": str(profile.status),
                "note": note,
                "tag_id": data.tag_id,
                "tier_id": data.tier_id,
                "group_ids": list(data.group_ids),
                "commission_rule_id": profile.commission_rule_id,
            },
        )
    return profile


def _approve_effects(
    session: Session, *, actor: Actor, profile: KocProfile, data: DecisionIn, note: str, clock: Clock
) -> None:
    # imported here: the groups and tiers services import a lot, and only approval needs them
    from siyu.community.groups.membership import set_role
    from siyu.loyalty.tiers.service import set_tier
    from siyu.models.group import GroupMemberRole

    if data.commission_rule_id is not None:
        rule = session.scalar(
            select(CommissionRule).where(
                CommissionRule.workspace_id == actor.workspace_id, CommissionRule.id == data.commission_rule_id
            )
        )
        if rule is None or not rule.is_active:
            raise InvalidInput("unknown or inactive commission rule", details={"field": "commission_rule_id"})
        profile.commission_rule_id = rule.id
    if data.tag_id is not None:
        try:
            assign_tag(session, actor=actor, customer_id=profile.customer_id, tag_id=data.tag_id, clock=clock)
        except NotFound:
            raise InvalidInput("unknown tag", details={"field": "tag_id"}) from None
    if data.tier_id is not None:
        try:
            set_tier(
                session,
                actor=actor,
                customer_id=profile.customer_id,
                tier_id=data.tier_id,
                reason=note or "KOC approved",
                clock=clock,
                idempotency_key=f"koc:{profile.id}:{clock.now().isoformat()}",
            )
        except NotFound:
            raise InvalidInput("unknown tier", details={"field": "tier_id"}) from None
    for group_id in dict.fromkeys(data.group_ids):
        try:
            set_role(
                session,
                actor=actor,
                group_id=group_id,
                customer_id=profile.customer_id,
                role=GroupMemberRole.KOC,
                clock=clock,
            )
        except NotFound:
            raise InvalidInput(
                f"the customer is not in group {group_id}", details={"field": "group_ids", "group_id": group_id}
            ) from None


@dataclass(frozen=True)
class ProfilePanel:
    """What the customer profile shows of the KOC program: the KOC status and every questionnaire answered."""

    profile: KocProfile | None
    responses: list[tuple[str, datetime, list[tuple[str, str, str]]]]
    """(questionnaire title, submitted at, [(key, label, text)]) newest first."""


def profile_panel(session: Session, *, actor: Actor, customer: Customer) -> ProfilePanel:
    """The customer's KOC status and answers for the customer profile page (phones masked without PII scope).

    `customer` is one the caller already read through `get_visible` (the actor may see it)."""
    from siyu.community.koc.questionnaires import responses_of, shown_answers
    from siyu.customers.masking import sees_pii

    whole = sees_pii(actor)
    rows = responses_of(session, workspace_id=actor.workspace_id, customer_id=customer.id)
    return ProfilePanel(
        profile=profile_of(session, workspace_id=actor.workspace_id, customer_id=customer.id),
        responses=[(q.title, r.submitted_at, shown_answers(q, dict(r.answers), whole_phone=whole)) for q, r in rows],
    )
