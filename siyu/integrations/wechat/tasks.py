"""Background jobs of the official account.

- `wechat_process_events` (every 5 minutes, or for one workspace): retries FAILED (and stuck
  RECEIVED) callback events, at most `callbacks.MAX_ATTEMPTS` times each.
- `wechat_qr_codes` {"live_code_id", "variants": [..]}: creates the parametric QR of a live code
  (one per arm, plus the plain one).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from siyu.db import Database, get_database
from siyu.integrations.wechat import callbacks
from siyu.integrations.wechat.client import OfficialClient, client_for
from siyu.integrations.wechat.config import load_account
from siyu.integrations.wechat.qrcodes import ensure_qr
from siyu.integrations.wecom.errors import NotConfigured, WecomError
from siyu.jobs.scheduler import periodic
from siyu.jobs.service import JobContext, job_actor
from siyu.kit.clock import Clock, system_clock
from siyu.models import WechatOfficialAccount
from siyu.workspaces.scope import bind_workspace

logger = logging.getLogger(__name__)
SWEEP_KIND = "wechat_process_events"
QR_KIND = "wechat_qr_codes"


def sweep(database: Database, clock: Clock, *, workspace_id: int | None = None) -> dict[str, int]:
    """Process again the events that failed: `user/info` is asked with no transaction open, then
    each event is processed in a transaction of its own (skipped if another run moved it on)."""
    totals = {"workspaces": 0, "retried": 0, "processed": 0}
    with database.transaction(read_only=True) as session:
        query = select(WechatOfficialAccount.workspace_id).where(WechatOfficialAccount.is_active.is_(True))
        if workspace_id is not None:
            query = query.where(WechatOfficialAccount.workspace_id == workspace_id)
        workspaces = list(session.scalars(query.order_by(WechatOfficialAccount.workspace_id)))
    for ws in workspaces:
        try:
            with database.transaction(read_only=True) as session:
                bind_workspace(session, ws)
                config = load_account(session, ws)
                waiting = [(e.id, e.attempts, dict(e.payload)) for e in callbacks.retryable_events(session, ws)]
            try:
                client: OfficialClient | None = client_for(config)
            except NotConfigured:
                client = None
            for event_id, attempts, payload in waiting:
                info = callbacks.lookup(payload, config, client)
                with database.transaction() as session:
                    bind_workspace(session, ws)
                    event = callbacks.reclaim(session, ws, event_id, attempts)
                    if event is None:
                        continue  # processed meanwhile
                    callbacks.process(session, event, config, clock, info)
                    totals["retried"] += 1
                    totals["processed"] += event.status != "failed"
        except NotConfigured:
            continue
        except Exception:
            logger.exception("official account event sweep failed", extra={"workspace_id": ws})
            continue
        totals["workspaces"] += 1
    return totals


@job_actor(SWEEP_KIND)
def sweep_job(job: JobContext) -> dict[str, Any]:
    return sweep(get_database(), system_clock, workspace_id=job.workspace_id)


@job_actor(QR_KIND)
def qr_codes_job(job: JobContext) -> dict[str, Any]:
    """Create the live code's parametric QR codes, each committed on its own (a retry keeps the
    ones made); a WeChat error is recorded on the account in a transaction of its own."""
    live_code_id = int(job.args["live_code_id"])
    variants: list[str | None] = [None, *[str(v) for v in job.args.get("variants") or []]]
    with job.transaction() as session:
        try:
            config = load_account(session, int(job.workspace_id or 0))
        except NotConfigured:
            return {"skipped": "not configured"}
    client = client_for(config)
    made: list[str] = []
    for variant in variants:
        try:
            with job.transaction() as session:
                row = ensure_qr(session, config, client, live_code_id=live_code_id, variant=variant, clock=system_clock)
                made.append(row.scene)
        except WecomError as exc:
            with job.transaction() as session:
                callbacks.note_error(session, config, exc, system_clock)
            if exc.retryable:
                raise
            return {"error": str(exc), "created": made}
    return {"created": made}


periodic(SWEEP_KIND, kind=SWEEP_KIND, every=lambda: timedelta(minutes=5))
