"""The console's live code form: indexed fields (`route-0-target`, `schedule-1-days`) ↔ `LiveCodeIn`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData

from siyu.kit.errors import InvalidInput
from siyu.livecodes.schemas import LiveCodeIn
from siyu.models import LiveCode, LiveCodeRoute

MAX_ROWS = 50
BLANK_ROUTE_ROWS = 3
BLANK_SCHEDULE_ROWS = 2


def _text(form: FormData, key: str) -> str:
    value = form.get(key)
    return value.strip() if isinstance(value, str) else ""


def _int_or_none(form: FormData, key: str, field: str) -> int | None:
    raw = _text(form, key)
    if not raw:
        return None
    if not raw.isascii() or not raw.removeprefix("-").isdigit() or len(raw) > 12:
        raise InvalidInput("must be a whole number", details={"field": field})
    return int(raw)


def parse_form(form: FormData) -> LiveCodeIn:
    """A `LiveCodeIn` from the submitted form, or InvalidInput naming the form field."""
    routes: list[dict[str, Any]] = []
    for i in range(MAX_ROWS):
        target = _int_or_none(form, f"route-{i}-target", f"routes[{i}]")
        if target is None:
            continue
        route: dict[str, Any] = {
            "id": _int_or_none(form, f"route-{i}-id", f"routes[{len(routes)}].id"),
            "weight": _int_or_none(form, f"route-{i}-weight", f"routes[{len(routes)}].weight") or 1,
            "daily_cap": _int_or_none(form, f"route-{i}-cap", f"routes[{len(routes)}].daily_cap"),
            "shift": _text(form, f"route-{i}-shift") or "always",
            "is_backup": form.get(f"route-{i}-backup") == "on",
            "is_active": form.get(f"route-{i}-active") == "on",
            "contact_qr_url": _text(form, f"route-{i}-qr") or None,
        }
        route["group_id" if _text(form, "kind") == "group" else "staff_id"] = target
        routes.append(route)
    schedule = []
    for i in range(MAX_ROWS):
        days = [
            int(d)
            for d in form.getlist(f"schedule-{i}-days")
            if isinstance(d, str) and d.isascii() and d.isdigit() and len(d) < 3
        ]
        start, end = _text(form, f"schedule-{i}-start"), _text(form, f"schedule-{i}-end")
        if days or start or end:
            schedule.append({"days": days, "start": start, "end": end})
    link = {"title": _text(form, "welcome-link-title"), "url": _text(form, "welcome-link-url")}
    mini = {k: _text(form, f"welcome-mp-{k}") for k in ("appid", "page", "title")}
    data = {
        "name": _text(form, "name"),
        "kind": _text(form, "kind") or "staff",
        "channel_id": _int_or_none(form, "channel_id", "channel_id"),
        "store_id": _int_or_none(form, "store_id", "store_id"),
        "experiment_id": _int_or_none(form, "experiment_id", "experiment_id"),
        "rotation": _text(form, "rotation") or "round_robin",
        "is_sticky": form.get("is_sticky") == "on",
        "schedule": schedule,
        "welcome": {
            "text": _text(form, "welcome-text"),
            "image_url": _text(form, "welcome-image") or None,
            "link": link if any(link.values()) else None,
            "miniprogram": mini if any(mini.values()) else None,
        },
        "tag_ids": [
            int(t)
            for t in form.getlist("tag_ids")
            if isinstance(t, str) and t.isascii() and t.isdigit() and len(t) < 19
        ],
        "group_warn_percent": _int_or_none(form, "group_warn_percent", "group_warn_percent") or 90,
        "routes": routes,
    }
    try:
        return LiveCodeIn.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"{field}: {first['msg']}", details={"field": field}) from None


def form_values(code: LiveCode | None, routes: Sequence[LiveCodeRoute], tag_ids: Sequence[int]) -> dict[str, Any]:
    """What the form shows for an existing code (or a new one), with blank rows to add more."""
    welcome: Mapping[str, Any] = code.welcome if code else {}
    rows = [
        {
            "id": r.id,
            "target": r.staff_id or r.group_id,
            "weight": r.weight,
            "cap": r.daily_cap,
            "shift": str(r.shift),
            "backup": r.is_backup,
            "active": r.is_active,
            "qr": r.contact_qr_url or "",
        }
        for r in routes
    ]
    rows += [
        {
            "id": None,
            "target": None,
            "weight": 1,
            "cap": None,
            "shift": "always",
            "backup": False,
            "active": True,
            "qr": "",
        }
    ] * BLANK_ROUTE_ROWS
    schedule = list(code.schedule) if code else []
    schedule += [{"days": [], "start": "", "end": ""}] * BLANK_SCHEDULE_ROWS
    return {
        "name": code.name if code else "",
        "kind": str(code.kind) if code else "staff",
        "channel_id": code.channel_id if code else None,
        "store_id": code.store_id if code else None,
        "experiment_id": code.experiment_id if code else None,
        "rotation": str(code.rotation) if code else "round_robin",
        "is_sticky": code.is_sticky if code else True,
        "group_warn_percent": code.group_warn_percent if code else 90,
        "welcome": {
            "text": welcome.get("text", ""),
            "image_url": welcome.get("image_url") or "",
            "link": welcome.get("link") or {},
            "miniprogram": welcome.get("miniprogram") or {},
        },
        "tag_ids": list(tag_ids),
        "routes": rows,
        "schedule": schedule,
    }


def values_from_form(form: FormData) -> dict[str, Any]:
    """The submitted values, to show the form again after an error without losing the operator's input."""
    rows = []
    for i in range(MAX_ROWS):
        if f"route-{i}-target" not in form:
            break
        rows.append(
            {
                "id": _text(form, f"route-{i}-id") or None,
                "target": _text(form, f"route-{i}-target"),
                "weight": _text(form, f"route-{i}-weight"),
                "cap": _text(form, f"route-{i}-cap"),
                "shift": _text(form, f"route-{i}-shift"),
                "backup": form.get(f"route-{i}-backup") == "on",
                "active": form.get(f"route-{i}-active") == "on",
                "qr": _text(form, f"route-{i}-qr"),
            }
        )
    schedule = []
    for i in range(MAX_ROWS):
        if f"schedule-{i}-start" not in form:
            break
        schedule.append(
            {
                "days": [
                    int(d)
                    for d in form.getlist(f"schedule-{i}-days")
                    if isinstance(d, str) and d.isascii() and d.isdigit() and len(d) < 3
                ],
                "start": _text(form, f"schedule-{i}-start"),
                "end": _text(form, f"schedule-{i}-end"),
            }
        )
    return {
        "name": _text(form, "name"),
        "kind": _text(form, "kind") or "staff",
        "channel_id": _int_safe(_text(form, "channel_id")),
        "store_id": _int_safe(_text(form, "store_id")),
        "experiment_id": _int_safe(_text(form, "experiment_id")),
        "rotation": _text(form, "rotation"),
        "is_sticky": form.get("is_sticky") == "on",
        "group_warn_percent": _text(form, "group_warn_percent"),
        "welcome": {
            "text": _text(form, "welcome-text"),
            "image_url": _text(form, "welcome-image"),
            "link": {"title": _text(form, "welcome-link-title"), "url": _text(form, "welcome-link-url")},
            "miniprogram": {k: _text(form, f"welcome-mp-{k}") for k in ("appid", "page", "title")},
        },
        "tag_ids": [
            int(t)
            for t in form.getlist("tag_ids")
            if isinstance(t, str) and t.isascii() and t.isdigit() and len(t) < 19
        ],
        "routes": rows,
        "schedule": schedule,
    }


def _int_safe(raw: str) -> int | None:
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else None
