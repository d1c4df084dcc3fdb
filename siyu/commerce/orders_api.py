"""HTTP API of orders and refunds: ingest one or a batch (idempotent), list, detail, refund, parked orders."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import AwareDatetime, BaseModel, Field, ValidationError
from sqlalchemy import select

from siyu.auth.permissions import Actor, Scope
from siyu.commerce.errors import InvalidOrder
from siyu.commerce.orders import parked, service
from siyu.commerce.orders.ingest import MAX_BATCH, OrderOutcome, ingest_order, ingest_orders
from siyu.commerce.orders.refunds import RefundIn, refund_order
from siyu.commerce.orders.schemas import OrderIn
from siyu.customers.masking import sees_pii, shown_identity
from siyu.kit.errors import DomainError
from siyu.kit.ids import MAX_ID
from siyu.kit.schemas import Input
from siyu.models import Coupon, Order, OrderItem, OrderSource, OrderStatus, ParkedOrder, Platform, Refund
from siyu.web.deps import Ctx, IdPath, require

router = APIRouter(prefix="/api/v1", tags=["orders"])
Reader = Annotated[Ctx, Depends(require(Scope.COMMERCE_READ))]
Writer = Annotated[Ctx, Depends(require(Scope.COMMERCE_WRITE))]


class OrderItemRead(BaseModel):
    id: int
    sku: str
    product_name: str
    category: str | None
    quantity: int
    amount_fen: int
    refunded_fen: int


class RefundRead(BaseModel):
    id: int
    order_id: int
    external_id: str
    amount_fen: int
    items: list[dict[str, Any]] | None
    reason: str | None
    refunded_at: datetime
    created_at: datetime


class CouponRef(BaseModel):
    id: int
    code: str
    template_id: int
    state: str
    discount_fen: int | None


class OrderRead(BaseModel):
    id: int
    customer_id: int
    platform: str
    external_id: str
    status: str
    total_fen: int
    discount_fen: int
    shipping_fen: int
    refunded_fen: int
    net_fen: int
    paid_at: datetime
    created_at: datetime
    source: str
    staff_code: str | None
    staff_id: int | None
    store_id: int | None
    campaign: str | None
    coupon_code: str | None
    pool_sequence: int | None
    """1: the first order inside the private domain (首单), 2+: repurchases; None: paid before the
    customer joined, or fully refunded."""
    attributes: dict[str, Any] | None
    """Extra platform fields; only for roles that may see personal data."""


class OrderDetailRead(OrderRead):
    items: list[OrderItemRead]
    refunds: list[RefundRead]
    coupon: CouponRef | None


class OrderPage(BaseModel):
    items: list[OrderRead]
    next_cursor: str | None


class IngestRead(BaseModel):
    status: str
    """"created", "unchanged" (sent before with the same content) or "parked" (buyer unknown)."""
    order: OrderRead | None
    parked_order_id: int | None = None
    error: dict[str, Any] | None = None


class BatchIn(Input):
    orders: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH)
    """Each one an order (the shape of `POST /orders`); each is validated and ingested on its own."""


class ParkedRead(BaseModel):
    id: int
    platform: str
    external_id: str
    identities: list[str]
    total_fen: int | None
    reason: str
    source: str
    created_at: datetime
    resolved_at: datetime | None
    order_id: int | None


class ParkedPage(BaseModel):
    items: list[ParkedRead]
    next_cursor: str | None


def order_read(order: Order, actor: Actor) -> OrderRead:
    return OrderRead(
        id=order.id,
        customer_id=order.customer_id,
        platform=order.platform,
        external_id=order.external_id,
        status=str(order.status),
        total_fen=order.total_fen,
        discount_fen=order.discount_fen,
        shipping_fen=order.shipping_fen,
        refunded_fen=order.refunded_fen,
        net_fen=order.total_fen - order.refunded_fen,
        paid_at=order.paid_at,
        created_at=order.created_at,
        source=order.source,
        staff_code=order.staff_code,
        staff_id=order.staff_id,
        store_id=order.store_id,
        campaign=order.campaign,
        coupon_code=order.coupon_code,
        pool_sequence=order.pool_sequence,
        attributes=dict(order.attributes or {}) if sees_pii(actor) else None,
    )


def refund_read(refund: Refund) -> RefundRead:
    return RefundRead(
        id=refund.id,
        order_id=refund.order_id,
        external_id=refund.external_id,
        amount_fen=refund.amount_fen,
        items=refund.items,
        reason=refund.reason,
        refunded_at=refund.refunded_at,
        created_at=refund.created_at,
    )


def _item_read(item: OrderItem) -> OrderItemRead:
    return OrderItemRead(
        id=item.id,
        sku=item.sku,
        product_name=item.product_name,
        category=item.category,
        quantity=item.quantity,
        amount_fen=item.amount_fen,
        refunded_fen=item.refunded_fen,
    )


def _coupon_ref(coupon: Coupon | None) -> CouponRef | None:
    if coupon is None:
        return None
    return CouponRef(
        id=coupon.id,
        code=coupon.code,
        template_id=coupon.template_id,
        state=str(coupon.state),
        discount_fen=coupon.discount_fen,
    )


def _error(error: DomainError | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {"code": error.code, "message": error.message, "details": error.details}


def _outcome_read(outcome: OrderOutcome, actor: Actor) -> dict[str, Any]:
    return {
        "row": outcome.row,
        "status": outcome.status,
        "platform": outcome.platform,
        "external_id": outcome.external_id,
        "order_id": outcome.order.id if outcome.order is not None else None,
        "parked_order_id": outcome.parked_order.id if outcome.parked_order is not None else None,
        "error": _error(outcome.error),
    }


def _invalid_row(exc: ValidationError) -> InvalidOrder:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "body"
    return InvalidOrder(f"{where}: {first.get('msg', 'invalid')}", details={"field": where})


@router.post("/orders", response_model=IngestRead, status_code=201)
def create_order(body: OrderIn, ctx: Writer, response: Response) -> IngestRead:
    """Ingest one order: 201 created, 200 when it was sent before with the same content, 202 when
    its buyer matches no customer and the policy parks it; 409 when sent before with other content."""
    outcome = ingest_order(ctx.session, actor=ctx.actor, order=body, source=OrderSource.API, clock=ctx.clock)
    if outcome.status == "rejected":
        assert outcome.error is not None
        raise outcome.error
    if outcome.status == "unchanged":
        response.status_code = 200
    if outcome.status == "parked":
        response.status_code = 202
    return IngestRead(
        status=outcome.status,
        order=order_read(outcome.order, ctx.actor) if outcome.order is not None else None,
        parked_order_id=outcome.parked_order.id if outcome.parked_order is not None else None,
        error=_error(outcome.error) if outcome.status == "parked" else None,
    )


@router.post("/orders/batch")
def create_orders(body: BatchIn, ctx: Writer) -> dict[str, Any]:
    """Ingest up to 1,000 orders; each row is created, unchanged, parked or rejected (with its
    row number and the field at fault) on its own. Rejected rows leave nothing behind."""
    results: dict[int, dict[str, Any]] = {}
    valid: list[OrderIn] = []
    rows: list[int] = []
    for index, raw in enumerate(body.orders):
        try:
            valid.append(OrderIn.model_validate(raw))
            rows.append(index)
        except ValidationError as exc:
            error = _invalid_row(exc)
            results[index] = {
                "row": index,
                "status": "rejected",
                "platform": str(raw.get("platform", "")),
                "external_id": str(raw.get("external_id", "")),
                "order_id": None,
                "parked_order_id": None,
                "error": _error(error),
            }
    outcomes = ingest_orders(ctx.session, actor=ctx.actor, orders=valid, source=OrderSource.API, clock=ctx.clock)
    for outcome in outcomes:
        result = _outcome_read(outcome, ctx.actor)
        result["row"] = rows[outcome.row]
        results[result["row"]] = result
    ordered = [results[i] for i in sorted(results)]
    counts = {s: sum(r["status"] == s for r in ordered) for s in ("created", "unchanged", "parked", "rejected")}
    return counts | {"results": ordered}


@router.get("/orders", response_model=OrderPage)
def list_orders(
    ctx: Reader,
    customer_id: Annotated[int | None, Query(gt=0, le=MAX_ID)] = None,
    platform: Platform | None = None,
    status: OrderStatus | None = None,
    paid_from: AwareDatetime | None = None,
    paid_to: AwareDatetime | None = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    sku: Annotated[str | None, Query(max_length=64)] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> OrderPage:
    """Orders, most recently paid first. `q`: an order number, or the buyer's phone or identity value."""
    flt = service.OrderFilter(
        customer_id=customer_id,
        platform=str(platform) if platform else None,
        status=str(status) if status else None,
        paid_from=paid_from,
        paid_to=paid_to,
        q=q,
        sku=sku,
    )
    page = service.list_orders(ctx.session, actor=ctx.actor, flt=flt, cursor=cursor, limit=limit)
    return OrderPage(items=[order_read(o, ctx.actor) for o in page.items], next_cursor=page.next_cursor)


