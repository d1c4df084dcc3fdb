"""The rewards mall: list, detail, redeem (with a confirmation step; gifts take an address), and
my redemptions with their fulfilment state."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from siyu.kit.errors import DomainError
from siyu.kit.ids import MAX_ID
from siyu.loyalty.errors import (
    InsufficientPoints,
    InvalidAddress,
    OutOfStock,
    RedemptionLimitReached,
    RewardNotFound,
    RewardNotVisible,
)
from siyu.loyalty.h5 import reading
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
from siyu.loyalty.rewards.service import RewardView, mall, redeem
from siyu.models import RewardKind

router = APIRouter(route_class=MemberRoute)


def kind_labels(_: Callable[[str], str]) -> dict[str, str]:
    return {
        RewardKind.COUPON: _("优惠券"),
        RewardKind.GIFT: _("实物礼品"),
        RewardKind.PRIVILEGE: _("会员权益"),
        RewardKind.LOTTERY_ENTRY: _("抽奖机会"),
    }


def why_not_labels(_: Callable[[str], str]) -> dict[str, str]:
    return {
        "out_of_stock": _("已兑完"),
        "limit_reached": _("已达兑换上限"),
        "insufficient_points": _("积分不足"),
    }


def status_labels(_: Callable[[str], str]) -> dict[str, str]:
    return {
        "completed": _("兑换完成"),
        "awaiting_shipment": _("待发货"),
        "shipped": _("已发货"),
        "delivered": _("已签收"),
        "cancelled": _("已取消"),
    }


def _labels(request: Request) -> dict[str, Any]:
    _ = translator(request)
    return {"kinds": kind_labels(_), "why_not": why_not_labels(_), "statuses": status_labels(_)}


def _reward_id(value: str) -> int:
    """A reward id from the path; anything else is a reward that does not exist (404 page)."""
    if not value.isascii() or not value.isdigit() or len(value) > 19 or not 0 < int(value) <= MAX_ID:
        raise RewardNotFound("no such reward")
    return int(value)


def _view(views: list[RewardView], reward_id: int) -> RewardView:
    for view in views:
        if view.reward.id == reward_id:
            return view
    raise RewardNotFound(f"reward {reward_id} is not in this member's mall", details={"reward_id": reward_id})


@router.get("/rewards")
def rewards(request: Request, member: MemberDep) -> Response:
    """The rewards this member sees, with their price and whether they can redeem them now."""
    clock = clock_of(request)
    with member_transaction(request, member, read_only=True) as session:
        views = mall(session, workspace_id=member.workspace_id, customer_id=member.customer_id, clock=clock)
        row = reading.member_of(session, workspace_id=member.workspace_id, customer_id=member.customer_id)
        return render_member(
            request,
            session,
            member,
            "member/rewards.html",
            {"views": views, "balance": reading.available_points(session, row, clock=clock)} | _labels(request),
            tab="rewards",
        )


def _detail(
    request: Request,
    member: MemberDep,
    reward_id: int,
    *,
    confirm: bool,
    error: str | None = None,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    clock = clock_of(request)
    with member_transaction(request, member, read_only=True) as session:
        views = mall(session, workspace_id=member.workspace_id, customer_id=member.customer_id, clock=clock)
        view = _view(views, reward_id)
        row = reading.member_of(session, workspace_id=member.workspace_id, customer_id=member.customer_id)
        balance = reading.available_points(session, row, clock=clock)
        values = form or {}
        return render_member(
            request,
            session,
            member,
            "member/reward.html",
            {
                "view": view,
                "balance": balance,
                "confirm": confirm,
                "error": error,
                "errors": errors or {},
                "form": values,
                "idempotency_key": values.get("idempotency_key") or secrets.token_urlsafe(16),
            }
            | _labels(request),
            tab="rewards",
            status_code=status_code,
        )


@router.get("/rewards/{reward_id}")
def reward_detail(request: Request, reward_id: str, member: MemberDep) -> Response:
    """One reward: what it is, its price, stock and limit, and why it cannot be redeemed (if so)."""
    return _detail(request, member, _reward_id(reward_id), confirm=False)


@router.get("/rewards/{reward_id}/redeem")
def confirm_redeem(request: Request, reward_id: str, member: MemberDep) -> Response:
    """The confirmation step: the price and the balance after; a gift asks for the address."""
    return _detail(request, member, _reward_id(reward_id), confirm=True)


def _refusal(request: Request, exc: DomainError) -> tuple[str, dict[str, str]]:
    """What to tell the member when a redemption is refused (nothing was written)."""
    _ = translator(request)
    if isinstance(exc, InvalidAddress):
        field = str((exc.details or {}).get("field", "")).removeprefix("address.")
        texts = {
            "name": _("请填写收货人姓名"),
            "phone": _("请填写正确的手机号"),
            "address": _("请填写详细地址（至少 5 个字）"),
        }
        return _("请检查收货信息"), {field: texts.get(field, _("请检查收货信息"))}
    if isinstance(exc, InsufficientPoints):
        return _("积分不足，暂时无法兑换"), {}
    if isinstance(exc, OutOfStock):
        return _("来晚了，礼品已兑完"), {}
    if isinstance(exc, RedemptionLimitReached):
        return _("您已达到这个礼品的兑换上限"), {}
    if isinstance(exc, RewardNotVisible):
        return _("您的会员等级暂时不能兑换这个礼品"), {}
    return _("兑换未成功，请稍后再试"), {}


@router.post("/rewards/{reward_id}/redeem")
def do_redeem(request: Request, reward_id: str, member: MemberDep, form: FormDep) -> Response:
    """Redeem: points and stock are reserved in one transaction; a double tap redeems once (the
    confirmation page's idempotency key)."""
    rid = _reward_id(reward_id)
    key = (form.get("idempotency_key") or "").strip()
    address = {name: form.get(name, "") for name in ("name", "phone", "address")}
    try:
        with member_transaction(request, member) as session:
            redemption = redeem(
                session,
                workspace_id=member.workspace_id,
                customer_id=member.customer_id,
                reward_id=rid,
                idempotency_key=f"h5:{member.customer_id}:{key}" if key else "",
                address=address if any(address.values()) else None,
                clock=clock_of(request),
            )
            redemption_id = redemption.id
    except RewardNotFound:
        raise
    except DomainError as exc:
        error, errors = _refusal(request, exc)
        status_code = 422 if isinstance(exc, InvalidAddress) else exc.status_code
        return _detail(
            request, member, rid, confirm=True, error=error, errors=errors, form=form, status_code=status_code
        )
    return see_other(f"/m/redemptions?new={redemption_id}")


@router.get("/redemptions")
def redemptions(request: Request, member: MemberDep, new: int | None = None) -> Response:
    """My redemptions: the reward, points, fulfilment state, tracking number, coupon code."""
    with member_transaction(request, member, read_only=True) as session:
        row = reading.member_of(session, workspace_id=member.workspace_id, customer_id=member.customer_id)
        views = reading.member_redemptions(session, member=row)
        return render_member(
            request,
            session,
            member,
            "member/redemptions.html",
            {"views": views, "new": new} | _labels(request),
            tab="rewards",
        )
