"""Moments calendars (朋友圈): posts planned per persona, day and slot, under a marketing-share cap,
published as tasks to the persona's staff member, with their results.

The cap is the articles' "no more than 20% marketing" rule, a setting
(`TouchPolicy.moments_marketing_share`, percent of a persona's posts in an ISO week). It is
checked with the persona row locked (`FOR UPDATE`; SQLite write transactions are exclusive
anyway), so two planners adding marketing posts at once cannot both slip under it.

Slots open at the default slot times (08:30, 12:00, 20:00 brand-local). Publishing turns
today's planned posts whose slot has opened into one `StaffTask` each (key `moment:<post id>`);
the WeCom moments API is a later issue, until then the task (and the sandbox) is the record.
Likes and comments are typed in by the operator; WeCom reporting will fill them later.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.campaigns.calendars.common import (
    DEFAULT_SLOT_TIMES,
    local_today,
    shared_content,
    shared_variables,
    slot_start,
    slot_time,
    week_of,
    workspace_tz,
)
from siyu.campaigns.calendars.personas import get_persona
from siyu.campaigns.calendars.schemas import MomentIn, MomentPatch, MomentResultsIn
from siyu.db import Database
from siyu.kit.clock import Clock
from siyu.kit.errors import Conflict, InvalidInput, NotFound
from siyu.kit.sql import insert_or_ignore
from siyu.messaging import content
from siyu.models import ContentItem, MomentPost, Persona, Slot, Staff, StaffTask, TouchPolicy, Workspace
from siyu.workspaces.scope import bind_workspace

logger = logging.getLogger(__name__)

DEFAULT_MARKETING_SHARE = 20
PLANNED, PUBLISHED, FAILED = "planned", "published", "failed"
SLOT_LABELS = {"morning": "早上", "noon": "中午", "evening": "晚上"}


def marketing_cap(session: Session, workspace_id: int) -> int:
    """Most marketing posts per persona and week, in percent (the saved policy or 20)."""
    value = session.scalar(select(TouchPolicy.moments_marketing_share).where(TouchPolicy.workspace_id == workspace_id))
    return int(value) if value is not None else DEFAULT_MARKETING_SHARE


def _week_counts(session: Session, persona_id: int, day: date) -> tuple[int, int]:
    """(posts, marketing posts) of a persona in the ISO week holding `day`."""
    monday, sunday = week_of(day)
    total, marketing = session.execute(
        select(func.count(), func.coalesce(func.sum(case((MomentPost.is_marketing.is_(True), 1), else_=0)), 0)).where(
            MomentPost.persona_id == persona_id, MomentPost.post_date.between(monday, sunday)
        )
    ).one()
    return int(total), int(marketing)


def share_pct(marketing: int, total: int) -> int:
    return round(marketing * 100 / total) if total else 0


def _check_share(marketing: int, total: int, cap: int) -> None:
    """Refuse a week whose marketing share would end up above the cap."""
    if marketing and marketing * 100 > cap * total:
        raise InvalidInput(
            f"本周营销内容将占 {marketing}/{total} = {share_pct(marketing, total)}%，超过 {cap}%",
            details={"field": "is_marketing", "marketing": marketing, "total": total, "cap_pct": cap},
        )


def get_moment(session: Session, actor: Actor, moment_id: int, *, for_update: bool = False) -> MomentPost:
    actor.require(Scope.TOUCH_READ)
    query = select(MomentPost).where(MomentPost.id == moment_id, MomentPost.workspace_id == actor.workspace_id)
    post = session.scalar(query.with_for_update() if for_update else query)
    if post is None:
        raise NotFound(f"moment post {moment_id} not found")
    return post


def plan_moment(session: Session, *, actor: Actor, data: MomentIn, clock: Clock) -> MomentPost:
    """Plan one post in a persona's slot; the week's marketing share is checked under the persona's lock."""
    actor.require(Scope.TOUCH_WRITE)
    persona = get_persona(session, actor, data.persona_id, for_update=True)
    if data.post_date < local_today(session, actor.workspace_id, clock.now()):
        raise InvalidInput("the day has passed", details={"field": "post_date"})
    item = shared_content(session, actor.workspace_id, data.content_id, field="content_id")
    taken = session.scalar(
        select(MomentPost.id).where(
            MomentPost.persona_id == persona.id, MomentPost.post_date == data.post_date, MomentPost.slot == data.slot
        )
    )
    if taken is not None:
        raise Conflict("this slot already has a post", details={"field": "slot", "moment_id": taken})
    is_marketing = item.is_marketing if data.is_marketing is None else data.is_marketing
    total, marketing = _week_counts(session, persona.id, data.post_date)
    if is_marketing:
        _check_share(marketing + 1, total + 1, marketing_cap(session, actor.workspace_id))
    post = MomentPost(
        workspace_id=actor.workspace_id,
        persona_id=persona.id,
        post_date=data.post_date,
        slot=Slot(data.slot),
        content_id=item.id,
        is_marketing=is_marketing,
        status=PLANNED,
        created_at=clock.now(),
    )
    session.add(post)
    session.flush()
    record(
        session,
        actor,
        action="plan",
        entity_type="moment_post",
        entity_id=post.id,
        after={"persona_id": persona.id, "post_date": data.post_date.isoformat(), "slot": str(data.slot)},
        clock=clock,
    )
    return post


