"""Console pages of short links: the list, the create form, one link with its clicks chart."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.kit.errors import DomainError, InvalidInput
from siyu.kit.ids import parse_id
from siyu.shortlinks import service
from siyu.shortlinks.schemas import short_url
from siyu.shortlinks.slugs import UTM_KEYS
from siyu.shortlinks.stats import link_stats, workspace_tz
from siyu.web.deps import ConsoleCtx, Ctx, IdPath
from siyu.web.pages import form_error, redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)


def _base(request: Request) -> str:
    return str(request.base_url)


def _local_time(ctx: Ctx, text: str, field: str = "expires_at") -> datetime | None:
    """A `datetime-local` form value, read in the brand's time zone."""
    text = text.strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(f"{field} is not a date and time", details={"field": field}) from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=workspace_tz(ctx.session, ctx.actor.workspace_id))
    return value


def _optional_id(text: str, field: str) -> int | None:
    if not text.strip():
        return None
    value = parse_id(text)
    if value is None:
        raise InvalidInput(f"{field} is not a valid id", details={"field": field})
    return value


@router.get("/short-links")
def short_links_page(request: Request, ctx: ConsoleCtx, cursor: str | None = None) -> Response:
    ctx.actor.require(Scope.ACQUISITION_READ)
    page = service.list_links(ctx.session, workspace_id=ctx.actor.workspace_id, cursor=cursor, limit=50)
    counts = service.click_counts(ctx.session, workspace_id=ctx.actor.workspace_id, link_ids=[x.id for x in page.items])
    rows = [
        {"link": link, "url": short_url(_base(request), link.slug), "counts": counts.get(link.id, (0, 0))}
        for link in page.items
    ]
    next_url = f"/short-links?cursor={page.next_cursor}" if page.next_cursor else None
    return render(request, "short_links/list.html", {"rows": rows, "next_url": next_url})


def _form_context(ctx: Ctx, **extra: Any) -> dict[str, Any]:
    channels, experiments = service.form_choices(ctx.session, workspace_id=ctx.actor.workspace_id)
    return {"channels": channels, "experiments": experiments, "utm_keys": UTM_KEYS, "values": {}, "errors": {}} | extra


@router.get("/short-links/new")
def new_short_link(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.ACQUISITION_WRITE)
    return render(request, "short_links/new.html", _form_context(ctx))


@router.post("/short-links")
def create_short_link(
    request: Request,
    ctx: ConsoleCtx,
    target_url: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    campaign: Annotated[str, Form()] = "",
    channel_id: Annotated[str, Form()] = "",
    experiment_id: Annotated[str, Form()] = "",
    expires_at: Annotated[str, Form()] = "",
    slug: Annotated[str, Form()] = "",
    utm_source: Annotated[str, Form()] = "",
    utm_medium: Annotated[str, Form()] = "",
    utm_campaign: Annotated[str, Form()] = "",
    utm_content: Annotated[str, Form()] = "",
    utm_term: Annotated[str, Form()] = "",
) -> Response:
    """Create a campaign link and open its page; a bad field comes back to the form, named."""
    ctx.actor.require(Scope.ACQUISITION_WRITE)
    utm = {
        "utm_source": utm_source,
        "utm_medium": utm_medium,
        "utm_campaign": utm_campaign,
        "utm_content": utm_content,
        "utm_term": utm_term,
    }
    values = {
        "target_url": target_url,
        "name": name,
        "campaign": campaign,
        "channel_id": channel_id,
        "experiment_id": experiment_id,
        "expires_at": expires_at,
        "slug": slug,
    } | utm
    try:
        link = service.create_link(
            ctx.session,
            actor=ctx.actor,
            target_url=target_url,
            name=name,
            campaign=campaign,
            channel_id=_optional_id(channel_id, "channel_id"),
            experiment_id=_optional_id(experiment_id, "experiment_id"),
            utm={k: v for k, v in utm.items() if v.strip()},
            expires_at=_local_time(ctx, expires_at),
            slug=slug or None,
            clock=ctx.clock,
        )
    except DomainError as exc:
        return form_error(request, ctx, exc, "short_links/new.html", lambda: _form_context(ctx, values=values))
    _ = translator(request)
    flash(request, _("短链已创建"))
    return redirect(f"/short-links/{link.id}")


def _detail_context(request: Request, ctx: Ctx, link_id: int, **extra: Any) -> dict[str, Any]:
    link = service.get_link(ctx.session, workspace_id=ctx.actor.workspace_id, link_id=link_id)
    stats = link_stats(ctx.session, workspace_id=ctx.actor.workspace_id, link_id=link.id, clock=ctx.clock)
    tz = workspace_tz(ctx.session, ctx.actor.workspace_id)
    chart = {
        "days": [d.day.isoformat() for d in stats.by_day],
        "clicks": [d.clicks for d in stats.by_day],
        "uniques": [d.unique_visitors for d in stats.by_day],
    }
    return {
        "link": link,
        "url": short_url(_base(request), link.slug),
        "stats": stats,
        "chart": chart,
        "expires_local": link.expires_at.astimezone(tz).strftime("%Y-%m-%dT%H:%M") if link.expires_at else "",
        "errors": {},
    } | extra


@router.get("/short-links/{link_id}")
def short_link_page(request: Request, ctx: ConsoleCtx, link_id: IdPath) -> Response:
    ctx.actor.require(Scope.ACQUISITION_READ)
    return render(request, "short_links/detail.html", _detail_context(request, ctx, link_id))


@router.post("/short-links/{link_id}/edit")
def edit_short_link(
    request: Request,
    ctx: ConsoleCtx,
    link_id: IdPath,
    target_url: Annotated[str, Form()] = "",
    expires_at: Annotated[str, Form()] = "",
) -> Response:
    """Change the target and the expiry (an empty expiry means the link never expires)."""
    ctx.actor.require(Scope.ACQUISITION_WRITE)
    try:
        service.update_link(
            ctx.session,
            actor=ctx.actor,
            link_id=link_id,
            target_url=target_url,
            expires_at=_local_time(ctx, expires_at),
            clock=ctx.clock,
        )
    except DomainError as exc:
        return form_error(
            request, ctx, exc, "short_links/detail.html", lambda: _detail_context(request, ctx, link_id), field="edit"
        )
    _ = translator(request)
    flash(request, _("短链已更新"))
    return redirect(f"/short-links/{link_id}")


@router.post("/short-links/{link_id}/delete")
def delete_short_link(request: Request, ctx: ConsoleCtx, link_id: IdPath) -> Response:
    ctx.actor.require(Scope.ACQUISITION_WRITE)
    service.delete_link(ctx.session, actor=ctx.actor, link_id=link_id, clock=ctx.clock)
    _ = translator(request)
    flash(request, _("短链已删除"))
    return redirect("/short-links")
