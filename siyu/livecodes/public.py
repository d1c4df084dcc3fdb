"""The public side of live codes: the scan landing page and the embedded-mode simulated add / join.

`/q/{slug}` is what every printed QR encodes. It never answers a 500: unknown, malformed,
retired and saturated codes each get a friendly page in the visitor's language.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated

import segno
from fastapi import APIRouter, Form, Request
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import Response

from siyu.kit.errors import DomainError
from siyu.kit.ids import MAX_ID
from siyu.livecodes.adds import record_add, record_group_join, simulated_external_userid
from siyu.livecodes.scan import (
    GONE_OUTCOME,
    NO_ROUTE_OUTCOME,
    CodeSnapshot,
    ScanResult,
    commit_scan,
    find_code,
    load_snapshot,
    plan_scan,
    snapshots,
)
from siyu.models import LiveCode, LiveCodeKind, LiveCodeScan, Staff
from siyu.web.templating import render_public, visitor_translator
from siyu.web.visitor import client_ip_hash, remember_visitor, short_user_agent, visitor_cookie, visitor_id
from siyu.workspaces.scope import bind_workspace

logger = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
SLUG = re.compile(r"^[A-Za-z0-9]{4,16}$")


def _message(request: Request, title: str, message: str, status_code: int) -> Response:
    return render_public(
        request, "livecodes/public/message.html", {"title": title, "message": message}, status_code=status_code
    )


def _not_found(request: Request) -> Response:
    _ = visitor_translator(request)
    return _message(request, _("二维码无效"), _("没有找到这个二维码，请确认扫描的是商家提供的最新二维码。"), 404)


def _gone(request: Request) -> Response:
    _ = visitor_translator(request)
    return _message(request, _("活动已结束"), _("这个二维码已停止使用，感谢关注。"), 410)


def _positive_id(value: str | None) -> int | None:
    if value is None or not value.isascii() or not value.isdigit() or len(value) > 19:
        return None
    number = int(value)
    return number if 0 < number <= MAX_ID else None


def _landing(request: Request, result: ScanResult, snapshot: CodeSnapshot) -> Response:
    _ = visitor_translator(request)
    if result.outcome == GONE_OUTCOME:
        return _gone(request)
    if result.outcome == "choose_store":
        return render_public(
            request, "livecodes/public/choose_store.html", {"code": result.code, "stores": result.store_choices}
        )
    if result.outcome == NO_ROUTE_OUTCOME:
        return _message(request, _("客服忙碌中"), _("当前咨询人数较多，请稍后再扫码添加。"), 200)
    group = result.candidate.group if result.candidate else None
    contact_qr = _way_qr(result, snapshot)
    group_qr = None
    if group is not None and contact_qr:
        group_qr, contact_qr = contact_qr, None  # the group's WeCom join way
    elif group is not None and group.join_url:
        group_qr = _svg(group.join_url, scale=6)
    official_qr = _official_qr(request, result, snapshot)
    return render_public(
        request,
        "livecodes/public/landing.html",
        {
            "result": result,
            "group_qr": group_qr,
            "contact_qr": contact_qr,
            "official_qr": _svg(official_qr, scale=5) if official_qr else None,
            "simulated": request.app.state.settings.simulated_adds,
        },
    )


def _svg(data: str, *, scale: int) -> str | None:
    """A QR image of `data`, or None when it cannot be drawn (too long for a QR code)."""
    try:
        return str(segno.make(data, error="m").svg_data_uri(scale=scale))
    except (segno.DataOverflowError, ValueError):
        logger.warning("landing page QR could not be drawn", extra={"length": len(data)})
        return None


def _way_qr(result: ScanResult, snapshot: CodeSnapshot) -> str | None:
    """The real 「联系我」/ join-way QR of the scan's route and arm (else its arm-less way); else the
    route's `contact_qr_url` when it was typed by hand; else the arm's pooled way. Never another
    arm's QR: its state would attribute the add to the wrong arm. From the snapshot: no reads."""
    route = result.candidate.route if result.candidate else None
    if route is None:
        return None
    variant = result.scan.variant if result.scan else None
    ways = snapshot.way_qrs
    exact = ways.get((route.id, variant)) or ways.get((route.id, None))
    if exact:
        return exact
    hand = route.contact_qr_url if route.contact_qr_url and route.contact_qr_url not in snapshot.our_qrs else None
    return hand or ways.get((None, variant))


def _official_qr(request: Request, result: ScanResult, snapshot: CodeSnapshot) -> str | None:
    """The official-account QR URL for the scan, read only when the workspace has an account; a
    failure here never breaks the page."""
    if result.scan is None or not snapshot.official_account:
        return None
    try:
        from siyu.integrations.wechat.qrcodes import qr_for_scan  # the integration is optional

        with request.app.state.database.transaction(read_only=True) as reader:
            bind_workspace(reader, result.code.workspace_id)
            return qr_for_scan(reader, result.scan)
    except Exception:  # the landing page never answers a 500 for an optional QR
        logger.exception("landing page official-account QR lookup failed", extra={"live_code_id": result.code.id})
        return None


