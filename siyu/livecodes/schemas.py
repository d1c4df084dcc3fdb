"""Shapes of live codes and groups, for the API and the console forms alike."""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, Field

from siyu.kit.ids import DbId
from siyu.kit.schemas import Input
from siyu.models import LiveCodeKind, RotationMode, RouteShift
from siyu.models.group import DEFAULT_GROUP_LIMIT


class LinkCard(Input):
    title: str = Field(min_length=1, max_length=100)
    url: str = Field(min_length=1, max_length=1000)


class MiniProgramCard(Input):
    appid: str = Field(min_length=1, max_length=64)
    page: str = Field(min_length=1, max_length=500)
    title: str = Field(min_length=1, max_length=100)


class WelcomeIn(Input):
    """The welcome message: text with personalisation ({{ name }}, {{ staff_name }}…), plus one attachment."""

    text: str = Field(default="", max_length=1000)
    image_url: str | None = Field(default=None, max_length=1000)
    link: LinkCard | None = None
    miniprogram: MiniProgramCard | None = None


class RouteIn(Input):
    id: DbId | None = None
    """An existing route to keep (its cap counters stay); routes left out are removed."""
    staff_id: DbId | None = None
    group_id: DbId | None = None
    weight: int = Field(default=1, ge=1, le=1000)
    daily_cap: int | None = None
    """Most scans per brand-local day; None for no cap. 0 is refused: deactivate the route instead."""
    shift: RouteShift = RouteShift.ALWAYS
    is_backup: bool = False
    is_active: bool = True
    contact_qr_url: str | None = Field(default=None, max_length=500, pattern=r"^https?://")
    """The 「联系我」 QR image of the staff member for this route (http/https)."""


class LiveCodeIn(Input):
    name: str = Field(min_length=1, max_length=100)
    kind: LiveCodeKind = LiveCodeKind.STAFF
    channel_id: DbId | None = None
    store_id: DbId | None = None
    experiment_id: DbId | None = None
    rotation: RotationMode = RotationMode.ROUND_ROBIN
    is_sticky: bool = True
    schedule: list[dict[str, Any]] = Field(default_factory=list)
    welcome: WelcomeIn = Field(default_factory=WelcomeIn)
    tag_ids: list[DbId] = Field(default_factory=list)
    group_warn_percent: int = Field(default=90, ge=1, le=100)
    expires_at: AwareDatetime | None = None
    routes: list[RouteIn] = Field(default_factory=list)


class GroupIn(Input):
    """A group as the live codes' form and `PUT /api/v1/groups/{id}` send it.

    No `member_count`: seats are taken by members joining (`siyu.community.groups.membership`). A body
    that still sends it is accepted and the field ignored (unknown fields are ignored), for API compatibility."""

    name: str = Field(min_length=1, max_length=100)
    join_url: str | None = Field(default=None, max_length=500)
    member_limit: int = DEFAULT_GROUP_LIMIT
    owner_staff_id: DbId | None = None
    wecom_chat_id: str | None = Field(default=None, max_length=64)


class AddIn(Input):
    """A friend add reported by WeCom (or simulated): who added whom, through which state."""

    staff_id: DbId
    external_userid: str = Field(min_length=1, max_length=64)
    state: str | None = Field(default=None, max_length=30)
    name: str | None = Field(default=None, max_length=100)
    phone: str | None = Field(default=None, max_length=30)
    added_at: AwareDatetime | None = None
    scan_id: DbId | None = None
