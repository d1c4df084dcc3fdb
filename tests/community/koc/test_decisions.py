"""Approving, rejecting and revoking KOCs, and what approval does."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Role
from siyu.community.groups.membership import join_group
from siyu.community.koc.errors import InvalidDecision
from siyu.community.koc.schemas import Decision, DecisionIn
from siyu.community.koc.service import apply, approved_koc, candidates, decide, profile_of
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput, PermissionDenied
from siyu.loyalty.members import get_member
from siyu.models import AuditEntry, CustomerTag
from siyu.models.group import GroupMember
from siyu.models.koc import KocStatus
from tests.community.koc.factories import VALID_ANSWERS, make_commission_rule, make_questionnaire
from tests.factories import actor_for, make_customer, make_group, make_tag, make_workspace
from tests.loyalty.tiers.factories import make_tier


def test_approval_tags_sets_tier_group_role_and_commission_rule(db: Session, clock: FrozenClock) -> None:
    # given an applicant who is in a group, a tag, a tier and a commission rule
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws, user_id=None)
    member = make_customer(db, actor=actor, clock=clock, name="李娜").customer
    apply(
        db,
        questionnaire=make_questionnaire(db, actor=actor, clock=clock),
        customer_id=member.id,
        raw=VALID_ANSWERS,
        clock=clock,
    )
    group = make_group(db, workspace=ws, clock=clock)
    join_group(db, workspace_id=ws.id, group_id=group.id, customer_id=member.id, at=clock.now(), clock=clock)
    tag = make_tag(db, workspace=ws, name="KOC")
    tier = make_tier(db, workspace=ws, clock=clock, name="尊享", rank=3, threshold=999_999)
    rule = make_commission_rule(db, workspace=ws, clock=clock)
    # when the operator approves with every effect
    profile = decide(
        db,
        actor=actor,
        customer_id=member.id,
        data=DecisionIn(
            decision=Decision.APPROVE,
            note="内容质量高",
            tag_id=tag.id,
            tier_id=tier.id,
            group_ids=[group.id],
            commission_rule_id=rule.id,
        ),
        clock=clock,
    )
    # then the KOC is approved with the rule, tagged, in the tier, KOC in the group, and audited
    assert (profile.status, profile.commission_rule_id, profile.decision_note, profile.decided_at) == (
        KocStatus.APPROVED,
        rule.id,
        "内容质量高",
        clock.now(),
    )
    assert approved_koc(db, workspace_id=ws.id, customer_id=member.id) is profile
    assert db.scalar(select(CustomerTag.tag_id).where(CustomerTag.customer_id == member.id)) == tag.id
    stored = get_member(db, ws.id, member.id)
    assert stored is not None and stored.earned_tier_id == tier.id
    role = db.scalar(
        select(GroupMember.role).where(GroupMember.group_id == group.id, GroupMember.customer_id == member.id)
    )
    assert role == "koc"
    audit = db.scalar(select(AuditEntry).where(AuditEntry.action == "koc.approve"))
    assert audit is not None and audit.entity_id == str(profile.id)
    assert audit.before == {"status": "applied", "commission_rule_id": None}


def test_a_failing_effect_leaves_nothing_changed(db: Session, clock: FrozenClock) -> None:
    # given an applicant who is NOT in the chosen group
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    member = make_customer(db, actor=actor, clock=clock).customer
    apply(
        db,
        questionnaire=make_questionnaire(db, actor=actor, clock=clock),
        customer_id=member.id,
        raw=VALID_ANSWERS,
        clock=clock,
    )
    group = make_group(db, workspace=ws, clock=clock)
    tag = make_tag(db, workspace=ws)
    # when the approval names that group, then 422 naming group_ids
    with pytest.raises(InvalidInput) as caught:
        decide(
            db,
            actor=actor,
            customer_id=member.id,
            data=DecisionIn(decision=Decision.APPROVE, tag_id=tag.id, group_ids=[group.id]),
            clock=clock,
        )
    assert caught.value.details == {"field": "group_ids", "group_id": group.id}
    # and the tag was not assigned, the status not changed
    assert db.scalar(select(CustomerTag.id).where(CustomerTag.customer_id == member.id)) is None
    profile = profile_of(db, workspace_id=ws.id, customer_id=member.id)
    assert profile is not None and profile.status == KocStatus.APPLIED


@pytest.mark.parametrize(
    ("field", "data"),
    [
        ("tag_id", {"tag_id": 99_999_999}),
        ("commission_rule_id", {"commission_rule_id": 99_999_999}),
    ],
)
def test_unknown_references_are_refused(db: Session, clock: FrozenClock, field: str, data: dict[str, int]) -> None:
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    member = make_customer(db, actor=actor, clock=clock).customer
    with pytest.raises(InvalidInput) as caught:
        decide(
            db,
            actor=actor,
            customer_id=member.id,
            data=DecisionIn.model_validate({"decision": "approve", **data}),
            clock=clock,
        )
    assert caught.value.details == {"field": field}
    assert profile_of(db, workspace_id=ws.id, customer_id=member.id) is None


def test_only_reviewers_decide(db: Session, clock: FrozenClock) -> None:
    # given a marketer (growth write, no review) and an applicant
    ws = make_workspace(db, clock=clock)
    admin = actor_for(ws)
    member = make_customer(db, actor=admin, clock=clock).customer
    apply(
        db,
        questionnaire=make_questionnaire(db, actor=admin, clock=clock),
        customer_id=member.id,
        raw=VALID_ANSWERS,
        clock=clock,
    )
    staff = actor_for(ws, role=Role.ANALYST)
    # when they approve, then 403 and the applicant is unchanged
    with pytest.raises(PermissionDenied):
        decide(db, actor=staff, customer_id=member.id, data=DecisionIn(decision=Decision.APPROVE), clock=clock)
    profile = profile_of(db, workspace_id=ws.id, customer_id=member.id)
    assert profile is not None and profile.status == KocStatus.APPLIED


def test_reject_and_revoke_need_a_note_and_the_right_status(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    member = make_customer(db, actor=actor, clock=clock).customer
    # a rejection needs a note
    with pytest.raises(InvalidInput) as caught:
        decide(db, actor=actor, customer_id=member.id, data=DecisionIn(decision=Decision.REJECT), clock=clock)
    assert caught.value.details == {"field": "note"}
    # revoking someone who is not approved is a conflict
    with pytest.raises(InvalidDecision):
        decide(db, actor=actor, customer_id=member.id, data=DecisionIn(decision=Decision.REVOKE, note="x"), clock=clock)
    # approve, then revoke: approved_koc is gone
    decide(db, actor=actor, customer_id=member.id, data=DecisionIn(decision=Decision.APPROVE), clock=clock)
    assert approved_koc(db, workspace_id=ws.id, customer_id=member.id) is not None
    profile = decide(
        db, actor=actor, customer_id=member.id, data=DecisionIn(decision=Decision.REVOKE, note="违规"), clock=clock
    )
    assert (profile.status, profile.decision_note) == (KocStatus.REVOKED, "违规")
    assert approved_koc(db, workspace_id=ws.id, customer_id=member.id) is None
    # an approved KOC who answers again stays approved
    decide(db, actor=actor, customer_id=member.id, data=DecisionIn(decision=Decision.APPROVE), clock=clock)
    apply(
        db,
        questionnaire=make_questionnaire(db, actor=actor, clock=clock),
        customer_id=member.id,
        raw=VALID_ANSWERS,
        clock=clock,
    )
    assert approved_koc(db, workspace_id=ws.id, customer_id=member.id) is not None


def test_candidates_are_ranked_and_filtered(db: Session, clock: FrozenClock) -> None:
    # given three profiles with scores 70, 20, 90 (one approved)
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    people = [make_customer(db, actor=actor, clock=clock).customer for _ in range(3)]
    for person, score in zip(people, (70, 20, 90), strict=True):
        decide(db, actor=actor, customer_id=person.id, data=DecisionIn(decision=Decision.REJECT, note="n"), clock=clock)
        profile = profile_of(db, workspace_id=ws.id, customer_id=person.id)
        assert profile is not None
        profile.score = score
    approved = profile_of(db, workspace_id=ws.id, customer_id=people[2].id)
    assert approved is not None
    approved.status = KocStatus.APPROVED
    db.flush()
    # when listed: all, by min score, by status
    ranked = [c.customer.id for c in candidates(db, actor=actor)]
    high = [c.customer.id for c in candidates(db, actor=actor, min_score=50)]
    rejected = [c.customer.id for c in candidates(db, actor=actor, statuses=["rejected"])]
    # then highest first, filtered as asked
    assert ranked == [people[2].id, people[0].id, people[1].id]
    assert high == [people[2].id, people[0].id]
    assert rejected == [people[0].id, people[1].id]
    with pytest.raises(InvalidInput):
        candidates(db, actor=actor, statuses=["nope"])
