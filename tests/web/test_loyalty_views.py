"""The loyalty console: program, tiers, points and manual adjustment, tasks, rewards, fulfilment,
and the member panel on the customer page."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.models import (
    AuditEntry,
    LoyaltyProgram,
    LoyaltyTask,
    Member,
    PointsEntry,
    Redemption,
    RedemptionStatus,
    Reward,
    Role,
    Tier,
    User,
    Workspace,
)
from tests.factories import make_staff
from tests.web.conftest import login
from tests.web.loyalty_factories import Loyal, give_points
from tests.web.loyalty_factories import count_rows as _count
from tests.web.loyalty_factories import seed_loyal as _seed

Users = Callable[..., User]


def _pages(world: Loyal) -> list[str]:
    return [
        "/loyalty/program",
        "/loyalty/tiers",
        "/loyalty/tiers/new",
        f"/loyalty/tiers/{world.gold.id}/edit",
        "/loyalty/points",
        "/loyalty/points?q=王芳",
        f"/loyalty/points/{world.customer.id}",
        "/loyalty/tasks",
        "/loyalty/tasks/new",
        "/loyalty/rewards",
        "/loyalty/rewards/new",
        f"/loyalty/rewards/{world.gift.id}/edit",
        "/loyalty/redemptions",
        "/loyalty/redemptions?status=all",
        f"/customers/{world.customer.id}/member",
    ]


def test_every_loyalty_page_renders_in_chinese_and_english(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given a workspace with tiers, a member with points and a gift awaiting shipment
    world = _seed(db, workspace, clock)
    csrf = login(client, user_with_role(Role.ADMIN).email)
    # when an admin opens each page, then each renders
    for path in _pages(world):
        assert client.get(path).status_code == 200, path
    # and the member panel shows the tier, the exact balance (500 earned - 200 redeemed) and the ledger
    panel = client.get(f"/customers/{world.customer.id}/member").text
    assert re.search(r'id="member-tier">普通<', panel)
    assert 'id="member-balance">300<' in panel
    assert "开卡礼" in panel and "+500" in panel and "-200" in panel
    assert world.coupon.code in panel and "TB1001" in panel
    # and the customer page loads that panel
    assert f'hx-get="/customers/{world.customer.id}/member"' in client.get(f"/customers/{world.customer.id}").text
    # and in English too
    client.post("/locale", data={"locale": "en", "next": "/", "csrf_token": csrf})
    for path in _pages(world):
        assert client.get(path).status_code == 200, path
    assert "Awaiting shipment" in client.get("/loyalty/redemptions").text


def test_an_operator_adjusts_points_with_a_reason_once_per_form(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given a member with 300 points
    world = _seed(db, workspace, clock)
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    page = client.get(f"/loyalty/points/{world.customer.id}").text
    key = re.search(r'name="key" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    # when they add 120 points with a reason, twice with the same form (a double click)
    form = {"points": "120", "reason": "客诉补偿", "key": key, "csrf_token": csrf}
    first = client.post(f"/loyalty/points/{world.customer.id}/adjust", data=form)
    second = client.post(f"/loyalty/points/{world.customer.id}/adjust", data=form)
    # then the balance rose once, by exactly 120, and the ledger says why and who
    assert (first.status_code, second.status_code) == (303, 303)
    db.expire_all()
    assert db.get(Member, world.member.id).points_balance == 420  # type: ignore[union-attr]
    page = client.get(f"/loyalty/points/{world.customer.id}").text
    assert 'id="balance">420<' in page
    assert "客诉补偿" in page and "+120" in page
    entry = db.scalars(select(PointsEntry).where(PointsEntry.description == "客诉补偿")).one()
    assert (entry.amount, entry.balance_after) == (120, 420)


def test_a_bad_adjustment_is_refused_by_its_field_and_writes_nothing(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given a member with 300 points
    world = _seed(db, workspace, clock)
    csrf = login(client, user_with_role(Role.ADMIN).email)
    entries = _count(db, PointsEntry)
    url = f"/loyalty/points/{world.customer.id}/adjust"
    # when the reason is missing, the number is not a number, or the deduction is larger than the balance
    no_reason = client.post(url, data={"points": "10", "reason": "", "key": "k1", "csrf_token": csrf})
    not_number = client.post(url, data={"points": "1.5", "reason": "x", "key": "k2", "csrf_token": csrf})
    too_much = client.post(url, data={"points": "-301", "reason": "扣减", "key": "k3", "csrf_token": csrf})
    # then each comes back with a message and nothing was written
    assert (no_reason.status_code, not_number.status_code, too_much.status_code) == (422, 422, 409)
    assert 'data-error="adjust"' in too_much.text and "-301" in too_much.text
    assert _count(db, PointsEntry) == entries
    assert db.get(Member, world.member.id).points_balance == 300  # type: ignore[union-attr]


def test_tiers_program_tasks_and_rewards_are_created_and_edited(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given an operator
    world = _seed(db, workspace, clock)
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    # when they save the program (points per yuan 2, spend basis), a tier at 5,000.00 yuan with a
    # 1.5× multiplier, a check-in task with streak bonuses and a reward with stock
    program = {
        "points_per_yuan": "2",
        "expiry_policy": "year_end",
        "expiry_n": "1",
        "expiring_notice_days": "30",
        "tier_basis": "spend",
        "tier_window": "rolling",
        "tier_window_days": "365",
        "review_period": "quarterly",
        "grace_days": "30",
    }
    assert client.post("/loyalty/program", data=program | {"csrf_token": csrf}).status_code == 303
    tier = {"name": "尊享", "rank": "2", "threshold": "5000.00", "points_multiplier_pct": "150", "free_shipping": "on"}
    assert client.post("/loyalty/tiers", data=tier | {"csrf_token": csrf}).status_code == 303
    task = {
        "key": "check_in",
        "kind": "check_in",
        "name": "每日签到",
        "points": "5",
        "limit_period": "day",
        "limit_count": "1",
        "streak_bonuses": "3:10, 7:50",
        "is_active": "on",
    }
    assert client.post("/loyalty/tasks", data=task | {"csrf_token": csrf}).status_code == 303
    reward = {"name": "保温杯", "kind": "gift", "points_price": "800", "stock": "25", "is_active": "on"}
    assert client.post("/loyalty/rewards", data=reward | {"csrf_token": csrf}).status_code == 303
    # then the rows hold the exact values (yuan typed, fen stored)
    db.expire_all()
    saved = db.scalars(select(LoyaltyProgram)).one()
    assert (saved.points_per_yuan, str(saved.tier_basis)) == (2, "spend")
    top = db.scalars(select(Tier).where(Tier.name == "尊享")).one()
    assert (top.rank, top.threshold, top.points_multiplier_pct, top.benefits) == (
        2,
        500_000,
        150,
        {"free_shipping": True},
    )
    check_in = db.scalars(select(LoyaltyTask)).one()
    assert (check_in.points, check_in.streak_bonuses) == (5, {"3": 10, "7": 50})
    cup = db.scalars(select(Reward).where(Reward.name == "保温杯")).one()
    assert (cup.points_price, cup.stock) == (800, 25)
    # and the lists show them
    assert "¥5,000.00" in client.get("/loyalty/tiers").text
    assert 'data-reward="保温杯"' in client.get("/loyalty/rewards").text
    assert 'data-task="check_in"' in client.get("/loyalty/tasks").text
    # when they edit the tier's threshold and the reward's stock
    edit = tier | {"threshold": "6000", "csrf_token": csrf}
    assert client.post(f"/loyalty/tiers/{top.id}/edit", data=edit).status_code == 303
    restock = reward | {"stock": "30", "csrf_token": csrf}
    assert client.post(f"/loyalty/rewards/{cup.id}/edit", data=restock).status_code == 303
    db.expire_all()
    assert (db.get(Tier, top.id).threshold, db.get(Reward, cup.id).stock) == (600_000, 30)  # type: ignore[union-attr]
    # and a refused save names its field and writes nothing
    bad = client.post("/loyalty/tiers", data=tier | {"name": "重复级别", "rank": "1", "csrf_token": csrf})
    assert bad.status_code in (409, 422) and 'data-error="rank"' in bad.text
    assert _count(db, Tier) == 3
    assert world.gold.id


def test_a_gift_is_shipped_then_delivered_and_another_cancelled(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given a gift awaiting shipment (member has 300 points left, stock 9)
    world = _seed(db, workspace, clock)
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    queue = client.get("/loyalty/redemptions").text
    assert f'data-redemption="{world.redemption.id}"' in queue and "138****8000" not in queue
    rid = world.redemption.id
    # when it ships without a tracking number, then it is refused and stays awaiting shipment
    client.post(f"/loyalty/redemptions/{rid}/ship", data={"tracking_no": "", "csrf_token": csrf})
    db.expire_all()
    assert db.get(Redemption, rid).status == RedemptionStatus.AWAITING_SHIPMENT  # type: ignore[union-attr]
    # when it ships with SF123 and is then delivered
    shipped = client.post(f"/loyalty/redemptions/{rid}/ship", data={"tracking_no": "SF123", "csrf_token": csrf})
    assert shipped.status_code == 303
    assert "SF123" in client.get("/loyalty/redemptions?status=shipped").text
    client.post(f"/loyalty/redemptions/{rid}/deliver", data={"csrf_token": csrf})
    db.expire_all()
    done = db.get(Redemption, rid)
    assert (done.status, done.tracking_no) == (RedemptionStatus.DELIVERED, "SF123")  # type: ignore[union-attr]
    # and a delivered gift can no longer be cancelled
    client.post(f"/loyalty/redemptions/{rid}/cancel", data={"reason": "x", "csrf_token": csrf})
    db.expire_all()
    assert db.get(Redemption, rid).status == RedemptionStatus.DELIVERED  # type: ignore[union-attr]


def test_cancelling_a_redemption_gives_points_and_stock_back(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given a gift awaiting shipment that cost 200 points (balance 300, stock 9)
    world = _seed(db, workspace, clock)
    csrf = login(client, user_with_role(Role.ADMIN).email)
    # when the operator cancels it with a reason
    response = client.post(
        f"/loyalty/redemptions/{world.redemption.id}/cancel", data={"reason": "缺货", "csrf_token": csrf}
    )
    # then points and stock are back exactly
    assert response.status_code == 303
    db.expire_all()
    assert db.get(Member, world.member.id).points_balance == 500  # type: ignore[union-attr]
    assert db.get(Reward, world.gift.id).stock == 10  # type: ignore[union-attr]
    assert db.get(Redemption, world.redemption.id).status == RedemptionStatus.CANCELLED  # type: ignore[union-attr]


def test_staff_read_but_cannot_adjust_fulfil_or_edit_and_nothing_changes(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given a staff member who owns no customers (loyalty:read only)
    world = _seed(db, workspace, clock)
    staff = make_staff(db, workspace=workspace, clock=clock)
    db.commit()
    csrf = login(client, user_with_role(Role.STAFF, staff_id=staff.id).email)
    audits = _count(db, AuditEntry)
    program = db.scalars(select(LoyaltyProgram)).one().points_per_yuan
    # when they read, then the pages show no write buttons and hide customers they do not own
    tiers = client.get("/loyalty/tiers")
    assert tiers.status_code == 200 and 'id="new-tier"' not in tiers.text
    assert 'id="new-reward"' not in client.get("/loyalty/rewards").text
    assert f'data-redemption="{world.redemption.id}"' not in client.get("/loyalty/redemptions").text
    assert client.get(f"/loyalty/points/{world.customer.id}").status_code == 404
    assert client.get(f"/customers/{world.customer.id}/member").status_code == 404
    for path in ("/loyalty/tiers/new", "/loyalty/rewards/new", "/loyalty/tasks/new"):
        assert client.get(path).status_code == 403, path
    # when they post anything, then it is refused and nothing changed
    posts = {
        f"/loyalty/points/{world.customer.id}/adjust": {"points": "100", "reason": "x", "key": "k"},
        "/loyalty/tiers": {"name": "偷偷", "rank": "5", "points_multiplier_pct": "100"},
        "/loyalty/program": {"points_per_yuan": "100"},
        "/loyalty/rewards": {"name": "偷偷", "kind": "gift", "points_price": "1"},
        "/loyalty/tasks": {"key": "x", "kind": "custom", "name": "x", "points": "1"},
        f"/loyalty/redemptions/{world.redemption.id}/ship": {"tracking_no": "X"},
        f"/loyalty/redemptions/{world.redemption.id}/cancel": {},
    }
    for path, data in posts.items():
        assert client.post(path, data=data | {"csrf_token": csrf}).status_code == 403, path
    db.expire_all()
    assert db.get(Member, world.member.id).points_balance == 300  # type: ignore[union-attr]
    assert db.get(Redemption, world.redemption.id).status == RedemptionStatus.AWAITING_SHIPMENT  # type: ignore[union-attr]
    assert (_count(db, Tier), _count(db, Reward), _count(db, LoyaltyTask)) == (2, 1, 0)
    assert db.scalars(select(LoyaltyProgram)).one().points_per_yuan == program == 1
    assert _count(db, AuditEntry) == audits


def test_an_analyst_sees_the_ledger_but_not_the_adjust_form(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given an analyst (loyalty:read, no loyalty:adjust)
    world = _seed(db, workspace, clock)
    login(client, user_with_role(Role.ANALYST).email)
    # when they open the member's points, then the ledger shows and the form does not
    page = client.get(f"/loyalty/points/{world.customer.id}").text
    assert 'id="balance">300<' in page and 'id="adjust-form"' not in page
    # and the redemptions queue has no ship button
    assert "ship-form" not in client.get("/loyalty/redemptions").text


def test_a_task_is_edited_and_a_bad_streak_named(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given a share task worth 5 points once a day
    _seed(db, workspace, clock)
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    task = {"key": "share", "kind": "share", "name": "分享", "points": "5", "limit_period": "day", "limit_count": "1"}
    assert client.post("/loyalty/tasks", data=task | {"csrf_token": csrf}).status_code == 303
    saved = db.scalars(select(LoyaltyTask)).one()
    # when they edit it to 8 points three times a week
    edit = task | {"points": "8", "limit_period": "week", "limit_count": "3", "is_active": "on", "csrf_token": csrf}
    assert client.post(f"/loyalty/tasks/{saved.id}/edit", data=edit).status_code == 303
    db.expire_all()
    task_row = db.get(LoyaltyTask, saved.id)
    assert (task_row.points, str(task_row.limit_period), task_row.limit_count) == (8, "week", 3)  # type: ignore[union-attr]
    # when a streak bonus is written without a colon, then the field is named and nothing changes
    bad = client.post(f"/loyalty/tasks/{saved.id}/edit", data=edit | {"streak_bonuses": "3=10"})
    assert bad.status_code == 422 and 'data-error="streak_bonuses"' in bad.text
    db.expire_all()
    assert db.get(LoyaltyTask, saved.id).streak_bonuses == {}  # type: ignore[union-attr]


def test_the_member_panel_pages_its_ledger_in_place(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given a member with 12 points entries (the welcome 500, the redemption and 10 small awards)
    world = _seed(db, workspace, clock)
    for n in range(10):
        give_points(db, member=world.member, points=n + 1, clock=clock, key=f"small:{n}")
    db.commit()
    login(client, user_with_role(Role.ADMIN).email)
    # when the panel loads, then it shows the newest 10 and a link to the rest
    panel = client.get(f"/customers/{world.customer.id}/member").text
    assert panel.count("data-entry=") == 10
    more = re.search(r'hx-get="([^"]+cursor=[^"]+)"', panel).group(1)  # type: ignore[union-attr]
    # when the link is followed, then the 2 oldest rows come back without another link
    rest = client.get(more.replace("&amp;", "&")).text
    assert rest.count("data-entry=") == 2 and "+500" in rest and "hx-get" not in rest
