"""Every unsafe console route, and every member H5 form, refuses a request without its CSRF token."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from starlette.routing import BaseRoute

from siyu.app import create_app
from siyu.config import Settings
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.loyalty.h5.public import router as member_h5
from siyu.models import ApiToken
from siyu.web.console import router as console
from tests.factories import make_user, make_workspace
from tests.loyalty.h5.conftest import sign_in as h5_sign_in
from tests.loyalty.h5.factories import make_loyalty, make_member
from tests.web.conftest import PASSWORD, login

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
_PARAM = re.compile(r"\{[^}]+\}")


def unsafe_routes(routes: Sequence[BaseRoute]) -> list[tuple[str, str]]:
    """(method, path) of every unsafe route among `routes`, path parameters set to 1."""
    found = set()
    for context in iter_route_contexts(routes):
        if isinstance(context.original_route, APIRoute):
            for method in (context.methods or set()) & UNSAFE:
                found.add((method, _PARAM.sub("1", str(context.path))))
    return sorted(found)


@pytest.fixture
def signed_in(settings: Settings, database: Database, clock: FrozenClock, db: Session) -> Iterator[TestClient]:
    """An admin's browser, signed in (the session holds a CSRF token)."""
    workspace = make_workspace(db, clock=clock)
    make_user(db, clock=clock, workspace=workspace, email="admin@example.com", password=PASSWORD)
    db.commit()
    app = create_app(settings, database=database, clock=clock, run_worker=False)
    with TestClient(app, follow_redirects=False) as client:
        client.csrf = login(client, "admin@example.com")  # type: ignore[attr-defined]
        yield client


def test_the_console_has_many_unsafe_routes() -> None:
    routes = unsafe_routes(console.routes)
    assert len(routes) > 100
    assert ("POST", "/logout") in routes and ("POST", "/settings/tokens/1/revoke") in routes


def test_every_unsafe_console_route_refuses_a_request_without_the_token(signed_in: TestClient, db: Session) -> None:
    answers = {}
    for n, (method, path) in enumerate(unsafe_routes(console.routes)):
        answers[(method, path)] = signed_in.request(method, path, data={"name": "x"}).status_code
        if n % 10 == 0:  # a wrong token on a sample of them (the same comparison serves every route)
            wrong = signed_in.request(method, path, data={"csrf_token": "forged"}, headers={"x-csrf-token": "forged"})
            answers[(method, path + " (wrong token)")] = wrong.status_code
    # the sign-in form answers a stale token itself (400, the form again); everything else is a 403
    expected = {route: 400 if route[1].startswith("/login") else 403 for route in answers}
    assert answers == expected
    # and nothing was written: no token issued, the session still signed in
    assert db.query(ApiToken).count() == 0
    assert signed_in.get("/settings/tokens").status_code == 200


def test_the_token_in_the_form_or_the_htmx_header_is_accepted(signed_in: TestClient, db: Session) -> None:
    token = signed_in.csrf  # type: ignore[attr-defined]
    issued = signed_in.post("/settings/tokens", data={"name": "erp", "scopes": ["customers:read"], "csrf_token": token})
    assert issued.status_code == 201
    token_id = db.query(ApiToken).one().id
    revoked = signed_in.post(f"/settings/tokens/{token_id}/revoke", headers={"x-csrf-token": token})
    assert revoked.status_code == 303
    assert signed_in.post("/locale", data={"locale": "en", "csrf_token": token}).status_code == 303
    assert signed_in.post("/logout", data={"csrf_token": token}).status_code == 303
    assert signed_in.get("/settings/tokens").headers["location"] == "/login?next=/settings/tokens"


def test_every_member_h5_form_refuses_a_post_without_the_member_token(
    settings: Settings, database: Database, clock: FrozenClock, db: Session
) -> None:
    # given a member signed in on their phone through a link
    setup = make_loyalty(db, clock=clock)
    customer, _member = make_member(db, workspace=setup.workspace, clock=clock, points=500)
    db.commit()
    app = create_app(settings, database=database, clock=clock, run_worker=False)
    with TestClient(app, follow_redirects=False) as phone:
        h5_sign_in(phone, setup.workspace.id, customer.id, clock)
        routes = unsafe_routes(member_h5.routes)
        assert ("POST", "/m/check-in") in routes and len(routes) > 10
        # when every form is posted without the session's token, then each is refused and nothing moves
        answers = {route: phone.request(*route, data={"name": "x"}).status_code for route in routes}
        assert answers == dict.fromkeys(routes, 403)
        assert 'data-testid="points-balance">500<' in phone.get("/m/").text
