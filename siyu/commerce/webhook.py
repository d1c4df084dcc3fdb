"""The signed order webhook: a shop (or its middleware) posts orders and refunds to
`/hooks/orders/{workspace_slug}`.

Signing: `X-Siyu-Timestamp: <unix seconds>` and
`X-Siyu-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>` over the raw body
bytes. The timestamp must be within five minutes of siyu's clock (a captured request cannot be
replayed later), and the signature is compared in constant time. A request that fails either
check is a 401 and nothing is read from its body.

Body: one order (the `OrderIn` shape), `{"orders": [...]}` (at most 1,000, results per row), or
`{"refund": {...}}` (see `WebhookRefund`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

from pydantic import Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.commerce.errors import InvalidOrder, InvalidSignature, OrderNotFound
from siyu.commerce.orders.schemas import OrderIn
from siyu.commerce.settings import webhook_secret
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput
from siyu.kit.schemas import Input
from siyu.models import Order, OrderSource, Platform, Workspace

TOLERANCE_SECONDS = 300
MAX_BATCH = 1000
MAX_BODY_BYTES = 8 << 20
SIGNATURE_PREFIX = "sha256="


class WebhookRefundItem(Input):
    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(default=1, ge=1, le=100_000)
    amount_fen: int = Field(ge=0, le=10**13)


class WebhookRefund(Input):
    """A refund of an order siyu already holds, named by its platform and order number."""

    platform: Platform
    order_external_id: str = Field(min_length=1, max_length=100)
    external_id: str = Field(min_length=1, max_length=100)
    """The platform's refund id: sending it again with the same amount changes nothing."""
    amount_fen: int | None = Field(default=None, ge=1, le=10**13)
    """Refunded amount; left out with `items` given, the items' sum; both left out: the whole order."""
    items: list[WebhookRefundItem] | None = Field(default=None, max_length=500)
    reason: str | None = Field(default=None, max_length=200)
    refunded_at: datetime | None = None


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value a sender computes (used by tests and the docs' example)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify(*, secret: str | None, timestamp: str | None, signature: str | None, body: bytes, now: datetime) -> None:
    """Raise `InvalidSignature` (401) unless the timestamp is fresh and the signature matches."""
    if not secret:
        raise InvalidSignature("no webhook secret is set for this workspace", details={"field": "secret"})
    if not timestamp or not timestamp.strip().isdigit() or len(timestamp.strip()) > 12:
        raise InvalidSignature("missing or malformed X-Siyu-Timestamp", details={"field": "X-Siyu-Timestamp"})
    if abs(now.timestamp() - int(timestamp.strip())) > TOLERANCE_SECONDS:
        raise InvalidSignature(
            "X-Siyu-Timestamp is more than 5 minutes from now", details={"field": "X-Siyu-Timestamp"}
        )
    expected = sign(secret, timestamp.strip(), body)
    given = (signature or "").strip()
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise InvalidSignature("signature does not match", details={"field": "X-Siyu-Signature"})


def workspace_by_slug(session: Session, slug: str) -> Workspace | None:
    if not slug or len(slug) > 100:
        return None
    return session.scalar(select(Workspace).where(Workspace.slug == slug))


def authenticate(
    session: Session, *, workspace_slug: str, timestamp: str | None, signature: str | None, body: bytes, clock: Clock
) -> Workspace:
    """The workspace a correctly signed request belongs to; an unknown slug is the same 401 as a bad signature."""
    workspace = workspace_by_slug(session, workspace_slug)
    secret = webhook_secret(session, workspace_id=workspace.id) if workspace else None
    verify(secret=secret, timestamp=timestamp, signature=signature, body=body, now=clock.now())
    assert workspace is not None
    return workspace


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"body is not JSON: {exc}", details={"field": "body"}) from exc


def _validation_error(exc: ValidationError, prefix: str) -> InvalidOrder:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    field = f"{prefix}.{where}" if prefix and where else (prefix or where or "body")
    return InvalidOrder(f"{field}: {first.get('msg', 'invalid')}", details={"field": field})


