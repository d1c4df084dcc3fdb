"""Staff see only the customers they own; store managers those of their store's staff."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from siyu.customers import repository
from siyu.customers.errors import CustomerNotFound
from siyu.customers.repository import CustomerFilter
from siyu.customers.service.profile import ProfileInput, update_customer
from siyu.kit.clock import FrozenClock
from siyu.models import Role
from tests.factories import actor_for, make_customer, make_staff, make_store, make_workspace


def test_staff_and_store_manager_views(db: Session, clock: FrozenClock) -> None:
    # given two stores, a staff member in each, and a customer owned by each plus an unowned one
    ws = make_workspace(db, clock=clock)
    admin = actor_for(ws)
    north, south = make_store(db, workspace=ws), make_store(db, workspace=ws)
    amy, bob = (
        make_staff(db, workspace=ws, clock=clock, store=north),
        make_staff(db, workspace=ws, clock=clock, store=south),
    )
    amys = make_customer(db, actor=admin, clock=clock, owner_staff_id=amy.id).customer
    bobs = make_customer(db, actor=admin, clock=clock, owner_staff_id=bob.id).customer
    nobodys = make_customer(db, actor=admin, clock=clock).customer
    staff = actor_for(ws, role=Role.STAFF, staff_id=amy.id)
    manager = actor_for(ws, role=Role.STORE_MANAGER, store_id=south.id)

    def visible(actor: object) -> set[int]:
        return {c.id for c in repository.list_customers(db, actor, CustomerFilter()).items}  # type: ignore[arg-type]

    # then each sees exactly their share, and counts agree
    assert visible(admin) == {amys.id, bobs.id, nobodys.id}
    assert visible(staff) == {amys.id}
    assert visible(manager) == {bobs.id}
    assert repository.count_customers(db, staff, CustomerFilter()) == 1
    # and nobody reads or edits outside it
    with pytest.raises(CustomerNotFound):
        repository.get_visible(db, staff, bobs.id)
    with pytest.raises(CustomerNotFound):
        update_customer(db, actor=manager, customer_id=amys.id, profile=ProfileInput(values={"name": "x"}), clock=clock)
    assert amys.name is None
    # a staff login without a staff row sees nobody
    assert visible(actor_for(ws, role=Role.STAFF, staff_id=None)) == set()
