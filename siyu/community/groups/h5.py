"""Member H5 pages of community groups: `/m/groups`, the member's current groups."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from siyu.community.groups.queries import groups_of
from siyu.loyalty.h5.views.common import MemberDep, MemberRoute, member_transaction, render_member, translator

router = APIRouter(route_class=MemberRoute)


@router.get("/groups")
def my_groups(request: Request, member: MemberDep) -> Response:
    """The groups the member is in now: name, since when, role, the group's join link."""
    _ = translator(request)
    roles = {"owner": _("群主"), "admin": _("管理员"), "koc": _("KOC"), "member": _("成员")}
    with member_transaction(request, member, read_only=True) as session:
        rows = groups_of(session, workspace_id=member.workspace_id, customer_id=member.customer_id)
        context = {"groups": rows, "roles": roles, "flash_label": _("闪群")}
        return render_member(request, session, member, "member/groups.html", context, tab="home")
