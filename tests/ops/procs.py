"""Start and stop real siyu processes (serve, worker, scheduler) for multi-process tests.

    with throwaway_pg() as db_url, redis_db(db=13) as broker_url:
        env = siyu_env(db_url, broker_url, data_dir)
        run_cli(["migrate"], env)
        api = start_api(free_port(), env)
        wait_ready(api.url + "/readyz")
        ...
        kill(api)                     # SIGTERM, wait, return the exit code

Each process writes its output to a log file (shown by `SiyuProcess.output()` in failures);
`stop_all()` ends whatever is still running. Processes run with this interpreter
(`sys.executable -m siyu`) from the repository root; `imports` loads extra modules first (a test
job kind every worker must know).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import make_url

from tests.conftest import PG_URL, _throwaway_postgres

ROOT = Path(__file__).resolve().parents[2]
BROKER_URL = os.environ.get("SIYU_TEST_BROKER_URL")
_BOOT = (
    "import importlib, sys\n"
    "for name in filter(None, sys.argv[1].split(',')):\n"
    "    importlib.import_module(name)\n"
    "sys.argv = ['siyu', *sys.argv[2:]]\n"
    "from siyu.cli import main\n"
    "main()\n"
)


@dataclass
class SiyuProcess:
    """One running siyu command."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    port: int | None = None
    """The HTTP port (API port, or the worker/scheduler health port)."""
    args: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def url(self) -> str:
        assert self.port is not None, f"{self.name} has no HTTP port"
        return f"http://127.0.0.1:{self.port}"

    def output(self, tail: int = 4000) -> str:
        """The end of the process's output (for assertion messages)."""
        return self.log_path.read_text(errors="replace")[-tail:] if self.log_path.exists() else ""

    def is_running(self) -> bool:
        return self.popen.poll() is None


