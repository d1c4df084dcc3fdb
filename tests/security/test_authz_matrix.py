"""Every API route × every role, and every console page × every role: allowed or 403 exactly as
ROLE_SCOPES predicts; no token → 401; a route without a scope check must be deliberately public.

The routes come from the app itself, so a new route is covered the day it is added. The scope a
route needs is read from its `require(scope)` dependency and from the `Actor.require` calls its
handler makes when an admin calls it (handlers that check in their body). These tests are about
routing, not SQL: they run on SQLite only, to stay inside the suite's time budget.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx2
import pytest
from sqlalchemy import Engine

from siyu.auth.permissions import ROLE_SCOPES, Scope
from siyu.models import Role
from tests.security.conftest import ROLES, Route, ScopeRecorder, World, fill_path, role_may, route_table

DOC = Path(__file__).resolve().parents[2] / "docs" / "authorization.md"

PUBLIC_API_ROUTES: dict[str, str] = {
    "GET /api/v1/segments/schema": "the JSON Schema of a segment definition: static documentation, no workspace data",
}
"""API routes anyone may call, without a token."""

ANY_TOKEN_API_ROUTES: dict[str, str] = {
    "GET /api/v1/me": "who the token itself is: its workspace id and scopes",
    "GET /api/v1/workspace": "the token's own workspace: name, slug, time zone, OneID survivorship rules",
}
"""API routes any valid token may call, whatever its scopes."""

SERVICE_CHECKED_API_ROUTES: dict[str, tuple[Scope, str]] = {
    "GET /api/v1/staff-tasks": (Scope.TOUCH_READ, "a staff member sees their own tasks; anyone else needs touch:read"),
    "POST /api/v1/staff-tasks/{task_id}/done": (
        Scope.TOUCH_WRITE,
        "a staff member completes their own tasks; anyone else needs touch:write",
    ),
}
"""Routes whose service decides with `actor.can` (the staff member's own rows, or the scope): the
scope a token (which is never a staff member) needs."""

BODIES: dict[str, dict[str, object]] = {
    "POST /api/v1/add-tasks/{task_id}/status": {"status": "requested"},
}
"""Bodies for routes whose scope check comes after body validation (an empty body never reaches it)."""

ANY_LOGIN_PAGES: dict[str, str] = {}

STAFF_OWN_PAGES: dict[str, str] = {
    "/add-tasks": "a staff member is sent on to their own add-by-phone tasks",
    "/add-tasks/mine": "a staff member's own add-by-phone tasks",
    "/journeys/tasks": "a staff member's own SOP tasks",
}
"""Console pages a staff member opens for their own rows, whatever the page's scope."""

SERVICE_CHECKED_PAGES: dict[str, Scope] = {"/journeys/tasks": Scope.TOUCH_READ}
"""Pages whose service decides with `actor.can`: the scope anyone but a staff member needs."""

PAGE_QUERIES: dict[str, str] = {
    "/imports/mapping": "?upload=0123456789abcdef",
    "/growth/commission/export": "?period_start=2026-11-01&period_end=2026-11-30",
}
"""Query strings for pages that need one to reach their scope check."""
"""Console pages any logged-in user may open, whatever their role."""

PUBLIC_PREFIXES: dict[str, str] = {
    "/healthz": "liveness probe, no data",
    "/readyz": "readiness probe: database and broker reachable, no data",
    "/openapi.json": "the API's schema",
    "/docs": "the API's documentation",
    "/redoc": "the API's documentation",
    "/metrics": "Prometheus metrics (protected at the network edge)",
    "/login": "the sign-in form",
    "/logout": "signing out (CSRF-checked)",
    "/locale": "choosing the console language (CSRF-checked)",
    "/integrations/wecom/callback": "WeCom callbacks: signed and encrypted with the corp's token",
    "/integrations/wechat/callback": "official-account callbacks: signed with the account's token",
    "/integrations/messaging/": "delivery-status callbacks: authenticated by the channel account's secret",
    "/hooks/orders/": "the order webhook: HMAC-signed with the workspace's secret",
    "/h5/wechat/": "official-account OAuth for member H5 pages",
    "/sidebar": "the WeCom sidebar: WeCom OAuth identifies the staff member",
    "/m/": "member H5 pages: the member's own session",
    "/r/": "referral landing pages (public by design)",
    "/q/": "live-code landing pages (public by design)",
    "/s/": "short-link redirects (public by design)",
    "/u/": "unsubscribe links: a signed per-recipient token",
    "/lottery/": "a draw's public verification page (commit-reveal proof)",
}
"""Non-API routes that do not use the console login, each with why that is right."""


@pytest.fixture(autouse=True)
def _sqlite_only(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("authorisation routing is backend-independent; SQLite only for the time budget")


BODY_METHODS = {"POST", "PUT", "PATCH"}


def _call(world: World, route: Route, path: str, headers: dict[str, str] | None = None) -> httpx2.Response:
    """The route with a real object's path and an empty JSON object as body (422 counts as allowed)."""
    if route.method in BODY_METHODS:
        return world.request(route.method, path, json=BODIES.get(route.key, {}), headers=headers)
    return world.request(route.method, path, headers=headers)


def _probe(world: World, route: Route, headers: dict[str, str] | None = None) -> httpx2.Response:
    """The route with id 0 in every path parameter and a JSON array as body: FastAPI runs the
    route's dependencies (the scope check) before it validates parameters and body, so this is 403
    without the scope and 422 with it, and the handler never runs (the matrix stays fast)."""
    path = re.sub(r"{[^}]+}", "0", route.path)
    if route.method in BODY_METHODS:
        return world.request(route.method, path, json=[], headers=headers)
    return world.request(route.method, path, headers=headers)


def test_every_api_route_answers_each_role_as_role_scopes_predict(world: World, recorder: ScopeRecorder) -> None:
    routes = [r for r in route_table(world.app) if r.path.startswith("/api/")]
    world.api()
    failures: list[str] = []
    for route in routes:
        path, _real = fill_path(route, world.a)
        # The admin calls it for real: the handler runs, and the scopes it checks are recorded.
        with world.isolated(), recorder.recording() as asked:
            answers = {Role.ADMIN: _call(world, route, path, world.a.headers(Role.ADMIN)).status_code}
        declared = {str(route.declared_scope)} if route.declared_scope else set()
        required = set(asked) | declared
        if route.key in SERVICE_CHECKED_API_ROUTES:
            required.add(str(SERVICE_CHECKED_API_ROUTES[route.key][0]))
        if not required and route.key not in PUBLIC_API_ROUTES and route.key not in ANY_TOKEN_API_ROUTES:
            failures.append(f"{route.key}: checks no scope and is not on an allow-list")
        # Where the declared scope is the whole check and the route has parameters or a body to
        # refuse, the other roles are probed; handlers that check in their body run for every role.
        probe = bool(declared) and required <= declared and (bool(route.params) or route.method in BODY_METHODS)
        for role in ROLES:
            if role not in answers:
                headers = world.a.headers(role)
                if probe:  # the handler never runs: nothing to roll back
                    answers[role] = _probe(world, route, headers).status_code
                else:
                    with world.isolated():
                        answers[role] = _call(world, route, path, headers).status_code
            status, allowed = answers[role], role_may(role, required)
            if status >= 500:
                failures.append(f"{route.key} as {role}: {status}")
            elif allowed and status in (401, 403):
                failures.append(f"{route.key} as {role}: {status}, but {role} holds {sorted(required)}")
            elif not allowed and status != 403:
                failures.append(f"{route.key} as {role}: {status}, expected 403 (needs {sorted(required)})")
        if route.key in PUBLIC_API_ROUTES:
            with world.isolated():
                anonymous = _call(world, route, path).status_code
            if anonymous in (401, 403) or anonymous >= 500:
                failures.append(f"{route.key} without a token: {anonymous}, expected it to be public")
        elif (anonymous := _probe(world, route).status_code) != 401:
            failures.append(f"{route.key} without a token: {anonymous}, expected 401")
    assert len(routes) >= len(PUBLIC_API_ROUTES) + len(ANY_TOKEN_API_ROUTES)
    assert not failures, "\n".join(failures)


def test_every_console_page_answers_each_role_as_role_scopes_predict(world: World, recorder: ScopeRecorder) -> None:
    # Pages without path parameters (pages naming one object are covered per object kind by
    # test_cross_workspace.py and, for customers, by test_staff_visibility.py).
    pages = [r for r in route_table(world.app) if r.uses_console_auth and r.method == "GET" and not r.params]
    failures: list[str] = []
    for page in pages:
        path = page.path + PAGE_QUERIES.get(page.path, "")
        with world.isolated(), recorder.recording() as asked:
            answers = {Role.ADMIN: world.console(world.a, Role.ADMIN).get(path).status_code}
        required = set(asked) | (
            {str(SERVICE_CHECKED_PAGES[page.path])} if page.path in SERVICE_CHECKED_PAGES else set()
        )
        if not required and page.key not in ANY_LOGIN_PAGES:
            failures.append(f"{page.key}: checks no scope and is not on an allow-list")
        for role in ROLES:
            if role not in answers:
                with world.isolated():
                    answers[role] = world.console(world.a, role).get(path).status_code
            status = answers[role]
            allowed = role_may(role, required) or (role is Role.STAFF and page.path in STAFF_OWN_PAGES)
            expected = {200, 303} if role is Role.STAFF and page.path in STAFF_OWN_PAGES else {200}
            if page.path in PAGE_QUERIES:  # made-up input: any answer past the check but a 5xx
                expected = {200, 400, 404, 422}
            if allowed and status not in expected:
                failures.append(f"{page.key} as {role}: {status}, expected {sorted(expected)}")
            elif not allowed and status != 403:
                failures.append(f"{page.key} as {role}: {status}, expected 403 (needs {sorted(required)})")
    assert len(pages) > len(STAFF_OWN_PAGES)
    assert not failures, "\n".join(failures)


def test_routes_outside_the_api_and_console_are_deliberately_public(world: World) -> None:
    unguarded = [
        r.key
        for r in route_table(world.app)
        if not r.path.startswith("/api/")
        and not r.uses_console_auth
        and not any(r.path == p or r.path.startswith(p) for p in PUBLIC_PREFIXES)
    ]
    assert unguarded == []


def test_console_without_login_redirects_to_login(world: World) -> None:
    anonymous = world.api()
    pages = [r for r in route_table(world.app) if r.uses_console_auth and r.method == "GET" and not r.params]
    answers = {p.path: anonymous.get(p.path) for p in pages}
    wrong = {path: r.status_code for path, r in answers.items() if r.status_code != 303}
    assert wrong == {}
    assert {r.headers["location"].split("?")[0] for r in answers.values()} == {"/login"}


# --- the role × scope table in docs/authorization.md ---------------------------------------------

_ROW = re.compile(r"^\| `([a-z:]+)` \|(.*)\|\s*$")


def role_scope_table() -> str:
    """The Markdown table of which role holds which scope, generated from ROLE_SCOPES."""
    header = "| scope | " + " | ".join(str(role) for role in ROLES) + " |"
    rule = "|---|" + "---|" * len(ROLES)
    rows = [
        f"| `{scope}` | " + " | ".join("✓" if scope in ROLE_SCOPES[role] else "" for role in ROLES) + " |"
        for scope in Scope
    ]
    return "\n".join([header, rule, *rows])


def test_the_documented_role_table_matches_role_scopes() -> None:
    text = DOC.read_text(encoding="utf-8")
    start, end = text.index("<!-- role-scopes:begin -->"), text.index("<!-- role-scopes:end -->")
    documented = text[start:end].split("\n", 1)[1].strip()
    # (regenerate with: python -c "from tests.security.test_authz_matrix import role_scope_table as t; print(t())")
    assert documented == role_scope_table()
    assert {m.group(1) for line in documented.splitlines() if (m := _ROW.match(line))} == {str(s) for s in Scope}
