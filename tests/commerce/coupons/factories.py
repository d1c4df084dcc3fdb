"""Coupon factories: templates written directly (the service path is tested in test_service.py)."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.kit.clock import Clock
from siyu.models import CouponKind, CouponTemplate, CouponTemplateStatus, Customer, Workspace
from tests.factories import make_customer

_seq = itertools.count(1)


def make_template(
    db: Session,
    *,
    workspace: Workspace,
    clock: Clock,
    kind: CouponKind = CouponKind.AMOUNT_OFF,
    value: int = 2000,
    name: str | None = None,
    **values: Any,
) -> CouponTemplate:
    """A ¥20-off coupon valid 7 days from issue, one per customer, unlimited stock, unless told."""
    values.setdefault("valid_days", None if "valid_until" in values else 7)
    values.setdefault("status", CouponTemplateStatus.ACTIVE)
    template = CouponTemplate(
        workspace_id=workspace.id,
        name=name or f"满减券{next(_seq)}",
        kind=kind,
        value=value,
        issued_count=0,
        created_at=clock.now(),
        updated_at=clock.now(),
        **values,
    )
    db.add(template)
    db.flush()
    return template


def buyer(db: Session, *, workspace: Workspace, clock: Clock, **values: Any) -> Customer:
    return make_customer(db, actor=Actor.system(workspace.id), clock=clock, **values).customer


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)
