"""Console pages of sync runs and transfers: `/integrations/wecom/sync` (runs, progress, errors,
"sync now") and `/integrations/wecom/transfers` (pick handover member, customers or groups and
takeover member; WeCom's limits checked before submitting; results per row; "poll now")."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.integrations.wecom.config import client_for, get_integration, load_config
from siyu.integrations.wecom.errors import NotConfigured, WecomError
from siyu.integrations.wecom.sync import transfers as service
from siyu.integrations.wecom.sync.service import SCOPES
from siyu.integrations.wecom.sync.tasks import enqueue_sync
from siyu.kit.errors import DomainError, InvalidInput
from siyu.kit.ids import parse_id
from siyu.models import CommunityGroup, Customer, Relationship, Staff, WecomSyncRun
from siyu.web.deps import ConsoleCtx, FormDep
from siyu.web.pages import error_text, redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)
STATUS_CLASS = {
    "running": "bg-blue-lt",
    "done": "bg-green-lt",
    "failed": "bg-red-lt",
    "submitted": "bg-secondary-lt",
    "waiting": "bg-blue-lt",
    "succeeded": "bg-green-lt",
    "refused": "bg-orange-lt",
    "limited": "bg-orange-lt",
}


def _ids(form: Any, key: str, *, strict: bool = False) -> list[int]:
    """The ids posted under `key`; malformed ones ("²", 25 digits) are dropped, or refused when `strict`."""
    ids = [parse_id(str(v)) for v in form.getlist(key)]
    if strict and None in ids:
        raise InvalidInput(f"invalid id in {key}", details={"field": key})
    return [i for i in ids if i is not None][:1000]


def _int(form: Any, key: str, *, strict: bool = False) -> int:
    """The id posted under `key`, or 0 (none chosen); a malformed one is 0, or refused when `strict`."""
    raw = str(form.get(key) or "").strip()
    value = parse_id(raw)
    if value is None and raw and strict:
        raise InvalidInput(f"invalid id in {key}", details={"field": key})
    return value or 0


@router.get("/integrations/wecom/sync")
def sync_page(request: Request, ctx: ConsoleCtx) -> Response:
    """Sync runs with their step, counts and errors (`integrations:read`)."""
    ctx.actor.require(Scope.INTEGRATIONS_READ)
    runs = list(
        ctx.session.scalars(
            select(WecomSyncRun)
            .where(WecomSyncRun.workspace_id == ctx.actor.workspace_id)
            .order_by(WecomSyncRun.started_at.desc(), WecomSyncRun.id.desc())
            .limit(20)
        )
    )
    integration = get_integration(ctx.session, ctx.actor.workspace_id)
    context = {"runs": runs, "scopes": list(SCOPES), "integration": integration, "status_class": STATUS_CLASS}
    return render(request, "integrations/sync/sync.html", context)


@router.post("/integrations/wecom/sync")
def sync_now(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    """Queue a sync ("sync now", `integrations:write`); an unfinished run is resumed."""
    ctx.actor.require(Scope.INTEGRATIONS_WRITE)
    _ = translator(request)
    scope = str(form.get("scope") or "full")
    try:
        load_config(ctx.session, ctx.actor.workspace_id)
    except NotConfigured:
        flash(request, _("企业微信尚未配置，无法同步或转接"), kind="danger")
        return redirect("/integrations/wecom/sync")
    enqueue_sync(
        ctx.session, ctx.actor.workspace_id, ctx.clock, scope=scope if scope in SCOPES else "full", by=ctx.actor.label
    )
    flash(request, _("同步已加入队列"))
    return redirect("/integrations/wecom/sync")


def _transfers_page(
    request: Request,
    ctx: ConsoleCtx,
    form: Any | None = None,
    *,
    check: service.TransferCheck | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    ws = ctx.actor.workspace_id
    staff = list(
        ctx.session.scalars(
            select(Staff).where(Staff.workspace_id == ws, Staff.wecom_user_id.is_not(None)).order_by(Staff.name)
        )
    )
    chosen = {
        "kind": str((form or request.query_params).get("kind") or "on_job"),
        "handover": _int(form or request.query_params, "handover_staff_id"),
        "takeover": _int(form or request.query_params, "takeover_staff_id"),
        "customers": set(_ids(form, "customer_ids")) if form else set(),
        "groups": set(_ids(form, "group_ids")) if form else set(),
    }
    customers: list[tuple[int, str | None]] = []
    groups: list[tuple[int, str]] = []
    if chosen["handover"]:
        customers = [
            (int(i), n)
            for i, n in ctx.session.execute(
                select(Customer.id, Customer.name)
                .join(Relationship, Relationship.customer_id == Customer.id)
                .where(
                    Relationship.workspace_id == ws,
                    Relationship.staff_id == chosen["handover"],
                    Relationship.removed_at.is_(None),
                )
                .order_by(Customer.id)
                .limit(500)
            )
        ]
        groups = [
            (int(i), n)
            for i, n in ctx.session.execute(
                select(CommunityGroup.id, CommunityGroup.name).where(
                    CommunityGroup.workspace_id == ws,
                    CommunityGroup.owner_staff_id == chosen["handover"],
                    CommunityGroup.wecom_chat_id.is_not(None),
                )
            )
        ]
    unassigned: list[dict[str, Any]] = []
    unassigned_error = None
    # WeCom's list is fetched only when asked for ("加载离职成员客户", `?load=1`), not on every page view
    load = str((form or request.query_params).get("load") or "") == "1"
    if chosen["kind"] == "resigned" and load:
        try:
            unassigned, _cursor = service.unassigned(client_for(load_config(ctx.session, ws)), page_size=100)
        except (WecomError, NotConfigured) as exc:
            unassigned_error = str(exc)
    context = {
        "staff": staff,
        "names": {s.id: s.name for s in staff},
        "chosen": chosen,
        "customers": customers,
        "groups": groups,
        "check": check,
        "error": error,
        "rows": service.transfers_of(ctx.session, ws, limit=100),
        "unassigned": unassigned,
        "unassigned_error": unassigned_error,
        "unassigned_loaded": chosen["kind"] == "resigned" and load,
        "status_class": STATUS_CLASS,
    }
    return render(request, "integrations/sync/transfers.html", context, status_code=status_code)


@router.get("/integrations/wecom/transfers")
def transfers_page(request: Request, ctx: ConsoleCtx) -> Response:
    """The transfer form and the latest transfers (`integrations:read`)."""
    ctx.actor.require(Scope.INTEGRATIONS_READ)
    return _transfers_page(request, ctx)


@router.post("/integrations/wecom/transfers")
def transfers_submit(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    """ "检查" shows WeCom's limits for the selection; "提交" submits it (`integrations:write`)."""
    ctx.actor.require(Scope.INTEGRATIONS_WRITE)
    _ = translator(request)
    try:
        args: dict[str, Any] = {
            "kind": str(form.get("kind") or ""),
            "handover_staff_id": _int(form, "handover_staff_id", strict=True),
            "takeover_staff_id": _int(form, "takeover_staff_id", strict=True),
            "customer_ids": _ids(form, "customer_ids", strict=True),
            "group_ids": _ids(form, "group_ids", strict=True),
        }
        check = service.check_transfer(ctx.session, ctx.actor.workspace_id, clock=ctx.clock, **args)
        if form.get("action") != "submit":
            return _transfers_page(request, ctx, form, check=check)
        rows = service.submit_transfer(
            ctx.session,
            load_config(ctx.session, ctx.actor.workspace_id),
            submitted_by=ctx.actor.label,
            clock=ctx.clock,
            **args,
        )
    except DomainError as exc:
        ctx.session.rollback()
        code = exc.status_code if 400 <= exc.status_code < 500 else 400
        return _transfers_page(request, ctx, form, error=error_text(request, exc), status_code=code)
    except NotConfigured:
        ctx.session.rollback()
        return _transfers_page(request, ctx, form, error=_("企业微信尚未配置，无法同步或转接"), status_code=409)
    failed = sum(1 for r in rows if r.status == "failed")
    flash(request, _("已提交转接：%(n)s 项，失败 %(f)s 项") % {"n": len(rows), "f": failed})
    return redirect("/integrations/wecom/transfers")


@router.post("/integrations/wecom/transfers/poll")
def transfers_poll(request: Request, ctx: ConsoleCtx) -> Response:
    """Ask WeCom for transfer results now (`integrations:write`)."""
    ctx.actor.require(Scope.INTEGRATIONS_WRITE)
    _ = translator(request)
    try:
        counts = service.poll_transfers(ctx.session, load_config(ctx.session, ctx.actor.workspace_id), ctx.clock)
    except (WecomError, NotConfigured) as exc:
        ctx.session.rollback()
        flash(request, str(exc), kind="danger")
        return redirect("/integrations/wecom/transfers")
    flash(request, _("已刷新转接结果：%(n)s 项有变化") % {"n": sum(counts.values())})
    return redirect("/integrations/wecom/transfers")
