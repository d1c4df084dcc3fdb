"""Console pages of referral programs: list, create/edit (with the poster background), status,
detail with metrics and the K-factor chart, poster preview, and the referral tree."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter, Request
from starlette.datastructures import FormData, UploadFile
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.commerce.views.kit import brand_tz, error_field, text_values
from siyu.kit.errors import DomainError, InvalidInput
from siyu.loyalty.h5.reading import brand_name
from siyu.loyalty.member_tasks.periods import local_day
from siyu.referrals import metrics, programs
from siyu.referrals.posters import MAX_BACKGROUND_BYTES, PosterSpec, check_background, poster_png
from siyu.referrals.views.forms import (
    CONDITIONS,
    DEFAULTS,
    FIELDS,
    KINDS,
    STATUSES,
    program_in,
    program_patch,
    program_values,
)
from siyu.web.deps import ConsoleCtx, Ctx, FormDep, IdPath
from siyu.web.pages import error_text, redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)
PERIODS = ("day", "week", "month")


def _form(
    request: Request,
    ctx: Ctx,
    values: dict[str, str],
    program_id: int | None,
    errors: dict[str, str] | None = None,
    *,
    has_background: bool = False,
) -> Response:
    _ = translator(request)
    spec = FIELDS if program_id is None else tuple(f for f in FIELDS if f.name != "kind")
    shown = {f.name for f in spec} | {"poster_background"}
    errors = {(key if key in shown else "form"): text for key, text in (errors or {}).items()}
    context: dict[str, Any] = {
        "title": _("编辑邀请活动") if program_id else _("新建邀请活动"),
        "back": f"/growth/referrals/{program_id}" if program_id else "/growth/referrals",
        "action": f"/growth/referrals/{program_id}/edit" if program_id else "/growth/referrals",
        "spec": spec,
        "values": values,
        "errors": errors,
        "has_background": has_background,
    }
    return render(request, "referrals/form.html", context, status_code=422 if errors else 200)


def _background(form: FormData) -> bytes | None:
    """The uploaded background, normalised; None when no file was chosen. InvalidInput names the field.
    The form was parsed by hand (FormDep), so its spooled file is closed here."""
    file = form.get("poster_background")
    if not isinstance(file, UploadFile):
        return None
    try:
        data = file.file.read(MAX_BACKGROUND_BYTES + 1) if file.filename else b""
    finally:
        file.file.close()
    return check_background(data) if file.filename else None


@router.get("/growth/referrals")
def programs_page(request: Request, ctx: ConsoleCtx) -> Response:
    """Every program of the workspace, newest first."""
    ctx.actor.require(Scope.GROWTH_READ)
    rows = programs.list_programs(ctx.session, actor=ctx.actor)
    context = {"rows": rows, "kinds": dict(KINDS), "conditions": dict(CONDITIONS), "statuses": dict(STATUSES)}
    return render(request, "referrals/list.html", context)


@router.get("/growth/referrals/new")
def new_program_page(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.GROWTH_WRITE)
    return _form(request, ctx, dict(DEFAULTS), None)


@router.post("/growth/referrals")
def create_program(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    """Create a draft program (and store its poster background, if one was uploaded)."""
    ctx.actor.require(Scope.GROWTH_WRITE)
    values = text_values(form, FIELDS)
    tz = brand_tz(ctx.session, ctx.actor.workspace_id)
    try:
        background = _background(form)
        program = programs.create_program(ctx.session, actor=ctx.actor, data=program_in(values, tz), clock=ctx.clock)
        if background is not None:
            programs.set_poster_background(
                ctx.session, actor=ctx.actor, program_id=program.id, png=background, clock=ctx.clock
            )
    except DomainError as exc:
        ctx.session.rollback()
        return _form(request, ctx, values, None, {_field(exc): error_text(request, exc)})
    _ = translator(request)
    flash(request, _("邀请活动已保存") + f": {program.name}")
    return redirect(f"/growth/referrals/{program.id}")


def _field(exc: DomainError) -> str:
    details = exc.details if isinstance(exc.details, dict) else {}
    if details.get("field") == "poster_background":
        return "poster_background"
    field = str(details.get("field") or "form")
    # the schema names reward fields "referrer_reward" / "referrer_reward.points"; the form shows a value box
    if field.startswith(("referrer_reward", "referee_reward")):
        return field.split(".")[0].removesuffix("_value") + "_value"
    return error_field(exc, FIELDS)


@router.get("/growth/referrals/{program_id}")
def program_page(
    request: Request,
    ctx: ConsoleCtx,
    program_id: IdPath,
    start: date | None = None,
    end: date | None = None,
    period: str = "week",
) -> Response:
    """A program: its settings, members' links, metrics per period and the K-factor chart."""
    ctx.actor.require(Scope.GROWTH_READ)
    program = programs.get_program(ctx.session, actor=ctx.actor, program_id=program_id)
    tz = brand_tz(ctx.session, ctx.actor.workspace_id)
    today = local_day(ctx.clock.now(), tz)
    end = end or today
    start = start or end - timedelta(days=55)
    if start > end:
        raise InvalidInput("start must not be after end", details={"field": "start"})
    period = period if period in PERIODS else "week"
    result = metrics.program_metrics(
        ctx.session, actor=ctx.actor, program_id=program.id, start=start, end=end, period=period
    )
    chart = {
        "labels": [str(row.period_start) for row in result.rows],
        "k": [float(row.k_factor) for row in result.rows],
    }
    context = {
        "program": program,
        "unlocks": programs.unlocks_of(ctx.session, program.id),
        "metrics": result,
        "chart": chart,
        "start": start,
        "end": end,
        "period": period,
        "periods": PERIODS,
        "kinds": dict(KINDS),
        "conditions": dict(CONDITIONS),
        "statuses": dict(STATUSES),
        "public_url": ctx.settings.public_url.rstrip("/"),
    }
    return render(request, "referrals/detail.html", context)


