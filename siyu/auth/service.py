"""Users, memberships and API tokens: the rules for who may log in and with what."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.passwords import hash_password, needs_rehash, verify_password
from siyu.auth.permissions import ALL_SCOPES, ROLE_SCOPES, Actor, Scope
from siyu.kit.clock import Clock
from siyu.kit.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from siyu.kit.ids import random_token, sha256_hex
from siyu.models import ApiToken, Membership, Role, Staff, Store, User, Workspace

TOKEN_PREFIX = "siyu_"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD_LENGTH = 8


def create_user(session: Session, *, email: str, name: str, password: str, clock: Clock) -> User:
    """Create a console user (no workspace access until a membership is added)."""
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise InvalidInput("invalid e-mail address", details={"field": "email"})
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"password must have at least {MIN_PASSWORD_LENGTH} characters", details={"field": "password"}
        )
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict("a user with this e-mail exists", details={"field": "email"})
    user = User(email=email, name=name.strip() or email, password_hash=hash_password(password), created_at=clock.now())
    session.add(user)
    session.flush()
    return user


def grant_membership(
    session: Session,
    *,
    user_id: int,
    workspace_id: int,
    role: Role,
    clock: Clock,
    staff_id: int | None = None,
    store_id: int | None = None,
) -> Membership:
    """Give `user_id` a role in a workspace, or change the role it has."""
    if role is Role.STAFF and staff_id is None:
        raise InvalidInput("role staff needs a staff member", details={"field": "staff_id"})
    if role is Role.STORE_MANAGER and store_id is None:
        raise InvalidInput("role store_manager needs a store", details={"field": "store_id"})
    if (
        staff_id is not None
        and session.scalar(select(Staff.id).where(Staff.id == staff_id, Staff.workspace_id == workspace_id)) is None
    ):
        raise InvalidInput("unknown staff member", details={"field": "staff_id"})
    if (
        store_id is not None
        and session.scalar(select(Store.id).where(Store.id == store_id, Store.workspace_id == workspace_id)) is None
    ):
        raise InvalidInput("unknown store", details={"field": "store_id"})
    membership = session.scalar(
        select(Membership).where(Membership.user_id == user_id, Membership.workspace_id == workspace_id)
    )
    if membership is None:
        membership = Membership(user_id=user_id, workspace_id=workspace_id, created_at=clock.now())
        session.add(membership)
    membership.role = role
    membership.staff_id = staff_id if role is Role.STAFF else None
    membership.store_id = store_id if role is Role.STORE_MANAGER else None
    session.flush()
    return membership


def authenticate_password(session: Session, *, email: str, password: str, clock: Clock) -> User:
    """Check a console login; the same error whether the e-mail or the password is wrong."""
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None or not user.is_active or not verify_password(user.password_hash, password):
        raise Unauthenticated("wrong e-mail or password")
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = clock.now()
    session.flush()
    return user


def memberships_of(session: Session, user_id: int) -> list[tuple[Membership, Workspace]]:
    """The workspaces a user may enter, with the role in each, by workspace name."""
    rows = session.execute(
        select(Membership, Workspace)
        .join(Workspace, Workspace.id == Membership.workspace_id)
        .where(Membership.user_id == user_id)
        .order_by(Workspace.name)
    ).all()
    return [(m, w) for m, w in rows]


def actor_for_user(session: Session, *, user: User, workspace_id: int) -> Actor:
    """The actor a console user is inside one workspace; 401 if they have no role there."""
    membership = session.scalar(
        select(Membership).where(Membership.user_id == user.id, Membership.workspace_id == workspace_id)
    )
    if membership is None or not user.is_active:
        raise Unauthenticated("no access to this workspace")
    role = Role(membership.role)
    return Actor(
        kind="user",
        workspace_id=workspace_id,
        label=user.email,
        scopes=frozenset(str(s) for s in ROLE_SCOPES[role]),
        user_id=user.id,
        role=role,
        staff_id=membership.staff_id,
        store_id=membership.store_id,
    )


@dataclass
class IssuedToken:
    token: ApiToken
    secret: str
    """The full bearer value; shown once, never stored."""


def create_token(
    session: Session,
    *,
    workspace_id: int,
    name: str,
    scopes: list[str],
    actor: Actor | None,
    clock: Clock,
    expires_at: datetime | None = None,
) -> IssuedToken:
    """Issue an API token for one workspace with the given scopes."""
    unknown = sorted(set(scopes) - {str(s) for s in ALL_SCOPES})
    if unknown:
        raise InvalidInput(f"unknown scopes: {', '.join(unknown)}", details={"field": "scopes"})
    if not scopes:
        raise InvalidInput("a token needs at least one scope", details={"field": "scopes"})
    if actor is not None and actor.kind != "system":
        # Nobody hands out more than they hold.
        excess = sorted(set(scopes) - set(actor.scopes))
        if excess:
            raise InvalidInput(f"cannot grant scopes you do not hold: {', '.join(excess)}", details={"field": "scopes"})
    secret = TOKEN_PREFIX + random_token(30)
    token = ApiToken(
        workspace_id=workspace_id,
        name=name.strip() or "token",
        prefix=secret[:12],
        token_hash=sha256_hex(secret),
        scopes=sorted(set(scopes)),
        created_by_user_id=actor.user_id if actor else None,
        created_at=clock.now(),
        expires_at=expires_at,
    )
    session.add(token)
    session.flush()
    if actor is not None:
        record(
            session,
            actor,
            action="create",
            entity_type="api_token",
            entity_id=token.id,
            after={"name": token.name, "scopes": token.scopes},
            clock=clock,
        )
    return IssuedToken(token=token, secret=secret)


def revoke_token(session: Session, *, token_id: int, actor: Actor, clock: Clock) -> ApiToken:
    """Revoke a token of the actor's workspace; it stops working at once."""
    token = session.scalar(select(ApiToken).where(ApiToken.id == token_id, ApiToken.workspace_id == actor.workspace_id))
    if token is None:
        raise NotFound("token not found")
    if token.revoked_at is None:
        token.revoked_at = clock.now()
        record(
            session,
            actor,
            action="revoke",
            entity_type="api_token",
            entity_id=token.id,
            before={"revoked_at": None},
            after={"revoked_at": token.revoked_at.isoformat()},
            clock=clock,
        )
    session.flush()
    return token


