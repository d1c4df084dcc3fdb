"""Prometheus metrics: counters the code bumps, and gauges read from the database at scrape time.

`GET /metrics` serves, in the Prometheus text format (or OpenMetrics when asked for):
requests by route template and status with a latency histogram (this module), the process-wide
counters of `siyu.ops.collectors` (WeCom calls and errors, import rows, process and GC), and the
gauges read at scrape time (jobs, deliveries, scheduler, and the Redis queue when the broker is
Redis). Worker and scheduler processes serve their own counters with `serve_worker_metrics`.

Access: with `SIYU_METRICS_TOKEN` set, a scrape must send `Authorization: Bearer <token>`; without
it only clients on loopback or private addresses may scrape (the client address as
`SIYU_TRUSTED_PROXIES` resolves it). See docs/monitoring.md.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.exposition import choose_encoder
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from siyu.config import Settings
from siyu.db import Database
from siyu.jobs.broker import QUEUE
from siyu.kit.clock import Clock
from siyu.ops.collectors import PROCESS_REGISTRY, BrokerCollector, DatabaseCollector, Include
from siyu.ops.ratelimit import RateLimits, client_address, client_ip
from siyu.web.errors import error_body

router = APIRouter(tags=["ops"])

UNMATCHED = "<unmatched>"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Fewer than the library's default: one histogram per route and method, hundreds of routes."""


@dataclass
class AppMetrics:
    """One app's registry: its HTTP metrics, its database (and broker) gauges, the process counters."""

    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    database: DatabaseCollector
    broker: BrokerCollector | None = None

    def close(self) -> None:
        """Release the broker connection (called when the app shuts down)."""
        if self.broker is not None:
            self.broker.close()


def build_app_metrics(settings: Settings, database: Database, clock: Clock) -> AppMetrics:
    """A fresh registry for one app (several apps in one process, as in tests, stay apart)."""
    registry = CollectorRegistry(auto_describe=True)
    requests = Counter(
        "siyu_http_requests",
        "HTTP requests by method, route template and status code.",
        ["method", "route", "status"],
        registry=registry,
    )
    latency = Histogram(
        "siyu_http_request_duration_seconds",
        "Time to answer an HTTP request (body included), by method and route template.",
        ["method", "route"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    registry.register(Include(PROCESS_REGISTRY))
    gauges = DatabaseCollector(database, clock, cache_s=settings.metrics_cache_s)
    registry.register(gauges)
    broker = None
    if settings.broker_url and settings.broker_url.startswith(("redis://", "rediss://")):
        broker = BrokerCollector(settings.broker_url, queue=QUEUE)
        registry.register(broker)
    return AppMetrics(registry=registry, requests=requests, latency=latency, database=gauges, broker=broker)


def route_label(scope: Scope, mounts: list[Mount]) -> str:
    """The template of the route that answered ("/api/v1/customers/{customer_id}"), never the raw
    path: raw paths carry ids and would make one series per customer."""
    route = scope.get("route")
    if route is not None:
        return str(getattr(route, "path_format", None) or getattr(route, "path", UNMATCHED))
    path: str = scope.get("path", "")
    for mount in mounts:
        if path == mount.path or path.startswith(mount.path + "/"):
            return mount.path + "/{path}"
    return UNMATCHED


class HttpMetricsMiddleware:
    """Counts and times every HTTP request, outermost, so responses from other middleware
    (rate limits, upload size) are counted too; a request that raised counts as a 500."""

    def __init__(self, app: ASGIApp, metrics: AppMetrics, mounts: list[Mount]) -> None:
        self.app = app
        self.metrics = metrics
        self.mounts = mounts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            method = scope.get("method", "")
            method = method if method in METHODS else "OTHER"  # any token is a valid method: bound the label
            route = route_label(scope, self.mounts)
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)


def install_metrics(app: FastAPI) -> None:
    """Count requests by route template and status (called once by `create_app`)."""
    settings: Settings = app.state.settings
    metrics = build_app_metrics(settings, app.state.database, app.state.clock)
    app.state.metrics = metrics
    build_stack = app.build_middleware_stack

    def build_with_metrics() -> ASGIApp:
        # Wrapped around the finished stack rather than added with `add_middleware`, which would
        # put it inside whatever middleware is added later (rate limits' 429s would go uncounted).
        mounts = [route for route in app.router.routes if isinstance(route, Mount)]
        return HttpMetricsMiddleware(build_stack(), metrics, mounts)

    app.build_middleware_stack = build_with_metrics  # type: ignore[method-assign]


def may_scrape(request: Request, settings: Settings) -> bool:
    """With a token: the request carries it. Without: it comes from loopback or a private network."""
    if settings.metrics_token:
        expected = "Bearer " + settings.metrics_token
        return hmac.compare_digest(request.headers.get("authorization", "").encode(), expected.encode())
    limits: RateLimits = request.app.state.rate_limits
    address = client_address(client_ip(request.scope, limits.trusted))
    return address is not None and (address.is_loopback or address.is_private)


@router.get("/metrics", include_in_schema=False)
def metrics_endpoint(request: Request) -> Response:
    """Prometheus scrape endpoint (see the module docstring for who may scrape)."""
    settings: Settings = request.app.state.settings
    if not may_scrape(request, settings):
        if settings.metrics_token:
            return JSONResponse(
                error_body("unauthorized", "metrics need Authorization: Bearer <SIYU_METRICS_TOKEN>", {}),
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return JSONResponse(
            error_body("forbidden", "metrics are served to private networks only; set SIYU_METRICS_TOKEN", {}),
            status_code=403,
        )
    metrics: AppMetrics = request.app.state.metrics
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encoder(metrics.registry), media_type=content_type)


def serve_worker_metrics(port: int, *, host: str = "0.0.0.0") -> Any:
    """Serve this process's counters (WeCom calls, import rows, scheduler leadership, process) on
    `port` in a daemon thread, for `siyu worker` and `siyu scheduler` when `SIYU_METRICS_PORT` is
    set. Database gauges are left to the API's /metrics, so N workers don't run N sets of queries.
    Returns the HTTP server (call `shutdown()` to stop it)."""
    server, _thread = start_http_server(port, addr=host, registry=PROCESS_REGISTRY)
    return server
