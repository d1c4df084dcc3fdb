"""The overview dashboard in headless Chromium: an operator opens /analytics, sees the pool and the
period's adds, deletions, first orders and GMV, the trend chart draws, and a stat card's drill-down
opens the segment of the customers behind it. Once per backend."""

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
from siyu.models import GroupMember, Role
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
    make_group,
    make_order,
    make_relationship,
    make_staff,
    make_user,
    make_workspace,
)
from tests.web.console_server import seeded_console

pytestmark = BROWSER_MARKS
EMAIL, PASSWORD = "op@example.com", "correct-horse-1"


def _seed(url: str) -> None:
    """花间集 over the last days (real clock): c1 added 2 days ago; c2 added 3 days ago and deleted
    by the customer yesterday; c3 in a group, first order yesterday ¥88."""
    engine = make_engine(url)
    upgrade(engine)
    now = system_clock.now()
    with Session(engine, expire_on_commit=False) as db:
        ws = make_workspace(db, clock=system_clock, name="花间集")
        make_user(db, clock=system_clock, workspace=ws, role=Role.OPERATOR, email=EMAIL, password=PASSWORD)
        admin = actor_for(ws, role=Role.ADMIN)
        staff = make_staff(db, workspace=ws, clock=system_clock, name="小林")
        c1, c2, c3 = (make_customer(db, actor=admin, clock=system_clock).customer for _ in range(3))
        make_relationship(db, customer=c1, staff=staff, added_at=now - timedelta(days=2))
        make_relationship(
            db,
            customer=c2,
            staff=staff,
            added_at=now - timedelta(days=3),
            removed_at=now - timedelta(days=1),
            removed_by="customer",
        )
        group = make_group(db, workspace=ws, clock=system_clock)
        db.add(GroupMember(workspace_id=ws.id, group_id=group.id, customer_id=c3.id, joined_at=now - timedelta(days=4)))
        order = make_order(db, customer=c3, paid_at=now - timedelta(days=1), total_fen=8_800)
        order.pool_sequence = 1
        db.commit()
    engine.dispose()


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("browser-overview")
    with seeded_console(request.param, folder, _seed) as (base_url, _):
        yield base_url


def test_operator_reads_the_overview_and_drills_into_adds(browser: Browser, server: str, tmp_path: Path) -> None:
    with watched_page(browser, server) as watched:
        page = watched.page
        log_in(page, server, EMAIL, PASSWORD)
        page.goto("/analytics")
        # the last 30 days: pool = c1 (friend) + c3 (group); adds c1, c2; c2 deleted; c3's first order
        values = {
            key: page.locator(f'[data-stat="{key}"] [data-value]').inner_text()
            for key in ("pool", "adds", "deleted_by_customer", "first_orders", "gmv")
        }
        assert values == {"pool": "2", "adds": "2", "deleted_by_customer": "1", "first_orders": "1", "gmv": "¥88.00"}
        expect(page.locator("#trend-chart canvas")).to_have_count(1)
        expect(page.locator("#pool-table [data-col=now]").first).to_have_text("2")
        screenshot(page, "analytics-overview", tmp_path)
        # a drill-down on the adds opens a segment of c1 and c2
        page.locator('[data-stat="adds"] + div [data-drill] button').click()
        page.wait_for_url("**/segments/*")
        expect(page.locator("body")).to_contain_text("新增好友")
        assert watched.server_errors == [] and watched.script_errors == []
