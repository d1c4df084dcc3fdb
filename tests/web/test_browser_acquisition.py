"""Issue 3 end to end in headless Chromium: an operator builds a live code in the console, a phone
scans it and completes the simulated add, and the console shows the scan, the add, the tag and the
attributed friend edge. Runs once per backend (SQLite file, and PostgreSQL when configured)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy.orm import Session

from siyu.db import make_engine
from siyu.kit.clock import system_clock
from siyu.livecodes.state import MAX_STATE_LENGTH, encode_state
from siyu.migrate import upgrade
from siyu.models import Role, TagGroup
from tests.browser import (
    BROWSER_MARKS,
    PHONE,
    chromium_browser,  # noqa: F401 - pytest takes the shared `browser` fixture from this namespace
    log_in,
    watched_page,
)
from tests.conftest import BACKENDS
from tests.factories import make_channel, make_staff, make_tag, make_user, make_workspace
from tests.web.console_server import seeded_console

PASSWORD = "correct-horse-1"
EMAIL = "operator@huajian.example"
CHANNEL = "双11包裹卡"
TAG_LABEL = "来源 / 包裹卡客户"
WECHAT_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 MicroMessenger/8.0.50(0x1800323d) NetType/WIFI Language/zh_CN"
)

pytestmark = BROWSER_MARKS


@dataclass
class Seeded:
    base_url: str
    channel_id: int


def _seed(url: str) -> int:
    """An operator, two staff members, a channel with a hook and a tag; returns the channel id."""
    engine = make_engine(url)
    upgrade(engine)
    with Session(engine, expire_on_commit=False) as db:
        ws = make_workspace(db, clock=system_clock, name="花间集")
        make_user(db, clock=system_clock, workspace=ws, role=Role.OPERATOR, email=EMAIL, password=PASSWORD)
        make_staff(db, workspace=ws, clock=system_clock, name="小林")
        make_staff(db, workspace=ws, clock=system_clock, name="小美")
        channel = make_channel(db, workspace=ws, clock=system_clock, name=CHANNEL, hook="免费小样")
        group = TagGroup(workspace_id=ws.id, name="来源")
        db.add(group)
        db.flush()
        make_tag(db, workspace=ws, name="包裹卡客户", group=group)
        db.commit()
        channel_id = channel.id
    engine.dispose()
    return channel_id


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    folder = tmp_path_factory.mktemp("browser-acquisition")
    with seeded_console(request.param, folder, _seed) as (base_url, channel_id):
        yield Seeded(base_url, channel_id)


@pytest.fixture
def server_errors() -> list[str]:
    """Every 5xx any page of the test received; the test asserts it stays empty."""
    return []


@pytest.fixture
def operator(browser: Browser, server: Seeded, server_errors: list[str]) -> Iterator[Page]:
    """The operator's desktop browser, signed in to the console."""
    with watched_page(browser, server.base_url, server_errors=server_errors) as watched:
        log_in(watched.page, server.base_url, EMAIL, PASSWORD)
        yield watched.page


@pytest.fixture
def phone(browser: Browser, server: Seeded, server_errors: list[str]) -> Iterator[Page]:
    """A customer's phone: iPhone-sized, touch, WeChat's in-app browser, no console session."""
    with watched_page(
        browser,
        server.base_url,
        server_errors=server_errors,
        viewport=PHONE,
        device_scale_factor=3,
        is_mobile=True,
        has_touch=True,
        user_agent=WECHAT_UA,
    ) as watched:
        yield watched.page


