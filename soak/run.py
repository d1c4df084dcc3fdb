"""`make soak`: the load run and the fault run against real processes on PostgreSQL + Redis.

    python -m soak.run --seconds 300 --recipients 200000 [--skip-load] [--skip-faults]

1. Load: 2 `siyu serve`, 2 `siyu worker`, 2 `siyu scheduler` over a throwaway PostgreSQL database
   and Redis database 10; `soak.load.drive` for `--seconds` from 8 threads over both APIs; then
   `soak.load.verify`. Fails on any 5xx, socket error or accepted write without its row.
2. Faults: a broadcast to `--recipients` customers (bench.dispatch_bench's brand, no quiet hours)
   planned and sent by the workers; mid-send, `kill -9` one worker, the scheduler leader and one
   API (while the load driver runs against both APIs for the rest of the send), then restart Redis
   (a redis-server of the run's own, append-only file on, unless `--shared-redis`); a replacement
   worker is started. Checks: every queued delivery ends `sent` exactly once (one sandbox message
   per delivery), no job left `running`/`queued` once Redis has redelivered the killed worker's
   messages (Dramatiq's 60 s heartbeat), the stand-by scheduler leads within the stand-by period
   + 1 s, and the load against the surviving API saw no 5xx (socket errors on the killed API's
   connections are counted, not failed).
3. Import: a customer import of `--import-rows` rows whose database sessions are all ended
   server-side once its first batch is in (`pg_terminate_backend`; a real `pg_ctlcluster 15 main
   restart` with SIYU_SOAK_RESTART_PG=1): the job must end failed (or succeeded) with every written
   customer whole.

Prints one JSON object with every figure; exits 1 when a check fails. Uses tests/ops/procs.py (a
development tool, run from the repository).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from tempfile import mkdtemp
from typing import Any

from siyu.config import Settings
from siyu.db import Database
from siyu.migrate import upgrade
from soak.faults import STANDBY_S, OwnRedis, fault_run, import_fault
from soak.load import KINDS, drive, prepare, verify
from tests.ops.procs import (
    SiyuProcess,
    free_port,
    redis_db,
    siyu_env,
    start_api,
    start_scheduler,
    start_worker,
    stop_all,
    throwaway_pg,
    wait_ready,
)

SECRET = "procs-secret"


def _cluster(env: dict[str, str]) -> dict[str, list[SiyuProcess]]:
    roles = {
        "apis": [start_api(free_port(), env) for _ in range(2)],
        "workers": [start_worker(env, threads=2) for _ in range(2)],
        "schedulers": [start_scheduler(env) for _ in range(2)],
    }
    for process in [p for group in roles.values() for p in group]:
        wait_ready(process.url + "/readyz", timeout=240, process=process)
    return roles


def load_run(database: Database, roles: dict[str, list[SiyuProcess]], seconds: float) -> dict[str, Any]:
    fixture = prepare(database, members=max(200, int(seconds * 20)), slug="soak-load")
    report = drive([api.url for api in roles["apis"]], fixture, seconds=seconds, concurrency=8)
    summary = report.summary()
    summary["lost"] = verify(database, fixture, report)
    summary["ok"] = (summary["server_errors"], summary["socket_errors"], summary["rejected"]) == (0, 0, 0) and summary[
        "lost"
    ] == dict.fromkeys(KINDS, 0)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m soak.run", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--recipients", type=int, default=200_000)
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--skip-faults", action="store_true")
    parser.add_argument("--import-rows", type=int, default=100_000, help="rows of the import killed mid-way")
    parser.add_argument("--skip-import", action="store_true")
    parser.add_argument(
        "--shared-redis",
        action="store_true",
        help="use SIYU_TEST_BROKER_URL's server (database 10) instead of a redis-server of its own; no Redis restart",
    )
    args = parser.parse_args(argv)
    data_dir = Path(mkdtemp(prefix="siyu-soak-"))
    result: dict[str, Any] = {}
    own_redis = None if args.shared_redis else OwnRedis(data_dir)
    if own_redis is not None:
        own_redis.start()
    with throwaway_pg() as url, redis_db(10, base_url=own_redis.url if own_redis else None) as broker_url:
        database = Database(Settings(database_url=url, data_dir=data_dir, secret_key=SECRET, log_json=False))
        upgrade(database.engine)
        # Every client is 127.0.0.1 here, where real members come from many addresses: no per-IP limit.
        env = siyu_env(
            url, broker_url, data_dir, scheduler_standby_s=STANDBY_S, log_level="WARNING", public_requests_per_ip=0
        )
        try:
            roles = _cluster(env)
            if not args.skip_load:
                result["load"] = load_run(database, roles, args.seconds)
            if not args.skip_faults:
                result["faults"] = fault_run(database, env, roles, args.recipients, own_redis)
            if not args.skip_import:
                result["import"] = import_fault(database, env, args.import_rows)
        finally:
            stop_all()
            database.engine.dispose()
    if own_redis is not None:
        own_redis.stop()
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0 if all(part.get("ok") for part in result.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
