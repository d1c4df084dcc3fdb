"""The member H5 center on a phone in headless Chromium (390×844, touch, zh-CN): a signed link
opens 王芳's center with her exact tier and balance; she checks in (+5), redeems a gift with her
address (−300, listed awaiting shipment) and sees her coupon's code; an expired link gets a
friendly page. Runs once per backend (SQLite file, and PostgreSQL when configured)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy.orm import Session

from siyu.db import make_engine
from siyu.kit.clock import FrozenClock, system_clock
from siyu.loyalty.h5.links import member_link_token
from siyu.migrate import upgrade
from siyu.models import RewardKind
from tests.browser import (
    BROWSER_MARKS,
    PHONE,
    chromium_browser,  # noqa: F401 - pytest takes the shared `browser` fixture from this namespace
    watched_page,
)
from tests.conftest import BACKENDS
from tests.factories import make_order
from tests.loyalty.h5.factories import make_coupon, make_loyalty, make_member, make_reward
from tests.web.console_server import seeded_console

SECRET = "browser-secret"  # what tests.web.console_server signs with
COUPON = "K7M2XQ9PTA"

pytestmark = BROWSER_MARKS


@dataclass
class Seeded:
    base_url: str
    link: str
    expired_link: str


def _seed(url: str) -> tuple[str, str]:
    """花间集's tiers and daily check-in (5 points), 王芳 with 1,250 points and ¥399 spent, a gift
    of 300 points, and one unused coupon; returns a fresh link and one signed 31 days ago."""
    engine = make_engine(url)
    upgrade(engine)
    with Session(engine, expire_on_commit=False) as db:
        setup = make_loyalty(db, clock=system_clock)
        customer, _member = make_member(db, workspace=setup.workspace, clock=system_clock, points=1_250)
        make_order(db, customer=customer, paid_at=system_clock.now() - timedelta(days=3), total_fen=39_900)
        make_reward(
            db,
            workspace=setup.workspace,
            clock=system_clock,
            name="保温杯",
            kind=RewardKind.GIFT,
            points_price=300,
            stock=5,
            description="316 不锈钢，500ml",
        )
        make_coupon(db, customer=customer, clock=system_clock, code=COUPON)
        db.commit()
        ws_id, customer_id = setup.workspace.id, customer.id
    engine.dispose()
    fresh = member_link_token(workspace_id=ws_id, customer_id=customer_id, secret=SECRET, clock=system_clock)
    old_clock = FrozenClock(system_clock.now() - timedelta(days=31))
    old = member_link_token(workspace_id=ws_id, customer_id=customer_id, secret=SECRET, clock=old_clock)
    return f"/m/enter?t={fresh}", f"/m/enter?t={old}"


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    folder = tmp_path_factory.mktemp("browser-h5")
    with seeded_console(request.param, folder, _seed) as (base_url, (link, expired)):
        yield Seeded(base_url, link, expired)


@pytest.fixture
def phone(browser: Browser, server: Seeded) -> Iterator[tuple[Page, list[str]]]:
    """A phone-sized touch browser in Chinese, and every 5xx any page received."""
    with watched_page(
        browser, server.base_url, viewport=PHONE, device_scale_factor=3, is_mobile=True, has_touch=True
    ) as watched:
        yield watched.page, watched.server_errors


def test_member_checks_in_redeems_and_sees_coupons_on_a_phone(phone: tuple[Page, list[str]], server: Seeded) -> None:
    page, server_errors = phone
    # given 王芳 opens the link the brand sent her
    page.goto(server.link)
    page.wait_for_url(f"{server.base_url}/m/")
    # then she sees her tier, her progress and her balance exactly
    expect(page.locator("h1")).to_have_text("会员中心")
    expect(page.get_by_test_id("tier-name")).to_have_text("普通会员")
    expect(page.get_by_test_id("tier-next")).to_have_text("再累计 ¥601 升级为 高级会员")
    expect(page.get_by_test_id("points-balance")).to_have_text("1,250")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing overflows the phone

    # when she checks in
    page.get_by_role("link", name="去签到").tap()
    page.get_by_test_id("check-in").tap()
    # then the check-in is confirmed and her balance rose by exactly 5
    expect(page.get_by_test_id("checked-in")).to_have_text("签到成功，今日获得 5 积分")
    expect(page.get_by_test_id("streak")).to_have_text("1 天")
    expect(page.get_by_test_id("points-balance")).to_have_text("1,255")

    # when she redeems the gift, confirming with her address
    page.get_by_role("navigation", name="会员中心导航").get_by_role("link", name="积分商城").tap()
    page.get_by_test_id("reward").filter(has_text="保温杯").tap()
    expect(page.get_by_test_id("reward-price")).to_have_text("300 积分")
    page.get_by_test_id("redeem").tap()
    expect(page.get_by_test_id("confirm-text")).to_have_text("将使用 300 积分兑换「保温杯」，兑换后剩余 955 积分。")
    page.fill("#name", "王芳")
    page.fill("#phone", "13800138000")
    page.fill("#address", "浙江省杭州市西湖区文三路 100 号")
    page.get_by_test_id("confirm-redeem").tap()
    # then the redemption is listed, awaiting shipment, and her balance fell by exactly 300
    page.wait_for_url(f"{server.base_url}/m/redemptions?new=*")
    expect(page.get_by_test_id("redeemed")).to_have_text("兑换成功")
    expect(page.get_by_test_id("redemption-name")).to_have_text(["保温杯"])
    expect(page.get_by_test_id("redemption-status")).to_have_text(["待发货"])
    page.get_by_role("link", name="首页").tap()
    expect(page.get_by_test_id("points-balance")).to_have_text("955")

    # when she opens her coupons, the code is shown big
    page.get_by_role("navigation", name="会员中心导航").get_by_role("link", name="我的优惠券").tap()
    expect(page.get_by_test_id("coupon-code")).to_have_text([COUPON])
    expect(page.get_by_test_id("tab-unused")).to_have_text("未使用 (1)")
    assert server_errors == []


def test_an_expired_link_shows_a_friendly_page(phone: tuple[Page, list[str]], server: Seeded) -> None:
    page, server_errors = phone
    response = page.goto(server.expired_link)
    assert response is not None and response.status == 410
    expect(page).to_have_title("链接已过期")
    expect(page.get_by_test_id("message-title")).to_have_text("链接已过期")
    # and no session was opened
    page.goto("/m/")
    expect(page.get_by_test_id("message-title")).to_have_text("请从链接进入")
    assert server_errors == []
