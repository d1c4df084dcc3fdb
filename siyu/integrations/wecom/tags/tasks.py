"""Background jobs of tag sync: "pull now" / "push now" (one workspace), `mark_tag` for one
customer tag change, and the periodic sync of every workspace (push, which pulls first, then the
`mark_tag` calls that failed with a retryable error)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from siyu.db import get_database
from siyu.integrations.wecom import status
from siyu.integrations.wecom.client import redact
from siyu.integrations.wecom.config import load_config
from siyu.integrations.wecom.errors import NotConfigured, WecomError
from siyu.integrations.wecom.tags.customers import BULK_KIND, MARK_KIND, mark_customer_tag
from siyu.integrations.wecom.tags.state import RUN_SCOPE, load_map
from siyu.integrations.wecom.tags.sync import pull, push
from siyu.jobs.scheduler import periodic
from siyu.jobs.service import JobContext, enqueue, job_actor
from siyu.kit.clock import Clock, system_clock
from siyu.models import CustomerTag, Job, JobStatus, SyncStatus, WecomIntegration, WecomSyncRun
from siyu.workspaces.scope import bind_workspace

logger = logging.getLogger(__name__)
PULL_KIND = "wecom_tags_pull"
PUSH_KIND = "wecom_tags_push"
SYNC_KIND = "wecom_tags_sync"
SYNC_EVERY = timedelta(minutes=30)
MAX_MARK_ATTEMPTS = 5
BULK_CHUNK = 100
STALE_RUN = timedelta(hours=1)
"""A RUNNING tags run older than this is a crashed one: it no longer blocks new runs."""


def queue_once(
    session: Any,
    *,
    kind: str,
    workspace_id: int,
    clock: Clock,
    args: dict[str, Any] | None = None,
    created_by: str | None = None,
) -> tuple[Job, bool]:
    """Queue a tags job unless the same kind is already queued for the workspace: (job, queued now)."""
    waiting = session.scalar(
        select(Job)
        .where(Job.kind == kind, Job.workspace_id == workspace_id, Job.status == JobStatus.QUEUED)
        .order_by(Job.id)
        .limit(1)
    )
    if waiting is not None:
        return waiting, False
    job = enqueue(session, kind=kind, args=args or {}, workspace_id=workspace_id, clock=clock, created_by=created_by)
    return job, True


def run_tag_sync(workspace_id: int, step: str, clock: Clock, *, allow_mass_delete: bool = False) -> dict[str, Any]:
    """One pull or push in its own transaction, recorded as a `WecomSyncRun` (scope "tags"); a
    WeCom failure is kept on the run and the integration, and returned, not raised. Only one runs
    per workspace at a time: under the map lock, a RUNNING run (younger than `STALE_RUN`) means
    this one is skipped."""
    database = get_database()
    with database.transaction() as session:
        bind_workspace(session, workspace_id)
        try:
            load_config(session, workspace_id)
        except NotConfigured:
            return {"skipped": "not configured"}
        load_map(session, workspace_id, clock, lock=True)
        running = session.scalar(
            select(WecomSyncRun.id).where(
                WecomSyncRun.workspace_id == workspace_id,
                WecomSyncRun.scope == RUN_SCOPE,
                WecomSyncRun.status == SyncStatus.RUNNING,
                WecomSyncRun.started_at > clock.now() - STALE_RUN,
            )
        )
        if running is not None:
            return {"skipped": "already running", "run_id": running}
        run = WecomSyncRun(
            workspace_id=workspace_id, scope=RUN_SCOPE, step=step, status=SyncStatus.RUNNING, started_at=clock.now()
        )
        session.add(run)
        session.flush()
        run_id = run.id
    try:
        with database.transaction() as session:
            bind_workspace(session, workspace_id)
            config = load_config(session, workspace_id)
            counts = (push if step == "push" else pull)(session, config, clock, allow_mass_delete=allow_mass_delete)
            if step == "push":
                counts["marks_retried"] = retry_marks(session, workspace_id, clock)
            done = session.get(WecomSyncRun, run_id)
            assert done is not None
            done.status, done.counts, done.finished_at = SyncStatus.DONE, dict(counts), clock.now()
            return dict(counts) | {"run_id": run_id}
    except (WecomError, NotConfigured) as exc:
        text = redact(str(exc))[:1000]
        with database.transaction() as session:
            bind_workspace(session, workspace_id)
            failed = session.get(WecomSyncRun, run_id)
            assert failed is not None
            failed.status, failed.error, failed.finished_at = SyncStatus.FAILED, text, clock.now()
            status.note_error(session, workspace_id, text, clock)
        retryable = bool(getattr(exc, "retryable", False))
        return {"error": text, "retryable": retryable, "run_id": run_id}


def retry_marks(session: Any, workspace_id: int, clock: Clock) -> int:
    """Try the pending `mark_tag` calls again (each at most `MAX_MARK_ATTEMPTS` times in all). What
    is sent is whether the customer has the tag in siyu NOW, not what the failed call wanted: a
    retry never undoes a newer change."""
    tmap = load_map(session, workspace_id, clock)
    pending, tmap.pending = tmap.pending, []
    tmap.save()
    config = load_config(session, workspace_id)
    done = 0
    for item in pending:
        customer_id, tag_id = int(item["customer_id"]), int(item["tag_id"])
        has_now = session.scalar(
            select(CustomerTag.id).where(CustomerTag.customer_id == customer_id, CustomerTag.tag_id == tag_id)
        )
        item = {**item, "is_added": has_now is not None}
        try:
            mark_customer_tag(
                session,
                config,
                customer_id=customer_id,
                tag_id=tag_id,
                is_added=has_now is not None,
                clock=clock,
                external_userid=item.get("external_userid"),
            )
            done += 1
        except WecomError as exc:
            _remember(session, workspace_id, item, exc, clock)
    return done


def _remember(session: Any, workspace_id: int, item: dict[str, Any], exc: WecomError, clock: Clock) -> None:
    tmap = load_map(session, workspace_id, clock)
    attempts = int(item.get("attempts") or 0) + 1
    if attempts >= MAX_MARK_ATTEMPTS:
        tmap.issue("mark_tag_gave_up", f"customer {item['customer_id']} / tag {item['tag_id']}: {exc}", clock)
    else:
        tmap.add_pending({**item, "attempts": attempts})
    tmap.save()
    status.note_error(session, workspace_id, exc, clock)


def mark_job_body(workspace_id: int, args: dict[str, Any], clock: Clock) -> dict[str, Any]:
    """Run one `mark_tag` change; a retryable failure is queued for the periodic sync. No savepoint:
    issues recorded for edges before a retryable failure stay."""
    customer_id, tag_id, is_added = int(args["customer_id"]), int(args["tag_id"]), bool(args["is_added"])
    item: dict[str, Any] = {"customer_id": customer_id, "tag_id": tag_id, "is_added": is_added}
    if args.get("external_userid"):
        item["external_userid"] = str(args["external_userid"])
    with get_database().transaction() as session:
        bind_workspace(session, workspace_id)
        try:
            config = load_config(session, workspace_id)
        except NotConfigured:
            return {"skipped": "not configured"}
        try:
            return mark_customer_tag(
                session,
                config,
                customer_id=customer_id,
                tag_id=tag_id,
                is_added=is_added,
                clock=clock,
                external_userid=item.get("external_userid"),
            )
        except WecomError as exc:
            _remember(session, workspace_id, item, exc, clock)
            return {"error": redact(str(exc)), "retry": True}


def bulk_job_body(workspace_id: int, args: dict[str, Any], clock: Clock) -> dict[str, Any]:
    """`mark_tag` for every customer of one bulk action, `BULK_CHUNK` customers per transaction."""
    ids = [int(i) for i in args["customer_ids"]]
    totals = {"customers": 0, "retry": 0, "skipped": 0}
    for start in range(0, len(ids), BULK_CHUNK):
        for customer_id in ids[start : start + BULK_CHUNK]:
            one = mark_job_body(
                workspace_id,
                {"customer_id": customer_id, "tag_id": args["tag_id"], "is_added": args["is_added"]},
                clock,
            )
            totals["customers"] += 1
            totals["retry"] += 1 if one.get("retry") else 0
            totals["skipped"] += 1 if "skipped" in one else 0
    return totals


@job_actor(PULL_KIND)
def pull_job(job: JobContext) -> dict[str, Any]:
    """Pull now (one workspace); `allow_mass_delete` when the operator confirmed held deletions."""
    assert job.workspace_id is not None
    return run_tag_sync(
        job.workspace_id, "pull", system_clock, allow_mass_delete=bool(job.args.get("allow_mass_delete"))
    )


@job_actor(PUSH_KIND)
def push_job(job: JobContext) -> dict[str, Any]:
    """Push now (one workspace): pull, push, then retry pending `mark_tag` calls."""
    assert job.workspace_id is not None
    return run_tag_sync(
        job.workspace_id, "push", system_clock, allow_mass_delete=bool(job.args.get("allow_mass_delete"))
    )


@job_actor(MARK_KIND)
def mark_job(job: JobContext) -> dict[str, Any]:
    """`mark_tag` for one customer tag change made in siyu."""
    assert job.workspace_id is not None
    return mark_job_body(job.workspace_id, job.args, system_clock)


@job_actor(BULK_KIND)
def bulk_mark_job(job: JobContext) -> dict[str, Any]:
    """`mark_tag` for the customers of one bulk tag/untag made in siyu."""
    assert job.workspace_id is not None
    return bulk_job_body(job.workspace_id, job.args, system_clock)


@job_actor(SYNC_KIND)
def sync_job(job: JobContext) -> dict[str, Any]:
    """Periodic: push (pull first) for every workspace with an active integration."""
    with get_database().transaction(read_only=True) as session:
        workspace_ids = list(
            session.scalars(
                select(WecomIntegration.workspace_id)
                .where(WecomIntegration.is_active.is_(True))
                .order_by(WecomIntegration.workspace_id)
                .execution_options(siyu_unscoped=True)
            )
        )
    totals = {"workspaces": 0, "failed": 0}
    for workspace_id in workspace_ids:
        try:
            result = run_tag_sync(workspace_id, "push", system_clock)
        except Exception:  # one workspace's failure (e.g. secrets unreadable) must not stop the rest
            logger.exception("tag sync failed", extra={"workspace_id": workspace_id})
            result = {"error": "unexpected"}
        totals["workspaces"] += 1
        totals["failed"] += 1 if "error" in result else 0
    return totals


periodic(SYNC_KIND, kind=SYNC_KIND, every=lambda: SYNC_EVERY)
