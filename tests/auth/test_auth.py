"""Users, passwords, memberships, roles and API tokens."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from siyu.auth import service
from siyu.auth.permissions import ROLE_SCOPES, Actor, Scope
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import Conflict, InvalidInput, Unauthenticated
from siyu.models import ApiToken, Role
from tests.factories import make_staff, make_store, make_user, make_workspace


def test_password_is_stored_as_argon2_and_checked(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    user = make_user(db, clock=clock, workspace=ws, email="Ops@Brand.cn", password="s3cret-pass")
    assert user.email == "ops@brand.cn"
    assert user.password_hash.startswith("$argon2id$")
    logged = service.authenticate_password(db, email="OPS@brand.cn", password="s3cret-pass", clock=clock)
    assert logged.id == user.id and logged.last_login_at == clock.now()
    with pytest.raises(Unauthenticated) as wrong:
        service.authenticate_password(db, email="ops@brand.cn", password="nope-nope", clock=clock)
    with pytest.raises(Unauthenticated) as unknown:
        service.authenticate_password(db, email="who@brand.cn", password="s3cret-pass", clock=clock)
    assert wrong.value.message == unknown.value.message == "wrong e-mail or password"


def test_user_input_is_validated(db: Session, clock: FrozenClock) -> None:
    with pytest.raises(InvalidInput) as bad_email:
        service.create_user(db, email="not-an-email", name="x", password="long-enough", clock=clock)
    assert bad_email.value.details == {"field": "email"}
    with pytest.raises(InvalidInput) as short:
        service.create_user(db, email="a@b.cn", name="x", password="short", clock=clock)
    assert short.value.details == {"field": "password"}
    service.create_user(db, email="a@b.cn", name="x", password="long-enough", clock=clock)
    with pytest.raises(Conflict):
        service.create_user(db, email="A@b.cn", name="x", password="long-enough", clock=clock)


def test_roles_need_their_staff_or_store_and_give_scoped_actors(db: Session, clock: FrozenClock) -> None:
    ws, other = make_workspace(db, clock=clock), make_workspace(db, clock=clock)
    store = make_store(db, workspace=ws)
    staff = make_staff(db, workspace=ws, clock=clock, store=store)
    foreign_staff = make_staff(db, workspace=other, clock=clock)
    user = make_user(db, clock=clock, workspace=ws, role=Role.ANALYST)
    with pytest.raises(InvalidInput):
        service.grant_membership(db, user_id=user.id, workspace_id=ws.id, role=Role.STAFF, clock=clock)
    with pytest.raises(InvalidInput):  # a staff member of another brand
        service.grant_membership(
            db, user_id=user.id, workspace_id=ws.id, role=Role.STAFF, staff_id=foreign_staff.id, clock=clock
        )
    service.grant_membership(db, user_id=user.id, workspace_id=ws.id, role=Role.STAFF, staff_id=staff.id, clock=clock)
    actor = service.actor_for_user(db, user=user, workspace_id=ws.id)
    assert (actor.role, actor.staff_id, actor.sees_whole_pool) == (Role.STAFF, staff.id, False)
    assert actor.scopes == frozenset(str(s) for s in ROLE_SCOPES[Role.STAFF])
    with pytest.raises(Unauthenticated):
        service.actor_for_user(db, user=user, workspace_id=other.id)
    service.grant_membership(
        db,
        user_id=user.id,
        workspace_id=other.id,
        role=Role.STORE_MANAGER,
        store_id=make_store(db, workspace=other).id,
        clock=clock,
    )
    roles = {w.id: m.role for m, w in service.memberships_of(db, user.id)}
    assert roles == {ws.id: Role.STAFF, other.id: Role.STORE_MANAGER}


def test_tokens_are_hashed_scoped_expiring_and_revocable(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    admin = Actor.system(ws.id)
    issued = service.create_token(
        db,
        workspace_id=ws.id,
        name="erp",
        scopes=["customers:read"],
        actor=admin,
        clock=clock,
        expires_at=clock.now() + timedelta(days=1),
    )
    row = db.get(ApiToken, issued.token.id)
    assert row is not None and issued.secret not in (row.token_hash, row.prefix) and len(row.token_hash) == 64
    actor = service.actor_for_token(db, secret=issued.secret, clock=clock)
    assert (actor.workspace_id, actor.scopes) == (ws.id, frozenset({"customers:read"}))
    assert not actor.can(Scope.CUSTOMERS_WRITE)
    clock.advance(timedelta(days=2))
    with pytest.raises(Unauthenticated):
        service.actor_for_token(db, secret=issued.secret, clock=clock)
    fresh = service.create_token(
        db, workspace_id=ws.id, name="crm", scopes=["customers:read"], actor=admin, clock=clock
    )
    service.revoke_token(db, token_id=fresh.token.id, actor=admin, clock=clock)
    with pytest.raises(Unauthenticated):
        service.actor_for_token(db, secret=fresh.secret, clock=clock)


def test_nobody_grants_a_scope_they_lack(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    operator = Actor(kind="user", workspace_id=ws.id, label="op", scopes=frozenset({"customers:read", "tokens:admin"}))
    with pytest.raises(InvalidInput) as err:
        service.create_token(db, workspace_id=ws.id, name="x", scopes=["customers:erase"], actor=operator, clock=clock)
    assert err.value.details == {"field": "scopes"}
    with pytest.raises(InvalidInput):
        service.create_token(db, workspace_id=ws.id, name="x", scopes=["root"], actor=None, clock=clock)
