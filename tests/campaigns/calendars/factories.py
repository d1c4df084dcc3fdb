"""Factory functions for calendar rows (through the services, so references are checked)."""

from __future__ import annotations

import itertools
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from siyu.campaigns.calendars import groups, moments, personas, scripts
from siyu.campaigns.calendars.schemas import EntryIn, GroupCalendarIn, MomentIn, PersonaIn, ScriptIn
from siyu.kit.clock import Clock
from siyu.models import (
    ChannelAccount,
    CommunityGroup,
    ContentItem,
    GroupCalendar,
    MomentPost,
    Persona,
    Script,
    Slot,
    Staff,
    Workspace,
)
from tests.factories import actor_for

_seq = itertools.count(1)


def make_calendar(
    db: Session,
    *,
    workspace: Workspace,
    clock: Clock,
    groups_: list[CommunityGroup],
    account: ChannelAccount,
    entries: list[tuple[list[int], str, ContentItem]],
    slot_times: dict[str, str] | None = None,
    name: str | None = None,
) -> GroupCalendar:
    """A calendar with entries given as (weekdays, slot, content)."""
    data = GroupCalendarIn(
        name=name or f"社群日历{next(_seq)}",
        group_ids=[g.id for g in groups_],
        channel_account_id=account.id,
        slot_times=slot_times,
        entries=[EntryIn(weekdays=days, slot=Slot(slot), content_id=item.id) for days, slot, item in entries],
    )
    return groups.create_calendar(db, actor=actor_for(workspace), data=data, clock=clock)


def make_persona(
    db: Session, *, workspace: Workspace, clock: Clock, staff: Staff | None = None, name: str | None = None
) -> Persona:
    data = PersonaIn(
        name=name or f"人设{next(_seq)}", staff_id=staff.id if staff else None, signature="懂护肤的小林", tone="温暖"
    )
    return personas.create_persona(db, actor=actor_for(workspace), data=data, clock=clock)


def make_moment(
    db: Session,
    *,
    workspace: Workspace,
    clock: Clock,
    persona: Persona,
    content: ContentItem,
    on: date,
    slot: str = "morning",
    is_marketing: bool | None = None,
) -> MomentPost:
    data = MomentIn(
        persona_id=persona.id, post_date=on, slot=Slot(slot), content_id=content.id, is_marketing=is_marketing
    )
    return moments.plan_moment(db, actor=actor_for(workspace), data=data, clock=clock)


def make_script(db: Session, *, workspace: Workspace, clock: Clock, **values: Any) -> Script:
    data = ScriptIn(
        stage=values.pop("stage", "greeting"),
        title=values.pop("title", f"话术{next(_seq)}"),
        body=values.pop("body", "{{ name }}您好，我是{{ staff_name }}"),
        tags=values.pop("tags", []),
    )
    return scripts.create_script(db, actor=actor_for(workspace), data=data, clock=clock)
