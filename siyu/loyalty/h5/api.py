"""`POST /api/v1/members/{customer_id}/h5-link`: a signed link to a member's H5 center."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from siyu.auth.permissions import Scope
from siyu.kit.schemas import Input
from siyu.loyalty.h5.service import issue_member_link
from siyu.web.deps import Ctx, IdPath, require

router = APIRouter(prefix="/api/v1", tags=["member h5"])
Writer = Annotated[Ctx, Depends(require(Scope.LOYALTY_WRITE))]

Purpose = Literal["home", "points", "check_in", "tasks", "rewards", "redemptions", "coupons"]


class H5LinkIn(Input):
    purpose: Purpose = "home"
    """The page the link lands on after signing the member in."""


class H5LinkRead(BaseModel):
    customer_id: int
    purpose: str
    url: str
    """`<public_url>/m/enter?t=…`: whoever opens it acts as this member until it expires."""
    expires_at: datetime


@router.post("/members/{customer_id}/h5-link", status_code=201)
def create_h5_link(customer_id: IdPath, ctx: Writer, body: H5LinkIn | None = None) -> H5LinkRead:
    """Sign a link to the customer's member center (valid `SIYU_MEMBER_LINK_DAYS`, default 30 days).

    Needs `loyalty:write` (the link lets its holder check in and spend the member's points); staff
    and store managers only get links for the customers they see. Audited."""
    issued = issue_member_link(
        ctx.session,
        actor=ctx.actor,
        customer_id=customer_id,
        purpose=(body or H5LinkIn()).purpose,
        settings=ctx.settings,
        clock=ctx.clock,
    )
    return H5LinkRead(
        customer_id=issued.customer_id, purpose=issued.purpose, url=issued.url, expires_at=issued.expires_at
    )
