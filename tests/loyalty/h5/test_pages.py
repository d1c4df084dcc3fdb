"""The member's pages with exact values: home (tier, progress, balance, expiring), points history,
check-in, tasks, coupons; forms need the session's CSRF token; every page has a title and one h1."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.models import CouponState, LimitPeriod, PointsEntry, TaskCompletion, TaskKind
from tests.factories import make_order
from tests.loyalty.h5.conftest import csrf_of, sign_in
from tests.loyalty.h5.factories import earn_points, make_coupon, make_loyalty, make_member, make_task


def _text(html: str) -> str:
    """The page's text with tags and runs of whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def test_home_shows_tier_progress_balance_and_expiring_points(
    db: Session, clock: FrozenClock, client: TestClient
) -> None:
    # given 王芳 in 普通会员 who spent ¥399.00 in the window, with 1,250 points of which 200
    # expire at the end of this month (brand time: the last valid day is 2026-11-30)
    setup = make_loyalty(db, clock=clock)
    customer, member = make_member(db, workspace=setup.workspace, clock=clock, points=1_050)
    make_order(db, customer=customer, paid_at=clock.now() - timedelta(days=10), total_fen=39_900)
    end_of_month = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)  # 2026-12-01 00:00 Asia/Shanghai
    earn_points(db, member=member, points=200, clock=clock, key="t:exp", expires_at=end_of_month)
    db.commit()
    sign_in(client, setup.workspace.id, customer.id, clock)
    # when the home page opens
    page = client.get("/m/")
    text = _text(page.text)
    # then the tier, the progress to 高级会员 (¥1,000.00), balance and expiring points are exact
    assert page.status_code == 200
    assert 'data-testid="tier-name">普通会员<' in page.text
    assert "近365天累计 ¥399" in text
    assert "再累计 ¥601 升级为 高级会员" in text
    assert 'style="width: 39%"' in page.text
    assert 'data-testid="points-balance">1,250<' in page.text
    assert "200 积分将于 2026-11-30 到期" in text
    assert "今天还没有签到" in text


def test_points_history_lists_reasons_newest_first_in_pages_of_20(
    db: Session, clock: FrozenClock, client: TestClient
) -> None:
    # given a member with 25 entries
    setup = make_loyalty(db, clock=clock)
    customer, member = make_member(db, workspace=setup.workspace, clock=clock, points=100)
    for n in range(24):
        clock.advance(timedelta(minutes=1))
        earn_points(db, member=member, points=n + 1, clock=clock, key=f"t:{n}", description=f"订单 TB{n} 消费得积分")
    db.commit()
    sign_in(client, setup.workspace.id, customer.id, clock)
    # when the history is read page by page
    first = client.get("/m/points")
    amounts = re.findall(r'data-testid="points-amount">\s*([^<]+?)\s*<', first.text)
    more = re.search(r'href="(/m/points\?cursor=[^"]+)"', first.text)
    assert more is not None
    second = client.get(more.group(1).replace("&amp;", "&"))
    # then the first page has the 20 newest, each with its reason, the second the 5 oldest
    assert amounts[:3] == ["+24", "+23", "+22"] and len(amounts) == 20
    assert "订单 TB23 消费得积分" in first.text and "消费" in first.text
    rest = re.findall(r'data-testid="points-amount">\s*([^<]+?)\s*<', second.text)
    assert rest == ["+4", "+3", "+2", "+1", "+100"]
    assert "开卡礼" in second.text and 'data-testid="more"' not in second.text
    assert client.get("/m/points?cursor=!!bad").status_code == 422


def test_check_in_earns_the_task_points_once_a_day(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given a member with 100 points, a check-in of 5 points
    setup = make_loyalty(db, clock=clock)
    customer, member = make_member(db, workspace=setup.workspace, clock=clock, points=100)
    db.commit()
    sign_in(client, setup.workspace.id, customer.id, clock)
    page = client.get("/m/check-in")
    assert "签到领 5 积分" in _text(page.text)
    # when the form is posted without the CSRF token, then with it, twice
    refused = client.post("/m/check-in", data={"csrf_token": "forged"})
    assert refused.status_code == 403 and "页面已过期" in refused.text
    assert db.scalar(select(func.count()).select_from(TaskCompletion)) == 0
    token = csrf_of(page.text)
    done = client.post("/m/check-in", data={"csrf_token": token})
    again = client.post("/m/check-in", data={"csrf_token": token})
    # then one check-in, +5 points, a 1-day streak
    assert done.status_code == 303 and done.headers["location"] == "/m/check-in?done=1"
    assert again.status_code == 303 and again.headers["location"] == "/m/check-in"
    after = client.get("/m/check-in?done=1")
    text = _text(after.text)
    assert "签到成功，今日获得 5 积分" in text
    assert 'data-testid="streak">1 天<' in after.text
    assert 'data-testid="points-balance">105<' in after.text
    assert 'class="day done today"' in after.text
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(TaskCompletion)) == 1
    assert db.scalar(select(func.sum(PointsEntry.amount)).where(PointsEntry.member_id == member.id)) == 105


