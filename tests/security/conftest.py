"""A world for authorisation tests: two brands with one object of each main kind, a token and a
console login per role, the real app over one module-long transaction, and the route table.

Everything is built once per module (the matrix makes thousands of requests); each request that
may write runs inside a savepoint the test rolls back (`World.isolated`), so requests never see
each other's writes and the world stays as built.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.orm import Session

from siyu.app import create_app
from siyu.auth.permissions import ROLE_SCOPES, Actor, Scope
from siyu.config import Settings
from siyu.db import set_database
from siyu.kit.clock import FrozenClock
from siyu.models import ApiToken, Job, JobStatus, Role, StaffTask, Workspace
from tests.conftest import NOW, ConnectionDatabase
from tests.factories import (
    actor_for,
    make_customer,
    make_order,
    make_relationship,
    make_staff,
    make_store,
    make_tag,
    make_token,
    make_user,
    make_workspace,
)

PASSWORD = "correct-horse-1"
ROLES = list(Role)
MADE_UP_ID = 987_654_321
"""An id no row has: used where a route's object kind has no row in the world."""
_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)">')

# Objects created through the brand's own API as its admin, in this order; "$label" is the id of
# an object created earlier (or of the fixtures below: "$customer", "$staff").
API_OBJECTS: list[tuple[str, str, dict[str, Any]]] = [
    (
        "segment",
        "/api/v1/segments",
        {"name": "上海", "definition": {"all": [{"kind": "field", "field": "city", "op": "eq", "value": "上海"}]}},
    ),
    ("content", "/api/v1/content", {"name": "问候", "body": "你好", "is_marketing": False}),
    ("channel_account", "/api/v1/channel-accounts", {"name": "沙箱", "kind": "sandbox"}),
    ("persona", "/api/v1/personas", {"name": "小美"}),
    ("group", "/api/v1/groups", {"name": "福利群", "member_limit": 200}),
    (
        "challenge",
        "/api/v1/challenges",
        {"title": "七天打卡", "topic": "护肤", "starts_on": "2026-11-24", "ends_on": "2026-11-30", "days_required": 3},
    ),
    ("loyalty_task", "/api/v1/loyalty/tasks", {"key": "daily", "kind": "custom", "name": "每日任务", "points": 5}),
    (
        "draw",
        "/api/v1/lottery/draws",
        {"name": "抽奖", "method": "fixed", "prizes": [{"name": "小样", "stock": 1, "winners": 1}]},
    ),
    (
        "moment",
        "/api/v1/moments",
        {"persona_id": "$persona", "post_date": "2026-11-25", "slot": "morning", "content_id": "$content"},
    ),
    ("script", "/api/v1/scripts", {"stage": "welcome", "title": "欢迎", "body": "你好"}),
    (
        "group_calendar",
        "/api/v1/group-calendars",
        {"name": "群日历", "group_ids": ["$group"], "channel_account_id": "$channel_account"},
    ),
    ("questionnaire", "/api/v1/questionnaires", {"slug": "koc", "title": "KOC 招募"}),
    ("commission_rule", "/api/v1/commission-rules", {"name": "佣金", "rate_bp": 500, "days": 30}),
    (
        "kpi_plan",
        "/api/v1/analytics/kpi-plans",
        {
            "name": "计划",
            "first_month": "2026-09",
            "last_month": "2026-12",
            "start_pool": 2,
            "target_pool": 6,
            "target_gmv_fen": 40_000,
            "monthly_deletion_rate": 0,
            "first_order_rate": 0.5,
            "repurchase_rate": 0,
            "aov_fen": 10_000,
            "start_buyers": 0,
        },
    ),
    (
        "funnel",
        "/api/v1/analytics/funnels",
        {"name": "漏斗", "definition": {"steps": [{"kind": "scan"}, {"kind": "added"}]}},
    ),
    ("retention_report", "/api/v1/analytics/retention/reports", {"name": "留存"}),
    (
        "experiment",
        "/api/v1/experiments",
        {
            "name": "钩子实验",
            "primary_metric": "add_rate",
            "variants": [{"key": "A", "name": "A", "weight": 50}, {"key": "B", "name": "B", "weight": 50}],
        },
    ),
    (
        "broadcast",
        "/api/v1/broadcasts",
        {
            "name": "群发",
            "segment_id": "$segment",
            "channel_account_ids": ["$channel_account"],
            "variants": [{"key": "A", "content_id": "$content"}],
        },
    ),
    ("short_link", "/api/v1/short-links", {"target_url": "https://shop.example.com/sample", "name": "短链"}),
    (
        "journey",
        "/api/v1/journeys",
        {
            "name": "入群欢迎",
            "trigger": {"type": "group_joined"},
            "steps": [{"id": "hi", "type": "task", "title": "打招呼"}],
        },
    ),
    (
        "coupon_template",
        "/api/v1/coupon-templates",
        {"name": "满300减30", "kind": "amount_off", "value": 3000, "threshold_fen": 30_000, "valid_days": 14},
    ),
    (
        "coupon",
        "/api/v1/coupons",
        {"template_id": "$coupon_template", "customer_id": "$customer", "idempotency_key": "k"},
    ),
    ("product", "/api/v1/products", {"sku": "SERUM-30", "name": "精华", "price_fen": 29_900}),
    ("reward", "/api/v1/loyalty/rewards", {"name": "保温杯", "kind": "gift", "points_price": 300, "stock": 2}),
    ("tier", "/api/v1/loyalty/tiers", {"name": "金卡", "rank": 1, "threshold": 100}),
    ("resource", "/api/v1/resources", {"kind": "file", "title": "价目表"}),
    ("referral_program", "/api/v1/referral-programs", {"name": "老带新", "condition": "first_order"}),
    ("live_code", "/api/v1/live-codes", {"name": "包裹卡活码", "kind": "staff", "routes": [{"staff_id": "$staff"}]}),
    ("channel", "/api/v1/channels", {"name": "包裹卡", "type": "package_card", "cost_model": "entries"}),
]


