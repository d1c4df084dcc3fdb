"""Console pages of personas and their moments calendars."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select
from starlette.datastructures import FormData
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.campaigns.calendars import moments, personas
from siyu.campaigns.calendars.common import local_today
from siyu.campaigns.calendars.schemas import (
    MomentIn,
    MomentResultsIn,
    PersonaIn,
)
from siyu.campaigns.calendars.views.forms import SLOTS, build, form_id, live_contents, retry, text
from siyu.kit.errors import DomainError, InvalidInput
from siyu.models import ContentItem, Staff
from siyu.web.deps import ConsoleCtx, Ctx, FormDep, IdPath
from siyu.web.pages import redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)

# --- personas and moments ------------------------------------------------------------------------

PERSONA_FIELDS = {"form", "name", "staff_id", "avatar_url", "signature", "background_url", "tone"}
MOMENT_FIELDS = {"moment", "post_date", "slot", "content_id", "is_marketing"}
PERSONA_KEYS = ("name", "staff_id", "avatar_url", "signature", "background_url", "tone")


def _persona_data(form: FormData) -> PersonaIn:
    values: dict[str, Any] = {k: text(form, k) or None for k in PERSONA_KEYS}
    values["name"] = values["name"] or ""
    values["staff_id"] = form_id(form, "staff_id", required=False)
    result: PersonaIn = build(PersonaIn, **values)
    return result


def _staff(ctx: Ctx) -> list[Staff]:
    return list(
        ctx.session.scalars(
            select(Staff)
            .where(Staff.workspace_id == ctx.actor.workspace_id, Staff.is_active.is_(True))
            .order_by(Staff.name)
        )
    )


def _persona_page(
    request: Request, ctx: Ctx, persona_id: int | None, *, errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None, status_code: int = 200,
) -> Response:  # fmt: skip
    persona = personas.get_persona(ctx.session, ctx.actor, persona_id) if persona_id else None
    if values is None:
        values = {k: (getattr(persona, k) or "") if persona else "" for k in PERSONA_KEYS}
    return render(
        request,
        "calendars/persona.html",
        {
            "persona": persona,
            "personas": personas.list_personas(ctx.session, ctx.actor),
            "staff": _staff(ctx),
            "values": values,
            "errors": errors or {},
        },
        status_code=status_code,
    )


@router.get("/calendars/personas")
def personas_page(request: Request, ctx: ConsoleCtx) -> Response:
    return _persona_page(request, ctx, None)


@router.post("/calendars/personas")
def create_persona(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    ctx.actor.require(Scope.TOUCH_WRITE)
    values = {k: text(form, k) for k in PERSONA_KEYS}
    try:
        persona = personas.create_persona(ctx.session, actor=ctx.actor, data=_persona_data(form), clock=ctx.clock)
    except DomainError as exc:
        return retry(
            request, ctx, exc, PERSONA_FIELDS, lambda **kw: _persona_page(request, ctx, None, values=values, **kw)
        )
    _ = translator(request)
    flash(request, _("人设已保存"))
    return redirect(f"/calendars/personas/{persona.id}/moments")


@router.get("/calendars/personas/{persona_id}/edit")
def edit_persona_page(request: Request, ctx: ConsoleCtx, persona_id: IdPath) -> Response:
    return _persona_page(request, ctx, persona_id)


@router.post("/calendars/personas/{persona_id}/edit")
def update_persona(request: Request, ctx: ConsoleCtx, persona_id: IdPath, form: FormDep) -> Response:
    ctx.actor.require(Scope.TOUCH_WRITE)
    values = {k: text(form, k) for k in PERSONA_KEYS}
    try:
        data = _persona_data(form)
        personas.update_persona(ctx.session, actor=ctx.actor, persona_id=persona_id, data=data, clock=ctx.clock)
    except DomainError as exc:
        page = lambda **kw: _persona_page(request, ctx, persona_id, values=values, **kw)  # noqa: E731
        return retry(request, ctx, exc, PERSONA_FIELDS, page)
    _ = translator(request)
    flash(request, _("人设已保存"))
    return redirect(f"/calendars/personas/{persona_id}/moments")


def _moments_page(
    request: Request, ctx: Ctx, persona_id: int, day: date | None, *, errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None, status_code: int = 200,
) -> Response:  # fmt: skip
    today = local_today(ctx.session, ctx.actor.workspace_id, ctx.clock.now())
    week = moments.moment_week(ctx.session, ctx.actor, persona_id, day or today)
    contents = live_contents(ctx)
    names = {c.id: c.name for c in contents} | {
        c.id: c.name
        for c in ctx.session.scalars(select(ContentItem).where(ContentItem.id.in_({p.content_id for p in week.posts})))
    }
    return render(
        request,
        "calendars/moments.html",
        {
            "week": week,
            "slots": SLOTS,
            "contents": contents,
            "content_names": names,
            "today": today,
            "prev_week": week.monday - timedelta(days=7),
            "next_week": week.monday + timedelta(days=7),
            "errors": errors or {},
            "values": values or {"post_date": max(today, week.monday).isoformat(), "slot": "morning"},
        },
        status_code=status_code,
    )


def _week_param(week: str | None) -> date | None:
    try:
        return date.fromisoformat(week) if week else None
    except ValueError:
        return None


@router.get("/calendars/personas/{persona_id}/moments")
def moments_page(request: Request, ctx: ConsoleCtx, persona_id: IdPath, week: str | None = None) -> Response:
    return _moments_page(request, ctx, persona_id, _week_param(week))


@router.post("/calendars/personas/{persona_id}/moments")
def plan_moment(request: Request, ctx: ConsoleCtx, persona_id: IdPath, form: FormDep) -> Response:
    ctx.actor.require(Scope.TOUCH_WRITE)
    values = {k: text(form, k) for k in ("post_date", "slot", "content_id", "is_marketing")}
    marketing = {"yes": True, "no": False}.get(values["is_marketing"])
    day = _week_param(values["post_date"])
    try:
        if day is None:
            raise InvalidInput("post_date: expected a date (YYYY-MM-DD)", details={"field": "post_date"})
        data = build(
            MomentIn, persona_id=persona_id, post_date=day, slot=values["slot"], content_id=form_id(form, "content_id"),
            is_marketing=marketing,
        )  # fmt: skip
        moments.plan_moment(ctx.session, actor=ctx.actor, data=data, clock=ctx.clock)
    except DomainError as exc:
        page = lambda **kw: _moments_page(request, ctx, persona_id, day, values=values, **kw)  # noqa: E731
        return retry(request, ctx, exc, MOMENT_FIELDS, page)
    return redirect(f"/calendars/personas/{persona_id}/moments?week={day.isoformat()}")


@router.post("/calendars/moments/{moment_id}/results")
def record_results(request: Request, ctx: ConsoleCtx, moment_id: IdPath, form: FormDep) -> Response:
    ctx.actor.require(Scope.TOUCH_WRITE)
    post = moments.get_moment(ctx.session, ctx.actor, moment_id)
    persona_id, day = post.persona_id, post.post_date
    try:
        likes, comments = text(form, "likes").strip(), text(form, "comments").strip()
        for field, raw in (("likes", likes), ("comments", comments)):
            if not (raw.isascii() and raw.isdigit() and len(raw) <= 7):
                raise InvalidInput(f"{field}: a whole number", details={"field": field})
        data = build(MomentResultsIn, likes=int(likes), comments=int(comments))
        moments.record_results(ctx.session, actor=ctx.actor, moment_id=moment_id, data=data, clock=ctx.clock)
    except DomainError as exc:
        page = lambda **kw: _moments_page(request, ctx, persona_id, day, **kw)  # noqa: E731
        return retry(request, ctx, exc, {"moment"} | {"form"}, page)
    return redirect(f"/calendars/personas/{persona_id}/moments?week={day.isoformat()}")


@router.post("/calendars/moments/{moment_id}/delete")
def delete_moment(request: Request, ctx: ConsoleCtx, moment_id: IdPath) -> Response:
    ctx.actor.require(Scope.TOUCH_WRITE)
    post = moments.get_moment(ctx.session, ctx.actor, moment_id)
    persona_id, day = post.persona_id, post.post_date
    try:
        moments.delete_moment(ctx.session, actor=ctx.actor, moment_id=moment_id, clock=ctx.clock)
    except DomainError as exc:
        page = lambda **kw: _moments_page(request, ctx, persona_id, day, **kw)  # noqa: E731
        return retry(request, ctx, exc, {"form"}, page)
    return redirect(f"/calendars/personas/{persona_id}/moments?week={day.isoformat()}")
