"""Member H5 pages of referrals: my code, link and poster, progress towards unlocks and fission targets.

`/m/referral` lists the programs the member may invite for, each with their code (made on first
view), their link and poster, an "I shared" button (a share visit for the K-factor), their
qualified/pending count, the unlock ladder or fission target, and the rewards they received
(reversed ones marked 已撤销). The rules all live in the referrals services; this only shows them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session
from starlette.responses import Response

from siyu.kit.clock import Clock
from siyu.kit.errors import DomainError
from siyu.loyalty.h5 import reading
from siyu.loyalty.h5.links import MemberSession
from siyu.loyalty.h5.views.common import (
    FormDep,
    MemberDep,
    MemberRoute,
    clock_of,
    member_transaction,
    render_member,
    see_other,
    translator,
)
from siyu.models import Customer
from siyu.models.referral import ProgramKind, ReferralCode, ReferralProgram, ReferralReward, VisitKind
from siyu.referrals import attribution, codes, programs, progress
from siyu.referrals.errors import ProgramNotFound
from siyu.referrals.posters import PosterSpec, display_name, poster_png
from siyu.referrals.progress import MemberProgress
from siyu.referrals.public import device_hash

router = APIRouter(route_class=MemberRoute)


@dataclass(frozen=True)
class ProgramCard:
    """One program on the member's referral page."""

    program: ReferralProgram
    code: ReferralCode
    link: str
    progress: MemberProgress
    is_fission: bool


def referral_link(request: Request, code: str) -> str:
    """The public link a member shares: `{public_url}/r/{code}`."""
    return f"{request.app.state.settings.public_url.rstrip('/')}/r/{code}"


def reward_label(reward: ReferralReward, _: Callable[[str], str]) -> str:
    """What a reward was, for the member: points, a coupon or a gift."""
    if reward.points:
        return _("{points} 积分").format(points=f"{reward.points:,}")
    if reward.coupon_id is not None:
        return _("优惠券")
    if reward.redemption_id is not None:
        return _("礼品")
    return _("奖励")


def role_labels(_: Callable[[str], str]) -> dict[str, str]:
    return {"referrer": _("邀请奖励"), "referee": _("新人奖励"), "unlock": _("阶梯奖励")}


def _program(
    session: Session, *, workspace_id: int, customer_id: int, program_id: int, clock: Clock
) -> ReferralProgram:
    """One of the member's eligible programs (as `programs.eligible_programs` would list it), or
    ProgramNotFound (a friendly 404)."""
    if programs.live_customer(session, workspace_id, customer_id) is not None:
        program = session.get(ReferralProgram, program_id)
        if (
            program is not None
            and program.workspace_id == workspace_id
            and programs.is_running(program, clock.now())
            and programs.member_is_eligible(session, program=program, customer_id=customer_id, clock=clock)
        ):
            return program
    raise ProgramNotFound("no such program for this member")


def _program_code(
    session: Session, member: MemberSession, program_id: int, clock: Clock
) -> tuple[ReferralProgram, ReferralCode]:
    """One of the member's eligible programs and their code in it (made on first use)."""
    program = _program(
        session,
        workspace_id=member.workspace_id,
        customer_id=member.customer_id,
        program_id=program_id,
        clock=clock,
    )
    code = codes.code_for(
        session,
        workspace_id=member.workspace_id,
        program_id=program.id,
        customer_id=member.customer_id,
        clock=clock,
    )
    return program, code


@router.get("/referral")
def referral_page(request: Request, member: MemberDep, shared: int | None = None) -> Response:
    """The member's programs: code, link, poster, progress and rewards."""
    clock = clock_of(request)
    with member_transaction(request, member) as session:  # writes: a member's code is made on first view
        cards: list[ProgramCard] = []
        found = programs.eligible_programs(
            session, workspace_id=member.workspace_id, customer_id=member.customer_id, clock=clock
        )
        for program in found:
            try:
                code = codes.code_for(
                    session,
                    workspace_id=member.workspace_id,
                    program_id=program.id,
                    customer_id=member.customer_id,
                    clock=clock,
                )
            except DomainError:
                continue  # not eligible after all (a race with the program's status): skip it
            attribution.record_view(session, code=code, device_id=device_hash(request), clock=clock)
            mine = progress.member_progress(
                session, workspace_id=member.workspace_id, customer_id=member.customer_id, program_id=program.id
            )
            is_fission = program.kind in (ProgramKind.GROUP_FISSION, ProgramKind.TASK_FISSION)
            cards.append(ProgramCard(program, code, referral_link(request, code.code), mine, is_fission))
        row = reading.member_of(session, workspace_id=member.workspace_id, customer_id=member.customer_id)
        _ = translator(request)
        return render_member(
            request,
            session,
            member,
            "member/referral.html",
            {
                "cards": cards,
                "shared": shared,
                "balance": reading.available_points(session, row, clock=clock),
                "reward_label": lambda reward: reward_label(reward, _),
                "roles": role_labels(_),
            },
            tab="home",
        )


@router.get("/referral/{program_id}/poster.png")
def poster(request: Request, member: MemberDep, program_id: int) -> Response:
    """The member's share poster for one program (PNG)."""
    clock = clock_of(request)
    _ = translator(request)
    with member_transaction(request, member) as session:
        program, code = _program_code(session, member, program_id, clock)
        attribution.record_view(session, code=code, device_id=device_hash(request), clock=clock)
        customer = session.get(Customer, member.customer_id)
        name = display_name(customer.name if customer else None, customer.phone if customer else None)
        spec = PosterSpec(
            code=code.code,
            link=referral_link(request, code.code),
            title=program.poster_title or program.name,
            text=program.poster_text,
            member_name=name,
            brand=reading.brand_name(session, member.workspace_id),
            version=program.updated_at.isoformat(),
            background=program.poster_background_png,
        )
    png = poster_png(spec, invite_line=_("{name} 邀请你").format(name=name), scan_line=_("长按识别二维码"))
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})


@router.post("/referral/{program_id}/shared")
def shared(request: Request, member: MemberDep, form: FormDep, program_id: int) -> Response:
    """The member says they shared their link or saved their poster: one share visit."""
    clock = clock_of(request)
    with member_transaction(request, member) as session:
        code = _program_code(session, member, program_id, clock)[1]
        attribution.record_visit(
            session, code=code, kind=VisitKind.SHARE, visitor_id=None, device_id=device_hash(request), clock=clock
        )
    return see_other(f"/m/referral?shared={program_id}")
