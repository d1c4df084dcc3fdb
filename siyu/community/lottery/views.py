"""Console pages of community lottery (`/growth/lottery`) and the public verify page (`/lottery/{id}/verify`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.commerce.views.kit import (
    FormField,
    brand_tz,
    customer_names,
    error_field,
    form_page,
    object_values,
    parse,
    parse_int,
    text_values,
    validated,
)
from siyu.community.lottery import drawing, entries, service
from siyu.community.lottery.schemas import DrawIn
from siyu.db import Database
from siyu.kit.errors import DomainError, InvalidInput
from siyu.kit.ids import MAX_ID
from siyu.models import DrawMethod, DrawStatus, LotteryDraw, LotteryPrize
from siyu.web.deps import ConsoleCtx, Ctx, FormDep, IdPath
from siyu.web.pages import error_text, redirect
from siyu.web.templating import flash, render, render_public, translator
from siyu.workspaces.scope import bind_workspace

router = APIRouter(include_in_schema=False)


def _(message: str) -> str:
    return message


METHODS = ((DrawMethod.FIXED.value, _("固定名额")), (DrawMethod.PROBABILITY.value, _("按概率")))
FIELDS = (
    FormField("name", _("抽奖名称"), required=True),
    FormField("method", _("开奖方式"), kind="select", choices=METHODS, required=True),
    FormField("entry_points", _("每次消耗积分"), kind="int", hint=_("留空则不能用积分参与")),
    FormField("max_entries_per_member", _("每人最多参与次数"), kind="int", required=True),
    FormField("one_win_per_customer", _("每人最多中奖一次"), kind="bool"),
    FormField("opens_at", _("开始时间"), kind="datetime"),
    FormField("closes_at", _("开奖时间"), kind="datetime", hint=_("到点自动开奖")),
    FormField("notify_channel_account_id", _("中奖通知渠道账号 ID"), kind="int"),
    FormField("notify_content_id", _("中奖通知内容 ID"), kind="int"),
    FormField(
        "prizes",
        _("奖品"),
        kind="textarea",
        required=True,
        hint=_("每行一个奖品：名称, 库存, 中奖人数或概率(ppm), 积分, 优惠券模板 ID（可留空）"),
    ),
    FormField("description", _("说明"), kind="textarea"),
)


def parse_prizes(text: str, method: str) -> list[dict[str, Any]]:
    """Prize lines "名称, 库存, 人数|ppm, 积分, 券模板" → PrizeIn dicts; a bad line is named ("prizes", line n)."""
    prizes: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        cells = [c.strip() for c in line.replace("，", ",").split(",")]
        if len(cells) < 3 or len(cells) > 5 or not cells[0]:
            raise InvalidInput(
                f"prizes: line {number}: expected 名称, 库存, 人数或概率", details={"field": "prizes", "line": number}
            )
        try:
            stock = parse_int(cells[1], "prizes")
            amount = parse_int(cells[2], "prizes")
            points = parse_int(cells[3], "prizes") if len(cells) > 3 and cells[3] else 0
            template = parse_int(cells[4], "prizes") if len(cells) > 4 and cells[4] else None
        except InvalidInput:
            raise InvalidInput(
                f"prizes: line {number}: expected whole numbers", details={"field": "prizes", "line": number}
            ) from None
        prize: dict[str, Any] = {"name": cells[0], "stock": stock, "points": points, "coupon_template_id": template}
        prize["winners" if method == DrawMethod.FIXED else "probability_ppm"] = amount
        prizes.append(prize)
    return prizes


def prize_lines(prizes: list[LotteryPrize]) -> str:
    """Prizes back as the form's lines."""
    return "\n".join(
        ", ".join(
            [
                p.name,
                str(p.stock),
                str(p.winners if p.winners is not None else p.probability_ppm or 0),
                str(p.points),
                str(p.coupon_template_id or ""),
            ]
        ).rstrip(", ")
        for p in prizes
    )


