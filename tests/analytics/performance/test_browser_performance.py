"""In headless Chromium: an operator reads channel ROI and staff performance with exact figures,
turns a staff member's held customers into a segment with one click, and sees the campaigns page's
empty state; no 5xx and no script error. Once per backend."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy.orm import Session

from siyu.db import make_engine
from siyu.kit.clock import system_clock
from siyu.migrate import upgrade
from siyu.models import CostModel, Role
from tests.browser import (
    BROWSER_MARKS,
    chromium_browser,  # noqa: F401 - pytest takes the shared `browser` fixture from this namespace
    log_in,
    screenshot,
    watched_page,
)
from tests.conftest import BACKENDS
from tests.factories import (
    actor_for,
    make_channel,
    make_customer,
    make_order,
    make_relationship,
    make_staff,
    make_store,
    make_user,
    make_workspace,
)
from tests.web.console_server import seeded_console

PASSWORD = "correct-horse-1"
EMAIL = "operator@huajian.example"

pytestmark = BROWSER_MARKS


def _seed(url: str) -> int:
    """小王 (静安店) added 林 and 周 two days ago through 包裹卡 (¥10 per add); 林 paid a ¥100 first
    order yesterday, attributed to 小王. Returns 小王's id."""
    engine = make_engine(url)
    upgrade(engine)
    with Session(engine, expire_on_commit=False) as db:
        ws = make_workspace(db, clock=system_clock, name="花间集")
        make_user(db, clock=system_clock, workspace=ws, role=Role.OPERATOR, email=EMAIL, password=PASSWORD)
        actor = actor_for(ws)
        store = make_store(db, workspace=ws, name="静安店")
        staff = make_staff(db, workspace=ws, clock=system_clock, name="小王", store=store)
        channel = make_channel(
            db, workspace=ws, clock=system_clock, name="包裹卡", cost_model=CostModel.CPA, cpa_fen=1_000
        )
        now = system_clock.now()
        lin, zhou = (make_customer(db, actor=actor, clock=system_clock, name=n).customer for n in ("林", "周"))
        for c in (lin, zhou):
            make_relationship(db, customer=c, staff=staff, added_at=now - timedelta(days=2), channel=channel)
        order = make_order(db, customer=lin, paid_at=now - timedelta(days=1), total_fen=10_000)
        order.staff_id, order.pool_sequence = staff.id, 1
        db.commit()
        staff_id = staff.id
    engine.dispose()
    return staff_id


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    folder = tmp_path_factory.mktemp("browser-performance")
    with seeded_console(request.param, folder, _seed) as (base_url, staff_id):
        yield base_url, staff_id


def test_operator_reads_roi_and_staff_and_drills(browser: Browser, server: tuple[str, int], tmp_path: Path) -> None:
    base_url, staff_id = server
    with watched_page(browser, base_url) as w:
        page = w.page
        log_in(page, base_url, EMAIL, PASSWORD)
        # ROI: 2 adds × ¥10 = ¥20, 2 acquired → ¥10 per acquired customer; the 30-day cohort is not
        # 30 days old yet; the ¥100 order came 1 day after the adds, so within 2 days the cohort has
        # ¥100 / 2 = ¥50 per customer ≥ ¥10: payback 2 days
        page.goto("/analytics/roi")
        row = page.locator("#roi-table tbody tr").first
        expect(row.locator('[data-col="adds"]')).to_have_text("2")
        expect(row.locator('[data-col="cost_fen"]')).to_have_text("¥20.00")
        expect(row.locator('[data-col="cost_per_acquired_fen"]')).to_have_text("¥10.00")
        expect(row.locator('[data-col="gmv_30d_fen"]')).to_have_text("未满 30 天")
        expect(row.locator('[data-col="payback_days"]')).to_have_text("2 天")
        page.wait_for_function("document.querySelector('#roi-chart canvas') !== null")
        screenshot(page, "analytics-roi", tmp_path)
        # one click on 新获客户 makes a segment of 林 and 周
        row.locator('[data-drill="acquired"] button').click()
        page.wait_for_url("**/segments/*")
        expect(page.locator("body")).to_contain_text("新获客户")
        # staff: 小王 holds 2, added 2, 1 first order, ¥100
        page.goto("/analytics/staff")
        staff = page.locator(f'#staff-table tr[data-staff-id="{staff_id}"]')
        expect(staff.locator('[data-col="held"]')).to_have_text("2")
        expect(staff.locator('[data-col="adds"]')).to_have_text("2")
        expect(staff.locator('[data-col="first_orders"]')).to_have_text("1")
        expect(staff.locator('[data-col="gmv_fen"]')).to_have_text("¥100.00")
        page.wait_for_function("document.querySelector('#staff-chart canvas') !== null")
        screenshot(page, "analytics-performance", tmp_path)
        # one click on "held" makes a segment of 林 and 周
        staff.locator('[data-drill="held"] button').click()
        page.wait_for_url("**/segments/*")
        expect(page.locator("body")).to_contain_text("员工绩效")
        # campaigns: nothing yet
        page.goto("/analytics/campaigns")
        expect(page.locator("[data-empty]")).to_contain_text("这个范围内还没有数据。")
        assert w.server_errors == [] and w.script_errors == []
