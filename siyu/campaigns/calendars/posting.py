"""Posting group calendars: each due (entry, group, day) is posted exactly once.

A slot is due from its brand-local time until `CATCH_UP` later; a sweep that runs in that window
(every minute, see `tasks.py`) posts it, and a slot missed for longer (the scheduler was down) is
skipped rather than posted hours late into a group. The sweep also looks at yesterday, so an
evening slot late at night is still caught after midnight.

Exactly once: the `GroupPost` row is inserted first with insert-or-ignore on its unique key
(entry, group, day), and only the sweep whose insert went in sends. Two schedulers running at
once race on the unique index; the loser sees no row come back and does nothing.

- sandbox accounts: the post row itself is the record, written with its rendered message.
- wecom_group accounts: the row is committed as "sending" before the WeCom call, then set to
  "sent" or "failed". A crash between the two leaves "sending" and is not retried, and provider
  errors are recorded, not retried: a timed-out call may still have created the staff member's
  task, and a group seeing the same post twice is worse than a missed one (at most once).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from siyu.campaigns.calendars.common import SHARED_VARIABLES, shared_variables, slot_start, slot_time, workspace_tz
from siyu.db import Database
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput
from siyu.kit.sql import insert_or_ignore
from siyu.messaging import content
from siyu.messaging.crypto import decrypt_credentials
from siyu.models import (
    AdapterKind,
    ChannelAccount,
    CommunityGroup,
    ContentItem,
    GroupCalendar,
    GroupCalendarEntry,
    GroupPost,
    Staff,
    Workspace,
)
from siyu.workspaces.scope import bind_workspace

logger = logging.getLogger(__name__)

CATCH_UP = timedelta(hours=2)
"""How long after its time a slot may still be posted."""
POST_KEY = ["entry_id", "group_id", "post_date"]


@dataclass(frozen=True)
class DuePost:
    """One post to make: its key, the message, and how to send it."""

    workspace_id: int
    entry_id: int
    group_id: int
    post_date: date
    message: dict[str, Any]
    error: str | None
    """Set when the post cannot be made (content archived, a variable without a value…)."""
    wecom_chat_id: str | None = None
    staff_userid: str | None = None


def due_slots(
    entries: list[GroupCalendarEntry], slot_times: dict[str, Any], now: datetime, tz: Any
) -> list[tuple[GroupCalendarEntry, date]]:
    """The (entry, brand-local day) pairs whose slot opened within the last `CATCH_UP`."""
    local_today = now.astimezone(tz).date()
    due: list[tuple[GroupCalendarEntry, date]] = []
    for day in (local_today - timedelta(days=1), local_today):
        for entry in entries:
            if day.isoweekday() not in entry.weekdays:
                continue
            opens = slot_start(day, slot_time(slot_times, entry.slot), tz)
            if opens <= now < opens + CATCH_UP:
                due.append((entry, day))
    return due


def _message(item: ContentItem | None, *, brand: str, staff_name: str | None) -> tuple[dict[str, Any], str | None]:
    if item is None or item.archived_at is not None:
        return {}, "the content was archived or deleted"
    try:
        used = content.check_content(item)
        if used - SHARED_VARIABLES:
            return {}, f"the content uses per-customer variables: {', '.join(sorted(used - SHARED_VARIABLES))}"
        return content.render(item, shared_variables(item, brand=brand, staff_name=staff_name)), None
    except InvalidInput as exc:  # a bad template must not stop the other groups
        return {}, exc.message[:500]
    except content.RenderError as exc:
        return {}, str(exc)[:500]


def _plan(session: Session, calendar: GroupCalendar, now: datetime) -> tuple[list[DuePost], ChannelAccount | None]:
    """What this calendar should post now that it has not posted yet."""
    tz = workspace_tz(session, calendar.workspace_id)
    entries = list(session.scalars(select(GroupCalendarEntry).where(GroupCalendarEntry.calendar_id == calendar.id)))
    due = due_slots(entries, calendar.slot_times, now, tz)
    if not due or not calendar.group_ids:
        return [], None
    done: set[tuple[int, int, date]] = set(
        session.execute(
            select(GroupPost.entry_id, GroupPost.group_id, GroupPost.post_date).where(
                GroupPost.entry_id.in_({e.id for e, _ in due}), GroupPost.post_date.in_({d for _, d in due})
            )
        ).all()
    )
    groups = list(
        session.scalars(
            select(CommunityGroup).where(
                CommunityGroup.workspace_id == calendar.workspace_id,
                CommunityGroup.id.in_(calendar.group_ids),
                CommunityGroup.is_active.is_(True),
            )
        )
    )
    owners = {s.id: s for s in session.scalars(select(Staff).where(Staff.id.in_({g.owner_staff_id for g in groups})))}
    brand = session.scalar(select(Workspace.name).where(Workspace.id == calendar.workspace_id)) or ""
    account = session.get(ChannelAccount, calendar.channel_account_id) if calendar.channel_account_id else None
    posts: list[DuePost] = []
    for entry, day in due:
        item = session.get(ContentItem, entry.content_id)
        for group in groups:
            if (entry.id, group.id, day) in done:
                continue
            owner = owners.get(group.owner_staff_id) if group.owner_staff_id else None
            message, error = _message(item, brand=brand, staff_name=owner.name if owner else None)
            if error is None and (account is None or not account.is_active):
                error = "the calendar has no active channel account"
            posts.append(
                DuePost(
                    workspace_id=calendar.workspace_id,
                    entry_id=entry.id,
                    group_id=group.id,
                    post_date=day,
                    message=message,
                    error=error,
                    wecom_chat_id=group.wecom_chat_id,
                    staff_userid=owner.wecom_user_id if owner else None,
                )
            )
    return posts, account


def _claim(database: Database, post: DuePost, *, status: str, error: str | None, now: datetime) -> bool:
    """Insert the post row unless another sweep already did; True if this call owns the post."""
    with database.transaction() as session:
        bind_workspace(session, post.workspace_id)
        values = {
            "workspace_id": post.workspace_id,
            "entry_id": post.entry_id,
            "group_id": post.group_id,
            "post_date": post.post_date,
            "status": status,
            "message": post.message,
            "error": error,
            "posted_at": now,
        }
        return insert_or_ignore(session, GroupPost, values, POST_KEY)


def _send_wecom(database: Database, account: ChannelAccount, post: DuePost, clock: Clock) -> tuple[str, str | None]:
    """Post to one WeCom group; ("sent", None) or ("failed", why)."""
    if not post.wecom_chat_id:
        return "failed", "the group has no WeCom chat id"
    if not post.staff_userid:
        return "failed", "the group's owner has no WeCom user id"
    try:
        from siyu.messaging.adapters import wecom
        from siyu.messaging.adapters.base import OutcomeKind

        credentials = decrypt_credentials(account.credentials_encrypted, database.settings)
        outcome = wecom.send_group_post(
            account, credentials, post.staff_userid, post.message, clock, chat_ids=[post.wecom_chat_id]
        )
    except Exception as exc:  # recorded on the post; the sweep goes on with the other groups
        logger.exception("group post failed", extra={"entry_id": post.entry_id, "group_id": post.group_id})
        return "failed", str(getattr(exc, "message", None) or exc)[:500]
    if outcome.kind == OutcomeKind.SENT:
        return "sent", None
    return "failed", (outcome.error or outcome.reason or str(outcome.kind))[:500]


def post_due_group_messages(database: Database, clock: Clock) -> dict[str, int]:
    """One sweep over every active calendar; safe to run in several processes at once.

    Returns counts: calendars looked at, posts sent, failed, and already made by another sweep.
    """
    now = clock.now()
    counts: Counter[str] = Counter()
    with database.transaction(read_only=True) as session:
        calendar_ids = list(session.scalars(select(GroupCalendar.id).where(GroupCalendar.is_active.is_(True))))
    for calendar_id in calendar_ids:
        counts["calendars"] += 1
        with database.transaction(read_only=True) as session:
            calendar = session.get(GroupCalendar, calendar_id)
            if calendar is None or not calendar.is_active:
                continue
            due, account = _plan(session, calendar, now)
            if account is not None:
                session.expunge(account)
        for post in due:
            if post.error is not None or account is None:
                claimed = _claim(database, post, status="failed", error=post.error, now=now)
                counts["failed" if claimed else "already"] += 1
                continue
            if account.kind != AdapterKind.WECOM_GROUP:
                claimed = _claim(database, post, status="sent", error=None, now=now)
                counts["sent" if claimed else "already"] += 1
                continue
            if not _claim(database, post, status="sending", error=None, now=now):
                counts["already"] += 1
                continue
            status, error = _send_wecom(database, account, post, clock)
            with database.transaction() as session:
                bind_workspace(session, post.workspace_id)
                session.execute(
                    update(GroupPost)
                    .where(
                        GroupPost.entry_id == post.entry_id,
                        GroupPost.group_id == post.group_id,
                        GroupPost.post_date == post.post_date,
                    )
                    .values(status=status, error=error, posted_at=clock.now()),
                    execution_options={"synchronize_session": False},
                )
            counts[status] += 1
    return {key: counts[key] for key in ("calendars", "sent", "failed", "already")}
