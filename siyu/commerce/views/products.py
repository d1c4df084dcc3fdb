"""Products: list and search, create and edit, and the CSV catalogue upload."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.datastructures import FormData, UploadFile
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.commerce import products as service
from siyu.commerce.views.kit import (
    FormField,
    brand_tz,
    error_field,
    form_page,
    object_values,
    parse,
    text_values,
    validated,
)
from siyu.kit.errors import DomainError, InvalidInput
from siyu.web.deps import ConsoleCtx, Ctx, FormDep, IdPath
from siyu.web.pages import error_text, redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)
MAX_CSV_BYTES = 5 << 20


def _(message: str) -> str:
    return message


FIELDS = (
    FormField("sku", _("SKU"), required=True),
    FormField("name", _("商品名称"), required=True),
    FormField("category", _("品类")),
    FormField("price_fen", _("价格（元）"), kind="yuan", required=True),
    FormField("repurchase_cycle_days", _("复购周期（天）"), kind="int", hint=_("一次购买通常够用的天数，驱动复购提醒")),
    FormField("is_active", _("在售"), kind="bool"),
)
EDIT_FIELDS = tuple(f for f in FIELDS if f.name != "sku")


@router.get("/products")
def products_page(request: Request, ctx: ConsoleCtx, q: str | None = None, cursor: str | None = None) -> Response:
    ctx.actor.require(Scope.COMMERCE_READ)
    page = service.list_products(ctx.session, workspace_id=ctx.actor.workspace_id, q=q or None, cursor=cursor)
    next_url = f"/products?q={q or ''}&cursor={page.next_cursor}" if page.next_cursor else None
    return render(request, "commerce/products.html", {"rows": page.items, "q": q or "", "next_url": next_url})


def _form(
    request: Request, ctx: Ctx, values: dict[str, str], product_id: int | None, errors: dict[str, str] | None = None
) -> Response:
    _ = translator(request)
    return form_page(
        request,
        title=_("编辑商品") if product_id else _("新建商品"),
        back="/products",
        action=f"/products/{product_id}/edit" if product_id else "/products",
        spec=EDIT_FIELDS if product_id else FIELDS,
        values=values,
        errors=errors,
    )


@router.get("/products/new")
def new_product_page(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.COMMERCE_WRITE)
    return _form(request, ctx, {"is_active": "on"}, None)


@router.post("/products")
def create_product(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    ctx.actor.require(Scope.COMMERCE_WRITE)
    values = text_values(form, FIELDS)
    try:
        data = validated(service.ProductIn, parse(values, FIELDS, brand_tz(ctx.session, ctx.actor.workspace_id)))
        product = service.create_product(ctx.session, actor=ctx.actor, data=data, clock=ctx.clock)
    except DomainError as exc:
        ctx.session.rollback()
        return _form(request, ctx, values, None, {error_field(exc, FIELDS): error_text(request, exc)})
    _ = translator(request)
    flash(request, _("商品已保存") + f": {product.sku}")
    return redirect("/products")


@router.get("/products/{product_id}/edit")
def edit_product_page(request: Request, ctx: ConsoleCtx, product_id: IdPath) -> Response:
    ctx.actor.require(Scope.COMMERCE_WRITE)
    product = service.get_product(ctx.session, workspace_id=ctx.actor.workspace_id, product_id=product_id)
    tz = brand_tz(ctx.session, ctx.actor.workspace_id)
    return _form(request, ctx, object_values(product, EDIT_FIELDS, tz), product_id)


@router.post("/products/{product_id}/edit")
def update_product(request: Request, ctx: ConsoleCtx, product_id: IdPath, form: FormDep) -> Response:
    ctx.actor.require(Scope.COMMERCE_WRITE)
    values = text_values(form, EDIT_FIELDS)
    try:
        data = parse(values, EDIT_FIELDS, brand_tz(ctx.session, ctx.actor.workspace_id))
        patch = validated(service.ProductPatch, data)
        service.update_product(ctx.session, actor=ctx.actor, product_id=product_id, patch=patch, clock=ctx.clock)
    except DomainError as exc:
        if exc.status_code == 404:
            raise
        ctx.session.rollback()
        return _form(request, ctx, values, product_id, {error_field(exc, EDIT_FIELDS): error_text(request, exc)})
    _ = translator(request)
    flash(request, _("商品已保存") + f": {values.get('name', '')}")
    return redirect("/products")


@router.get("/products/upload")
def upload_page(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.COMMERCE_WRITE)
    return render(request, "commerce/products_upload.html", {"report": None, "errors": {}})


@router.post("/products/upload")
def upload_products(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    """Upsert the catalogue by SKU; the report lists every refused row with its line and field."""
    ctx.actor.require(Scope.COMMERCE_WRITE)
    file = form.get("file")
    try:
        data = _read_upload(file)
        report = service.upsert_products_csv(ctx.session, actor=ctx.actor, data=data, clock=ctx.clock)
    except DomainError as exc:
        ctx.session.rollback()
        context = {"report": None, "errors": {"file": error_text(request, exc)}}
        return render(request, "commerce/products_upload.html", context, status_code=422)
    finally:
        close_uploads(form)
    return render(request, "commerce/products_upload.html", {"report": report, "errors": {}})


def _read_upload(file: object) -> bytes:
    if not isinstance(file, UploadFile) or not file.filename:
        raise InvalidInput("choose a file to upload", details={"field": "file"})
    data = file.file.read(MAX_CSV_BYTES + 1)
    if len(data) > MAX_CSV_BYTES:
        raise InvalidInput("the file is larger than 5 MB", details={"field": "file"})
    return data


def close_uploads(form: FormData) -> None:
    # The form was parsed by hand (FormDep), so its spooled files are closed here.
    for _key, value in form.multi_items():
        if isinstance(value, UploadFile):
            value.file.close()