@dataclass
class Brand:
    """One workspace of the world: its objects by kind, a token per role and a console user per role."""

    workspace_id: int
    slug: str
    ids: dict[str, int] = field(default_factory=dict)
    tokens: dict[Role, str] = field(default_factory=dict)
    emails: dict[Role, str] = field(default_factory=dict)
    staff_ids: list[int] = field(default_factory=list)

    def headers(self, role: Role = Role.ADMIN) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


@dataclass
class World:
    """Two brands (A and B) in one app, called in-process over ASGI (no thread hop per request, so
    thousands of requests stay cheap); `console` switches the cookie session to a role's login."""

    app: FastAPI
    connection: Connection
    loop: asyncio.AbstractEventLoop
    http: httpx2.AsyncClient
    a: Brand
    b: Brand
    sessions: dict[tuple[str, Role], dict[str, str]] = field(default_factory=dict)

    @contextmanager
    def isolated(self) -> Iterator[None]:
        """Run requests in a savepoint rolled back afterwards: their writes never outlive them."""
        savepoint = self.connection.begin_nested()
        try:
            yield
        finally:
            savepoint.rollback()

    def session(self) -> Session:
        return Session(bind=self.connection, join_transaction_mode="create_savepoint", expire_on_commit=False)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx2.Response:
        """One request to the app, with whatever console session is current."""
        return self.loop.run_until_complete(self.http.request(method, path, **kwargs))

    def get(self, path: str, **kwargs: Any) -> httpx2.Response:
        return self.request("GET", path, **kwargs)

    def console(self, brand: Brand, role: Role) -> World:
        """Switch to the cookie session of `brand`'s user of `role` (logged in on first use)."""
        key = (brand.slug, role)
        self.http.cookies.clear()
        if key not in self.sessions:
            page = self.get("/login")
            done = self.request(
                "POST",
                "/login",
                data={"email": brand.emails[role], "password": PASSWORD, "csrf_token": csrf_of(page.text)},
            )
            assert done.status_code == 303, done.text
            self.sessions[key] = dict(self.http.cookies)
        self.http.cookies.update(self.sessions[key])
        return self

    def api(self) -> World:
        """Drop any console session: bearer tokens only."""
        self.http.cookies.clear()
        return self


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


def _fill(body: dict[str, Any], ids: dict[str, int]) -> Any:
    text = json.dumps(body)
    for label, value in ids.items():
        text = text.replace(f'"${label}"', str(value))
    return json.loads(text)


