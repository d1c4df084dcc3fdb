"""Request bodies of community groups."""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from siyu.kit.ids import DbId
from siyu.kit.schemas import Input
from siyu.models.group import DEFAULT_GROUP_LIMIT, GroupKind, GroupMemberRole


class GroupCreate(Input):
    """A new group: long-term, or a flash group (闪群) with `ends_at`."""

    name: str = Field(min_length=1, max_length=100)
    kind: GroupKind = GroupKind.LONG_TERM
    ends_at: AwareDatetime | None = None
    description: str | None = Field(default=None, max_length=500)
    join_url: str | None = Field(default=None, max_length=500)
    member_limit: int = DEFAULT_GROUP_LIMIT
    owner_staff_id: DbId | None = None
    wecom_chat_id: str | None = Field(default=None, max_length=64)
    tag_ids: list[DbId] = Field(default_factory=list, max_length=50)


class GroupPatch(Input):
    """Fields to change; absent fields stay (`tag_ids` replaces the group's tags when given)."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    kind: GroupKind | None = None
    ends_at: AwareDatetime | None = None
    description: str | None = Field(default=None, max_length=500)
    join_url: str | None = Field(default=None, max_length=500)
    member_limit: int | None = None
    owner_staff_id: DbId | None = None
    wecom_chat_id: str | None = Field(default=None, max_length=64)
    is_active: bool | None = None
    tag_ids: list[DbId] | None = Field(default=None, max_length=50)


class MemberAdd(Input):
    """Add a customer or a staff member (exactly one of the two)."""

    customer_id: DbId | None = None
    staff_id: DbId | None = None
    role: GroupMemberRole = GroupMemberRole.MEMBER


class RoleIn(Input):
    role: GroupMemberRole
