"""Fraud review of flagged referrals, program metrics with the K-factor, and the referral tree."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Role
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import PermissionDenied
from siyu.models import AuditEntry, Referral, ReferralStatus
from siyu.referrals import fraud, metrics, tree
from siyu.referrals.errors import NotReviewable
from tests.factories import actor_for
from tests.referrals.factories import World, count


def _flagged_world(db: Session, clock: FrozenClock, **program: object) -> tuple[World, Referral]:
    world = World(db, clock, burst_threshold=2, burst_window_minutes=60, referrer_reward={"points": 40}, **program)
    code = world.code(world.member(name="Alice"))
    world.invite(code)
    bob = world.invite(code).customer
    referral = db.scalar(select(Referral).where(Referral.referee_customer_id == bob.id))
    assert referral is not None and referral.status == ReferralStatus.FLAGGED
    return world, referral


def test_approving_a_flagged_referral_qualifies_it_when_the_condition_was_met(db: Session, clock: FrozenClock) -> None:
    # given a flagged referral in an added-staff program (A paid 40 for the first friend only)
    world, referral = _flagged_world(db, clock)
    alice_id = referral.referrer_customer_id
    # when a reviewer approves it
    fraud.review(db, actor=world.actor, referral_id=referral.id, approve=True, note="同事推荐，正常", clock=clock)
    # then it is qualified, A is paid, and the decision is audited
    assert referral.status == ReferralStatus.QUALIFIED
    assert world.balance(db.get(type(world.member()), alice_id)) == 80  # type: ignore[arg-type]
    assert count(db, AuditEntry, AuditEntry.action == "referral.review") == 1


def test_rejecting_keeps_the_note_and_a_second_review_is_refused(db: Session, clock: FrozenClock) -> None:
    # given a flagged referral
    world, referral = _flagged_world(db, clock)
    # when it is rejected, then reviewed again
    fraud.review(db, actor=world.actor, referral_id=referral.id, approve=False, note="刷单", clock=clock)
    with pytest.raises(NotReviewable):
        fraud.review(db, actor=world.actor, referral_id=referral.id, approve=True, note="", clock=clock)
    # then it stays rejected with the note
    assert (referral.status, referral.reason) == (ReferralStatus.REJECTED, "review: 刷单")


def test_review_needs_growth_review(db: Session, clock: FrozenClock) -> None:
    # given a flagged referral and an operator without growth:review
    world, referral = _flagged_world(db, clock)
    actor = actor_for(world.ws, role=Role.ANALYST)
    # when they review, then it is refused and nothing changed
    with pytest.raises(PermissionDenied):
        fraud.review(db, actor=actor, referral_id=referral.id, approve=True, note="", clock=clock)
    assert referral.status == ReferralStatus.FLAGGED


def test_metrics_count_the_funnel_per_day_with_the_k_factor(db: Session, clock: FrozenClock) -> None:
    # given (2026-11-23, Shanghai) A shares once and brings 2 friends, B shares and brings none;
    # the next day A brings 1 more; 100 points per referral at 1 fen per point
    world = World(db, clock, referrer_reward={"points": 100})
    alice, bea = world.member(), world.member()
    code_a, code_b = world.code(alice), world.code(bea)
    world.share(code_a)
    world.share(code_b)
    world.invite(code_a)
    world.invite(code_a)
    clock.advance(timedelta(days=1))
    world.invite(code_a)
    # when the metrics of the two days are read per day
    result = metrics.program_metrics(
        db,
        actor=world.actor,
        program_id=world.program.id,
        start=date(2026, 11, 23),
        end=date(2026, 11, 24),
        period="day",
    )
    # then each day has its funnel; invites = shares + distinct scans;
    # K = (invites / code holders) × (qualified / invites); cost per referred
    day1, day2 = result.rows
    assert (day1.shares, day1.scans, day1.invites, day1.inviting_members, day1.members, day1.code_holders) == (
        2,
        2,
        4,
        2,
        2,
        2,
    )
    # day 1: (4 / 2) × (2 / 4) = 1.0
    assert (day1.referred, day1.qualified, day1.k_factor, day1.cost_fen, day1.cost_per_referred_fen) == (
        2,
        2,
        1.0,
        200,
        100,
    )
    # day 2: (1 / 2) × (1 / 1) = 0.5 (both members still hold their code)
    assert (day2.scans, day2.invites, day2.code_holders, day2.qualified, day2.k_factor) == (1, 1, 2, 1, 0.5)
    totals = result.totals
    # totals: (5 / 2) × (3 / 5) = 1.5
    assert (totals.invites, totals.code_holders, totals.qualified, totals.k_factor, totals.cost_fen) == (
        5,
        2,
        3,
        1.5,
        300,
    )


def test_the_tree_nests_referees_under_their_referrers(db: Session, clock: FrozenClock) -> None:
    # given A referred B, and B referred C
    world = World(db, clock)
    alice = world.member(name="Alice")
    bob = world.invite(world.code(alice), name="Bob").customer
    carol = world.invite(world.code(bob), name="Carol").customer
    # when the whole tree is read, and the one under B with depth 1
    whole = tree.referral_tree(db, actor=world.actor, program_id=None, root_customer_id=None)
    under_bob = tree.referral_tree(db, actor=world.actor, program_id=world.program.id, root_customer_id=bob.id)
    # then A is the root, with B below and C below B
    assert [(n.name, n.depth, n.status) for n in whole] == [("Alice", 0, None)]
    assert [(n.name, n.depth, n.status) for n in whole[0].children] == [("Bob", 1, "qualified")]
    assert [(n.customer_id, n.depth) for n in whole[0].children[0].children] == [(carol.id, 2)]
    assert [(n.customer_id, [c.name for c in n.children]) for n in under_bob] == [(bob.id, ["Carol"])]
