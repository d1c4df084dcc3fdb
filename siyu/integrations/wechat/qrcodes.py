"""Parametric official-account QR codes (带参数二维码) as a live-code route.

`ensure_qr(session, config, live_code_id, variant, clock)` creates (once) a permanent
QR_LIMIT_STR_SCENE code whose `scene_str` is the live code state (`siyu.livecodes.state`), so a
follow through it is attributed like a WeCom add with that `state`. `qr_for_scan` is what the
landing page shows a scanner.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.integrations.wechat.client import OfficialClient
from siyu.integrations.wechat.config import WechatConfig
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput
from siyu.livecodes.state import encode_state
from siyu.models import ExperimentVariant, LiveCode, LiveCodeScan, WechatOfficialAccount, WechatQrCode


def ensure_qr(
    session: Session,
    config: WechatConfig,
    client: OfficialClient,
    *,
    live_code_id: int,
    variant: str | None,
    clock: Clock,
) -> WechatQrCode:
    """The permanent QR of a live code (and arm), created on WeChat the first time (`WecomError` on failure)."""
    code = session.scalar(
        select(LiveCode).where(LiveCode.id == live_code_id, LiveCode.workspace_id == config.workspace_id)
    )
    if code is None or code.deleted_at is not None:
        raise InvalidInput("unknown live code", details={"field": "live_code_id"})
    if variant is not None:
        known = (
            session.scalar(
                select(ExperimentVariant.id).where(
                    ExperimentVariant.experiment_id == code.experiment_id, ExperimentVariant.key == variant
                )
            )
            if code.experiment_id is not None
            else None
        )
        if known is None:
            raise InvalidInput(
                f"variant {variant!r} is not an arm of the live code's experiment", details={"field": "variant"}
            )
    try:
        scene = encode_state(code.id, code.channel_id, variant)
    except ValueError as exc:
        raise InvalidInput(str(exc), details={"field": "variant"}) from exc
    existing = session.scalar(
        select(WechatQrCode).where(WechatQrCode.workspace_id == config.workspace_id, WechatQrCode.scene == scene)
    )
    if existing is not None:
        return existing
    answer = client.call(
        "POST",
        "qrcode/create",
        data={"action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": scene}}},
    )
    row = WechatQrCode(
        workspace_id=config.workspace_id,
        live_code_id=code.id,
        variant=variant,
        scene=scene,
        ticket=str(answer["ticket"])[:200],
        url=str(answer.get("url") or "")[:500] or None,
        expires_at=None,
        created_at=clock.now(),
    )
    session.add(row)
    session.flush()
    return row


def qr_for_scan(session: Session, scan: LiveCodeScan) -> str | None:
    """The official-account QR (the URL it encodes) to show a scanner of a live code, or None when
    the code has no official-account route (or the account is switched off). Preference: the scan's
    arm with the code's current channel, the arm with any channel, then the plain code likewise;
    the newest first within each."""
    active = session.scalar(
        select(WechatOfficialAccount.id).where(
            WechatOfficialAccount.workspace_id == scan.workspace_id, WechatOfficialAccount.is_active.is_(True)
        )
    )
    if active is None:
        return None
    channel_id = session.scalar(select(LiveCode.channel_id).where(LiveCode.id == scan.live_code_id))
    rows = session.scalars(
        select(WechatQrCode)
        .where(WechatQrCode.workspace_id == scan.workspace_id, WechatQrCode.live_code_id == scan.live_code_id)
        .order_by(WechatQrCode.id.desc())
    ).all()

    def current(variant: str | None) -> str | None:
        try:
            return encode_state(scan.live_code_id, channel_id, variant)
        except ValueError:
            return None

    for variant in dict.fromkeys([scan.variant, None]):
        wanted = current(variant)
        same_arm = [r for r in rows if r.variant == variant]
        chosen = next((r for r in same_arm if r.scene == wanted), None) or next(iter(same_arm), None)
        if chosen is not None:
            return chosen.url
    return None
