"""WeCom mass-message tasks (群发): what siyu and WeCom created, whether each sender confirmed, the
per-customer results, reminders and expiry.

    sync_message_tasks(database, config, clock) -> dict[str, int]            # the periodic reconciliation
    remind_task(database, config, task_id, clock) -> WecomMessageTask        # "remind now"

A task row is one (msgid, sender). Rows come from two places: siyu's own sends (deliveries of the
`wecom_customer` channel carry "msgid:external_userid" as provider id) and `get_groupmsg_list_v2`
(tasks made in the WeCom admin or app, found by the same job). Then, per row:
`get_groupmsg_task` (fetched once per msgid and run) says whether the sender confirmed (status 2)
→ SENT; `get_groupmsg_send_result` (cursor paging) gives per-customer statuses → counts, and the
matching deliveries become delivered / failed "not_friend" / suppressed "platform_capped"
(`siyu.messaging.tasks.apply_send_results`); every expected customer at a final status → DONE (an
empty send list is never DONE before `RESULT_WINDOW`). A task still unconfirmed `CONFIRM_WINDOW`
after creation → EXPIRED.

Reminders: `remind_groupmsg_send` works per msgid (WeCom: at most three reminders per mass message
in 24 hours), so the waiting rows of a msgid are reminded with one call, every `REMIND_AFTER`, at
most `MAX_REMINDS` times; every row of the msgid carries the same `remind_count`/`reminded_at`.
A reminder is *claimed* first (a conditional UPDATE committed before the call: two concurrent runs
cannot both claim it) and given back if WeCom refuses.

Transactions: WeCom is asked outside any transaction; what it answered is written in a short
transaction per task (rows locked with SKIP LOCKED, and skipped when another run moved them on).

Errors: retryable ones are left for the next run; the others go on the row (`error`, cleared when
the task moves on or a reminder succeeds) and to `status.note_error` (the integration page).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from siyu.db import Database
from siyu.integrations.wecom.client import WecomClient
from siyu.integrations.wecom.config import WecomConfig, client_for
from siyu.integrations.wecom.errors import WecomError
from siyu.integrations.wecom.status import note_error
from siyu.kit.clock import Clock
from siyu.kit.errors import Conflict, NotFound
from siyu.kit.sql import insert_or_ignore
from siyu.messaging.tasks import apply_send_results
from siyu.models import AdapterKind, Broadcast, Delivery, MessageTaskStatus, Staff, WecomMessageTask
from siyu.workspaces.scope import bind_workspace

logger = logging.getLogger(__name__)
CONFIRM_WINDOW = timedelta(days=3)
"""A task not confirmed by then is EXPIRED (siyu stops asking; WeCom keeps it in the app)."""
RESULT_WINDOW = timedelta(days=7)
"""A confirmed task is reconciled until every customer has a final status, or this long after creation."""
REMIND_AFTER = timedelta(hours=6)
MAX_REMINDS = 3
"""WeCom lets a mass message be reminded at most three times in 24 hours; siyu reminds at most three times."""
LIST_SPAN = timedelta(days=30)
"""`get_groupmsg_list_v2` accepts at most a month between start_time and end_time."""
RESULT_KEYS = {0: "pending", 1: "delivered", 2: "not_friend", 3: "platform_capped"}
OPEN = (MessageTaskStatus.WAITING, MessageTaskStatus.SENT)


@contextmanager
def _tx(database: Database, workspace_id: int, *, read_only: bool = False) -> Iterator[Session]:
    with database.transaction(read_only=read_only) as session:
        bind_workspace(session, workspace_id)
        yield session


def _pages(client: WecomClient, api: str, data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = ""
    while True:
        page = client.call("POST", api, data=data | ({"cursor": cursor} if cursor else {}))
        rows += [r for r in page.get(key) or [] if isinstance(r, dict)]
        cursor = str(page.get("next_cursor") or "")
        if not cursor:
            return rows


def _ts(value: Any, default: datetime) -> datetime:
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (TypeError, ValueError):
        return default


class _Senders:
    """`get_groupmsg_task` per msgid, asked at most once per run."""

    def __init__(self, client: WecomClient) -> None:
        self.client = client
        self.cache: dict[str, list[dict[str, Any]]] = {}

    def of(self, msgid: str) -> list[dict[str, Any]]:
        if msgid not in self.cache:
            self.cache[msgid] = _pages(
                self.client, "externalcontact/get_groupmsg_task", {"msgid": msgid, "limit": 1000}, "task_list"
            )
        return self.cache[msgid]


def _upsert(session: Session, workspace_id: int, msgid: str, sender: str, clock: Clock, **values: Any) -> bool:
    return insert_or_ignore(
        session,
        WecomMessageTask,
        {
            "workspace_id": workspace_id,
            "msgid": msgid,
            "sender": sender,
            "chat_type": "single",
            "status": MessageTaskStatus.WAITING,
            "recipients": 0,
            "counts": {},
            "remind_count": 0,
            "created_at": clock.now(),
        }
        | values,
        ["workspace_id", "msgid", "sender"],
    )


def record_tasks_from_deliveries(
    session: Session, workspace_id: int, clock: Clock, *, window: timedelta = CONFIRM_WINDOW
) -> int:
    """A task row for every (msgid, sender) siyu's `wecom_customer` sends of the last `window`
    created; returns how many rows are new. A row found earlier by `get_groupmsg_list_v2` gets its
    channel account, broadcast and recipient count here when they were missing."""
    rows = session.execute(
        select(
            Delivery.provider_message_id,
            Delivery.channel_account_id,
            Delivery.sent_at,
            Staff.wecom_user_id,
            Delivery.source,
            Delivery.source_id,
        )
        .join(Staff, Staff.id == Delivery.staff_id)
        .where(
            Delivery.workspace_id == workspace_id,
            Delivery.channel == AdapterKind.WECOM_CUSTOMER,
            Delivery.provider_message_id.is_not(None),
            Delivery.sent_at >= clock.now() - window,
        )
    ).all()
    found: dict[tuple[str, str], dict[str, Any]] = {}
    recipients: dict[tuple[str, str], int] = defaultdict(int)
    for provider_id, account_id, sent_at, userid, source, source_id in rows:
        msgid = str(provider_id).partition(":")[0]
        if msgid and userid:
            values = {"channel_account_id": account_id, "created_at": sent_at or clock.now()}
            if source == "broadcast":
                values["broadcast_id"] = source_id
            found.setdefault((msgid, userid), values)
            recipients[(msgid, userid)] += 1
    wanted = {v["broadcast_id"] for v in found.values() if "broadcast_id" in v}
    existing = set(session.scalars(select(Broadcast.id).where(Broadcast.id.in_(wanted)))) if wanted else set()
    new = 0
    for (msgid, sender), values in sorted(found.items()):
        if values.get("broadcast_id") not in existing:
            values.pop("broadcast_id", None)
        count = recipients[(msgid, sender)]
        if _upsert(session, workspace_id, msgid, sender, clock, recipients=count, **values):
            new += 1
            continue
        key = (
            WecomMessageTask.workspace_id == workspace_id,
            WecomMessageTask.msgid == msgid,
            WecomMessageTask.sender == sender,
        )
        for column, value in (
            (WecomMessageTask.channel_account_id, values.get("channel_account_id")),
            (WecomMessageTask.broadcast_id, values.get("broadcast_id")),
        ):
            if value is not None:
                session.execute(update(WecomMessageTask).where(*key, column.is_(None)).values({column.key: value}))
        session.execute(
            update(WecomMessageTask).where(*key, WecomMessageTask.recipients < count).values(recipients=count)
        )
    return new


def _discover(database: Database, senders: _Senders, workspace_id: int, clock: Clock, window: timedelta) -> int:
    """Rows for tasks WeCom lists in the window (also the ones made outside siyu); the new rows."""
    end = clock.now()
    start = end - min(window, LIST_SPAN)
    tasks = _pages(
        senders.client,
        "externalcontact/get_groupmsg_list_v2",
        {"chat_type": "single", "start_time": int(start.timestamp()), "end_time": int(end.timestamp()), "limit": 100},
        "group_msg_list",
    )
    listed = {str(t.get("msgid") or ""): t for t in tasks if t.get("msgid")}
    with _tx(database, workspace_id, read_only=True) as session:
        known = set(
            session.scalars(
                select(WecomMessageTask.msgid).where(
                    WecomMessageTask.workspace_id == workspace_id, WecomMessageTask.msgid.in_(list(listed))
                )
            )
        )
    new = 0
    for msgid, task in sorted(listed.items()):
        if msgid in known:  # a known msgid has all its senders already (WeCom fixes them at creation)
            continue
        created = _ts(task.get("create_time"), clock.now())
        rows = [str(r.get("userid") or "") for r in senders.of(msgid)]
        with _tx(database, workspace_id) as session:
            new += sum(_upsert(session, workspace_id, msgid, s, clock, created_at=created) for s in rows if s)
    return new


@dataclass(frozen=True)
class _Open:
    id: int
    msgid: str
    sender: str
    status: MessageTaskStatus
    created_at: datetime


@dataclass(frozen=True)
class _Answer:
    confirmed: bool
    results: dict[str, tuple[int, int | None]] | None = None


def _ask(senders: _Senders, task: _Open) -> _Answer:
    """What WeCom says about one task (no database)."""
    if task.status == MessageTaskStatus.WAITING:
        confirmed = any(
            str(r.get("userid")) == task.sender and int(r.get("status") or 0) == 2 for r in senders.of(task.msgid)
        )
        if not confirmed:
            return _Answer(False)
    rows = _pages(
        senders.client,
        "externalcontact/get_groupmsg_send_result",
        {"msgid": task.msgid, "userid": task.sender, "limit": 1000},
        "send_list",
    )
    results = {
        str(r["external_userid"]): (int(r.get("status") or 0), r.get("send_time"))
        for r in rows
        if r.get("external_userid")
    }
    return _Answer(True, results)


def _apply(session: Session, task: WecomMessageTask, answer: _Answer, clock: Clock, totals: dict[str, int]) -> None:
    now = clock.now()
    task.checked_at = now
    if not answer.confirmed:
        if now - task.created_at >= CONFIRM_WINDOW:
            task.status, task.error = MessageTaskStatus.EXPIRED, None
            totals["expired"] += 1
        return
    if task.status == MessageTaskStatus.WAITING:
        task.status, task.error = MessageTaskStatus.SENT, None
        totals["confirmed"] += 1
    results = answer.results or {}
    counts = {key: 0 for key in RESULT_KEYS.values()}
    for status, _ in results.values():
        counts[RESULT_KEYS.get(status, "pending")] += 1
    task.counts = counts
    task.recipients = max(task.recipients, len(results))
    apply_send_results(session, clock, task.msgid, results, totals)
    final = bool(results) and counts["pending"] == 0 and len(results) >= task.recipients
    if final or now - task.created_at >= RESULT_WINDOW:
        # Results are final, or the window is over (what is still pending stays counted as such).
        task.status, task.error = MessageTaskStatus.DONE, None
        totals["done"] += 1


def describe(exc: WecomError) -> str:
    """The error as the page shows it: errcode first when WeCom gave one."""
    return f"[{exc.code}] {exc}" if exc.code is not None else str(exc)


def _record_error(
    session: Session, tasks: list[WecomMessageTask], workspace_id: int, exc: WecomError, clock: Clock
) -> None:
    if exc.retryable:
        logger.info("wecom message task: retry later (%s)", exc.reason)
        return
    for task in tasks:
        task.error = describe(exc)[:300]
    note_error(session, workspace_id, exc, clock)


def _locked(session: Session, query: Any) -> list[WecomMessageTask]:
    return list(session.scalars(query.order_by(WecomMessageTask.id).with_for_update(skip_locked=True)))


def sync_message_tasks(
    database: Database, config: WecomConfig, clock: Clock, *, window: timedelta = CONFIRM_WINDOW
) -> dict[str, int]:
    """Record, reconcile, expire and remind the workspace's mass-message tasks (module docstring);
    commits as it goes."""
    totals = defaultdict(
        int, {"new": 0, "checked": 0, "confirmed": 0, "done": 0, "expired": 0, "reminded": 0, "errors": 0}
    )
    workspace_id = config.workspace_id
    with _tx(database, workspace_id) as session:
        totals["new"] += record_tasks_from_deliveries(session, workspace_id, clock, window=window)
    senders = _Senders(client_for(config, secret="contact"))
    try:
        totals["new"] += _discover(database, senders, workspace_id, clock, window)
    except WecomError as exc:
        totals["errors"] += 1
        with _tx(database, workspace_id) as session:
            _record_error(session, [], workspace_id, exc, clock)
    with _tx(database, workspace_id, read_only=True) as session:
        rows = [
            _Open(t.id, t.msgid, t.sender, t.status, t.created_at)
            for t in session.scalars(
                select(WecomMessageTask)
                .where(WecomMessageTask.workspace_id == workspace_id, WecomMessageTask.status.in_(OPEN))
                .order_by(WecomMessageTask.id)
            )
        ]
    for row in rows:
        try:
            answer = _ask(senders, row)
        except WecomError as exc:
            totals["errors"] += 1
            with _tx(database, workspace_id) as session:
                failed = _locked(session, select(WecomMessageTask).where(WecomMessageTask.id == row.id))
                _record_error(session, failed, workspace_id, exc, clock)
            continue
        with _tx(database, workspace_id) as session:
            locked = _locked(
                session,
                select(WecomMessageTask).where(WecomMessageTask.id == row.id, WecomMessageTask.status == row.status),
            )
            if not locked:
                continue  # another run holds the row or moved it on
            _apply(session, locked[0], answer, clock, totals)
            totals["checked"] += 1
    totals["reminded"] += remind_due(database, config, clock, client=senders.client)
    return dict(totals)


def _claim(session: Session, workspace_id: int, msgid: str, seen: int, now: datetime, due: datetime | None) -> int:
    """Take the next reminder of `msgid`: every waiting row goes to `seen + 1` reminders, unless another
    run took it first (a row already past `seen`, or reminded after `due`); the rows updated."""
    query = update(WecomMessageTask).where(
        WecomMessageTask.workspace_id == workspace_id,
        WecomMessageTask.msgid == msgid,
        WecomMessageTask.status == MessageTaskStatus.WAITING,
        WecomMessageTask.remind_count <= seen,
        ~select(WecomMessageTask.id)
        .where(
            WecomMessageTask.workspace_id == workspace_id,
            WecomMessageTask.msgid == msgid,
            WecomMessageTask.remind_count > seen,
        )
        .exists(),
    )
    if due is not None:
        query = query.where((WecomMessageTask.reminded_at.is_(None)) | (WecomMessageTask.reminded_at <= due))
    result = session.execute(
        query.values(remind_count=seen + 1, reminded_at=now).execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _give_back(
    session: Session, workspace_id: int, msgid: str, seen: int, before: datetime | None, exc: WecomError, clock: Clock
) -> None:
    """WeCom refused the reminder: the claim is undone and the refusal recorded on the rows."""
    session.execute(
        update(WecomMessageTask)
        .where(
            WecomMessageTask.workspace_id == workspace_id,
            WecomMessageTask.msgid == msgid,
            WecomMessageTask.remind_count == seen + 1,
        )
        .values(remind_count=seen, reminded_at=before)
        .execution_options(synchronize_session=False)
    )
    rows = list(
        session.scalars(
            select(WecomMessageTask).where(
                WecomMessageTask.workspace_id == workspace_id,
                WecomMessageTask.msgid == msgid,
                WecomMessageTask.status == MessageTaskStatus.WAITING,
            )
        )
    )
    for row in rows:
        session.refresh(row)
    _record_error(session, rows, workspace_id, exc, clock)


def _cleared(session: Session, workspace_id: int, msgid: str) -> None:
    session.execute(
        update(WecomMessageTask)
        .where(WecomMessageTask.workspace_id == workspace_id, WecomMessageTask.msgid == msgid)
        .values(error=None)
        .execution_options(synchronize_session=False)
    )


def remind_due(database: Database, config: WecomConfig, clock: Clock, *, client: WecomClient | None = None) -> int:
    """Remind the senders of mass messages waiting longer than `REMIND_AFTER` since creation or the
    last reminder: one `remind_groupmsg_send` per msgid; the number of msgids reminded."""
    client = client or client_for(config, secret="contact")
    workspace_id = config.workspace_id
    now = clock.now()
    due = now - REMIND_AFTER
    with _tx(database, workspace_id, read_only=True) as session:
        msgids = session.execute(
            select(
                WecomMessageTask.msgid,
                func.max(WecomMessageTask.remind_count),
                func.max(WecomMessageTask.reminded_at),
                func.min(WecomMessageTask.created_at),
            )
            .where(WecomMessageTask.workspace_id == workspace_id, WecomMessageTask.status == MessageTaskStatus.WAITING)
            .group_by(WecomMessageTask.msgid)
            .order_by(WecomMessageTask.msgid)
        ).all()
    reminded = 0
    for msgid, seen, last, created in msgids:
        last = last.replace(tzinfo=UTC) if last is not None and last.tzinfo is None else last
        created = created.replace(tzinfo=UTC) if created.tzinfo is None else created
        if seen >= MAX_REMINDS or created > due or (last is not None and last > due):
            continue
        with _tx(database, workspace_id) as session:
            if not _claim(session, workspace_id, msgid, seen, now, due):
                continue  # another run reminded it
        try:
            client.call("POST", "externalcontact/remind_groupmsg_send", data={"msgid": msgid})
        except WecomError as exc:
            with _tx(database, workspace_id) as session:
                _give_back(session, workspace_id, msgid, seen, last, exc, clock)
            continue
        with _tx(database, workspace_id) as session:
            _cleared(session, workspace_id, msgid)
        reminded += 1
    return reminded


def remind_task(database: Database, config: WecomConfig, task_id: int, clock: Clock) -> WecomMessageTask:
    """ "Remind now" from the page: reminds the task's msgid (every sender still waiting). Conflict
    when the task is not waiting or its msgid was reminded 3 times; a WeCom refusal is recorded on
    the rows and raised as Conflict with the errcode.

    As `remind_due`: the reminder is claimed and committed, WeCom is asked with no transaction open,
    then the claim is cleared or given back in a transaction of its own. The caller must not hold a
    write transaction (on SQLite it would wait for itself)."""
    workspace_id = config.workspace_id
    with _tx(database, workspace_id) as session:
        task = session.scalar(
            select(WecomMessageTask).where(
                WecomMessageTask.id == task_id, WecomMessageTask.workspace_id == workspace_id
            )
        )
        if task is None:
            raise NotFound("message task not found", details={"field": "task_id"})
        if task.status != MessageTaskStatus.WAITING:
            raise Conflict(f"a {task.status} task cannot be reminded", details={"status": str(task.status)})
        msgid = task.msgid
        seen, last = session.execute(
            select(func.max(WecomMessageTask.remind_count), func.max(WecomMessageTask.reminded_at)).where(
                WecomMessageTask.workspace_id == workspace_id, WecomMessageTask.msgid == msgid
            )
        ).one()
        if seen >= MAX_REMINDS:
            raise Conflict(f"WeCom allows at most {MAX_REMINDS} reminders", details={"remind_count": seen})
        if not _claim(session, workspace_id, msgid, seen, clock.now(), None):
            raise Conflict("the task is being reminded", details={"remind_count": seen})
    try:
        client_for(config, secret="contact").call("POST", "externalcontact/remind_groupmsg_send", data={"msgid": msgid})
    except WecomError as exc:
        with _tx(database, workspace_id) as session:
            _give_back(session, workspace_id, msgid, seen, last, exc, clock)
        raise Conflict(str(exc), details={"errcode": exc.code}) from None
    with _tx(database, workspace_id) as session:
        _cleared(session, workspace_id, msgid)
        session.flush()
        reminded = session.get(WecomMessageTask, task_id)
        assert reminded is not None
        session.refresh(reminded)
    return reminded
