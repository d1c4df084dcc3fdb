"""In headless Chromium: an operator opens the cohort heat-map, reads the exact rates, sees the
curves drawn, and turns a cell into a segment. Once per backend; data seeded around today."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy.orm import Session

from siyu.analytics.periods import Grain, brand_today, bucket_of
from siyu.db import make_engine
from siyu.kit.clock import system_clock
from siyu.migrate import upgrade
from siyu.models import Role
from tests.analytics.retention.factories import order
from tests.browser import (
    BROWSER_MARKS,
    chromium_browser,  # noqa: F401 - pytest takes the shared `browser` fixture from this namespace
    log_in,
    screenshot,
    watched_page,
)
from tests.conftest import BACKENDS
from tests.factories import actor_for, make_customer, make_relationship, make_staff, make_user, make_workspace
from tests.web.console_server import seeded_console

PASSWORD = "correct-horse-1"
EMAIL = "analyst@huajian.example"
SHANGHAI = ZoneInfo("Asia/Shanghai")

pytestmark = BROWSER_MARKS


@dataclass
class Seeded:
    base_url: str
    cohort: date


def _seed(url: str) -> date:
    """One weekly cohort two to three weeks back: four adds on its Monday; two order the next day
    (+0), one of them again eight days later (+1 week)."""
    engine = make_engine(url)
    upgrade(engine)
    with Session(engine, expire_on_commit=False) as db:
        ws = make_workspace(db, clock=system_clock, name="花间集")
        make_user(db, clock=system_clock, workspace=ws, role=Role.OPERATOR, email=EMAIL, password=PASSWORD)
        staff = make_staff(db, workspace=ws, clock=system_clock, name="小林")
        cohort = bucket_of(brand_today(db, ws.id, system_clock) - timedelta(days=14), Grain.WEEK)

        def at(day: date) -> datetime:
            return datetime.combine(day, time(10), tzinfo=SHANGHAI)

        people = [make_customer(db, actor=actor_for(ws), clock=system_clock).customer for _ in range(4)]
        for person in people:
            make_relationship(db, customer=person, staff=staff, added_at=at(cohort))
        order(db, people[0], at(cohort + timedelta(days=1)))
        order(db, people[1], at(cohort + timedelta(days=1)))
        order(db, people[0], at(cohort + timedelta(days=8)))
        db.commit()
    engine.dispose()
    return cohort


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    folder = tmp_path_factory.mktemp("browser-retention")
    with seeded_console(request.param, folder, _seed) as (base_url, cohort):
        yield Seeded(base_url, cohort)


def test_heatmap_rates_curves_and_drill(browser: Browser, server: Seeded, tmp_path: Path) -> None:
    with watched_page(browser, server.base_url) as watched:
        page = watched.page
        log_in(page, server.base_url, EMAIL, PASSWORD)
        # when the analyst opens the weekly cohort of that Monday, 3 offsets after it
        end = server.cohort + timedelta(days=6)
        page.goto(f"/analytics/retention?from={server.cohort}&to={end}&offsets=3")
        # then the row reads 4 customers, 50 % (+0), 25 % (+1), 0 % (+2), and +3 is not reached
        row = page.locator(f'tr[data-cohort="{server.cohort}"]')
        expect(row.locator('td[data-col="size"]')).to_have_text("4")
        for key, text in {"o0": "50.0%", "o1": "25.0%", "o2": "0.0%", "o3": "—"}.items():
            expect(row.locator(f'td[data-col="{key}"]')).to_have_text(text)
        # +2 holds today: it is still running, so it is flagged (italic, "进行中")
        expect(row.locator('td[data-col="o2"]')).to_have_attribute("title", "进行中")
        page.wait_for_function("document.querySelector('#retention-chart canvas') !== null")
        screenshot(page, "analytics-retention", tmp_path)
        # and the +1 cell becomes a segment of the one customer who came back
        row.locator('td[data-col="o1"] button').click()
        page.wait_for_url("**/segments/*")
        expect(page.locator("body")).to_contain_text("留存")
        assert watched.server_errors == [] and watched.script_errors == []