def test_tasks_show_their_status_and_a_profile_task_is_claimed_when_the_profile_is_complete(
    db: Session, clock: FrozenClock, client: TestClient
) -> None:
    # given a profile task needing the city, and a weekly post task
    setup = make_loyalty(db, clock=clock)
    make_task(
        db,
        workspace=setup.workspace,
        clock=clock,
        key="profile",
        kind=TaskKind.PROFILE,
        points=30,
        name="完善资料",
        limit_period=LimitPeriod.LIFETIME,
        settings={"required_fields": ["city"]},
    )
    make_task(
        db,
        workspace=setup.workspace,
        clock=clock,
        key="post",
        kind=TaskKind.POST,
        points=20,
        name="晒单",
        limit_period=LimitPeriod.WEEK,
        limit_count=2,
    )
    customer, member = make_member(db, workspace=setup.workspace, clock=clock, points=0)
    db.commit()
    sign_in(client, setup.workspace.id, customer.id, clock)
    page = client.get("/m/tasks")
    text = _text(page.text)
    assert "每日签到" in text and "完善资料" in text and "晒单" in text
    assert "本周 0/2" in text and "累计 0/1" in text
    token = csrf_of(page.text)
    # when the profile task is claimed without a city: refused, nothing written
    refused = client.post("/m/tasks/profile/complete", data={"csrf_token": token})
    assert refused.status_code == 409 and "请先完善个人资料" in refused.text
    assert db.scalar(select(func.count()).select_from(TaskCompletion)) == 0
    # and a task that is not the member's to claim is a 404 page
    assert client.post("/m/tasks/post/complete", data={"csrf_token": token}).status_code == 404
    # when the city is filled, the claim pays 30 points once
    customer.city = "杭州"
    db.commit()
    assert client.post("/m/tasks/profile/complete", data={"csrf_token": token}).status_code == 303
    twice = client.post("/m/tasks/profile/complete", data={"csrf_token": token})
    assert twice.status_code == 409 and "这个任务已经完成过了" in twice.text
    assert "累计 1/1" in _text(client.get("/m/tasks").text)
    db.expire_all()
    assert db.scalar(select(func.sum(PointsEntry.amount)).where(PointsEntry.member_id == member.id)) == 30


def test_coupons_are_grouped_unused_used_expired_with_the_code_big(
    db: Session, clock: FrozenClock, client: TestClient
) -> None:
    setup = make_loyalty(db, clock=clock)
    customer, _member = make_member(db, workspace=setup.workspace, clock=clock)
    make_coupon(db, customer=customer, clock=clock, code="K7M2XQ9PTA", expires_in=timedelta(days=10))
    make_coupon(db, customer=customer, clock=clock, code="B4N8WR3ZHE", state=CouponState.REDEEMED)
    make_coupon(db, customer=customer, clock=clock, code="C5P9YT6LMU", state=CouponState.EXPIRED)
    make_coupon(db, customer=customer, clock=clock, code="D6Q2VS7KNF", expires_in=timedelta(days=-1))  # past due
    later = make_coupon(db, customer=customer, clock=clock, code="E7R3UT8MPG", expires_in=timedelta(days=40))
    later.valid_from = clock.now() + timedelta(days=5)  # a member-day coupon usable from 11-28
    db.commit()
    sign_in(client, setup.workspace.id, customer.id, clock)
    unused = client.get("/m/coupons")
    assert re.findall(r'data-testid="coupon-code">([A-Z0-9]+)<', unused.text) == ["K7M2XQ9PTA", "E7R3UT8MPG"]
    text = _text(unused.text)
    assert "2026-11-28 起可用" in text
    assert "未使用 (2)" in text and "已使用 (1)" in text and "已过期 (2)" in text
    assert "¥20" in text and "满 ¥100 可用" in text and "有效期至 2026-12-03" in text
    expired = client.get("/m/coupons?tab=expired")
    assert 'data-testid="coupon-code"' not in expired.text
    assert expired.text.count('data-testid="coupon"') == 2
    assert 'data-testid="unused-coupons">2<' in client.get("/m/").text


def test_every_page_has_a_title_and_one_h1(db: Session, clock: FrozenClock, client: TestClient) -> None:
    setup = make_loyalty(db, clock=clock)
    customer, _member = make_member(db, workspace=setup.workspace, clock=clock, points=10)
    db.commit()
    sign_in(client, setup.workspace.id, customer.id, clock)
    for path in (
        "/m/",
        "/m/points",
        "/m/check-in",
        "/m/tasks",
        "/m/rewards",
        "/m/redemptions",
        "/m/coupons",
        "/m/coupons?tab=used",
        "/m/rewards/999999",
        "/m/enter?t=bad",
    ):
        page = client.get(path)
        assert re.search(r"<title>[^<]+</title>", page.text), path
        assert page.text.count("<h1") == 1, path
        assert 'lang="zh-CN"' in page.text, path


def test_a_customer_without_a_member_row_sees_the_base_tier_and_nothing_is_created(
    db: Session, clock: FrozenClock, client: TestClient
) -> None:
    from siyu.models import LoyaltyProgram, Member
    from tests.factories import actor_for, make_customer

    setup = make_loyalty(db, clock=clock)
    customer = make_customer(db, actor=actor_for(setup.workspace), clock=clock, name="新客").customer
    db.commit()
    sign_in(client, setup.workspace.id, customer.id, clock)
    home = client.get("/m/")
    assert 'data-testid="tier-name">普通会员<' in home.text
    assert "再累计 ¥1,000 升级为 高级会员" in _text(home.text)
    assert 'data-testid="points-balance">0<' in home.text
    for path in ("/m/points", "/m/check-in", "/m/tasks", "/m/rewards", "/m/redemptions", "/m/coupons"):
        assert client.get(path).status_code == 200, path
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(Member).where(Member.customer_id == customer.id)) == 0
    assert db.scalar(select(func.count()).select_from(LoyaltyProgram)) == 0
