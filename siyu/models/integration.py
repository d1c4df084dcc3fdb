"""WeCom (企业微信) and WeChat official-account integration: configuration, the callback inbox, and
what siyu keeps of the objects it created on WeCom (contact ways, message and moment tasks,
transfers), plus sync runs and staff behaviour data.

The customer pool itself stays in the pool tables (customers, identities, relationships, groups,
tags); these tables only remember how siyu's rows map to WeCom's and what WeCom reported.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.models.base import Base, BigId, JsonDoc, WorkspaceScoped

DEFAULT_WECOM_API = "https://qyapi.weixin.qq.com/cgi-bin/"
DEFAULT_WECHAT_API = "https://api.weixin.qq.com/cgi-bin/"


class WecomIntegration(WorkspaceScoped, Base):
    """One WeCom corp per workspace: ids, encrypted secrets, and how the connection is doing."""

    __tablename__ = "wecom_integrations"
    __table_args__ = (UniqueConstraint("workspace_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    corp_id: Mapped[str] = mapped_column(String(64))
    agent_id: Mapped[str | None] = mapped_column(String(32))
    """The self-built app (自建应用) the sidebar, JS-SDK and OAuth run as."""
    secrets_encrypted: Mapped[str | None] = mapped_column(Text)
    """Fernet-sealed JSON (see `siyu.messaging.crypto`): `contact_secret` (客户联系 secret),
    `app_secret` (the self-built app's secret), `callback_token`, `callback_aes_key`. Never shown back."""
    api_base_url: Mapped[str] = mapped_column(String(300), default=DEFAULT_WECOM_API)
    """Where the API lives; the fake WeCom server's address in tests and in the demo."""
    is_fake: Mapped[bool] = mapped_column(default=False)
    """Talks to siyu's built-in fake WeCom server (demo and trials without a real corp)."""
    is_active: Mapped[bool] = mapped_column(default=True)
    callback_verified_at: Mapped[datetime | None]
    """When WeCom last verified the callback URL (the echostr handshake)."""
    last_event_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    """The latest API or callback error, for the integration page (secrets redacted)."""
    last_error_at: Mapped[datetime | None]
    last_checked_at: Mapped[datetime | None]
    """When the connection test last succeeded."""
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class EventSource(StrEnum):
    WECOM = "wecom"
    OFFICIAL_ACCOUNT = "official_account"


class EventStatus(StrEnum):
    RECEIVED = "received"  # stored, processing queued
    PROCESSED = "processed"
    IGNORED = "ignored"  # an event siyu does not act on (recorded so the page shows it)
    FAILED = "failed"  # processing raised; `error` says why, a retry may follow


class IntegrationEvent(WorkspaceScoped, Base):
    """The callback inbox: every decrypted push, once. WeCom retries a push it got no answer for;
    the unique `dedup_key` turns a retry into a counted duplicate instead of a second processing."""

    __tablename__ = "integration_events"
    __table_args__ = (
        UniqueConstraint("workspace_id", "source", "dedup_key"),
        Index("ix_integration_events_ws_received", "workspace_id", "received_at"),
        Index("ix_integration_events_status", "status", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[EventSource] = mapped_column(String(20))
    dedup_key: Mapped[str] = mapped_column(String(200))
    """MsgId when the push has one, else a hash of the fields that identify the event."""
    event: Mapped[str] = mapped_column(String(60))
    """`Event` (or `MsgType` for a plain message): change_external_contact, subscribe…"""
    change_type: Mapped[str | None] = mapped_column(String(60))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    """The decrypted XML as a flat dict of its fields."""
    status: Mapped[EventStatus] = mapped_column(String(12), default=EventStatus.RECEIVED)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    duplicates: Mapped[int] = mapped_column(default=0)
    """How many retries of this push arrived after the first (and were answered without effect)."""
    received_at: Mapped[datetime]
    processed_at: Mapped[datetime | None]


class ContactWayKind(StrEnum):
    CONTACT = "contact"  # 联系我 (add_contact_way)
    JOIN = "join"  # 加入群聊 (add_join_way)


class WecomContactWay(WorkspaceScoped, Base):
    """A 「联系我」 or group-join way siyu created on WeCom for a live code route (and arm), with the
    `state` WeCom hands back on the add."""

    __tablename__ = "wecom_contact_ways"
    __table_args__ = (
        UniqueConstraint("workspace_id", "config_id"),
        Index("ix_wecom_contact_ways_code", "live_code_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    live_code_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("live_codes.id", ondelete="CASCADE"))
    route_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("live_code_routes.id", ondelete="CASCADE"))
    variant: Mapped[str | None] = mapped_column(String(20))
    kind: Mapped[ContactWayKind] = mapped_column(String(10))
    state: Mapped[str] = mapped_column(String(30))
    config_id: Mapped[str] = mapped_column(String(64))
    qr_code: Mapped[str | None] = mapped_column(String(500))
    pushed: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    """What WeCom last accepted for this way ({"user": [...]} or {"chat_id_list": [...]}): the
    scheduled push compares against it and calls `update_*` only when routing changed."""
    pushed_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    deleted_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class MessageTaskStatus(StrEnum):
    WAITING = "waiting"  # the staff member has not confirmed it yet
    SENT = "sent"  # confirmed; per-customer results are being reconciled
    DONE = "done"  # results final
    EXPIRED = "expired"  # never confirmed within the window


class WecomMessageTask(WorkspaceScoped, Base):
    """One `add_msg_template` task (a msgid) for one sender: whether the staff member confirmed it,
    its per-customer results, and the reminders sent."""

    __tablename__ = "wecom_message_tasks"
    __table_args__ = (
        UniqueConstraint("workspace_id", "msgid", "sender"),
        Index("ix_wecom_message_tasks_status", "workspace_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    msgid: Mapped[str] = mapped_column(String(100))
    sender: Mapped[str] = mapped_column(String(64))
    """The staff member's WeCom userid."""
    chat_type: Mapped[str] = mapped_column(String(10), default="single")
    channel_account_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("channel_accounts.id", ondelete="SET NULL")
    )
    broadcast_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("broadcasts.id", ondelete="SET NULL"))
    status: Mapped[MessageTaskStatus] = mapped_column(String(10), default=MessageTaskStatus.WAITING)
    recipients: Mapped[int] = mapped_column(default=0)
    counts: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    """Per-status counts of the last reconciliation: {"delivered", "pending", "not_friend", "platform_capped"}."""
    remind_count: Mapped[int] = mapped_column(default=0)
    reminded_at: Mapped[datetime | None]
    checked_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    """The last error WeCom answered for this task (secrets redacted), for the tasks page."""
    created_at: Mapped[datetime]


class WecomMomentTask(WorkspaceScoped, Base):
    """One `add_moment_task` for a calendar moment post: the async job, then the moment and its stats."""

    __tablename__ = "wecom_moment_tasks"
    __table_args__ = (UniqueConstraint("moment_post_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    moment_post_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("moment_posts.id", ondelete="CASCADE"))
    jobid: Mapped[str | None] = mapped_column(String(100))
    moment_id: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(12), default="creating")
    """"creating" (job running on WeCom), "created", "failed"."""
    error: Mapped[str | None] = mapped_column(Text)
    request: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    """The `add_moment_task` body, kept until WeCom has created the moment (a retry resends it)."""
    stats: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    """{"publishers", "not_published", "likes", "comments"} from the result and comment APIs."""
    checked_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class SyncStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # stopped on an error; running it again resumes at `cursor`


class WecomSyncRun(WorkspaceScoped, Base):
    """A full (or partial) pull of staff, customers and groups from WeCom. Progress is kept per step
    with the API cursor, so a run stopped by an error or a restart resumes where it was."""

    __tablename__ = "wecom_sync_runs"
    __table_args__ = (Index("ix_wecom_sync_runs_ws_started", "workspace_id", "started_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    scope: Mapped[str] = mapped_column(String(20), default="full")
    """"full", "staff", "customers", "groups", "tags"."""
    status: Mapped[SyncStatus] = mapped_column(String(10), default=SyncStatus.RUNNING)
    step: Mapped[str | None] = mapped_column(String(30))
    cursor: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    """Where to resume: {"step", "userids_done": n, "cursor": "..."}."""
    counts: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("jobs.id", ondelete="SET NULL"))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class TransferKind(StrEnum):
    ON_JOB = "on_job"  # 在职继承
    RESIGNED = "resigned"  # 离职继承


class TransferStatus(StrEnum):
    SUBMITTED = "submitted"
    WAITING = "waiting"  # WeCom: 1 等待接替
    SUCCEEDED = "succeeded"  # 1 接替完毕
    REFUSED = "refused"  # 3 客户拒绝
    LIMITED = "limited"  # 4 接替成员客户达到上限
    FAILED = "failed"  # refused by the API, or transfer_fail


class WecomTransfer(WorkspaceScoped, Base):
    """One customer or group handed from one staff member to another through WeCom."""

    __tablename__ = "wecom_transfers"
    __table_args__ = (
        Index("ix_wecom_transfers_ws_status", "workspace_id", "status"),
        Index("ix_wecom_transfers_customer", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[TransferKind] = mapped_column(String(10))
    handover_staff_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("staff.id"))
    takeover_staff_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("staff.id"))
    customer_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="SET NULL"))
    group_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("community_groups.id", ondelete="SET NULL"))
    external_id: Mapped[str] = mapped_column(String(64))
    """external_userid for a customer, chat_id for a group."""
    status: Mapped[TransferStatus] = mapped_column(String(10), default=TransferStatus.SUBMITTED)
    errcode: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    submitted_by: Mapped[str | None] = mapped_column(String(100))
    submitted_at: Mapped[datetime]
    takeover_at: Mapped[datetime | None]
    """When WeCom says the takeover happens / happened (24 h after submission for customers)."""
    checked_at: Mapped[datetime | None]


class StaffBehaviorDay(WorkspaceScoped, Base):
    """One staff member's day of customer-contact behaviour as WeCom reports it
    (`get_user_behavior_data`)."""

    __tablename__ = "staff_behavior_days"
    __table_args__ = (
        UniqueConstraint("staff_id", "day"),
        Index("ix_staff_behavior_days_ws_day", "workspace_id", "day"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    staff_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("staff.id", ondelete="CASCADE"))
    day: Mapped[date]
    """The brand-local day WeCom's stat_time names."""
    new_apply_cnt: Mapped[int] = mapped_column(default=0)
    """Friend requests the staff member sent."""
    new_contact_cnt: Mapped[int] = mapped_column(default=0)
    chat_cnt: Mapped[int] = mapped_column(default=0)
    """Customers chatted with."""
    message_cnt: Mapped[int] = mapped_column(default=0)
    reply_percentage: Mapped[float | None]
    """Share (0–100) of chats started by customers that the staff member answered, as WeCom reports."""
    avg_reply_time: Mapped[int | None]
    """Average minutes to the first reply."""
    negative_feedback_cnt: Mapped[int] = mapped_column(default=0)
    """Customers who deleted or blocked the staff member that day."""
    fetched_at: Mapped[datetime]


class WechatOfficialAccount(WorkspaceScoped, Base):
    """A WeChat official account (公众号) the workspace runs: QR codes, subscribe events, template
    messages and web OAuth for the member H5."""

    __tablename__ = "wechat_official_accounts"
    __table_args__ = (UniqueConstraint("workspace_id"), UniqueConstraint("app_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    app_id: Mapped[str] = mapped_column(String(64))
    secrets_encrypted: Mapped[str | None] = mapped_column(Text)
    """Fernet-sealed JSON: `app_secret`, `callback_token`, `callback_aes_key` (safe mode; may be empty)."""
    api_base_url: Mapped[str] = mapped_column(String(300), default=DEFAULT_WECHAT_API)
    is_fake: Mapped[bool] = mapped_column(default=False)
    is_active: Mapped[bool] = mapped_column(default=True)
    oauth_scope: Mapped[str] = mapped_column(String(20), default="snsapi_base")
    """"snsapi_base" (silent, openid only) or "snsapi_userinfo" (asks, gives nickname and unionid)."""
    last_event_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class WechatQrCode(WorkspaceScoped, Base):
    """A parametric official-account QR code (带参数二维码) for a live code (and arm): scanning it
    follows the account and the `scene` attributes the follower like a WeCom `state` does."""

    __tablename__ = "wechat_qr_codes"
    __table_args__ = (UniqueConstraint("workspace_id", "scene"), Index("ix_wechat_qr_codes_code", "live_code_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    live_code_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("live_codes.id", ondelete="CASCADE"))
    variant: Mapped[str | None] = mapped_column(String(20))
    scene: Mapped[str] = mapped_column(String(64))
    """`scene_str`: the live code state (see `siyu.livecodes.state`)."""
    ticket: Mapped[str] = mapped_column(String(200))
    url: Mapped[str | None] = mapped_column(String(500))
    """The URL the QR encodes (WeChat's `url` field)."""
    expires_at: Mapped[datetime | None]
    """None for a permanent code (QR_LIMIT_STR_SCENE)."""
    created_at: Mapped[datetime]
