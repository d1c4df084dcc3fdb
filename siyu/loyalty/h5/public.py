"""The member H5 center: tier, points, check-in, tasks, rewards mall, coupons (signed links).

`GET /m/enter?t=…` checks a signed link and opens a member session (a signed HttpOnly cookie
scoped to `/m`), then sends the member to the page the link is for. Every other page needs that
session; forms post the session's CSRF token. Pages live in `siyu/loyalty/h5/views/`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from siyu.community.challenges import h5 as challenges_h5
from siyu.community.groups import h5 as groups_h5
from siyu.community.koc import h5 as koc_h5
from siyu.community.lottery import h5 as lottery_h5
from siyu.community.resources import h5 as resources_h5
from siyu.db import Database
from siyu.loyalty.h5.links import (
    COOKIE_NAME,
    COOKIE_PATH,
    PURPOSES,
    MemberLinkInvalid,
    link_lifetime,
    read_link_token,
    session_cookie_value,
)
from siyu.loyalty.h5.reading import current_customer
from siyu.loyalty.h5.views import coupons, home, mall, points
from siyu.loyalty.h5.views.common import FormDep, MemberRoute, clock_of, message_page, see_other, translator
from siyu.referrals import h5 as referrals_h5
from siyu.referrals.commission import h5 as commission_h5
from siyu.workspaces.scope import bind_workspace

router = APIRouter(prefix="/m", include_in_schema=False, route_class=MemberRoute)


@router.get("/enter")
def enter(request: Request, t: str = "") -> Response:
    """Open the member's session from a signed link, then land on the page the link is for."""
    settings = request.app.state.settings
    clock = clock_of(request)
    identity = read_link_token(t, secret=settings.session_secret(), clock=clock, max_age=link_lifetime(settings))
    database: Database = request.app.state.database
    with database.transaction(read_only=True) as session:
        bind_workspace(session, identity.workspace_id)
        customer = current_customer(session, workspace_id=identity.workspace_id, customer_id=identity.customer_id)
        if customer is None:  # erased, or another brand's id in a forged-looking but valid link
            raise MemberLinkInvalid("the member of this link is gone")
        customer_id = customer.id
    value, _csrf = session_cookie_value(
        workspace_id=identity.workspace_id, customer_id=customer_id, secret=settings.session_secret(), clock=clock
    )
    response = see_other(PURPOSES[identity.purpose])
    response.set_cookie(
        COOKIE_NAME,
        value,
        max_age=int(link_lifetime(settings).total_seconds()),
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=settings.session_cookie_secure,
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # the token must not leak to other sites
    return response


@router.post("/logout")
def logout(request: Request, _form: FormDep) -> Response:
    """End the member session on this phone."""
    _ = translator(request)
    response = message_page(
        request, title=_("已退出登录"), message=_("如需再次进入，请打开品牌发给您的会员中心链接。"), status_code=200
    )
    response.delete_cookie(COOKIE_NAME, path=COOKIE_PATH)
    return response


for _pages in (
    home.router,
    points.router,
    mall.router,
    coupons.router,
    referrals_h5.router,
    commission_h5.router,
    groups_h5.router,
    resources_h5.router,
    challenges_h5.router,
    lottery_h5.router,
    koc_h5.router,
):
    router.include_router(_pages)
