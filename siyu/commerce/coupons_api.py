"""HTTP API of coupon templates, issuing, redeeming and voiding coupons."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel

from siyu.auth.permissions import Scope
from siyu.commerce.coupons import service
from siyu.commerce.coupons.schemas import CouponIssueIn, CouponRedeemIn, CouponTemplateIn, CouponVoidIn
from siyu.jobs.api import job_read
from siyu.jobs.service import enqueue
from siyu.models import Coupon, CouponState, CouponTemplate, CouponTemplateStatus
from siyu.web.deps import Ctx, IdPath, require

router = APIRouter(prefix="/api/v1", tags=["coupons"])
Reader = Annotated[Ctx, Depends(require(Scope.COMMERCE_READ))]
Writer = Annotated[Ctx, Depends(require(Scope.COMMERCE_WRITE))]


class CouponTemplateRead(BaseModel):
    id: int
    name: str
    kind: str
    value: int
    max_discount_fen: int | None
    gift_name: str | None
    threshold_fen: int
    valid_from: datetime | None
    valid_until: datetime | None
    valid_days: int | None
    per_customer_limit: int
    total_stock: int | None
    issued_count: int
    channels: list[str]
    offer: str
    offer_settings: dict[str, Any]
    description: str | None
    status: str
    created_at: datetime
    updated_at: datetime


def template_read(row: CouponTemplate) -> CouponTemplateRead:
    return CouponTemplateRead(
        id=row.id,
        name=row.name,
        kind=str(row.kind),
        value=row.value,
        max_discount_fen=row.max_discount_fen,
        gift_name=row.gift_name,
        threshold_fen=row.threshold_fen,
        valid_from=row.valid_from,
        valid_until=row.valid_until,
        valid_days=row.valid_days,
        per_customer_limit=row.per_customer_limit,
        total_stock=row.total_stock,
        issued_count=row.issued_count,
        channels=list(row.channels or []),
        offer=str(row.offer),
        offer_settings=dict(row.offer_settings or {}),
        description=row.description,
        status=str(row.status),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class CouponRead(BaseModel):
    id: int
    template_id: int
    customer_id: int
    code: str
    state: str
    source: str
    issued_at: datetime
    valid_from: datetime
    expires_at: datetime | None
    redeemed_at: datetime | None
    order_id: int | None
    discount_fen: int | None
    voided_at: datetime | None
    void_reason: str | None


def coupon_read(row: Coupon) -> CouponRead:
    return CouponRead(
        id=row.id,
        template_id=row.template_id,
        customer_id=row.customer_id,
        code=row.code,
        state=str(row.state),
        source=row.source,
        issued_at=row.issued_at,
        valid_from=row.valid_from,
        expires_at=row.expires_at,
        redeemed_at=row.redeemed_at,
        order_id=row.order_id,
        discount_fen=row.discount_fen,
        voided_at=row.voided_at,
        void_reason=row.void_reason,
    )


class CouponPage(BaseModel):
    items: list[CouponRead]
    next_cursor: str | None


@router.get("/coupon-templates", response_model=list[CouponTemplateRead])
def list_templates(ctx: Reader, status: CouponTemplateStatus | None = None) -> list[CouponTemplateRead]:
    """Newest first (at most 500), optionally of one status."""
    return [template_read(t) for t in service.list_templates(ctx.session, ctx.actor, status=status)]


@router.post("/coupon-templates", status_code=201, response_model=CouponTemplateRead)
def create_template(body: CouponTemplateIn, ctx: Writer) -> CouponTemplateRead:
    return template_read(service.create_template(ctx.session, actor=ctx.actor, data=body, clock=ctx.clock))


@router.get("/coupon-templates/{template_id}", response_model=CouponTemplateRead)
def get_template(template_id: IdPath, ctx: Reader) -> CouponTemplateRead:
    return template_read(service.get_template(ctx.session, ctx.actor, template_id))


@router.put("/coupon-templates/{template_id}", response_model=CouponTemplateRead)
def update_template(template_id: IdPath, body: CouponTemplateIn, ctx: Writer) -> CouponTemplateRead:
    """Change a template; coupons already issued keep their validity."""
    row = service.update_template(ctx.session, actor=ctx.actor, template_id=template_id, data=body, clock=ctx.clock)
    return template_read(row)


@router.post("/coupon-templates/{template_id}/archive", response_model=CouponTemplateRead)
def archive_template(template_id: IdPath, ctx: Writer) -> CouponTemplateRead:
    """Stop issuing it; coupons already issued stay usable."""
    return template_read(
        service.archive_template(ctx.session, actor=ctx.actor, template_id=template_id, clock=ctx.clock)
    )


@router.post("/coupons", status_code=201, response_model=None)
def issue(body: CouponIssueIn, ctx: Writer, response: Response) -> dict[str, Any]:
    """Issue one coupon to a customer (201; 200 with the same coupon for a repeated
    `idempotency_key`), or one to every member of a segment as a job (202)."""
    if body.segment_id is not None:
        service.get_template(ctx.session, ctx.actor, body.template_id)
        service.check_segment(ctx.session, ctx.actor, body.segment_id)
        job = enqueue(
            ctx.session,
            kind="issue_coupons_to_segment",
            args={"template_id": body.template_id, "segment_id": body.segment_id, "actor": ctx.actor.label},
            workspace_id=ctx.actor.workspace_id,
            clock=ctx.clock,
            created_by=ctx.actor.label,
        )
        response.status_code = 202
        return job_read(job)
    assert body.customer_id is not None and body.idempotency_key is not None
    coupon, created = service.issue_to_customer(
        ctx.session,
        actor=ctx.actor,
        template_id=body.template_id,
        customer_id=body.customer_id,
        idempotency_key=body.idempotency_key,
        clock=ctx.clock,
    )
    if not created:
        response.status_code = 200
    return coupon_read(coupon).model_dump(mode="json")


@router.get("/coupons", response_model=CouponPage)
def list_coupons(
    ctx: Reader,
    customer_id: Annotated[int | None, Query(gt=0)] = None,
    state: CouponState | None = None,
    template_id: Annotated[int | None, Query(gt=0)] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> CouponPage:
    """Newest first; staff and store managers see their customers' coupons only."""
    flt = service.CouponFilter(customer_id=customer_id, state=state, template_id=template_id)
    page = service.list_coupons(ctx.session, ctx.actor, flt, cursor=cursor, limit=limit)
    return CouponPage(items=[coupon_read(c) for c in page.items], next_cursor=page.next_cursor)


