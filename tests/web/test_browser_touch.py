"""Issue 5 end to end in headless Chromium: an admin sets up a sandbox channel account and a content
item in the console, builds a broadcast to a static segment of five customers with a 20% holdout in
the wizard, reads the forecast, submits it; after the dispatch sweep the outbox holds the messages
and the results page counts them exactly. Runs once per backend (SQLite file, and PostgreSQL)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Response, Route, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from sqlalchemy.orm import Session

from siyu.campaigns.broadcasts.tasks import dispatch
from siyu.config import Settings
from siyu.db import Database, make_engine
from siyu.kit.clock import system_clock
from siyu.messaging.planning import bucket
from siyu.migrate import upgrade
from siyu.models import Role
from tests.browser import (
    BROWSER_MARKS,
    NetworkLog,
    chromium_browser,  # noqa: F401 - pytest takes the shared `browser` fixture from this namespace
    log_in,
    thread_stacks,
    watched_page,
)
from tests.conftest import BACKENDS
from tests.factories import actor_for, make_customer, make_user, make_workspace
from tests.messaging.factories import make_policy
from tests.segments.factories import make_consent, make_segment
from tests.web.console_server import seeded_console

PASSWORD = "correct-horse-1"
EMAIL = "admin@huajian.example"
NAMES = ["王芳", "李雷", "韩梅梅", "周杰", "陈静"]
UNSUBSCRIBED = "王芳"
SEGMENT = "双11老客"
HOLDOUT_PCT = 20
PAGE_STATE = """() => {
  const button = document.getElementById("forecast-button");
  return {ready: document.readyState, htmx: typeof htmx, bound: !!(button && button["htmx-internal-data"]),
          panel: document.getElementById("forecast-panel")?.innerHTML, url: location.href};
}"""
"""What a forecast that never answered is explained with: did htmx bind the button at all."""

pytestmark = BROWSER_MARKS


@dataclass
class Seeded:
    base_url: str
    url: str
    segment_id: int
    customers: dict[str, int]


def _seed(url: str) -> tuple[str, int, dict[str, int]]:
    """An admin, five customers (王芳 unsubscribed from SMS) in a static segment, and delivery rules
    without quiet hours or caps, so the real clock never holds the send."""
    engine = make_engine(url)
    upgrade(engine)
    with Session(engine, expire_on_commit=False) as db:
        ws = make_workspace(db, clock=system_clock, name="花间集")
        make_user(db, clock=system_clock, workspace=ws, role=Role.ADMIN, email=EMAIL, password=PASSWORD)
        actor = actor_for(ws)
        customers = {name: make_customer(db, actor=actor, clock=system_clock, name=name).customer for name in NAMES}
        make_consent(db, customer=customers[UNSUBSCRIBED], channel="sms", status="unsubscribed", at=system_clock.now())
        segment = make_segment(
            db, workspace=ws, clock=system_clock, members=[c.id for c in customers.values()], name=SEGMENT
        )
        make_policy(db, workspace=ws, clock=system_clock)
        db.commit()
        seeded = (url, segment.id, {name: c.id for name, c in customers.items()})
    engine.dispose()
    return seeded


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    folder = tmp_path_factory.mktemp("browser-touch")
    with seeded_console(request.param, folder, _seed) as (base_url, (url, segment_id, customers)):
        yield Seeded(base_url, url, segment_id, customers)


@pytest.fixture
def admin(browser: Browser, server: Seeded) -> Iterator[tuple[Page, list[str]]]:
    """The admin's desktop browser, signed in, and every 5xx any page received."""
    with watched_page(browser, server.base_url) as watched:
        log_in(watched.page, server.base_url, EMAIL, PASSWORD)
        yield watched.page, watched.server_errors


def _held_out(salt: str, ids: dict[str, int]) -> set[str]:
    """Who the stable hash puts in the holdout, as planning and the forecast draw it."""
    return {name for name, cid in ids.items() if bucket(f"{salt}:holdout", cid) < HOLDOUT_PCT * 100}


