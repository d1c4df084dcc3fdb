"""The fit check and the KPI planner in headless Chromium: an operator reads the exact verdict for
the seeded pool, then saves a plan through the form and sees its months. No 5xx, no script error.
Once per backend."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy.orm import Session

from siyu.analytics.periods import add_months, brand_today, utc_start, workspace_zone
from siyu.db import make_engine
from siyu.kit.clock import system_clock
from siyu.migrate import upgrade
from siyu.models import Role
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
    make_customer,
    make_order,
    make_relationship,
    make_staff,
    make_user,
    make_workspace,
)
from tests.web.console_server import seeded_console

PASSWORD = "correct-horse-1"
EMAIL = "planner@huajian.example"

pytestmark = BROWSER_MARKS


@dataclass
class Seeded:
    base_url: str


def _seed(url: str) -> None:
    """花间集, two complete months before this one (brand time, 12:00 local each day):

    two months ago  X added on the 5th                              → adds 1, pool at end 1
    last month      Y, Z added on the 5th, Z deleted on the 20th;   → adds 2, deletions 1 of 1 open at
                    pool orders ¥100 (X, 10th) and ¥300 (Y, 15th)     the start, pool at end 2
    AOV ¥200; orders per member per year = 2 / 2 × 12 ÷ mean pool 1.5 = 8.
    """
    engine = make_engine(url)
    upgrade(engine)
    with Session(engine, expire_on_commit=False) as db:
        ws = make_workspace(db, clock=system_clock, name="花间集")
        make_user(db, clock=system_clock, workspace=ws, role=Role.OPERATOR, email=EMAIL, password=PASSWORD)
        zone = workspace_zone(db, ws.id)
        last = add_months(brand_today(db, ws.id, system_clock).replace(day=1), -1)

        def noon(month: int, day: int) -> datetime:
            return utc_start(add_months(last, month).replace(day=day), zone) + timedelta(hours=12)

        staff = make_staff(db, workspace=ws, clock=system_clock)
        actor = actor_for(ws)
        x, y, z = (make_customer(db, actor=actor, clock=system_clock).customer for _ in range(3))
        make_relationship(db, customer=x, staff=staff, added_at=noon(-1, 5))
        make_relationship(db, customer=y, staff=staff, added_at=noon(0, 5))
        make_relationship(
            db,
            customer=z,
            staff=staff,
            added_at=noon(0, 5),
            removed_at=noon(0, 20),
            removed_by="customer",
        )
        make_order(db, customer=x, paid_at=noon(0, 10), total_fen=10_000).pool_sequence = 1
        make_order(db, customer=y, paid_at=noon(0, 15), total_fen=30_000).pool_sequence = 1
        db.commit()
    engine.dispose()


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    folder = tmp_path_factory.mktemp("browser-planning")
    with seeded_console(request.param, folder, _seed) as (base_url, _):
        yield Seeded(base_url)


@pytest.fixture
def page(browser: Browser, server: Seeded) -> Iterator[Page]:
    with watched_page(browser, server.base_url, viewport={"width": 1440, "height": 1000}) as watched:
        log_in(watched.page, server.base_url, EMAIL, PASSWORD)
        yield watched.page
    assert watched.server_errors + watched.script_errors == []


def test_fit_verdict_and_a_saved_plan(page: Page, tmp_path: Path) -> None:
    # margin 50 %, ¥10 a month, ¥60 to acquire: 8 × ¥200 × 50 % = ¥800 gross, − ¥120 = ¥680 a year;
    # payback 60 ÷ (680 / 12) = 1.06 → 1.1 months
    page.goto("/analytics/fit")
    page.fill("#margin_pct", "50")
    page.fill("#operating_cost_yuan", "10")
    page.fill("#acquisition_cost_yuan", "60")
    page.click("#fit-inputs button[type=submit]")
    expect(page.locator("#verdict")).to_have_attribute("data-verdict", "yes")
    expect(page.locator("#verdict [data-message]")).to_have_text(
        "每位会员一年贡献毛利 ¥680.00，获客成本 ¥60.00 在 1.1 个月收回：私域能养活自己"
    )
    expect(page.locator('[data-stat="pool_now"] [data-value]')).to_have_text("2")
    expect(page.locator('[data-stat="aov"] [data-value]')).to_have_text("¥200.00")
    expect(page.locator('[data-measure="deletion_rate"] [data-value]')).to_have_text("100.0%")
    expect(page.locator("#history-table tbody tr")).to_have_count(2)
    expect(page.locator("#history-chart canvas")).to_have_count(1)
    screenshot(page, "analytics-planning", tmp_path)
    # the planner form comes pre-filled (pool now 2, AOV ¥200); a name and targets save it
    page.goto("/analytics/kpi")
    expect(page.locator("#start_pool")).to_have_value("2")
    expect(page.locator("#aov_yuan")).to_have_value("200.00")
    page.fill("#name", "明年目标")
    page.fill("#target_pool", "100")
    page.fill("#target_gmv_yuan", "60000")
    page.click("#save-plan")
    page.wait_for_url("**/analytics/kpi/*")
    expect(page.locator("#plan-table tbody tr")).to_have_count(6)
    expect(page.locator("#plan-table tfoot")).to_have_count(0)
    expect(page.locator("#plan-chart canvas")).to_have_count(1)