@router.get("/coupons/{coupon_id}")
def get_coupon(coupon_id: IdPath, ctx: Reader) -> dict[str, Any]:
    """The coupon and its history (issued, redeemed, restored, expired, voided — each with why)."""
    coupon = service.get_coupon(ctx.session, ctx.actor, coupon_id)
    events = [
        {
            "kind": e.kind,
            "reason": e.reason,
            "order_id": e.order_id,
            "actor": e.actor,
            "occurred_at": e.occurred_at.isoformat(),
        }
        for e in service.coupon_events(ctx.session, coupon)
    ]
    return coupon_read(coupon).model_dump(mode="json") | {"events": events}


@router.post("/coupons/{code}/redeem", response_model=CouponRead)
def redeem(code: str, body: CouponRedeemIn, ctx: Writer) -> CouponRead:
    """Redeem a coupon against an order already in siyu; the same order again changes nothing,
    another order is a 409 `coupon_already_used`."""
    return coupon_read(
        service.redeem_code(ctx.session, actor=ctx.actor, code=code[:64], order_id=body.order_id, clock=ctx.clock)
    )


@router.post("/coupons/{coupon_id}/void", response_model=CouponRead)
def void(coupon_id: IdPath, body: CouponVoidIn, ctx: Writer) -> CouponRead:
    """Void an unused coupon, with a reason."""
    return coupon_read(
        service.void_coupon(ctx.session, actor=ctx.actor, coupon_id=coupon_id, reason=body.reason, clock=ctx.clock)
    )
