"""A local HTTP server for adapter tests: each test scripts the provider's answers and reads what
was sent. It speaks plain HTTP on 127.0.0.1 with a random port, in a thread of the test process."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    """A dict/list (sent as JSON), bytes, or None."""
    delay_s: float = 0.0
    """Sleep before answering (a provider timeout when longer than the client's)."""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    """Close the connection without answering (a provider that drops it)."""


Handler = Callable[[Request], Reply]


@dataclass
class FakeServer:
    """Routes "METHOD /path" to handlers; unknown routes answer 404. `requests` records everything."""

    routes: dict[str, Handler] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    url: str = ""

    def route(self, method: str, path: str, handler: Handler) -> None:
        self.routes[f"{method} {path}"] = handler

    def calls(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]


@contextmanager
def fake_server() -> Iterator[FakeServer]:
    server_state = FakeServer()

    class _Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(
                method=self.command,
                path=parts.path,
                query={k: v[0] for k, v in parse_qs(parts.query).items()},
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
            )
            server_state.requests.append(request)
            handler = server_state.routes.get(f"{self.command} {parts.path}")
            reply = handler(request) if handler else Reply(404, {"error": "no route"})
            if reply.drop:
                self.close_connection = True
                return
            if reply.delay_s:
                time.sleep(reply.delay_s)
            if isinstance(reply.body, bytes):
                payload, content_type = reply.body, "application/octet-stream"
            elif reply.body is None:
                payload, content_type = b"", "text/plain"
            else:
                payload, content_type = json.dumps(reply.body).encode(), "application/json"
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.headers.get("Content-Type", content_type))
                for name, value in reply.headers.items():
                    if name != "Content-Type":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                pass

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return None

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    server_state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server_state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
