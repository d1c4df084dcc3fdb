"""Public routes of the official account: the callback WeChat pushes to, and the member H5 login.

- `GET /integrations/wechat/callback?ws=<id>`: URL verification (signature, timestamp, nonce,
  echostr → echostr as text/plain); 403 for a wrong signature, 404 for an unknown workspace.
- `POST /integrations/wechat/callback?ws=<id>`: one push (plain or safe mode). Wrong signature /
  replay → 403, malformed XML / bad AES → 400 (counted on the account, nothing stored); a retry
  of a stored push → "success" with `duplicates += 1`; otherwise stored and processed → "success".
- `GET /h5/wechat/login?ws=<id>&to=<purpose>` → WeChat's authorize page, with a 10-minute
  HttpOnly cookie holding a random nonce the state is bound to;
  `GET /h5/wechat/oauth?code=&state=` → (same browser only) the member H5 session, then the page
  (`/m/...`; `to` is a member H5 purpose, never a URL).
"""

from __future__ import annotations

import logging
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response

from siyu.db import Database
from siyu.integrations.wechat import callbacks, oauth
from siyu.integrations.wechat.client import OfficialClient, client_for
from siyu.integrations.wechat.config import WechatConfig, load_account
from siyu.integrations.wecom.errors import NotConfigured, WecomError
from siyu.integrations.wecom.tokens import token_store
from siyu.kit.clock import Clock
from siyu.loyalty.h5.links import COOKIE_NAME, COOKIE_PATH, PURPOSES, link_lifetime, session_cookie_value
from siyu.workspaces.scope import bind_workspace

logger = logging.getLogger(__name__)
router = APIRouter(tags=["integrations"], include_in_schema=False)
MAX_BODY = 256 * 1024
IN_REQUEST_TIMEOUT_S = 3.0
"""`user/info` inside the callback: WeChat gives up after 5 s and pushes again."""
LOGIN_COOKIE = "siyu_wx_login"
LOGIN_COOKIE_PATH = "/h5/wechat"


async def _raw_body(request: Request) -> bytes:
    """The body, refused (413) from its declared length or as soon as it grows past `MAX_BODY`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise HTTPException(413, "too large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise HTTPException(413, "too large")
        chunks.append(chunk)
    return b"".join(chunks)


def _config(database: Database, ws: int | None) -> WechatConfig | None:
    if ws is None:
        return None
    with database.transaction(read_only=True) as session:
        bind_workspace(session, ws)
        try:
            return load_account(session, ws)
        except NotConfigured:
            return None


def _reject(database: Database, config: WechatConfig, exc: callbacks.CallbackRejected, clock: Clock) -> Response:
    logger.warning("official account callback rejected", extra={"workspace_id": config.workspace_id, "why": str(exc)})
    with database.transaction() as session:
        bind_workspace(session, config.workspace_id)
        callbacks.note_rejection(session, config, f"callback rejected: {exc}", clock)
    return PlainTextResponse(str(exc), status_code=exc.status)


@router.get("/integrations/wechat/callback")
def verify(
    request: Request,
    ws: int | None = None,
    signature: str = "",
    timestamp: str = "",
    nonce: str = "",
    echostr: str = "",
) -> Response:
    """WeChat's server-URL check."""
    database: Database = request.app.state.database
    config = _config(database, ws)
    if config is None:
        return PlainTextResponse("unknown workspace", status_code=404)
    try:
        return PlainTextResponse(
            callbacks.verify_url(config, signature=signature, timestamp=timestamp, nonce=nonce, echostr=echostr)
        )
    except callbacks.CallbackRejected as exc:
        return _reject(database, config, exc, request.app.state.clock)


