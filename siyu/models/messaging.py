"""Messaging: channel accounts, the content library, the delivery policy and deliveries.

Every message to a customer, from a broadcast, an SOP step or a transactional send, is one
`Delivery` row; the row's unique key is what makes a send happen at most once.
"""

from __future__ import annotations

from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.models.base import Base, BigId, JsonDoc, WorkspaceScoped


class AdapterKind(StrEnum):
    """Which adapter a channel account sends through."""

    SANDBOX = "sandbox"
    WECOM_CUSTOMER = "wecom_customer"
    """WeCom customer mass message (群发助手, `externalcontact/add_msg_template`)."""
    WECOM_GROUP = "wecom_group"
    """WeCom customer-group mass message."""
    SMS_ALIYUN = "sms_aliyun"
    SMS_TENCENT = "sms_tencent"
    EMAIL = "email"
    WEBHOOK = "webhook"
    OFFICIAL_ACCOUNT = "official_account"
    """WeChat official-account template messages (模板消息)."""


class ChannelAccount(WorkspaceScoped, Base):
    """One configured way to send: an SMS signature, a WeCom corp app, an SMTP server, a webhook."""

    __tablename__ = "channel_accounts"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[AdapterKind] = mapped_column(String(20))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Non-secret settings: SMS sign name and template id, SMTP host and sender, webhook URL…"""
    credentials_encrypted: Mapped[str | None] = mapped_column(Text)
    """Secrets (API keys, passwords, corp secret) as one Fernet token; never returned by the API."""
    is_active: Mapped[bool] = mapped_column(default=True)
    last_error: Mapped[str | None] = mapped_column(String(500))
    """The last credential or provider error, shown in the console."""
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ContentKind(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    LINK = "link"
    MINIPROGRAM = "miniprogram"


class ContentItem(WorkspaceScoped, Base):
    """An entry of the content library (素材库): a message template with its attachment."""

    __tablename__ = "content_items"
    __table_args__ = (Index("ix_content_items_ws_name", "workspace_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[ContentKind] = mapped_column(String(20), default=ContentKind.TEXT)
    subject: Mapped[str | None] = mapped_column(String(200))
    """E-mail subject (a template too); ignored by channels without one."""
    body: Mapped[str] = mapped_column(Text, default="")
    """The text, a sandboxed Jinja template: {{ name }}, {{ tier }}, {{ points }}, {{ coupon_code }}, {{ link }}."""
    title: Mapped[str | None] = mapped_column(String(200))
    """Link or mini-program card title."""
    description: Mapped[str | None] = mapped_column(String(500))
    media_url: Mapped[str | None] = mapped_column(String(1000))
    """Image (or card cover) URL."""
    link_url: Mapped[str | None] = mapped_column(String(2000))
    """Where `{{ link }}` and link cards lead; sends wrap it in a per-recipient short link."""
    miniprogram_appid: Mapped[str | None] = mapped_column(String(64))
    miniprogram_page: Mapped[str | None] = mapped_column(String(500))
    sms_template_code: Mapped[str | None] = mapped_column(String(64))
    """The provider's approved SMS template id; `body` then renders the params as `key=value` lines."""
    tags: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    is_marketing: Mapped[bool] = mapped_column(default=True)
    """Marketing content counts against caps and the moments marketing share; service content does not."""
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    archived_at: Mapped[datetime | None]


class Priority(IntEnum):
    """Lower sends first. Transactional messages skip marketing caps, quiet hours and unsubscribes."""

    TRANSACTIONAL = 0
    SERVICE = 1
    MARKETING = 2


class DeliveryStatus(StrEnum):
    HOLDOUT = "holdout"
    """In the control group: nothing is sent; kept so results compare against it."""
    SUPPRESSED = "suppressed"
    """The policy stopped it; `reason` says why."""
    QUEUED = "queued"
    """Waiting to be sent at or after `not_before`."""
    SENDING = "sending"
    """Claimed by a sender."""
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


class SuppressionReason(StrEnum):
    NO_CHANNEL = "no_channel"
    """No channel in the preference list can reach the customer (no friend edge, phone or e-mail)."""
    UNSUBSCRIBED = "unsubscribed"
    CAPPED = "capped"
    PLATFORM_CAPPED = "platform_capped"
    QUIET_HOURS = "quiet_hours"
    DUPLICATE = "duplicate"
    """The same content reached the customer within the dedup window."""
    GOAL_MET = "goal_met"
    ERASED = "erased"
    """The customer's data was erased on request (PIPL)."""
    PROVIDER_REJECTED = "provider_rejected"
    """The provider refused this recipient, e.g. WeCom "received another mass message"."""