def update_moment(session: Session, *, actor: Actor, moment_id: int, data: MomentPatch, clock: Clock) -> MomentPost:
    """Change a planned post's content or its marketing flag (published posts are history)."""
    actor.require(Scope.TOUCH_WRITE)
    persona_id = get_moment(session, actor, moment_id).persona_id
    get_persona(session, actor, persona_id, for_update=True)  # the persona first: one lock order for all writers
    post = get_moment(session, actor, moment_id, for_update=True)
    if post.status != PLANNED:
        raise Conflict(f"a {post.status} post cannot be changed", details={"status": post.status})
    if data.content_id is not None:
        item = shared_content(session, actor.workspace_id, data.content_id, field="content_id")
        post.content_id = item.id
        if data.is_marketing is None:
            data = data.model_copy(update={"is_marketing": item.is_marketing})
    if data.is_marketing is not None and data.is_marketing != post.is_marketing:
        total, marketing = _week_counts(session, persona_id, post.post_date)
        if data.is_marketing:
            _check_share(marketing + 1, total, marketing_cap(session, actor.workspace_id))
        post.is_marketing = data.is_marketing
    session.flush()
    record(
        session,
        actor,
        action="update",
        entity_type="moment_post",
        entity_id=post.id,
        after={"content_id": post.content_id, "is_marketing": post.is_marketing},
        clock=clock,
    )
    return post


def delete_moment(session: Session, *, actor: Actor, moment_id: int, clock: Clock) -> None:
    """Drop a planned post; dropping a non-marketing one may not push the week over the cap."""
    actor.require(Scope.TOUCH_WRITE)
    persona_id = get_moment(session, actor, moment_id).persona_id
    get_persona(session, actor, persona_id, for_update=True)
    post = get_moment(session, actor, moment_id, for_update=True)
    if post.status != PLANNED:
        raise Conflict(f"a {post.status} post cannot be removed", details={"status": post.status})
    if not post.is_marketing:
        total, marketing = _week_counts(session, persona_id, post.post_date)
        _check_share(marketing, total - 1, marketing_cap(session, actor.workspace_id))
    session.delete(post)
    record(session, actor, action="delete", entity_type="moment_post", entity_id=moment_id, clock=clock)
    session.flush()


def record_results(
    session: Session, *, actor: Actor, moment_id: int, data: MomentResultsIn, clock: Clock
) -> MomentPost:
    """Likes and comments of a post (typed in for now; WeCom reporting fills them later)."""
    actor.require(Scope.TOUCH_WRITE)
    post = get_moment(session, actor, moment_id, for_update=True)
    before = {"likes": post.likes, "comments": post.comments}
    post.likes, post.comments = data.likes, data.comments
    session.flush()
    record(
        session,
        actor,
        action="results",
        entity_type="moment_post",
        entity_id=post.id,
        before=before,
        after={"likes": data.likes, "comments": data.comments},
        clock=clock,
    )
    return post


@dataclass
class MomentWeek:
    """A persona's posts in one ISO week, with the marketing share against the cap."""

    persona: Persona
    monday: date
    posts: list[MomentPost]
    total: int
    marketing: int
    share_pct: int
    cap_pct: int

    @property
    def days(self) -> list[date]:
        return [self.monday + timedelta(days=n) for n in range(7)]

    def at(self, day: date, slot: str) -> MomentPost | None:
        return next((p for p in self.posts if p.post_date == day and str(p.slot) == slot), None)


