"""A workspace on the fake corp with a staff member and one of her customers (an open friend edge)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.kit.clock import Clock
from siyu.models import Customer, IdentityType, Relationship, Staff
from tests.factories import make_customer, make_relationship
from tests.integrations.wecom.helpers import WecomSetup, wecom_staff, wecom_workspace


@dataclass
class SidebarSetup:
    setup: WecomSetup
    staff: Staff
    customer: Customer
    external_userid: str
    edge: Relationship


def sidebar_setup(db: Session, *, clock: Clock, fake: RunningFake, userid: str = "zhangli") -> SidebarSetup:
    """张丽 (userid `zhangli`) and her friend 王芳 (external_userid `wmWangFang…`)."""
    setup = wecom_workspace(db, clock=clock, fake=fake)
    staff = wecom_staff(db, setup, clock=clock, userid=userid, name="张丽")
    external = f"wm{setup.workspace.id}WangFang"
    customer = make_customer(
        db,
        actor=Actor.system(setup.workspace.id),
        clock=clock,
        name="王芳",
        identities=[(IdentityType.WECOM_EXTERNAL_USERID, external)],
    ).customer
    edge = make_relationship(db, customer=customer, staff=staff, added_at=clock.now() - timedelta(days=3))
    setup.corp.contacts[external] = {"external_userid": external, "name": "王芳", "type": 1}
    setup.corp.follows[f"{external}|{userid}"] = {"userid": userid, "createtime": 0, "tags": []}
    return SidebarSetup(setup, staff, customer, external, edge)