def resolve_token(session: Session, *, secret: str, clock: Clock) -> tuple[Actor, datetime | None]:
    """Resolve a bearer token to its actor and when it was last used; 401 for unknown, revoked or
    expired tokens. Reads only: recording the use is `touch_token`'s job.
    """
    if not secret.startswith(TOKEN_PREFIX):
        raise Unauthenticated("invalid API token")
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == sha256_hex(secret)))
    now = clock.now()
    if token is None or token.revoked_at is not None or (token.expires_at and token.expires_at <= now):
        raise Unauthenticated("invalid, revoked or expired API token")
    actor = Actor(
        kind="token",
        workspace_id=token.workspace_id,
        label=f"token:{token.name}",
        scopes=frozenset(token.scopes),
        token_id=token.id,
    )
    return actor, token.last_used_at


def actor_for_token(session: Session, *, secret: str, clock: Clock) -> Actor:
    """The actor of a bearer token (see `resolve_token`)."""
    return resolve_token(session, secret=secret, clock=clock)[0]


def touch_token(session: Session, *, token_id: int, clock: Clock, interval: timedelta) -> None:
    """Record a token's use, at most once per `interval` (one conditional UPDATE)."""
    now = clock.now()
    session.execute(
        update(ApiToken)
        .where(ApiToken.id == token_id)
        .where((ApiToken.last_used_at.is_(None)) | (ApiToken.last_used_at < now - interval))
        .values(last_used_at=now)
    )


def scope_names() -> list[str]:
    return sorted(str(s) for s in Scope)


# --- workspace members (console settings) -------------------------------------------------------


def list_members(session: Session, *, workspace_id: int) -> list[tuple[Membership, User]]:
    """The users with a role in a workspace, by e-mail."""
    rows = session.execute(
        select(Membership, User)
        .join(User, User.id == Membership.user_id)
        .where(Membership.workspace_id == workspace_id)
        .order_by(User.email)
    ).all()
    return [(m, u) for m, u in rows]


