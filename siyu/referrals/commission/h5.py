"""Member H5 page of an approved KOC: commission balance, entries and statements."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from siyu.community.koc.service import approved_koc
from siyu.loyalty.h5.views.common import (
    MemberDep,
    MemberRoute,
    member_transaction,
    message_page,
    render_member,
    translator,
)
from siyu.referrals.commission import ledger, statements

router = APIRouter(route_class=MemberRoute)


def _(message: str) -> str:
    return message


KIND_LABELS = {"earn": _("订单佣金"), "reverse": _("退款冲回"), "adjust": _("人工调整")}
STATUS_LABELS = {"open": _("待结算"), "settled": _("已结算")}


@router.get("/commission")
def commission(request: Request, member: MemberDep) -> Response:
    """The KOC's balance, unsettled amount, latest entries with reasons, and statements; others get a 403 page."""
    t = translator(request)
    ws, customer_id = member.workspace_id, member.customer_id
    with member_transaction(request, member, read_only=True) as session:
        if approved_koc(session, workspace_id=ws, customer_id=customer_id) is None:
            return message_page(
                request,
                title=t("仅限认证 KOC"),
                message=t("分销佣金仅对品牌认证的 KOC 开放。想成为 KOC？可以在会员中心提交申请。"),
                status_code=403,
            )
        rows = statements.list_statements(session, workspace_id=ws, koc_customer_id=customer_id)
        context = {
            "balance": ledger.balance(session, workspace_id=ws, koc_customer_id=customer_id),
            "unsettled": ledger.unsettled(session, workspace_id=ws, koc_customer_id=customer_id),
            "entries": ledger.list_entries(session, workspace_id=ws, koc_customer_id=customer_id, limit=50),
            "statements": rows,
            "settled_ids": {s.id for s in rows if s.status == "settled"},
            "kind_labels": {k: t(v) for k, v in KIND_LABELS.items()},
            "status_labels": {k: t(v) for k, v in STATUS_LABELS.items()},
        }
        return render_member(request, session, member, "member/commission.html", context, tab="home")
