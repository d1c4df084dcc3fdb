"""API shapes of calendars: group SOP calendars, personas and moments, scripts."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from siyu.kit.ids import DbId
from siyu.kit.schemas import Input
from siyu.models import GroupCalendar, GroupCalendarEntry, GroupPost, MomentPost, Persona, Script, Slot

# --- group calendars -----------------------------------------------------------------------------


class EntryIn(Input):
    model_config = ConfigDict(extra="forbid")

    weekdays: list[int] = Field(min_length=1, max_length=7, description="ISO weekdays: 1 Monday … 7 Sunday.")
    slot: Slot
    content_id: DbId


class GroupCalendarIn(Input):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=100)
    group_ids: list[DbId] = Field(max_length=500, description="Community groups of this workspace.")
    channel_account_id: DbId = Field(description="A channel account of kind wecom_group or sandbox.")
    slot_times: dict[str, str] | None = Field(
        default=None, description='Brand-local HH:MM per slot; defaults {"morning": "08:30", "noon": "12:00", …}.'
    )
    is_active: bool = True
    entries: list[EntryIn] = Field(default_factory=list, max_length=100)


class GroupCalendarPatch(Input):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=100)
    group_ids: list[DbId] | None = Field(default=None, max_length=500)
    channel_account_id: DbId | None = None
    slot_times: dict[str, str] | None = None
    is_active: bool | None = None


class EntryRead(BaseModel):
    id: int
    weekdays: list[int]
    slot: str
    content_id: int


class GroupCalendarRead(BaseModel):
    id: int
    name: str
    group_ids: list[int]
    channel_account_id: int | None
    slot_times: dict[str, Any]
    is_active: bool
    created_at: datetime
    entries: list[EntryRead]


def entry_read(entry: GroupCalendarEntry) -> EntryRead:
    return EntryRead(id=entry.id, weekdays=list(entry.weekdays), slot=str(entry.slot), content_id=entry.content_id)


def calendar_read(calendar: GroupCalendar, entries: list[GroupCalendarEntry]) -> GroupCalendarRead:
    return GroupCalendarRead(
        id=calendar.id,
        name=calendar.name,
        group_ids=list(calendar.group_ids),
        channel_account_id=calendar.channel_account_id,
        slot_times=dict(calendar.slot_times),
        is_active=calendar.is_active,
        created_at=calendar.created_at,
        entries=[entry_read(e) for e in entries],
    )


class GroupPostRead(BaseModel):
    id: int
    entry_id: int
    group_id: int
    post_date: date
    status: str
    message: dict[str, Any]
    error: str | None
    posted_at: datetime


def post_read(post: GroupPost) -> GroupPostRead:
    return GroupPostRead(
        id=post.id,
        entry_id=post.entry_id,
        group_id=post.group_id,
        post_date=post.post_date,
        status=post.status,
        message=dict(post.message),
        error=post.error,
        posted_at=post.posted_at,
    )


# --- personas and moments ------------------------------------------------------------------------


class PersonaIn(Input):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=100)
    staff_id: DbId | None = None
    avatar_url: str | None = Field(default=None, max_length=1000)
    signature: str | None = Field(default=None, max_length=200)
    background_url: str | None = Field(default=None, max_length=1000)
    tone: str | None = Field(default=None, max_length=200)


class PersonaRead(BaseModel):
    id: int
    name: str
    staff_id: int | None
    avatar_url: str | None
    signature: str | None
    background_url: str | None
    tone: str | None
    created_at: datetime


def persona_read(persona: Persona) -> PersonaRead:
    return PersonaRead(
        id=persona.id,
        name=persona.name,
        staff_id=persona.staff_id,
        avatar_url=persona.avatar_url,
        signature=persona.signature,
        background_url=persona.background_url,
        tone=persona.tone,
        created_at=persona.created_at,
    )


class MomentIn(Input):
    model_config = ConfigDict(extra="forbid")

    persona_id: DbId
    post_date: date
    slot: Slot
    content_id: DbId
    is_marketing: bool | None = Field(default=None, description="Defaults to the content's own is_marketing.")


class MomentPatch(Input):
    model_config = ConfigDict(extra="forbid")

    content_id: DbId | None = None
    is_marketing: bool | None = None


class MomentResultsIn(Input):
    model_config = ConfigDict(extra="forbid")

    likes: int = Field(ge=0, le=1_000_000)
    comments: int = Field(ge=0, le=1_000_000)


class MomentRead(BaseModel):
    id: int
    persona_id: int
    post_date: date
    slot: str
    content_id: int
    is_marketing: bool
    status: str
    published_at: datetime | None
    likes: int
    comments: int


def moment_read(post: MomentPost) -> MomentRead:
    return MomentRead(
        id=post.id,
        persona_id=post.persona_id,
        post_date=post.post_date,
        slot=str(post.slot),
        content_id=post.content_id,
        is_marketing=post.is_marketing,
        status=post.status,
        published_at=post.published_at,
        likes=post.likes,
        comments=post.comments,
    )


class MomentWeekRead(BaseModel):
    persona_id: int
    week_start: date
    posts: list[MomentRead]
    total: int
    marketing: int
    marketing_share_pct: int
    cap_pct: int


# --- scripts -------------------------------------------------------------------------------------


class ScriptIn(Input):
    model_config = ConfigDict(extra="forbid")

    stage: str = Field(max_length=20, description="greeting, follow_up, objection, after_sale, or your own.")
    title: str = Field(max_length=100)
    body: str = Field(max_length=5000, description="A sandboxed template: {{ name }}, {{ tier }}, {{ link }}…")
    tags: list[str] = Field(default_factory=list, max_length=20)


class ScriptPatch(Input):
    model_config = ConfigDict(extra="forbid")

    stage: str | None = Field(default=None, max_length=20)
    title: str | None = Field(default=None, max_length=100)
    body: str | None = Field(default=None, max_length=5000)
    tags: list[str] | None = Field(default=None, max_length=20)


class ScriptRead(BaseModel):
    id: int
    stage: str
    title: str
    body: str
    tags: list[str]
    created_at: datetime
    updated_at: datetime


def script_read(script: Script) -> ScriptRead:
    return ScriptRead(
        id=script.id,
        stage=script.stage,
        title=script.title,
        body=script.body,
        tags=list(script.tags),
        created_at=script.created_at,
        updated_at=script.updated_at,
    )


class ScriptStageRead(BaseModel):
    stage: str
    scripts: list[ScriptRead]


class PreviewIn(Input):
    model_config = ConfigDict(extra="forbid")

    customer_id: DbId


class PreviewRead(BaseModel):
    text: str
    variables: list[str]
