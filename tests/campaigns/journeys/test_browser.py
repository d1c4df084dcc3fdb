"""The journey editor end to end in headless Chromium: an operator builds "wait 1 day → send the
welcome → tag 新人" step by step, forgets the channel and sees the error on the send step, fixes it,
saves, activates, and reads the detail page; the stored steps are exactly what was built. Runs once
per backend (SQLite file, and PostgreSQL when set)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.db import make_engine
from siyu.kit.clock import system_clock
from siyu.migrate import upgrade
from siyu.models import AdapterKind, ChannelAccount, ContentItem, Journey, Role
from tests.browser import (
    BROWSER_MARKS,
    chromium_browser,  # noqa: F401 - pytest takes the shared `browser` fixture from this namespace
    log_in,
    watched_page,
)
from tests.conftest import BACKENDS
from tests.factories import make_tag, make_user, make_workspace
from tests.web.console_server import seeded_console

PASSWORD = "correct-horse-1"
EMAIL = "operator@huajian.example"
SCREENSHOT = Path("/tmp/journeys-editor.png")

pytestmark = BROWSER_MARKS


@dataclass
class Seeded:
    base_url: str
    url: str
    account_id: int
    content_id: int
    tag_id: int


def _seed(url: str) -> Seeded:
    engine = make_engine(url)
    upgrade(engine)
    now = system_clock.now()
    with Session(engine, expire_on_commit=False) as db:
        ws = make_workspace(db, clock=system_clock, name="花间集")
        make_user(db, clock=system_clock, workspace=ws, role=Role.OPERATOR, email=EMAIL, password=PASSWORD)
        account = ChannelAccount(
            workspace_id=ws.id, name="沙箱", kind=AdapterKind.SANDBOX, settings={}, created_at=now, updated_at=now
        )
        db.add(account)
        for name in ("早安问候", "欢迎礼"):
            db.add(
                ContentItem(
                    workspace_id=ws.id, name=name, body=f"{{{{ name }}}}，{name}", created_at=now, updated_at=now
                )
            )
        make_tag(db, workspace=ws, name="老客")
        tag = make_tag(db, workspace=ws, name="新人")
        db.flush()
        welcome = db.scalar(select(ContentItem).where(ContentItem.name == "欢迎礼"))
        assert welcome is not None
        db.commit()
        seeded = Seeded(base_url="", url=url, account_id=account.id, content_id=welcome.id, tag_id=tag.id)
    engine.dispose()
    return seeded


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    folder = tmp_path_factory.mktemp("browser-journeys")
    with seeded_console(request.param, folder, _seed) as (base_url, seeded):
        seeded.base_url = base_url
        yield seeded


@pytest.fixture
def page(browser: Browser, server: Seeded) -> Iterator[Page]:
    """The operator's desktop browser, signed in; no 5xx and no script error may happen."""
    with watched_page(browser, server.base_url, viewport={"width": 1440, "height": 1000}) as watched:
        log_in(watched.page, server.base_url, EMAIL, PASSWORD)
        yield watched.page
    assert watched.server_errors + watched.script_errors == []


def step(index: int) -> str:
    return f'#steps-editor [data-step-index="{index}"]'


def test_build_save_activate_a_three_step_journey(page: Page, server: Seeded) -> None:
    # given the editor of a new journey, reached from the list
    page.goto("/journeys")
    page.click("#new-journey")
    page.wait_for_url(re.compile(r"/journeys/new$"))
    page.fill("#name", "入群欢迎 SOP")
    page.select_option('#trigger-editor select[data-field="trigger-type"]', "group_joined")
    expect(page.locator("#no-steps")).to_be_visible()
    # when three steps are added: wait 1 day, send the welcome, tag 新人
    page.select_option("#new-step-type", "wait")
    page.click("#add-step")
    expect(page.locator(f'{step(0)} input[data-field="days"]')).to_have_value("1")
    page.select_option("#new-step-type", "send")
    page.click("#add-step")
    page.select_option(f'{step(1)} select[data-field="content_id"]', label="欢迎礼")
    page.select_option("#new-step-type", "tag")
    page.click("#add-step")
    page.select_option(f'{step(2)} select[data-field="tag_id"]', label="新人")
    expect(page.locator("#steps-editor .jr-step")).to_have_count(3)
    # and it is saved without choosing a channel
    page.click("#save-journey")
    # then the server's error is shown on the send step, and the steps are kept
    expect(page.locator(f"{step(1)} .jr-error")).to_contain_text("$.steps[1].channel_account_ids")
    expect(page.locator(step(1))).to_have_class(re.compile(r"\bjr-has-error\b"))
    expect(page.locator("#steps-editor .jr-step")).to_have_count(3)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    # when the sandbox channel is chosen and it is saved again
    page.check(f'input[name="channel_account_ids"][value="{server.account_id}"]')
    page.click("#save-journey")
    page.wait_for_url(re.compile(r"/journeys/\d+$"))
    # then the detail page describes the draft; activating it shows it running
    expect(page.locator("#journey-name")).to_contain_text("入群欢迎 SOP")
    expect(page.locator("#journey-name [data-status]")).to_have_text("草稿")
    page.click("#activate-journey")
    expect(page.locator("#journey-name [data-status]")).to_have_text("运行中")
    expect(page.locator("#journey-trigger")).to_contain_text("触发: 入群")
    rows = page.locator("#journey-steps tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0).locator(".step-summary")).to_have_text("1 天 0 小时 0 分钟")
    expect(rows.nth(1).locator(".step-summary")).to_have_text("欢迎礼")
    expect(rows.nth(2).locator(".step-summary")).to_have_text("新人")
    expect(page.locator('[data-count="enrolled"]')).to_have_text("0")
    page.screenshot(path="/tmp/journeys-detail.png", full_page=True)
    # and the stored definition is exactly the three steps built
    engine = make_engine(server.url)
    with Session(engine) as db:
        journey = db.scalar(select(Journey).where(Journey.name == "入群欢迎 SOP"))
        assert journey is not None
        assert (journey.status, journey.trigger, journey.channel_account_ids) == (
            "active",
            {"type": "group_joined"},
            [server.account_id],
        )
        assert journey.steps == [
            {"id": "wait1", "type": "wait", "days": 1, "hours": 0, "minutes": 0},
            {"id": "send1", "type": "send", "content_id": server.content_id},
            {"id": "tag1", "type": "tag", "tag_id": server.tag_id},
        ]
    engine.dispose()
