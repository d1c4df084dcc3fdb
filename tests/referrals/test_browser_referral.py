"""The issue's acceptance test, in headless Chromium on two phones against a real server: member 王芳
opens her signed link, sees her invitation poster and says she shared it; her friend (another phone)
opens her `/r/{code}` link, lands on the live code's page and adds the staff member; the friend's
first order is ingested through the API and 王芳's referral page shows the 200-point reward and her
balance up by exactly 200; the order is fully refunded through the API and her page shows the reward
撤销 and her balance back. Runs once per backend (SQLite file, and PostgreSQL when configured)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.db import make_engine
from siyu.kit.clock import system_clock
from siyu.loyalty.h5.links import member_link_token
from siyu.migrate import upgrade
from siyu.models import Referral, ReferralStatus
from siyu.referrals import programs
from siyu.referrals.schemas import ProgramIn
from tests.browser import (
    BROWSER_MARKS,
    PHONE,
    chromium_browser,  # noqa: F401 - pytest takes the shared `browser` fixture from this namespace
    new_context,
)
from tests.conftest import BACKENDS
from tests.factories import make_live_code, make_staff, make_token
from tests.loyalty.h5.factories import make_loyalty, make_member
from tests.web.console_server import seeded_console

SECRET = "browser-secret"  # what tests.web.console_server signs with
TIMEOUT_MS = 30_000
PUBLIC_URL = "http://127.0.0.1:8000"  # the server's configured public address (Settings default)
REFERRER_PHONE_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 MicroMessenger/8.0.40"
FRIEND_PHONE_UA = "Mozilla/5.0 (Linux; Android 14; Pixel 8) Mobile Safari/537.36 MicroMessenger/8.0.42"

pytestmark = BROWSER_MARKS


@dataclass
class Seeded:
    base_url: str
    database_url: str
    link: str
    token: str
    live_code_slug: str
    program_id: int
    referrer_id: int


@dataclass
class _Seed:
    database_url: str
    link: str
    token: str
    live_code_slug: str
    program_id: int
    referrer_id: int


def _seed(url: str) -> _Seed:
    """花间集: a staff live code, a running 老带新 program (first order → 200 points to the referrer),
    王芳 with 1,250 points, and an API token for orders."""
    engine = make_engine(url)
    upgrade(engine)
    with Session(engine, expire_on_commit=False) as db:
        setup = make_loyalty(db, clock=system_clock)
        ws = setup.workspace
        staff = make_staff(db, workspace=ws, clock=system_clock, name="小李")
        live_code = make_live_code(db, workspace=ws, clock=system_clock, routes=[{"staff_id": staff.id}])
        actor = Actor.system(ws.id)
        data = ProgramIn.model_validate(
            {
                "name": "老带新 · 首单有礼",
                "condition": "first_order",
                "live_code_id": live_code.id,
                "referrer_reward": {"points": 200},
                "poster_title": "邀请好友，首单得 200 积分",
                "poster_text": "好友扫码添加导购，首单后你得 200 积分",
            }
        )
        program = programs.create_program(db, actor=actor, data=data, clock=system_clock)
        programs.set_status(db, actor=actor, program_id=program.id, status="active", clock=system_clock)
        customer, _member = make_member(db, workspace=ws, clock=system_clock, points=1_250, phone="13800138000")
        token = make_token(db, clock=system_clock, workspace=ws, scopes=["commerce:read", "commerce:write"])
        db.commit()
        seeded = _Seed(url, "", token, live_code.slug, program.id, customer.id)
        ws_id = ws.id
    engine.dispose()
    fresh = member_link_token(workspace_id=ws_id, customer_id=seeded.referrer_id, secret=SECRET, clock=system_clock)
    seeded.link = f"/m/enter?t={fresh}"
    return seeded


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    folder = tmp_path_factory.mktemp("browser-referral")
    with seeded_console(request.param, folder, _seed) as (base_url, s):
        yield Seeded(base_url, s.database_url, s.link, s.token, s.live_code_slug, s.program_id, s.referrer_id)


@pytest.fixture(scope="module", autouse=True)
def _expect_timeout() -> None:
    """This module's assertions wait up to TIMEOUT_MS (the poster is drawn on the server)."""
    expect.set_options(timeout=TIMEOUT_MS)


def _phone(browser: Browser, server: Seeded, user_agent: str, errors: list[str]) -> BrowserContext:
    """A phone-sized touch browser in Chinese; every 5xx it receives is noted in `errors`."""
    return new_context(
        browser,
        server.base_url,
        server_errors=errors,
        viewport=PHONE,
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        user_agent=user_agent,
    )


@pytest.fixture
def phones(browser: Browser, server: Seeded) -> Iterator[tuple[BrowserContext, BrowserContext, list[str]]]:
    """王芳's phone and her friend's (another device: another user agent), and every 5xx."""
    errors: list[str] = []
    referrer = _phone(browser, server, REFERRER_PHONE_UA, errors)
    friend = _phone(browser, server, FRIEND_PHONE_UA, errors)
    yield referrer, friend, errors
    friend.close()
    referrer.close()


def _api(browser: Browser, server: Seeded) -> BrowserContext:
    """A client of the API with the orders token (no cookies of either phone)."""
    context = browser.new_context(
        base_url=server.base_url, extra_http_headers={"authorization": f"Bearer {server.token}"}
    )
    context.set_default_timeout(TIMEOUT_MS)
    return context


