"""The member's referral page `/m/referral`: programs they may invite for, with their code, link,
poster and an "I shared" button (CSRF), their progress (qualified/pending, unlock ladder, fission
target "已邀请 2/3") and their rewards, reversed ones marked 已撤销."""

from __future__ import annotations

import io
import re

from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.config import Settings
from siyu.kit.clock import FrozenClock
from siyu.models.referral import (
    Referral,
    ReferralCode,
    ReferralProgram,
    ReferralReward,
    ReferralStatus,
    ReferralVisit,
    RewardRole,
    VisitKind,
)
from siyu.referrals import programs
from tests.factories import make_customer
from tests.loyalty.h5.conftest import client, csrf_of, sign_in
from tests.referrals.pages_support import World, make_program, make_world

__all__ = ["client"]  # the app over the test's transaction, a zh-CN phone


def _referee(db: Session, world: World, clock: FrozenClock, status: ReferralStatus) -> Referral:
    """A referral of a new customer by 王芳 in the program, in `status` (set-up, not attribution)."""
    referee = make_customer(db, actor=Actor.system(world.workspace.id), clock=clock).customer
    referral = Referral(
        workspace_id=world.workspace.id,
        program_id=world.program.id,
        code_id=world.code.id,
        referrer_customer_id=world.referrer.id,
        referee_customer_id=referee.id,
        status=status,
        attributed_at=clock.now(),
        qualified_at=clock.now() if status == ReferralStatus.QUALIFIED else None,
    )
    db.add(referral)
    db.flush()
    return referral


def _reward(db: Session, world: World, clock: FrozenClock, referral: Referral, *, reversed_: bool) -> None:
    db.add(
        ReferralReward(
            workspace_id=world.workspace.id,
            program_id=world.program.id,
            referral_id=referral.id,
            customer_id=world.referrer.id,
            role=RewardRole.REFERRER,
            points=200,
            idempotency_key=f"referral:{referral.id}:referrer",
            issued_at=clock.now(),
            reversed_at=clock.now() if reversed_ else None,
        )
    )
    db.flush()


def _text(html: str, testid: str) -> list[str]:
    """The text of every element with this data-testid (tags stripped, whitespace squeezed)."""
    found = re.findall(rf'data-testid="{testid}"[^>]*>(.*?)</', html, flags=re.S)
    return [" ".join(re.sub(r"<[^>]+>", "", f).split()) for f in found]


def test_without_a_session_the_page_asks_to_come_through_a_link(client: TestClient) -> None:
    # when the page is opened without a member session
    response = client.get("/m/referral")
    # then a friendly page, not the console's login
    assert response.status_code == 401
    assert "请从链接进入" in response.text


def test_page_shows_code_link_poster_and_empty_progress(
    db: Session, clock: FrozenClock, client: TestClient, settings: Settings
) -> None:
    # given 王芳 in a running program
    world = make_world(db, clock=clock)
    sign_in(client, world.workspace.id, world.referrer.id, clock)
    # when she opens her referral page twice
    client.get("/m/referral")
    page = client.get("/m/referral")
    # then she sees her one code, its public link and her poster, and nothing counted yet
    assert page.status_code == 200
    assert _text(page.text, "program-name") == ["老带新"]
    assert _text(page.text, "referral-code") == [world.code.code]
    assert _text(page.text, "referral-link") == [f"{settings.public_url}/r/{world.code.code}"]
    assert f'src="/m/referral/{world.program.id}/poster.png"' in page.text
    assert (_text(page.text, "qualified"), _text(page.text, "pending")) == (["0"], ["0"])
    assert _text(page.text, "no-rewards") == ["还没有奖励，邀请好友即可获得"]
    assert db.scalar(select(func.count()).select_from(ReferralCode)) == 1


