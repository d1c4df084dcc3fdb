"""Nothing crosses workspaces: brand A's admin, calling every route that takes an id with brand
B's ids (ids guessed from another workspace), gets a 404 — never a 200, never a 403 that would
confirm the row exists, never a 5xx — and B's rows are unchanged afterwards.

The routes come from the app's route table and path parameters are mapped to B's objects by name
(`kind_of`); as a control, A's own ids on the same GET routes must not be a 404, which proves the
mapping names real rows.
"""

from __future__ import annotations

from typing import Any

import httpx2

from siyu.models import Role
from tests.security.conftest import World, fill_path, route_table, rows_of

BODY_METHODS = {"POST", "PUT", "PATCH"}

CONTROL_EXEMPT: dict[str, str] = {
    "/api/v1/orders/imports/{job_id}": "the world's job is a customer import, not an order import",
    "/orders/imports/{job_id}": "the world's job is a customer import, not an order import",
    "/api/v1/members/{customer_id}": "the world's customer has no loyalty membership",
    "/api/v1/resources/{resource_id}/file": "the world's resource has no file",
    "/community/resources/{resource_id}/file": "the world's resource has no file",
    "/api/v1/koc/{customer_id}": "the world's customer never applied to be a KOC",
    "/growth/koc/{customer_id}": "the world's customer never applied to be a KOC",
    "/growth/commission/kocs/{customer_id}": "the world's customer is not a KOC",
}
"""Routes whose control (A's own ids) is a 404 for a reason other than the id: the path prefix and why."""

INLINE_ERROR_FRAGMENTS: dict[str, str] = {
    "/content/{content_id}/preview": "an HTMX fragment: without a customer it answers 200 with a prompt, "
    "never reading the content, so the answer is the same for any id",
}
"""Console fragments that answer 200 whatever the id, without reading the row."""

CROSS_BODIES: dict[str, dict[str, str]] = {
    "POST /api/v1/groups/{group_id}/members": {"customer_id": "customer"},
}
"""Bodies whose service checks them before loading the row: field → kind of B's object to name."""


def _exempt(path: str) -> bool:
    return any(path.startswith(prefix) for prefix in CONTROL_EXEMPT)


def _never_ran(response: httpx2.Response) -> bool:
    """A 422 from request validation (a list of field errors): the handler never ran, so no row was read."""
    if response.status_code != 422:
        return False
    details: Any = response.json()["error"]["details"]
    return isinstance(details, list)


def test_api_routes_answer_404_for_another_workspaces_ids(world: World) -> None:
    routes = [r for r in route_table(world.app) if r.path.startswith("/api/") and r.params]
    headers = world.a.headers(Role.ADMIN)
    failures: list[str] = []
    reached = 0
    with world.isolated():
        world.api()
        with world.session() as session:
            before = rows_of(session, world.b.workspace_id)
        for route in routes:
            theirs, real = fill_path(route, world.b)
            if not real:
                continue  # the world has no row of that kind: a made-up id proves nothing here
            body: dict[str, Any] = {}
            if route.method in BODY_METHODS:
                fields = CROSS_BODIES.get(route.key, {})
                body["json"] = {name: world.b.ids[kind] for name, kind in fields.items()}
            answer = world.request(route.method, theirs, headers=headers, **body)
            if answer.status_code == 404:
                reached += 1
            elif not _never_ran(answer):
                failures.append(f"{route.method} {theirs} ({route.path}): {answer.status_code} {answer.text[:120]}")
            if route.method == "GET" and not _exempt(route.path):
                ours, _ = fill_path(route, world.a)
                if (control := world.get(ours, headers=headers).status_code) == 404:
                    failures.append(f"control: {route.method} {ours} with A's own ids is a 404")
                elif control >= 500:
                    failures.append(f"control: {route.method} {ours}: {control}")
        with world.session() as session:
            after = rows_of(session, world.b.workspace_id)
    changed = sorted(table for table in before if before[table] != after[table])
    assert not failures, "\n".join(failures)
    assert changed == []
    assert reached >= 100


def test_console_pages_answer_404_for_another_workspaces_ids(world: World) -> None:
    pages = [r for r in route_table(world.app) if r.uses_console_auth and r.method == "GET" and r.params]
    failures: list[str] = []
    reached = 0
    with world.isolated():
        world.console(world.a, Role.ADMIN)
        for page in pages:
            theirs, real = fill_path(page, world.b)
            if not real:
                continue
            answer = world.get(theirs)
            if answer.status_code == 404:
                reached += 1
            elif not (page.path in INLINE_ERROR_FRAGMENTS and answer.status_code == 200):
                failures.append(f"GET {theirs} ({page.path}): {answer.status_code}")
            ours, _ = fill_path(page, world.a)
            if _exempt(page.path):
                continue
            if (control := world.get(ours).status_code) not in (200, 303):
                failures.append(f"control: GET {ours} with A's own ids: {control}")
    assert not failures, "\n".join(failures)
    assert reached >= 40
