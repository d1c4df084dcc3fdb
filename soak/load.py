"""The soak load driver: scans, timeline events, order webhooks and member H5 check-ins at once,
for a bounded time, against one or more `siyu serve` processes; then a check that every accepted
request left its row.

    fixture = prepare(database, secret_key="…", members=3_000)   # the brand the load writes to
    report = drive(["http://127.0.0.1:8001", …], fixture, seconds=300, concurrency=8)
    lost = verify(database, fixture, report)                     # {"scans": 0, "events": 0, …}

Each client thread loops over the four kinds in turn, on keep-alive connections to the APIs in
turn; every request is new work (a new scan visitor, a new event key, a new order number, the
next member's first check-in today), so "accepted" means "a row must exist". A 5xx or a socket
error counts as a failure; latencies are kept per kind for the p50/p99.

Run from the command line (`python -m soak.load --help`) or through `soak/run.py`.
"""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

import siyu.db
from siyu.auth.permissions import Actor
from siyu.auth.service import create_token
from siyu.commerce.settings import rotate_webhook_secret
from siyu.commerce.webhook import sign
from siyu.db import Database, set_database
from siyu.kit.clock import system_clock
from siyu.livecodes.schemas import LiveCodeIn, RouteIn
from siyu.livecodes.service import create_live_code
from siyu.loyalty.h5.links import member_link_token
from siyu.loyalty.members import ensure_members
from siyu.models import (
    Customer,
    CustomerEvent,
    LimitPeriod,
    LiveCodeScan,
    LoyaltyTask,
    Member,
    Order,
    Staff,
    TaskCompletion,
    TaskKind,
)
from siyu.workspaces.scope import bind_workspace
from siyu.workspaces.service import create_workspace

KINDS = ("scan", "event", "order", "check_in")
_CSRF_MARK = 'name="csrf_token" value="'


@dataclass
class Fixture:
    """What the load needs to know about the brand `prepare` wrote."""

    workspace_id: int
    slug: str
    token: str
    webhook_secret: str
    code_slug: str
    check_in_task_id: int
    customer_ids: list[int]
    member_links: list[str]
    """`/m/enter?t=…` of each member, in the order the check-ins use them."""


def prepare(database: Database, *, members: int, slug: str = "soak") -> Fixture:
    """Write the soak brand: a token, a webhook secret, a live code of 3 staff, a daily check-in task
    and `members` members with their H5 links. `database.settings` must carry the servers'
    SIYU_SECRET_KEY (links are signed, and the webhook secret sealed, with keys derived from it)."""
    previous = siyu.db._database
    set_database(database)  # the webhook secret is sealed with the process database's settings
    try:
        return _prepare(database, members=members, slug=slug)
    finally:
        set_database(previous)


def _prepare(database: Database, *, members: int, slug: str) -> Fixture:
    now = system_clock.now()
    secret_key = database.settings.session_secret()
    with database.transaction() as session:
        workspace = create_workspace(session, slug=slug, name="压测品牌", clock=system_clock)
        bind_workspace(session, workspace.id)
        actor = Actor.system(workspace.id)
        token = create_token(
            session,
            workspace_id=workspace.id,
            name="soak",
            scopes=sorted(actor.scopes),
            actor=actor,
            clock=system_clock,
        ).secret
        secret = rotate_webhook_secret(session, actor=actor, clock=system_clock)
        staff = [Staff(workspace_id=workspace.id, name=f"导购{n}", created_at=now) for n in range(3)]
        session.add_all(staff)
        session.flush()
        code = create_live_code(
            session,
            actor=actor,
            data=LiveCodeIn(name="压测活码", routes=[RouteIn(staff_id=s.id) for s in staff]),
            clock=system_clock,
        )
        task = LoyaltyTask(
            workspace_id=workspace.id,
            key="check_in",
            kind=TaskKind.CHECK_IN,
            name="每日签到",
            points=5,
            limit_period=LimitPeriod.DAY,
            created_at=now,
            updated_at=now,
        )
        customers = [
            Customer(
                workspace_id=workspace.id,
                name=f"会员{n:05d}",
                lifecycle_stage="active",
                attributes={},
                field_updated_at={},
                created_at=now,
                updated_at=now,
            )
            for n in range(members)
        ]
        session.add(task)
        session.add_all(customers)
        session.flush()
        ids = [c.id for c in customers]
        ensure_members(session, workspace_id=workspace.id, customer_ids=ids, clock=system_clock)
        fixture = Fixture(workspace.id, workspace.slug, token, secret, code.slug, task.id, ids, [])
    fixture.member_links = [
        "/m/enter?t="
        + member_link_token(
            workspace_id=fixture.workspace_id,
            customer_id=cid,
            secret=secret_key,
            clock=system_clock,
            purpose="check_in",
        )
        for cid in ids
    ]
    return fixture


