"""Message variables of the loyalty area: `{{tier}}` (the member's tier name) and `{{points}}` (their
points balance). Registered with `siyu.messaging.content` on import (`siyu.loyalty.tasks` imports
this module, so API processes and workers both have them). One query per batch of recipients."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.messaging.content import register_variable
from siyu.models import Customer, Member, Tier


def load_tier(session: Session, workspace_id: int, customers: Sequence[Customer]) -> dict[int, Any]:
    """Tier name by customer; customers with no member row or no tier have none (the fallback applies)."""
    ids = [c.id for c in customers]
    if not ids:
        return {}
    rows = session.execute(
        select(Member.customer_id, Tier.name)
        .join(Tier, Tier.id == Member.tier_id)
        .where(Member.workspace_id == workspace_id, Member.customer_id.in_(ids))
    )
    return {customer_id: name for customer_id, name in rows}


def load_points(session: Session, workspace_id: int, customers: Sequence[Customer]) -> dict[int, Any]:
    """Points balance by customer; a customer who is no member yet has 0 points."""
    ids = [c.id for c in customers]
    if not ids:
        return {}
    rows = session.execute(
        select(Member.customer_id, Member.points_balance).where(
            Member.workspace_id == workspace_id, Member.customer_id.in_(ids)
        )
    )
    balances = {customer_id: balance for customer_id, balance in rows}
    return {customer_id: balances.get(customer_id, 0) for customer_id in ids}


register_variable("tier", load_tier)
register_variable("points", load_points)
