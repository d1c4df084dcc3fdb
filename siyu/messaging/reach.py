"""Who can be reached on which channel: addresses, WeCom friend edges and consent, per batch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.messaging.adapters import adapter_for, consent_channel_of
from siyu.messaging.adapters.base import Needs
from siyu.models import (
    AdapterKind,
    ChannelAccount,
    Consent,
    ConsentChannel,
    ConsentStatus,
    Customer,
    Identity,
    IdentityType,
    Relationship,
    Staff,
    SuppressionReason,
    WechatOfficialAccount,
)

_SLICE = 500


@dataclass(frozen=True)
class Route:
    """How one customer will be reached: the first account in the preference list that can."""

    account: ChannelAccount
    address: str | None
    staff_id: int | None = None
    staff_userid: str | None = None


def _slices(ids: Sequence[int]) -> list[list[int]]:
    return [list(ids[i : i + _SLICE]) for i in range(0, len(ids), _SLICE)]


def route(
    session: Session,
    workspace_id: int,
    accounts: Sequence[ChannelAccount],
    customer_ids: Sequence[int],
    *,
    marketing: bool,
) -> dict[int, Route | SuppressionReason]:
    """For each customer, a `Route` or the reason none exists (`no_channel`, or `unsubscribed`
    when every channel that could reach them is one they unsubscribed from). Consent applies
    only to marketing and service messages (`marketing=True`); transactional ones ignore it."""
    ids = list(customer_ids)
    needs = {a.id: adapter_for(a).capabilities.needs for a in accounts}
    consent_of = {a.id: consent_channel_of(AdapterKind(a.kind), dict(a.settings or {})) for a in accounts}
    contacts: dict[int, tuple[str | None, str | None]] = {}
    if any(n in (Needs.PHONE, Needs.EMAIL) for n in needs.values()):
        for chunk in _slices(ids):
            for cid, phone, email in session.execute(
                select(Customer.id, Customer.phone, Customer.email).where(
                    Customer.workspace_id == workspace_id, Customer.id.in_(chunk)
                )
            ):
                contacts[cid] = (phone, email)
    friends = _wecom_friends(session, workspace_id, ids) if Needs.WECOM_FRIEND in needs.values() else {}
    openids = _openids(session, workspace_id, ids) if Needs.WECHAT_OPENID in needs.values() else {}
    unsubscribed: set[tuple[int, str]] = set()
    wanted_channels = {c for c in consent_of.values() if c is not None}
    if marketing and wanted_channels:
        for chunk in _slices(ids):
            unsubscribed |= {
                (cid, str(ch))
                for cid, ch in session.execute(
                    select(Consent.customer_id, Consent.channel).where(
                        Consent.workspace_id == workspace_id,
                        Consent.customer_id.in_(chunk),
                        Consent.channel.in_([str(c) for c in wanted_channels]),
                        Consent.status == ConsentStatus.UNSUBSCRIBED,
                    )
                )
            }
    # Erased profiles (PIPL) stay in tags and static lists for aggregates; they are never sent to,
    # whatever channel could still "reach" them.
    erased: set[int] = set()
    for chunk in _slices(ids):
        erased |= set(
            session.scalars(
                select(Customer.id).where(
                    Customer.workspace_id == workspace_id, Customer.id.in_(chunk), Customer.erased_at.is_not(None)
                )
            )
        )
    result: dict[int, Route | SuppressionReason] = {}
    for cid in ids:
        if cid in erased:
            result[cid] = SuppressionReason.ERASED
            continue
        outcome: Route | SuppressionReason = SuppressionReason.NO_CHANNEL
        for account in accounts:
            candidate = _reach(account, needs[account.id], cid, contacts, friends, openids)
            if candidate is None:
                continue
            channel: ConsentChannel | None = consent_of[account.id]
            if channel is not None and (cid, str(channel)) in unsubscribed:
                outcome = SuppressionReason.UNSUBSCRIBED
                continue
            outcome = candidate
            break
        result[cid] = outcome
    return result


def _reach(
    account: ChannelAccount,
    needs: Needs,
    customer_id: int,
    contacts: dict[int, tuple[str | None, str | None]],
    friends: dict[int, tuple[int, str, str]],
    openids: dict[int, str],
) -> Route | None:
    if needs == Needs.NOTHING:
        return Route(account, None)
    if needs == Needs.WECHAT_OPENID:
        openid = openids.get(customer_id)
        return Route(account, openid) if openid else None
    if needs == Needs.PHONE:
        phone = contacts.get(customer_id, (None, None))[0]
        return Route(account, phone) if phone else None
    if needs == Needs.EMAIL:
        email = contacts.get(customer_id, (None, None))[1]
        return Route(account, email) if email else None
    friend = friends.get(customer_id)
    if friend is None:
        return None
    staff_id, staff_userid, external_userid = friend
    return Route(account, external_userid, staff_id=staff_id, staff_userid=staff_userid)


def _openids(session: Session, workspace_id: int, ids: Sequence[int]) -> dict[int, str]:
    """customer → "<appid>:<openid>" of the workspace's active official account (an openid of
    another app id, e.g. before the account was switched, cannot be sent to)."""
    app_id = session.scalar(
        select(WechatOfficialAccount.app_id).where(
            WechatOfficialAccount.workspace_id == workspace_id, WechatOfficialAccount.is_active.is_(True)
        )
    )
    if not app_id:
        return {}
    openids: dict[int, str] = {}
    for chunk in _slices(ids):
        for cid, value in session.execute(
            select(Identity.customer_id, Identity.value).where(
                Identity.workspace_id == workspace_id,
                Identity.customer_id.in_(chunk),
                Identity.type == IdentityType.WECHAT_OPENID,
                Identity.value.startswith(f"{app_id}:", autoescape=True),
            )
        ):
            openids.setdefault(cid, value)
    return openids


def _wecom_friends(session: Session, workspace_id: int, ids: Sequence[int]) -> dict[int, tuple[int, str, str]]:
    """customer → (staff id, staff WeCom user id, external_userid) of the most recent open edge
    whose staff member is on WeCom."""
    external: dict[int, str] = {}
    edges: dict[int, tuple[int, str]] = {}
    for chunk in _slices(ids):
        for cid, value in session.execute(
            select(Identity.customer_id, Identity.value).where(
                Identity.workspace_id == workspace_id,
                Identity.customer_id.in_(chunk),
                Identity.type == IdentityType.WECOM_EXTERNAL_USERID,
            )
        ):
            external.setdefault(cid, value)
        rows = session.execute(
            select(Relationship.customer_id, Relationship.staff_id, Staff.wecom_user_id)
            .join(Staff, Staff.id == Relationship.staff_id)
            .where(
                Relationship.workspace_id == workspace_id,
                Relationship.customer_id.in_(chunk),
                Relationship.removed_at.is_(None),
                Staff.wecom_user_id.is_not(None),
                Staff.is_active.is_(True),
            )
            .order_by(Relationship.customer_id, Relationship.added_at.desc())
        )
        for cid, staff_id, userid in rows:
            if userid:
                edges.setdefault(cid, (staff_id, userid))
    return {cid: (edges[cid][0], edges[cid][1], external[cid]) for cid in edges if cid in external}
