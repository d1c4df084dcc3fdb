"""Marketing consent per customer and channel."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.models.base import Base, BigId, WorkspaceScoped


class ConsentChannel(StrEnum):
    SMS = "sms"
    EMAIL = "email"
    WECOM = "wecom"
    OFFICIAL_ACCOUNT = "official_account"
    PHONE_CALL = "phone_call"


class ConsentStatus(StrEnum):
    GRANTED = "granted"  # marketing allowed
    UNSUBSCRIBED = "unsubscribed"


class Consent(WorkspaceScoped, Base):
    """The current consent of one customer on one channel; changes also go to the timeline."""

    __tablename__ = "consents"
    __table_args__ = (
        UniqueConstraint("customer_id", "channel"),
        # Segments ask "who has granted SMS?" across the workspace.
        Index("ix_consents_ws_channel_status", "workspace_id", "channel", "status", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="CASCADE"))
    channel: Mapped[ConsentChannel] = mapped_column(String(20))
    status: Mapped[ConsentStatus] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(100))
    """Where the consent came from: "h5_form", "sms_reply_TD", "import", "console"…"""
    changed_at: Mapped[datetime]
