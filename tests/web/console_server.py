"""A real console server for browser tests: uvicorn in a thread over a database URL."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from siyu.app import create_app
from siyu.config import Settings
from siyu.db import Database, set_database


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
