"""The issue's promise, in headless Chromium: with `SIYU_FAKE_WECOM` on, an admin ticks "use the built-in
fake WeCom" on /integrations/wecom and sees the whole flow without a real corp — the connection test
passes, "sync now" gives the live code a 「联系我」 way, a customer scans it on the fake's own page
(/fake-wecom/), the add_external_contact event is processed by the embedded worker and the customer is
listed on /customers. One real console server (public_url = its own address) per backend."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy.orm import Session

from siyu.db import make_engine
from siyu.kit.clock import system_clock
from siyu.livecodes.state import encode_state
from siyu.migrate import upgrade
from siyu.models import Role
from tests.browser import (
    BROWSER_MARKS,
    chromium_browser,  # noqa: F401 - pytest takes the shared `browser` fixture from this namespace
    log_in,
    screenshot,
    watched_page,
)
from tests.conftest import BACKENDS, PG_URL, _throwaway_postgres
from tests.factories import make_live_code, make_staff, make_user, make_workspace
from tests.web import console_server

pytestmark = BROWSER_MARKS
EMAIL = "admin@huajianji.example"
PASSWORD = "correct-horse-1"
USERID = "zhangli"
CUSTOMER = "周先生"
WAIT_S = 20.0


@dataclass
class Seeded:
    base_url: str
    live_code_id: int


def _seed(url: str) -> int:
    engine = make_engine(url)
    upgrade(engine)
    with Session(engine, expire_on_commit=False) as db:
        ws = make_workspace(db, clock=system_clock, name="花间集")
        make_user(db, clock=system_clock, workspace=ws, role=Role.ADMIN, email=EMAIL, password=PASSWORD)
        staff = make_staff(db, workspace=ws, clock=system_clock, name="张丽", wecom_user_id=USERID)
        code = make_live_code(
            db,
            workspace=ws,
            clock=system_clock,
            name="门店海报码",
            routes=[{"staff_id": staff.id}],
            welcome={"text": "{{ name }}您好，我是{{ staff_name }}"},
        )
        db.commit()
        code_id = int(code.id)
    engine.dispose()
    return code_id


@contextmanager
def _database(backend: str, folder: Path) -> Iterator[str]:
    """A fresh database URL of `backend` (a throwaway PostgreSQL database, dropped after)."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'siyu.db'}"
        return
    assert PG_URL
    with _throwaway_postgres(PG_URL) as engine:
        yield engine.url.render_as_string(hide_password=False)


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    folder = tmp_path_factory.mktemp("browser-wecom-flow")
    port = console_server.free_port()
    with pytest.MonkeyPatch.context() as patch, _database(request.param, folder) as url:
        # The fake is mounted at /fake-wecom and the integration calls it over public_url: its own address.
        patch.setenv("SIYU_PUBLIC_URL", f"http://127.0.0.1:{port}")
        patch.setenv("SIYU_FAKE_WECOM", "true")
        patch.setattr(console_server, "free_port", lambda: port)
        code_id = _seed(url)
        with console_server.console_server(url, folder / "data", run_worker=True) as base_url:
            yield Seeded(base_url, code_id)


def _until(page: Page, check: Callable[[], bool], what: str) -> None:
    """Reload `page` until `check()` holds (the worker runs jobs in the background), at most WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}; the page says: {page.inner_text('body')[-1200:]}")
        page.wait_for_timeout(300)
        page.reload()


def test_an_admin_runs_the_whole_flow_on_the_built_in_fake(browser: Browser, server: Seeded, tmp_path: Path) -> None:
    with watched_page(browser, server.base_url) as watched:
        page = watched.page
        log_in(page, server.base_url, EMAIL, PASSWORD)

        page.goto("/integrations/wecom")
        expect(page.locator("#not-configured")).to_be_visible()
        page.check("#use_fake")
        page.click("#save-wecom")
        page.wait_for_url(f"{server.base_url}/integrations/wecom")
        expect(page.locator("#fake-badge")).to_have_text("模拟")
        expect(page.locator("#health code").first).to_have_text(f"{server.base_url}/fake-wecom/cgi-bin/")
        corp_id = page.locator("#corp_id").input_value()
        assert corp_id.startswith("wwfake")

        page.click("#test-wecom")
        expect(page.locator("#test-result [data-check]")).to_have_attribute("data-check", "ok")
        steps = page.locator("#test-result li[data-step]")
        expect(steps).to_have_count(4)
        assert [steps.nth(i).get_attribute("data-step") for i in range(4)] == [
            "contact:gettoken",
            "contact:externalcontact/get_follow_user_list",
            "app:gettoken",
            "app:agent/get",
        ]
        expect(page.locator("#test-result li[data-ok=false]")).to_have_count(0)

        page.goto("/integrations/wecom/contact-ways")
        page.click("[data-testid=sync-now]")
        ways = page.locator(f"[data-testid=code-{server.live_code_id}] tr[data-testid^=way-]")
        _until(page, lambda: ways.count() > 0 and ways.first.locator("img[alt=QR]").count() > 0, "the contact way")
        expect(page.locator("[data-testid=failures]")).to_have_count(0)
        way = ways.first
        config_id = str(way.get_attribute("data-testid"))[len("way-") :]
        assert config_id.startswith("cw")
        expect(way.locator("td").nth(3)).to_have_text(encode_state(server.live_code_id))
        expect(way.locator("td").nth(4)).to_have_text(USERID)

        page.goto("/fake-wecom/")
        expect(page.locator("#corps")).to_contain_text(corp_id)
        form = page.locator("form[data-sim='contactways/scan']")
        form.locator("textarea").fill(f'{{"corp_id": "{corp_id}", "config_id": "{config_id}", "name": "{CUSTOMER}"}}')
        form.locator("button[type=submit]").click()
        expect(form.locator("pre")).to_contain_text("200 ")
        expect(form.locator("pre")).to_contain_text(f'"userid":"{USERID}"')
        screenshot(page, "wecom-fake-console", tmp_path)

        page.goto("/integrations/wecom")
        event = page.locator("#events tr[data-event]").first
        _until(page, lambda: event.count() > 0 and event.get_attribute("data-status") == "processed", "the event")
        expect(page.locator("#events tr[data-event]")).to_have_count(1)
        expect(event.locator("td").nth(1)).to_have_text("change_external_contact / add_external_contact")
        expect(event.locator("td").nth(2)).to_have_text("已处理")
        expect(event.locator("td").nth(4)).to_have_text("")
        expect(page.locator("#last-error")).to_have_count(0)
        screenshot(page, "wecom-integration", tmp_path)

        page.goto("/customers")
        rows = page.locator("#customers tbody tr[data-customer-id]")
        expect(rows).to_have_count(1)
        expect(rows.first.locator("td").nth(1)).to_have_text(CUSTOMER)
        expect(rows.first.locator("td").nth(5)).to_have_text("张丽")
        assert watched.server_errors == [] and watched.script_errors == []