def handle(session: Session, *, workspace_id: int, body: bytes, clock: Clock) -> tuple[int, dict[str, Any]]:
    """Ingest what an authenticated request carries; returns (HTTP status, response body)."""
    from siyu.commerce.orders.ingest import ingest_order, ingest_orders

    actor = Actor.system(workspace_id, label="order webhook")
    payload = _decode(body)
    if not isinstance(payload, dict):
        raise InvalidInput('body must be an order, {"orders": [...]} or {"refund": {...}}', details={"field": "body"})
    if "refund" in payload and len(payload) == 1:
        return _refund(session, actor=actor, raw=payload["refund"], clock=clock)
    if "orders" in payload and len(payload) == 1:
        raw_orders = payload["orders"]
        if not isinstance(raw_orders, list) or not raw_orders:
            raise InvalidInput("orders must be a non-empty list", details={"field": "orders"})
        if len(raw_orders) > MAX_BATCH:
            raise InvalidInput(f"at most {MAX_BATCH} orders per request", details={"field": "orders"})
        results: list[dict[str, Any]] = []
        valid: list[OrderIn] = []
        rows: list[int] = []
        for index, raw in enumerate(raw_orders):
            try:
                valid.append(OrderIn.model_validate(raw))
                rows.append(index)
            except ValidationError as exc:
                error = _validation_error(exc, f"orders[{index}]")
                results.append({"row": index, "status": "rejected", "error": _error_body(error)})
        if valid:
            outcomes = ingest_orders(session, actor=actor, orders=valid, source=OrderSource.WEBHOOK, clock=clock)
            for outcome in outcomes:
                results.append({"row": rows[outcome.row]} | _outcome_body(outcome))
        results.sort(key=lambda r: r["row"])
        return 200, {"results": results}
    try:
        order_in = OrderIn.model_validate(payload)
    except ValidationError as exc:
        raise _validation_error(exc, "") from exc
    outcome = ingest_order(session, actor=actor, order=order_in, source=OrderSource.WEBHOOK, clock=clock)
    if outcome.status == "rejected" and outcome.error is not None:
        raise outcome.error
    return (201 if outcome.status == "created" else 200), _outcome_body(outcome)


def _error_body(error: Any) -> dict[str, Any]:
    return {
        "code": getattr(error, "code", "error"),
        "message": str(getattr(error, "message", error)),
        "details": getattr(error, "details", None),
    }


def _outcome_body(outcome: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": outcome.status,
        "platform": str(outcome.platform),
        "external_id": outcome.external_id,
        "order_id": outcome.order.id if outcome.order is not None else None,
    }
    if outcome.error is not None:
        body["error"] = _error_body(outcome.error)
    return body


def _refund(session: Session, *, actor: Actor, raw: Any, clock: Clock) -> tuple[int, dict[str, Any]]:
    from siyu.commerce.orders.refunds import RefundItemIn, refund_order

    try:
        data = WebhookRefund.model_validate(raw)
    except ValidationError as exc:
        raise _validation_error(exc, "refund") from exc
    order_id = session.scalar(
        select(Order.id).where(
            Order.workspace_id == actor.workspace_id,
            Order.platform == str(data.platform),
            Order.external_id == data.order_external_id,
        )
    )
    if order_id is None:
        raise OrderNotFound(
            f"no {data.platform} order {data.order_external_id}", details={"field": "refund.order_external_id"}
        )
    items = None if data.items is None else [RefundItemIn.model_validate(i.model_dump()) for i in data.items]
    refund = refund_order(
        session,
        actor=actor,
        order_id=order_id,
        external_id=data.external_id,
        amount_fen=data.amount_fen,
        items=items,
        reason=data.reason,
        refunded_at=data.refunded_at,
        clock=clock,
    )
    return 200, {"refund_id": refund.id, "order_id": order_id, "amount_fen": refund.amount_fen}