def _build_brand(world_db: Session, world: World, clock: FrozenClock, slug: str) -> Brand:
    ws: Workspace = make_workspace(world_db, clock=clock, slug=slug, name=f"品牌{slug}")
    admin = actor_for(ws)
    store = make_store(world_db, workspace=ws)
    amy = make_staff(world_db, workspace=ws, clock=clock, name="导购甲", store=store)
    bob = make_staff(world_db, workspace=ws, clock=clock, name="导购乙", store=store)
    customer = make_customer(world_db, actor=admin, clock=clock, name="王芳", owner_staff_id=amy.id).customer
    other = make_customer(world_db, actor=admin, clock=clock, name="李雷", owner_staff_id=bob.id).customer
    tag = make_tag(world_db, workspace=ws)
    order = make_order(world_db, customer=customer, paid_at=NOW)
    edge = make_relationship(world_db, customer=customer, staff=amy, added_at=NOW)
    job = Job(workspace_id=ws.id, kind="import", args={}, status=JobStatus.SUCCEEDED, created_at=NOW)
    world_db.add(job)
    world_db.flush()
    task = StaffTask(
        workspace_id=ws.id,
        staff_id=amy.id,
        customer_id=customer.id,
        source="journey",
        source_id=1,
        idempotency_key=f"{slug}-hello",
        title="打招呼",
        created_at=NOW,
    )
    world_db.add(task)
    world_db.flush()
    brand = Brand(workspace_id=ws.id, slug=slug, staff_ids=[amy.id, bob.id])
    brand.ids.update(
        customer=customer.id,
        other_customer=other.id,
        staff=amy.id,
        store=store.id,
        tag=tag.id,
        tag_group=tag.group_id,
        order=order.id,
        relationship=edge.id,
        job=job.id,
        staff_task=task.id,
    )
    for role in ROLES:
        brand.tokens[role] = make_token(
            world_db, clock=clock, workspace=ws, scopes=sorted(str(s) for s in ROLE_SCOPES[role])
        )
        user = make_user(
            world_db,
            clock=clock,
            workspace=ws,
            role=role,
            email=f"{role}@{slug}.example.com",
            password=PASSWORD,
            staff_id=amy.id if role is Role.STAFF else None,
            store_id=store.id if role is Role.STORE_MANAGER else None,
        )
        brand.emails[role] = user.email
    # Used now, so no request of the tests records a token's first use (a write per request).
    world_db.execute(update(ApiToken).where(ApiToken.workspace_id == ws.id).values(last_used_at=NOW))
    world_db.commit()
    for label, path, body in API_OBJECTS:
        created = world.request("POST", path, json=_fill(body, brand.ids), headers=brand.headers())
        assert created.status_code == 201, (label, created.text)
        brand.ids[label] = created.json()["id"]
    return brand


