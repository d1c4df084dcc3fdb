"""Turning one import row into validated identities, profile values, attributes and tags, and
grouping the rows of a batch that belong to one person."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from siyu.customers.identities import normalize_identity
from siyu.customers.importing.mapping import ATTRIBUTE_PREFIX, IDENTITY_PREFIX, IGNORE, OWNER, TAGS
from siyu.customers.service.definitions import coerce_attribute
from siyu.kit.errors import DomainError
from siyu.models import AttributeDefinition, Gender, IdentityType, LifecycleStage

_GENDERS = {
    "男": Gender.MALE,
    "男性": Gender.MALE,
    "先生": Gender.MALE,
    "m": Gender.MALE,
    "male": Gender.MALE,
    "女": Gender.FEMALE,
    "女性": Gender.FEMALE,
    "女士": Gender.FEMALE,
    "f": Gender.FEMALE,
    "female": Gender.FEMALE,
    "未知": Gender.UNKNOWN,
    "unknown": Gender.UNKNOWN,
    "保密": Gender.UNKNOWN,
}
_STAGES = {
    "潜在": LifecycleStage.LEAD,
    "潜客": LifecycleStage.LEAD,
    "新客": LifecycleStage.NEW,
    "新客户": LifecycleStage.NEW,
    "活跃": LifecycleStage.ACTIVE,
    "忠诚": LifecycleStage.LOYAL,
    "老客": LifecycleStage.LOYAL,
    "沉睡": LifecycleStage.DORMANT,
    "流失": LifecycleStage.CHURNED,
}
_DATE = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$")
_COMPACT_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_TAG_SPLIT = re.compile(r"[,，;；|、]")
MAX_TAGS_PER_ROW = 50


class RowError(Exception):
    """A row cannot be imported; names the column and says why."""

    def __init__(self, column: str, reason: str) -> None:
        super().__init__(reason)
        self.column = column
        self.reason = reason


@dataclass
class ParsedRow:
    line: int
    identities: list[tuple[str, str]]
    values: dict[str, Any] = field(default_factory=dict)
    """Profile fields and `attr.<key>` values, validated (survivorship keys)."""
    tags: list[str] = field(default_factory=list)


@dataclass
class RowContext:
    """What parsing needs to know about the workspace."""

    columns: list[tuple[int, str, str]]
    """(cell index, header, target) for every mapped column."""
    attributes: dict[str, AttributeDefinition]
    staff_by_key: dict[str, int]
    """Staff id by name and by WeCom user id."""
    phone_region: str = "CN"


def parse_date(text: str) -> date:
    text = text.strip()
    match = _DATE.match(text) or _COMPACT_DATE.match(text)
    if not match:
        raise ValueError(text)
    year, month, day = (int(g) for g in match.groups())
    return date(year, month, day)


def parse_row(line: int, cells: list[Any], ctx: RowContext) -> ParsedRow:
    """Validate one row; raises `RowError` naming the first bad column."""
    row = ParsedRow(line=line, identities=[])
    for index, header, target in ctx.columns:
        raw = cells[index] if index < len(cells) else ""
        text = str(raw).strip() if raw is not None else ""
        if not text or target == IGNORE:
            continue
        try:
            _apply(row, target, text, ctx)
        except RowError:
            raise
        except DomainError as exc:
            raise RowError(header, exc.message) from exc
        except ValueError as exc:
            raise RowError(header, f"invalid value {text!r}") from exc
    if not row.identities:
        raise RowError("", "no identity: the row needs a phone, e-mail or platform id")
    return row


def _apply(row: ParsedRow, target: str, text: str, ctx: RowContext) -> None:
    if target.startswith(IDENTITY_PREFIX):
        type_ = target.removeprefix(IDENTITY_PREFIX)
        row.identities.append((type_, normalize_identity(type_, text, phone_region=ctx.phone_region)))
    elif target == "phone":
        value = normalize_identity(IdentityType.PHONE, text, phone_region=ctx.phone_region)
        row.values["phone"] = value
        row.identities.append((IdentityType.PHONE, value))
    elif target == "email":
        value = normalize_identity(IdentityType.EMAIL, text)
        row.values["email"] = value
        row.identities.append((IdentityType.EMAIL, value))
    elif target == "gender":
        gender = _GENDERS.get(text.lower())
        if gender is None:
            raise ValueError(text)
        row.values["gender"] = gender
    elif target == "birthday":
        row.values["birthday"] = parse_date(text)
    elif target == "lifecycle_stage":
        row.values["lifecycle_stage"] = _STAGES.get(text) or LifecycleStage(text.lower())
    elif target == OWNER:
        staff_id = ctx.staff_by_key.get(text)
        if staff_id is None:
            raise RowError("owner", f"unknown staff member {text!r}")
        row.values["owner_staff_id"] = staff_id
    elif target == TAGS:
        names = [t.strip() for t in _TAG_SPLIT.split(text) if t.strip()]
        if any(len(n) > 100 for n in names) or len(names) + len(row.tags) > MAX_TAGS_PER_ROW:
            raise ValueError(text)
        row.tags.extend(n for n in names if n not in row.tags)
    elif target.startswith(ATTRIBUTE_PREFIX):
        key = target.removeprefix(ATTRIBUTE_PREFIX)
        row.values["attr." + key] = coerce_attribute(ctx.attributes[key], text)
    else:
        if len(text) > 100:
            raise ValueError(text)
        row.values[target] = text


@dataclass
class RowGroup:
    """Rows of one person in a batch, and the known customers they hit."""

    rows: list[ParsedRow]
    customer_ids: set[int]


def group_rows(rows: list[ParsedRow], owners: dict[tuple[str, str], int]) -> list[RowGroup]:
    """Union rows that share an identity (file duplicates) and collect the known customers they hit.

    Groups come in the order of their first row; a group's root is its first row's index.
    """
    parent = list(range(len(rows)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(anchor: int, index: int) -> None:
        a, b = find(anchor), find(index)
        if a != b:
            parent[max(a, b)] = min(a, b)

    first_row: dict[tuple[str, str], int] = {}
    by_customer: dict[int, int] = {}
    for index, row in enumerate(rows):
        for pair in row.identities:
            anchor = first_row.setdefault(pair, index)
            if anchor != index:
                union(anchor, index)
            owner = owners.get(pair)
            if owner is not None:
                anchor = by_customer.setdefault(owner, index)
                if anchor != index:
                    union(anchor, index)
    groups: dict[int, RowGroup] = {}
    for index, row in enumerate(rows):
        root = find(index)
        group = groups.get(root)
        if group is None:
            group = groups[root] = RowGroup(rows=[], customer_ids=set())
        group.rows.append(row)
        if owners:
            group.customer_ids.update(owners[p] for p in row.identities if p in owners)
    return list(groups.values())