def test_a_member_without_a_code_gets_one_on_first_view(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given 李雷, a member of the same brand who never opened the page
    world = make_world(db, clock=clock)
    other = make_customer(db, actor=Actor.system(world.workspace.id), clock=clock, name="李雷").customer
    db.commit()
    sign_in(client, world.workspace.id, other.id, clock)
    # when he opens it
    page = client.get("/m/referral")
    # then a code of 8 unambiguous characters is made for him and shown
    db.expire_all()
    mine = db.scalars(select(ReferralCode).where(ReferralCode.customer_id == other.id)).one()
    assert re.fullmatch(r"[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{8}", mine.code)
    assert _text(page.text, "referral-code") == [mine.code]


def test_poster_is_the_members_png(db: Session, clock: FrozenClock, client: TestClient) -> None:
    world = make_world(db, clock=clock)
    sign_in(client, world.workspace.id, world.referrer.id, clock)
    # when her poster is fetched
    response = client.get(f"/m/referral/{world.program.id}/poster.png")
    # then it is a 750×1334 PNG, cached privately by her phone only
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers["cache-control"] == "private, max-age=300"
    with Image.open(io.BytesIO(response.content)) as image:
        assert (image.format, image.size) == ("PNG", (750, 1334))


def test_poster_of_a_paused_or_unknown_program_is_a_friendly_404(
    db: Session, clock: FrozenClock, client: TestClient
) -> None:
    # given a paused program
    world = make_world(db, clock=clock)
    programs.set_status(
        db, actor=Actor.system(world.workspace.id), program_id=world.program.id, status="paused", clock=clock
    )
    db.commit()
    sign_in(client, world.workspace.id, world.referrer.id, clock)
    # when its poster, an unknown one's and a malformed id's are asked for
    for path in (
        f"/m/referral/{world.program.id}/poster.png",
        "/m/referral/999999/poster.png",
        "/m/referral/x/poster.png",
    ):
        response = client.get(path)
        # then each is a friendly 404 page
        assert response.status_code == 404, path
        assert "没有找到" in response.text
    # and the page lists no program
    assert _text(client.get("/m/referral").text, "no-programs") == ["暂时没有进行中的邀请活动"]


def test_i_shared_records_one_share_visit(db: Session, clock: FrozenClock, client: TestClient) -> None:
    world = make_world(db, clock=clock)
    sign_in(client, world.workspace.id, world.referrer.id, clock)
    page = client.get("/m/referral")
    # when she taps 我已分享
    response = client.post(f"/m/referral/{world.program.id}/shared", data={"csrf_token": csrf_of(page.text)})
    # then a share visit is recorded with her device, and the page confirms it
    assert response.status_code == 303
    assert response.headers["location"] == f"/m/referral?shared={world.program.id}"
    db.expire_all()
    view, visit = db.scalars(select(ReferralVisit).order_by(ReferralVisit.id)).all()
    assert (visit.kind, visit.code_id, visit.visitor_id) == (VisitKind.SHARE, world.code.id, None)
    assert visit.device_id is not None and len(visit.device_id) == 64
    # (opening the page remembered her device once, as a view that counts nowhere)
    assert (view.kind, view.device_id) == (VisitKind.VIEW, visit.device_id)
    code = db.get(ReferralCode, world.code.id)
    assert code is not None and code.shares_count == 1
    assert _text(client.get(response.headers["location"]).text, "shared-done") == ["已记录分享，快去邀请好友吧"]


def test_i_shared_without_the_csrf_token_changes_nothing(db: Session, clock: FrozenClock, client: TestClient) -> None:
    world = make_world(db, clock=clock)
    sign_in(client, world.workspace.id, world.referrer.id, clock)
    # when a form without (or with a wrong) token is posted
    for data in ({}, {"csrf_token": "forged"}):
        response = client.post(f"/m/referral/{world.program.id}/shared", data=data)
        # then it is refused with a friendly page
        assert response.status_code == 403
        assert "页面已过期" in response.text
    # and no share is recorded
    assert db.scalar(select(func.count()).select_from(ReferralVisit)) == 0


def test_progress_and_rewards_with_a_reversed_one(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given 王芳 with two qualified referrals, one pending, one rejected, one reversed; rewards of
    # 200 points for the first two qualified, and one reversed
    world = make_world(db, clock=clock)
    first = _referee(db, world, clock, ReferralStatus.QUALIFIED)
    _referee(db, world, clock, ReferralStatus.QUALIFIED)
    _referee(db, world, clock, ReferralStatus.PENDING)
    _referee(db, world, clock, ReferralStatus.REJECTED)
    gone = _referee(db, world, clock, ReferralStatus.REVERSED)
    _reward(db, world, clock, first, reversed_=False)
    _reward(db, world, clock, gone, reversed_=True)
    db.commit()
    sign_in(client, world.workspace.id, world.referrer.id, clock)
    # when she opens her page
    page = client.get("/m/referral").text
    # then 2 qualified, 1 pending, and her two rewards, the reversed one marked 已撤销
    assert (_text(page, "qualified"), _text(page, "pending")) == (["2"], ["1"])
    assert _text(page, "reward-value") == ["200 积分", "200 积分"]
    assert _text(page, "reward-reversed") == ["已撤销"]
    assert _text(page, "target") == []  # a plain referral program has no target


def test_a_reward_that_failed_to_issue_shows_not_issued(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given 王芳's qualified referral whose coupon reward could not be issued (out of stock)
    world = make_world(db, clock=clock)
    referral = _referee(db, world, clock, ReferralStatus.QUALIFIED)
    db.add(
        ReferralReward(
            workspace_id=world.workspace.id,
            program_id=world.program.id,
            referral_id=referral.id,
            customer_id=world.referrer.id,
            role=RewardRole.REFERRER,
            idempotency_key=f"referral:{referral.id}:referrer",
            issued_at=clock.now(),
            failed_at=clock.now(),
            note="not issued: out of stock",
        )
    )
    db.commit()
    sign_in(client, world.workspace.id, world.referrer.id, clock)
    # when she opens her page
    page = client.get("/m/referral").text
    # then the reward is marked 未发放, not as issued or reversed
    assert (_text(page, "reward-failed"), _text(page, "reward-reversed")) == (["未发放"], [])


def test_fission_target_and_unlock_ladder(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given a task fission program (3 friends to unlock) with unlocks at 1 and 3, and 王芳 at 2
    world = make_world(
        db,
        clock=clock,
        kind="task_fission",
        condition="added_staff",
        target_count=3,
        unlocks=[
            {"threshold": 1, "name": "新手礼", "reward": {"points": 50}},
            {"threshold": 3, "name": "达人礼", "reward": {"points": 300}},
        ],
    )
    _referee(db, world, clock, ReferralStatus.QUALIFIED)
    _referee(db, world, clock, ReferralStatus.QUALIFIED)
    db.commit()
    sign_in(client, world.workspace.id, world.referrer.id, clock)
    # when she opens her page
    page = client.get("/m/referral").text
    # then she reads 已邀请 2/3 with a bar two thirds full, and the first unlock reached
    assert _text(page, "target") == ["已邀请 2/3"]
    assert 'aria-valuenow="2"' in page and "width: 66%" in page
    assert _text(page, "unlock") == ["邀请 1 人：新手礼 已达成", "邀请 3 人：达人礼"]


def test_program_text_is_escaped(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given a program whose name and poster text hold markup
    world = make_world(db, clock=clock, name="王芳")
    world.program.name = "<b>双11</b>"
    world.program.poster_text = '<script>alert("x")</script>'
    db.commit()
    sign_in(client, world.workspace.id, world.referrer.id, clock)
    # when the page is shown
    page = client.get("/m/referral").text
    # then the markup is shown as text, never run
    assert "<script>alert" not in page and "<b>双11</b>" not in page
    assert "&lt;b&gt;双11&lt;/b&gt;" in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page


def test_a_member_outside_the_programs_tiers_does_not_see_it(
    db: Session, clock: FrozenClock, client: TestClient
) -> None:
    # given a program only for a tier 王芳 does not hold (an id of no tier of hers)
    world = make_world(db, clock=clock)
    other = make_program(db, workspace=world.workspace, clock=clock, live_code=world.live_code, name="仅会员")
    db.execute(
        ReferralProgram.__table__.update().where(ReferralProgram.id == other.id).values(eligible_tier_ids=[987654])
    )
    db.commit()
    sign_in(client, world.workspace.id, world.referrer.id, clock)
    # when she opens her page
    page = client.get("/m/referral").text
    # then only the program open to everyone is listed
    assert _text(page, "program-name") == ["老带新"]