@pytest.fixture(scope="package")
def world(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Brands A and B with one object of each main kind, built once for this package and rolled back after."""
    connection = engine.connect()
    outer = connection.begin()
    settings = Settings(
        database_url="sqlite://",
        data_dir=tmp_path_factory.mktemp("security") / "data",
        secret_key="test-secret",
        log_json=False,
        broker_url=None,
        max_upload_mb=1,
    )
    database = ConnectionDatabase(settings, connection)
    clock = FrozenClock(NOW)
    app = create_app(settings, database=database, clock=clock, run_worker=False)
    loop = asyncio.new_event_loop()
    try:
        # The TestClient runs the app's lifespan (broker set-up); requests go over ASGI directly.
        with TestClient(app):
            transport = httpx2.ASGITransport(app=app, raise_app_exceptions=False)
            http = httpx2.AsyncClient(transport=transport, base_url="http://testserver")
            world = World(app=app, connection=connection, loop=loop, http=http, a=Brand(0, ""), b=Brand(0, ""))
            world_db = world.session()
            world.a = _build_brand(world_db, world, clock, "brand-a")
            world.b = _build_brand(world_db, world, clock, "brand-b")
            world_db.close()
            yield world
            loop.run_until_complete(http.aclose())
    finally:
        loop.close()
        set_database(None)
        outer.rollback()
        connection.close()


# --- the route table ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """One method of one route, with the scope its dependency demands (None: none declared)."""

    method: str
    path: str
    endpoint: Callable[..., Any]
    declared_scope: Scope | None
    uses_api_auth: bool
    uses_console_auth: bool

    @property
    def params(self) -> list[str]:
        return re.findall(r"{(\w+)(?::\w+)?}", self.path)

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


def _dependency_calls(dependant: Any) -> Iterator[Callable[..., Any]]:
    if dependant.call is not None:
        yield dependant.call
    for sub in dependant.dependencies:
        yield from _dependency_calls(sub)


def _declared_scope(calls: list[Callable[..., Any]]) -> Scope | None:
    """The scope of a `require(scope)` dependency: read from the closure `require` returns."""
    for call in calls:
        if getattr(call, "__qualname__", "") == "require.<locals>.dependency" and call.__closure__:
            cells = dict(zip(call.__code__.co_freevars, call.__closure__, strict=True))
            return Scope(cells["scope"].cell_contents)
    return None


def route_table(app: FastAPI) -> list[Route]:
    """Every method of every FastAPI route of the app, as served (router prefixes included)."""
    routes: list[Route] = []
    for context in iter_route_contexts(app.routes):
        original = context.original_route
        if not isinstance(original, APIRoute):
            continue
        dependant = getattr(context, "dependant", None) or original.dependant
        calls = list(_dependency_calls(dependant))
        names = {getattr(c, "__qualname__", "") for c in calls}
        for method in sorted(context.methods or ()):
            routes.append(
                Route(
                    method=method,
                    path=str(context.path),
                    endpoint=original.endpoint,
                    declared_scope=_declared_scope(calls),
                    uses_api_auth="api_transaction" in names,
                    uses_console_auth="console_transaction" in names,
                )
            )
    return routes


# --- which object a path parameter names --------------------------------------------------------

PARAM_KINDS: dict[str, str] = {
    "customer_id": "customer",
    "segment_id": "segment",
    "draw_id": "draw",
    "journey_id": "journey",
    "code_id": "live_code",
    "channel_id": "channel",
    "resource_id": "resource",
    "challenge_id": "challenge",
    "broadcast_id": "broadcast",
    "program_id": "referral_program",
    "experiment_id": "experiment",
    "calendar_id": "group_calendar",
    "tag_id": "tag",
    "script_id": "script",
    "reward_id": "reward",
    "content_id": "content",
    "account_id": "channel_account",
    "questionnaire_id": "questionnaire",
    "persona_id": "persona",
    "link_id": "short_link",
    "template_id": "coupon_template",
    "moment_id": "moment",
    "tier_id": "tier",
    "product_id": "product",
    "rule_id": "commission_rule",
    "plan_id": "kpi_plan",
    "order_id": "order",
    "job_id": "job",
    "coupon_id": "coupon",
    "relationship_id": "relationship",
    "group_id": "group",
}
# Where the same parameter name means another kind of object: (path contains, param) → kind.
CONTEXT_KINDS: list[tuple[str, str, str]] = [
    ("/tags/groups/", "group_id", "tag_group"),
    ("/loyalty/tasks/", "task_id", "loyalty_task"),
    ("/staff-tasks/", "task_id", "staff_task"),
    ("/journeys/tasks/", "task_id", "staff_task"),
    ("/funnels/", "report_id", "funnel"),
    ("/retention/reports/", "report_id", "retention_report"),
    ("/groups/{group_id}/tags/", "tag_id", "tag"),
]


def kind_of(path: str, param: str) -> str | None:
    """The kind of object `param` names in `path`, or None when the world has none of that kind."""
    for fragment, name, kind in CONTEXT_KINDS:
        if name == param and fragment in path:
            return kind
    return PARAM_KINDS.get(param)


def fill_path(route: Route, brand: Brand) -> tuple[str, bool]:
    """The route's path with `brand`'s ids; the flag says whether every id is a real row."""
    path, real = route.path, True
    for param in route.params:
        kind = kind_of(route.path, param)
        if param == "fmt":
            value = "png"
        elif kind is not None and kind in brand.ids:
            value = str(brand.ids[kind])
        else:
            value, real = str(MADE_UP_ID), False
        path = re.sub(r"{" + param + r"(?::\w+)?}", value, path)
    return path, real


# --- which scopes a handler asks for at run time -------------------------------------------------


class ScopeRecorder:
    """Records every scope passed to `Actor.require` while on (handlers that check in their body)."""

    def __init__(self) -> None:
        self.scopes: list[str] = []

    @contextmanager
    def recording(self) -> Iterator[list[str]]:
        self.scopes = []
        yield self.scopes


@pytest.fixture(scope="module")
def recorder() -> Iterator[ScopeRecorder]:
    rec = ScopeRecorder()
    original = Actor.require

    def require(actor: Actor, scope: Scope | str) -> None:
        rec.scopes.append(str(scope))
        original(actor, scope)

    mp = pytest.MonkeyPatch()
    mp.setattr(Actor, "require", require)
    yield rec
    mp.undo()


def role_may(role: Role, scopes: set[str]) -> bool:
    return scopes <= {str(s) for s in ROLE_SCOPES[role]}


def rows_of(session: Session, workspace_id: int) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every workspace table belonging to `workspace_id`, by table (the 'unchanged' check)."""
    from siyu.models.base import Base

    out: dict[str, list[tuple[Any, ...]]] = {}
    for table in Base.metadata.sorted_tables:
        if "workspace_id" not in table.c:
            continue
        query = select(table).where(table.c.workspace_id == workspace_id).order_by(*table.primary_key.columns)
        out[table.name] = [tuple(row) for row in session.execute(query.execution_options(siyu_unscoped=True))]
    return out
