"""Bring one WeCom customer group (客户群) into siyu: `groupchat/get` → `CommunityGroup` (by
`wecom_chat_id`, created when unknown) and its stays through `siyu.community.groups.membership`.

WeCom's member list is the truth: members missing from siyu join (customers by external_userid,
created when unknown with the list's name; staff by userid), open stays WeCom no longer lists are
closed, and roles follow the owner and admin list. Running it again changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.community.groups.membership import (
    LEFT,
    REMOVED,
    GroupClosed,
    GroupFull,
    add_staff,
    close_stay,
    dismiss_group,
    join_group,
    leave_group,
    open_stay,
)
from siyu.customers import repository as customers
from siyu.customers.service.profile import IngestOutcome, ProfileInput, ingest_customer
from siyu.integrations.wecom.client import WecomClient
from siyu.integrations.wecom.config import WecomConfig, client_for
from siyu.integrations.wecom.errors import WecomError
from siyu.kit.clock import Clock
from siyu.models import CommunityGroup, GroupMember, IdentityType, Staff
from siyu.models.group import DEFAULT_GROUP_LIMIT, MAX_GROUP_LIMIT, GroupMemberRole

logger = logging.getLogger(__name__)

MEMBER_STAFF = 1
MEMBER_EXTERNAL = 2
LIST_LIMIT = 1000
QUIT_SCENE_REMOVED = "1"
CHAT_GONE = 40050
"""`groupchat/get` for a chat WeCom no longer has (dismissed): siyu dismisses its group too."""
JOIN_SCENE = "wecom"


@dataclass
class GroupSyncResult:
    """What one `sync_group` changed."""

    group: CommunityGroup | None
    created: bool = False
    joined: int = 0
    left: int = 0
    customers_created: int = 0
    dismissed: bool = False
    notes: list[str] = field(default_factory=list)

    def note(self) -> str | None:
        """The notes as one line for the event row (None when there are none)."""
        return "; ".join(self.notes)[:500] or None


def list_group_chats(
    client: WecomClient,
    *,
    status_filter: int = 0,
    owner_userids: list[str] | None = None,
    limit: int = LIST_LIMIT,
    cursor: str = "",
) -> Iterator[tuple[dict[str, Any], str]]:
    """Every group `groupchat/list` returns, page by page: yields (item, cursor of its page), so a
    caller that stops can resume at the cursor it last saw."""
    while True:
        data: dict[str, Any] = {"status_filter": status_filter, "limit": limit, "cursor": cursor}
        if owner_userids:
            data["owner_filter"] = {"userid_list": owner_userids}
        answer = client.call("POST", "externalcontact/groupchat/list", data=data)
        for item in answer.get("group_chat_list") or []:
            yield item, cursor
        cursor = str(answer.get("next_cursor") or "")
        if not cursor:
            return


def group_by_chat_id(session: Session, workspace_id: int, chat_id: str, *, lock: bool = False) -> CommunityGroup | None:
    """The workspace's group for a WeCom chat_id; `lock` takes its row lock (and re-reads it), so two
    syncs of one group run one after the other."""
    statement = select(CommunityGroup).where(
        CommunityGroup.workspace_id == workspace_id, CommunityGroup.wecom_chat_id == chat_id
    )
    if lock:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return session.scalar(statement)


def _at(value: Any, default: datetime) -> datetime:
    try:
        return datetime.fromtimestamp(int(value), tz=UTC) if value else default
    except (TypeError, ValueError):
        return default


def _customer_id(
    session: Session, workspace_id: int, member: dict[str, Any], clock: Clock, result: GroupSyncResult
) -> int:
    external_userid = str(member["userid"])
    return _customer_for(session, workspace_id, external_userid, member, clock, result)


def _customer_for(
    session: Session,
    workspace_id: int,
    external_userid: str,
    member: dict[str, Any],
    clock: Clock,
    result: GroupSyncResult,
) -> int:
    found = customers.find_by_identity(session, workspace_id, IdentityType.WECOM_EXTERNAL_USERID, external_userid)
    if found is not None:
        return found.id
    identities = [(str(IdentityType.WECOM_EXTERNAL_USERID), external_userid)]
    if member.get("unionid"):
        identities.append((str(IdentityType.WECHAT_UNIONID), str(member["unionid"])))
    name = str(member.get("name") or "").strip()[:100]
    ingested = ingest_customer(
        session,
        actor=Actor.system(workspace_id, label="wecom"),
        identities=identities,
        profile=ProfileInput(values={"name": name} if name else {}),
        source="wecom_group",
        clock=clock,
    )
    if ingested.outcome == IngestOutcome.CREATED:
        result.customers_created += 1  # not when the identities merged into an existing customer
    return ingested.customer.id


def _role(userid: str, owner: str, admins: set[str]) -> GroupMemberRole:
    if userid == owner:
        return GroupMemberRole.OWNER
    return GroupMemberRole.ADMIN if userid in admins else GroupMemberRole.MEMBER


def sync_group(
    session: Session,
    config: WecomConfig,
    chat_id: str,
    clock: Clock,
    *,
    at: datetime | None = None,
    quit_scene: str | None = None,
    leavers: set[str] | None = None,
    joiners: set[str] | None = None,
    join_scene: str | None = None,
    client: WecomClient | None = None,
) -> GroupSyncResult:
    """Make siyu's group `chat_id` match WeCom's `groupchat/get` (see the module docstring).

    `at` is when the change happened (the event's CreateTime; default now), used for leaves;
    joins use each member's `join_time`. `quit_scene` "1" marks leavers as removed by an admin.
    `leavers` (WeCom ids: external_userid or userid) limits which missing members are closed: an
    event closes only the members it names (a later event about another member brings that one's
    own QuitScene); None (a full sync) closes every open stay WeCom no longer lists.
    `joiners` (an `add_member` event's MemChangeList, `join_scene` its JoinScene): a named customer
    WeCom no longer lists (already left again) still gets the join, with a stay closed at `at`.
    The group row is locked before WeCom is asked, so overlapping syncs of one group serialize.
    A chat WeCom no longer knows (40050) is dismissed in siyu. Raises `WecomError` for any other
    failure (the caller retries or records it)."""
    at = at or clock.now()
    client = client or client_for(config)
    group_by_chat_id(session, config.workspace_id, chat_id, lock=True)  # serialize syncs of this group
    try:
        detail = client.call("POST", "externalcontact/groupchat/get", data={"chat_id": chat_id, "need_name": 1})
    except WecomError as exc:
        if exc.code != CHAT_GONE:
            raise
        # WeCom no longer knows the chat (dismissed while siyu missed the event): end it here too.
        return dismiss_chat(session, config, chat_id, clock, at=at)
    chat = detail.get("group_chat") or {}
    workspace_id = config.workspace_id
    members: list[dict[str, Any]] = list(chat.get("member_list") or [])
    owner = str(chat.get("owner") or "")
    admins = {str(a.get("userid")) for a in chat.get("admin_list") or []}
    staff_ids = dict(
        session.execute(
            select(Staff.wecom_user_id, Staff.id).where(
                Staff.workspace_id == workspace_id,
                Staff.wecom_user_id.in_([str(m["userid"]) for m in members if m.get("type") == MEMBER_STAFF] + [owner]),
            )
        ).all()
    )
    group = group_by_chat_id(session, workspace_id, chat_id, lock=True)
    result = GroupSyncResult(group=group)
    name = str(chat.get("name") or "").strip()[:100] or chat_id
    if group is None:
        group = CommunityGroup(
            workspace_id=workspace_id,
            name=name,
            wecom_chat_id=chat_id,
            owner_staff_id=staff_ids.get(owner),
            member_limit=DEFAULT_GROUP_LIMIT,
            member_count=0,
            is_active=True,
            created_at=_at(chat.get("create_time"), at),
        )
        session.add(group)
        session.flush()
        result.group, result.created = group, True
    else:
        group.name = name
        if owner:
            group.owner_staff_id = staff_ids.get(owner)  # an owner siyu does not know: no owner, not the old one
        # a group closed in siyu stays closed: an event never reopens it (joins are noted instead)
    # WeCom already accepted these members: siyu's seat limit must not refuse them.
    group.member_limit = max(group.member_limit, min(group.member_count + len(members), MAX_GROUP_LIMIT))
    if owner and owner not in staff_ids:
        result.notes.append(f"unknown staff {owner}")

    open_stays = session.scalars(
        select(GroupMember).where(GroupMember.group_id == group.id, GroupMember.left_at.is_(None))
    ).all()
    by_customer = {s.customer_id: s for s in open_stays if s.customer_id is not None}
    by_staff = {s.staff_id: s for s in open_stays if s.staff_id is not None}
    wanted_customers: set[int] = set()
    wanted_staff: set[int] = set()
    actor = Actor.system(workspace_id, label="wecom")
    for member in members:
        userid = str(member.get("userid") or "")
        role = _role(userid, owner, admins)
        joined_at = _at(member.get("join_time"), at)
        if member.get("type") == MEMBER_STAFF:
            staff_id = staff_ids.get(userid)
            if staff_id is None:
                if userid != owner:
                    result.notes.append(f"unknown staff {userid}")
                continue
            wanted_staff.add(staff_id)
            stay = by_staff.get(staff_id)
            if stay is None:
                try:
                    stay = add_staff(session, actor=actor, group_id=group.id, staff_id=staff_id, clock=clock, role=role)
                except (GroupFull, GroupClosed) as exc:
                    result.notes.append(f"{userid} not seated: {exc.code}")
                    continue
                result.joined += 1
            stay.role = role
            continue
        customer_id = _customer_id(session, workspace_id, member, clock, result)
        wanted_customers.add(customer_id)
        stay = by_customer.get(customer_id)
        if stay is None:
            properties: dict[str, Any] = {"wecom_chat_id": chat_id, "wecom_join_scene": member.get("join_scene")}
            if member.get("state"):
                properties["state"] = str(member["state"])
            if member.get("invitor"):
                properties["wecom_invitor"] = str((member.get("invitor") or {}).get("userid") or "")
            try:
                stay = join_group(
                    session,
                    workspace_id=workspace_id,
                    group_id=group.id,
                    customer_id=customer_id,
                    at=joined_at,
                    clock=clock,
                    role=role,
                    scene=JOIN_SCENE,
                    event_properties=properties,
                )
            except (GroupFull, GroupClosed) as exc:
                result.notes.append(f"{userid} not seated: {exc.code}")
                continue
            result.joined += 1
        stay.role = role
    listed = {str(m.get("userid") or "") for m in members}
    for wecom_id in sorted((joiners or set()) - listed):
        _late_join(session, group, chat_id, wecom_id, at=at, join_scene=join_scene, clock=clock, result=result)
    reason = REMOVED if str(quit_scene) == QUIT_SCENE_REMOVED else LEFT
    named = _leaver_ids(session, workspace_id, leavers) if leavers is not None else None
    for stay in open_stays:
        gone = (stay.customer_id is not None and stay.customer_id not in wanted_customers) or (
            stay.staff_id is not None and stay.staff_id not in wanted_staff
        )
        if named is not None and ("c", stay.customer_id) not in named and ("s", stay.staff_id) not in named:
            continue
        if gone and _leave(session, stay, at=at, reason=reason, clock=clock):
            result.left += 1
    session.flush()
    return result


def _late_join(
    session: Session,
    group: CommunityGroup,
    chat_id: str,
    wecom_id: str,
    *,
    at: datetime,
    join_scene: str | None,
    clock: Clock,
    result: GroupSyncResult,
) -> None:
    """An `add_member` names a customer WeCom no longer lists (they left before siyu read the group,
    or the leave was processed first): record the join at the event's time and close the stay at
    the same time, once (a stay that began at `at` already means the event was applied)."""
    workspace_id = group.workspace_id
    if session.scalar(select(Staff.id).where(Staff.workspace_id == workspace_id, Staff.wecom_user_id == wecom_id)):
        return  # staff: nothing to attribute
    customer_id = _customer_for(session, workspace_id, wecom_id, {}, clock, result)
    done = session.scalar(
        select(GroupMember.id).where(
            GroupMember.group_id == group.id, GroupMember.customer_id == customer_id, GroupMember.joined_at == at
        )
    )
    if done is not None or open_stay(session, group.id, customer_id=customer_id) is not None:
        return
    properties: dict[str, Any] = {"wecom_chat_id": chat_id, "wecom_join_scene": join_scene, "wecom_late": True}
    try:
        stay = join_group(
            session,
            workspace_id=workspace_id,
            group_id=group.id,
            customer_id=customer_id,
            at=at,
            clock=clock,
            scene=JOIN_SCENE,
            event_properties=properties,
        )
    except (GroupFull, GroupClosed) as exc:
        result.notes.append(f"{wecom_id} not seated: {exc.code}")
        return
    result.joined += 1
    if _leave(session, stay, at=at, reason=LEFT, clock=clock):
        result.left += 1
    result.notes.append(f"{wecom_id} had already left")


def _leaver_ids(session: Session, workspace_id: int, wecom_ids: set[str]) -> set[tuple[str, int | None]]:
    """("c", customer id) / ("s", staff id) for WeCom member ids."""
    out: set[tuple[str, int | None]] = set()
    for wecom_id in wecom_ids:
        found = customers.find_by_identity(session, workspace_id, IdentityType.WECOM_EXTERNAL_USERID, wecom_id)
        if found is not None:
            out.add(("c", found.id))
    staff = session.scalars(
        select(Staff.id).where(Staff.workspace_id == workspace_id, Staff.wecom_user_id.in_(wecom_ids))
    ).all()
    out.update(("s", staff_id) for staff_id in staff)
    return out


def _leave(session: Session, stay: GroupMember, *, at: datetime, reason: str, clock: Clock) -> bool:
    if stay.customer_id is not None:
        before = stay.left_at
        leave_group(
            session,
            workspace_id=stay.workspace_id,
            group_id=stay.group_id,
            at=at,
            clock=clock,
            customer_id=stay.customer_id,
            reason=reason,
        )
        session.refresh(stay)
        return before is None and stay.left_at is not None
    return close_stay(session, stay, at=at, reason=reason, clock=clock)


def dismiss_chat(session: Session, config: WecomConfig, chat_id: str, clock: Clock, *, at: datetime) -> GroupSyncResult:
    """WeCom says the group was dismissed: every open stay ends ("dismissed"), the group goes inactive."""
    group = group_by_chat_id(session, config.workspace_id, chat_id, lock=True)
    if group is None:
        return GroupSyncResult(group=None, notes=[f"unknown group {chat_id}"])
    closed = dismiss_group(session, group=group, at=at, clock=clock)
    return GroupSyncResult(group=group, left=closed, dismissed=True)