@router.get("/orders/{order_id}", response_model=OrderDetailRead)
def get_order(order_id: IdPath, ctx: Reader) -> OrderDetailRead:
    """One order with its lines, refunds and the siyu coupon redeemed on it."""
    detail = service.order_detail(ctx.session, actor=ctx.actor, order_id=order_id)
    return OrderDetailRead(
        **order_read(detail.order, ctx.actor).model_dump(),
        items=[_item_read(i) for i in detail.items],
        refunds=[refund_read(r) for r in detail.refunds],
        coupon=_coupon_ref(detail.coupon),
    )


@router.post("/orders/{order_id}/refunds", response_model=RefundRead, status_code=201)
def create_refund(order_id: IdPath, body: RefundIn, ctx: Writer, response: Response) -> RefundRead:
    """Refund part or all of an order: `items` per line, or `amount_fen`, or neither for everything
    left. 201 recorded, 200 when the same refund was recorded before; 422 when larger than what is
    left; 409 when the refund id was recorded with another amount."""
    service.get_order(ctx.session, actor=ctx.actor, order_id=order_id)
    before = ctx.session.scalar(
        select(Refund.id).where(Refund.order_id == order_id, Refund.external_id == body.external_id.strip())
    )
    refund = refund_order(
        ctx.session,
        actor=ctx.actor,
        order_id=order_id,
        external_id=body.external_id,
        amount_fen=body.amount_fen,
        items=body.items,
        reason=body.reason,
        refunded_at=body.refunded_at,
        clock=ctx.clock,
    )
    if before is not None:
        response.status_code = 200
    return refund_read(refund)


def _parked_read(row: ParkedOrder, actor: Actor) -> ParkedRead:
    whole = sees_pii(actor)
    identities = [
        f"{type_}:{shown_identity(type_, value, whole=whole)}"
        for type_, value in parked.parse_identities(row.identities)
    ]
    total = row.payload.get("total_fen") if isinstance(row.payload, dict) else None
    return ParkedRead(
        id=row.id,
        platform=row.platform,
        external_id=row.external_id,
        identities=identities,
        total_fen=total if isinstance(total, int) else None,
        reason=row.reason,
        source=row.source,
        created_at=row.created_at,
        resolved_at=row.resolved_at,
        order_id=row.order_id,
    )


@router.get("/parked-orders", response_model=ParkedPage)
def list_parked_orders(
    ctx: Reader,
    resolved: bool = False,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ParkedPage:
    """Orders waiting for their buyer to become a customer (`resolved=true`: those ingested since)."""
    page = parked.list_parked(ctx.session, actor=ctx.actor, resolved=resolved, cursor=cursor, limit=limit)
    return ParkedPage(items=[_parked_read(r, ctx.actor) for r in page.items], next_cursor=page.next_cursor)