def moment_week(session: Session, actor: Actor, persona_id: int, day: date) -> MomentWeek:
    persona = get_persona(session, actor, persona_id)
    monday, sunday = week_of(day)
    posts = list(
        session.scalars(
            select(MomentPost)
            .where(MomentPost.persona_id == persona.id, MomentPost.post_date.between(monday, sunday))
            .order_by(MomentPost.post_date, MomentPost.id)
        )
    )
    marketing = sum(1 for p in posts if p.is_marketing)
    return MomentWeek(
        persona=persona,
        monday=monday,
        posts=posts,
        total=len(posts),
        marketing=marketing,
        share_pct=share_pct(marketing, len(posts)),
        cap_pct=marketing_cap(session, actor.workspace_id),
    )


# --- publishing ----------------------------------------------------------------------------------


def _task_body(item: ContentItem, message: dict[str, Any]) -> str:
    lines = [str(message.get("text", ""))]
    for key in ("title", "link", "media_url"):
        if message.get(key):
            lines.append(str(message[key]))
    return "\n".join(line for line in lines if line)


def publish_post(session: Session, post_id: int, clock: Clock) -> str | None:
    """Publish one planned post as a task to its persona's staff member; the new status, or None
    when another publisher got there first."""
    post = session.scalar(select(MomentPost).where(MomentPost.id == post_id).with_for_update())
    if post is None or post.status != PLANNED:
        return None
    persona = session.get(Persona, post.persona_id)
    item = session.get(ContentItem, post.content_id)
    assert persona is not None
    staff = session.get(Staff, persona.staff_id) if persona.staff_id else None
    brand = session.scalar(select(Workspace.name).where(Workspace.id == post.workspace_id)) or ""
    try:
        if item is None or item.archived_at is not None:
            raise content.RenderError("the content was archived")
        message = content.render(item, shared_variables(item, brand=brand, staff_name=staff.name if staff else None))
    except content.RenderError as exc:
        # The post has no error column: the reason goes to the log, and the sweep goes on with the others.
        logger.warning("moment post %s cannot be published: %s", post.id, exc)
        post.status = FAILED
        session.flush()
        return FAILED
    tz = workspace_tz(session, post.workspace_id)
    values = {
        "workspace_id": post.workspace_id,
        "staff_id": persona.staff_id,
        "customer_id": None,
        "source": "moment",
        "source_id": post.id,
        "idempotency_key": f"moment:{post.id}",
        "title": f"发朋友圈（{persona.name} · {SLOT_LABELS.get(str(post.slot), str(post.slot))}）：{item.name}"[:200],
        "body": _task_body(item, message),
        "script_id": None,
        "status": "open",
        "due_at": slot_start(post.post_date, slot_time(DEFAULT_SLOT_TIMES, post.slot), tz) + timedelta(hours=2),
        "done_at": None,
        "created_at": clock.now(),
    }
    insert_or_ignore(session, StaffTask, values, ["idempotency_key"])
    from siyu.integrations.wecom.messages.moments import queue_moment  # WeCom only when configured

    queue_moment(session, post, staff.wecom_user_id if staff else None, str(values["body"]), clock)
    post.status, post.published_at = PUBLISHED, clock.now()
    session.flush()
    return PUBLISHED


def publish_due_moments(database: Database, clock: Clock) -> dict[str, int]:
    """Publish today's planned posts whose slot has opened; safe to run in several processes at once."""
    now = clock.now()
    utc_today = now.date()
    counts: Counter[str] = Counter()
    with database.transaction(read_only=True) as session:
        # Brand-local "today" is within a day of the UTC date in every time zone.
        rows = session.execute(
            select(MomentPost.id, MomentPost.workspace_id, MomentPost.post_date, MomentPost.slot).where(
                MomentPost.status == PLANNED,
                MomentPost.post_date.between(utc_today - timedelta(days=1), utc_today + timedelta(days=1)),
            )
        ).all()
        zones = {ws: workspace_tz(session, ws) for ws in {row.workspace_id for row in rows}}
    for post_id, workspace_id, post_date, slot in rows:
        tz = zones[workspace_id]
        if post_date != now.astimezone(tz).date():
            continue
        if slot_start(post_date, slot_time(DEFAULT_SLOT_TIMES, slot), tz) > now:
            continue
        with database.transaction() as session:
            bind_workspace(session, workspace_id)
            status = publish_post(session, post_id, clock)
        counts[status or "already"] += 1
    return {key: counts[key] for key in (PUBLISHED, FAILED, "already")}
