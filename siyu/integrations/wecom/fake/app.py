"""The fake server's HTTP app: `gettoken`, token and limit checks, scripted failures, and the
endpoints the area modules register.

    @api("externalcontact/get")                        # GET and POST /cgi-bin/externalcontact/get
    def get_contact(corp: FakeCorp, call: ApiCall) -> dict[str, Any]: ...

    @sim("contacts/add")                               # POST /sim/contacts/add (JSON body)
    def add(fake: FakeWecom, body: dict[str, Any]) -> dict[str, Any]: ...

API handlers answer WeCom's shapes (`errcode` 0 is added when missing) and raise `FakeError` for
WeCom's error answers; they run under the state lock. Sim handlers act as WeCom's users (a customer
scans, a staff member confirms a task) and may push callbacks to siyu; they run in a worker thread,
so a demo serving siyu and the fake from one process can call itself.
An area module may also expose `router` (a FastAPI APIRouter) for anything else (pages, JS).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from siyu.integrations.wecom.fake.state import FakeCorp, FakeError, FakeWecom

DEFAULT_PER_MINUTE = 10_000
AREA_MODULES = (
    "contacts",
    "groups",
    "tags",
    "messages",
    "moments",
    "contactways",
    "directory",
    "transfers",
    "behavior",
    "sidebar",
    "official",
    "console",
)
"""Modules under `siyu.integrations.wecom.fake` that register endpoints."""


@dataclass
class ApiCall:
    """One authenticated API call: the query string, the JSON body (POST), and the raw body."""

    api: str
    method: str
    query: dict[str, str]
    body: dict[str, Any]
    raw: bytes

    def arg(self, name: str, default: Any = None) -> Any:
        """A parameter from the body, else the query string."""
        return self.body.get(name, self.query.get(name, default))

    def require(self, name: str) -> Any:
        value = self.arg(name)
        if value in (None, "", []):
            raise FakeError(41000 + 35, f"missing {name}")  # 41035-like "缺少参数"
        return value


ApiHandler = Callable[[FakeCorp, ApiCall], dict[str, Any]]
SimHandler = Callable[[FakeWecom, dict[str, Any]], dict[str, Any]]
_apis: dict[str, ApiHandler] = {}
_sims: dict[str, SimHandler] = {}


def api(name: str) -> Callable[[ApiHandler], ApiHandler]:
    """Register a WeCom API endpoint (path under /cgi-bin/, without a leading slash)."""

    def register(fn: ApiHandler) -> ApiHandler:
        _apis[name] = fn
        return fn

    return register


def sim(name: str) -> Callable[[SimHandler], SimHandler]:
    """Register a simulation endpoint at POST /sim/{name}."""

    def register(fn: SimHandler) -> SimHandler:
        _sims[name] = fn
        return fn

    return register


def _answer(body: dict[str, Any]) -> JSONResponse:
    body.setdefault("errcode", 0)
    body.setdefault("errmsg", "ok")
    return JSONResponse(body)


def _error(exc: FakeError) -> JSONResponse:
    return JSONResponse({"errcode": exc.code, "errmsg": exc.message})


def _check_limit(corp: FakeCorp, api_name: str) -> None:
    now = corp.now()
    limit = corp.limits.get(api_name, DEFAULT_PER_MINUTE)
    recent = sum(1 for name, at in corp.calls if name == api_name and at > now - 60)
    if recent >= limit:
        raise FakeError(45009, "api freq out of limit")


def _load_areas() -> list[Any]:
    modules = []
    for name in AREA_MODULES:
        try:
            modules.append(importlib.import_module(f"siyu.integrations.wecom.fake.{name}"))
        except ModuleNotFoundError as exc:
            if exc.name != f"siyu.integrations.wecom.fake.{name}":
                raise
    return modules


def create_fake_app(fake: FakeWecom) -> FastAPI:
    """The fake server as an ASGI app (run it with `server.start_fake_server`, or mount it)."""
    modules = _load_areas()
    app = FastAPI(title="fake WeCom", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.fake = fake
    router = APIRouter()

    @router.get("/cgi-bin/gettoken")
    async def gettoken(corpid: str = "", corpsecret: str = "") -> JSONResponse:
        with fake.lock:
            try:
                corp = fake.corp(corpid)
                if corpsecret not in (corp.contact_secret, corp.app_secret):
                    raise FakeError(40001, "invalid credential, secret is wrong")
                corp.calls.append(("gettoken", corp.now()))
                if corp.failures.get("gettoken"):
                    raise FakeError(corp.failures["gettoken"].pop(0), "scripted failure")
                return _answer({"access_token": corp.issue_token(), "expires_in": 7200})
            except FakeError as exc:
                return _error(exc)

    @router.api_route("/cgi-bin/{api_name:path}", methods=["GET", "POST"])
    async def call_api(api_name: str, request: Request) -> JSONResponse:
        raw = await request.body()
        query = dict(request.query_params)
        with fake.lock:
            try:
                corp = fake.corp_by_token(query.get("access_token"))
                handler = _apis.get(api_name)
                if handler is None:
                    raise FakeError(404 * 1000 + 1, f"fake server has no API {api_name}")
                _check_limit(corp, api_name)
                corp.calls.append((api_name, corp.now()))
                if corp.failures.get(api_name):
                    raise FakeError(corp.failures[api_name].pop(0), "scripted failure")
                try:
                    body = json.loads(raw) if raw.strip() else {}
                except ValueError:
                    raise FakeError(47001, "data format error") from None
                if not isinstance(body, dict):
                    raise FakeError(47001, "data format error")
                return _answer(handler(corp, ApiCall(api_name, request.method, query, body, raw)))
            except FakeError as exc:
                return _error(exc)

    @router.post("/sim/{name:path}")
    async def simulate(name: str, request: Request) -> JSONResponse:
        handler = _sims.get(name)
        if handler is None:
            return JSONResponse({"error": f"no simulation {name}"}, status_code=404)
        try:
            body = await request.json()
        except ValueError:
            body = dict(await request.form())
        try:
            result = await run_in_threadpool(handler, fake, body if isinstance(body, dict) else {})
        except FakeError as exc:
            return JSONResponse({"error": exc.message, "errcode": exc.code}, status_code=400)
        return JSONResponse(result)

    app.include_router(router)
    for module in modules:
        if isinstance(getattr(module, "router", None), APIRouter):
            app.include_router(module.router)
    return app


def simulations() -> list[str]:
    """Names of the registered simulations (the fake console lists them)."""
    _load_areas()
    return sorted(_sims)
