"""The customer detail page and its forms: profile, identities, tags, consents, merges, PIPL."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.community.koc.service import profile_panel
from siyu.customers import repository
from siyu.customers.masking import sees_pii
from siyu.customers.schemas import identity_read
from siyu.customers.service import merge, privacy, profile, tags, timeline
from siyu.customers.service.definitions import identity_types
from siyu.kit.errors import DomainError, InvalidInput
from siyu.kit.ids import MAX_ID, parse_id
from siyu.kit.phone import display_phone
from siyu.messaging.service.outbox import deliveries_of_customer
from siyu.models import ConsentChannel, ConsentStatus, Gender, LifecycleStage
from siyu.org.service import list_staff
from siyu.web.deps import ConsoleCtx, Ctx, IdPath
from siyu.web.pages import form_error, redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)
EVENTS_PAGE = 20
TEXT_FIELDS = ("name", "province", "city", "first_channel")
TEMPLATE = "customers/detail.html"


def detail_context(ctx: Ctx, customer_id: IdPath, *, events_cursor: str | None = None, **extra: Any) -> dict[str, Any]:
    """Everything the detail page shows, read through the services (visibility applies)."""
    customer = repository.get_visible(ctx.session, ctx.actor, customer_id)
    pii = sees_pii(ctx.actor)
    staff = list_staff(ctx.session, workspace_id=ctx.actor.workspace_id)
    events = timeline.timeline(
        ctx.session, actor=ctx.actor, customer_id=customer.id, cursor=events_cursor, limit=EVENTS_PAGE
    )
    customer_tags = tags.tags_of(ctx.session, customer.id)
    consents = {str(c.channel): c for c in timeline.consents_of(ctx.session, customer.id)}
    return {
        "customer": customer,
        "pii": pii,
        "phone": display_phone(customer.phone) if pii else None,
        "identities": [identity_read(i, ctx.actor) for i in repository.identities_of(ctx.session, customer.id)],
        "identity_types": sorted(identity_types(ctx.session, ctx.actor.workspace_id)),
        "customer_tags": customer_tags,
        "groups": tags.list_groups(ctx.session, ctx.actor.workspace_id),
        "tagged_ids": {t.id for _ct, t in customer_tags},
        "relationships": timeline.relationships_of(ctx.session, customer.id),
        "consents": consents,
        "channels": [str(c) for c in ConsentChannel],
        "consent_statuses": [str(s) for s in ConsentStatus],
        "events": events.items,
        "events_next": f"/customers/{customer.id}?events_cursor={events.next_cursor}" if events.next_cursor else None,
        "koc_panel": profile_panel(ctx.session, actor=ctx.actor, customer=customer),
        "merges": merge.merges_of(ctx.session, actor=ctx.actor, customer_id=customer.id),
        "deliveries": deliveries_of_customer(ctx.session, ctx.actor, customer.id, limit=20),
        "staff": staff,
        "staff_names": {s.id: s.name for s in staff},
        "stages": [str(s) for s in LifecycleStage],
        "genders": [str(g) for g in Gender],
        "errors": {},
        "values": {},
    } | extra


def _show_again(
    request: Request, ctx: Ctx, customer_id: IdPath, exc: DomainError, field: str, values: dict[str, Any] | None = None
) -> Response:
    return form_error(
        request, ctx, exc, TEMPLATE, lambda: detail_context(ctx, customer_id, values=values or {}), field=field
    )


def _back(customer_id: IdPath, anchor: str = "") -> Response:
    return redirect(f"/customers/{customer_id}{anchor}")


@router.get("/customers/{customer_id}")
def customer_detail(
    request: Request, ctx: ConsoleCtx, customer_id: IdPath, events_cursor: str | None = None
) -> Response:
    ctx.actor.require(Scope.CUSTOMERS_READ)
    return render(request, TEMPLATE, detail_context(ctx, customer_id, events_cursor=events_cursor))


@router.post("/customers/{customer_id}/profile")
def update_profile(
    request: Request,
    ctx: ConsoleCtx,
    customer_id: IdPath,
    name: Annotated[str | None, Form()] = None,
    gender: Annotated[str | None, Form()] = None,
    birthday: Annotated[str | None, Form()] = None,
    province: Annotated[str | None, Form()] = None,
    city: Annotated[str | None, Form()] = None,
    phone: Annotated[str | None, Form()] = None,
    email: Annotated[str | None, Form()] = None,
    lifecycle_stage: Annotated[str | None, Form()] = None,
    owner_staff_id: Annotated[str | None, Form()] = None,
    first_channel: Annotated[str | None, Form()] = None,
) -> Response:
    """Save the profile form: changed fields are set, emptied ones cleared, absent ones kept."""
    given = {
        "name": name,
        "gender": gender,
        "birthday": birthday,
        "province": province,
        "city": city,
        "phone": phone,
        "email": email,
        "lifecycle_stage": lifecycle_stage,
        "owner_staff_id": owner_staff_id,
        "first_channel": first_channel,
    }
    submitted = {k: v.strip() for k, v in given.items() if v is not None}
    return _save_profile(request, ctx, customer_id, submitted)


def _save_profile(request: Request, ctx: Ctx, customer_id: IdPath, submitted: dict[str, str]) -> Response:
    customer = repository.get_visible(ctx.session, ctx.actor, customer_id)
    current: dict[str, str] = {name: str(getattr(customer, name) or "") for name in TEXT_FIELDS}
    current |= {
        "gender": str(customer.gender or ""),
        "birthday": customer.birthday.isoformat() if customer.birthday else "",
        "lifecycle_stage": str(customer.lifecycle_stage),
        "owner_staff_id": str(customer.owner_staff_id or ""),
    }
    if sees_pii(ctx.actor):  # masked values are never written back
        current |= {"phone": display_phone(customer.phone) or "", "email": customer.email or ""}
    values: dict[str, Any] = {}
    clear: list[str] = []
    for name, old in current.items():
        new = submitted.get(name, old)
        if new == old:
            continue
        if new:
            values[name] = new
        elif name != "lifecycle_stage":
            clear.append(name)
    try:
        profile.update_customer(
            ctx.session,
            actor=ctx.actor,
            customer_id=customer_id,
            profile=profile.ProfileInput(values=values),
            clear=clear,
            clock=ctx.clock,
        )
    except DomainError as exc:
        return _show_again(request, ctx, customer_id, exc, "profile", submitted)
    _ = translator(request)
    flash(request, _("资料已保存"))
    return _back(customer_id)


@router.post("/customers/{customer_id}/identities")
def add_identity(
    request: Request, ctx: ConsoleCtx, customer_id: IdPath, type: Annotated[str, Form()], value: Annotated[str, Form()]
) -> Response:
    try:
        profile.add_identity(
            ctx.session, actor=ctx.actor, customer_id=customer_id, type_=type, value=value, clock=ctx.clock
        )
    except DomainError as exc:
        return _show_again(request, ctx, customer_id, exc, "identity", {"identity_type": type, "identity_value": value})
    _ = translator(request)
    flash(request, _("身份标识已添加"))
    return _back(customer_id, "#identities")


@router.post("/customers/{customer_id}/tags")
def add_tag(
    request: Request, ctx: ConsoleCtx, customer_id: IdPath, tag_id: Annotated[int, Form(gt=0, le=MAX_ID)]
) -> Response:
    try:
        tags.assign_tag(ctx.session, actor=ctx.actor, customer_id=customer_id, tag_id=tag_id, clock=ctx.clock)
    except DomainError as exc:
        return _show_again(request, ctx, customer_id, exc, "tags")
    return _back(customer_id, "#tags")


@router.post("/customers/{customer_id}/tags/{tag_id}/remove")
def remove_tag(request: Request, ctx: ConsoleCtx, customer_id: IdPath, tag_id: IdPath) -> Response:
    try:
        tags.remove_tag(ctx.session, actor=ctx.actor, customer_id=customer_id, tag_id=tag_id, clock=ctx.clock)
    except DomainError as exc:
        return _show_again(request, ctx, customer_id, exc, "tags")
    return _back(customer_id, "#tags")


@router.post("/customers/{customer_id}/consents")
def set_consent(
    request: Request,
    ctx: ConsoleCtx,
    customer_id: IdPath,
    channel: Annotated[str, Form()],
    status: Annotated[str, Form()],
) -> Response:
    try:
        timeline.set_consent(
            ctx.session,
            actor=ctx.actor,
            customer_id=customer_id,
            channel=channel,
            status=status,
            source="console",
            clock=ctx.clock,
        )
    except DomainError as exc:
        return _show_again(request, ctx, customer_id, exc, "consents")
    return _back(customer_id, "#consents")


@router.post("/customers/{customer_id}/merge")
def merge_into(
    request: Request, ctx: ConsoleCtx, customer_id: IdPath, merged_id: Annotated[str, Form()] = ""
) -> Response:
    """Merge another customer (by id) into this one."""
    _ = translator(request)
    try:
        other_id = parse_id(merged_id)
        if other_id is None:
            raise InvalidInput(_("请输入要合并的客户 ID"), details={"field": "merged_id"})
        merge.merge_by_request(
            ctx.session, actor=ctx.actor, survivor_id=customer_id, merged_id=other_id, clock=ctx.clock
        )
    except DomainError as exc:
        return _show_again(request, ctx, customer_id, exc, "merge", {"merged_id": merged_id})
    flash(request, _("已将客户 {merged} 合并到此客户").format(merged=merged_id.strip()))
    return _back(customer_id, "#merges")


@router.post("/merges/{merge_id}/undo")
def undo_merge(
    request: Request, ctx: ConsoleCtx, merge_id: IdPath, customer_id: Annotated[int, Form(gt=0, le=MAX_ID)]
) -> Response:
    """Split a merge apart again; the page of `customer_id` shows the result."""
    _ = translator(request)
    try:
        undone = merge.undo_merge(ctx.session, actor=ctx.actor, merge_id=merge_id, clock=ctx.clock)
    except DomainError as exc:
        return _show_again(request, ctx, customer_id, exc, "merges")
    flash(request, _("已撤销合并，客户 {merged} 已恢复").format(merged=undone.merged_id))
    return _back(customer_id, "#merges")


@router.get("/customers/{customer_id}/export.json")
def export_customer(ctx: ConsoleCtx, customer_id: IdPath) -> Response:
    """Everything held about the person, as a JSON download (PIPL access request)."""
    document = privacy.export_customer(ctx.session, actor=ctx.actor, customer_id=customer_id, clock=ctx.clock)
    return Response(
        json.dumps(document, ensure_ascii=False, indent=2, default=str),
        media_type="application/json; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="customer-{customer_id}.json"'},
    )


@router.get("/customers/{customer_id}/erase")
def erase_confirm(request: Request, ctx: ConsoleCtx, customer_id: IdPath) -> Response:
    ctx.actor.require(Scope.CUSTOMERS_ERASE)
    customer = repository.get_visible(ctx.session, ctx.actor, customer_id)
    return render(request, "customers/erase.html", {"customer": customer, "errors": {}})


@router.post("/customers/{customer_id}/erase")
def erase(request: Request, ctx: ConsoleCtx, customer_id: IdPath, confirm: Annotated[str, Form()] = "") -> Response:
    """Erase the person's data (PIPL deletion request); the form must echo the customer id."""
    ctx.actor.require(Scope.CUSTOMERS_ERASE)
    _ = translator(request)
    if confirm.strip() != str(customer_id):
        customer = repository.get_visible(ctx.session, ctx.actor, customer_id)
        errors = {"form": _("请输入客户 ID 以确认删除")}
        return render(request, "customers/erase.html", {"customer": customer, "errors": errors}, status_code=400)
    privacy.erase_customer(ctx.session, actor=ctx.actor, customer_id=customer_id, clock=ctx.clock)
    flash(request, _("该客户的个人信息已删除"))
    return _back(customer_id)
