"""Public referral links `/r/{code}`: record the scan, then send the visitor to the program's live code.

The visitor keeps the same visitor cookie (`siyu.web.visitor`) on `/r/{code}` and on the live code's
`/q/{slug}`, so the live code's add finds this scan visit (same `visitor_id`) and the referrals
listener attributes the new customer to the member who shared. Unknown codes, programs that are not
running and erased referrers get a friendly page (404/410) in the visitor's language, never a 500.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from siyu.kit.errors import DomainError
from siyu.models import LiveCode
from siyu.models.referral import ProgramStatus, ReferralCode, ReferralProgram, VisitKind
from siyu.referrals import attribution, codes
from siyu.referrals.programs import is_running, live_customer
from siyu.web.templating import render_public, visitor_translator
from siyu.web.visitor import remember_visitor, visitor_cookie, visitor_id
from siyu.workspaces.scope import bind_workspace

router = APIRouter(include_in_schema=False)
CODE = re.compile(r"^[A-Za-z0-9]{4,16}$")


def device_hash(request: Request) -> str | None:
    """A salted hash of user agent + client address (64 hex), for the shared-device fraud rule; the
    same for the member's own shares on H5 and for scans of their link. None without an address."""
    host = request.client.host if request.client else None
    if not host:
        return None
    agent = request.headers.get("user-agent", "")[:300]
    salt = request.app.state.settings.session_secret()
    return hashlib.sha256(f"{salt}:device:{agent}:{host}".encode()).hexdigest()


def _message(request: Request, title: str, message: str, status_code: int) -> Response:
    return render_public(
        request,
        "referrals/public/message.html",
        {"title": title, "message": message},
        status_code=status_code,
    )


def _not_found(request: Request) -> Response:
    _ = visitor_translator(request)
    return _message(request, _("邀请链接无效"), _("没有找到这个邀请链接，请向好友确认链接是否完整。"), 404)


def _ended(request: Request) -> Response:
    _ = visitor_translator(request)
    return _message(request, _("邀请活动已结束"), _("这个邀请活动已经结束，感谢关注。"), 410)


def _closed_reason(session: Session, code: ReferralCode, now: datetime) -> tuple[ReferralProgram | None, str]:
    """The program and "" when the link may be followed, else why not: "unknown" or "ended"."""
    program = session.get(ReferralProgram, code.program_id)
    if program is None or program.status == ProgramStatus.DRAFT:
        return None, "unknown"  # a draft is not public yet
    if not is_running(program, now) or live_customer(session, code.workspace_id, code.customer_id) is None:
        return program, "ended"  # paused, archived, outside its dates, or the referrer erased/merged away
    return program, ""


@router.get("/r/{code}")
def follow_referral(request: Request, code: str) -> Response:
    """Record a scan visit of a member's code and 303 to the program's live code."""
    if not CODE.match(code):
        return _not_found(request)
    raw_cookie, is_new_visitor = visitor_cookie(request)
    now = request.app.state.clock.now()
    database = request.app.state.database
    try:
        with database.transaction() as session:
            found = codes.find_code(session, code)
            if found is None:
                return _not_found(request)
            bind_workspace(session, found.workspace_id)
            program, closed = _closed_reason(session, found, now)
            if closed == "unknown":
                return _not_found(request)
            live_code = session.get(LiveCode, program.live_code_id) if program and program.live_code_id else None
            if closed or live_code is None:
                return _ended(request)
            attribution.record_visit(
                session,
                code=found,
                kind=VisitKind.SCAN,
                visitor_id=visitor_id(raw_cookie),
                device_id=device_hash(request),
                clock=request.app.state.clock,
            )
            target = f"/q/{live_code.slug}"
    except DomainError as exc:
        return _not_found(request) if exc.status_code == 404 else _ended(request)
    response = RedirectResponse(target, status_code=303)
    response.headers["Cache-Control"] = "no-store"
    if is_new_visitor:
        remember_visitor(response, raw_cookie)
    return response
