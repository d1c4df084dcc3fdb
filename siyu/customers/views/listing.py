"""The home overview, the customer list with its filters, CSV export and bulk tagging."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import StreamingResponse
from starlette.responses import Response

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.customers import repository
from siyu.customers.export import csv_lines, export_rows
from siyu.customers.masking import sees_pii, shown_email, shown_phone
from siyu.customers.repository import CustomerFilter
from siyu.customers.service import tags
from siyu.customers.service.overview import overview
from siyu.kit.ids import parse_id
from siyu.models import Customer, LifecycleStage
from siyu.org.service import list_staff
from siyu.web.deps import ConsoleCtx, Ctx, database
from siyu.web.pages import redirect
from siyu.web.templating import flash, render, translator
from siyu.workspaces.scope import bind_workspace

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50


@router.get("/")
def home(request: Request, ctx: ConsoleCtx) -> Response:
    data = overview(ctx.session, ctx.actor, ctx.clock)
    chart = {
        "days": [p.day.isoformat() for p in data.daily],
        "adds": [p.adds for p in data.daily],
        "deletions": [p.deletions for p in data.daily],
    }
    return render(request, "home.html", {"overview": data, "chart": chart})


def _int(value: str | None) -> int | None:
    return parse_id(value)


def parse_filter(
    q: str | None, tag_id: list[str] | None, lifecycle_stage: str | None, owner_staff_id: str | None
) -> CustomerFilter:
    """The list's filter from query or form values; empty fields mean "any"."""
    return CustomerFilter(
        q=(q or "").strip() or None,
        tag_ids=[i for i in (_int(t) for t in tag_id or []) if i is not None],
        lifecycle_stage=lifecycle_stage or None,
        owner_staff_id=_int(owner_staff_id),
    )


def filter_params(flt: CustomerFilter) -> list[tuple[str, str]]:
    """The filter as query parameters (for links: next page, export, back after bulk edits)."""
    params: list[tuple[str, str]] = []
    if flt.q:
        params.append(("q", flt.q))
    params += [("tag_id", str(t)) for t in flt.tag_ids]
    if flt.lifecycle_stage:
        params.append(("lifecycle_stage", flt.lifecycle_stage))
    if flt.owner_staff_id is not None:
        params.append(("owner_staff_id", str(flt.owner_staff_id)))
    return params


def customer_row(customer: Customer, actor: Actor, staff_names: dict[int, str]) -> dict[str, Any]:
    """One list row, with phone and e-mail masked unless the actor may see them."""
    pii = sees_pii(actor)
    return {
        "id": customer.id,
        "name": customer.name,
        "phone": shown_phone(customer.phone, whole=pii, national=True),
        "email": shown_email(customer.email, whole=pii),
        "lifecycle_stage": str(customer.lifecycle_stage),
        "owner": staff_names.get(customer.owner_staff_id or 0, ""),
        "city": customer.city,
        "first_channel": customer.first_channel,
        "created_at": customer.created_at,
        "erased": customer.erased_at is not None,
    }


def _list_context(ctx: Ctx, flt: CustomerFilter, cursor: str | None) -> dict[str, Any]:
    page = repository.list_customers(ctx.session, ctx.actor, flt, cursor=cursor, limit=PAGE_SIZE)
    staff = list_staff(ctx.session, workspace_id=ctx.actor.workspace_id)
    staff_names = {s.id: s.name for s in staff}
    params = filter_params(flt)
    return {
        "rows": [customer_row(c, ctx.actor, staff_names) for c in page.items],
        "next_url": "/customers?" + urlencode([*params, ("cursor", page.next_cursor)]) if page.next_cursor else None,
        "flt": flt,
        "query": urlencode(params),
        "count": repository.count_customers(ctx.session, ctx.actor, flt),
        "groups": tags.list_groups(ctx.session, ctx.actor.workspace_id),
        "stages": [str(s) for s in LifecycleStage],
        "staff": staff,
        "is_first_page": cursor is None,
    }


@router.get("/customers")
def customer_list(
    request: Request,
    ctx: ConsoleCtx,
    q: str | None = None,
    tag_id: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI query list
    lifecycle_stage: str | None = None,
    owner_staff_id: str | None = None,
    cursor: str | None = None,
) -> Response:
    """The pool, newest first; an HTMX search swaps only the table."""
    ctx.actor.require(Scope.CUSTOMERS_READ)
    flt = parse_filter(q, tag_id, lifecycle_stage, owner_staff_id)
    context = _list_context(ctx, flt, cursor)
    if request.headers.get("hx-request") and request.headers.get("hx-target") == "customer-results":
        return render(request, "customers/_results.html", context)
    return render(request, "customers/list.html", context)


@router.get("/customers/export.csv")
def export_csv(
    request: Request,
    ctx: ConsoleCtx,
    q: str | None = None,
    tag_id: Annotated[list[str], Query()] = [],  # noqa: B006
    lifecycle_stage: str | None = None,
    owner_staff_id: str | None = None,
) -> Response:
    """The current filter as CSV, streamed; phones masked unless the role may see them."""
    ctx.actor.require(Scope.CUSTOMERS_READ)
    flt = parse_filter(q, tag_id, lifecycle_stage, owner_staff_id)
    actor = ctx.actor
    record(
        ctx.session,
        actor,
        action="export",
        entity_type="customer_list",
        entity_id=None,
        after={"filter": dict(filter_params(flt)), "unmasked": sees_pii(actor)},
        clock=ctx.clock,
    )
    db = database(request)

    def lines() -> Iterator[str]:
        # The request's transaction ends before the body is sent: stream from a session of its own.
        with db.transaction(read_only=True) as session:
            bind_workspace(session, actor.workspace_id)
            yield from csv_lines(export_rows(session, actor, flt, unmasked=True))

    filename = f"customers-{ctx.clock.now():%Y%m%d-%H%M}.csv"
    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.post("/customers/bulk-tag")
def bulk_tag(
    request: Request,
    ctx: ConsoleCtx,
    tag: Annotated[str, Form()],
    op: Annotated[str, Form()] = "add",
    q: Annotated[str | None, Form()] = None,
    tag_id: Annotated[list[str], Form()] = [],  # noqa: B006
    lifecycle_stage: Annotated[str | None, Form()] = None,
    owner_staff_id: Annotated[str | None, Form()] = None,
) -> Response:
    """Add or remove a tag on every customer the current filter selects."""
    _ = translator(request)
    flt = parse_filter(q, tag_id, lifecycle_stage, owner_staff_id)
    tag_to_apply = _int(tag)
    back = "/customers?" + urlencode(filter_params(flt))
    if tag_to_apply is None:
        flash(request, _("请选择标签"), kind="error")
        return redirect(back)
    if op == "remove":
        count = tags.bulk_untag(ctx.session, actor=ctx.actor, flt=flt, tag_id=tag_to_apply, clock=ctx.clock)
        flash(request, _("已为 {n} 位客户移除标签").format(n=count))
    else:
        count = tags.bulk_tag(ctx.session, actor=ctx.actor, flt=flt, tag_id=tag_to_apply, clock=ctx.clock)
        flash(request, _("已为 {n} 位客户打上标签").format(n=count))
    return redirect(back)
