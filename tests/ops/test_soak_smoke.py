"""The soak harness itself works: the load driver for 3 seconds against one `siyu serve` process
(SQLite, or a throwaway PostgreSQL database when SIYU_TEST_DATABASE_URL is set); no 5xx, no
accepted write without its row. The long runs are `make soak` (soak/run.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from siyu.config import Settings
from siyu.db import Database
from siyu.migrate import upgrade
from soak.load import KINDS, drive, prepare, verify
from tests.conftest import PG_URL
from tests.ops.procs import free_port, siyu_env, start_api, stop_all, throwaway_pg, wait_ready

SECRET = "procs-secret"  # what siyu_env gives the server: the member links must be signed with it


@contextmanager
def _database_url(data_dir: Path) -> Iterator[str]:
    if PG_URL:
        with throwaway_pg() as url:
            yield url
    else:
        yield f"sqlite:///{data_dir / 'soak.db'}"


def test_load_driver_runs_every_kind_without_5xx_or_lost_writes(tmp_path: Path) -> None:
    with _database_url(tmp_path) as url:
        database = Database(Settings(database_url=url, data_dir=tmp_path, secret_key=SECRET, log_json=False))
        try:
            upgrade(database.engine)
            fixture = prepare(database, members=40)
            api = start_api(free_port(), siyu_env(url, None, tmp_path, log_level="WARNING", public_requests_per_ip=0))
            try:
                wait_ready(api.url + "/readyz", timeout=60, process=api)
                report = drive([api.url], fixture, seconds=3, concurrency=4)
            finally:
                stop_all()
            summary = report.summary()
            # every kind was answered and accepted, nothing failed
            assert (summary["server_errors"], summary["socket_errors"], summary["rejected"]) == (0, 0, 0), json.dumps(
                summary["kinds"], ensure_ascii=False
            )
            assert all(summary["kinds"][kind]["accepted"] > 0 for kind in KINDS), summary
            assert summary["p99_ms"] is not None
            # and every accepted write has its row
            assert verify(database, fixture, report) == dict.fromkeys(KINDS, 0)
        finally:
            database.engine.dispose()
