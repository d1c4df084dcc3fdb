"""Segment conditions on the CLV fit (`customer_values`, written by `siyu.analytics.clv.service.run_fit`).

```
{"kind": "super_user"}                               # a super user (超级用户) of the latest fit (`value: false`: not)
{"kind": "clv_value", "op": "gte", "value": 50000}   # predicted value over the horizon, in fen
```
Customers without a fitted value (no orders, or no fit yet) are not super users and never match a
`clv_value` test, whatever the operator. Parsing lives here and is registered in
`definition._CONDITIONS`; `AnalyticsConditions` (below) is mixed into `SegmentCompiler`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, select

from siyu.models import CustomerValue
from siyu.segments.definition import AMOUNT_OPS, Comparison, DefinitionError, _comparison

if TYPE_CHECKING:
    from sqlalchemy import Select

    from siyu.segments.compiler import CompileScope


@dataclass(frozen=True)
class SuperUserCondition:
    path: str
    value: bool


@dataclass(frozen=True)
class ClvValueCondition:
    path: str
    comparison: Comparison
    """On `expected_value_fen` (whole fen)."""


def _super_user(raw: dict[str, Any], path: str) -> SuperUserCondition:
    value = raw.get("value", True)
    if not isinstance(value, bool):
        raise DefinitionError(f"{path}.value", "expected true or false")
    return SuperUserCondition(path, value)


def _clv_value(raw: dict[str, Any], path: str) -> ClvValueCondition:
    comparison = _comparison(raw, path, AMOUNT_OPS, "number")
    for bound in (comparison.value, comparison.upper):
        if bound is not None and not float(bound).is_integer():
            raise DefinitionError(f"{path}.value", "values in fen are whole numbers")
    return ClvValueCondition(path, comparison)


PARSERS: dict[str, tuple[set[str], Any]] = {
    "super_user": ({"value"}, _super_user),
    "clv_value": ({"op", "value"}, _clv_value),
}


def json_schemas(number_ops: list[str]) -> list[dict[str, Any]]:
    """The two conditions' JSON Schemas (for `siyu.segments.jsonschema`)."""
    fen = {
        "oneOf": [{"type": "integer"}, {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "integer"}}]
    }

    def condition(kind: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"kind": {"const": kind}, **properties},
            "required": ["kind", *required],
            "additionalProperties": False,
        }

    return [
        condition("super_user", {"value": {"type": "boolean"}}, []),
        condition("clv_value", {"op": {"enum": number_ops}, "value": fen}, ["op", "value"]),
    ]


class AnalyticsConditions:
    """Methods `SegmentCompiler._predicate` dispatches to by the condition's class name."""

    scope: CompileScope

    if TYPE_CHECKING:

        def _member_of(self, subquery: Select[Any], positive: bool = True) -> ColumnElement[bool]: ...

        def _narrow(self, customer_column: Any) -> list[ColumnElement[bool]]: ...

        @staticmethod
        def _number(expr: Any, comparison: Any, scale: Any = None) -> ColumnElement[bool]: ...

    def _values(self, *clauses: ColumnElement[bool]) -> Select[Any]:
        return select(CustomerValue.customer_id).where(
            CustomerValue.workspace_id == self.scope.workspace_id, *clauses, *self._narrow(CustomerValue.customer_id)
        )

    def _SuperUserCondition(self, node: SuperUserCondition) -> ColumnElement[bool]:
        return self._member_of(self._values(CustomerValue.is_super_user.is_(True)), node.value)

    def _ClvValueCondition(self, node: ClvValueCondition) -> ColumnElement[bool]:
        return self._member_of(self._values(self._number(CustomerValue.expected_value_fen, node.comparison)))
