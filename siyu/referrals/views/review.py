"""Console pages of referrals themselves: the fraud review queue and the referral tree."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.commerce.views.kit import customer_names
from siyu.kit.errors import InvalidInput
from siyu.models.referral import ReferralProgram, ReferralStatus
from siyu.referrals import fraud, programs, tree
from siyu.web.deps import ConsoleCtx, FormDep, IdPath
from siyu.web.pages import redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)
QUEUE_LIMIT = 200


def _(message: str) -> str:
    return message


STATUSES = {
    "pending": _("待完成"),
    "qualified": _("已完成"),
    "flagged": _("待审核"),
    "rejected": _("已拒绝"),
    "reversed": _("已撤销"),
}


@router.get("/growth/referrals/review")
def review_queue(request: Request, ctx: ConsoleCtx) -> Response:
    """Flagged referrals (of customers the reviewer may see), oldest first, with referrer, referee,
    program and why they were held."""
    ctx.actor.require(Scope.GROWTH_REVIEW)
    ws = ctx.actor.workspace_id
    flagged = fraud.list_referrals(ctx.session, actor=ctx.actor, status=ReferralStatus.FLAGGED, limit=QUEUE_LIMIT)
    rows = sorted(flagged, key=lambda r: r.id)  # oldest first: held the longest
    names = customer_names(
        ctx.session, ws, [r.referrer_customer_id for r in rows] + [r.referee_customer_id for r in rows]
    )
    program_names = {
        pid: name
        for pid, name in ctx.session.execute(
            select(ReferralProgram.id, ReferralProgram.name).where(ReferralProgram.workspace_id == ws)
        )
    }
    context = {"rows": rows, "names": names, "program_names": program_names}
    return render(request, "referrals/review.html", context)


@router.post("/growth/referrals/review/{referral_id}")
def review_referral(request: Request, ctx: ConsoleCtx, referral_id: IdPath, form: FormDep) -> Response:
    """Approve or reject one flagged referral, with a note (audited by the service)."""
    ctx.actor.require(Scope.GROWTH_REVIEW)
    decision = form.get("decision")
    if decision not in ("approve", "reject"):
        raise InvalidInput("decision must be approve or reject", details={"field": "decision"})
    note = form.get("note")
    note_text = note.strip()[:200] if isinstance(note, str) else ""
    fraud.review(
        ctx.session,
        actor=ctx.actor,
        referral_id=referral_id,
        approve=decision == "approve",
        note=note_text,
        clock=ctx.clock,
    )
    t = translator(request)
    flash(request, t("已通过") if decision == "approve" else t("已拒绝"))
    return redirect("/growth/referrals/review")


@router.get("/growth/referrals/tree")
def tree_page(request: Request, ctx: ConsoleCtx, program_id: int | None = None, root: int | None = None) -> Response:
    """Who invited whom: a nested list, per program or from one customer."""
    ctx.actor.require(Scope.GROWTH_READ)
    program = programs.get_program(ctx.session, actor=ctx.actor, program_id=program_id) if program_id else None
    nodes = tree.referral_tree(ctx.session, actor=ctx.actor, program_id=program_id, root_customer_id=root)
    context: dict[str, Any] = {"nodes": nodes, "program": program, "root": root, "statuses": STATUSES}
    return render(request, "referrals/tree.html", context)