def test_live_code_from_editor_to_attributed_add(
    operator: Page, phone: Page, server: Seeded, server_errors: list[str], tmp_path: Path
) -> None:
    # given the operator opens the live code editor from the list
    operator.goto("/live-codes")
    operator.click("a[href='/live-codes/new?kind=staff']")
    operator.wait_for_url(re.compile(r"/live-codes/new\?kind=staff$"))
    # when they name the code, pick the channel, route to 小林, tick the tag and type a welcome
    operator.fill("#name", "包裹卡活码")
    operator.select_option("#channel_id", label=CHANNEL)
    operator.select_option("select[name='route-0-target']", label="小林")
    expect(operator.locator("input[name='route-0-active']")).to_be_checked()
    operator.get_by_label(TAG_LABEL).check()
    operator.locator("#welcome-text").press_sequentially("{{ name }}您好，我是{{ staff_name }}")
    # then the live preview renders it for the sample customer 王小姐 and staff 小林
    expect(operator.locator("#welcome-preview [data-testid=welcome-preview]")).to_have_text("王小姐您好，我是小林")
    # when they save
    operator.click("#live-code-form button[type=submit]")
    operator.wait_for_url(re.compile(r"/live-codes/\d+$"))
    # then the detail page shows the code, its public URL, the route and no scans yet
    code_id = int(operator.url.rsplit("/", 1)[1])
    expect(operator.get_by_role("alert")).to_have_text("活码已保存")
    expect(operator.locator("h2.page-title")).to_have_text("包裹卡活码")
    public_url = operator.locator("[data-testid=public-url]")
    expect(public_url).to_have_text(re.compile(rf"^{re.escape(server.base_url)}/q/[A-Za-z0-9]{{4,16}}$"))
    expect(operator.locator("#routes tbody tr")).to_have_count(1)
    expect(operator.locator("#routes tbody tr td").first).to_have_text("小林")
    expect(operator.locator("[data-figure=scans]")).to_have_text("0")
    url = public_url.inner_text()

    # when a phone in WeChat scans the printed code
    landing = phone.goto(url)
    # then it sees 小林 and the channel's hook, with the state that attributes the add
    assert landing is not None and landing.status == 200
    state = encode_state(code_id, server.channel_id)
    assert len(state) <= MAX_STATE_LENGTH
    expect(phone.locator("[data-testid=staff-name]")).to_have_text("小林")
    expect(phone.locator("[data-testid=hook]")).to_have_text("免费小样")
    expect(phone.locator("[data-testid=state]")).to_have_text(state)
    phone.screenshot(path=str(tmp_path / "landing.png"), full_page=True)
    # when the customer completes the simulated add
    phone.fill("#name", "陈女士")
    assert phone.locator("#phone").count() == 0  # typed phones never become identities
    phone.click("form[action$='/add'] button[type=submit]")
    # then they are told it worked and receive the personal welcome from 小林
    expect(phone.locator("[data-testid=added-title]")).to_have_text("添加成功")
    expect(phone.locator("[data-testid=welcome]")).to_have_text("陈女士您好，我是小林")
    phone.screenshot(path=str(tmp_path / "added.png"), full_page=True)

    # when the operator reloads the detail page
    operator.reload()
    # then the scan and the add are counted and the scan log links to the new customer
    expect(operator.locator("[data-figure=scans]")).to_have_text("1")
    expect(operator.locator("[data-figure=visitors]")).to_have_text("1")
    expect(operator.locator("[data-figure=adds]")).to_have_text("1")
    expect(operator.locator("[data-figure=add-rate]")).to_have_text("100.0%")
    expect(operator.locator("#routes tbody tr td[data-taken]")).to_have_text("1 / ∞")
    rows = operator.locator("#scan-log tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.locator("td").nth(1)).to_have_text("已分配")
    expect(rows.locator("td").nth(2)).to_have_text("小林")
    expect(rows.locator("td").nth(5)).to_have_text(re.compile("MicroMessenger"))
    rows.locator("a[href^='/customers/']").click()
    operator.wait_for_url(re.compile(r"/customers/\d+$"))
    # then the customer carries the name given (no phone), the auto-tag and the attributed friend edge
    expect(operator.locator("#customer-name")).to_have_text("陈女士")
    expect(operator.locator("#profile-form input[name=phone]")).to_have_value("")
    expect(operator.locator("#profile-form input[name=first_channel]")).to_have_value(CHANNEL)
    expect(operator.locator("#tags [data-tag]")).to_have_count(1)
    expect(operator.locator("#tags [data-tag]")).to_have_attribute("data-tag", "包裹卡客户")
    edges = operator.locator("#relationships tbody tr")
    expect(edges).to_have_count(1)
    expect(edges.locator("td").nth(0)).to_have_text("小林")
    expect(edges.locator("td").nth(2)).to_have_text(CHANNEL)
    expect(edges.locator("td").nth(4)).to_have_text("在联")
    assert server_errors == []


def test_unknown_code_is_a_friendly_404(phone: Page, server_errors: list[str]) -> None:
    # given a phone scanning a code that never existed
    # when it opens the public URL
    response = phone.goto("/q/doesnotexist")
    # then it gets a friendly page in Chinese with a 404, never a 500
    assert response is not None and response.status == 404
    expect(phone.locator("[data-testid=message-title]")).to_have_text("二维码无效")
    expect(phone.locator("p.text-secondary")).to_have_text("没有找到这个二维码，请确认扫描的是商家提供的最新二维码。")
    # and a malformed slug (a damaged print, a hand-typed URL) gets the same page
    malformed = phone.goto("/q/二维码!")
    assert malformed is not None and malformed.status == 404
    expect(phone.locator("[data-testid=message-title]")).to_have_text("二维码无效")
    assert server_errors == []
