"""What the Playwright browser tests share: launching the system Chromium, a browser context that
collects every 5xx response and every script error, and the console's log-in.

A test module takes the fixture by importing it (pytest finds fixtures in the module's namespace):

    from tests.browser import BROWSER_MARKS, chromium_browser  # noqa: F401 - the `browser` fixture

and marks itself `pytestmark = BROWSER_MARKS` (selectable with `-m browser`, skipped when the
Chromium binary is missing)."""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Request, Response, ViewportSize, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu"]
TIMEOUT_MS = 30_000
DESKTOP: ViewportSize = {"width": 1440, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}

BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not installed (make browser installs it)"),
]


@contextmanager
def launch_chromium() -> Iterator[Browser]:
    """The system Chromium, headless, closed (with Playwright) on exit."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module", name="browser")
def chromium_browser() -> Iterator[Browser]:
    """One headless Chromium per test module."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (make browser installs it)")
    with launch_chromium() as browser:
        yield browser


def watch_responses(context: BrowserContext, server_errors: list[str]) -> None:
    """Note every 5xx any page of `context` receives in `server_errors`."""

    def check(response: Response) -> None:
        if response.status >= 500:
            server_errors.append(f"{response.status} {response.url}")

    context.on("response", check)


def new_context(
    browser: Browser,
    base_url: str,
    *,
    server_errors: list[str],
    viewport: ViewportSize = DESKTOP,
    locale: str = "zh-CN",
    **options: Any,
) -> BrowserContext:
    """A browser context on the server (Chinese, 30 s default timeout) whose 5xx land in `server_errors`;
    `options` go to `Browser.new_context` (a phone's `is_mobile`, `has_touch`, `user_agent` ...)."""
    context = browser.new_context(base_url=base_url, viewport=viewport, locale=locale, **options)
    context.set_default_timeout(TIMEOUT_MS)
    watch_responses(context, server_errors)
    return context


@dataclass
class Watched:
    """A page, and every 5xx and every uncaught script error it met."""

    page: Page
    server_errors: list[str] = field(default_factory=list)
    script_errors: list[str] = field(default_factory=list)


@contextmanager
def watched_page(
    browser: Browser, base_url: str, *, server_errors: list[str] | None = None, **options: Any
) -> Iterator[Watched]:
    """A page in a new context (see `new_context`) with its 5xx and script errors collected; the
    context is closed on exit. Pass `server_errors` to share one list between several pages."""
    errors: list[str] = [] if server_errors is None else server_errors
    context = new_context(browser, base_url, server_errors=errors, **options)
    try:
        page = context.new_page()
        watched = Watched(page, errors)
        page.on("pageerror", lambda error: watched.script_errors.append(str(error)))
        yield watched
    finally:
        context.close()


def log_in(page: Page, base_url: str, email: str, password: str) -> None:
    """Sign in to the console through its form and wait for the overview."""
    page.goto("/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")


SCREENSHOTS_ENV = "SIYU_SCREENSHOTS"
"""Set to a folder (docs/screenshots) to keep the pages' screenshots there, as the docs show them."""


def screenshot(page: Page, name: str, tmp_path: Path) -> Path:
    """A full-page PNG of `page` named `name`.png: in $SIYU_SCREENSHOTS when set, else in `tmp_path`."""
    import os

    folder = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


HTMX_EVENTS_SCRIPT = """
for (const name of ["htmx:beforeRequest", "htmx:afterRequest", "htmx:sendError", "htmx:responseError",
                    "htmx:timeout", "htmx:abort"]) {
  document.addEventListener(name, (e) => console.debug(name, e.detail && e.detail.pathInfo
    ? e.detail.pathInfo.requestPath : "", e.detail && e.detail.xhr ? e.detail.xhr.status : ""));
}
"""
"""Logs htmx's request events to the console, where `NetworkLog` sees them."""


class NetworkLog:
    """A page's requests, answers, failures and console messages, timed: what a wait that ran out
    is explained with. It adds `HTMX_EVENTS_SCRIPT` to the pages loaded after it was made."""

    def __init__(self, page: Page) -> None:
        self.started = time.monotonic()
        self.lines: list[str] = []
        self.requests: list[tuple[str, str]] = []
        """(method, URL) of every request the page made, in order."""
        page.add_init_script(HTMX_EVENTS_SCRIPT)
        page.on("request", self._request)
        page.on("response", lambda r: self._note(f"<- {r.status} {r.url}"))
        page.on("requestfailed", lambda r: self._note(f"failed {r.method} {r.url}: {r.failure}"))
        page.on("console", lambda m: self._note(f"console.{m.type}: {m.text}"))

    def _request(self, request: Request) -> None:
        self.requests.append((request.method, request.url))
        self._note(f"-> {request.method} {request.url}")

    def sent(self, method: str, path: str) -> int:
        """How many `method` requests to a URL ending in `path` the page has made."""
        return sum(1 for m, url in self.requests if m == method and url.endswith(path))

    def _note(self, text: str) -> None:
        self.lines.append(f"{time.monotonic() - self.started:8.2f}s {text}")

    def tail(self, lines: int = 60) -> str:
        """The last `lines` entries, one per line."""
        return "\n".join(self.lines[-lines:])


def thread_stacks(frames: int = 12) -> str:
    """Where each thread of this process is (an in-thread console server's included)."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    return "\n".join(
        f"--- thread {names.get(ident, ident)}\n" + "".join(traceback.format_stack(frame)[-frames:])
        for ident, frame in sys._current_frames().items()
    )
