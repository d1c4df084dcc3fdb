"""A job kind for shutdown tests: it takes a while, and says which process and call ran it.

Worker processes load it through `tests.ops.procs` (`imports=["tests.ops.slowjob"]`).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from siyu.jobs.service import JobContext, job_actor

SLOW_KIND = "test_slow_job"
calls = 0
"""Runs started in this process."""
hold = threading.Event()
"""Set to let a run waiting on it (`args["wait_for_event"]`) go on."""


@job_actor(SLOW_KIND)
def slow_job(job: JobContext) -> dict[str, Any]:
    """Sleeps `seconds` (or, with `wait_for_event`, waits on `hold` on the first call), writing its
    pid to `<marker>.<call>` when it starts, so a test can find and signal the process running it."""
    global calls
    calls += 1
    call = calls
    marker = job.args.get("marker")
    if marker:
        Path(f"{marker}.{os.getpid()}").write_text(str(call))
    if job.args.get("wait_for_event") and call == 1:
        hold.wait(30)
    else:
        time.sleep(float(job.args.get("seconds", 0)))
    return {"pid": os.getpid(), "call": call}
