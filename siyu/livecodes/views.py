"""Console pages for live codes: list, editor, detail with QR downloads and scan log, groups."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request, UploadFile
from sqlalchemy import select
from starlette.datastructures import FormData
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.kit.errors import DomainError, InvalidInput
from siyu.livecodes import groups as group_service
from siyu.livecodes import reports, service
from siyu.livecodes.forms import form_values, parse_form, values_from_form
from siyu.livecodes.qr import QrFormat, check_logo, qr_zip, render_qr, safe_filename
from siyu.livecodes.scan import workspace_tz
from siyu.livecodes.schemas import GroupIn
from siyu.livecodes.state import encode_state
from siyu.livecodes.welcome import check_template, render_welcome
from siyu.models import Channel, Experiment, LiveCode, LiveCodeKind, Staff, Store, Tag, TagGroup
from siyu.web.deps import ConsoleCtx, Ctx, FormDep, IdPath
from siyu.web.pages import error_text, redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)
SAMPLE = {
    "name": "王小姐",
    "staff_name": "小林",
    "store_name": "上海静安店",
    "hook": "免费小样",
    "channel_name": "双11包裹卡",
    "code_name": "包裹卡活码",
}


def _is_id(value: str) -> bool:
    return value.isascii() and value.isdigit() and len(value) < 19


def _url(request: Request, code: LiveCode) -> str:
    return str(request.base_url).rstrip("/") + f"/q/{code.slug}"


def _choices(ctx: Ctx) -> dict[str, Any]:
    ws = ctx.actor.workspace_id
    session = ctx.session
    return {
        "channels": session.scalars(
            select(Channel).where(Channel.workspace_id == ws, Channel.is_archived.is_(False)).order_by(Channel.name)
        ).all(),
        "staff": session.scalars(
            select(Staff).where(Staff.workspace_id == ws, Staff.is_active.is_(True)).order_by(Staff.name)
        ).all(),
        "groups": group_service.list_groups(session, ws),
        "stores": session.scalars(select(Store).where(Store.workspace_id == ws).order_by(Store.name)).all(),
        "experiments": session.scalars(
            select(Experiment).where(Experiment.workspace_id == ws).order_by(Experiment.id.desc())
        ).all(),
        "tags": session.execute(
            select(Tag, TagGroup.name)
            .join(TagGroup, TagGroup.id == Tag.group_id)
            .where(Tag.workspace_id == ws)
            .order_by(TagGroup.name, Tag.name)
        ).all(),
    }


@router.get("/live-codes")
def live_codes_page(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.ACQUISITION_READ)
    codes = service.list_live_codes(ctx.session, ctx.actor.workspace_id)
    tz = workspace_tz(ctx.session, ctx.actor.workspace_id)
    figures = reports.figures_by_code(ctx.session, [c.id for c in codes], now=ctx.clock.now(), tz=tz)
    channels = dict(
        ctx.session.execute(
            select(Channel.id, Channel.name).where(Channel.workspace_id == ctx.actor.workspace_id)
        ).all()
    )
    warnings = {c.id: group_service.group_capacity(ctx.session, c) for c in codes if c.kind == LiveCodeKind.GROUP}
    return render(
        request,
        "livecodes/list.html",
        {
            "codes": codes,
            "figures": figures,
            "channels": channels,
            "warnings": warnings,
            "stores": ctx.session.scalars(
                select(Store).where(Store.workspace_id == ctx.actor.workspace_id).order_by(Store.name)
            ).all(),
        },
    )


def _editor(
    request: Request,
    ctx: Ctx,
    *,
    code: LiveCode | None,
    values: dict[str, Any],
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "livecodes/edit.html",
        {"code": code, "values": values, "errors": errors or {}, **_choices(ctx)},
        status_code=status_code,
    )


@router.get("/live-codes/new")
def new_code_page(request: Request, ctx: ConsoleCtx, kind: str = "staff") -> Response:
    ctx.actor.require(Scope.ACQUISITION_WRITE)
    values = form_values(None, [], [])
    values["kind"] = kind if kind in {k.value for k in LiveCodeKind} else "staff"
    return _editor(request, ctx, code=None, values=values)


def _save(request: Request, ctx: Ctx, code_id: int | None, form: FormData) -> Response:
    try:
        data = parse_form(form)
        if code_id is None:
            code = service.create_live_code(ctx.session, actor=ctx.actor, data=data, clock=ctx.clock)
        else:
            code = service.update_live_code(ctx.session, actor=ctx.actor, code_id=code_id, data=data, clock=ctx.clock)
    except DomainError as exc:
        ctx.session.rollback()
        current = service.get_live_code(ctx.session, ctx.actor.workspace_id, code_id) if code_id else None
        field = str((exc.details or {}).get("field", "form")) if isinstance(exc.details, dict) else "form"
        status = exc.status_code if 400 <= exc.status_code < 500 else 400
        return _editor(
            request,
            ctx,
            code=current,
            values=values_from_form(form),
            errors={"form": error_text(request, exc), "field": field},
            status_code=status,
        )
    _ = translator(request)
    flash(request, _("活码已保存"))
    return redirect(f"/live-codes/{code.id}")


@router.post("/live-codes/new")
def create_code(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    ctx.actor.require(Scope.ACQUISITION_WRITE)
    return _save(request, ctx, None, form)


@router.get("/live-codes/{code_id}/edit")
def edit_code_page(request: Request, ctx: ConsoleCtx, code_id: IdPath) -> Response:
    ctx.actor.require(Scope.ACQUISITION_WRITE)
    code = service.get_live_code(ctx.session, ctx.actor.workspace_id, code_id)
    values = form_values(code, service.routes_of(ctx.session, code.id), service.tag_ids_of(ctx.session, code.id))
    return _editor(request, ctx, code=code, values=values)


@router.post("/live-codes/{code_id}/edit")
def update_code(request: Request, ctx: ConsoleCtx, code_id: IdPath, form: FormDep) -> Response:
    ctx.actor.require(Scope.ACQUISITION_WRITE)
    return _save(request, ctx, code_id, form)


@router.post("/live-codes/welcome-preview")
def welcome_preview(
    request: Request, ctx: ConsoleCtx, text: Annotated[str, Form(alias="welcome-text")] = ""
) -> Response:
    """The welcome message rendered for a sample customer (HTMX fragment of the editor)."""
    ctx.actor.require(Scope.ACQUISITION_READ)
    try:
        check_template(text)
        preview, error = render_welcome({"text": text}, SAMPLE).text, None
    except InvalidInput as exc:
        preview, error = "", error_text(request, exc)
    return render(request, "livecodes/_preview.html", {"preview": preview, "error": error})


@router.get("/live-codes/{code_id}")
def code_page(request: Request, ctx: ConsoleCtx, code_id: IdPath, cursor: str | None = None) -> Response:
    ctx.actor.require(Scope.ACQUISITION_READ)
    code = service.get_live_code(ctx.session, ctx.actor.workspace_id, code_id)
    tz = workspace_tz(ctx.session, code.workspace_id)
    routes = service.routes_of(ctx.session, code.id)
    page = reports.scan_log(ctx.session, workspace_id=code.workspace_id, live_code_id=code.id, cursor=cursor)
    staff = dict(ctx.session.execute(select(Staff.id, Staff.name).where(Staff.workspace_id == code.workspace_id)).all())
    groups = {g.id: g for g in group_service.list_groups(ctx.session, code.workspace_id)}
    tag_names = ctx.session.scalars(select(Tag.name).where(Tag.id.in_(service.tag_ids_of(ctx.session, code.id)))).all()
    channel = ctx.session.get(Channel, code.channel_id) if code.channel_id else None
    sample = {
        **SAMPLE,
        "hook": (channel.hook if channel else "") or "",
        "code_name": code.name,
        "channel_name": channel.name if channel else "",
    }
    return render(
        request,
        "livecodes/detail.html",
        {
            "code": code,
            "url": _url(request, code),
            "state": encode_state(code.id, code.channel_id),
            "routes": routes,
            "taken": reports.taken_today(ctx.session, [r.id for r in routes], now=ctx.clock.now(), tz=tz),
            "figures": reports.figures_by_code(ctx.session, [code.id], now=ctx.clock.now(), tz=tz)[code.id],
            "capacity": group_service.group_capacity(ctx.session, code) if code.kind == LiveCodeKind.GROUP else None,
            "scans": page.items,
            "next_url": f"/live-codes/{code.id}?cursor={page.next_cursor}" if page.next_cursor else None,
            "staff": staff,
            "groups": groups,
            "tag_names": tag_names,
            "channel": channel,
            "welcome_preview": render_welcome(code.welcome, sample),
        },
    )


@router.get("/live-codes/{code_id}/qr.{fmt}")
def code_qr(
    request: Request, ctx: ConsoleCtx, code_id: IdPath, fmt: QrFormat, size: str = "m", download: bool = False
) -> Response:
    ctx.actor.require(Scope.ACQUISITION_READ)
    code = service.get_live_code(ctx.session, ctx.actor.workspace_id, code_id)
    image = render_qr(_url(request, code), fmt=fmt, size=size, logo=code.logo_png)
    headers = {}
    if download:
        filename = f"{safe_filename(code.name)}-{size}.{fmt}"
        headers["Content-Disposition"] = f"attachment; filename=\"qr.{fmt}\"; filename*=UTF-8''{quote(filename)}"
    return Response(image, media_type="image/png" if fmt == QrFormat.PNG else "image/svg+xml", headers=headers)


@router.post("/live-codes/qr.zip")
def codes_zip(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    """The QR images of the ticked codes, zipped for the printer."""
    ctx.actor.require(Scope.ACQUISITION_READ)
    ids = [int(v) for v in form.getlist("ids") if isinstance(v, str) and _is_id(v)]
    fmt_raw, size = str(form.get("format") or "png"), str(form.get("size") or "m")
    _ = translator(request)
    if not ids or fmt_raw not in ("png", "svg"):
        flash(request, _("请先勾选要下载的活码"), kind="danger")
        return redirect("/live-codes")
    codes = [service.get_live_code(ctx.session, ctx.actor.workspace_id, i) for i in dict.fromkeys(ids)]
    archive = qr_zip([(c.name, _url(request, c), c.logo_png) for c in codes], fmt=QrFormat(fmt_raw), size=size)
    return Response(
        archive, media_type="application/zip", headers={"Content-Disposition": 'attachment; filename="live-codes.zip"'}
    )


@router.post("/live-codes/{code_id}/logo")
def upload_logo(request: Request, ctx: ConsoleCtx, code_id: IdPath, form: FormDep) -> Response:
    ctx.actor.require(Scope.ACQUISITION_WRITE)
    upload = form.get("logo")
    _ = translator(request)
    try:
        if form.get("clear") == "1":
            png = None
        elif isinstance(upload, str) or upload is None:
            raise InvalidInput("choose an image file", details={"field": "logo"})
        else:
            assert isinstance(upload, UploadFile) or hasattr(upload, "read")
            png = check_logo(upload.file.read(512 * 1024 + 1))
        service.set_logo(ctx.session, actor=ctx.actor, code_id=code_id, png=png, clock=ctx.clock)
    except DomainError as exc:
        ctx.session.rollback()
        flash(request, error_text(request, exc), kind="danger")
        return redirect(f"/live-codes/{code_id}")
    flash(request, _("二维码中心图标已更新"))
    return redirect(f"/live-codes/{code_id}")


@router.post("/live-codes/{code_id}/delete")
def delete_code(request: Request, ctx: ConsoleCtx, code_id: IdPath) -> Response:
    ctx.actor.require(Scope.ACQUISITION_WRITE)
    service.delete_live_code(ctx.session, actor=ctx.actor, code_id=code_id, clock=ctx.clock)
    _ = translator(request)
    flash(request, _("活码已删除；已印刷的二维码会显示“活动已结束”"))
    return redirect("/live-codes")


@router.post("/live-codes/store-codes")
def create_store_codes(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    ctx.actor.require(Scope.ACQUISITION_WRITE)
    store_ids = [int(v) for v in form.getlist("store_ids") if isinstance(v, str) and _is_id(v)]
    _ = translator(request)
    try:
        if not store_ids:
            raise InvalidInput("choose at least one store", details={"field": "store_ids"})
        codes = service.create_store_codes(
            ctx.session, actor=ctx.actor, store_ids=store_ids, channel_id=None, clock=ctx.clock
        )
    except DomainError as exc:
        ctx.session.rollback()
        flash(request, error_text(request, exc), kind="danger")
        return redirect("/live-codes")
    flash(request, _("已为 {count} 家门店生成门店活码").format(count=len(codes)))
    return redirect("/live-codes")


@router.get("/groups")
def groups_page(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.ACQUISITION_READ)
    return render(
        request,
        "livecodes/groups.html",
        {"groups": group_service.list_groups(ctx.session, ctx.actor.workspace_id), "errors": {}, "values": {}},
    )


@router.post("/groups")
def create_group(
    request: Request,
    ctx: ConsoleCtx,
    name: Annotated[str, Form(max_length=100)] = "",
    join_url: Annotated[str, Form(max_length=500)] = "",
    member_limit: Annotated[str, Form(max_length=6)] = "200",
) -> Response:
    # a `member_count` field posted by an old form is ignored: seats are taken by members joining
    ctx.actor.require(Scope.ACQUISITION_WRITE)
    values = {"name": name, "join_url": join_url, "member_limit": member_limit}
    try:
        if not name.strip():
            raise InvalidInput("name is required", details={"field": "name"})
        if not _is_id(member_limit + "0"):
            raise InvalidInput("the group limit is a whole number", details={"field": "member_limit"})
        data = GroupIn(name=name.strip(), join_url=join_url.strip() or None, member_limit=int(member_limit))
        group_service.create_group(ctx.session, actor=ctx.actor, data=data, clock=ctx.clock)
    except DomainError as exc:
        ctx.session.rollback()
        groups = group_service.list_groups(ctx.session, ctx.actor.workspace_id)
        return render(
            request,
            "livecodes/groups.html",
            {"groups": groups, "errors": {"group": error_text(request, exc)}, "values": values},
            status_code=exc.status_code if 400 <= exc.status_code < 500 else 400,
        )
    _ = translator(request)
    flash(request, _("群已添加"))
    return redirect("/groups")
