"""The CLV page in headless Chromium: an operator sees the Pareto table and chart with the exact
top-20 % share of the seeded orders, the fitted parameters, the super users, and makes the tracked
"超级用户" segment in one click. No 5xx, no script error. Once per backend."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy.orm import Session

from siyu.analytics.clv.service import run_fit
from siyu.analytics.periods import brand_today
from siyu.auth.permissions import Actor
from siyu.db import make_engine
from siyu.kit.clock import system_clock
from siyu.migrate import upgrade
from siyu.models import Role
from tests.analytics.clv.factories import Truth, bulk_customers, bulk_orders
from tests.browser import (
    BROWSER_MARKS,
    chromium_browser,  # noqa: F401 - pytest takes the shared `browser` fixture from this namespace
    log_in,
    screenshot,
    watched_page,
)
from tests.conftest import BACKENDS
from tests.factories import make_user, make_workspace
from tests.web.console_server import seeded_console

PASSWORD = "correct-horse-1"
EMAIL = "operator@huajian.example"
CUSTOMERS = 400

pytestmark = BROWSER_MARKS


@dataclass
class Seeded:
    base_url: str
    share: str
    """The top-20 % buyers' share of the last 365 days' revenue, as the page shows it."""
    supers: int


def _seed(url: str) -> Seeded:
    """花间集: 400 simulated customers over 540 days ending today (brand time), fitted."""
    from siyu.analytics.clv.simulate import simulate_transactions

    engine = make_engine(url)
    upgrade(engine)
    with Session(engine, expire_on_commit=False) as db:
        ws = make_workspace(db, clock=system_clock, name="花间集")
        make_user(db, clock=system_clock, workspace=ws, role=Role.OPERATOR, email=EMAIL, password=PASSWORD)
        today = brand_today(db, ws.id, system_clock)
        truth = Truth()
        ids, days, amounts = simulate_transactions(
            truth, truth, CUSTOMERS, np.random.default_rng(3), start=today - timedelta(days=539), days=540
        )
        real = bulk_customers(db, ws, CUSTOMERS, system_clock)
        rows = [
            (real[int(c) - 1], d.astype(object), max(1, round(float(a) * 100)))
            for c, d, a in zip(ids, days, amounts, strict=True)
        ]
        bulk_orders(db, ws, rows, prefix="B")
        fit = run_fit(db, actor=Actor.system(ws.id), clock=system_clock)
        assert fit.error is None
        db.commit()
    engine.dispose()
    # the expected share, worked out from the rows independently of the service
    since = today - timedelta(days=364)
    revenue: dict[int, int] = {}
    for customer, day, fen in rows:
        if day >= since:
            revenue[customer] = revenue.get(customer, 0) + fen
    ranked = sorted(revenue.values(), reverse=True)
    top = sum(ranked[: math.ceil(len(ranked) * 0.2)])
    return Seeded("", f"{top / sum(ranked) * 100:.1f}%", math.ceil(CUSTOMERS * 0.2))


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    folder = tmp_path_factory.mktemp("browser-clv")
    with seeded_console(request.param, folder, _seed) as (base_url, seeded):
        seeded.base_url = base_url
        yield seeded


@pytest.fixture
def page(browser: Browser, server: Seeded) -> Iterator[Page]:
    with watched_page(browser, server.base_url, viewport={"width": 1440, "height": 1000}) as watched:
        log_in(watched.page, server.base_url, EMAIL, PASSWORD)
        yield watched.page
    assert watched.server_errors + watched.script_errors == []


def test_clv_page_and_super_user_segment(page: Page, server: Seeded, tmp_path: Path) -> None:
    page.goto("/analytics/clv")
    top20 = page.locator("#pareto tbody tr").nth(3)
    expect(top20.locator('[data-col="top"]')).to_have_text("Top 20%")
    expect(top20.locator('[data-col="share"]')).to_have_text(server.share)
    expect(page.locator("#pareto-summary")).to_contain_text(server.share)
    expect(page.locator("#pareto-chart canvas")).to_have_count(1)
    expect(page.locator("#validation-chart canvas")).to_have_count(1)
    expect(page.locator("#fit-status")).to_have_attribute("data-status", "done")
    expect(page.locator('[data-stat="super_users"] [data-value]')).to_have_text(str(server.supers))
    expect(page.locator("#top-customers tbody tr")).to_have_count(20)
    screenshot(page, "analytics-clv", tmp_path)
    page.click("#make-super-segment")
    page.wait_for_url("**/segments/*")
    expect(page.locator("body")).to_contain_text("超级用户")
