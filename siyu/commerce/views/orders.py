"""Orders: search and filter, the detail (items, refunds, coupon, pool flags) with the refund form,
parked orders, and the order file import with its report."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from sqlalchemy import select
from starlette.datastructures import UploadFile
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.commerce.orders import parked, service
from siyu.commerce.orders.importing.tasks import JOB_KIND, queue_order_import
from siyu.commerce.orders.refunds import refund_order
from siyu.commerce.views.kit import brand_tz, customer_names, parse_yuan, yuan_text
from siyu.commerce.views.products import close_uploads
from siyu.customers.importing.uploads import save_upload
from siyu.jobs.service import get_job
from siyu.kit.errors import DomainError, InvalidInput, NotFound
from siyu.kit.ids import parse_id, random_token
from siyu.loyalty.members import get_member
from siyu.models import Member, OrderStatus, Platform, Staff, Store
from siyu.web.deps import ConsoleCtx, Ctx, FormDep, IdPath
from siyu.web.pages import error_text, redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)
PLATFORMS = tuple(str(p) for p in Platform)
STATUSES = tuple(str(s) for s in OrderStatus)


def _day(text: str, field: str) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        raise InvalidInput(f"{field}: expected YYYY-MM-DD", details={"field": field}) from None


@router.get("/orders")
def orders_page(
    request: Request,
    ctx: ConsoleCtx,
    q: str = "",
    platform: str = "",
    status: str = "",
    paid_from: str = "",
    paid_to: str = "",
    customer: str = "",
    cursor: str | None = None,
) -> Response:
    """Orders most recently paid first; `q` is an order id, a phone or an identity of the buyer.
    Dates are brand-local days, `paid_to` inclusive."""
    ctx.actor.require(Scope.COMMERCE_READ)
    tz = brand_tz(ctx.session, ctx.actor.workspace_id)
    filters = {"q": q.strip(), "platform": platform, "status": status, "paid_from": paid_from, "paid_to": paid_to}
    filters["customer"] = customer
    errors: dict[str, str] = {}
    try:
        start, end = _day(paid_from, "paid_from"), _day(paid_to, "paid_to")
    except DomainError as exc:
        errors["filters"] = error_text(request, exc)
        start = end = None
    flt = service.OrderFilter(
        customer_id=parse_id(customer),
        platform=platform if platform in PLATFORMS else None,
        status=status if status in STATUSES else None,
        paid_from=datetime.combine(start.date(), time(0), tzinfo=tz) if start else None,
        paid_to=datetime.combine(end.date() + timedelta(days=1), time(0), tzinfo=tz) if end else None,
        q=q.strip() or None,
    )
    page = service.list_orders(ctx.session, actor=ctx.actor, flt=flt, cursor=cursor)
    query = urlencode({k: v for k, v in filters.items() if v})
    context = {
        "rows": page.items,
        "names": customer_names(ctx.session, ctx.actor.workspace_id, (o.customer_id for o in page.items)),
        "filters": filters,
        "platforms": PLATFORMS,
        "statuses": STATUSES,
        "errors": errors,
        "next_url": f"/orders?{query}&cursor={page.next_cursor}" if page.next_cursor else None,
    }
    return render(request, "commerce/orders.html", context)


def _detail_context(ctx: Ctx, order_id: int) -> dict[str, Any]:
    detail = service.order_detail(ctx.session, actor=ctx.actor, order_id=order_id)
    order = detail.order
    ws = ctx.actor.workspace_id
    staff = ctx.session.scalar(select(Staff.name).where(Staff.workspace_id == ws, Staff.id == order.staff_id))
    store = ctx.session.scalar(select(Store.name).where(Store.workspace_id == ws, Store.id == order.store_id))
    member: Member | None = get_member(ctx.session, ws, order.customer_id)
    return {
        "detail": detail,
        "order": order,
        "customer_name": customer_names(ctx.session, ws, [order.customer_id]).get(order.customer_id, ""),
        "staff_name": staff,
        "store_name": store,
        "member": member,
        "refundable_fen": order.total_fen - order.refunded_fen,
        "refund_values": {"external_id": f"console-{random_token(6)}"},
        "errors": {},
    }


@router.get("/orders/parked")
def parked_page(request: Request, ctx: ConsoleCtx, resolved: str = "", cursor: str | None = None) -> Response:
    ctx.actor.require(Scope.COMMERCE_READ)
    shown = {"": False, "yes": True, "all": None}.get(resolved, False)
    page = parked.list_parked(ctx.session, actor=ctx.actor, resolved=shown, cursor=cursor)
    context = {
        "rows": page.items,
        "resolved": resolved,
        "next_url": f"/orders/parked?resolved={resolved}&cursor={page.next_cursor}" if page.next_cursor else None,
    }
    return render(request, "commerce/parked.html", context)


@router.get("/orders/imports")
def import_page(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.COMMERCE_WRITE)
    return render(request, "commerce/order_import.html", {"errors": {}})


@router.post("/orders/imports")
def upload_orders(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    """Store the file, check its header (a known layout) and queue the import job."""
    ctx.actor.require(Scope.COMMERCE_WRITE)
    file = form.get("file")
    path: Path | None = None
    try:
        if not isinstance(file, UploadFile) or not file.filename:
            raise InvalidInput("choose a file to upload", details={"field": "file"})
        path = save_upload(
            file.file,
            filename=file.filename,
            data_dir=ctx.settings.data_dir,
            workspace_id=ctx.actor.workspace_id,
            max_bytes=ctx.settings.max_upload_mb << 20,
        )
        job = queue_order_import(
            ctx.session, actor=ctx.actor, path=path, filename=file.filename, encoding=None, clock=ctx.clock
        )
    except DomainError as exc:
        ctx.session.rollback()
        if path is not None:
            path.unlink(missing_ok=True)
        status = exc.status_code if 400 <= exc.status_code < 500 else 400
        return render(
            request, "commerce/order_import.html", {"errors": {"file": error_text(request, exc)}}, status_code=status
        )
    finally:
        close_uploads(form)
    return redirect(f"/orders/imports/{job.id}")


@router.get("/orders/imports/{job_id}")
def import_report(request: Request, ctx: ConsoleCtx, job_id: IdPath) -> Response:
    """The import's progress, then its report: counts and every refused row with its field."""
    ctx.actor.require(Scope.COMMERCE_READ)
    job = get_job(ctx.session, workspace_id=ctx.actor.workspace_id, job_id=job_id)
    if job.kind != JOB_KIND:
        raise NotFound(f"order import {job_id} not found")
    return render(request, "commerce/order_import_report.html", {"job": job, "report": job.result or {}})


