"""The KOC score: exact parts, determinism and the daily history."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.community.koc.scoring import history, score_of, score_workspace, spend_points
from siyu.community.koc.service import profile_of
from siyu.community.koc.tasks import score_all
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.loyalty.members import ensure_member
from siyu.models.challenge import PostStatus
from siyu.models.koc import KocProfile, KocScoreDay, KocStatus
from siyu.models.referral import ReferralStatus
from tests.community.koc.factories import like, make_challenge, make_post, make_referrals
from tests.factories import actor_for, make_customer, make_order, make_workspace


@pytest.mark.parametrize(
    ("fen", "points"),
    [
        (0, 0),
        (99, 0),
        (100, 1),
        (899, 4),
        (900, 5),
        (999, 5),
        (9_900, 10),
        (99_900, 15),
        (999_900, 20),
        (10**12, 20),
        (-5, 0),
    ],
)
def test_spend_is_log_scaled_in_exact_integers(fen: int, points: int) -> None:
    # given a spend in fen, when scored, then floor(5·log10(1 + yuan)) capped at 20
    assert spend_points(fen) == points


def test_score_parts_are_weighted_and_capped() -> None:
    score, parts = score_of(referrals=3, featured_posts=9, engagement=7, spend_fen=9_900)
    assert score == 24 + 20 + 3 + 10
    assert parts["points"] == {"referrals": 24, "featured_posts": 20, "engagement": 3, "spend": 10}
    assert score_of(referrals=99, featured_posts=99, engagement=999, spend_fen=10**12)[0] == 100


@given(
    r=st.integers(0, 200),
    f=st.integers(0, 200),
    e=st.integers(0, 2000),
    s=st.integers(0, 10**12),
    dr=st.integers(0, 3),
    df=st.integers(0, 3),
    de=st.integers(0, 3),
    ds=st.integers(0, 10**6),
)
def test_the_score_is_bounded_deterministic_and_monotone(
    r: int, f: int, e: int, s: int, dr: int, df: int, de: int, ds: int
) -> None:
    # given any inputs, then the score is 0–100, the same twice, and never drops when an input grows
    score, parts = score_of(referrals=r, featured_posts=f, engagement=e, spend_fen=s)
    assert 0 <= score <= 100
    assert score == sum(parts["points"].values())
    assert (score, parts) == score_of(referrals=r, featured_posts=f, engagement=e, spend_fen=s)
    assert score_of(referrals=r + dr, featured_posts=f + df, engagement=e + de, spend_fen=s + ds)[0] >= score


def test_a_workspace_is_scored_from_its_data(db: Session, clock: FrozenClock) -> None:
    # given a member with 2 qualified + 1 rejected referrals, 1 featured post, 3 likes from others in
    # 90 days (and 1 older), 2 check-in posts, 1 self-like, spend 99 yuan, and referees with orders
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    koc = make_customer(db, actor=actor, clock=clock, name="达人").customer
    others = [make_customer(db, actor=actor, clock=clock).customer for _ in range(4)]
    earlier = clock.now() - timedelta(days=3)
    make_referrals(db, workspace=ws, referrer=koc, referees=others[:2], clock=clock, at=earlier)
    make_referrals(db, workspace=ws, referrer=koc, referees=others[2:3], clock=clock, status=ReferralStatus.REJECTED)
    make_order(db, customer=others[0], paid_at=clock.now() - timedelta(days=1), total_fen=10_000, refunded_fen=2_000)
    make_order(db, customer=others[1], paid_at=clock.now() - timedelta(days=10), total_fen=50_000)  # before referral
    featured = make_post(db, customer=koc, clock=clock, status=PostStatus.FEATURED)
    for person in others[:3]:
        like(db, post=featured, customer=person, at=clock.now() - timedelta(days=1))
    like(db, post=featured, customer=others[3], at=clock.now() - timedelta(days=91))
    like(db, post=featured, customer=koc, at=clock.now())
    challenge = make_challenge(db, workspace=ws, clock=clock)
    for day in (20, 21):
        make_post(db, customer=koc, clock=clock, challenge=challenge, day=clock.now().date().replace(day=day))
    ensure_member(db, workspace_id=ws.id, customer_id=koc.id, clock=clock).spend_fen = 9_900
    # when the workspace is scored
    scored = score_workspace(db, workspace_id=ws.id, clock=clock)
    # then: referrals 2×8=16, featured 5, engagement (3 likes + 2 check-ins)//2 = 2, spend 10 → 33
    profile = profile_of(db, workspace_id=ws.id, customer_id=koc.id)
    assert profile is not None
    assert scored == 1  # only the KOC: the members who liked have no score-worthy activity
    assert (profile.status, profile.score, profile.scored_at) == (KocStatus.CANDIDATE, 33, clock.now())
    assert profile.score_parts == {
        "referrals": 2,
        "featured_posts": 1,
        "engagement": 5,
        "spend_fen": 9_900,
        "points": {"referrals": 16, "featured_posts": 5, "engagement": 2, "spend": 10},
    }
    days = history(db, workspace_id=ws.id, profile_id=profile.id)
    assert [
        (d.day.isoformat(), d.score, d.referrals, d.featured_posts, d.referred_gmv_fen, d.commission_fen) for d in days
    ] == [("2026-11-23", 33, 2, 1, 8_000, 0)]


def test_rescoring_the_same_day_overwrites_and_a_new_day_adds(db: Session, clock: FrozenClock) -> None:
    # given a member with one featured post, scored today
    ws = make_workspace(db, clock=clock)
    koc = make_customer(db, actor=actor_for(ws), clock=clock).customer
    make_post(db, customer=koc, clock=clock, status=PostStatus.FEATURED)
    score_workspace(db, workspace_id=ws.id, clock=clock)
    # when another post is featured and scoring runs again today, then tomorrow
    make_post(db, customer=koc, clock=clock, status=PostStatus.FEATURED)
    score_workspace(db, workspace_id=ws.id, clock=clock)
    clock.advance(timedelta(days=1))
    score_workspace(db, workspace_id=ws.id, clock=clock)
    # then one row per day, today's overwritten with the new score
    profile = profile_of(db, workspace_id=ws.id, customer_id=koc.id)
    assert profile is not None
    rows = [
        (d.day.isoformat(), d.score, d.featured_posts) for d in history(db, workspace_id=ws.id, profile_id=profile.id)
    ]
    assert rows == [("2026-11-23", 10, 2), ("2026-11-24", 10, 2)]


def test_the_job_scores_each_workspace_and_skips_erased(db: Session, database: Database, clock: FrozenClock) -> None:
    # given two workspaces with a featured author each, one author erased
    ws1, ws2 = make_workspace(db, clock=clock), make_workspace(db, clock=clock)
    a = make_customer(db, actor=actor_for(ws1), clock=clock).customer
    b = make_customer(db, actor=actor_for(ws2), clock=clock).customer
    make_post(db, customer=a, clock=clock, status=PostStatus.FEATURED)
    make_post(db, customer=b, clock=clock, status=PostStatus.FEATURED)
    b.erased_at = clock.now()
    db.flush()
    # when the job runs for each
    first = score_all(database, clock, workspace_id=ws1.id)
    second = score_all(database, clock, workspace_id=ws2.id)
    # then only the live author has a profile
    assert (first, second) == ({"workspaces": 1, "profiles": 1}, {"workspaces": 1, "profiles": 0})
    owners = db.scalars(select(KocProfile.customer_id).where(KocProfile.workspace_id.in_([ws1.id, ws2.id])))
    assert list(owners) == [a.id]
    assert db.scalar(select(KocScoreDay.score).where(KocScoreDay.workspace_id == ws1.id)) == 5
