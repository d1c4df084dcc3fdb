"""The demo brand's community: referrals and fission, groups with churn, a finished check-in
challenge, lotteries, the KOC program with commission and the resources library.

Built once per backend on the 300-customer brand at the test clock (deterministic, so the counts
are exact); one test, because the brand takes seconds to build."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.community.lottery.drawing import public_draw
from siyu.db import Database
from siyu.demo import build_demo
from siyu.demo.community import build_community
from siyu.demo.community.groups import GROUPS
from siyu.demo.loyalty import build_loyalty
from siyu.kit.clock import FrozenClock
from siyu.models import (
    ChallengeEntry,
    CommissionEntry,
    CommunityGroup,
    GroupDay,
    GroupMember,
    KocProfile,
    KocScoreDay,
    LotteryDraw,
    LotteryPrize,
    LotteryWin,
    Post,
    PostImage,
    PostLike,
    QuestionnaireResponse,
    Referral,
    ReferralProgram,
    ReferralReward,
    ReferralVisit,
    Refund,
    Resource,
    Workspace,
)
from siyu.referrals.tree import TreeNode, referral_tree

CUSTOMERS = 300


def _count(db: Session, model: type) -> int:
    return db.scalar(select(func.count()).select_from(model)) or 0


def _deepest(nodes: list[TreeNode]) -> int:
    """The deepest referral level under these nodes (a root is level 0)."""
    return max((max(n.depth, _deepest(n.children)) for n in nodes), default=0)


def test_the_demo_community_through_the_services(database: Database, clock: FrozenClock, db: Session) -> None:
    # given the demo brand with its loyalty program
    assert build_demo(database, customers=CUSTOMERS, clock=clock) is True
    assert build_loyalty(database, clock=clock) is True

    # when its community is built
    assert build_community(database, clock=clock) is True

    # then: two running programs; the referral tree with every fraud rule's case
    programs = {p.kind: p for p in db.scalars(select(ReferralProgram))}
    assert sorted(programs) == ["group_fission", "referral"]
    referral, fission = programs["referral"], programs["group_fission"]
    statuses = Counter((r.program_id == fission.id, str(r.status), r.reason) for r in db.scalars(select(Referral)))
    # the two reversals name the demo's two refunds (ids come from a sequence other tests share)
    first_refund, second_refund = db.scalars(
        select(Refund.id).where(Refund.workspace_id == referral.workspace_id).order_by(Refund.id)
    ).all()
    assert statuses == {
        (False, "pending", None): 29,
        (False, "qualified", None): 25,
        (False, "reversed", f"refund:{first_refund}"): 1,
        (False, "reversed", f"refund:{second_refund}"): 1,
        (False, "flagged", "burst"): 3,
        (False, "rejected", "daily_cap"): 2,
        (False, "rejected", "self_referral"): 1,
        (False, "rejected", "shared_device"): 2,
        (True, "pending", None): 2,
        (True, "qualified", None): 12,
    }
    workspace_id = db.scalars(select(Workspace.id)).one()
    tree = referral_tree(db, actor=Actor.system(workspace_id), program_id=referral.id, root_customer_id=None)
    assert _deepest(tree) == 3
    # every qualified referral rewarded both sides (fission: the referee; the inviter at the target)
    for r in db.scalars(select(Referral).where(Referral.status == "qualified")):
        roles = {w.role for w in db.scalars(select(ReferralReward).where(ReferralReward.referral_id == r.id))}
        assert ({"referrer", "referee"} if r.program_id == referral.id else {"referee"}) <= roles, r.id
    # reversed referrals: their rewards reversed too
    for r in db.scalars(select(Referral).where(Referral.status == "reversed")):
        rewards = db.scalars(select(ReferralReward).where(ReferralReward.referral_id == r.id)).all()
        assert rewards and all(w.reversed_at is not None for w in rewards)
    assert Counter(str(k) for k in db.scalars(select(ReferralVisit.kind))) == {"scan": 106, "share": 78}
    rewards = Counter((str(w.role), w.reversed_at is not None) for w in db.scalars(select(ReferralReward)))
    assert rewards == {
        ("referee", False): 37,
        ("referee", True): 2,
        ("referrer", False): 27,
        ("referrer", True): 2,
        ("unlock", False): 2,
    }

    # groups: members joining and leaving, one flash group dismissed, a count for every day
    names = [spec.name for spec in GROUPS]
    groups = {g.name: g for g in db.scalars(select(CommunityGroup).where(CommunityGroup.name.in_(names)))}
    assert sorted(groups) == sorted(names)
    flash = groups["双 11 闪购群"]
    assert (flash.is_active, flash.member_count) == (False, 0)
    for group in groups.values():
        open_stays = db.scalar(
            select(func.count()).where(GroupMember.group_id == group.id, GroupMember.left_at.is_(None))
        )
        assert group.member_count == open_stays
    assert Counter(str(r) for r in db.scalars(select(GroupMember.role))) == {
        "member": 234,
        "admin": 10,
        "owner": 5,
        "koc": 4,
    }
    assert Counter(db.scalars(select(GroupMember.left_reason))) == {
        None: 165,
        "dismissed": 61,
        "left": 23,
        "removed": 4,
    }
    assert _count(db, GroupDay) == 234

    # the challenge: completions have certificates, one advert hidden, three featured
    entries = db.scalars(select(ChallengeEntry)).all()
    assert (len(entries), sum(e.completed_at is not None for e in entries)) == (41, 20)
    assert all((e.completed_at is None) == (e.certificate_no is None) for e in entries)
    assert all(e.days_done == 7 for e in entries if e.completed_at is not None)
    assert Counter(str(s) for s in db.scalars(select(Post.status))) == {"visible": 224, "featured": 3, "hidden": 1}
    assert (_count(db, PostLike), _count(db, PostImage)) == (339, 38)
    assert sum(db.scalars(select(Post.likes_count))) == _count(db, PostLike)

    # the lotteries: one drawn and verifiable, no prize over its stock; one open
    draws = {str(d.status): d for d in db.scalars(select(LotteryDraw))}
    assert sorted(draws) == ["drawn", "open"]
    shown = public_draw(db, draw_id=draws["drawn"].id)
    assert shown is not None and shown.is_verified is True
    assert len(shown.tickets) == 200
    for prize in db.scalars(select(LotteryPrize)):
        won = db.scalar(select(func.count()).where(LotteryWin.prize_id == prize.id))
        assert won == prize.awarded_count <= prize.stock
    assert _count(db, LotteryWin) == 26

    # the KOC program: 15 applications, two approved with commission, one rejected, scores computed
    assert _count(db, QuestionnaireResponse) == 15
    assert Counter(str(s) for s in db.scalars(select(KocProfile.status))) == {
        "candidate": 49,
        "applied": 12,
        "approved": 2,
        "rejected": 1,
    }
    approved = db.scalars(select(KocProfile).where(KocProfile.status == "approved")).all()
    assert all(p.commission_rule_id is not None for p in approved)
    assert Counter(str(k) for k in db.scalars(select(CommissionEntry.kind))) == {"earn": 5, "reverse": 1}
    assert sum(db.scalars(select(CommissionEntry.amount_fen))) == 14_280
    assert _count(db, KocScoreDay) == 64

    # the resources: four published, one draft
    assert Counter(str(s) for s in db.scalars(select(Resource.status))) == {"published": 4, "draft": 1}

    # a second run finds the programs and changes nothing
    assert build_community(database, clock=clock) is False