@dataclass
class KindStats:
    """One kind of request: answers by class, latencies of the accepted ones, what they wrote."""

    accepted: int = 0
    rejected: int = 0
    """4xx answers (none are expected: every request is valid)."""
    server_errors: int = 0
    """5xx answers."""
    socket_errors: int = 0
    latencies_ns: list[int] = field(default_factory=list)
    refused: dict[int, int] = field(default_factory=dict)
    """Status → count of the answers that were not accepted (4xx and 5xx)."""
    first_refusal: str | None = None
    """The start of the first refused answer's body (what went wrong)."""
    keys: list[str] = field(default_factory=list)
    """Idempotency keys / order numbers / customer ids of accepted writes."""


@dataclass
class LoadReport:
    seconds: float
    kinds: dict[str, KindStats]

    @property
    def requests(self) -> int:
        return sum(s.accepted + s.rejected + s.server_errors + s.socket_errors for s in self.kinds.values())

    def summary(self) -> dict[str, Any]:
        """JSON-ready figures: per kind and overall counts, requests/s, p50/p99 in ms."""
        everything = sorted(ns for s in self.kinds.values() for ns in s.latencies_ns)
        out: dict[str, Any] = {
            "seconds": round(self.seconds, 1),
            "requests": self.requests,
            "requests_per_s": round(self.requests / self.seconds, 1) if self.seconds else None,
            "server_errors": sum(s.server_errors for s in self.kinds.values()),
            "socket_errors": sum(s.socket_errors for s in self.kinds.values()),
            "rejected": sum(s.rejected for s in self.kinds.values()),
            "p50_ms": percentile_ms(everything, 50),
            "p99_ms": percentile_ms(everything, 99),
            "kinds": {},
        }
        for name, stats in self.kinds.items():
            ordered = sorted(stats.latencies_ns)
            out["kinds"][name] = {
                "accepted": stats.accepted,
                "rejected": stats.rejected,
                "server_errors": stats.server_errors,
                "socket_errors": stats.socket_errors,
                "p50_ms": percentile_ms(ordered, 50),
                "p99_ms": percentile_ms(ordered, 99),
                "refused": dict(sorted(stats.refused.items())),
                "first_refusal": stats.first_refusal,
            }
        return out


def percentile_ms(ordered: Sequence[int], pct: float) -> float | None:
    """The `pct` percentile (nearest rank) of sorted nanosecond latencies, in milliseconds."""
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return round(ordered[index] / 1e6, 2)