@router.get("/growth/referrals/{program_id}/edit")
def edit_program_page(request: Request, ctx: ConsoleCtx, program_id: IdPath) -> Response:
    ctx.actor.require(Scope.GROWTH_WRITE)
    program = programs.get_program(ctx.session, actor=ctx.actor, program_id=program_id)
    tz = brand_tz(ctx.session, ctx.actor.workspace_id)
    values = program_values(program, programs.unlocks_of(ctx.session, program.id), tz)
    return _form(request, ctx, values, program.id, has_background=program.poster_background_png is not None)


@router.post("/growth/referrals/{program_id}/edit")
def update_program(request: Request, ctx: ConsoleCtx, program_id: IdPath, form: FormDep) -> Response:
    """Save the program's fields (and a new poster background, or remove it when asked)."""
    ctx.actor.require(Scope.GROWTH_WRITE)
    values = text_values(form, FIELDS)
    tz = brand_tz(ctx.session, ctx.actor.workspace_id)
    program = programs.get_program(ctx.session, actor=ctx.actor, program_id=program_id)
    has_background = program.poster_background_png is not None
    try:
        background = _background(form)
        program = programs.update_program(
            ctx.session, actor=ctx.actor, program_id=program_id, data=program_patch(values, tz), clock=ctx.clock
        )
        if background is not None or form.get("remove_background") == "on":
            programs.set_poster_background(
                ctx.session, actor=ctx.actor, program_id=program.id, png=background, clock=ctx.clock
            )
    except DomainError as exc:
        if exc.status_code == 404:
            raise
        ctx.session.rollback()
        errors = {_field(exc): error_text(request, exc)}
        return _form(request, ctx, values, program_id, errors, has_background=has_background)
    _ = translator(request)
    flash(request, _("邀请活动已保存") + f": {program.name}")
    return redirect(f"/growth/referrals/{program.id}")


@router.post("/growth/referrals/{program_id}/status")
def change_status(request: Request, ctx: ConsoleCtx, program_id: IdPath, form: FormDep) -> Response:
    """Start, pause or end a program."""
    ctx.actor.require(Scope.GROWTH_WRITE)
    status = form.get("status")
    program = programs.set_status(
        ctx.session, actor=ctx.actor, program_id=program_id, status=str(status or ""), clock=ctx.clock
    )
    _ = translator(request)
    flash(request, _("活动状态已更新"))
    return redirect(f"/growth/referrals/{program.id}")


@router.get("/growth/referrals/{program_id}/poster.png")
def poster_preview(request: Request, ctx: ConsoleCtx, program_id: IdPath) -> Response:
    """What members' posters look like (a sample code and name)."""
    ctx.actor.require(Scope.GROWTH_READ)
    program = programs.get_program(ctx.session, actor=ctx.actor, program_id=program_id)
    _ = translator(request)
    sample = "SAMPLE00"
    name = _("会员昵称")
    spec = PosterSpec(
        code=sample,
        link=f"{ctx.settings.public_url.rstrip('/')}/r/{sample}",
        title=program.poster_title or program.name,
        text=program.poster_text,
        member_name=name,
        brand=brand_name(ctx.session, ctx.actor.workspace_id),
        version=program.updated_at.isoformat(),
        background=program.poster_background_png,
    )
    png = poster_png(spec, invite_line=_("{name} 邀请你").format(name=name), scan_line=_("长按识别二维码"))
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})
