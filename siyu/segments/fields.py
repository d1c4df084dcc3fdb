"""What a field condition may name: profile fields and custom attributes, each with a type and
the operators that make sense for it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from siyu.models import AttributeType, Gender, LifecycleStage


class FieldType(StrEnum):
    STRING = "string"
    ENUM = "enum"  # a string from a fixed list
    STAFF = "staff"  # a staff member id
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"  # compared by brand-local date


_COMMON = {"eq", "ne", "in", "not_in", "is_set", "is_not_set"}
_ORDERED = {"gt", "gte", "lt", "lte", "between"}
_MOMENTS = _ORDERED | {"eq", "ne", "is_set", "is_not_set", "within_last", "more_than_ago"}

OPS_BY_TYPE: dict[FieldType, frozenset[str]] = {
    FieldType.STRING: frozenset(_COMMON | _ORDERED | {"contains", "starts_with"}),
    FieldType.ENUM: frozenset(_COMMON),
    FieldType.STAFF: frozenset(_COMMON),
    FieldType.INTEGER: frozenset(_COMMON | _ORDERED),
    FieldType.NUMBER: frozenset(_COMMON | _ORDERED),
    FieldType.BOOLEAN: frozenset({"eq", "ne", "is_set", "is_not_set"}),
    FieldType.DATE: frozenset(_MOMENTS | {"anniversary_within_next"}),
    FieldType.DATETIME: frozenset(_MOMENTS),
}


@dataclass(frozen=True)
class FieldSpec:
    """One field a condition may name."""

    key: str
    """"city", or "attributes.<key>" for a custom attribute."""
    label: str
    type: FieldType
    choices: tuple[str, ...] = ()

    @property
    def attribute(self) -> str | None:
        """The custom attribute key, or None for a profile column."""
        return self.key.removeprefix("attributes.") if self.key.startswith("attributes.") else None

    @property
    def ops(self) -> frozenset[str]:
        return OPS_BY_TYPE[self.type]


PROFILE_FIELDS: dict[str, FieldSpec] = {
    spec.key: spec
    for spec in (
        FieldSpec("name", "姓名", FieldType.STRING),
        FieldSpec("gender", "性别", FieldType.ENUM, tuple(str(g) for g in Gender)),
        FieldSpec("birthday", "生日", FieldType.DATE),
        FieldSpec("province", "省份", FieldType.STRING),
        FieldSpec("city", "城市", FieldType.STRING),
        FieldSpec("phone", "手机号", FieldType.STRING),
        FieldSpec("email", "邮箱", FieldType.STRING),
        FieldSpec("lifecycle_stage", "生命周期", FieldType.ENUM, tuple(str(s) for s in LifecycleStage)),
        FieldSpec("owner_staff_id", "归属员工", FieldType.STAFF),
        FieldSpec("first_channel", "首次来源", FieldType.STRING),
        FieldSpec("created_at", "入池时间", FieldType.DATETIME),
    )
}

ATTRIBUTE_TYPES: dict[str, FieldType] = {
    AttributeType.STRING: FieldType.STRING,
    AttributeType.INTEGER: FieldType.INTEGER,
    AttributeType.NUMBER: FieldType.NUMBER,
    AttributeType.BOOLEAN: FieldType.BOOLEAN,
    AttributeType.DATE: FieldType.DATE,
}
