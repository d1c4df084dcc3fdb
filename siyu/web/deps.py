"""Request dependencies: the transaction, the acting principal, and the clock.

The transaction dependency commits when the handler returns and rolls back when it raises
(`scope="function"`, so the commit happens before the response is sent); jobs enqueued during
the request go to the broker only after that commit.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from siyu.auth import service as auth_service
from siyu.auth.permissions import Actor, Scope
from siyu.config import Settings
from siyu.db import Database
from siyu.kit.clock import Clock
from siyu.kit.errors import PermissionDenied, Unauthenticated
from siyu.kit.ids import MAX_ID
from siyu.models import User
from siyu.workspaces.scope import bind_workspace

IdPath = Annotated[int, Path(gt=0, le=MAX_ID, description="Row id.")]
"""An id in a URL path: out-of-range ids are a 422, never sent to the database."""

READ_METHODS = {"GET", "HEAD", "OPTIONS"}
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)


@dataclass
class Ctx:
    """What a handler needs: a session scoped to the actor's workspace, the actor and the clock."""

    session: Session
    actor: Actor
    clock: Clock
    settings: Settings


def database(request: Request) -> Database:
    db: Database = request.app.state.database
    return db


def clock_of(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthenticated("missing bearer token (Authorization: Bearer siyu_…)")
    return value.strip()


def api_transaction(request: Request) -> Iterator[Ctx]:
    """Authenticate the bearer token and open a transaction scoped to its workspace.

    The token's last use is recorded after the request's own commit and at most once a minute,
    so a busy read-only client takes SQLite's write lock once a minute, not on every request.
    """
    db = database(request)
    clock = clock_of(request)
    secret = _bearer(request)
    session = db.session(read_only=request.method in READ_METHODS)
    try:
        actor, last_used = auth_service.resolve_token(session, secret=secret, clock=clock)
        bind_workspace(session, actor.workspace_id)
        request.state.actor = actor
        yield Ctx(session=session, actor=actor, clock=clock, settings=request.app.state.settings)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
    if actor.token_id is not None and (last_used is None or clock.now() - last_used > TOKEN_TOUCH_INTERVAL):
        with db.transaction() as touch:
            auth_service.touch_token(touch, token_id=actor.token_id, clock=clock, interval=TOKEN_TOUCH_INTERVAL)


ApiCtx = Annotated[Ctx, Depends(api_transaction, scope="function")]


def require(scope: Scope) -> Callable[..., Ctx]:
    """A dependency giving the context if the token holds `scope`, else 403."""

    def dependency(ctx: ApiCtx) -> Ctx:
        ctx.actor.require(scope)
        return ctx

    return dependency


# --- console (session cookie) -----------------------------------------------------------------


class LoginRequired(Exception):
    """Raised by console dependencies; answered with a redirect to the login page."""


@dataclass(frozen=True)
class ConsoleUser:
    """The logged-in user, as shown in the console chrome."""

    id: int
    name: str
    email: str


@dataclass(frozen=True)
class WorkspaceChoice:
    """A workspace the logged-in user may switch to."""

    id: int
    name: str
    timezone: str


def csrf_token(request: Request) -> str:
    """The session's CSRF token (created on first use)."""
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(24)
        request.session["csrf"] = token
    return str(token)


async def check_csrf(request: Request) -> None:
    """Unsafe console requests must echo the session's CSRF token (form field or HTMX header)."""
    if request.method in READ_METHODS:
        return
    sent = request.headers.get("x-csrf-token")
    if not sent:
        form = await request.form()
        value = form.get("csrf_token")
        sent = value if isinstance(value, str) else None
    expected = request.session.get("csrf")
    if not expected or not sent or not secrets.compare_digest(str(expected), sent):
        raise PermissionDenied("CSRF token missing or wrong; reload the page and try again")


def console_transaction(request: Request, _csrf: Annotated[None, Depends(check_csrf)]) -> Iterator[Ctx]:
    """The logged-in user in their current workspace, with a transaction scoped to it."""
    db = database(request)
    clock = clock_of(request)
    user_id = request.session.get("user_id")
    workspace_id = request.session.get("workspace_id")
    if not user_id or not workspace_id:
        raise LoginRequired()
    session = db.session(read_only=request.method in READ_METHODS)
    try:
        user = session.get(User, int(user_id))
        if user is None or not user.is_active:
            request.session.clear()
            raise LoginRequired()
        try:
            actor = auth_service.actor_for_user(session, user=user, workspace_id=int(workspace_id))
        except Unauthenticated:
            request.session.clear()
            raise LoginRequired() from None
        # Read before binding: memberships are workspace-scoped rows. Plain values, so error
        # pages rendered after a rollback never touch expired ORM objects.
        request.state.workspaces = [
            WorkspaceChoice(id=w.id, name=w.name, timezone=w.timezone)
            for _m, w in auth_service.memberships_of(session, user.id)
        ]
        bind_workspace(session, actor.workspace_id)
        request.state.actor = actor
        request.state.user = ConsoleUser(id=user.id, name=user.name, email=user.email)
        yield Ctx(session=session, actor=actor, clock=clock, settings=request.app.state.settings)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


ConsoleCtx = Annotated[Ctx, Depends(console_transaction, scope="function")]


async def submitted_form(request: Request) -> FormData:
    """The parsed form of a console POST, read before a sync handler runs.

    Handlers that touch the database must be sync (`def`): they run in the thread pool, and a
    write waiting for the SQLite writer lock there never blocks the event loop that the lock
    holder needs to finish its request.
    """
    return await request.form()


FormDep = Annotated[FormData, Depends(submitted_form)]
