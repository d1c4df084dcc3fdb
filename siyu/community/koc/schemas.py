"""Shapes of questionnaires and KOC decisions (API bodies and console forms)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field


class FieldType(StrEnum):
    TEXT = "text"
    TEXTAREA = "textarea"
    NUMBER = "number"
    PHONE = "phone"
    SINGLE = "single"
    MULTI = "multi"


class FieldIn(BaseModel):
    """One question. `choices` for single/multi; `max_length` for text/textarea; `min`/`max` for number."""

    key: str
    label: str
    type: str
    required: bool = False
    choices: list[str] = Field(default_factory=list)
    max_length: int | None = None
    min: int | None = None
    max: int | None = None


class QuestionnaireIn(BaseModel):
    slug: str
    title: str
    intro: str = ""
    purpose: str = "koc_application"
    fields: list[FieldIn] = Field(default_factory=list)


class Decision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    REVOKE = "revoke"


class DecisionIn(BaseModel):
    """An operator's decision on a KOC; the optional effects apply on approval only."""

    decision: Decision
    note: str = ""
    tag_id: int | None = None
    tier_id: int | None = None
    group_ids: list[int] = Field(default_factory=list)
    commission_rule_id: int | None = None
