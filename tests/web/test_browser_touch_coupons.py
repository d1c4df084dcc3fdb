"""The journey editor's coupon step and points-expiring trigger in headless Chromium: an operator
picks "积分即将到期" within 14 days, adds "发券" (the archived template cannot be chosen) and a send
step, saves, and the stored definition is exactly what was built. Runs once per backend."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.db import make_engine
from siyu.kit.clock import system_clock
from siyu.migrate import upgrade
from siyu.models import AdapterKind, ChannelAccount, ContentItem, CouponTemplateStatus, Journey, Role
from tests.browser import (
    BROWSER_MARKS,
    chromium_browser,  # noqa: F401 - pytest takes the shared `browser` fixture from this namespace
    log_in,
    watched_page,
)
from tests.commerce.coupons.factories import make_template
from tests.conftest import BACKENDS
from tests.factories import make_user, make_workspace
from tests.web.console_server import seeded_console

PASSWORD = "correct-horse-1"
EMAIL = "operator@huajian.example"

pytestmark = BROWSER_MARKS


@dataclass
class Seeded:
    base_url: str
    url: str
    account_id: int
    content_id: int
    template_id: int
    archived_id: int


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
        item = ContentItem(
            workspace_id=ws.id,
            name="积分提醒",
            body="{{ name }}，送你一张券 {{ coupon_code }}",
            created_at=now,
            updated_at=now,
        )
        db.add_all([account, item])
        archived = make_template(
            db, workspace=ws, clock=system_clock, name="旧券", status=CouponTemplateStatus.ARCHIVED
        )
        template = make_template(db, workspace=ws, clock=system_clock, name="满199减20")
        db.commit()
        seeded = Seeded("", url, account.id, item.id, template.id, archived.id)
    engine.dispose()
    return seeded


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    folder = tmp_path_factory.mktemp("browser-touch-coupons")
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


def test_build_a_points_expiring_journey_with_a_coupon_step(page: Page, server: Seeded) -> None:
    # given the editor of a new journey
    page.goto("/journeys/new")
    page.fill("#name", "积分到期送券")
    # when the trigger "积分即将到期" is chosen, it starts at 7 days; the operator makes it 14
    page.select_option('#trigger-editor select[data-field="trigger-type"]', "points_expiring")
    days = page.locator('#trigger-editor input[data-field="within_days"]')
    expect(days).to_have_value("7")
    days.fill("14")
    # and adds "发券": the active template is chosen, the archived one is listed but disabled
    page.select_option("#new-step-type", "coupon")
    page.click("#add-step")
    picker = page.locator(f'{step(0)} select[data-field="template_id"]')
    expect(picker).to_have_value(str(server.template_id))
    expect(picker.locator(f'option[value="{server.archived_id}"]')).to_be_disabled()
    expect(picker.locator(f'option[value="{server.archived_id}"]')).to_have_text("旧券 (已归档)")
    expect(page.locator(f'{step(0)} [data-hint="coupon_code"]')).to_contain_text("{{ coupon_code }}")
    # and a send step with the content that uses the code, on the sandbox channel
    page.select_option("#new-step-type", "send")
    page.click("#add-step")
    page.select_option(f'{step(1)} select[data-field="content_id"]', label="积分提醒")
    page.check(f'input[name="channel_account_ids"][value="{server.account_id}"]')
    page.click("#save-journey")
    page.wait_for_url(re.compile(r"/journeys/\d+$"))
    # then the detail describes it
    expect(page.locator("#journey-trigger")).to_contain_text("积分即将到期 · 14 天内到期")
    expect(page.locator("#journey-steps tbody tr").nth(0).locator(".step-summary")).to_have_text("满199减20")
    # and the stored definition is exactly what was built
    engine = make_engine(server.url)
    with Session(engine) as db:
        journey = db.scalar(select(Journey).where(Journey.name == "积分到期送券"))
        assert journey is not None
        assert journey.trigger == {"type": "points_expiring", "within_days": 14}
        assert journey.steps == [
            {"id": "coupon1", "type": "coupon", "template_id": server.template_id},
            {"id": "send1", "type": "send", "content_id": server.content_id},
        ]
        assert journey.channel_account_ids == [server.account_id]
    engine.dispose()
