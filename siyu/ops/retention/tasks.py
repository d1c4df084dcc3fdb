"""Background job of retention.

- `retention.run`: daily; archives and removes events older than `SIYU_RETENTION_MONTHS` (nothing
  when it is 0). Safe to run twice: a second run finds nothing old left, or merges by id.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from siyu.db import get_database
from siyu.jobs.scheduler import periodic
from siyu.jobs.service import JobContext, job_actor
from siyu.kit.clock import system_clock
from siyu.ops.retention.service import run_retention

RUN_KIND = "retention.run"


@job_actor(RUN_KIND)
def run_job(job: JobContext) -> dict[str, Any]:
    database = get_database()
    return run_retention(database, database.settings, clock=system_clock).as_dict()


periodic(RUN_KIND, kind=RUN_KIND, every=lambda: timedelta(days=1))
