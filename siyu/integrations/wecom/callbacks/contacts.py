"""Handlers of `change_external_contact` events (run by the `wecom_process_event` job).

- add_external_contact / add_half_external_contact: `externalcontact/get` (paged by `cursor` until
  the follow of `UserID` is found) for the name, unionid and the follow's state, remark and tags,
  then `record_add` (customer, friend edge attributed to the live code, experiment) at `CreateTime`
  with `welcome_delivery=None`; the follow's remark goes to `Relationship.wecom_remark`, its tags to
  the tag area's `apply_remote_customer_tags`; the unionid joins the customer as a WECHAT_UNIONID
  identity through `ingest_customer` (which merges with an official-account follower holding it);
  the welcome outcome of the fast path goes to the timeline (unless one is already there). When
  WeCom no longer knows the contact or the follow (a retried add arriving after the delete), no
  edge is opened: the event is processed with a note.
- edit_external_contact: refresh name, unionid, the edge's remark; the follow's tags as on add.
- del_external_contact (staff removed the customer; `Source` DELETE_BY_TRANSFER: the customer was
  transferred away, removed_by TRANSFERRED) / del_follow_user (the customer removed the staff
  member): close the open edge with `removed_by` STAFF / CUSTOMER at `CreateTime`.
- transfer_fail: the pending `WecomTransfer` of `ExternalUserID` from (or to) `UserID` becomes
  FAILED with WeCom's FailReason.

A staff userid siyu does not know, or a customer it never saw, is processed with a note on the
event instead of failing it. A retryable WeCom error raises (the event fails and is retried by
the sweep); any other WeCom error is a note plus `note_error` on the integration.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select

from siyu.auth.permissions import Actor
from siyu.customers import repository
from siyu.customers.service.profile import ProfileInput, ingest_customer
from siyu.customers.service.timeline import end_relationship, system_event
from siyu.integrations.wecom.callbacks.service import WELCOME_KEY
from siyu.integrations.wecom.config import client_for
from siyu.integrations.wecom.dispatch import EventContext, on_event
from siyu.integrations.wecom.errors import WecomError
from siyu.integrations.wecom.status import note_error
from siyu.livecodes.adds import AddOutcome, record_add
from siyu.models import (
    CustomerEvent,
    IdentityType,
    Relationship,
    RemovedBy,
    Staff,
    TransferStatus,
    WecomTransfer,
)

EVENT = "change_external_contact"
GONE_CODES = frozenset({40096, 84061})
"""The contact or the friendship no longer exists in WeCom: nothing to fetch, not an error to retry."""
MAX_PAGES = 50
"""`externalcontact/get` pages of follows read at most (WeCom pages beyond 500 follows)."""
DELETE_BY_TRANSFER = "DELETE_BY_TRANSFER"


def event_time(payload: dict[str, Any], ctx: EventContext) -> datetime:
    """`CreateTime` as an aware datetime (the clock's now when missing or unreadable)."""
    raw = str(payload.get("CreateTime") or "")
    if raw.isdigit():
        return datetime.fromtimestamp(int(raw), tz=UTC)
    return ctx.clock.now()


def _staff(ctx: EventContext, userid: str) -> Staff | None:
    if not userid:
        return None
    return ctx.session.scalar(
        select(Staff).where(Staff.workspace_id == ctx.workspace_id, Staff.wecom_user_id == userid)
    )


def fetch_contact(ctx: EventContext, external_userid: str, userid: str | None = None) -> dict[str, Any] | None:
    """`externalcontact/get`, following `next_cursor` until the follow of `userid` is in hand (all
    pages when None); the follows of every page read are merged into `follow_user`. None when WeCom
    says the contact is gone (noted on the integration)."""
    client = client_for(ctx.config, secret="contact")
    info: dict[str, Any] | None = None
    follows: list[Any] = []
    cursor = ""
    for _ in range(MAX_PAGES):
        params = {"external_userid": external_userid, **({"cursor": cursor} if cursor else {})}
        try:
            page = client.call("GET", "externalcontact/get", params=params)
        except WecomError as exc:
            if exc.retryable:
                raise
            note_error(ctx.session, ctx.workspace_id, exc, ctx.clock)
            if exc.code in GONE_CODES:
                return None
            raise
        info = info or page
        follows.extend(page.get("follow_user") or [])
        cursor = str(page.get("next_cursor") or "")
        if not cursor or (userid is not None and _follow({"follow_user": follows}, userid)):
            break
    assert info is not None
    return {**info, "follow_user": follows}


def _follow(info: dict[str, Any] | None, userid: str) -> dict[str, Any]:
    for follow in (info or {}).get("follow_user") or []:
        if isinstance(follow, dict) and follow.get("userid") == userid:
            return follow
    return {}


def _attach_profile(
    ctx: EventContext, external_userid: str, contact: dict[str, Any], at: datetime
) -> tuple[int | None, str | None]:
    """Name and unionid onto the customer (merging with another holder of the unionid); returns
    the customer id afterwards (a merge may change it) and a note."""
    identities = [(str(IdentityType.WECOM_EXTERNAL_USERID), external_userid)]
    unionid = str(contact.get("unionid") or "")
    if unionid:
        identities.append((str(IdentityType.WECHAT_UNIONID), unionid))
    values: dict[str, object] = {}
    if contact.get("name"):
        values["name"] = str(contact["name"])
    result = ingest_customer(
        ctx.session,
        actor=Actor.system(ctx.workspace_id, label="wecom"),
        identities=identities,
        profile=ProfileInput(values=values),
        source="wecom",
        clock=ctx.clock,
        observed_at=at,
    )
    return result.customer.id, None


def _record_welcome(ctx: EventContext, outcome: AddOutcome, at: datetime) -> str | None:
    """The fast path's welcome outcome on the timeline (one welcome event per edge, key
    `welcome:<relationship id>`; one already there is left alone)."""
    result = ctx.payload.get(WELCOME_KEY)
    if not isinstance(result, dict) or result.get("status") not in ("sent", "failed"):
        return None
    sent = result["status"] == "sent"
    note = None if sent else f"welcome failed: errcode {result.get('errcode')}"
    key = f"welcome:{outcome.relationship.id}"
    existing = ctx.session.scalar(
        select(CustomerEvent.id).where(
            CustomerEvent.workspace_id == ctx.workspace_id, CustomerEvent.idempotency_key == key
        )
    )
    if existing is not None:
        return note
    properties: dict[str, Any] = {
        "live_code_id": result.get("live_code_id"),
        "staff_id": outcome.relationship.staff_id,
        "delivery": "wecom",
        **(result.get("message") or {}),
    }
    if not sent:
        properties.update(errcode=result.get("errcode"), error=result.get("error"))
    system_event(
        ctx.session, outcome.customer, "welcome.sent" if sent else "welcome.failed", key, at, ctx.clock, properties
    )
    return note


def _remark(follow: dict[str, Any]) -> str | None:
    return str(follow.get("remark") or "")[:100] or None


@on_event(EVENT, "add_external_contact")
@on_event(EVENT, "add_half_external_contact")
def contact_added(ctx: EventContext) -> str | None:
    """A customer added a staff member (half: before the member accepted)."""
    payload = ctx.payload
    userid, external_userid = str(payload.get("UserID") or ""), str(payload.get("ExternalUserID") or "")
    if not external_userid:
        return "no ExternalUserID"
    staff = _staff(ctx, userid)
    if staff is None:
        return f"unknown staff {userid}"
    at = event_time(payload, ctx)
    info = fetch_contact(ctx, external_userid, userid)
    if info is None:
        return "contact gone in WeCom; add not recorded"
    follow = _follow(info, userid)
    if not follow:
        return f"{userid} no longer follows the contact in WeCom; add not recorded"
    contact = info.get("external_contact") or {}
    state = str(payload.get("State") or follow.get("state") or "") or None
    outcome = record_add(
        ctx.session,
        workspace_id=ctx.workspace_id,
        staff_id=staff.id,
        external_userid=external_userid,
        state=state,
        at=at,
        clock=ctx.clock,
        name=str(contact.get("name") or "") or None,
        welcome_delivery=None,
    )
    outcome.relationship.wecom_remark = _remark(follow)
    notes = []
    if note := _record_welcome(ctx, outcome, at):
        notes.append(note)
    customer_id = outcome.customer.id
    if contact.get("unionid"):
        customer_id = _attach_profile(ctx, external_userid, contact, at)[0] or customer_id
    if note := _apply_tags(ctx, customer_id, userid, follow):
        notes.append(note)
    if outcome.already_friends:
        notes.append("already friends")
    return "; ".join(notes) or None


def _apply_tags(ctx: EventContext, customer_id: int, userid: str, follow: dict[str, Any]) -> str | None:
    try:
        from siyu.integrations.wecom.tags.sync import apply_remote_customer_tags  # the tag area's two-way sync
    except ImportError:
        return "customer tags not synced (tag sync unavailable)"
    tag_ids = [str(t["tag_id"]) for t in follow.get("tags") or [] if isinstance(t, dict) and t.get("tag_id")]
    apply_remote_customer_tags(ctx.session, ctx.config, customer_id, userid, tag_ids, ctx.clock)
    return None


def _open_edge(ctx: EventContext, customer_id: int, staff_id: int) -> Relationship | None:
    return ctx.session.scalar(
        select(Relationship).where(
            Relationship.customer_id == customer_id,
            Relationship.staff_id == staff_id,
            Relationship.removed_at.is_(None),
        )
    )


@on_event(EVENT, "edit_external_contact")
def contact_edited(ctx: EventContext) -> str | None:
    """The staff member edited the contact's remark, description or tags: refresh what siyu keeps."""
    payload = ctx.payload
    userid, external_userid = str(payload.get("UserID") or ""), str(payload.get("ExternalUserID") or "")
    customer = repository.find_by_identity(
        ctx.session, ctx.workspace_id, str(IdentityType.WECOM_EXTERNAL_USERID), external_userid
    )
    if customer is None:
        return f"unknown customer {external_userid}"
    info = fetch_contact(ctx, external_userid, userid)
    if info is None:
        return "contact gone in WeCom"
    customer_id, _ = _attach_profile(ctx, external_userid, info.get("external_contact") or {}, event_time(payload, ctx))
    follow = _follow(info, userid)
    if not follow:
        return f"no follow of {userid}"
    assert customer_id is not None
    staff = _staff(ctx, userid)
    if staff is not None and (edge := _open_edge(ctx, customer_id, staff.id)) is not None:
        edge.wecom_remark = _remark(follow)
    return _apply_tags(ctx, customer_id, userid, follow)


def _close_edge(ctx: EventContext, removed_by: RemovedBy) -> str | None:
    payload = ctx.payload
    userid, external_userid = str(payload.get("UserID") or ""), str(payload.get("ExternalUserID") or "")
    staff = _staff(ctx, userid)
    if staff is None:
        return f"unknown staff {userid}"
    customer = repository.find_by_identity(
        ctx.session, ctx.workspace_id, str(IdentityType.WECOM_EXTERNAL_USERID), external_userid
    )
    if customer is None:
        return f"unknown customer {external_userid}"
    edge = _open_edge(ctx, customer.id, staff.id)
    if edge is None:
        return "no open relationship"
    end_relationship(
        ctx.session,
        actor=Actor.system(ctx.workspace_id, label="wecom"),
        relationship_id=edge.id,
        removed_by=removed_by,
        removed_at=event_time(payload, ctx),
        clock=ctx.clock,
    )
    return None


@on_event(EVENT, "del_external_contact")
def staff_removed_customer(ctx: EventContext) -> str | None:
    """The staff member deleted the customer, or (`Source` DELETE_BY_TRANSFER) WeCom removed the
    edge because the customer was transferred to another member: closed as TRANSFERRED, not a
    deletion (the transfer poll may have closed it already: then nothing changes)."""
    if str(ctx.payload.get("Source") or "") == DELETE_BY_TRANSFER:
        note = _close_edge(ctx, RemovedBy.TRANSFERRED)
        return "deleted by transfer" + (f"; {note}" if note else "")
    return _close_edge(ctx, RemovedBy.STAFF)


@on_event(EVENT, "del_follow_user")
def customer_removed_staff(ctx: EventContext) -> str | None:
    """The customer deleted the staff member (删粉)."""
    return _close_edge(ctx, RemovedBy.CUSTOMER)


@on_event(EVENT, "transfer_fail")
def transfer_failed(ctx: EventContext) -> str | None:
    """A customer transfer failed (customer_refused / customer_limit_exceed): the pending transfer
    of `ExternalUserID` whose handover (or takeover) member is `UserID` becomes FAILED with the
    reason. WeCom documents `UserID` as the takeover member; the transfers area matches the
    handover member, so either is accepted (handover first)."""
    payload = ctx.payload
    userid, external_userid = str(payload.get("UserID") or ""), str(payload.get("ExternalUserID") or "")
    reason = str(payload.get("FailReason") or "unknown")
    staff = _staff(ctx, userid)
    if staff is None:
        return f"unknown staff {userid}"
    pending = (
        select(WecomTransfer)
        .where(
            WecomTransfer.workspace_id == ctx.workspace_id,
            WecomTransfer.external_id == external_userid,
            WecomTransfer.status.in_([TransferStatus.SUBMITTED, TransferStatus.WAITING]),
            or_(WecomTransfer.handover_staff_id == staff.id, WecomTransfer.takeover_staff_id == staff.id),
        )
        .order_by(
            (WecomTransfer.handover_staff_id == staff.id).desc(),
            WecomTransfer.submitted_at.desc(),
            WecomTransfer.id.desc(),
        )
        .limit(1)
    )
    transfer = ctx.session.scalar(pending)
    if transfer is None:
        return f"no pending transfer of {external_userid}"
    transfer.status, transfer.error, transfer.checked_at = TransferStatus.FAILED, reason[:1000], ctx.clock.now()
    return None
