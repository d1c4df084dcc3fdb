"""The journey definition language: trigger, steps and goal as JSON, and their validation.

A definition is plain JSON so the API, the console editor and the CLI share one shape. Every
error is an `InvalidInput` whose details name a JSON path ("$.steps[2].then"), so the editor can
show it next to the step that caused it. Validation returns normalised copies (trimmed ids,
integers for numbers) that are what gets stored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.kit.errors import InvalidInput
from siyu.kit.ids import MAX_ID
from siyu.models import (
    Channel,
    ChannelAccount,
    ContentItem,
    CouponTemplate,
    CouponTemplateStatus,
    Script,
    Segment,
    Staff,
    Tag,
)
from siyu.models.group import CommunityGroup

TRIGGER_TYPES = (
    "relationship_added",
    "group_joined",
    "tag_added",
    "segment_entered",
    "first_order",
    "product_ordered",
    "birthday",
    "inactive",
    "points_expiring",
)
DAILY_TRIGGERS = ("birthday", "inactive", "points_expiring")
"""Triggers evaluated once per brand-local day, with date-based entry keys."""
STEP_TYPES = ("wait", "branch", "split", "send", "tag", "untag", "coupon", "task", "exit")
GOAL_TYPES = ("order", "event", "segment")
MAX_STEPS = 50
STEP_ID = re.compile(r"^[A-Za-z0-9_-]{1,30}$")
EVENT_TYPE = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")
CLOCK_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
MAX_WAIT_DAYS = 366


def fail(path: str, message: str) -> InvalidInput:
    """The error for one place in a definition: `field` is the top-level key ("steps"), `path`
    the place inside it ("$.steps[1].content_id")."""
    field = re.split(r"[.\[]", path[2:], maxsplit=1)[0] if path.startswith("$.") else "definition"
    return InvalidInput(f"{path}: {message}", details={"field": field, "path": path})


@dataclass(frozen=True)
class Definition:
    """A validated definition, ready to store."""

    trigger: dict[str, Any]
    steps: list[dict[str, Any]]
    goal: dict[str, Any] | None
    channel_account_ids: list[int]


# --- small readers ------------------------------------------------------------------------------


def _object(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise fail(path, "expected an object")
    return value


def _id(value: Any, path: str, *, required: bool = True) -> int | None:
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise fail(path, "expected a positive integer id")
    return value


def _int(value: Any, path: str, low: int, high: int, *, default: int | None = None) -> int:
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise fail(path, f"expected a whole number from {low} to {high}")
    return value


def _ids(value: Any, path: str) -> list[int]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > 100:
        raise fail(path, "expected a list of at most 100 ids")
    return [_id(v, f"{path}[{i}]") or 0 for i, v in enumerate(value)]


def _text(value: Any, path: str, *, max_length: int, required: bool = True) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise fail(path, "required")
        return None
    if not isinstance(value, str) or len(value) > max_length:
        raise fail(path, f"expected text of at most {max_length} characters")
    if "\x00" in value:
        raise fail(path, "contains a NUL character")
    return value.strip()


def _event_type(value: Any, path: str) -> str:
    text = _text(value, path, max_length=60) or ""
    if not EVENT_TYPE.match(text):
        raise fail(path, 'expected a dotted event name such as "page.view"')
    return text


def _unknown_keys(data: Mapping[str, Any], allowed: Iterable[str], path: str) -> None:
    extra = sorted(set(data) - set(allowed))
    if extra:
        raise fail(f"{path}.{extra[0]}", "unknown field")


# --- references ---------------------------------------------------------------------------------


class References:
    """Looks up ids a definition names, in the workspace; each unknown id fails at its path."""

    def __init__(self, session: Session, workspace_id: int) -> None:
        self.session = session
        self.workspace_id = workspace_id

    def _exists(self, model: Any, ident: int, *extra: Any) -> bool:
        query = select(model.id).where(model.id == ident, model.workspace_id == self.workspace_id, *extra)
        return self.session.scalar(query) is not None

    def tag(self, ident: int, path: str) -> None:
        if not self._exists(Tag, ident):
            raise fail(path, f"no tag with id {ident}")

    def segment(self, ident: int, path: str, *, tracked: bool = False) -> None:
        segment = self.session.scalar(
            select(Segment).where(Segment.id == ident, Segment.workspace_id == self.workspace_id)
        )
        if segment is None or segment.archived_at is not None:
            raise fail(path, f"no segment with id {ident}")
        if tracked and not segment.is_tracked:
            raise fail(path, f"segment {segment.name!r} is not tracked: turn on tracking to trigger on entries")

    def content(self, ident: int, path: str) -> None:
        if not self._exists(ContentItem, ident, ContentItem.archived_at.is_(None)):
            raise fail(path, f"no content with id {ident}")

    def account(self, ident: int, path: str) -> None:
        if not self._exists(ChannelAccount, ident, ChannelAccount.is_active.is_(True)):
            raise fail(path, f"no active channel account with id {ident}")

    def staff(self, ident: int, path: str) -> None:
        if not self._exists(Staff, ident):
            raise fail(path, f"no staff member with id {ident}")

    def channel(self, ident: int, path: str) -> None:
        if not self._exists(Channel, ident):
            raise fail(path, f"no acquisition channel with id {ident}")

    def group(self, ident: int, path: str) -> None:
        if not self._exists(CommunityGroup, ident):
            raise fail(path, f"no group with id {ident}")

    def script(self, ident: int, path: str) -> None:
        if not self._exists(Script, ident):
            raise fail(path, f"no script with id {ident}")

    def coupon_template(self, ident: int, path: str) -> None:
        if not self._exists(CouponTemplate, ident, CouponTemplate.status == CouponTemplateStatus.ACTIVE):
            raise fail(path, f"no active coupon template with id {ident}")


# --- trigger ------------------------------------------------------------------------------------


def validate_trigger(raw: Any, refs: References) -> dict[str, Any]:
    data = _object(raw, "$.trigger")
    kind = data.get("type")
    if kind not in TRIGGER_TYPES:
        raise fail("$.trigger.type", f"expected one of {', '.join(TRIGGER_TYPES)}")
    out: dict[str, Any] = {"type": kind}
    allowed: tuple[str, ...] = ("type",)
    if kind == "relationship_added":
        allowed = ("type", "staff_ids", "channel_ids")
        staff_ids = _ids(data.get("staff_ids"), "$.trigger.staff_ids")
        for i, ident in enumerate(staff_ids):
            refs.staff(ident, f"$.trigger.staff_ids[{i}]")
        if staff_ids:
            out["staff_ids"] = staff_ids
        channel_ids = _ids(data.get("channel_ids"), "$.trigger.channel_ids")
        for i, ident in enumerate(channel_ids):
            refs.channel(ident, f"$.trigger.channel_ids[{i}]")
        if channel_ids:
            out["channel_ids"] = channel_ids
    elif kind == "group_joined":
        allowed = ("type", "group_ids")
        group_ids = _ids(data.get("group_ids"), "$.trigger.group_ids")
        for i, ident in enumerate(group_ids):
            refs.group(ident, f"$.trigger.group_ids[{i}]")
        if group_ids:
            out["group_ids"] = group_ids
    elif kind == "tag_added":
        allowed = ("type", "tag_id")
        out["tag_id"] = _id(data.get("tag_id"), "$.trigger.tag_id")
        refs.tag(out["tag_id"], "$.trigger.tag_id")
    elif kind == "segment_entered":
        allowed = ("type", "segment_id")
        out["segment_id"] = _id(data.get("segment_id"), "$.trigger.segment_id")
        refs.segment(out["segment_id"], "$.trigger.segment_id", tracked=True)
    elif kind == "product_ordered":
        allowed = ("type", "sku", "cycle_days")
        out["sku"] = _text(data.get("sku"), "$.trigger.sku", max_length=64)
        if data.get("cycle_days") is not None:
            out["cycle_days"] = _int(data.get("cycle_days"), "$.trigger.cycle_days", 1, MAX_WAIT_DAYS)
    elif kind == "inactive":
        allowed = ("type", "days")
        out["days"] = _int(data.get("days"), "$.trigger.days", 1, MAX_WAIT_DAYS)
    elif kind == "points_expiring":
        # Members with points expiring within N days; evaluated by the loyalty trigger (triggers.py).
        allowed = ("type", "within_days")
        out["within_days"] = _int(data.get("within_days"), "$.trigger.within_days", 1, MAX_WAIT_DAYS)
    _unknown_keys(data, allowed, "$.trigger")
    return out


# --- steps --------------------------------------------------------------------------------------


def _wait(data: Mapping[str, Any], path: str, trigger: Mapping[str, Any]) -> dict[str, Any]:
    if "day" in data or "at" in data:
        _unknown_keys(data, ("id", "type", "day", "at"), path)
        day = _int(data.get("day"), f"{path}.day", 0, MAX_WAIT_DAYS)
        at = data.get("at")
        if not isinstance(at, str) or not CLOCK_TIME.match(at):
            raise fail(f"{path}.at", 'expected a time of day "HH:MM" (00:00–23:59)')
        return {"day": day, "at": at}
    _unknown_keys(data, ("id", "type", "days", "hours", "minutes", "cycle"), path)
    if data.get("cycle") is not None:
        # "wait one repurchase cycle": the product trigger's cycle_days
        if data.get("cycle") is not True:
            raise fail(f"{path}.cycle", "expected true")
        if trigger.get("type") != "product_ordered" or "cycle_days" not in trigger:
            raise fail(f"{path}.cycle", "only a product_ordered trigger with cycle_days has a repurchase cycle")
        return {"cycle": True}
    out = {
        "days": _int(data.get("days"), f"{path}.days", 0, MAX_WAIT_DAYS, default=0),
        "hours": _int(data.get("hours"), f"{path}.hours", 0, 24 * MAX_WAIT_DAYS, default=0),
        "minutes": _int(data.get("minutes"), f"{path}.minutes", 0, 60 * 24 * MAX_WAIT_DAYS, default=0),
    }
    if not any(out.values()):
        raise fail(path, "a wait needs days, hours or minutes (or day and at)")
    return out


def _condition(raw: Any, path: str, refs: References) -> dict[str, Any]:
    data = _object(raw, path)
    if "segment_id" in data:
        _unknown_keys(data, ("segment_id",), path)
        ident = _id(data.get("segment_id"), f"{path}.segment_id") or 0
        refs.segment(ident, f"{path}.segment_id")
        return {"segment_id": ident}
    if "event_type" in data:
        _unknown_keys(data, ("event_type", "since_enrolment"), path)
        if data.get("since_enrolment", True) is not True:
            raise fail(f"{path}.since_enrolment", "only events since enrolment are supported")
        return {"event_type": _event_type(data.get("event_type"), f"{path}.event_type"), "since_enrolment": True}
    raise fail(path, 'expected {"segment_id": …} or {"event_type": …, "since_enrolment": true}')


def _step_body(kind: str, data: Mapping[str, Any], path: str, refs: References, trigger: Mapping[str, Any]) -> dict:
    if kind == "wait":
        return _wait(data, path, trigger)
    if kind == "branch":
        _unknown_keys(data, ("id", "type", "condition", "then", "else"), path)
        out: dict[str, Any] = {"condition": _condition(data.get("condition"), f"{path}.condition", refs)}
        for key in ("then", "else"):
            if data.get(key) is not None:
                out[key] = _text(data.get(key), f"{path}.{key}", max_length=30)
        return out
    if kind == "split":
        _unknown_keys(data, ("id", "type", "arms"), path)
        arms = data.get("arms")
        if not isinstance(arms, list) or not 2 <= len(arms) <= 10:
            raise fail(f"{path}.arms", "expected 2 to 10 arms")
        out_arms = []
        for i, raw in enumerate(arms):
            arm = _object(raw, f"{path}.arms[{i}]")
            _unknown_keys(arm, ("key", "weight", "goto"), f"{path}.arms[{i}]")
            entry: dict[str, Any] = {
                "key": _text(arm.get("key"), f"{path}.arms[{i}].key", max_length=10),
                "weight": _int(arm.get("weight"), f"{path}.arms[{i}].weight", 1, 10_000, default=1),
            }
            if arm.get("goto") is not None:
                entry["goto"] = _text(arm.get("goto"), f"{path}.arms[{i}].goto", max_length=30)
            out_arms.append(entry)
        keys = [a["key"] for a in out_arms]
        if len(set(keys)) != len(keys):
            raise fail(f"{path}.arms", "arm keys must differ")
        return {"arms": out_arms}
    if kind == "send":
        _unknown_keys(data, ("id", "type", "content_id", "channel_account_ids"), path)
        content_id = _id(data.get("content_id"), f"{path}.content_id") or 0
        refs.content(content_id, f"{path}.content_id")
        out = {"content_id": content_id}
        if data.get("channel_account_ids"):
            accounts = _ids(data.get("channel_account_ids"), f"{path}.channel_account_ids")
            for i, ident in enumerate(accounts):
                refs.account(ident, f"{path}.channel_account_ids[{i}]")
            out["channel_account_ids"] = accounts
        return out
    if kind in ("tag", "untag"):
        _unknown_keys(data, ("id", "type", "tag_id"), path)
        tag_id = _id(data.get("tag_id"), f"{path}.tag_id") or 0
        refs.tag(tag_id, f"{path}.tag_id")
        return {"tag_id": tag_id}
    if kind == "coupon":
        # Issues one coupon of the template; a later send step's {{ coupon_code }} is its code.
        _unknown_keys(data, ("id", "type", "template_id"), path)
        template_id = _id(data.get("template_id"), f"{path}.template_id") or 0
        refs.coupon_template(template_id, f"{path}.template_id")
        return {"template_id": template_id}
    if kind == "task":
        _unknown_keys(data, ("id", "type", "title", "body", "script_id", "due_hours"), path)
        out = {"title": _text(data.get("title"), f"{path}.title", max_length=200)}
        if (body := _text(data.get("body"), f"{path}.body", max_length=2000, required=False)) is not None:
            out["body"] = body
        if data.get("script_id") is not None:
            out["script_id"] = _id(data.get("script_id"), f"{path}.script_id")
            refs.script(out["script_id"], f"{path}.script_id")
        if data.get("due_hours") is not None:
            out["due_hours"] = _int(data.get("due_hours"), f"{path}.due_hours", 1, 24 * 30)
        return out
    _unknown_keys(data, ("id", "type"), path)  # exit
    return {}


def jumps(step: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(relative path, target step id) of every jump a step makes."""
    found = [(f".{key}", step[key]) for key in ("then", "else") if step.get(key)]
    found += [(f".arms[{i}].goto", arm["goto"]) for i, arm in enumerate(step.get("arms", [])) if arm.get("goto")]
    return found


