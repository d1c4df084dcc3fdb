"""HTTP API of products, order imports (CSV/XLSX) and the commerce settings."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from pydantic import BaseModel

from siyu.auth.permissions import Scope
from siyu.commerce import products as service
from siyu.commerce import settings as commerce_settings
from siyu.commerce.orders.importing.tasks import JOB_KIND, queue_order_import
from siyu.customers.importing.uploads import save_upload
from siyu.jobs.api import job_read
from siyu.jobs.service import get_job
from siyu.kit.errors import InvalidInput, NotFound, PayloadTooLarge
from siyu.models import Product
from siyu.web.deps import Ctx, IdPath, require

router = APIRouter(prefix="/api/v1", tags=["products"])
Reader = Annotated[Ctx, Depends(require(Scope.COMMERCE_READ))]
Writer = Annotated[Ctx, Depends(require(Scope.COMMERCE_WRITE))]
Admin = Annotated[Ctx, Depends(require(Scope.COMMERCE_SETTINGS))]

MAX_PRODUCT_CSV_BYTES = 5 << 20


class ProductRead(BaseModel):
    id: int
    sku: str
    name: str
    category: str | None
    price_fen: int
    repurchase_cycle_days: int | None
    is_active: bool
    created_at: datetime
    updated_at: datetime


def product_read(row: Product) -> ProductRead:
    return ProductRead(
        id=row.id,
        sku=row.sku,
        name=row.name,
        category=row.category,
        price_fen=row.price_fen,
        repurchase_cycle_days=row.repurchase_cycle_days,
        is_active=row.is_active,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.get("/products")
def list_products(
    ctx: Reader,
    q: Annotated[str | None, Query(max_length=100)] = None,
    category: Annotated[str | None, Query(max_length=100)] = None,
    is_active: bool | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    page = service.list_products(
        ctx.session,
        workspace_id=ctx.actor.workspace_id,
        q=q,
        category=category,
        is_active=is_active,
        cursor=cursor,
        limit=limit,
    )
    return {"items": [product_read(p) for p in page.items], "next_cursor": page.next_cursor}


@router.post("/products", status_code=201)
def create_product(body: service.ProductIn, ctx: Writer) -> ProductRead:
    return product_read(service.create_product(ctx.session, actor=ctx.actor, data=body, clock=ctx.clock))


@router.get("/products/{product_id}")
def get_product(product_id: IdPath, ctx: Reader) -> ProductRead:
    return product_read(service.get_product(ctx.session, workspace_id=ctx.actor.workspace_id, product_id=product_id))


@router.patch("/products/{product_id}")
def update_product(product_id: IdPath, body: service.ProductPatch, ctx: Writer) -> ProductRead:
    return product_read(
        service.update_product(ctx.session, actor=ctx.actor, product_id=product_id, patch=body, clock=ctx.clock)
    )


@router.delete("/products/{product_id}", status_code=204)
def delete_product(product_id: IdPath, ctx: Writer) -> None:
    service.delete_product(ctx.session, actor=ctx.actor, product_id=product_id, clock=ctx.clock)


@router.post("/products/csv")
def upload_products(
    ctx: Writer,
    file: Annotated[UploadFile, File(description="CSV (UTF-8 or GBK): sku, name, category, price (yuan)…")],
) -> dict[str, Any]:
    """Create or update products by SKU; bad rows are reported by row number and field, the rest written."""
    data = file.file.read(MAX_PRODUCT_CSV_BYTES + 1)
    if len(data) > MAX_PRODUCT_CSV_BYTES:
        raise PayloadTooLarge("file larger than 5 MiB", details={"field": "file"})
    if not data:
        raise InvalidInput("the file is empty", details={"field": "file"})
    return service.upsert_products_csv(ctx.session, actor=ctx.actor, data=data, clock=ctx.clock).as_dict()


# --- order imports ------------------------------------------------------------------------------


@router.post("/orders/imports", status_code=202)
def create_order_import(
    ctx: Writer,
    file: Annotated[UploadFile, File(description="A Taobao/Tmall, JD or Youzan export, or siyu's template")],
    encoding: Annotated[str | None, Form()] = None,
) -> dict[str, Any]:
    """Queue an order import; follow it at `GET /api/v1/orders/imports/{id}` (its result is the report)."""
    path = save_upload(
        file.file,
        filename=file.filename or "",
        data_dir=ctx.settings.data_dir,
        workspace_id=ctx.actor.workspace_id,
        max_bytes=ctx.settings.max_upload_mb << 20,
    )
    try:
        job = queue_order_import(
            ctx.session,
            actor=ctx.actor,
            path=path,
            filename=file.filename or "",
            encoding=encoding or None,
            clock=ctx.clock,
        )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return job_read(job)


@router.get("/orders/imports/{job_id}")
def order_import_status(job_id: IdPath, ctx: Reader) -> dict[str, Any]:
    job = get_job(ctx.session, workspace_id=ctx.actor.workspace_id, job_id=job_id)
    if job.kind != JOB_KIND:
        raise NotFound(f"no order import {job_id}", details={"job_id": job_id})
    return job_read(job)


# --- settings -----------------------------------------------------------------------------------


@router.get("/commerce/settings")
def get_settings(ctx: Reader) -> commerce_settings.CommerceSettingsView:
    return commerce_settings.view(ctx.session, workspace_id=ctx.actor.workspace_id)


@router.put("/commerce/settings")
def put_settings(body: commerce_settings.CommerceSettingsIn, ctx: Admin) -> commerce_settings.CommerceSettingsView:
    return commerce_settings.update_settings(ctx.session, actor=ctx.actor, data=body, clock=ctx.clock)


@router.post("/commerce/webhook-secret", status_code=201)
def rotate_webhook_secret(ctx: Admin) -> dict[str, Any]:
    """A new secret for `/hooks/orders/{workspace_slug}`, shown this once; the previous one stops working."""
    secret = commerce_settings.rotate_webhook_secret(ctx.session, actor=ctx.actor, clock=ctx.clock)
    return {"secret": secret, "url_path": f"/hooks/orders/{_slug(ctx)}"}


def _slug(ctx: Ctx) -> str:
    from siyu.models import Workspace

    workspace = ctx.session.get(Workspace, ctx.actor.workspace_id)
    return workspace.slug if workspace else ""
