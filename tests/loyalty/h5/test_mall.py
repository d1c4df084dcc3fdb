"""The rewards mall on the phone: list, detail, confirm, redeem (gift address checked), refusals
with nothing written, a double tap redeeming once, and my redemptions."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.models import Member, PointsEntry, Redemption, Reward, RewardKind
from tests.loyalty.h5.conftest import csrf_of, sign_in
from tests.loyalty.h5.factories import make_coupon_template, make_loyalty, make_member, make_reward


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def _key(html: str) -> str:
    match = re.search(r'name="idempotency_key" value="([^"]+)"', html)
    assert match
    return match.group(1)


ADDRESS = {"name": "王芳", "phone": "13800138000", "address": "浙江省杭州市西湖区文三路 100 号"}


def test_redeeming_a_gift_takes_points_and_stock_once_and_lists_it(
    db: Session, clock: FrozenClock, client: TestClient
) -> None:
    # given 王芳 with 1,000 points and a gift of 300 points with 2 in stock
    setup = make_loyalty(db, clock=clock)
    customer, member = make_member(db, workspace=setup.workspace, clock=clock, points=1_000)
    gift = make_reward(
        db, workspace=setup.workspace, clock=clock, name="保温杯", kind=RewardKind.GIFT, points_price=300, stock=2
    )
    db.commit()
    sign_in(client, setup.workspace.id, customer.id, clock)
    mall = client.get("/m/rewards")
    assert 'data-testid="reward-name">保温杯<' in mall.text and "300 积分" in _text(mall.text)
    detail = client.get(f"/m/rewards/{gift.id}")
    assert "剩余 2 件" in _text(detail.text)
    confirm = client.get(f"/m/rewards/{gift.id}/redeem")
    assert "将使用 300 积分兑换「保温杯」，兑换后剩余 700 积分。" in _text(confirm.text)
    form = {"csrf_token": csrf_of(confirm.text), "idempotency_key": _key(confirm.text)}
    # when the address lacks a valid phone: refused, naming the field, nothing written
    bad = client.post(f"/m/rewards/{gift.id}/redeem", data=form | ADDRESS | {"phone": "123"})
    assert bad.status_code == 422
    assert "请填写正确的手机号" in bad.text and 'id="phone" name="phone"' in bad.text
    assert db.scalar(select(func.count()).select_from(Redemption)) == 0
    # when the form is submitted twice (a double tap) with a good address
    first = client.post(f"/m/rewards/{gift.id}/redeem", data=form | ADDRESS)
    second = client.post(f"/m/rewards/{gift.id}/redeem", data=form | ADDRESS)
    # then one redemption: 300 points and 1 stock taken, listed as awaiting shipment
    assert first.status_code == 303 and first.headers["location"] == second.headers["location"]
    listing = client.get(first.headers["location"])
    assert "兑换成功" in listing.text
    assert re.findall(r'data-testid="redemption-status">([^<]+)<', listing.text) == ["待发货"]
    assert "138****8000" in listing.text
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(Redemption)) == 1
    assert db.get(Member, member.id).points_balance == 700  # type: ignore[union-attr]
    assert db.get(Reward, gift.id).stock == 1  # type: ignore[union-attr]
    assert 'data-testid="points-balance">700<' in client.get("/m/").text


def test_refusals_leave_nothing_written(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given a member with 100 points, a privilege of 500 points and a sold-out gift of 50
    setup = make_loyalty(db, clock=clock)
    customer, member = make_member(db, workspace=setup.workspace, clock=clock, points=100)
    dear = make_reward(
        db, workspace=setup.workspace, clock=clock, name="专属客服", kind=RewardKind.PRIVILEGE, points_price=500
    )
    gone = make_reward(
        db, workspace=setup.workspace, clock=clock, name="帆布袋", kind=RewardKind.GIFT, points_price=50, stock=0
    )
    hidden = make_reward(
        db,
        workspace=setup.workspace,
        clock=clock,
        name="尊享礼盒",
        kind=RewardKind.GIFT,
        points_price=10,
        visible_tier_ids=[setup.gold.id],
    )
    db.commit()
    sign_in(client, setup.workspace.id, customer.id, clock)
    # then the mall says why not, and the detail offers no button
    mall = _text(client.get("/m/rewards").text)
    assert "积分不足" in mall and "已兑完" in mall and "尊享礼盒" not in mall
    assert 'data-testid="cannot-redeem"' in client.get(f"/m/rewards/{dear.id}").text
    assert client.get(f"/m/rewards/{hidden.id}").status_code == 404
    # when posted anyway (an old page): refused with the reason, nothing written
    token = csrf_of(client.get("/m/check-in").text)
    poor = client.post(f"/m/rewards/{dear.id}/redeem", data={"csrf_token": token, "idempotency_key": "k1"})
    assert poor.status_code == 409 and "积分不足，暂时无法兑换" in poor.text
    empty = client.post(f"/m/rewards/{gone.id}/redeem", data={"csrf_token": token, "idempotency_key": "k2"} | ADDRESS)
    assert empty.status_code == 409 and "来晚了，礼品已兑完" in empty.text
    assert (
        client.post(f"/m/rewards/{hidden.id}/redeem", data={"csrf_token": token, "idempotency_key": "k3"}).status_code
        == 404
    )
    forged = client.post(f"/m/rewards/{dear.id}/redeem", data={"csrf_token": "x", "idempotency_key": "k4"})
    assert forged.status_code == 403
    assert client.get("/m/rewards/abc").status_code == 404
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(Redemption)) == 0
    assert db.scalar(select(func.count()).select_from(PointsEntry).where(PointsEntry.member_id == member.id)) == 1
    assert db.get(Member, member.id).points_balance == 100  # type: ignore[union-attr]


def test_a_coupon_reward_shows_its_code_in_redemptions_and_coupons(
    db: Session, clock: FrozenClock, client: TestClient
) -> None:
    setup = make_loyalty(db, clock=clock)
    customer, _member = make_member(db, workspace=setup.workspace, clock=clock, points=500)
    template = make_coupon_template(
        db, workspace_id=setup.workspace.id, clock=clock, name="满200减30", value=3_000, threshold_fen=20_000
    )
    reward = make_reward(
        db,
        workspace=setup.workspace,
        clock=clock,
        name="30元券",
        kind=RewardKind.COUPON,
        points_price=200,
        coupon_template_id=template.id,
    )
    db.commit()
    sign_in(client, setup.workspace.id, customer.id, clock)
    confirm = client.get(f"/m/rewards/{reward.id}/redeem")
    assert 'name="address"' not in confirm.text
    done = client.post(
        f"/m/rewards/{reward.id}/redeem",
        data={"csrf_token": csrf_of(confirm.text), "idempotency_key": _key(confirm.text)},
    )
    assert done.status_code == 303
    listing = client.get(done.headers["location"])
    code = re.search(r'data-testid="redemption-coupon">([A-Z0-9]+)<', listing.text)
    assert code is not None
    assert re.findall(r'data-testid="redemption-status">([^<]+)<', listing.text) == ["兑换完成"]
    coupons = client.get("/m/coupons")
    assert re.findall(r'data-testid="coupon-code">([A-Z0-9]+)<', coupons.text) == [code.group(1)]
    assert "¥30" in _text(coupons.text) and "满 ¥200 可用" in _text(coupons.text)
