"""Background jobs of calendars: the minute sweeps that post group calendars and publish moments."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from siyu.campaigns.calendars.moments import publish_due_moments
from siyu.campaigns.calendars.posting import post_due_group_messages
from siyu.db import get_database
from siyu.jobs.scheduler import periodic
from siyu.jobs.service import JobContext, job_actor
from siyu.kit.clock import system_clock

GROUP_POSTS_KIND = "group_posts"
MOMENTS_KIND = "publish_moments"


@job_actor(GROUP_POSTS_KIND)
def group_posts_job(job: JobContext) -> dict[str, Any]:
    """Post every group calendar slot that is due (each post exactly once, see `posting.py`)."""
    return post_due_group_messages(get_database(), system_clock)


@job_actor(MOMENTS_KIND)
def publish_moments_job(job: JobContext) -> dict[str, Any]:
    """Turn today's moments posts whose slot has opened into tasks for their staff."""
    return publish_due_moments(get_database(), system_clock)


periodic(GROUP_POSTS_KIND, kind=GROUP_POSTS_KIND, every=lambda: timedelta(minutes=1))
periodic(MOMENTS_KIND, kind=MOMENTS_KIND, every=lambda: timedelta(minutes=1))
