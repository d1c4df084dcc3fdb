"""Shared set-up of the referral page tests (posters, /r/{code}, H5, console): a running program
behind a staff live code, and a member with a code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.kit.clock import Clock
from siyu.models import Customer, LiveCode, Workspace
from siyu.models.referral import ReferralCode, ReferralProgram
from siyu.referrals import codes, programs
from siyu.referrals.schemas import ProgramIn
from tests.factories import make_customer, make_live_code, make_staff, make_workspace


@dataclass
class World:
    workspace: Workspace
    live_code: LiveCode
    program: ReferralProgram
    referrer: Customer
    code: ReferralCode


def make_program(
    db: Session, *, workspace: Workspace, clock: Clock, live_code: LiveCode | None, active: bool = True, **fields: Any
) -> ReferralProgram:
    """A program through the service (validated), started unless `active=False`."""
    actor = Actor.system(workspace.id)
    values: dict[str, Any] = {"name": "老带新", "condition": "first_order", "referrer_reward": {"points": 200}}
    values.update(fields)
    if live_code is not None:
        values["live_code_id"] = live_code.id
    program = programs.create_program(db, actor=actor, data=ProgramIn.model_validate(values), clock=clock)
    if active:
        programs.set_status(db, actor=actor, program_id=program.id, status="active", clock=clock)
    return program


def make_world(db: Session, *, clock: Clock, name: str = "王芳", **fields: Any) -> World:
    """花间集 with a staff live code, a running 老带新 program (200 points per first order) and 王芳's code."""
    workspace = make_workspace(db, clock=clock, name="花间集")
    actor = Actor.system(workspace.id)
    staff = make_staff(db, workspace=workspace, clock=clock, name="小李")
    live_code = make_live_code(db, workspace=workspace, clock=clock, routes=[{"staff_id": staff.id}])
    program = make_program(db, workspace=workspace, clock=clock, live_code=live_code, **fields)
    referrer = make_customer(db, actor=actor, clock=clock, name=name, phone="13800138000").customer
    code = codes.code_for(db, workspace_id=workspace.id, program_id=program.id, customer_id=referrer.id, clock=clock)
    db.commit()
    return World(workspace, live_code, program, referrer, code)
