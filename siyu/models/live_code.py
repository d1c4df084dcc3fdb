"""Live codes (渠道活码): one stable QR that routes each scan to a staff member or a group."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.models.base import Base, BigId, JsonDoc, WorkspaceScoped


class LiveCodeKind(StrEnum):
    STAFF = "staff"  # routes to a staff member's 联系我 code
    GROUP = "group"  # 群活码: routes to the first group with room
    STORE = "store"  # 门店活码: routes to the staff of the store chosen (or the code's own store)


class RotationMode(StrEnum):
    ROUND_ROBIN = "round_robin"
    WEIGHTED = "weighted"
    RANDOM = "random"


class RouteShift(StrEnum):
    """When a route is eligible, against the live code's working-hours schedule."""

    ALWAYS = "always"
    WORKING = "working"  # only inside the schedule's windows
    OFF_HOURS = "off_hours"  # only outside them


class LiveCode(WorkspaceScoped, Base):
    """A live code. Its public URL `/q/{slug}` never changes while its routes do."""

    __tablename__ = "live_codes"
    __table_args__ = (UniqueConstraint("slug"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    slug: Mapped[str] = mapped_column(String(16))
    """Random, URL-safe, unique across workspaces: the QR encodes `/q/{slug}`."""
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[LiveCodeKind] = mapped_column(String(10))
    channel_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("channels.id", ondelete="SET NULL"))
    store_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("stores.id", ondelete="SET NULL"))
    """For a store code bound to one store; a store code without one asks the scanner to choose."""
    experiment_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("experiments.id", ondelete="SET NULL"))
    """Split scans across this experiment's variants (each variant may carry its own hook/welcome)."""
    rotation: Mapped[RotationMode] = mapped_column(String(12), default=RotationMode.ROUND_ROBIN)
    rotation_counter: Mapped[int] = mapped_column(BigInteger, default=0)
    """Bumped atomically on every routed scan; round-robin and weighted rotation index into it."""
    is_sticky: Mapped[bool] = mapped_column(default=True)
    """Same customer (or returning visitor) → same staff member as before."""
    schedule: Mapped[list[dict[str, Any]]] = mapped_column(JsonDoc, default=list)
    """Working-hours windows in the brand time zone: [{"days": [0..6], "start": "09:00", "end": "18:00"}]."""
    welcome: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Welcome message (欢迎语): {"text", "image_url", "link": {"title", "url"}, "miniprogram": {...}}."""
    group_warn_percent: Mapped[int] = mapped_column(default=90)
    """Group codes: warn the operator when the groups are this full, in total, before all are."""
    logo_png: Mapped[bytes | None] = mapped_column(LargeBinary)
    """Optional centre logo for the printed QR (PNG, small; the QR uses high error correction)."""
    expires_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]
    """Deleted codes keep their row so printed QR codes answer a friendly page, not a 404."""
    created_at: Mapped[datetime]


class LiveCodeRoute(WorkspaceScoped, Base):
    """One destination of a live code: a staff member or a group, with weight, cap and shift."""

    __tablename__ = "live_code_routes"
    __table_args__ = (Index("ix_live_code_routes_code", "live_code_id", "position"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    live_code_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("live_codes.id", ondelete="CASCADE"))
    staff_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("staff.id", ondelete="CASCADE"))
    group_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("community_groups.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(default=0)
    weight: Mapped[int] = mapped_column(default=1)
    daily_cap: Mapped[int | None]
    """Most scans routed here per brand-local day; None means no cap (0 is refused)."""
    shift: Mapped[RouteShift] = mapped_column(String(10), default=RouteShift.ALWAYS)
    is_backup: Mapped[bool] = mapped_column(default=False)
    """Used only when every regular route is capped or off shift."""
    is_active: Mapped[bool] = mapped_column(default=True)
    contact_qr_url: Mapped[str | None] = mapped_column(String(500))
    """The staff member's 「联系我」 QR image for this route (set by the WeCom integration, which
    creates it with this route's `state`, or entered by hand); shown on the landing page."""


class LiveCodeRouteDay(WorkspaceScoped, Base):
    """How many scans a route took on one brand-local day; the cap is enforced on this row."""

    __tablename__ = "live_code_route_days"
    __table_args__ = (UniqueConstraint("route_id", "day"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    route_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("live_code_routes.id", ondelete="CASCADE"))
    day: Mapped[date]
    taken: Mapped[int] = mapped_column(default=0)


class LiveCodeTag(WorkspaceScoped, Base):
    """A tag applied automatically to customers who add through the live code."""

    __tablename__ = "live_code_tags"
    __table_args__ = (UniqueConstraint("live_code_id", "tag_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    live_code_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("live_codes.id", ondelete="CASCADE"))
    tag_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("tags.id", ondelete="CASCADE"))


class LiveCodeScan(WorkspaceScoped, Base):
    """One scan of a live code: where it was routed, and the add it led to."""

    __tablename__ = "live_code_scans"
    __table_args__ = (
        Index("ix_live_code_scans_code_time", "live_code_id", "scanned_at"),
        Index("ix_live_code_scans_ws_channel_time", "workspace_id", "channel_id", "scanned_at"),
        Index("ix_live_code_scans_visitor", "live_code_id", "visitor_id"),
        Index("ix_live_code_scans_customer", "customer_id"),
        Index("ix_live_code_scans_ws_time", "workspace_id", "scanned_at"),  # funnels: scans of a period
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    live_code_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("live_codes.id", ondelete="CASCADE"))
    route_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("live_code_routes.id", ondelete="SET NULL"))
    staff_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("staff.id", ondelete="SET NULL"))
    group_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("community_groups.id", ondelete="SET NULL"))
    store_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("stores.id", ondelete="SET NULL"))
    channel_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("channels.id", ondelete="SET NULL"))
    variant: Mapped[str | None] = mapped_column(String(20))
    """The experiment variant key the visitor was assigned, when the code runs an experiment."""
    state: Mapped[str | None] = mapped_column(String(30))
    """The WeCom `state` shown with the route (see `siyu.livecodes.state`)."""
    visitor_id: Mapped[str] = mapped_column(String(64))
    """A hash of the visitor's cookie: returning visitors are recognised without storing who they are."""
    user_agent: Mapped[str | None] = mapped_column(String(300))
    ip_hash: Mapped[str | None] = mapped_column(String(64))
    """SHA-256 of the workspace salt and the client IP: counts unique scanners, never stores the IP."""
    outcome: Mapped[str] = mapped_column(String(20))
    """"routed", "sticky" (same staff as before), "backup", "no_route", "expired"…"""
    scanned_at: Mapped[datetime]
    customer_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="SET NULL"))
    """Set when the scan led to an add (or group join)."""
    added_at: Mapped[datetime | None]
