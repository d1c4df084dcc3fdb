"""Calendar moment posts (朋友圈) published through WeCom.

    queue_moment(session, post, userid, text, clock) -> bool            # from publish_post
    sync_moments(database, config, clock) -> dict[str, int]             # the periodic job

When a workspace has an active WeCom integration and the persona's staff member a WeCom userid,
`siyu.campaigns.calendars.moments.publish_post` also queues a `WecomMomentTask` (status
"creating", no jobid, the `add_moment_task` body in `request`; text only: images and links of the
content item are not uploaded as attachments yet, the link stays in the text). The job then:

1. claims the task (status "unknown", committed) and calls `add_moment_task` (visible_range: the
   staff member) → jobid, status back to "creating". A refusal → "failed" with the errcode; a
   definite retryable error (busy, rate limit) → "creating" again. A timeout leaves "unknown": the
   outcome is not known, so the next runs look for the moment in `get_moment_list` (same text, made
   after the task) and adopt it; only when none shows up within `UNKNOWN_GRACE` is it resubmitted.
2. `get_moment_task_result` (async; status 3 = done) → moment_id, status "created" (or "failed"
   with the result's errcode, e.g. every sender invalid). Non-retryable errors of this call are
   counted; after `MAX_RESULT_ERRORS` of them, or `RESULT_TIMEOUT` after queueing, → "failed".
3. for created moments of the last `STATS_WINDOW`, `get_moment_task` (who published) and
   `get_moment_comments` per publisher → `stats` {"publishers", "not_published", "likes",
   "comments"} and `MomentPost.likes/comments`. When the post's figures were typed in by an operator
   (they differ from what WeCom reported last), the overwrite is audited ("results_from_wecom").

WeCom is asked outside transactions; each answer is written in its own short transaction with the
row locked (SKIP LOCKED: a row another run holds is skipped).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor
from siyu.db import Database
from siyu.integrations.wecom.client import WecomClient
from siyu.integrations.wecom.config import WecomConfig, client_for
from siyu.integrations.wecom.errors import WecomError
from siyu.integrations.wecom.messages.service import _pages, _tx, describe
from siyu.integrations.wecom.status import note_error
from siyu.kit.clock import Clock
from siyu.kit.sql import insert_or_ignore
from siyu.models import MomentPost, WecomIntegration, WecomMomentTask

logger = logging.getLogger(__name__)
CREATING, UNKNOWN, CREATED, FAILED = "creating", "unknown", "created", "failed"
STATS_WINDOW = timedelta(days=7)
"""Likes and comments keep coming for a few days; after this the stats are final."""
UNKNOWN_GRACE = timedelta(minutes=30)
"""How long a timed-out submission is looked for in `get_moment_list` before it is sent again."""
RESULT_TIMEOUT = timedelta(hours=24)
MAX_RESULT_ERRORS = 5
MAX_TEXT = 2000
UNKNOWN_REASONS = frozenset({"timeout"})
"""Client errors after which WeCom may have created the moment (the answer was lost)."""


def queue_moment(session: Session, post: MomentPost, userid: str | None, text: str, clock: Clock) -> bool:
    """Queue the WeCom moment task of a just-published post; False without an active integration or
    a WeCom userid (the staff task alone is the publication then). Idempotent per post."""
    if not userid:
        return False
    active = session.scalar(
        select(WecomIntegration.id).where(
            WecomIntegration.workspace_id == post.workspace_id, WecomIntegration.is_active.is_(True)
        )
    )
    if active is None:
        return False
    request = {"text": {"content": text[:MAX_TEXT]}, "visible_range": {"sender_list": {"user_list": [userid]}}}
    return insert_or_ignore(
        session,
        WecomMomentTask,
        {
            "workspace_id": post.workspace_id,
            "moment_post_id": post.id,
            "status": CREATING,
            "request": request,
            "stats": {},
            "created_at": clock.now(),
        },
        ["moment_post_id"],
    )


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _lock(session: Session, task_id: int, status: str) -> WecomMomentTask | None:
    return session.scalar(
        select(WecomMomentTask)
        .where(WecomMomentTask.id == task_id, WecomMomentTask.status == status)
        .with_for_update(skip_locked=True)
    )


def _fail(session: Session, task: WecomMomentTask, error: str, totals: dict[str, int]) -> None:
    task.status, task.error = FAILED, error[:500]
    totals["failed"] += 1


def _submit(
    database: Database, client: WecomClient, config: WecomConfig, task_id: int, clock: Clock, totals: dict[str, int]
) -> str | None:
    """Claim one queued task ("unknown", committed) and submit it; the jobid WeCom gave, if any."""
    workspace_id = config.workspace_id
    now = clock.now()
    with _tx(database, workspace_id) as session:
        claimed = session.execute(
            update(WecomMomentTask)
            .where(WecomMomentTask.id == task_id, WecomMomentTask.status == CREATING, WecomMomentTask.jobid.is_(None))
            .values(status=UNKNOWN, stats={"submitted_at": int(now.timestamp())}, checked_at=now)
            .execution_options(synchronize_session=False)
        )
        if not claimed.rowcount:  # type: ignore[attr-defined]
            return None  # another run submitted it
        request = dict(session.scalar(select(WecomMomentTask.request).where(WecomMomentTask.id == task_id)) or {})
    try:
        answer = client.call("POST", "externalcontact/add_moment_task", data=request)
    except WecomError as exc:
        totals["errors"] += 1
        with _tx(database, workspace_id) as session:
            task = _lock(session, task_id, UNKNOWN)
            if task is None:
                return None
            if exc.retryable and exc.reason in UNKNOWN_REASONS:
                task.error = "add_moment_task timed out: looking for the moment before sending it again"
            elif exc.retryable:
                task.status = CREATING  # WeCom did not take it: submit again next run
            else:
                _fail(session, task, describe(exc), totals)  # e.g. 60111: asking again gives the same answer
                note_error(session, workspace_id, exc, clock)
        return None
    with _tx(database, workspace_id) as session:
        task = _lock(session, task_id, UNKNOWN)
        if task is None:
            return None
        jobid = str(answer.get("jobid") or "")
        totals["submitted"] += 1
        if not jobid:
            _fail(session, task, "add_moment_task: WeCom answered without a jobid", totals)
            return None
        task.jobid, task.status, task.error = jobid, CREATING, None
    return jobid


def _matching_moment(client: WecomClient, task: WecomMomentTask, taken: set[str], clock: Clock) -> str | None:
    """The moment WeCom made for a timed-out submission: same text, made after the task was queued."""
    start = _aware(task.created_at) - timedelta(minutes=5)
    end = clock.now()
    start = max(start, end - timedelta(days=30))
    text = ((task.request or {}).get("text") or {}).get("content")
    rows = _pages(
        client,
        "externalcontact/get_moment_list",
        {"start_time": int(start.timestamp()), "end_time": int(end.timestamp()), "filter_type": 1, "limit": 20},
        "moment_list",
    )
    for row in rows:
        moment_id = str(row.get("moment_id") or "")
        if moment_id and moment_id not in taken and (row.get("text") or {}).get("content") == text:
            return moment_id
    return None


def _resolve_unknown(
    database: Database, client: WecomClient, config: WecomConfig, task_id: int, clock: Clock, totals: dict[str, int]
) -> None:
    workspace_id = config.workspace_id
    with _tx(database, workspace_id, read_only=True) as session:
        task = session.get_one(WecomMomentTask, task_id)
        taken = {
            str(m)
            for m in session.scalars(
                select(WecomMomentTask.moment_id).where(
                    WecomMomentTask.workspace_id == workspace_id, WecomMomentTask.moment_id.is_not(None)
                )
            )
            if m
        }
        session.expunge(task)
    found = _matching_moment(client, task, taken, clock)
    with _tx(database, workspace_id) as session:
        locked = _lock(session, task_id, UNKNOWN)
        if locked is None:
            return
        locked.checked_at = clock.now()
        if found is not None:
            locked.moment_id, locked.status, locked.error, locked.request = found, CREATED, None, {}
            locked.stats = {}
            totals["created"] += 1
            return
        submitted = datetime.fromtimestamp(int((locked.stats or {}).get("submitted_at") or 0), UTC)
        if clock.now() - submitted >= UNKNOWN_GRACE:
            locked.status, locked.stats = CREATING, {}  # WeCom never made it: send it again
            locked.error = "add_moment_task timed out and no moment appeared: sending it again"


def _finish(
    database: Database,
    client: WecomClient,
    config: WecomConfig,
    task_id: int,
    jobid: str,
    clock: Clock,
    totals: dict[str, int],
) -> None:
    workspace_id = config.workspace_id
    try:
        answer = client.call("GET", "externalcontact/get_moment_task_result", params={"jobid": jobid})
    except WecomError as exc:
        totals["errors"] += 1
        if exc.retryable:
            return
        with _tx(database, workspace_id) as session:
            task = _lock(session, task_id, CREATING)
            if task is None:
                return
            errors = int((task.stats or {}).get("result_errors") or 0) + 1
            task.stats = dict(task.stats or {}) | {"result_errors": errors}
            task.error = describe(exc)[:500]
            if errors >= MAX_RESULT_ERRORS or clock.now() - _aware(task.created_at) >= RESULT_TIMEOUT:
                _fail(session, task, f"get_moment_task_result: {describe(exc)}", totals)
            note_error(session, workspace_id, exc, clock)
        return
    with _tx(database, workspace_id) as session:
        task = _lock(session, task_id, CREATING)
        if task is None:
            return
        task.checked_at = clock.now()
        if int(answer.get("status") or 0) != 3:
            if clock.now() - _aware(task.created_at) >= RESULT_TIMEOUT:
                _fail(session, task, "get_moment_task_result: WeCom did not finish the job within 24 hours", totals)
            return  # 1 started / 2 running: ask again next run
        result = answer.get("result") or {}
        code = int(result.get("errcode") or 0)
        invalid = list(((result.get("invalid_sender_list") or {}).get("user_list")) or [])
        if code or not result.get("moment_id"):
            _fail(session, task, f"add_moment_task: {code} {result.get('errmsg') or ''}".strip(), totals)
            return
        task.moment_id, task.status, task.request, task.stats = str(result["moment_id"]), CREATED, {}, {}
        task.error = f"invalid senders: {', '.join(invalid)}" if invalid else None
        totals["created"] += 1


def _stats(client: WecomClient, moment_id: str) -> dict[str, int]:
    senders = _pages(client, "externalcontact/get_moment_task", {"moment_id": moment_id, "limit": 1000}, "task_list")
    publishers = [str(r["userid"]) for r in senders if int(r.get("publish_status") or 0) == 1 and r.get("userid")]
    likes = comments = 0
    for userid in publishers:
        answer = client.call(
            "POST", "externalcontact/get_moment_comments", data={"moment_id": moment_id, "userid": userid}
        )
        likes += len(answer.get("like_list") or [])
        comments += len(answer.get("comment_list") or [])
    return {
        "publishers": len(publishers),
        "not_published": len(senders) - len(publishers),
        "likes": likes,
        "comments": comments,
    }


def _apply_stats(session: Session, task: WecomMomentTask, stats: dict[str, int], clock: Clock) -> None:
    previous = dict(task.stats or {})
    task.stats, task.checked_at = stats, clock.now()
    post = session.get(MomentPost, task.moment_post_id, with_for_update=True)
    if post is None:
        return
    reported = (int(previous.get("likes") or 0), int(previous.get("comments") or 0))
    typed = (post.likes, post.comments)
    new = (stats["likes"], stats["comments"])
    if typed != reported and typed != new:  # an operator typed figures in: WeCom's replace them, audited
        record(
            session,
            Actor.system(task.workspace_id, "wecom"),
            action="results_from_wecom",
            entity_type="moment_post",
            entity_id=post.id,
            before={"likes": typed[0], "comments": typed[1]},
            after={"likes": new[0], "comments": new[1]},
            clock=clock,
        )
    post.likes, post.comments = new


def sync_moments(database: Database, config: WecomConfig, clock: Clock) -> dict[str, int]:
    """Submit queued moment tasks, finish running ones, refresh the stats of recent ones (module docstring)."""
    totals: dict[str, int] = defaultdict(int)
    workspace_id = config.workspace_id
    client = client_for(config, secret="contact")
    with _tx(database, workspace_id, read_only=True) as session:
        rows = session.execute(
            select(WecomMomentTask.id, WecomMomentTask.status, WecomMomentTask.jobid)
            .where(
                WecomMomentTask.workspace_id == workspace_id,
                WecomMomentTask.status.in_((CREATING, UNKNOWN))
                | ((WecomMomentTask.status == CREATED) & (WecomMomentTask.created_at >= clock.now() - STATS_WINDOW)),
            )
            .order_by(WecomMomentTask.id)
        ).all()
    for task_id, status, jobid in rows:
        if status == CREATING and jobid is None:
            jobid = _submit(database, client, config, task_id, clock, totals)
            if jobid:
                _finish(database, client, config, task_id, jobid, clock, totals)
        elif status == UNKNOWN:
            _resolve_unknown(database, client, config, task_id, clock, totals)
        elif status == CREATING:
            _finish(database, client, config, task_id, str(jobid), clock, totals)
    with _tx(database, workspace_id, read_only=True) as session:
        created = session.execute(
            select(WecomMomentTask.id, WecomMomentTask.moment_id)
            .where(
                WecomMomentTask.workspace_id == workspace_id,
                WecomMomentTask.status == CREATED,
                WecomMomentTask.created_at >= clock.now() - STATS_WINDOW,
            )
            .order_by(WecomMomentTask.id)
        ).all()
    for task_id, moment_id in created:
        try:
            stats = _stats(client, str(moment_id))
        except WecomError as exc:
            totals["errors"] += 1
            if not exc.retryable:
                with _tx(database, workspace_id) as session:
                    task = _lock(session, task_id, CREATED)
                    if task is not None:
                        task.error = describe(exc)[:500]
                    note_error(session, workspace_id, exc, clock)
            continue
        with _tx(database, workspace_id) as session:
            task = _lock(session, task_id, CREATED)
            if task is not None:
                _apply_stats(session, task, stats, clock)
                totals["stats"] += 1
    return dict(totals)
