"""Commission rules: how much an approved KOC earns on their referees' orders."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.kit.clock import Clock
from siyu.models import CommissionRule
from siyu.referrals.commission.errors import RuleNotFound
from siyu.referrals.commission.schemas import RuleIn


def _snapshot(rule: CommissionRule) -> dict[str, Any]:
    return {
        "name": rule.name,
        "rate_bp": rule.rate_bp,
        "days": rule.days,
        "cap_per_referee_fen": rule.cap_per_referee_fen,
        "cap_per_month_fen": rule.cap_per_month_fen,
        "is_active": rule.is_active,
    }


def list_rules(session: Session, *, workspace_id: int) -> list[CommissionRule]:
    """The workspace's rules, active first, then by name."""
    return list(
        session.scalars(
            select(CommissionRule)
            .where(CommissionRule.workspace_id == workspace_id)
            .order_by(CommissionRule.is_active.desc(), CommissionRule.name, CommissionRule.id)
        )
    )


def get_rule(session: Session, *, workspace_id: int, rule_id: int) -> CommissionRule:
    """One rule of the workspace, or `RuleNotFound`."""
    rule = session.get(CommissionRule, rule_id)
    if rule is None or rule.workspace_id != workspace_id:
        raise RuleNotFound(f"commission rule {rule_id} not found")
    return rule


def create_rule(session: Session, *, actor: Actor, data: RuleIn, clock: Clock) -> CommissionRule:
    """Add a rule (growth:write); audited."""
    actor.require(Scope.GROWTH_WRITE)
    now = clock.now()
    rule = CommissionRule(workspace_id=actor.workspace_id, created_at=now, updated_at=now, **data.model_dump())
    session.add(rule)
    session.flush()
    record(
        session, actor, action="commission_rule.create", entity_type="commission_rule", entity_id=rule.id,
        clock=clock, after=_snapshot(rule),
    )  # fmt: skip
    return rule


def update_rule(session: Session, *, actor: Actor, rule_id: int, data: RuleIn, clock: Clock) -> CommissionRule:
    """Replace a rule's settings (growth:write); entries already earned keep their amounts. Audited."""
    actor.require(Scope.GROWTH_WRITE)
    rule = get_rule(session, workspace_id=actor.workspace_id, rule_id=rule_id)
    before = _snapshot(rule)
    for key, value in data.model_dump().items():
        setattr(rule, key, value)
    rule.updated_at = clock.now()
    session.flush()
    record(
        session, actor, action="commission_rule.update", entity_type="commission_rule", entity_id=rule.id,
        clock=clock, before=before, after=_snapshot(rule),
    )  # fmt: skip
    return rule
