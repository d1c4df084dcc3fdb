"""The broadcast wizard's form: posted text → `BroadcastIn`, and a broadcast → the form's values.

The form keeps every value as the operator typed it, so a refused save shows the same form again
with the message next to the field the service or the schema named.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from starlette.datastructures import FormData

from siyu.campaigns.broadcasts.schemas import BroadcastIn
from siyu.campaigns.broadcasts.service import coupon_template_of
from siyu.kit.errors import DomainError, InvalidInput
from siyu.models import Broadcast, QuietHoursMode

ACCOUNT_SLOTS = 3
"""Channel accounts the wizard offers, in preference order."""
VARIANT_SLOTS = 3
"""A/B variants the wizard offers (A, B, C)."""
VARIANT_KEYS = ("A", "B", "C")
BRIEF_KEYS = ("objective", "audience", "hook", "mechanism", "path")
LOCAL_FORMAT = "%Y-%m-%dT%H:%M"
"""What an <input type="datetime-local"> posts: the brand's wall-clock time."""


def _text(form: FormData, key: str) -> str:
    value = form.get(key)
    return value.strip() if isinstance(value, str) else ""


@dataclass
class BroadcastForm:
    """The wizard's values as text, in the form's own shape."""

    name: str = ""
    segment_id: str = ""
    accounts: list[str] = field(default_factory=lambda: [""] * ACCOUNT_SLOTS)
    variants: list[dict[str, str]] = field(
        default_factory=lambda: [{"content_id": "", "weight": "50" if i < 1 else ""} for i in range(VARIANT_SLOTS)]
    )
    holdout_pct: str = "0"
    goal_type: str = ""
    goal_days: str = "7"
    goal_event_type: str = ""
    brief: dict[str, str] = field(default_factory=lambda: dict.fromkeys(BRIEF_KEYS, ""))
    quiet_hours: str = str(QuietHoursMode.HOLD)
    scheduled_at: str = ""
    coupon_template_id: str = ""
    """随消息发放优惠券: the template each recipient is issued a coupon of (kept in the brief)."""

    @classmethod
    def from_form(cls, form: FormData) -> BroadcastForm:
        return cls(
            name=_text(form, "name"),
            segment_id=_text(form, "segment_id"),
            accounts=[_text(form, f"account_{i}") for i in range(ACCOUNT_SLOTS)],
            variants=[
                {"content_id": _text(form, f"variant_{i}_content_id"), "weight": _text(form, f"variant_{i}_weight")}
                for i in range(VARIANT_SLOTS)
            ],
            holdout_pct=_text(form, "holdout_pct") or "0",
            goal_type=_text(form, "goal_type"),
            goal_days=_text(form, "goal_days") or "7",
            goal_event_type=_text(form, "goal_event_type"),
            brief={key: _text(form, f"brief_{key}") for key in BRIEF_KEYS},
            quiet_hours=_text(form, "quiet_hours") or str(QuietHoursMode.HOLD),
            scheduled_at=_text(form, "scheduled_at"),
            coupon_template_id=_text(form, "coupon_template_id"),
        )

    @classmethod
    def from_broadcast(cls, broadcast: Broadcast, tz: ZoneInfo) -> BroadcastForm:
        accounts = [str(i) for i in broadcast.channel_account_ids][:ACCOUNT_SLOTS]
        variants = [
            {"content_id": str(v.get("content_id", "")), "weight": str(v.get("weight", ""))}
            for v in broadcast.variants[:VARIANT_SLOTS]
        ]
        goal = broadcast.goal or {}
        return cls(
            name=broadcast.name,
            segment_id=str(broadcast.segment_id),
            accounts=accounts + [""] * (ACCOUNT_SLOTS - len(accounts)),
            variants=variants + [{"content_id": "", "weight": ""} for _ in range(VARIANT_SLOTS - len(variants))],
            holdout_pct=str(broadcast.holdout_pct),
            goal_type=str(goal.get("type") or ""),
            goal_days=str(goal.get("days") or 7),
            goal_event_type=str(goal.get("event_type") or ""),
            brief={key: str((broadcast.brief or {}).get(key) or "") for key in BRIEF_KEYS},
            quiet_hours=str(broadcast.quiet_hours),
            scheduled_at=broadcast.scheduled_at.astimezone(tz).strftime(LOCAL_FORMAT) if broadcast.scheduled_at else "",
            coupon_template_id=str(template_id) if (template_id := coupon_template_of(broadcast)) is not None else "",
        )

    def to_input(self, tz: ZoneInfo) -> BroadcastIn:
        """The schema's shape; a value that does not parse is an `InvalidInput` naming its field."""
        data: dict[str, Any] = {
            "name": self.name,
            "segment_id": _integer(self.segment_id, "segment_id"),
            "channel_account_ids": [_integer(a, f"channel_account_ids.{i}") for i, a in enumerate(self.accounts) if a],
            "variants": [
                {
                    "key": VARIANT_KEYS[i],
                    "content_id": _integer(v["content_id"], f"variants.{i}.content_id"),
                    "weight": _integer(v["weight"] or "50", f"variants.{i}.weight"),
                }
                for i, v in enumerate(self.variants)
                if v["content_id"]
            ],
            "holdout_pct": _integer(self.holdout_pct, "holdout_pct"),
            "goal": (
                {
                    "type": self.goal_type,
                    "days": _integer(self.goal_days, "goal.days"),
                    "event_type": self.goal_event_type or None,
                }
                if self.goal_type
                else None
            ),
            "brief": self.brief,
            "quiet_hours": self.quiet_hours,
            "scheduled_at": _local_time(self.scheduled_at, tz),
            "coupon_template_id": (
                _integer(self.coupon_template_id, "coupon_template_id") if self.coupon_template_id else None
            ),
        }
        if not data["channel_account_ids"]:
            raise InvalidInput("choose at least one channel account", details={"field": "channel_account_ids.0"})
        if not data["variants"]:
            raise InvalidInput("choose the content to send", details={"field": "variants.0.content_id"})
        try:
            return BroadcastIn.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            path = ".".join(str(p) for p in first["loc"])
            raise InvalidInput(f"{path}: {first['msg']}", details={"field": path or "form"}) from None


def _integer(text: str, field: str) -> int:
    # Digits only and short enough for a BIGINT: anything else is the operator's typo, not a 500.
    if not text or not text.isascii() or not text.isdigit() or len(text) > 18:
        raise InvalidInput(f"{field}: expected a whole number", details={"field": field})
    return int(text)


def _local_time(text: str, tz: ZoneInfo) -> datetime | None:
    """The brand's wall-clock time as an aware datetime (empty: send as soon as submitted)."""
    if not text:
        return None
    try:
        return datetime.strptime(text, LOCAL_FORMAT).replace(tzinfo=tz)
    except ValueError:
        raise InvalidInput("scheduled_at: expected YYYY-MM-DDTHH:MM", details={"field": "scheduled_at"}) from None


def error_field(exc: DomainError) -> str:
    """Where a refused save's message goes: the field the error names, folded onto the wizard's inputs."""
    details = exc.details if isinstance(exc.details, dict) else {}
    field_name = str(details.get("field") or "form")
    if field_name.startswith("goal"):
        return "goal"
    if field_name.startswith("brief"):
        return "brief"
    if field_name == "variants":
        return "variants.0.content_id"
    if field_name == "channel_account_ids":
        return "channel_account_ids.0"
    return field_name
