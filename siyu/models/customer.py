"""The customer pool (OneID): customers, their identities, custom attributes and merges."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.models.base import Base, BigId, WorkspaceScoped


class Gender(StrEnum):
    FEMALE = "female"
    MALE = "male"
    UNKNOWN = "unknown"


class LifecycleStage(StrEnum):
    """Where a customer stands in the loop; operators filter and report on it."""

    LEAD = "lead"  # reached us, no relationship yet
    NEW = "new"  # in the pool, no order yet
    ACTIVE = "active"  # ordered recently
    LOYAL = "loyal"  # repeat buyer
    DORMANT = "dormant"  # no activity for a long time
    CHURNED = "churned"  # deleted us / unreachable


class IdentityType(StrEnum):
    """Built-in identity types; operators may define more (see `IdentityTypeDefinition`)."""

    PHONE = "phone"
    EMAIL = "email"
    WECHAT_UNIONID = "wechat_unionid"
    WECHAT_OPENID = "wechat_openid"  # value is "<appid>:<openid>": openids are per app
    WECOM_EXTERNAL_USERID = "wecom_external_userid"
    TAOBAO = "taobao"
    TMALL = "tmall"
    JD = "jd"
    PINDUODUO = "pinduoduo"
    DOUYIN = "douyin"
    KUAISHOU = "kuaishou"
    XIAOHONGSHU = "xiaohongshu"
    WEIBO = "weibo"
    YOUZAN = "youzan"
    STORE_MEMBER_NO = "store_member_no"


class AttributeType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATE = "date"


# Profile fields that survivorship applies to when ingesting or merging.
PROFILE_FIELDS = (
    "name",
    "gender",
    "birthday",
    "province",
    "city",
    "phone",
    "email",
    "lifecycle_stage",
    "owner_staff_id",
    "first_channel",
)


class Customer(WorkspaceScoped, Base):
    """One person in the pool, whatever platforms they came from."""

    __tablename__ = "customers"
    __table_args__ = (
        Index("ix_customers_ws_id", "workspace_id", "id"),  # the pool list, newest first
        Index("ix_customers_ws_owner", "workspace_id", "owner_staff_id"),
        Index("ix_customers_ws_stage", "workspace_id", "lifecycle_stage"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str | None] = mapped_column(String(100))
    gender: Mapped[Gender | None] = mapped_column(String(10))
    birthday: Mapped[date | None]
    province: Mapped[str | None] = mapped_column(String(50))
    city: Mapped[str | None] = mapped_column(String(50))
    phone: Mapped[str | None] = mapped_column(String(20), index=True)
    """Primary phone, E.164. Also present as a `phone` identity."""
    email: Mapped[str | None] = mapped_column(String(254))
    lifecycle_stage: Mapped[LifecycleStage] = mapped_column(String(20), default=LifecycleStage.NEW)
    owner_staff_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("staff.id"))
    """The staff member who owns the relationship; staff users see only their own customers."""
    first_channel: Mapped[str | None] = mapped_column(String(100))
    """First-touch acquisition channel, as recorded when the customer entered the pool."""
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Custom attribute values keyed by `AttributeDefinition.key`."""
    field_updated_at: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """ISO time each profile field was last set: survivorship keeps the most recent value."""
    merged_into_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("customers.id"), index=True)
    """Set when this profile was merged into another; such rows are hidden from the pool."""
    erased_at: Mapped[datetime | None]
    """Set when personal data was erased on request (PIPL); aggregates stay."""
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Identity(WorkspaceScoped, Base):
    """One platform identity of a customer. `(type, value)` is unique within a workspace."""

    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("workspace_id", "type", "value"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(40))
    value: Mapped[str] = mapped_column(String(200))
    """Normalised value: E.164 phones, lower-case e-mail, "<appid>:<openid>" for openids."""
    source: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]


class IdentityTypeDefinition(WorkspaceScoped, Base):
    """An operator-defined identity type (e.g. a brand's own app user id)."""

    __tablename__ = "identity_type_definitions"
    __table_args__ = (UniqueConstraint("workspace_id", "key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(40))
    label: Mapped[str] = mapped_column(String(100))


class AttributeDefinition(WorkspaceScoped, Base):
    """A typed custom profile attribute defined by the operator."""

    __tablename__ = "attribute_definitions"
    __table_args__ = (UniqueConstraint("workspace_id", "key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(50))
    label: Mapped[str] = mapped_column(String(100))
    type: Mapped[AttributeType] = mapped_column(String(10))


class CustomerMerge(WorkspaceScoped, Base):
    """A merge of `merged_id` into `survivor_id`, with what is needed to undo it."""

    __tablename__ = "customer_merges"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    survivor_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id"), index=True)
    merged_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id"), index=True)
    reason: Mapped[str] = mapped_column(String(200))
    undo_data: Mapped[dict[str, Any]]
    """Survivor's fields before the merge and the ids of every row moved or dropped."""
    merged_at: Mapped[datetime]
    merged_by: Mapped[str | None] = mapped_column(String(200))
    undone_at: Mapped[datetime | None]
    undone_by: Mapped[str | None] = mapped_column(String(200))
