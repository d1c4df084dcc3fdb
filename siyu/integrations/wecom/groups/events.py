"""Handlers of `change_external_chat` events: create / update (add_member, del_member,
change_owner, change_name, change_notice…) / dismiss.

Create and update re-read the group with `groupchat/get` and reconcile (`sync.sync_group`), so
events that arrive late, twice or out of order still leave the group as WeCom has it. Dismiss
closes every stay at the event's CreateTime.
"""

from __future__ import annotations

from datetime import UTC, datetime

from siyu.integrations.wecom.dispatch import EventContext, on_event
from siyu.integrations.wecom.groups.sync import dismiss_chat, sync_group

EVENT = "change_external_chat"


def _event_time(ctx: EventContext) -> datetime:
    try:
        stamp = int(ctx.payload.get("CreateTime") or 0)
    except (TypeError, ValueError):
        stamp = 0
    return datetime.fromtimestamp(stamp, tz=UTC) if stamp > 0 else ctx.clock.now()


def _chat_id(ctx: EventContext) -> str:
    chat_id = str(ctx.payload.get("ChatId") or "").strip()
    if not chat_id:
        raise ValueError("ChatId missing from the event")
    return chat_id


def _changed_members(ctx: EventContext) -> set[str]:
    """The ids in `MemChangeList` (one `Item` or a list of them)."""
    items = (
        (ctx.payload.get("MemChangeList") or {}).get("Item")
        if isinstance(ctx.payload.get("MemChangeList"), dict)
        else None
    )
    if items is None:
        return set()
    return {str(i) for i in (items if isinstance(items, list) else [items]) if i}


@on_event(EVENT, "create")
@on_event(EVENT, "update")
def chat_changed(ctx: EventContext) -> str | None:
    """A group was created or changed: reconcile it with `groupchat/get`."""
    is_leave = ctx.payload.get("UpdateDetail") == "del_member"
    is_join = ctx.payload.get("UpdateDetail") == "add_member"
    quit_scene = ctx.payload.get("QuitScene") if is_leave else None
    join_scene = ctx.payload.get("JoinScene") if is_join else None
    result = sync_group(
        ctx.session,
        ctx.config,
        _chat_id(ctx),
        ctx.clock,
        at=_event_time(ctx),
        quit_scene=str(quit_scene) if quit_scene is not None else None,
        # only a del_member closes stays, and only of the members it names
        leavers=_changed_members(ctx) if is_leave else set(),
        # an add_member's joiners are recorded even when they left again before siyu read the group
        joiners=_changed_members(ctx) if is_join else None,
        join_scene=str(join_scene) if join_scene is not None else None,
    )
    return result.note()


@on_event(EVENT, "dismiss")
def chat_dismissed(ctx: EventContext) -> str | None:
    """The group was dismissed: all stays end ("dismissed"), the group goes inactive."""
    return dismiss_chat(ctx.session, ctx.config, _chat_id(ctx), ctx.clock, at=_event_time(ctx)).note()
