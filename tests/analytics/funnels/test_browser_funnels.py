"""The funnel page in headless Chromium: the default funnel (scan → add within a day → first order)
over the last 30 days shows the exact counts, draws its chart, and no 5xx or script error happens.
Once per backend."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy.orm import Session

from siyu.db import make_engine
from siyu.kit.clock import system_clock
from siyu.migrate import upgrade
from siyu.models import LiveCode, LiveCodeKind, Role
from tests.analytics.funnels.scenario import scan
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
EMAIL = "analyst@huajian.example"

pytestmark = BROWSER_MARKS


def _seed(url: str) -> None:
    """Three scans three days ago; two of them add within an hour; one of those places a first order."""
    engine = make_engine(url)
    upgrade(engine)
    with Session(engine, expire_on_commit=False) as db:
        ws = make_workspace(db, clock=system_clock, name="花间集")
        make_user(db, clock=system_clock, workspace=ws, role=Role.ANALYST, email=EMAIL, password=PASSWORD)
        staff = make_staff(db, workspace=ws, clock=system_clock, name="小美")
        code = LiveCode(
            workspace_id=ws.id, slug="lc-b", name="活码", kind=LiveCodeKind.STAFF, created_at=system_clock.now()
        )
        db.add(code)
        db.flush()
        base = system_clock.now() - timedelta(days=3)
        actor = actor_for(ws)
        people = [make_customer(db, actor=actor, clock=system_clock).customer for _ in range(3)]
        for person in people:
            scan(db, code, person, base, None)
        for person in people[:2]:
            make_relationship(db, customer=person, staff=staff, added_at=base + timedelta(minutes=30))
        make_order(db, customer=people[0], paid_at=base + timedelta(days=1)).pool_sequence = 1
        db.commit()
    engine.dispose()


@pytest.fixture(scope="module", params=BACKENDS)
def base_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("browser-funnels")
    with seeded_console(request.param, folder, _seed) as (url, _seeded):
        yield url


def test_default_funnel_shows_counts_and_chart(browser: Browser, base_url: str, tmp_path: Path) -> None:
    with watched_page(browser, base_url) as watched:
        page = watched.page
        log_in(page, base_url, EMAIL, PASSWORD)
        page.goto("/analytics/funnels")
        steps = page.locator("#funnel-steps tbody td[data-col=customers]")
        expect(steps).to_have_text(["3", "2", "1"])
        expect(page.locator("#funnel-steps tbody td[data-col=overall_conversion]")).to_have_text(
            ["100.0%", "66.7%", "33.3%"]
        )
        # adds 30 minutes after the scans; the order a day after the scan = 23.5 h after the add
        expect(page.locator("#funnel-steps tbody td[data-col=median_hours]")).to_have_text(["—", "0.50", "23.50"])
        expect(page.locator("#funnel-chart canvas")).to_have_count(1)
        expect(page.locator("[data-drop-off='1'] [data-lost]")).to_have_text("1")
        screenshot(page, "analytics-funnels", tmp_path)
        # the drop-off after the scan (the one customer who never added) becomes a segment
        page.click("[data-drop-off='1'] button[type=submit]")
        page.wait_for_url(re.compile(r".*/segments/\d+$"))
        assert watched.server_errors == [] and watched.script_errors == []