def _dispatch(url: str, data_dir: Path) -> None:
    """The sweep the embedded job would run: plan the scheduled broadcast and send what is due."""
    settings = Settings(
        database_url=url, data_dir=data_dir, secret_key="browser-secret", log_json=False, broker_url=None
    )
    database = Database(settings)
    try:
        dispatch(database, system_clock)
    finally:
        database.engine.dispose()


def _ask_for_forecast(page: Page, network: NetworkLog) -> Response:
    """Click 预估 and return the server's answer to the forecast request.

    Twice in CI (never here) that answer did not come within 60 s, and nothing showed whether the
    click was lost or the server never answered. So: a click after which the page sent no forecast
    request within 10 s is repeated, once (what a person would do); a request that was sent must be
    answered within 60 s, or the test fails with the page's state, its requests and the stack of
    every thread (the in-thread console server's included)."""
    path = "/broadcasts/forecast"
    try:
        with page.expect_response(lambda r: r.url.endswith(path), timeout=60_000) as answered:
            page.click("#forecast-button")
            waited = 0
            while not network.sent("POST", path) and waited < 10_000:
                page.wait_for_timeout(100)
                waited += 100
            if not network.sent("POST", path):
                print(f"the first click on 预估 sent nothing; page {page.evaluate(PAGE_STATE)}\n{network.tail()}")
                page.click("#forecast-button")
        return answered.value
    except PlaywrightTimeoutError:
        state = page.evaluate(PAGE_STATE)
        raise AssertionError(
            f"no answer to the forecast ({network.sent('POST', path)} sent); page {state}\n{network.tail()}\n"
            f"{thread_stacks()}"
        ) from None


