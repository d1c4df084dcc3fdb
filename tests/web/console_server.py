"""A real console server for browser tests: uvicorn in a thread over a database URL."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TypeVar

from siyu.app import create_app
from siyu.config import Settings
from siyu.db import Database, set_database
from tests.conftest import PG_URL, _throwaway_postgres

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def console_server(url: str, data_dir: Path, *, run_worker: bool) -> Iterator[str]:
    """Serve the app over `url` on a free loopback port; yields the base URL, stops it after."""
    import uvicorn

    settings = Settings(
        database_url=url, data_dir=data_dir, secret_key="browser-secret", log_json=False, broker_url=None
    )
    database = Database(settings)
    app = create_app(settings, database=database, run_worker=run_worker, run_scheduler=False)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the console server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        database.engine.dispose()
        set_database(None)


@contextmanager
def seeded_console(backend: str, folder: Path, seed: Callable[[str], T]) -> Iterator[tuple[str, T]]:
    """A console over a fresh database of `backend` ("sqlite" or "postgresql") that `seed(url)`
    fills first; yields the base URL and what `seed` returned."""
    with ExitStack() as stack:
        if backend == "sqlite":
            url = f"sqlite:///{folder / 'siyu.db'}"
        else:
            assert PG_URL
            url = stack.enter_context(_throwaway_postgres(PG_URL)).url.render_as_string(hide_password=False)
        seeded = seed(url)
        yield stack.enter_context(console_server(url, folder / "data", run_worker=False)), seeded