@router.get("/orders/{order_id}")
def order_page(request: Request, ctx: ConsoleCtx, order_id: IdPath) -> Response:
    ctx.actor.require(Scope.COMMERCE_READ)
    return render(request, "commerce/order_detail.html", _detail_context(ctx, order_id))


@router.post("/orders/{order_id}/refunds")
def refund(request: Request, ctx: ConsoleCtx, order_id: IdPath, form: FormDep) -> Response:
    """Refund part or all of an order by amount; the refund id makes a double submit count once."""
    ctx.actor.require(Scope.COMMERCE_WRITE)
    values = {k: v.strip() if isinstance(v := form.get(k), str) else "" for k in ("external_id", "amount", "reason")}
    _ = translator(request)
    try:
        amount = parse_yuan(values["amount"], "amount") if values["amount"] else None
        result = refund_order(
            ctx.session,
            actor=ctx.actor,
            order_id=order_id,
            external_id=values["external_id"],
            amount_fen=amount,
            items=None,
            reason=values["reason"] or None,
            refunded_at=None,
            clock=ctx.clock,
        )
    except DomainError as exc:
        if exc.status_code in (403, 404):
            raise
        ctx.session.rollback()
        context = _detail_context(ctx, order_id)
        context["refund_values"] = values
        context["errors"] = {"refund": error_text(request, exc)}
        return render(request, "commerce/order_detail.html", context, status_code=exc.status_code)
    flash(request, _("退款已记录") + f": ¥{yuan_text(result.amount_fen)}")
    return redirect(f"/orders/{order_id}")
