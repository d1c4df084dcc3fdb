"""`POST /api/v1/messages`: send one transactional message (idempotent by key)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from siyu.auth.permissions import Scope
from siyu.jobs.service import enqueue
from siyu.kit.schemas import Input
from siyu.messaging.transactional import send_transactional
from siyu.web.deps import Ctx, require

router = APIRouter(prefix="/api/v1", tags=["touch"])
Writer = Annotated[Ctx, Depends(require(Scope.TOUCH_WRITE))]
DISPATCH_KIND = "dispatch_deliveries"  # declared by siyu.campaigns.broadcasts.tasks


class MessageIn(Input):
    customer_id: Annotated[int, Field(ge=1, le=2**63 - 1)]
    content_id: Annotated[int, Field(ge=1, le=2**63 - 1)]
    channel_account_ids: Annotated[list[Annotated[int, Field(ge=1, le=2**63 - 1)]], Field(min_length=1, max_length=5)]
    idempotency_key: Annotated[str, Field(min_length=1, max_length=80)]
    variables: dict[str, Annotated[str, Field(max_length=500)]] = Field(default_factory=dict)


class MessageRead(BaseModel):
    delivery_id: int
    status: str
    reason: str | None
    channel: str | None
    not_before: datetime


@router.post("/messages", response_model=MessageRead)
def send_message(body: MessageIn, ctx: Writer) -> dict[str, Any]:
    """Queue a transactional message and dispatch at once; a repeated key returns the first one."""
    delivery = send_transactional(
        ctx.session,
        actor=ctx.actor,
        customer_id=body.customer_id,
        content_id=body.content_id,
        channel_account_ids=body.channel_account_ids,
        idempotency_key=body.idempotency_key,
        variables=body.variables,
        clock=ctx.clock,
    )
    enqueue(
        ctx.session,
        kind=DISPATCH_KIND,
        args={},
        workspace_id=ctx.actor.workspace_id,
        clock=ctx.clock,
        created_by=ctx.actor.label,
    )
    return {
        "delivery_id": delivery.id,
        "status": str(delivery.status),
        "reason": delivery.reason,
        "channel": delivery.channel,
        "not_before": delivery.not_before,
    }
