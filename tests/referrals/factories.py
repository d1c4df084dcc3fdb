"""Factories of the referrals tests: a running program, a member's code, a visitor's scan and add."""

from __future__ import annotations

import itertools
import random
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.commerce.orders.ingest import ingest_order
from siyu.commerce.orders.refunds import refund_order
from siyu.commerce.orders.schemas import OrderIn
from siyu.kit.clock import Clock
from siyu.livecodes.adds import AddOutcome, record_add, simulated_external_userid
from siyu.livecodes.scan import scan_code
from siyu.models import (
    Customer,
    LiveCode,
    Member,
    Order,
    OrderSource,
    ProgramStatus,
    ReferralCode,
    ReferralProgram,
    ReferralVisit,
    Refund,
    Staff,
    VisitKind,
    Workspace,
)
from siyu.referrals import attribution, codes, programs
from siyu.referrals.schemas import ProgramIn
from tests.factories import actor_for, make_customer, make_live_code, make_staff, make_workspace

_seq = itertools.count(1)
RNG = random.Random(7)


class World:
    """A workspace with one staff member behind a live code, and a running program."""

    def __init__(self, db: Session, clock: Clock, **program: Any) -> None:
        self.db, self.clock = db, clock
        self.ws: Workspace = make_workspace(db, clock=clock)
        self.actor: Actor = actor_for(self.ws)
        self.staff: Staff = make_staff(db, workspace=self.ws, clock=clock)
        self.live_code: LiveCode = make_live_code(
            db, workspace=self.ws, clock=clock, routes=[{"staff_id": self.staff.id}]
        )
        self.program = make_program(db, actor=self.actor, clock=clock, live_code_id=self.live_code.id, **program)

    def member(self, **values: Any) -> Customer:
        """An existing member (an old customer)."""
        return make_customer(self.db, actor=self.actor, clock=self.clock, **values).customer

    def code(self, customer: Customer, program: ReferralProgram | None = None) -> ReferralCode:
        program = program or self.program
        return codes.code_for(
            self.db, workspace_id=self.ws.id, program_id=program.id, customer_id=customer.id, clock=self.clock
        )

    def share(self, code: ReferralCode, device_id: str | None = None) -> ReferralVisit:
        return attribution.record_visit(
            self.db, code=code, kind=VisitKind.SHARE, visitor_id=None, device_id=device_id, clock=self.clock
        )

    def invite(
        self, code: ReferralCode, *, visitor: str | None = None, device_id: str | None = None, **add: Any
    ) -> AddOutcome:
        """A visitor opens the referral link (scan visit), lands on the live code, scans it and adds the
        staff member: the add listener attributes the new customer."""
        visitor = visitor or f"visitor-{next(_seq)}"
        attribution.record_visit(
            self.db, code=code, kind=VisitKind.SCAN, visitor_id=visitor, device_id=device_id, clock=self.clock
        )
        return self.add(visitor, **add)

    def add(self, visitor: str, **add: Any) -> AddOutcome:
        result = scan_code(self.db, self.live_code, visitor_id=visitor, at=self.clock.now(), rng=RNG)
        assert result.scan is not None
        return record_add(
            self.db,
            workspace_id=self.ws.id,
            staff_id=self.staff.id,
            external_userid=simulated_external_userid(visitor),
            state=result.state,
            at=self.clock.now(),
            clock=self.clock,
            scan_id=result.scan.id,
            name=add.pop("name", f"新客{next(_seq)}"),
            phone=add.pop("phone", None),
        )

    def order(self, customer: Customer, total_fen: int = 10_000, paid_at: datetime | None = None) -> Order:
        """A paid order ingested through commerce (fires the paid-orders listeners)."""
        outcome = ingest_order(
            self.db,
            actor=Actor.system(self.ws.id),
            order=OrderIn.model_validate(
                {
                    "platform": "taobao",
                    "external_id": f"T{next(_seq)}",
                    "customer_id": customer.id,
                    "total_fen": total_fen,
                    "paid_at": paid_at or self.clock.now() - timedelta(minutes=1),
                    "items": [{"sku": "SKU1", "amount_fen": total_fen}],
                }
            ),
            source=OrderSource.API,
            clock=self.clock,
        )
        assert outcome.order is not None, outcome
        return outcome.order

    def refund(self, order: Order, amount_fen: int) -> Refund:
        return refund_order(
            self.db,
            actor=Actor.system(self.ws.id),
            order_id=order.id,
            external_id=f"R{next(_seq)}",
            amount_fen=amount_fen,
            items=None,
            reason=None,
            refunded_at=self.clock.now(),
            clock=self.clock,
        )

    def balance(self, customer: Customer) -> int:
        member = self.db.scalar(select(Member).where(Member.customer_id == customer.id))
        return 0 if member is None else member.points_balance


def make_program(
    db: Session, *, actor: Actor, clock: Clock, status: ProgramStatus = ProgramStatus.ACTIVE, **values: Any
) -> ReferralProgram:
    """A program through the service (validation included), started unless `status` says otherwise."""
    data = ProgramIn.model_validate({"name": values.pop("name", f"老带新{next(_seq)}"), **values})
    program = programs.create_program(db, actor=actor, data=data, clock=clock)
    if status != ProgramStatus.DRAFT:
        programs.set_status(db, actor=actor, program_id=program.id, status=ProgramStatus.ACTIVE, clock=clock)
    if status not in (ProgramStatus.DRAFT, ProgramStatus.ACTIVE):
        programs.set_status(db, actor=actor, program_id=program.id, status=status, clock=clock)
    return program


def count(db: Session, model: Any, *where: Any) -> int:
    return int(db.scalar(select(func.count()).select_from(model).where(*where)) or 0)