class Delivery(WorkspaceScoped, Base):
    """One message to one customer from one source step, planned once and sent at most once."""

    __tablename__ = "deliveries"
    __table_args__ = (
        # The idempotency key: a source step reaches a customer once, whichever channel it picks.
        UniqueConstraint("workspace_id", "source", "source_id", "step", "customer_id"),
        Index("ix_deliveries_send_queue", "status", "priority", "not_before"),
        Index("ix_deliveries_customer_time", "customer_id", "planned_at"),
        Index("ix_deliveries_source_status", "source", "source_id", "status"),
        Index("ix_deliveries_provider", "channel_account_id", "provider_message_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(String(20))
    """"broadcast", "journey", "transactional", "test"."""
    source_id: Mapped[int] = mapped_column(BigInteger)
    step: Mapped[str] = mapped_column(String(80), default="")
    """The step within the source: "" for a broadcast, "<step id>:<enrolment id>" for a journey."""
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="CASCADE"))
    channel_account_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("channel_accounts.id", ondelete="SET NULL")
    )
    channel: Mapped[str | None] = mapped_column(String(20))
    """The adapter kind chosen (None when suppressed before a channel was chosen)."""
    address: Mapped[str | None] = mapped_column(String(200))
    """Where it goes on that channel: phone, e-mail, external_userid."""
    staff_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("staff.id", ondelete="SET NULL"))
    """The staff member who sends it (WeCom sends go out from a staff member's account)."""
    variant: Mapped[str | None] = mapped_column(String(20))
    content_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("content_items.id", ondelete="SET NULL"))
    content_hash: Mapped[str | None] = mapped_column(String(32))
    """Hash of the content template, for "same content within D days" deduplication."""
    priority: Mapped[int] = mapped_column(default=int(Priority.MARKETING))
    status: Mapped[DeliveryStatus] = mapped_column(String(12))
    reason: Mapped[str | None] = mapped_column(String(30))
    """Why it was suppressed or failed (a `SuppressionReason` or a provider error code)."""
    error: Mapped[str | None] = mapped_column(String(500))
    message: Mapped[dict[str, Any] | None]
    """The rendered message as sent: {"text": …, "subject": …, "link": …, "card": {…}}."""
    short_link_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("short_links.id", ondelete="SET NULL"))
    """The per-recipient short link inside the message, so clicks come back to this delivery."""
    attempts: Mapped[int] = mapped_column(default=0)
    not_before: Mapped[datetime]
    """Earliest send time: the broadcast's time, or the end of quiet hours when held."""
    slot_at: Mapped[datetime | None]
    """The send time whose cap slots this delivery took (None: it took none — suppressed, holdout or
    transactional); giving slots back uses it, not `not_before`, which retries move."""
    claimed_at: Mapped[datetime | None]
    provider_message_id: Mapped[str | None] = mapped_column(String(100))
    planned_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    read_at: Mapped[datetime | None]
    clicked_at: Mapped[datetime | None]
    unsubscribed_at: Mapped[datetime | None]


class TouchState(WorkspaceScoped, Base):
    """Per-customer counters the delivery policy locks and updates in the same transaction as the
    deliveries it admits: sends per day/week/month (overall and per channel) and recent content.

    One row per customer, so a check is one locked read and one write, and two senders touching
    the same customer serialise on this row instead of counting then inserting.
    """

    __tablename__ = "touch_states"

    customer_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """{period key: {scope: n}}, e.g. {"d2026-11-23": {"all": 1, "sms": 1}, "w2026-48": {…}, "m2026-11": {…}};
    keys of past periods are dropped on each write."""
    recent: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """{content hash: ISO time last sent} within the longest dedup window."""
    updated_at: Mapped[datetime]


class TouchPolicy(WorkspaceScoped, Base):
    """The workspace's delivery policy (one row; defaults apply until an operator saves one)."""

    __tablename__ = "touch_policies"
    __table_args__ = (UniqueConstraint("workspace_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    caps: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Frequency caps per scope and period on the brand's calendar:
    {"all": {"day": 2, "week": 4, "month": 10}, "sms": {"week": 1}}."""
    platform_caps: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Caps the platforms impose, per adapter kind: {"wecom_customer": {"month": 4}} (a setting,
    because platforms change their rules)."""
    quiet_start: Mapped[str] = mapped_column(String(5), default="21:00")
    """Quiet hours start (brand time zone, HH:MM); equal start and end means no quiet hours."""
    quiet_end: Mapped[str] = mapped_column(String(5), default="09:00")
    dedup_days: Mapped[int] = mapped_column(default=7)
    """The same content is not sent to a customer twice within this many days (0: off)."""
    approval_threshold: Mapped[int] = mapped_column(default=10_000)
    """Broadcasts to more customers than this wait for an admin's approval."""
    moments_marketing_share: Mapped[int] = mapped_column(default=20)
    """Most marketing posts in a persona's moments calendar, in percent per week (the ≤20% rule)."""
    updated_at: Mapped[datetime]


class Unsubscribe(WorkspaceScoped, Base):
    """An unsubscribe click from a message link, kept with the delivery it came from."""

    __tablename__ = "unsubscribes"
    __table_args__ = (UniqueConstraint("delivery_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("deliveries.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime]


class SandboxMessage(WorkspaceScoped, Base):
    """The sandbox adapter's outbox: what would have been sent, one row per delivery."""

    __tablename__ = "sandbox_messages"
    __table_args__ = (UniqueConstraint("delivery_id"), Index("ix_sandbox_messages_ws_time", "workspace_id", "sent_at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("deliveries.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="CASCADE"))
    channel_account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("channel_accounts.id", ondelete="CASCADE"))
    message: Mapped[dict[str, Any]]
    sent_at: Mapped[datetime]


class DeliveryCallback(WorkspaceScoped, Base):
    """A provider status report (delivered, read, failed) received once, keyed by the provider's id."""

    __tablename__ = "delivery_callbacks"
    __table_args__ = (UniqueConstraint("channel_account_id", "callback_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel_account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("channel_accounts.id", ondelete="CASCADE"))
    callback_key: Mapped[str] = mapped_column(String(200))
    delivery_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("deliveries.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(20))
    payload: Mapped[dict[str, Any]]
    received_at: Mapped[datetime]