def validate_steps(raw: Any, refs: References, trigger: Mapping[str, Any]) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise fail("$.steps", "expected a list of steps")
    if not raw:
        raise fail("$.steps", "a journey needs at least one step")
    if len(raw) > MAX_STEPS:
        raise fail("$.steps", f"at most {MAX_STEPS} steps")
    steps: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(raw):
        path = f"$.steps[{index}]"
        data = _object(item, path)
        step_id = data.get("id")
        if not isinstance(step_id, str) or not STEP_ID.match(step_id):
            raise fail(f"{path}.id", "expected 1–30 letters, digits, _ or -")
        if step_id in seen:
            raise fail(f"{path}.id", f"duplicate step id {step_id!r}")
        seen[step_id] = index
        kind = data.get("type")
        if kind not in STEP_TYPES:
            raise fail(f"{path}.type", f"expected one of {', '.join(STEP_TYPES)}")
        steps.append({"id": step_id, "type": kind, **_step_body(kind, data, path, refs, trigger)})
    for index, step in enumerate(steps):
        for suffix, target in jumps(step):
            path = f"$.steps[{index}]{suffix}"
            if target not in seen:
                raise fail(path, f"no step with id {target!r}")
            # Jumps only go forward: a step runs at most once per entry (its run is keyed by its
            # index), and no chain of jumps can loop without a wait.
            if seen[target] <= index:
                raise fail(path, f"jumps go to a later step; {target!r} would repeat steps (a loop)")
    return steps