@router.post("/integrations/wechat/callback")
def receive(request: Request, body: Annotated[bytes, Depends(_raw_body)], ws: int | None = None) -> Response:
    """One push from WeChat: verify, decrypt, store once, process; "success" fast."""
    database: Database = request.app.state.database
    clock: Clock = request.app.state.clock
    config = _config(database, ws)
    if config is None:
        return PlainTextResponse("unknown workspace", status_code=404)
    seen = token_store(request.app.state.settings.broker_url)
    try:
        xml = callbacks.open_push(config, dict(request.query_params), body, seen=seen)
        payload = callbacks.parse(xml)
    except callbacks.CallbackRejected as exc:
        return _reject(database, config, exc, clock)
    # Stored and committed first; `user/info` is asked with no transaction open, then the event is
    # processed in a transaction of its own (skipped if the sweep got to it meanwhile).
    with database.transaction() as session:
        bind_workspace(session, config.workspace_id)
        event, is_new = callbacks.store(session, config, xml, payload, clock)
        event_id, attempts = event.id, event.attempts
    if is_new:
        client: OfficialClient | None
        try:
            client = client_for(config)
            client.timeout = IN_REQUEST_TIMEOUT_S
        except NotConfigured:
            client = None
        info = callbacks.lookup(payload, config, client)  # without a client: NotConfigured for a follow
        with database.transaction() as session:
            bind_workspace(session, config.workspace_id)
            stored = callbacks.reclaim(session, config.workspace_id, event_id, attempts)
            if stored is not None:
                callbacks.process(session, stored, config, clock, info)
    return PlainTextResponse("success")


@router.get("/h5/wechat/login")
def login(request: Request, ws: int | None = None, to: str = "home") -> Response:
    """Send the member to WeChat's authorize page (the page they wanted travels in the state)."""
    database: Database = request.app.state.database
    config = _config(database, ws)
    if config is None or ws is None:
        return PlainTextResponse("unknown workspace", status_code=404)
    settings = request.app.state.settings
    clock: Clock = request.app.state.clock
    nonce = secrets.token_urlsafe(24)
    state = oauth.sign_state(
        settings.session_secret(),
        ws,
        to if to in PURPOSES else "home",
        nonce=nonce,
        issued_at=int(clock.now().timestamp()),
    )
    response = RedirectResponse(oauth.authorize_url(config, _redirect_uri(settings.public_url), state), status_code=302)
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        max_age=int(oauth.STATE_MAX_AGE.total_seconds()),
        path=LOGIN_COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=settings.session_cookie_secure,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _redirect_uri(public_url: str) -> str:
    return public_url.rstrip("/") + "/h5/wechat/oauth"


@router.get("/h5/wechat/oauth")
def oauth_callback(request: Request, code: str = "", state: str = "") -> Response:
    """Back from WeChat: identify the member and open the member H5 session."""
    settings = request.app.state.settings
    database: Database = request.app.state.database
    clock: Clock = request.app.state.clock
    if not code:  # the user refused the authorization (snsapi_userinfo)
        return PlainTextResponse("authorization refused", status_code=403)
    try:
        workspace_id, purpose = oauth.read_state(
            settings.session_secret(),
            state,
            nonce=request.cookies.get(LOGIN_COOKIE),
            now=int(clock.now().timestamp()),
        )
    except oauth.OAuthFailed as exc:
        return PlainTextResponse(str(exc), status_code=400)
    config = _config(database, workspace_id)
    if config is None:
        return PlainTextResponse("unknown workspace", status_code=404)
    try:
        user = oauth.exchange(config, _redirect_uri(settings.public_url), code)
    except WecomError as exc:
        with database.transaction() as session:
            bind_workspace(session, workspace_id)
            callbacks.note_error(session, config, exc, clock)
        return PlainTextResponse("WeChat login failed, please try again", status_code=400 if not exc.retryable else 503)
    with database.transaction() as session:
        bind_workspace(session, workspace_id)
        customer_id = oauth.member_for(session, config, user, clock).id
    value, _csrf = session_cookie_value(
        workspace_id=workspace_id, customer_id=customer_id, secret=settings.session_secret(), clock=clock
    )
    response = RedirectResponse(PURPOSES.get(purpose, "/m/"), status_code=303)
    response.set_cookie(
        COOKIE_NAME,
        value,
        max_age=int(link_lifetime(settings).total_seconds()),
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=settings.session_cookie_secure,
    )
    response.delete_cookie(LOGIN_COOKIE, path=LOGIN_COOKIE_PATH)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
