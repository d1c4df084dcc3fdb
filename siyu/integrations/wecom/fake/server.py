"""Run the fake server on 127.0.0.1 in a thread (tests), or as its own process (`siyu fake-wecom`)."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

import uvicorn

from siyu.integrations.wecom.fake.app import create_fake_app
from siyu.integrations.wecom.fake.state import FakeWecom


@dataclass
class RunningFake:
    fake: FakeWecom
    url: str
    """e.g. http://127.0.0.1:51234 — the WeCom API base is `url + "/cgi-bin/"`."""
    _server: uvicorn.Server
    _thread: threading.Thread

    @property
    def api_base_url(self) -> str:
        return self.url + "/cgi-bin/"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


def start_fake_server(fake: FakeWecom | None = None, *, port: int = 0) -> RunningFake:
    """Start the fake on a free port (or `port`) and wait until it answers."""
    fake = fake or FakeWecom()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    config = uvicorn.Config(create_fake_app(fake), log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("fake WeCom server did not start")
        time.sleep(0.01)
    return RunningFake(fake, f"http://127.0.0.1:{sock.getsockname()[1]}", server, thread)
