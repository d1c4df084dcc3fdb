"""Mounting the fake server inside siyu's app for the demo (`SIYU_FAKE_WECOM=true`).

The fake is served at `/fake-wecom` (API under `/fake-wecom/cgi-bin/`, sims under `/fake-wecom/sim/`,
the fake's console page at `/fake-wecom/`). Its state lives in `<data_dir>/fake-wecom.json` (mode 0600:
it holds the fake corps' secrets): loaded at mount, marked changed after every POST (sims and API calls
that change state), written by a background saver every few seconds when something changed, and at
the app's shutdown (or process exit). A state file that cannot be read is kept as
`fake-wecom.json.broken` and the fake starts empty.

The fake has no authentication: anyone who reaches `/fake-wecom` can read its corps and trigger events.
A warning is logged when it is mounted on a `public_url` that is not a loopback address.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from starlette.responses import Response

from siyu.config import Settings
from siyu.integrations.wecom.fake.state import FakeWecom

logger = logging.getLogger(__name__)

MOUNT_PATH = "/fake-wecom"
STATE_FILE = "fake-wecom.json"
BROKEN_SUFFIX = ".broken"
SAVE_EVERY_S = 2.0
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def save_private(fake: FakeWecom, path: Path) -> None:
    """Write the fake's state to `path` readable by the owner only (0600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    data = json.dumps(fake.to_json(), ensure_ascii=False).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an older tmp file may have been created with wider rights
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class _Persisted:
    """The mounted fake and where it is saved; saves are serialised and skipped when nothing changed."""

    def __init__(self, fake: FakeWecom, path: Path) -> None:
        self.fake = fake
        self.path = path
        self.dirty = threading.Event()
        self.save_lock = threading.Lock()
        self.stop = threading.Event()

    def save(self) -> bool:
        """Write the state now; on failure log it and leave it marked changed (the saver retries)."""
        with self.save_lock:
            self.dirty.clear()
            try:
                save_private(self.fake, self.path)
            except Exception:
                self.dirty.set()
                logger.exception("cannot save the fake WeCom state", extra={"path": str(self.path)})
                return False
            return True

    def run(self) -> None:
        while not self.stop.wait(SAVE_EVERY_S):
            try:
                if self.dirty.is_set():
                    self.save()
            except Exception:  # the saver must outlive any surprise
                logger.exception("fake WeCom saver error")

    def shutdown(self) -> None:
        self.stop.set()
        if self.dirty.is_set():
            self.save()


class _RedactAccessLog(logging.Filter):
    """The fake is called with `?access_token=…` in the URL: keep it out of uvicorn's access log."""

    def filter(self, record: logging.LogRecord) -> bool:
        from siyu.integrations.wecom.client import redact

        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


_REDACT = _RedactAccessLog()
_mounted: _Persisted | None = None
_exit_hook = False


def mounted_fake() -> FakeWecom | None:
    """The fake served at `/fake-wecom` by this process (None when `SIYU_FAKE_WECOM` is off)."""
    return _mounted.fake if _mounted is not None else None


def state_path(settings: Settings) -> Path:
    """Where the demo's fake WeCom state is kept."""
    return Path(settings.data_dir) / STATE_FILE


def save_soon() -> None:
    """Mark the mounted fake's state as changed (the saver writes it within a few seconds)."""
    if _mounted is not None:
        _mounted.dirty.set()


def save_now() -> None:
    """Write the mounted fake's state at once (tests, shutdown)."""
    if _mounted is not None:
        _mounted.save()


def _unmount() -> None:
    global _mounted
    if _mounted is not None:
        _mounted.shutdown()
        _mounted = None


def _at_exit() -> None:
    if _mounted is not None:
        _mounted.shutdown()


def load_state(path: Path) -> FakeWecom:
    """The fake saved at `path` (empty when missing; an unreadable file is moved to `*.broken`)."""
    try:
        return FakeWecom.load(path)
    except Exception:
        broken = path.with_name(path.name + BROKEN_SUFFIX)
        logger.exception(
            "cannot read the fake WeCom state; kept it aside and starting empty", extra={"path": str(broken)}
        )
        try:
            path.replace(broken)
        except OSError:
            logger.exception("cannot move the broken fake WeCom state aside", extra={"path": str(path)})
        return FakeWecom()


def is_loopback(url: str) -> bool:
    """Whether `url` points at this machine only (127.0.0.1, localhost, ::1)."""
    host = urlsplit(url).hostname or ""
    return host in _LOOPBACK or host.startswith("127.")


def mount_fake(app: FastAPI, settings: Settings) -> None:
    """Serve the fake WeCom server at `/fake-wecom` when the settings ask for it (else forget any fake
    an earlier app of this process mounted)."""
    global _mounted, _exit_hook
    _unmount()
    if not settings.fake_wecom:
        return
    from siyu.integrations.wecom.fake.app import create_fake_app

    if not is_loopback(settings.public_url):
        logger.warning(
            "the fake WeCom at /fake-wecom has no authentication and public_url is not a loopback address: "
            "anyone reaching it can read the fake corps and trigger events",
            extra={"public_url": settings.public_url},
        )
    path = state_path(settings)
    fake = load_state(path)
    persisted = _Persisted(fake, path)
    _mounted = persisted
    fake_app = create_fake_app(fake)

    @fake_app.middleware("http")
    async def _mark_dirty(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        if request.method == "POST":
            persisted.dirty.set()
        return response

    app.state.fake_wecom = fake
    access_log = logging.getLogger("uvicorn.access")
    if _REDACT not in access_log.filters:
        access_log.addFilter(_REDACT)
    app.mount(MOUNT_PATH, fake_app)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(wrapped: Any) -> AsyncIterator[Any]:
        async with inner(wrapped) as state:
            try:
                yield state
            finally:
                persisted.shutdown()

    app.router.lifespan_context = lifespan
    threading.Thread(target=persisted.run, name="fake-wecom-saver", daemon=True).start()
    if not _exit_hook:  # one hook for the process, saving whichever fake is mounted then
        atexit.register(_at_exit)
        _exit_hook = True