# --- goal ---------------------------------------------------------------------------------------


def validate_goal(raw: Any, refs: References) -> dict[str, Any] | None:
    if raw is None or raw == {}:
        return None
    data = _object(raw, "$.goal")
    kind = data.get("type")
    if kind not in GOAL_TYPES:
        raise fail("$.goal.type", f"expected one of {', '.join(GOAL_TYPES)}")
    if kind == "order":
        _unknown_keys(data, ("type",), "$.goal")
        return {"type": "order"}
    if kind == "event":
        _unknown_keys(data, ("type", "event_type"), "$.goal")
        return {"type": "event", "event_type": _event_type(data.get("event_type"), "$.goal.event_type")}
    _unknown_keys(data, ("type", "segment_id"), "$.goal")
    ident = _id(data.get("segment_id"), "$.goal.segment_id") or 0
    refs.segment(ident, "$.goal.segment_id")
    return {"type": "segment", "segment_id": ident}


def validate_definition(
    session: Session,
    workspace_id: int,
    *,
    trigger: Any,
    steps: Any,
    goal: Any,
    channel_account_ids: Sequence[Any] | None,
) -> Definition:
    """Check a whole definition against the workspace; raises `InvalidInput` at the first problem."""
    refs = References(session, workspace_id)
    clean_trigger = validate_trigger(trigger, refs)
    accounts = _ids(list(channel_account_ids or []), "$.channel_account_ids")
    for i, ident in enumerate(accounts):
        refs.account(ident, f"$.channel_account_ids[{i}]")
    clean_steps = validate_steps(steps, refs, clean_trigger)
    for index, step in enumerate(clean_steps):
        if step["type"] == "send" and not step.get("channel_account_ids") and not accounts:
            raise fail(f"$.steps[{index}].channel_account_ids", "choose channel accounts for the journey or this step")
    return Definition(clean_trigger, clean_steps, validate_goal(goal, refs), accounts)