@router.get("/q/{slug}")
def scan_page(request: Request, slug: str, store: str | None = None) -> Response:
    """Record the scan, route it, and show the route's landing page."""
    if not SLUG.match(slug):
        return _not_found(request)
    raw_cookie, is_new_visitor = visitor_cookie(request)
    settings = request.app.state.settings
    database = request.app.state.database
    # Read first (or not at all: a cached code and a first-time visitor need no reads), then a
    # short write transaction: on SQLite concurrent scans queue for the write lock only while
    # their few writes run.
    store_id, now, vid = _positive_id(store), request.app.state.clock.now(), visitor_id(raw_cookie)
    snapshot = snapshots.get(slug, store_id)
    if snapshot is not None and is_new_visitor:
        plan = plan_scan(None, snapshot.code, visitor_id=vid, at=now, snapshot=snapshot, is_new_visitor=True)
    else:
        with database.transaction(read_only=True) as reader:
            if snapshot is None:
                code = find_code(reader, slug)
                if code is None:
                    return _not_found(request)
                snapshot = load_snapshot(reader, code, store_id=store_id)
                snapshots.put(slug, store_id, snapshot)
            plan = plan_scan(
                reader, snapshot.code, visitor_id=vid, at=now, snapshot=snapshot, is_new_visitor=is_new_visitor
            )
    code = snapshot.code
    with database.transaction() as writer:
        bind_workspace(writer, code.workspace_id)
        result = commit_scan(
            writer,
            plan,
            user_agent=short_user_agent(request),
            ip_hash=client_ip_hash(request, salt=settings.session_secret()),
        )
    response = _landing(request, result, snapshot)
    if is_new_visitor:
        remember_visitor(response, raw_cookie)
    return response


def _own_scan(session: Session, request: Request, code: LiveCode, scan_id: str) -> LiveCodeScan | None:
    """The visitor's own scan of this code: a form cannot claim someone else's scan."""
    number = _positive_id(scan_id)
    raw_cookie, _new = visitor_cookie(request)
    if number is None:
        return None
    return session.scalar(
        select(LiveCodeScan).where(
            LiveCodeScan.id == number,
            LiveCodeScan.live_code_id == code.id,
            LiveCodeScan.visitor_id == visitor_id(raw_cookie),
        )
    )


@router.post("/q/{slug}/add")
def simulated_add(
    request: Request,
    slug: str,
    scan_id: Annotated[str, Form(max_length=20)],
    name: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Embedded mode: the scanner 'adds' the staff member the scan was routed to.

    The visitor is known only by their cookie (a stand-in external_userid); nothing they type
    becomes an identity, so an anonymous form can never reach, merge into or reveal a real
    customer of the pool.
    """
    if not request.app.state.settings.simulated_adds or not SLUG.match(slug):
        return _not_found(request)
    clock = request.app.state.clock
    _ = visitor_translator(request)
    try:
        with request.app.state.database.transaction() as session:
            code = find_code(session, slug)
            if code is None or code.kind == LiveCodeKind.GROUP:
                return _not_found(request)
            scan = _own_scan(session, request, code, scan_id)
            if scan is None or scan.staff_id is None:
                return _message(request, _("请重新扫码"), _("这次扫码已失效，请重新扫描二维码。"), 409)
            outcome = record_add(
                session,
                workspace_id=code.workspace_id,
                staff_id=scan.staff_id,
                external_userid=simulated_external_userid(scan.visitor_id),
                state=scan.state,
                at=clock.now(),
                clock=clock,
                scan_id=scan.id,
                name=name.strip() or None,
            )
            sender = session.scalar(select(Staff.name).where(Staff.id == scan.staff_id))
            title = _("已经是好友啦") if outcome.already_friends else _("添加成功")
            return render_public(
                request,
                "livecodes/public/added.html",
                {"title": title, "welcome": outcome.welcome, "sender": sender},
            )
    except DomainError as error:
        return _message(request, _("添加失败"), error.message, error.status_code)


@router.post("/q/{slug}/join")
def simulated_join(
    request: Request,
    slug: str,
    scan_id: Annotated[str, Form(max_length=20)],
    name: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Embedded mode: the scanner 'joins' the group the scan was routed to."""
    if not request.app.state.settings.simulated_adds or not SLUG.match(slug):
        return _not_found(request)
    clock = request.app.state.clock
    _ = visitor_translator(request)
    try:
        with request.app.state.database.transaction() as session:
            code = find_code(session, slug)
            if code is None or code.kind != LiveCodeKind.GROUP:
                return _not_found(request)
            scan = _own_scan(session, request, code, scan_id)
            if scan is None or scan.group_id is None:
                return _message(request, _("请重新扫码"), _("这次扫码已失效，请重新扫描二维码。"), 409)
            joined = record_group_join(
                session,
                code=code,
                scan=scan,
                external_userid=simulated_external_userid(scan.visitor_id),
                at=clock.now(),
                clock=clock,
                name=name.strip() or None,
            )
            return render_public(
                request,
                "livecodes/public/added.html",
                {"title": _("已加入群聊"), "welcome": None, "sender": joined.group.name},
            )
    except DomainError as error:
        return _message(request, _("加群失败"), error.message, error.status_code)