def add_member(
    session: Session,
    *,
    actor: Actor,
    email: str,
    name: str,
    password: str | None,
    role: Role,
    clock: Clock,
    staff_id: int | None = None,
    store_id: int | None = None,
) -> Membership:
    """Give a user a role in the actor's workspace (admins only), creating the user if the e-mail is new.

    An existing user (e.g. an agency operator already in another brand) keeps their password.
    """
    actor.require(Scope.USERS_ADMIN)
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        if password is None:
            raise InvalidInput("a new user needs a password", details={"field": "password"})
        user = create_user(session, email=email, name=name, password=password, clock=clock)
    elif session.scalar(
        select(Membership.id).where(Membership.user_id == user.id, Membership.workspace_id == actor.workspace_id)
    ):
        # Already a member here: a role change, with its rules (the last admin stays admin).
        return change_role(
            session, actor=actor, user_id=user.id, role=role, clock=clock, staff_id=staff_id, store_id=store_id
        )
    membership = grant_membership(
        session,
        user_id=user.id,
        workspace_id=actor.workspace_id,
        role=role,
        staff_id=staff_id,
        store_id=store_id,
        clock=clock,
    )
    record(
        session,
        actor,
        action="create",
        entity_type="membership",
        entity_id=membership.id,
        after={"email": user.email, "role": str(role), "staff_id": staff_id, "store_id": store_id},
        clock=clock,
    )
    return membership


def _other_admins(session: Session, workspace_id: int, user_id: int) -> int:
    return len(
        session.scalars(
            select(Membership.id).where(
                Membership.workspace_id == workspace_id, Membership.role == Role.ADMIN, Membership.user_id != user_id
            )
        ).all()
    )


def change_role(
    session: Session,
    *,
    actor: Actor,
    user_id: int,
    role: Role,
    clock: Clock,
    staff_id: int | None = None,
    store_id: int | None = None,
) -> Membership:
    """Change a member's role in the actor's workspace; the last admin keeps the admin role."""
    actor.require(Scope.USERS_ADMIN)
    membership = session.scalar(
        select(Membership).where(Membership.user_id == user_id, Membership.workspace_id == actor.workspace_id)
    )
    if membership is None:
        raise NotFound("member not found")
    before = {"role": str(membership.role), "staff_id": membership.staff_id, "store_id": membership.store_id}
    if (
        membership.role == Role.ADMIN
        and role is not Role.ADMIN
        and _other_admins(session, actor.workspace_id, user_id) == 0
    ):
        raise Conflict("the workspace needs at least one admin", details={"field": "role"})
    membership = grant_membership(
        session,
        user_id=user_id,
        workspace_id=actor.workspace_id,
        role=role,
        staff_id=staff_id,
        store_id=store_id,
        clock=clock,
    )
    record(
        session,
        actor,
        action="update",
        entity_type="membership",
        entity_id=membership.id,
        before=before,
        after={"role": str(role), "staff_id": membership.staff_id, "store_id": membership.store_id},
        clock=clock,
    )
    return membership


def remove_member(session: Session, *, actor: Actor, user_id: int, clock: Clock) -> None:
    """Take a user's access to the actor's workspace away (their other workspaces stay)."""
    actor.require(Scope.USERS_ADMIN)
    if user_id == actor.user_id:
        raise Conflict("you cannot remove your own access", details={"field": "user_id"})
    membership = session.scalar(
        select(Membership).where(Membership.user_id == user_id, Membership.workspace_id == actor.workspace_id)
    )
    if membership is None:
        raise NotFound("member not found")
    if membership.role == Role.ADMIN and _other_admins(session, actor.workspace_id, user_id) == 0:
        raise Conflict("the workspace needs at least one admin", details={"field": "user_id"})
    before = {"user_id": user_id, "role": str(membership.role)}
    membership_id = membership.id
    session.delete(membership)
    session.flush()
    record(
        session,
        actor,
        action="delete",
        entity_type="membership",
        entity_id=membership_id,
        before=before,
        clock=clock,
    )


def list_tokens(session: Session, *, workspace_id: int) -> list[ApiToken]:
    """The workspace's API tokens, newest first (revoked ones included)."""
    return list(
        session.scalars(select(ApiToken).where(ApiToken.workspace_id == workspace_id).order_by(ApiToken.id.desc()))
    )
