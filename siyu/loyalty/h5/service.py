"""Issuing member links: for an operator (API, CLI), audited, only for customers they may see."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor
from siyu.config import Settings
from siyu.customers.errors import CustomerNotFound
from siyu.customers.repository import get_visible
from siyu.kit.clock import Clock
from siyu.loyalty.h5.links import link_lifetime, member_link_url


@dataclass(frozen=True)
class IssuedLink:
    customer_id: int
    purpose: str
    url: str
    expires_at: datetime


def issue_member_link(
    session: Session, *, actor: Actor, customer_id: int, purpose: str, settings: Settings, clock: Clock
) -> IssuedLink:
    """A signed link to the customer's H5 center (landing on `purpose`'s page), valid
    `member_link_days`. Anyone holding it acts as the member, so issuing one is audited."""
    customer = get_visible(session, actor, customer_id)
    if customer.merged_into_id is not None or customer.erased_at is not None:
        raise CustomerNotFound(f"customer {customer_id} not found")
    url = member_link_url(
        workspace_id=actor.workspace_id, customer_id=customer.id, settings=settings, clock=clock, purpose=purpose
    )
    expires_at = clock.now() + link_lifetime(settings)
    record(
        session,
        actor,
        action="member_link",
        entity_type="customer",
        entity_id=customer.id,
        after={"purpose": purpose, "expires_at": expires_at.isoformat()},
        clock=clock,
    )
    return IssuedLink(customer_id=customer.id, purpose=purpose, url=url, expires_at=expires_at)
