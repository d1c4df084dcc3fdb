"""The KOC score (0–100) and its daily history, computed in SQL per workspace.

| part        | input (per customer)                                                  | points            |
|-------------|-----------------------------------------------------------------------|-------------------|
| referrals   | qualified referrals where the customer is the referrer (all time)     | 8 each, max 40    |
| featured    | the customer's posts with status featured (all time)                  | 5 each, max 20    |
| engagement  | likes received in the last 90 days + own check-in posts in 90 days    | 1 per 2, max 20   |
| spend       | Member.spend_fen, log-scaled on whole yuan y: largest k ≤ 20 with      | max 20            |
|             | 10^k ≤ (1 + y)^5, i.e. floor(5·log10(1 + y)) in exact integers         |                   |

Every customer with a referral, a featured post or engagement gets a candidate profile; existing
profiles in any status are rescored too. `score_parts` keeps the inputs and sub-scores.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.kit.clock import Clock
from siyu.loyalty.member_tasks.periods import local_day
from siyu.loyalty.program import brand_zone
from siyu.models import Customer, Member
from siyu.models.challenge import Post, PostLike, PostStatus
from siyu.models.commission import CommissionEntry
from siyu.models.koc import KocProfile, KocScoreDay, KocStatus
from siyu.models.order import Order
from siyu.models.referral import Referral, ReferralStatus

ENGAGEMENT_DAYS = 90
WEIGHTS: dict[str, tuple[int, int]] = {
    # part: (points per unit, cap)
    "referrals": (8, 40),
    "featured_posts": (5, 20),
}
ENGAGEMENT_PER_POINT = 2
ENGAGEMENT_CAP = 20
SPEND_CAP = 20


def spend_points(spend_fen: int) -> int:
    """floor(5·log10(1 + yuan)) capped at 20, computed exactly: 10 yuan → 5, 100 → 10, 10,000 → 20."""
    power = (1 + max(0, spend_fen) // 100) ** 5
    k = 0
    while k < SPEND_CAP and 10 ** (k + 1) <= power:
        k += 1
    return k


def score_of(*, referrals: int, featured_posts: int, engagement: int, spend_fen: int) -> tuple[int, dict[str, Any]]:
    """The score and its parts for the given inputs."""
    per, cap = WEIGHTS["referrals"]
    p_ref = min(cap, per * referrals)
    per, cap = WEIGHTS["featured_posts"]
    p_feat = min(cap, per * featured_posts)
    p_eng = min(ENGAGEMENT_CAP, engagement // ENGAGEMENT_PER_POINT)
    p_spend = spend_points(spend_fen)
    parts = {
        "referrals": referrals,
        "featured_posts": featured_posts,
        "engagement": engagement,
        "spend_fen": spend_fen,
        "points": {"referrals": p_ref, "featured_posts": p_feat, "engagement": p_eng, "spend": p_spend},
    }
    return p_ref + p_feat + p_eng + p_spend, parts


def _counts(session: Session, query: Any) -> dict[int, int]:
    return {int(cid): int(n or 0) for cid, n in session.execute(query).all()}


def _chunks(ids: list[int], size: int = 500) -> Iterable[list[int]]:
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


def score_workspace(session: Session, *, workspace_id: int, clock: Clock) -> int:
    """Rescore every KOC profile of the workspace (creating candidates for active customers) and write
    today's `KocScoreDay` rows (brand-local day; a rerun the same day overwrites). Returns profiles scored."""
    now = clock.now()
    day: date = local_day(now, brand_zone(session, workspace_id))
    since = now - timedelta(days=ENGAGEMENT_DAYS)
    referrals = _counts(
        session,
        select(Referral.referrer_customer_id, func.count(Referral.id))
        .where(Referral.workspace_id == workspace_id, Referral.status == ReferralStatus.QUALIFIED)
        .group_by(Referral.referrer_customer_id),
    )
    featured = _counts(
        session,
        select(Post.customer_id, func.count(Post.id))
        .where(Post.workspace_id == workspace_id, Post.status == PostStatus.FEATURED)
        .group_by(Post.customer_id),
    )
    likes = _counts(
        session,
        select(Post.customer_id, func.count(PostLike.id))
        .join(PostLike, PostLike.post_id == Post.id)
        .where(
            Post.workspace_id == workspace_id, PostLike.created_at >= since, PostLike.customer_id != Post.customer_id
        )
        .group_by(Post.customer_id),
    )
    check_ins = _counts(
        session,
        select(Post.customer_id, func.count(Post.id))
        .where(
            Post.workspace_id == workspace_id,
            Post.challenge_id.is_not(None),
            Post.created_at >= since,
            Post.status != PostStatus.HIDDEN,
        )
        .group_by(Post.customer_id),
    )
    gmv = _counts(
        session,
        select(Referral.referrer_customer_id, func.sum(Order.total_fen - Order.refunded_fen))
        .join(Order, Order.customer_id == Referral.referee_customer_id)
        .where(
            Referral.workspace_id == workspace_id,
            Referral.status.in_((ReferralStatus.PENDING, ReferralStatus.QUALIFIED)),
            Order.paid_at >= Referral.attributed_at,
        )
        .group_by(Referral.referrer_customer_id),
    )
    commission = _counts(
        session,
        select(CommissionEntry.koc_customer_id, func.sum(CommissionEntry.amount_fen))
        .where(CommissionEntry.workspace_id == workspace_id)
        .group_by(CommissionEntry.koc_customer_id),
    )
    engagement: dict[int, int] = defaultdict(int)
    for source in (likes, check_ins):
        for cid, n in source.items():
            engagement[cid] += n

    profiles = {
        p.customer_id: p
        for p in session.scalars(
            # No FOR UPDATE: commission earning locks KOC profiles while ingesting orders, and the
            # ORM's UPDATE writes only the score columns (a concurrent decision writes others).
            select(KocProfile).where(KocProfile.workspace_id == workspace_id).order_by(KocProfile.id)
        )
    }
    active = {cid for src in (referrals, featured, engagement) for cid, n in src.items() if n > 0}
    wanted = sorted(set(profiles) | active)
    live: set[int] = set()
    spend: dict[int, int] = {}
    for chunk in _chunks(wanted):
        live.update(
            session.scalars(
                select(Customer.id).where(
                    Customer.workspace_id == workspace_id, Customer.id.in_(chunk), Customer.erased_at.is_(None)
                )
            )
        )
        spend.update(
            _counts(
                session,
                select(Member.customer_id, Member.spend_fen).where(
                    Member.workspace_id == workspace_id, Member.customer_id.in_(chunk)
                ),
            )
        )
    days = {
        d.koc_profile_id: d
        for d in session.scalars(
            select(KocScoreDay).where(KocScoreDay.workspace_id == workspace_id, KocScoreDay.day == day)
        )
    }
    scored_ids = [cid for cid in wanted if cid in live]
    for cid in scored_ids:
        profile = profiles.get(cid)
        if profile is None:
            profile = KocProfile(workspace_id=workspace_id, customer_id=cid, status=KocStatus.CANDIDATE, created_at=now)
            session.add(profile)
            profiles[cid] = profile
        score, parts = score_of(
            referrals=referrals.get(cid, 0),
            featured_posts=featured.get(cid, 0),
            engagement=engagement.get(cid, 0),
            spend_fen=spend.get(cid, 0),
        )
        profile.score, profile.score_parts, profile.scored_at = score, parts, now
    session.flush()  # once, for the new profiles' ids
    for cid in scored_ids:
        profile = profiles[cid]
        row = days.get(profile.id)
        if row is None:
            row = KocScoreDay(workspace_id=workspace_id, koc_profile_id=profile.id, day=day, score=profile.score)
            session.add(row)
        row.score = profile.score
        row.referrals = referrals.get(cid, 0)
        row.featured_posts = featured.get(cid, 0)
        row.referred_gmv_fen = gmv.get(cid, 0)
        row.commission_fen = commission.get(cid, 0)
    scored = len(scored_ids)
    session.flush()
    return scored


def history(session: Session, *, workspace_id: int, profile_id: int, limit: int = 180) -> list[KocScoreDay]:
    """A profile's daily rows, oldest first (the last `limit` days)."""
    rows = session.scalars(
        select(KocScoreDay)
        .where(KocScoreDay.workspace_id == workspace_id, KocScoreDay.koc_profile_id == profile_id)
        .order_by(KocScoreDay.day.desc())
        .limit(limit)
    )
    return list(reversed(list(rows)))
