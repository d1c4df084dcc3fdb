"""The KOC program: questionnaires (application forms), answers, KOC profiles and score history."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.models.base import Base, BigId, JsonDoc, WorkspaceScoped


class QuestionnaireStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    CLOSED = "closed"


class Questionnaire(WorkspaceScoped, Base):
    """A form built in the console and filled in on the member H5 page."""

    __tablename__ = "questionnaires"
    __table_args__ = (UniqueConstraint("workspace_id", "slug"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    slug: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(100))
    intro: Mapped[str] = mapped_column(Text, default="")
    purpose: Mapped[str] = mapped_column(String(20), default="koc_application")
    """"koc_application" (answering applies to the KOC program) or "survey"."""
    fields: Mapped[list[Any]] = mapped_column(JsonDoc, default=list)
    """[{"key", "label", "type": text|textarea|number|phone|single|multi, "required": bool,
    "choices": [..], "max_length": n}] in display order; keys are stable once answers exist."""
    status: Mapped[QuestionnaireStatus] = mapped_column(String(10), default=QuestionnaireStatus.DRAFT)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class QuestionnaireResponse(WorkspaceScoped, Base):
    """A member's answers (one per questionnaire and member; a resubmission is refused)."""

    __tablename__ = "questionnaire_responses"
    __table_args__ = (UniqueConstraint("questionnaire_id", "customer_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    questionnaire_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("questionnaires.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    answers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """{field key: value}; values validated against the questionnaire's fields at submission."""
    submitted_at: Mapped[datetime]


class KocStatus(StrEnum):
    CANDIDATE = "candidate"
    """Scored from behaviour, has not applied."""
    APPLIED = "applied"
    APPROVED = "approved"
    REJECTED = "rejected"
    REVOKED = "revoked"


class KocProfile(WorkspaceScoped, Base):
    """A customer's standing in the KOC program."""

    __tablename__ = "koc_profiles"
    __table_args__ = (
        UniqueConstraint("workspace_id", "customer_id"),
        Index("ix_koc_profiles_ws_status_score", "workspace_id", "status", "score"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="CASCADE"))
    status: Mapped[KocStatus] = mapped_column(String(10), default=KocStatus.CANDIDATE)
    score: Mapped[int] = mapped_column(default=0)
    """0–100, recomputed by the daily job (see `siyu.community.koc.scoring`)."""
    score_parts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """The inputs and sub-scores behind `score`: referral conversions, featured posts, engagement, spend."""
    response_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("questionnaire_responses.id", ondelete="SET NULL")
    )
    applied_at: Mapped[datetime | None]
    decided_at: Mapped[datetime | None]
    decided_by_user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    decision_note: Mapped[str | None] = mapped_column(String(300))
    commission_rule_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("commission_rules.id", ondelete="SET NULL")
    )
    """Approved KOCs earn distribution commission under this rule."""
    scored_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class KocScoreDay(WorkspaceScoped, Base):
    """A KOC's score and results on one day, to track them over time."""

    __tablename__ = "koc_score_days"
    __table_args__ = (UniqueConstraint("koc_profile_id", "day"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    koc_profile_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("koc_profiles.id", ondelete="CASCADE"))
    day: Mapped[date]
    score: Mapped[int]
    referrals: Mapped[int] = mapped_column(default=0)
    featured_posts: Mapped[int] = mapped_column(default=0)
    referred_gmv_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    commission_fen: Mapped[int] = mapped_column(BigInteger, default=0)
