"""Input shapes of challenges and moderation (API and console share them)."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field


class ChallengeIn(BaseModel):
    """A challenge as an operator writes it; dates are brand-local and inclusive."""

    title: str = Field(min_length=1, max_length=100)
    topic: str = Field(min_length=1, max_length=40)
    description: str = Field(default="", max_length=5000)
    starts_on: date
    ends_on: date
    days_required: int = Field(ge=1, le=366)
    points_per_day: int = Field(default=0, ge=0, le=100_000)
    completion_bonus: int = Field(default=0, ge=0, le=1_000_000)
    certificate_title: str = Field(default="", max_length=60)


class StatusIn(BaseModel):
    status: str = Field(pattern="^(draft|published|archived)$")


class RewardPostIn(BaseModel):
    points: int = Field(ge=1, le=100_000)
    reason: str = Field(min_length=1, max_length=200)
