"""A definition written out in words for the detail page: one sentence per condition, groups as
nested lists. Works on the stored JSON (valid when it was saved) and never raises on odd values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.models import Channel, Segment, Staff, Tag
from siyu.segments.validation import field_catalog
from siyu.segments.views.labels import Translate, builder_labels


@dataclass
class Names:
    """Display names of what a definition refers to by id or key."""

    tags: dict[int, str] = field(default_factory=dict)
    staff: dict[int, str] = field(default_factory=dict)
    channels: dict[int, str] = field(default_factory=dict)
    segments: dict[int, str] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)


def load_names(session: Session, workspace_id: int) -> Names:
    """Names of the workspace's tags, staff, channels, segments and custom attributes."""

    def pairs(model: Any) -> dict[int, str]:
        rows = session.execute(select(model.id, model.name).where(model.workspace_id == workspace_id))
        return {i: n for i, n in rows}

    return Names(
        tags=pairs(Tag),
        staff=pairs(Staff),
        channels=pairs(Channel),
        segments=pairs(Segment),
        fields={k: s.label for k, s in field_catalog(session, workspace_id).items()},
    )


@dataclass
class Described:
    """A node of the summary: a group (`label` and `children`) or a condition (`text`)."""

    path: str
    label: str = ""
    text: str = ""
    children: list[Described] = field(default_factory=list)

    @property
    def is_group(self) -> bool:
        return bool(self.label)