def test_broadcast_from_wizard_to_outbox_and_results(
    admin: tuple[Page, list[str]], server: Seeded, tmp_path: Path
) -> None:
    page, server_errors = admin
    network = NetworkLog(page)
    # given the admin creates a sandbox account that simulates SMS consent, and tests it
    page.goto("/channel-accounts")
    page.click("#new-account")
    # (a click only waits for the navigation to start: wait for the page's scripts, or the form's
    # script may not be listening yet when the kind is chosen)
    page.wait_for_url(re.compile(r"/channel-accounts/new$"))
    page.fill("#name", "沙箱短信")
    page.select_option("#kind", "sandbox")
    page.select_option("#settings-sandbox-consent_channel", "sms")
    page.click("#save-account")
    page.wait_for_url(re.compile(r"/channel-accounts/\d+/edit$"))
    expect(page.get_by_role("alert")).to_have_text("渠道账号已保存")
    page.click("#test-account")
    expect(page.locator("[data-check=ok]")).to_have_text("连接正常")

    # and a content item, previewed for 李雷
    page.goto("/content/new")
    page.fill("#name", "双11召回")
    page.fill("#body", "{{ name }}，双十一老客专享 8 折")
    page.fill("#tags", "双11")
    page.click("#save-content")
    page.wait_for_url(re.compile(r"/content/\d+/edit$"))
    page.fill("#preview-customer", str(server.customers["李雷"]))
    page.click("#preview-button")
    expect(page.locator("#preview-message [data-part=text]")).to_have_text("李雷，双十一老客专享 8 折")

    # when they build the broadcast in the wizard with a 20% holdout and ask for the forecast
    page.goto("/broadcasts")
    page.click("#new-broadcast")
    # (htmx binds the 预估 button when the document is ready: a click before that is lost, and the
    # panel never fills, so wait for the wizard to load)
    page.wait_for_url(re.compile(r"/broadcasts/new$"))
    page.fill("#name", "双11老客召回")
    page.select_option("#segment_id", label=SEGMENT)
    page.select_option("#account_0", label="沙箱短信 · 沙箱（不真实发送）")
    page.select_option("#variant_0_content_id", label="双11召回")
    page.fill("#holdout_pct", str(HOLDOUT_PCT))
    page.fill("#brief_objective", "召回双11老客")
    page.fill("#brief_hook", "老客专享 8 折")
    answer = _ask_for_forecast(page, network)
    assert answer.status == 200, answer.text()
    # then the panel shows the audience, what would go out, the holdout and the unsubscribed
    held = _held_out(f"forecast:segment:{server.segment_id}", server.customers)
    unsubscribed = 0 if UNSUBSCRIBED in held else 1
    parts = [f"5 人 · 预计发送 {5 - len(held) - unsubscribed}"]
    parts += [f"对照组 {len(held)}"] if held else []
    parts += ["退订 1"] if unsubscribed else []
    expect(page.locator("#forecast-summary")).to_have_text(" · ".join(parts))
    page.screenshot(path=str(tmp_path / "wizard.png"), full_page=True)

    # when they save and submit
    page.click("#save-submit")
    page.wait_for_url(re.compile(r"/broadcasts/\d+$"))
    broadcast_id = int(page.url.rsplit("/", 1)[1])
    expect(page.get_by_role("alert")).to_have_text("已提交，将按计划发送")
    expect(page.locator("[data-broadcast-status]")).to_have_text("已排期")
    expect(page.locator("[data-brief=objective]")).to_have_text("召回双11老客")

    # and the dispatch sweep runs
    _dispatch(server.url, tmp_path / "data")

    # then the results count exactly: planned 5, the broadcast's own holdout, 1 unsubscribed, the rest sent
    held = _held_out(f"broadcast:{broadcast_id}", server.customers)
    unsubscribed = 0 if UNSUBSCRIBED in held else 1
    sent = 5 - len(held) - unsubscribed
    page.reload()
    expect(page.locator("[data-broadcast-status]")).to_have_text("已完成")
    expect(page.locator("[data-count=planned]")).to_have_text("5")
    expect(page.locator("[data-count=holdout]")).to_have_text(str(len(held)))
    expect(page.locator("[data-count=sent]")).to_have_text(str(sent))
    expect(page.locator("[data-count=failed]")).to_have_text("0")
    if unsubscribed:
        expect(page.locator("[data-suppressed=unsubscribed]")).to_have_text("1")
    expect(page.locator("tr[data-variant=A] [data-col=recipients]")).to_have_text(str(5 - len(held)))
    expect(page.locator("tr[data-variant=A] [data-col=sent]")).to_have_text(str(sent))
    expect(page.locator("tr[data-arm=treated] [data-col=customers]")).to_have_text(str(5 - len(held)))
    if held:
        expect(page.locator("tr[data-arm=holdout] [data-col=customers]")).to_have_text(str(len(held)))
    page.screenshot(path=str(tmp_path / "results.png"), full_page=True)

    # and the outbox holds one message per sent customer, personalised
    page.goto("/outbox")
    expected = sorted(f"{name}，双十一老客专享 8 折" for name in NAMES if name not in held and name != UNSUBSCRIBED)
    expect(page.locator("#outbox tbody tr[data-message]")).to_have_count(sent)
    texts = sorted(t.strip() for t in page.locator("#outbox tbody tr[data-message] .message-text").all_inner_texts())
    assert texts == expected
    assert server_errors == []


def test_the_forecast_button_works_before_tabler_has_arrived(admin: tuple[Page, list[str]]) -> None:
    page, server_errors = admin
    # given Tabler's script is held back, as on a slow link (htmx, the page's other script, is not)
    held: list[Route] = []
    page.route("**/static/vendor/tabler.min.js", lambda route: held.append(route))
    # when the operator opens the wizard and asks for a forecast before choosing anything
    page.goto("/broadcasts/new", wait_until="domcontentloaded", timeout=10_000)
    with page.expect_response(lambda r: r.url.endswith("/broadcasts/forecast"), timeout=10_000) as answered:
        page.click("#forecast-button")
    # then htmx sent it and the panel names the missing field
    assert answered.value.status == 200
    panel = page.locator("#forecast-panel [data-error=forecast]")
    expect(panel).to_have_text("输入有误: segment_id: expected a whole number")
    assert len(held) == 1
    held[0].continue_()
    assert server_errors == []
