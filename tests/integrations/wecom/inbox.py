"""Test helpers for WeCom callbacks: deliver the fake's pushes to the app in-process, then run the
queued event jobs.

    client = TestClient(create_app(settings, database=database, clock=clock, run_worker=False))
    wire(setup.corp, client, setup.workspace.id)       # pushes now POST to /integrations/wecom/callback
    simulate_add(fake_wecom.fake, setup.corp.corp_id, userid="zhang")
    drain(database, clock)                             # process the stored events
"""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from siyu.db import Database
from siyu.integrations.wecom.callbacks.service import PROCESS_KIND
from siyu.integrations.wecom.callbacks.tasks import process_event
from siyu.integrations.wecom.fake.state import FakeCorp
from siyu.kit.clock import Clock
from siyu.models import Job, JobStatus

CALLBACK_PATH = "/integrations/wecom/callback"


def wire(corp: FakeCorp, client: TestClient, workspace_id: int | None) -> None:
    """Deliver `corp`'s pushes to the app behind `client` (with `?ws=` unless None)."""

    def transport(params: dict[str, str], body: bytes) -> int:
        query = dict(params)
        if workspace_id is not None:
            query["ws"] = str(workspace_id)
        return client.post(CALLBACK_PATH, params=query, content=body).status_code

    corp.transport = transport


def drain(database: Database, clock: Clock) -> list[dict[str, object]]:
    """Run every queued `wecom_process_event` job with `clock` (and mark it done); their results."""
    results: list[dict[str, object]] = []
    while True:
        with database.transaction(read_only=True) as session:
            jobs = [
                (job.id, job.workspace_id, int(job.args["event_id"]))
                for job in session.scalars(
                    select(Job).where(Job.kind == PROCESS_KIND, Job.status == JobStatus.QUEUED).order_by(Job.id)
                )
            ]
        if not jobs:
            return results
        for job_id, workspace_id, event_id in jobs:
            assert workspace_id is not None
            result = process_event(database, clock, workspace_id, event_id)
            with database.transaction() as session:
                job = session.get(Job, job_id)
                assert job is not None
                job.status, job.result, job.finished_at = JobStatus.SUCCEEDED, result, clock.now()
            results.append(result)