def _referral_of_friend(server: Seeded) -> Referral:
    engine = make_engine(server.database_url)
    try:
        with Session(engine, expire_on_commit=False) as db:
            return db.scalars(select(Referral).where(Referral.referrer_customer_id == server.referrer_id)).one()
    finally:
        engine.dispose()


def _program_card(page: Page, server: Seeded) -> Locator:
    return page.locator(f'[data-testid="program"][data-program-id="{server.program_id}"]')


def test_friend_added_through_the_poster_link_earns_then_loses_the_reward_on_refund(
    phones: tuple[BrowserContext, BrowserContext, list[str]], server: Seeded, browser: Browser
) -> None:
    referrer_phone, friend_phone, server_errors = phones
    page = referrer_phone.new_page()
    # given 王芳 opens her member center through the link the brand sent her
    page.goto(server.link)
    page.wait_for_url(f"{server.base_url}/m/")
    # when she goes to 邀请好友
    page.get_by_role("link", name="邀请好友").tap()
    page.wait_for_url(f"{server.base_url}/m/referral")
    card = _program_card(page, server)
    # then she sees the program, her code and link, her poster, and no reward yet
    expect(card.get_by_test_id("program-name")).to_have_text("老带新 · 首单有礼")
    code = card.get_by_test_id("referral-code").inner_text().strip()
    assert len(code) == 8 and set(code) <= set("23456789ABCDEFGHJKMNPQRSTUVWXYZ")
    expect(card.get_by_test_id("referral-link")).to_have_text(f"{PUBLIC_URL}/r/{code}")
    poster = card.get_by_test_id("poster")
    poster.scroll_into_view_if_needed()
    page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=poster.element_handle(), timeout=TIMEOUT_MS)
    assert poster.evaluate("el => [el.naturalWidth, el.naturalHeight]") == [750, 1334]
    expect(page.get_by_test_id("points-balance")).to_have_text("1,250")
    expect(card.get_by_test_id("qualified")).to_have_text("0")
    expect(card.get_by_test_id("no-rewards")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing overflows the phone

    # when she taps 我已分享
    card.get_by_test_id("shared").tap()
    # then the share is confirmed
    page.wait_for_url(f"{server.base_url}/m/referral?shared={server.program_id}")
    expect(_program_card(page, server).get_by_test_id("shared-done")).to_have_text("已记录分享，快去邀请好友吧")

    # when her friend, on another phone, opens her link
    friend = friend_phone.new_page()
    friend.goto(f"/r/{code}")
    # then the friend lands on the live code's page (sent on from /r/{code})
    friend.wait_for_url(f"{server.base_url}/q/{server.live_code_slug}")
    expect(friend.get_by_role("button", name="模拟添加好友")).to_be_visible()
    # when the friend adds the staff member
    friend.fill("#name", "李雷")
    friend.get_by_role("button", name="模拟添加好友").tap()
    expect(friend.get_by_test_id("added-title")).to_have_text("添加成功")
    # then the friend is attributed to 王芳, waiting for a first order
    referral = _referral_of_friend(server)
    assert (referral.status, referral.program_id) == (ReferralStatus.PENDING, server.program_id)
    page.reload()
    card = _program_card(page, server)
    expect(card.get_by_test_id("pending")).to_have_text("1")
    expect(card.get_by_test_id("qualified")).to_have_text("0")

    # when the friend's first order is ingested through the API
    paid_at = system_clock.now().isoformat()  # after the add; the refund (server time) comes after it
    order = {
        "platform": "jd",
        "external_id": "JD-REF-1",
        "customer_id": referral.referee_customer_id,
        "total_fen": 19_900,
        "paid_at": paid_at,
        "items": [{"sku": "SKU-1", "name": "洗面奶", "quantity": 1, "amount_fen": 19_900}],
    }
    with _api(browser, server) as api:
        created = api.request.post("/api/v1/orders", data=order, timeout=TIMEOUT_MS)
        assert created.status == 201, created.text()
        order_id = created.json()["order"]["id"]
        # then 王芳's page shows the referral qualified, the 200-point reward, and 1,250 + 200 points
        page.reload()
        card = _program_card(page, server)
        expect(card.get_by_test_id("qualified")).to_have_text("1")
        expect(card.get_by_test_id("pending")).to_have_text("0")
        expect(card.get_by_test_id("reward")).to_have_count(1)
        expect(card.get_by_test_id("reward-value")).to_have_text("200 积分")
        expect(card.get_by_test_id("reward-reversed")).to_have_count(0)
        expect(page.get_by_test_id("points-balance")).to_have_text("1,450")

        # when the whole order is refunded through the API
        refund = {"external_id": "JD-REF-1-R1"}
        refunded = api.request.post(f"/api/v1/orders/{order_id}/refunds", data=refund, timeout=TIMEOUT_MS)
        assert refunded.status == 201, refunded.text()

    # then her reward shows 已撤销, the referral no longer counts, and her balance is back to 1,250
    page.reload()
    card = _program_card(page, server)
    expect(card.get_by_test_id("reward-reversed")).to_have_text("已撤销")
    expect(card.get_by_test_id("reward-value")).to_have_text("200 积分")
    expect(card.get_by_test_id("qualified")).to_have_text("0")
    expect(page.get_by_test_id("points-balance")).to_have_text("1,250")
    assert _referral_of_friend(server).status == ReferralStatus.REVERSED
    assert server_errors == []