class Describer:
    """Turns definition JSON into `Described` nodes in one language."""

    def __init__(self, _: Translate, names: Names) -> None:
        self._ = _
        self.names = names
        self.labels = builder_labels(_)

    def node(self, raw: Any, path: str = "$") -> Described:
        if isinstance(raw, dict) and ("all" in raw or "any" in raw):
            combinator = "all" if "all" in raw else "any"
            items = raw[combinator] if isinstance(raw[combinator], list) else []
            children = [self.node(item, f"{path}.{combinator}[{i}]") for i, item in enumerate(items)]
            return Described(path, label=self.labels["ui"][combinator], children=children)
        if isinstance(raw, dict) and "not" in raw:
            return Described(path, label=self.labels["ui"]["not"], children=[self.node(raw["not"], f"{path}.not")])
        if not isinstance(raw, dict):
            return Described(path, text=str(raw))
        kind = raw.get("kind")
        method = getattr(self, f"_{kind}", None) if isinstance(kind, str) else None
        text = method(raw) if method is not None else str(raw)
        kind_label = self.labels["kinds"].get(kind, str(kind))
        return Described(path, text=f"{kind_label} · {text}")

    # --- helpers -------------------------------------------------------------------------------

    def _label(self, group: str, key: Any) -> str:
        return str(self.labels[group].get(str(key).lower() if isinstance(key, bool) else str(key), key))

    def _op(self, op: Any) -> str:
        return self._label("ops", op)

    def _list(self, values: Any, names: dict[int, str] | None = None) -> str:
        items = values if isinstance(values, list) else [values]
        shown = [names.get(v, f"#{v}") if names is not None and isinstance(v, int) else self._value(v) for v in items]
        return "、".join(shown)

    def _value(self, value: Any) -> str:
        if isinstance(value, bool):
            return self.labels["ui"]["yes" if value else "no"]
        if isinstance(value, str):
            return str(self.labels["choices"].get(value, value))
        return str(value)

    def _window(self, raw: Any) -> str:
        if not isinstance(raw, dict):
            return ""
        _ = self._
        if "last_days" in raw:
            return _("最近 {n} 天").format(n=raw["last_days"])
        start, end = raw.get("from"), raw.get("to")
        if start and end:
            return _("{start} 至 {end}").format(start=start, end=end)
        if start:
            return _("{start} 起").format(start=start)
        if end:
            return _("截至 {end}").format(end=end)
        return ""

    def _comparison(self, raw: dict[str, Any], *, money: bool = False, days_unit: bool = False) -> str:
        op, value = raw.get("op"), raw.get("value")
        fmt = self._yuan if money else self._value
        if op in ("within_last", "more_than_ago"):
            return f"{self._op(op)}: {value} {self.labels['ui']['days']}"
        if op == "between" and isinstance(value, list) and len(value) == 2:
            return f"{self._op(op)} {fmt(value[0])} {self.labels['ui']['and']} {fmt(value[1])}"
        unit = f" {self.labels['ui']['times']}" if days_unit else ""
        return f"{self._op(op)} {fmt(value)}{unit}"

    def _yuan(self, value: Any) -> str:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return f"{value / 100:,.2f} {self.labels['ui']['yuan']}"
        return str(value)

    @staticmethod
    def _join(*parts: str) -> str:
        return "，".join(p for p in parts if p)

    # --- one method per condition kind ---------------------------------------------------------

    def _field(self, raw: dict[str, Any]) -> str:
        key = str(raw.get("field"))
        name = self.labels["fields"].get(key) or self.names.fields.get(key, key)
        op, value = raw.get("op"), raw.get("value")
        if op in ("is_set", "is_not_set"):
            return f"{name} {self._op(op)}"
        if op in ("within_last", "more_than_ago", "anniversary_within_next"):
            return f"{name} {self._op(op)}: {value} {self.labels['ui']['days']}"
        if key == "owner_staff_id":
            return f"{name} {self._op(op)} {self._list(value, self.names.staff)}"
        if op == "between" and isinstance(value, list) and len(value) == 2:
            return f"{name} {self._op(op)} {self._value(value[0])} {self.labels['ui']['and']} {self._value(value[1])}"
        return f"{name} {self._op(op)} {self._list(value)}"

    def _tag(self, raw: dict[str, Any]) -> str:
        return f"{self._label('tag_match', raw.get('match', 'any'))}: {self._list(raw.get('tag_ids'), self.names.tags)}"

    def _event(self, raw: dict[str, Any]) -> str:
        where = [
            f"{w.get('property')} {self._op(w.get('op'))} {self._list(w['value']) if 'value' in w else ''}".strip()
            for w in raw.get("where", [])
            if isinstance(w, dict)
        ]
        head = str(raw.get("type")) + (f" ({'; '.join(where)})" if where else "")
        measure = self._label("event_measures", raw.get("measure", "count"))
        counted = raw.get("measure", "count") == "count"
        comparison = self._comparison(raw, days_unit=counted)
        return self._join(head, self._window(raw.get("window")), f"{measure} {comparison}")

    def _order(self, raw: dict[str, Any]) -> str:
        measure = raw.get("measure", "count")
        platforms = raw.get("platforms")
        return self._join(
            self._list(platforms) if platforms else "",
            self._window(raw.get("window")),
            f"{self._label('order_measures', measure)} "
            + self._comparison(raw, money=measure in ("total_fen", "average_fen")),
        )

    def _purchase(self, raw: dict[str, Any]) -> str:
        ui = self.labels["ui"]
        items = [f"{ui['skus']} {self._list(raw['skus'])}" if raw.get("skus") else ""]
        items.append(f"{ui['categories']} {self._list(raw['categories'])}" if raw.get("categories") else "")
        bought = self._label("bought", bool(raw.get("bought", True)))
        return self._join(f"{bought} " + " / ".join(i for i in items if i), self._window(raw.get("window")))

    def _relationship(self, raw: dict[str, Any]) -> str:
        ui = self.labels["ui"]
        staff = self._list(raw["staff_ids"], self.names.staff) if raw.get("staff_ids") else ui["any_staff"]
        channels = (
            f"{ui['channels']} {self._list(raw['channel_ids'], self.names.channels)}" if raw.get("channel_ids") else ""
        )
        removed_by = self._label("removed_by", raw["removed_by"]) if raw.get("removed_by") else ""
        status = self._label("relationship_status", raw.get("status", "active"))
        return self._join(f"{status} ({staff})", channels, removed_by, self._window(raw.get("window")))

    def _identity(self, raw: dict[str, Any]) -> str:
        present = self._label("present", bool(raw.get("present", True)))
        return f"{present} {self._label('identity_types', raw.get('type'))}"

    def _consent(self, raw: dict[str, Any]) -> str:
        channel = self._label("consent_channels", raw.get("channel"))
        return f"{channel}: {self._label('consent_status', raw.get('status', 'granted'))}"

    def _segment(self, raw: dict[str, Any]) -> str:
        target = raw.get("segment_id")
        name = self.names.segments.get(target, f"#{target}") if isinstance(target, int) else str(target)
        return f"{self._label('member', bool(raw.get('member', True)))}「{name}」"

    def _tier(self, raw: dict[str, Any]) -> str:
        names = [*raw.get("tier_names", []), *(f"#{i}" for i in raw.get("tier_ids", []))]
        return f"{self._label('tier_member', bool(raw.get('member', True)))} {self._list(names)}"

    def _points_balance(self, raw: dict[str, Any]) -> str:
        return self._comparison(raw)

    def _points_expiring(self, raw: dict[str, Any]) -> str:
        days = f"{raw.get('within_days')} {self.labels['ui']['days']}"
        return self._join(days, self._comparison({"op": raw.get("op", "gte"), "value": raw.get("value", 1)}))

    def _coupon(self, raw: dict[str, Any]) -> str:
        has = self._label("present", bool(raw.get("has", True)))
        templates = self._list(raw["template_ids"]) if raw.get("template_ids") else ""
        return self._join(f"{has} {self._label('coupon_states', raw.get('state', 'unused'))}", templates)

    def _first_order(self, raw: dict[str, Any]) -> str:
        return self._label("flag_value", bool(raw.get("value", True)))

    _repurchaser = _first_order
    _super_user = _first_order

    def _clv_value(self, raw: dict[str, Any]) -> str:
        return self._comparison(raw, money=True)

    def _sample(self, raw: dict[str, Any]) -> str:
        seed = raw.get("seed") or ""
        return f"{raw.get('percent')}%" + (f" ({self.labels['ui']['seed']} {seed})" if seed else "")
