"""Console pages of group SOP calendars: the overview, the week grid, entries."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select
from starlette.datastructures import FormData
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.campaigns.calendars import groups, personas
from siyu.campaigns.calendars.common import local_today
from siyu.campaigns.calendars.groups import GROUP_ACCOUNT_KINDS
from siyu.campaigns.calendars.schemas import (
    EntryIn,
    GroupCalendarIn,
    GroupCalendarPatch,
)
from siyu.campaigns.calendars.views.forms import SLOTS, WEEKDAYS, build, form_id, live_contents, retry, text
from siyu.kit.errors import DomainError
from siyu.kit.ids import parse_id
from siyu.models import ChannelAccount, CommunityGroup, ContentItem
from siyu.web.deps import ConsoleCtx, Ctx, FormDep, IdPath
from siyu.web.pages import redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)

# --- overview and group calendars ---------------------------------------------------------------

CALENDAR_FIELDS = {"form", "name", "group_ids", "channel_account_id", "slot_times.morning", "slot_times.noon",
                   "slot_times.evening"}  # fmt: skip
ENTRY_FIELDS = {"entry", "weekdays", "slot", "content_id"}


def _calendar_choices(ctx: Ctx) -> dict[str, Any]:
    ws = ctx.actor.workspace_id
    return {
        "groups": ctx.session.scalars(
            select(CommunityGroup)
            .where(CommunityGroup.workspace_id == ws, CommunityGroup.is_active.is_(True))
            .order_by(CommunityGroup.name)
        ).all(),
        "accounts": ctx.session.scalars(
            select(ChannelAccount)
            .where(ChannelAccount.workspace_id == ws, ChannelAccount.kind.in_(GROUP_ACCOUNT_KINDS))
            .order_by(ChannelAccount.name)
        ).all(),
    }


def _calendar_values(form: FormData) -> dict[str, Any]:
    return {
        "name": text(form, "name"),
        "group_ids": [int(v) for v in form.getlist("group_ids") if isinstance(v, str) and parse_id(v)],
        "channel_account_id": text(form, "channel_account_id"),
        "slot_times": {slot: text(form, f"slot_times.{slot}") or None for slot in SLOTS},
        "is_active": text(form, "is_active") == "on",
    }


@router.get("/calendars")
def calendars_page(request: Request, ctx: ConsoleCtx) -> Response:
    return _overview(request, ctx)


def _overview(
    request: Request, ctx: Ctx, *, errors: dict[str, str] | None = None, values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:  # fmt: skip
    calendars = groups.list_calendars(ctx.session, ctx.actor)
    return render(
        request,
        "calendars/index.html",
        {
            "calendars": calendars,
            "entry_counts": {c.id: len(groups.entries_of(ctx.session, c.id)) for c in calendars},
            "personas": personas.list_personas(ctx.session, ctx.actor),
            "errors": errors or {},
            "values": values or {"group_ids": [], "slot_times": {}},
            **_calendar_choices(ctx),
        },
        status_code=status_code,
    )


@router.post("/calendars/groups")
def create_calendar(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    ctx.actor.require(Scope.TOUCH_WRITE)
    values = _calendar_values(form)
    try:
        data = build(
            GroupCalendarIn,
            name=values["name"],
            group_ids=values["group_ids"],
            channel_account_id=form_id(form, "channel_account_id"),
            slot_times={k: v for k, v in values["slot_times"].items() if v},
        )
        calendar = groups.create_calendar(ctx.session, actor=ctx.actor, data=data, clock=ctx.clock)
    except DomainError as exc:
        return retry(request, ctx, exc, CALENDAR_FIELDS, lambda **kw: _overview(request, ctx, values=values, **kw))
    _ = translator(request)
    flash(request, _("日历已保存"))
    return redirect(f"/calendars/groups/{calendar.id}")


def _calendar_page(
    request: Request, ctx: Ctx, calendar_id: int, *, errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None, status_code: int = 200,
) -> Response:  # fmt: skip
    calendar = groups.get_calendar(ctx.session, ctx.actor, calendar_id)
    entries = groups.entries_of(ctx.session, calendar.id)
    contents = live_contents(ctx)
    names = {c.id: c.name for c in contents} | {
        c.id: c.name
        for c in ctx.session.scalars(select(ContentItem).where(ContentItem.id.in_({e.content_id for e in entries})))
    }
    grid = {(slot, day): [e for e in entries if str(e.slot) == slot and day in e.weekdays] for slot in SLOTS
            for day in WEEKDAYS}  # fmt: skip
    today = local_today(ctx.session, ctx.actor.workspace_id, ctx.clock.now())
    return render(
        request,
        "calendars/group.html",
        {
            "calendar": calendar,
            "grid": grid,
            "content_names": names,
            "contents": contents,
            "posts": groups.posts_of(ctx.session, ctx.actor, calendar.id, limit=50),
            "group_names": {
                g.id: g.name
                for g in ctx.session.scalars(
                    select(CommunityGroup).where(CommunityGroup.workspace_id == ctx.actor.workspace_id)
                )
            },
            "today": today,
            "errors": errors or {},
            "values": values
            or {
                "name": calendar.name,
                "group_ids": list(calendar.group_ids),
                "channel_account_id": str(calendar.channel_account_id or ""),
                "slot_times": dict(calendar.slot_times),
                "is_active": calendar.is_active,
            },
            **_calendar_choices(ctx),
        },
        status_code=status_code,
    )


@router.get("/calendars/groups/{calendar_id}")
def calendar_page(request: Request, ctx: ConsoleCtx, calendar_id: IdPath) -> Response:
    return _calendar_page(request, ctx, calendar_id)


@router.post("/calendars/groups/{calendar_id}")
def update_calendar(request: Request, ctx: ConsoleCtx, calendar_id: IdPath, form: FormDep) -> Response:
    ctx.actor.require(Scope.TOUCH_WRITE)
    values = _calendar_values(form)
    try:
        data = build(
            GroupCalendarPatch,
            name=values["name"],
            group_ids=values["group_ids"],
            channel_account_id=form_id(form, "channel_account_id"),
            slot_times={k: v for k, v in values["slot_times"].items() if v},
            is_active=values["is_active"],
        )
        groups.update_calendar(ctx.session, actor=ctx.actor, calendar_id=calendar_id, data=data, clock=ctx.clock)
    except DomainError as exc:
        page = lambda **kw: _calendar_page(request, ctx, calendar_id, values=values, **kw)  # noqa: E731
        return retry(request, ctx, exc, CALENDAR_FIELDS, page)
    _ = translator(request)
    flash(request, _("日历已保存"))
    return redirect(f"/calendars/groups/{calendar_id}")


@router.post("/calendars/groups/{calendar_id}/entries")
def add_entry(request: Request, ctx: ConsoleCtx, calendar_id: IdPath, form: FormDep) -> Response:
    ctx.actor.require(Scope.TOUCH_WRITE)
    try:
        weekdays = [
            int(v) for v in form.getlist("weekdays") if isinstance(v, str) and v in {"1", "2", "3", "4", "5", "6", "7"}
        ]
        data = build(EntryIn, weekdays=weekdays, slot=text(form, "slot"), content_id=form_id(form, "content_id"))
        groups.add_entry(ctx.session, actor=ctx.actor, calendar_id=calendar_id, data=data, clock=ctx.clock)
    except DomainError as exc:
        return retry(request, ctx, exc, ENTRY_FIELDS, lambda **kw: _calendar_page(request, ctx, calendar_id, **kw))
    return redirect(f"/calendars/groups/{calendar_id}")


@router.post("/calendars/groups/{calendar_id}/entries/{entry_id}/delete")
def remove_entry(request: Request, ctx: ConsoleCtx, calendar_id: IdPath, entry_id: IdPath) -> Response:
    groups.remove_entry(ctx.session, actor=ctx.actor, calendar_id=calendar_id, entry_id=entry_id, clock=ctx.clock)
    return redirect(f"/calendars/groups/{calendar_id}")


@router.post("/calendars/groups/{calendar_id}/delete")
def delete_calendar(request: Request, ctx: ConsoleCtx, calendar_id: IdPath) -> Response:
    groups.delete_calendar(ctx.session, actor=ctx.actor, calendar_id=calendar_id, clock=ctx.clock)
    _ = translator(request)
    flash(request, _("日历已删除"))
    return redirect("/calendars")
