"""The RFM page in headless Chromium: an operator sees the hand-worked scores (same shape as
scenario.py, dated relative to the real clock), the heat-map draws without script errors, and a
named segment becomes a static segment in one click. Once per backend."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy.orm import Session

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
from tests.factories import actor_for, make_customer, make_order, make_user, make_workspace
from tests.web.console_server import seeded_console

PASSWORD = "correct-horse-1"
EMAIL = "operator@huajian.example"

pytestmark = BROWSER_MARKS


@dataclass
class Seeded:
    base_url: str


def _seed(url: str) -> None:
    """Orders k days ago (brand days, Shanghai has no DST): A 2 d ¥100 + 24 d ¥50; B 12 d ¥300;
    C 92 d ¥50; D 182/208/238 d ¥100, ¥100, ¥60 → the scores of scenario.py (R ranks unchanged)."""
    engine = make_engine(url)
    upgrade(engine)
    now = system_clock.now()
    with Session(engine, expire_on_commit=False) as db:
        ws = make_workspace(db, clock=system_clock, name="花间集")
        make_user(db, clock=system_clock, workspace=ws, role=Role.OPERATOR, email=EMAIL, password=PASSWORD)
        actor = actor_for(ws)
        orders = {"A": [(2, 10_000), (24, 5_000)], "B": [(12, 30_000)], "C": [(92, 5_000)]}
        orders["D"] = [(182, 10_000), (208, 10_000), (238, 6_000)]
        for name, rows in orders.items():
            customer = make_customer(db, actor=actor, clock=system_clock, name=f"客户{name}").customer
            for days, fen in rows:
                make_order(db, customer=customer, paid_at=now - timedelta(days=days), total_fen=fen)
        make_customer(db, actor=actor, clock=system_clock, name="没下单")
        db.commit()
    engine.dispose()


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    folder = tmp_path_factory.mktemp("browser-rfm")
    with seeded_console(request.param, folder, _seed) as (base_url, _nothing):
        yield Seeded(base_url)


def test_rfm_page_figures_and_drill(browser: Browser, server: Seeded, tmp_path: Path) -> None:
    with watched_page(browser, server.base_url) as watched:
        page = watched.page
        log_in(page, server.base_url, EMAIL, PASSWORD)
        page.goto("/analytics/rfm")
        expect(page.locator('[data-stat="scored_customers"] [data-value]')).to_have_text("4")
        expect(page.locator('[data-stat="no_recent_orders"] [data-value]')).to_have_text("1")
        expect(page.locator('[data-stat="revenue_fen"] [data-value]')).to_have_text("¥760.00")
        expect(page.locator('[data-cell="r2f5"] [data-count]')).to_have_text("1")
        expect(page.locator('[data-cell="r2f5"] [data-revenue]')).to_have_text("¥260.00")
        expect(page.locator('[data-segment="loyal"] [data-col="customers"]')).to_have_text("2")
        expect(page.locator("#rfm-heatmap canvas")).to_have_count(1)
        screenshot(page, "analytics-rfm", tmp_path)
        page.locator('[data-segment="loyal"] [data-drill] button').click()
        page.wait_for_url(re.compile(r"/segments/\d+$"))
        expect(page.locator("body")).to_contain_text("RFM 忠诚")
        assert watched.server_errors == []
        assert watched.script_errors == []