def draw_input(values: dict[str, str], ctx: Ctx) -> DrawIn:
    data = parse(values, FIELDS, brand_tz(ctx.session, ctx.actor.workspace_id))
    data["prizes"] = parse_prizes(values.get("prizes", ""), values.get("method", ""))
    data["description"] = data["description"] or ""
    try:
        return validated(DrawIn, data)
    except InvalidInput as exc:
        field = str((exc.details or {}).get("field", "form"))
        raise InvalidInput(exc.message, details={"field": field.split(".")[0]}) from None


def _form(
    request: Request,
    values: dict[str, str],
    draw_id: int | None,
    errors: dict[str, str] | None = None,
    status: int = 422,
) -> Response:
    _ = translator(request)
    return form_page(
        request,
        title=_("编辑抽奖") if draw_id else _("新建抽奖"),
        back=f"/growth/lottery/{draw_id}" if draw_id else "/growth/lottery",
        action=f"/growth/lottery/{draw_id}/edit" if draw_id else "/growth/lottery",
        spec=FIELDS,
        values=values,
        errors=errors,
        error_status=status,
    )


def _refused(request: Request, ctx: Ctx, values: dict[str, str], draw_id: int | None, exc: DomainError) -> Response:
    ctx.session.rollback()
    status = exc.status_code if 400 <= exc.status_code < 500 else 400
    return _form(request, values, draw_id, {error_field(exc, FIELDS): error_text(request, exc)}, status)


@router.get("/growth/lottery")
def draws_page(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.GROWTH_READ)
    draws = service.list_draws(ctx.session, workspace_id=ctx.actor.workspace_id)
    counts = {d.id: service.entry_count(ctx.session, d.id) for d in draws}
    return render(request, "lottery/draws.html", {"draws": draws, "counts": counts, "methods": dict(METHODS)})


@router.get("/growth/lottery/new")
def new_draw_page(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.GROWTH_WRITE)
    return _form(request, {"method": "fixed", "max_entries_per_member": "1", "one_win_per_customer": "on"}, None)