_started: list[SiyuProcess] = []


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def siyu_env(database_url: str, broker_url: str | None, data_dir: Path, **settings: Any) -> dict[str, str]:
    """The environment for a siyu process: this one's, minus any SIYU_* it had, plus the given settings
    (`shutdown_grace_s=2` becomes SIYU_SHUTDOWN_GRACE_S=2)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIYU_") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(
        # Compiled modules kept outside the repository and shared between runs: each process then
        # starts without compiling siyu again (start-up is most of a multi-process test's time).
        PYTHONPYCACHEPREFIX=str(Path(tempfile.gettempdir()) / "siyu-test-pycache"),
        SIYU_DATABASE_URL=database_url,
        SIYU_DATA_DIR=str(data_dir),
        SIYU_SECRET_KEY="procs-secret",
        SIYU_LOG_JSON="true",
        PYTHONUNBUFFERED="1",
    )
    if broker_url:
        env["SIYU_BROKER_URL"] = broker_url
    for key, value in settings.items():
        env[f"SIYU_{key.upper()}"] = str(value)
    return env


def _start(
    name: str, args: Sequence[str], env: dict[str, str], *, port: int | None, imports: Sequence[str]
) -> SiyuProcess:
    log_dir = Path(env.get("SIYU_DATA_DIR") or tempfile.gettempdir()) / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}-{len(_started)}.log"
    command = [sys.executable, "-c", _BOOT, ",".join(imports), *args]
    with log_path.open("wb") as log:
        popen = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    process = SiyuProcess(name=name, popen=popen, log_path=log_path, port=port, args=list(args))
    _started.append(process)
    return process


def run_cli(args: Sequence[str], env: dict[str, str], *, timeout: float = 120) -> str:
    """Run one siyu command to completion (e.g. `["migrate"]`); returns its output, raises on failure."""
    done = subprocess.run(
        [sys.executable, "-m", "siyu", *args], env=env, cwd=ROOT, capture_output=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"siyu {' '.join(args)} exited {done.returncode}: {done.stderr.decode()[-2000:]}")
    return done.stdout.decode()


def start_api(port: int, env: dict[str, str], *, migrate: bool = False, imports: Sequence[str] = ()) -> SiyuProcess:
    """`siyu serve` on 127.0.0.1:`port` (`--no-migrate` unless `migrate`)."""
    args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--migrate" if migrate else "--no-migrate"]
    return _start("api", args, env, port=port, imports=imports)


def start_worker(
    env: dict[str, str], threads: int = 2, *, health_port: int | None = None, imports: Sequence[str] = ()
) -> SiyuProcess:
    """`siyu worker --threads N`, answering probes on `health_port` (a free one when None)."""
    port = health_port or free_port()
    args = ["worker", "--threads", str(threads), "--processes", "1", "--health-port", str(port)]
    return _start("worker", args, env, port=port, imports=imports)


def start_scheduler(
    env: dict[str, str], *, interval_s: float | None = None, health_port: int | None = None, imports: Sequence[str] = ()
) -> SiyuProcess:
    """`siyu scheduler`; its /healthz body says whether it leads (`"leader": true`)."""
    port = health_port or free_port()
    args = ["scheduler", "--health-port", str(port)]
    if interval_s is not None:
        args += ["--interval", str(interval_s)]
    return _start("scheduler", args, env, port=port, imports=imports)


def get_json(url: str, *, timeout: float = 5) -> tuple[int, Any]:
    """GET `url`; returns (status, parsed JSON body), also for 4xx/5xx answers."""
    import json

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def wait_ready(url: str, *, timeout: float = 120, process: SiyuProcess | None = None) -> float:
    """Poll `url` until it answers 200; returns the seconds waited. Fails early if `process` exits."""
    started = time.monotonic()
    last: object = None
    while time.monotonic() - started < timeout:
        if process is not None and not process.is_running():
            raise AssertionError(f"{process.name} exited {process.popen.returncode}:\n{process.output()}")
        try:
            status, body = get_json(url, timeout=2)
            if status == 200:
                return time.monotonic() - started
            last = (status, body)
        except (OSError, ValueError) as exc:
            last = exc
        time.sleep(0.1)
    detail = process.output() if process is not None else ""
    raise AssertionError(f"{url} not ready after {timeout}s (last: {last!r})\n{detail}")


def kill(process: SiyuProcess, sig: int = signal.SIGTERM, *, timeout: float = 30) -> int:
    """Send `sig` and wait for the process to exit (SIGKILL after `timeout`); returns its exit code."""
    if process.is_running():
        process.popen.send_signal(sig)
    try:
        return process.popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.popen.kill()
        return process.popen.wait()


def stop_all(*, timeout: float = 15) -> None:
    """SIGTERM every process started here that still runs, then wait (SIGKILL after `timeout`)."""
    running = [p for p in _started if p.is_running()]
    for process in running:
        process.popen.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in running:
        try:
            process.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.popen.kill()
            process.popen.wait()
    _started.clear()


@contextmanager
def throwaway_pg() -> Iterator[str]:
    """A fresh, empty PostgreSQL database on SIYU_TEST_DATABASE_URL's server; yields its URL, drops it after."""
    assert PG_URL, "SIYU_TEST_DATABASE_URL not set"
    with _throwaway_postgres(PG_URL) as engine:
        url = engine.url.render_as_string(hide_password=False)
        engine.dispose()
        yield url.replace("postgresql+psycopg://", "postgresql://", 1)


@contextmanager
def redis_db(db: int, *, base_url: str | None = None) -> Iterator[str]:
    """Redis database number `db` on SIYU_TEST_BROKER_URL's server, flushed before and after; yields its URL.

    Pick a number no other test uses at the same time (the job tests use the URL's own number).
    """
    import redis

    base = base_url or BROKER_URL
    assert base, "SIYU_TEST_BROKER_URL not set"
    url = make_url(base).set(database=str(db)).render_as_string(hide_password=False)
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()
