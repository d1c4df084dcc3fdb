"""Request and response shapes of messaging: channel accounts, content, the delivery policy, the outbox.

Responses never carry credentials: an account says only whether it has some (`has_credentials`).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator

from siyu.kit.schemas import Input
from siyu.messaging import policy
from siyu.models import AdapterKind, ChannelAccount, ContentItem, ContentKind, Delivery, SandboxMessage, TouchPolicy

_MAX_JSON = 8000
Name100 = Annotated[str, Field(min_length=1, max_length=100)]
Caps = dict[str, dict[str, int]]


class AccountIn(Input):
    """A channel account as created or replaced (PUT and PATCH both send the whole shape)."""

    name: Name100
    kind: AdapterKind
    settings: dict[str, Any] = Field(default_factory=dict)
    """Non-secret settings (SMS sign name, SMTP host, webhook URL…)."""
    credentials: dict[str, Any] | None = None
    """Secrets: None keeps the current ones, {} clears them, anything else replaces them."""
    is_active: bool = True

    @field_validator("name")
    @classmethod
    def _stripped(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("name may not be blank")
        return value

    @field_validator("settings", "credentials")
    @classmethod
    def _small(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        # Settings and secrets are a few keys; a megabyte of JSON here is a mistake or an attack.
        if value is not None and len(json.dumps(value, ensure_ascii=False)) > _MAX_JSON:
            raise ValueError(f"at most {_MAX_JSON} characters of JSON")
        return value


def _opt(max_length: int) -> Any:
    return Field(default=None, max_length=max_length)


class ContentIn(Input):
    """An entry of the content library; template fields are checked for unknown variables on save."""

    name: Name100
    kind: ContentKind = ContentKind.TEXT
    subject: Annotated[str | None, _opt(200)] = None
    body: Annotated[str, Field(max_length=20_000)] = ""
    title: Annotated[str | None, _opt(200)] = None
    description: Annotated[str | None, _opt(500)] = None
    media_url: Annotated[str | None, _opt(1000)] = None
    link_url: Annotated[str | None, _opt(2000)] = None
    miniprogram_appid: Annotated[str | None, _opt(64)] = None
    miniprogram_page: Annotated[str | None, _opt(500)] = None
    sms_template_code: Annotated[str | None, _opt(64)] = None
    tags: Annotated[list[Annotated[str, Field(min_length=1, max_length=40)]], Field(max_length=20)] = Field(
        default_factory=list
    )
    is_marketing: bool = True

    @field_validator("name")
    @classmethod
    def _stripped(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("name may not be blank")
        return value

    @field_validator("media_url", "link_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        # Links end up in customers' phones: only web addresses, never javascript: or file:.
        if value is None or not value.strip():
            return None
        value = value.strip()
        if not value.lower().startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        seen: list[str] = []
        for tag in value:
            tag = tag.strip()
            if tag and tag not in seen:
                seen.append(tag)
        return seen


def _check_hhmm(value: str) -> str:
    parsed = policy.parse_hhmm(value)  # ValueError names the bad value
    if parsed.hour > 23 or parsed.minute > 59:
        raise ValueError(f"expected HH:MM, got {value!r}")
    return value


CapScope = Literal[
    "all",
    "sms",
    "sandbox",
    "wecom_customer",
    "wecom_group",
    "sms_aliyun",
    "sms_tencent",
    "email",
    "webhook",
    "official_account",
]
"""Scopes of a cap: "all" (every channel together), "sms" (both SMS providers together) or an
adapter kind (`AdapterKind`'s values)."""
CapPeriod = Literal["day", "week", "month"]
# Strict ints: "2" or 2.5 in a cap is a mistake worth naming, not something to coerce.
CapLimit = Annotated[int, Field(strict=True, ge=1, le=10_000)]
CapsIn = dict[CapScope, dict[CapPeriod, CapLimit]]
"""Typed keys and values, so a bad entry is refused at its own path (caps.sms_aliyun.week)."""


class PolicyIn(Input):
    """The workspace's delivery policy."""

    caps: CapsIn = Field(default_factory=dict)
    platform_caps: CapsIn = Field(default_factory=dict)
    quiet_start: Annotated[str, Field(min_length=5, max_length=5)] = "21:00"
    quiet_end: Annotated[str, Field(min_length=5, max_length=5)] = "09:00"
    dedup_days: Annotated[int, Field(ge=0, le=90)] = 7
    approval_threshold: Annotated[int, Field(ge=0, le=100_000_000)] = 10_000
    moments_marketing_share: Annotated[int, Field(ge=0, le=100)] = 20

    _hhmm = field_validator("quiet_start", "quiet_end")(_check_hhmm)


# --- responses ---------------------------------------------------------------------------------


class AccountRead(BaseModel):
    id: int
    name: str
    kind: str
    settings: dict[str, Any]
    has_credentials: bool
    is_active: bool
    last_error: str | None
    created_at: datetime
    updated_at: datetime


def account_read(account: ChannelAccount) -> AccountRead:
    """The API shape of an account: the credentials themselves never leave the server."""
    return AccountRead(
        id=account.id,
        name=account.name,
        kind=str(account.kind),
        settings=dict(account.settings or {}),
        has_credentials=bool(account.credentials_encrypted),
        is_active=account.is_active,
        last_error=account.last_error,
        created_at=account.created_at,
        updated_at=account.updated_at,
    )


class ContentRead(BaseModel):
    id: int
    name: str
    kind: str
    subject: str | None
    body: str
    title: str | None
    description: str | None
    media_url: str | None
    link_url: str | None
    miniprogram_appid: str | None
    miniprogram_page: str | None
    sms_template_code: str | None
    tags: list[str]
    is_marketing: bool
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None


def content_read(item: ContentItem) -> ContentRead:
    return ContentRead(
        id=item.id,
        name=item.name,
        kind=str(item.kind),
        subject=item.subject,
        body=item.body,
        title=item.title,
        description=item.description,
        media_url=item.media_url,
        link_url=item.link_url,
        miniprogram_appid=item.miniprogram_appid,
        miniprogram_page=item.miniprogram_page,
        sms_template_code=item.sms_template_code,
        tags=list(item.tags or []),
        is_marketing=item.is_marketing,
        created_at=item.created_at,
        updated_at=item.updated_at,
        archived_at=item.archived_at,
    )


class PreviewRead(BaseModel):
    content_id: int
    customer_id: int
    message: dict[str, Any]


class PolicyRead(BaseModel):
    caps: Caps
    platform_caps: Caps
    quiet_start: str
    quiet_end: str
    dedup_days: int
    approval_threshold: int
    moments_marketing_share: int
    saved: bool
    """False while the defaults apply (nobody saved a policy yet)."""
    updated_at: datetime | None


def policy_read(row: TouchPolicy) -> PolicyRead:
    return PolicyRead(
        caps=dict(row.caps or {}),
        platform_caps=dict(row.platform_caps or {}),
        quiet_start=row.quiet_start,
        quiet_end=row.quiet_end,
        dedup_days=row.dedup_days,
        approval_threshold=row.approval_threshold,
        moments_marketing_share=row.moments_marketing_share,
        saved=row.id is not None,
        updated_at=row.updated_at,
    )


class OutboxMessageRead(BaseModel):
    id: int
    delivery_id: int
    customer_id: int
    channel_account_id: int
    message: dict[str, Any]
    sent_at: datetime


def outbox_read(row: SandboxMessage) -> OutboxMessageRead:
    return OutboxMessageRead(
        id=row.id,
        delivery_id=row.delivery_id,
        customer_id=row.customer_id,
        channel_account_id=row.channel_account_id,
        message=dict(row.message or {}),
        sent_at=row.sent_at,
    )


class OutboxPage(BaseModel):
    items: list[OutboxMessageRead]
    next_cursor: str | None


class DeliveryRead(BaseModel):
    id: int
    source: str
    source_id: int
    step: str
    channel: str | None
    channel_account_id: int | None
    variant: str | None
    content_id: int | None
    status: str
    reason: str | None
    error: str | None
    message: dict[str, Any] | None
    attempts: int
    not_before: datetime
    planned_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    clicked_at: datetime | None
    unsubscribed_at: datetime | None


def delivery_read(row: Delivery) -> DeliveryRead:
    return DeliveryRead(
        id=row.id,
        source=row.source,
        source_id=row.source_id,
        step=row.step,
        channel=row.channel,
        channel_account_id=row.channel_account_id,
        variant=row.variant,
        content_id=row.content_id,
        status=str(row.status),
        reason=row.reason,
        error=row.error,
        message=row.message,
        attempts=row.attempts,
        not_before=row.not_before,
        planned_at=row.planned_at,
        sent_at=row.sent_at,
        delivered_at=row.delivered_at,
        read_at=row.read_at,
        clicked_at=row.clicked_at,
        unsubscribed_at=row.unsubscribed_at,
    )
