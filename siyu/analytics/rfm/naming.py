"""The RFM naming table: which (R, FM) scores get which segment name.

A rule is `{"key", "name_en", "name_zh", "r": [lo, hi], "fm": [lo, hi]}` with inclusive bounds;
FM is (F + M) / 2, so it moves in steps of 0.5. Rules are tried in order and the first match wins.
The operator may replace the table in the analytics settings; an empty table means `DEFAULT_RULES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from siyu.kit.errors import InvalidInput

SCORES = (1, 2, 3, 4, 5)
FM_VALUES = tuple(x / 2 for x in range(2, 11))
"""Every value (F + M) / 2 can take: 1, 1.5, …, 5."""
MAX_RULES = 30


@dataclass(frozen=True)
class NamingRule:
    key: str
    name_en: str
    name_zh: str
    r: tuple[float, float]
    fm: tuple[float, float]

    def matches(self, r: float, fm: float) -> bool:
        return self.r[0] <= r <= self.r[1] and self.fm[0] <= fm <= self.fm[1]

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name_en": self.name_en,
            "name_zh": self.name_zh,
            "r": list(self.r),
            "fm": list(self.fm),
        }


def _rule(key: str, en: str, zh: str, r: tuple[float, float], fm: tuple[float, float]) -> NamingRule:
    return NamingRule(key, en, zh, r, fm)


DEFAULT_RULES: tuple[NamingRule, ...] = (
    _rule("champions", "Champions", "重要价值", (4, 5), (4, 5)),
    _rule("loyal", "Loyal", "忠诚", (3, 5), (3, 5)),
    _rule("potential_loyalist", "Potential Loyalist", "潜力", (4, 5), (2, 2.5)),
    _rule("new", "New", "新客", (5, 5), (1, 1.5)),
    _rule("promising", "Promising", "有望", (4, 4), (1, 1.5)),
    _rule("need_attention", "Need Attention", "需关注", (3, 3), (2, 2.5)),
    _rule("about_to_sleep", "About to Sleep", "即将沉睡", (3, 3), (1, 1.5)),
    _rule("cant_lose", "Can't Lose Them", "不能失去", (1, 1), (4, 5)),
    _rule("at_risk", "At Risk", "有流失风险", (1, 2), (3, 5)),
    _rule("hibernating", "Hibernating", "休眠", (2, 2), (1, 2.5)),
    _rule("lost", "Lost", "流失", (1, 1), (1, 2.5)),
)


def _bounds(value: Any, field: str) -> tuple[float, float]:
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        raise InvalidInput(f"{field} must be a pair of scores [lo, hi]", details={"field": field})
    try:
        lo, hi = float(value[0]), float(value[1])
    except OverflowError:  # an integer too large for a float (JSON allows 10**400)
        lo, hi = 0.0, 0.0
    if not 1 <= lo <= hi <= 5:
        raise InvalidInput(f"{field} must satisfy 1 ≤ lo ≤ hi ≤ 5", details={"field": field})
    return lo, hi


def _text(entry: dict[str, Any], name: str, field: str, limit: int) -> str:
    value = entry.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{field} must not be empty", details={"field": field})
    if len(value.strip()) > limit:
        raise InvalidInput(f"{field} is longer than {limit} characters", details={"field": field})
    return value.strip()


def parse_rules(document: Any, field: str = "rfm_segments") -> list[NamingRule]:
    """Validate a naming table; raises `InvalidInput` naming the entry ("rfm_segments[2].fm").

    Checks: a list of at most 30 rules, non-empty unique keys, non-empty names, bounds within 1–5,
    and every R × FM cell of the grid matched by some rule.
    """
    if not isinstance(document, list):
        raise InvalidInput(f"{field} must be a list of rules", details={"field": field})
    if len(document) > MAX_RULES:
        raise InvalidInput(f"{field} can hold at most {MAX_RULES} rules", details={"field": field})
    rules: list[NamingRule] = []
    for i, entry in enumerate(document):
        where = f"{field}[{i}]"
        if not isinstance(entry, dict):
            raise InvalidInput(f"{where} must be an object", details={"field": where})
        key = _text(entry, "key", f"{where}.key", 40)
        if any(rule.key == key for rule in rules):
            raise InvalidInput(f"{where}.key {key!r} is used twice", details={"field": f"{where}.key"})
        rules.append(
            NamingRule(
                key=key,
                name_en=_text(entry, "name_en", f"{where}.name_en", 60),
                name_zh=_text(entry, "name_zh", f"{where}.name_zh", 60),
                r=_bounds(entry.get("r"), f"{where}.r"),
                fm=_bounds(entry.get("fm"), f"{where}.fm"),
            )
        )
    if rules:
        for r in SCORES:
            for fm in FM_VALUES:
                if not any(rule.matches(r, fm) for rule in rules):
                    raise InvalidInput(
                        f"{field}: no rule covers R={r}, FM={fm:g}", details={"field": field, "r": r, "fm": fm}
                    )
    return rules


def rules_from_settings(stored: list[Any] | None) -> list[NamingRule]:
    """The table in force: the saved one, or the shipped default when none is saved."""
    if not stored:
        return list(DEFAULT_RULES)
    try:
        return parse_rules(stored)
    except InvalidInput:  # saved before a stricter check: fall back rather than break the page
        return list(DEFAULT_RULES)


def default_document() -> list[dict[str, Any]]:
    """The shipped table as JSON, for the settings page's text area."""
    return [rule.as_dict() for rule in DEFAULT_RULES]