class _Client:
    """Keep-alive connections to each API, used in turn; reconnects after a socket error."""

    def __init__(self, urls: Sequence[str], timeout: float) -> None:
        self.targets = [(urlsplit(u).hostname or "127.0.0.1", urlsplit(u).port or 80) for u in urls]
        self.timeout = timeout
        self.connections: list[http.client.HTTPConnection | None] = [None] * len(self.targets)
        self.turn = itertools.cycle(range(len(self.targets)))

    def pick(self) -> int:
        return next(self.turn)

    def request(
        self, index: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        connection = self.connections[index]
        if connection is None:
            host, port = self.targets[index]
            connection = self.connections[index] = http.client.HTTPConnection(host, port, timeout=self.timeout)
        try:
            connection.request(method, path, body=body, headers={"User-Agent": "siyu-soak", **(headers or {})})
            response = connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            connection.close()
            self.connections[index] = None
            raise
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data

    def close(self) -> None:
        for connection in self.connections:
            if connection is not None:
                connection.close()


class _Driver:
    def __init__(self, urls: Sequence[str], fixture: Fixture, timeout: float) -> None:
        self.urls = list(urls)
        self.fixture = fixture
        self.timeout = timeout
        self.lock = threading.Lock()
        self.kinds = {kind: KindStats() for kind in KINDS}
        self.sequence = itertools.count(1)
        self.members = iter(range(len(fixture.member_links)))
        self.run_id = f"{int(time.time())}"

    def _next_member(self) -> int | None:
        with self.lock:
            return next(self.members, None)

    def _record(self, kind: str, status: int | None, elapsed_ns: int, key: str | None, ok: bool) -> None:
        with self.lock:
            stats = self.kinds[kind]
            if status is None:
                stats.socket_errors += 1
                return
            if not ok:
                stats.refused[status] = stats.refused.get(status, 0) + 1
            if status >= 500:
                stats.server_errors += 1
            elif not ok:
                stats.rejected += 1
            else:
                stats.accepted += 1
                stats.latencies_ns.append(elapsed_ns)
                if key is not None:
                    stats.keys.append(key)

    def _note(self, kind: str, body: bytes) -> None:
        with self.lock:
            if self.kinds[kind].first_refusal is None:
                self.kinds[kind].first_refusal = body[:300].decode(errors="replace")

    def scan(self, client: _Client) -> tuple[int, str | None, bool]:
        status, _h, _b = client.request(client.pick(), "GET", f"/q/{self.fixture.code_slug}")
        return status, None, status == 200

    def event(self, client: _Client) -> tuple[int, str | None, bool]:
        n = next(self.sequence)
        key = f"soak-{self.run_id}-{n}"
        body = {
            "type": "page.view",
            "occurred_at": datetime.now(UTC).isoformat(),
            "idempotency_key": key,
            "customer_id": self.fixture.customer_ids[n % len(self.fixture.customer_ids)],
            "properties": {"page": "/soak"},
        }
        headers = {"Authorization": f"Bearer {self.fixture.token}", "Content-Type": "application/json"}
        status, _h, answer = client.request(client.pick(), "POST", "/api/v1/events", json.dumps(body).encode(), headers)
        if status != 201:
            self._note("event", answer)
        return status, key, status == 201

    def order(self, client: _Client) -> tuple[int, str | None, bool]:
        n = next(self.sequence)
        external_id = f"SOAK{self.run_id}-{n}"
        order = {
            "platform": "taobao",
            "external_id": external_id,
            "customer_id": self.fixture.customer_ids[n % len(self.fixture.customer_ids)],
            "total_fen": 19_900,
            "paid_at": datetime.now(UTC).isoformat(),
            "items": [{"sku": "SOAK-1", "name": "压测商品", "amount_fen": 19_900}],
        }
        body = json.dumps(order).encode()
        stamp = str(int(time.time()))
        headers = {
            "X-Siyu-Timestamp": stamp,
            "X-Siyu-Signature": sign(self.fixture.webhook_secret, stamp, body),
            "Content-Type": "application/json",
        }
        status, _h, answer = client.request(client.pick(), "POST", f"/hooks/orders/{self.fixture.slug}", body, headers)
        if status != 201:
            self._note("order", answer)
        return status, external_id, status == 201

    def check_in(self, client: _Client) -> tuple[int, str | None, bool] | None:
        member = self._next_member()
        if member is None:
            return None  # every member has checked in today: the other kinds go on
        index = client.pick()  # one server for the member's whole visit, as a phone would
        status, headers, _b = client.request(index, "GET", self.fixture.member_links[member])
        if status != 303:
            return status, None, False
        cookie = SimpleCookie(headers.get("set-cookie", ""))
        jar = "; ".join(f"{k}={m.value}" for k, m in cookie.items())
        status, _h, page = client.request(index, "GET", "/m/check-in", headers={"Cookie": jar})
        text = page.decode(errors="replace")
        if status != 200 or _CSRF_MARK not in text:
            return status, None, False
        csrf = text.split(_CSRF_MARK, 1)[1].split('"', 1)[0]
        form = f"csrf_token={csrf}".encode()
        status, headers, _b = client.request(
            index,
            "POST",
            "/m/check-in",
            form,
            {"Cookie": jar, "Content-Type": "application/x-www-form-urlencoded"},
        )
        ok = status == 303 and headers.get("location") == "/m/check-in?done=1"
        return status, str(self.fixture.customer_ids[member]), ok

    def loop(self, stop_at: float, start: threading.Barrier, offset: int) -> None:
        client = _Client(self.urls, self.timeout)
        actions: dict[str, Callable[[_Client], tuple[int, str | None, bool] | None]] = {
            "scan": self.scan,
            "event": self.event,
            "order": self.order,
            "check_in": self.check_in,
        }
        start.wait()
        try:
            for turn in itertools.count(offset):
                if time.monotonic() >= stop_at:
                    return
                kind = KINDS[turn % len(KINDS)]
                began = time.perf_counter_ns()
                try:
                    outcome = actions[kind](client)
                except (OSError, http.client.HTTPException):
                    self._record(kind, None, 0, None, False)
                    continue
                if outcome is not None:
                    status, key, ok = outcome
                    self._record(kind, status, time.perf_counter_ns() - began, key, ok)
        finally:
            client.close()


def drive(
    urls: Sequence[str], fixture: Fixture, *, seconds: float, concurrency: int = 8, timeout: float = 30
) -> LoadReport:
    """Send the mixed load from `concurrency` threads for `seconds`; returns what was answered."""
    driver = _Driver(urls, fixture, timeout)
    start = threading.Barrier(concurrency + 1)
    stop_at = time.monotonic() + seconds
    threads = [
        threading.Thread(target=driver.loop, args=(stop_at, start, i), name=f"soak-{i}") for i in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join()
    return LoadReport(time.perf_counter() - began, driver.kinds)


def verify(database: Database, fixture: Fixture, report: LoadReport) -> dict[str, int]:
    """Per kind, how many accepted writes have no row (all must be 0): scans by count, events by
    idempotency key, orders by number, check-ins by member."""
    kinds = report.kinds
    with database.session() as session:
        bind_workspace(session, fixture.workspace_id)
        scans = _count(session, select(func.count()).select_from(LiveCodeScan))
        events = _present(session, CustomerEvent.idempotency_key, kinds["event"].keys)
        orders = _present(session, Order.external_id, kinds["order"].keys)
        checked_in = set(
            str(cid)
            for cid in session.scalars(
                select(Member.customer_id)
                .join(TaskCompletion, TaskCompletion.member_id == Member.id)
                .where(TaskCompletion.task_id == fixture.check_in_task_id)
            )
        )
    return {
        "scan": max(0, kinds["scan"].accepted - scans),
        "event": len(set(kinds["event"].keys) - events),
        "order": len(set(kinds["order"].keys) - orders),
        "check_in": len(set(kinds["check_in"].keys) - checked_in),
    }


def _count(session: Session, query: Any) -> int:
    return int(session.scalar(query) or 0)


def _present(session: Session, column: Any, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(keys), 5_000):
        found.update(session.scalars(select(column).where(column.in_(keys[start : start + 5_000]))))
    return found
