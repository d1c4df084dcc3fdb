"""A distribution setup: an approved KOC with a commission rule, and customers they referred.

Rows are written directly (flushed, not committed), so these tests depend only on the models of the
referral and KOC areas, not on their services."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.kit.clock import Clock
from siyu.models import (
    CommissionRule,
    Customer,
    KocProfile,
    KocStatus,
    ProgramStatus,
    Referral,
    ReferralCode,
    ReferralProgram,
    ReferralStatus,
    Workspace,
)
from tests.factories import actor_for, make_customer, make_workspace

_seq = itertools.count(1)


@dataclass
class Distribution:
    workspace: Workspace
    actor: Actor
    koc: Customer
    profile: KocProfile
    rule: CommissionRule
    program: ReferralProgram
    code: ReferralCode


def make_rule(
    db: Session,
    *,
    workspace: Workspace,
    clock: Clock,
    rate_bp: int = 1000,
    days: int = 30,
    cap_per_referee_fen: int | None = None,
    cap_per_month_fen: int | None = None,
    is_active: bool = True,
    name: str = "KOC 10%",
) -> CommissionRule:
    rule = CommissionRule(
        workspace_id=workspace.id,
        name=name,
        rate_bp=rate_bp,
        days=days,
        cap_per_referee_fen=cap_per_referee_fen,
        cap_per_month_fen=cap_per_month_fen,
        is_active=is_active,
        created_at=clock.now(),
        updated_at=clock.now(),
    )
    db.add(rule)
    db.flush()
    return rule


def make_koc(
    db: Session,
    *,
    workspace: Workspace,
    clock: Clock,
    rule: CommissionRule | None,
    status: KocStatus = KocStatus.APPROVED,
    name: str = "小红",
    phone: str | None = None,
) -> tuple[Customer, KocProfile]:
    customer = make_customer(db, actor=actor_for(workspace), clock=clock, name=name, phone=phone).customer
    profile = KocProfile(
        workspace_id=workspace.id,
        customer_id=customer.id,
        status=status,
        commission_rule_id=rule.id if rule else None,
        created_at=clock.now(),
    )
    db.add(profile)
    db.flush()
    return customer, profile


def make_distribution(
    db: Session,
    *,
    clock: Clock,
    rate_bp: int = 1000,
    days: int = 30,
    cap_per_referee_fen: int | None = None,
    cap_per_month_fen: int | None = None,
    koc_phone: str | None = "13800138000",
    koc_name: str = "小红",
    workspace: Workspace | None = None,
) -> Distribution:
    workspace = workspace or make_workspace(db, clock=clock)
    rule = make_rule(
        db,
        workspace=workspace,
        clock=clock,
        rate_bp=rate_bp,
        days=days,
        cap_per_referee_fen=cap_per_referee_fen,
        cap_per_month_fen=cap_per_month_fen,
    )
    koc, profile = make_koc(db, workspace=workspace, clock=clock, rule=rule, phone=koc_phone, name=koc_name)
    program = ReferralProgram(
        workspace_id=workspace.id,
        name="老带新",
        status=ProgramStatus.ACTIVE,
        created_at=clock.now(),
        updated_at=clock.now(),
    )
    db.add(program)
    db.flush()
    code = ReferralCode(
        workspace_id=workspace.id, program_id=program.id, customer_id=koc.id, code=f"K{next(_seq):07d}",
        created_at=clock.now(),
    )  # fmt: skip
    db.add(code)
    db.flush()
    return Distribution(workspace, actor_for(workspace), koc, profile, rule, program, code)


def refer(
    db: Session,
    setup: Distribution,
    *,
    clock: Clock,
    status: ReferralStatus = ReferralStatus.QUALIFIED,
    attributed_at: datetime | None = None,
    referrer: Customer | None = None,
    name: str = "新客",
) -> Customer:
    """A new customer referred by the KOC (or `referrer`) through the setup's program."""
    referee = make_customer(db, actor=setup.actor, clock=clock, name=name).customer
    db.add(
        Referral(
            workspace_id=setup.workspace.id,
            program_id=setup.program.id,
            code_id=setup.code.id,
            referrer_customer_id=(referrer or setup.koc).id,
            referee_customer_id=referee.id,
            status=status,
            attributed_at=attributed_at or clock.now(),
        )
    )
    db.flush()
    return referee