@router.post("/growth/lottery")
def create_draw(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    ctx.actor.require(Scope.GROWTH_WRITE)
    values = text_values(form, FIELDS)
    try:
        draw = service.create_draw(ctx.session, actor=ctx.actor, data=draw_input(values, ctx), clock=ctx.clock)
    except DomainError as exc:
        return _refused(request, ctx, values, None, exc)
    _ = translator(request)
    flash(request, _("抽奖已保存") + f": {draw.name}")
    return redirect(f"/growth/lottery/{draw.id}")


@router.get("/growth/lottery/{draw_id}")
def draw_page(request: Request, ctx: ConsoleCtx, draw_id: IdPath) -> Response:
    ctx.actor.require(Scope.GROWTH_READ)
    ws = ctx.actor.workspace_id
    draw = service.get_draw(ctx.session, workspace_id=ws, draw_id=draw_id)
    tickets = entries.draw_entries(ctx.session, draw_id=draw.id)
    wins = service.wins_of(ctx.session, draw.id)
    names = customer_names(ctx.session, ws, {e.customer_id for e in tickets[:500]} | {w.customer_id for w in wins})
    context = {
        "draw": draw,
        "prizes": service.prizes_of(ctx.session, draw.id),
        "entries": tickets[:500],
        "entry_total": len(tickets),
        "ticket_of": {e.id: e.ticket_no for e in tickets},
        "wins": wins,
        "names": names,
        "methods": dict(METHODS),
    }
    return render(request, "lottery/draw.html", context)


@router.get("/growth/lottery/{draw_id}/edit")
def edit_draw_page(request: Request, ctx: ConsoleCtx, draw_id: IdPath) -> Response:
    ctx.actor.require(Scope.GROWTH_WRITE)
    draw = service.get_draw(ctx.session, workspace_id=ctx.actor.workspace_id, draw_id=draw_id)
    values = object_values(draw, FIELDS, brand_tz(ctx.session, ctx.actor.workspace_id))
    values["prizes"] = prize_lines(service.prizes_of(ctx.session, draw.id))
    return _form(request, values, draw_id)


@router.post("/growth/lottery/{draw_id}/edit")
def update_draw(request: Request, ctx: ConsoleCtx, draw_id: IdPath, form: FormDep) -> Response:
    ctx.actor.require(Scope.GROWTH_WRITE)
    values = text_values(form, FIELDS)
    try:
        service.update_draw(
            ctx.session, actor=ctx.actor, draw_id=draw_id, data=draw_input(values, ctx), clock=ctx.clock
        )
    except DomainError as exc:
        if exc.status_code == 404:
            raise
        return _refused(request, ctx, values, draw_id, exc)
    _ = translator(request)
    flash(request, _("抽奖已保存"))
    return redirect(f"/growth/lottery/{draw_id}")


@router.post("/growth/lottery/{draw_id}/{action}")
def draw_action(request: Request, ctx: ConsoleCtx, draw_id: IdPath, action: str, _posted: FormDep) -> Response:
    """open | cancel | draw."""
    ctx.actor.require(Scope.GROWTH_WRITE)
    _ = translator(request)
    actions = {
        "open": (service.open_draw, _("抽奖已开始，承诺值已公开")),
        "cancel": (service.cancel_draw, _("抽奖已取消")),
        "draw": (drawing.run_draw, _("已开奖")),
    }
    if action not in actions:
        return redirect(f"/growth/lottery/{draw_id}")
    run, done = actions[action]
    try:
        run(ctx.session, actor=ctx.actor, draw_id=draw_id, clock=ctx.clock)
    except DomainError as exc:
        if exc.status_code == 404:
            raise
        ctx.session.rollback()
        flash(request, error_text(request, exc), kind="danger")
        return redirect(f"/growth/lottery/{draw_id}")
    flash(request, done)
    return redirect(f"/growth/lottery/{draw_id}")


# --- public verification ------------------------------------------------------------------------


def _public(request: Request, draw_id: int) -> tuple[drawing.PublicDraw | None, dict[str, Any]]:
    database: Database = request.app.state.database
    with database.transaction(read_only=True) as session:
        found = session.get(LotteryDraw, draw_id) if 1 <= draw_id <= MAX_ID else None
        if found is None:
            return None, {}
        bind_workspace(session, found.workspace_id)
        public = drawing.public_draw(session, draw_id=draw_id)
        if public is None:
            return None, {}
        draw = public.draw
        data: dict[str, Any] = {
            "draw_id": draw.id,
            "name": draw.name,
            "method": str(draw.method),
            "status": str(draw.status),
            "one_win_per_customer": draw.one_win_per_customer,
            "commitment": draw.commitment,
            "seed": draw.seed if draw.status == DrawStatus.DRAWN else None,
            "entries_digest": draw.entries_digest,
            "prizes": [
                {
                    "prize_id": p.id,
                    "name": p.name,
                    "stock": p.stock,
                    "winners": p.winners,
                    "probability_ppm": p.probability_ppm,
                }
                for p in public.prizes
            ],
            "entries": [f"{t.ticket_no}:{t.customer_id}" for t in public.tickets],
            "winners": [{"ticket_no": p.ticket_no, "prize_id": p.prize_id} for p in public.picks],
            "verified": public.is_verified,
        }
        return public, data


@router.get("/lottery/{draw_id}/verify")
def verify_page(request: Request, draw_id: int) -> Response:
    """No login: commitment (always), seed, entry digest, entries and winners once drawn, and the check."""
    public, data = _public(request, draw_id)
    if public is None:
        return render_public(request, "lottery/verify.html", {"data": None}, status_code=404)
    prize_names = {p["prize_id"]: p["name"] for p in data["prizes"]}
    return render_public(request, "lottery/verify.html", {"data": data, "prize_names": prize_names})


@router.get("/lottery/{draw_id}/verify.json")
def verify_json(request: Request, draw_id: int) -> Response:
    """The same public data as JSON, for recomputing the draw elsewhere."""
    public, data = _public(request, draw_id)
    if public is None:
        return JSONResponse({"error": {"code": "draw_not_found", "message": "draw not found"}}, status_code=404)
    return JSONResponse(data)
