"""Background work of journeys: the `journeys_tick` sweep that enrols and advances every minute."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from siyu.campaigns.journeys.engine import run_journeys
from siyu.db import get_database
from siyu.jobs.scheduler import periodic
from siyu.jobs.service import JobContext, job_actor
from siyu.kit.clock import system_clock

TICK_KIND = "journeys_tick"


@job_actor(TICK_KIND)
def journeys_tick_job(job: JobContext) -> dict[str, Any]:
    """One engine sweep; safe to run twice or concurrently (see `engine.run_journeys`)."""
    return run_journeys(get_database(), system_clock)


periodic(TICK_KIND, kind=TICK_KIND, every=lambda: timedelta(minutes=1))
