"""The delivery policy page: frequency caps per scope and period, platform caps, quiet hours,
deduplication, the approval threshold and the moments marketing share."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.kit.errors import DomainError
from siyu.messaging import policy as rules
from siyu.messaging.schemas import PolicyIn
from siyu.messaging.service import policy_settings
from siyu.messaging.views.forms import field_of, integer, text, validated
from siyu.models import AdapterKind, TouchPolicy
from siyu.web.deps import ConsoleCtx, Ctx, FormDep
from siyu.web.pages import error_text, redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)
PATH = "/channel-accounts/policy"
CAP_SCOPES = (rules.ALL, *(str(k) for k in AdapterKind if k not in (AdapterKind.SANDBOX, AdapterKind.WECOM_GROUP)))
"""Rows of the frequency cap table: every channel together, then each kind that reaches one customer."""
PLATFORM_SCOPES = (str(AdapterKind.WECOM_CUSTOMER), str(AdapterKind.SMS_ALIYUN), str(AdapterKind.SMS_TENCENT))
"""Rows of the platform cap table: the kinds whose platforms limit messages per customer."""
NUMBERS = ("dedup_days", "approval_threshold", "moments_marketing_share")
SHOWN = frozenset({"form", "caps", "platform_caps", "quiet_start", "quiet_end", *NUMBERS})


def _cells(caps: dict[str, Any], scopes: tuple[str, ...]) -> dict[str, dict[str, str]]:
    return {s: {p: str((caps.get(s) or {}).get(p, "")) for p in rules.PERIODS} for s in scopes}


def _values_of(row: TouchPolicy) -> dict[str, Any]:
    return {
        "caps": _cells(row.caps or {}, CAP_SCOPES),
        "platform_caps": _cells(row.platform_caps or {}, PLATFORM_SCOPES),
        "quiet_start": row.quiet_start,
        "quiet_end": row.quiet_end,
    } | {n: str(getattr(row, n)) for n in NUMBERS}


def _values_from(form: FormData) -> dict[str, Any]:
    return {
        "caps": {s: {p: text(form, f"caps.{s}.{p}") for p in rules.PERIODS} for s in CAP_SCOPES},
        "platform_caps": {s: {p: text(form, f"platform_caps.{s}.{p}") for p in rules.PERIODS} for s in PLATFORM_SCOPES},
        "quiet_start": text(form, "quiet_start"),
        "quiet_end": text(form, "quiet_end"),
    } | {n: text(form, n) for n in NUMBERS}


def _caps(cells: dict[str, dict[str, str]], name: str) -> dict[str, dict[str, int]]:
    """Filled cells only: an empty cell is "no cap" for that scope and period."""
    caps: dict[str, dict[str, int]] = {}
    for scope, periods in cells.items():
        for period, value in periods.items():
            limit = integer(value, f"{name}.{scope}.{period}")
            if limit is not None:
                caps.setdefault(scope, {})[period] = limit
    return caps


def _input(values: dict[str, Any]) -> PolicyIn:
    data: dict[str, Any] = {
        "caps": _caps(values["caps"], "caps"),
        "platform_caps": _caps(values["platform_caps"], "platform_caps"),
        "quiet_start": values["quiet_start"],
        "quiet_end": values["quiet_end"],
    } | {n: integer(values[n], n) for n in NUMBERS}
    return validated(PolicyIn, data)


def _page(
    request: Request,
    ctx: Ctx,
    values: dict[str, Any],
    *,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    row = policy_settings.get_policy(ctx.session, ctx.actor)
    context = {
        "values": values,
        "errors": errors or {},
        "periods": rules.PERIODS,
        "cap_scopes": CAP_SCOPES,
        "platform_scopes": PLATFORM_SCOPES,
        "saved": row.id is not None,
        "updated_at": row.updated_at if row.id is not None else None,
    }
    return render(request, "channel_accounts/policy.html", context, status_code=status_code)


@router.get(PATH)
def policy_page(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.TOUCH_READ)
    return _page(request, ctx, _values_of(policy_settings.get_policy(ctx.session, ctx.actor)))


@router.post(PATH)
def save_policy(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    """Save the policy; every later admission uses it (deliveries already planned keep theirs)."""
    ctx.actor.require(Scope.TOUCH_CHANNELS)
    values = _values_from(form)
    try:
        policy_settings.save_policy(ctx.session, actor=ctx.actor, data=_input(values), clock=ctx.clock)
    except DomainError as exc:
        ctx.session.rollback()
        status = exc.status_code if 400 <= exc.status_code < 500 else 400
        return _page(request, ctx, values, errors={field_of(exc, SHOWN): error_text(request, exc)}, status_code=status)
    _ = translator(request)
    flash(request, _("发送规则已保存"))
    return redirect(PATH)
