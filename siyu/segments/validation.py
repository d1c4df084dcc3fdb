"""Checking a parsed definition against the workspace: the fields, tags, staff, channels and
segments it names exist, each operator fits its field's type, and segments never refer to
themselves through any chain of references."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor, Scope
from siyu.kit.errors import PermissionDenied
from siyu.models import (
    AttributeDefinition,
    Channel,
    CouponTemplate,
    IdentityType,
    IdentityTypeDefinition,
    Segment,
    Staff,
    Tag,
    Tier,
)
from siyu.segments.definition import (
    MAX_DEPTH,
    DefinitionError,
    FieldCondition,
    Group,
    IdentityCondition,
    Node,
    RelationshipCondition,
    SegmentCondition,
    TagCondition,
    parse_date,
    parse_definition,
    referenced_segments,
    walk,
)
from siyu.segments.fields import ATTRIBUTE_TYPES, PROFILE_FIELDS, FieldSpec, FieldType
from siyu.segments.loyalty_conditions import CouponCondition, TierCondition

MAX_REFERENCE_DEPTH = 5
"""A segment may refer to a segment that refers to another… at most this many levels down."""


def field_catalog(session: Session, workspace_id: int) -> dict[str, FieldSpec]:
    """Profile fields and the workspace's custom attributes, by key."""
    catalog = dict(PROFILE_FIELDS)
    for row in session.scalars(
        select(AttributeDefinition)
        .where(AttributeDefinition.workspace_id == workspace_id)
        .order_by(AttributeDefinition.key)
    ):
        key = f"attributes.{row.key}"
        catalog[key] = FieldSpec(key, row.label, ATTRIBUTE_TYPES[row.type])
    return catalog


def validate_definition(
    session: Session,
    *,
    workspace_id: int,
    raw: Any,
    segment_id: int | None = None,
    catalog: dict[str, FieldSpec] | None = None,
) -> Node:
    """Parse `raw` and check it against the workspace; returns the tree with values converted to
    their field's type (dates as `date`). `segment_id` is the segment being saved, for the cycle check;
    `catalog` saves reading the field catalogue again when the caller has it.
    """
    node = parse_definition(raw)
    catalog = catalog if catalog is not None else field_catalog(session, workspace_id)
    checked = _check(session, workspace_id, node, catalog)
    _check_references(session, workspace_id, node, segment_id)
    return checked


def stored_tree(session: Session, *, workspace_id: int, definition: Any) -> Node:
    """A saved definition ready to compile: parsed, with values converted to their field's type.

    Names are not checked again: a tag or staff member removed since the save simply matches
    nobody, instead of making the segment unusable.
    """
    node = parse_definition(definition)
    return _check(session, workspace_id, node, field_catalog(session, workspace_id), check_names=False)


def _check(
    session: Session, workspace_id: int, node: Node, catalog: dict[str, FieldSpec], *, check_names: bool = True
) -> Node:
    if isinstance(node, Group):
        children = tuple(
            _check(session, workspace_id, child, catalog, check_names=check_names) for child in node.children
        )
        return dataclasses.replace(node, children=children)
    if isinstance(node, FieldCondition):
        return _check_field(session, workspace_id, node, catalog, check_names=check_names)
    if not check_names:
        return node
    if isinstance(node, IdentityCondition):
        known = {str(t) for t in IdentityType} | set(
            session.scalars(
                select(IdentityTypeDefinition.key).where(IdentityTypeDefinition.workspace_id == workspace_id)
            )
        )
        if node.type not in known:
            raise DefinitionError(f"{node.path}.type", f"unknown identity type {node.type!r}")
    elif isinstance(node, TagCondition):
        _exist(session, Tag, workspace_id, node.tag_ids, f"{node.path}.tag_ids", "tag")
    elif isinstance(node, RelationshipCondition):
        if node.staff_ids:
            _exist(session, Staff, workspace_id, node.staff_ids, f"{node.path}.staff_ids", "staff member")
        if node.channel_ids:
            _exist(session, Channel, workspace_id, node.channel_ids, f"{node.path}.channel_ids", "channel")
    elif isinstance(node, TierCondition):
        if node.tier_ids:
            _exist(session, Tier, workspace_id, node.tier_ids, f"{node.path}.tier_ids", "tier")
        if node.tier_names:
            known = set(session.scalars(select(Tier.name).where(Tier.workspace_id == workspace_id)))
            for i, name in enumerate(node.tier_names):
                if name not in known:
                    raise DefinitionError(f"{node.path}.tier_names[{i}]", f"no tier named {name!r}")
    elif isinstance(node, CouponCondition) and node.template_ids:
        _exist(session, CouponTemplate, workspace_id, node.template_ids, f"{node.path}.template_ids", "coupon template")
    return node


def _exist(session: Session, model: Any, workspace_id: int, ids: tuple[int, ...], path: str, what: str) -> None:
    found = set(session.scalars(select(model.id).where(model.workspace_id == workspace_id, model.id.in_(ids))))
    for i, wanted in enumerate(ids):
        if wanted not in found:
            raise DefinitionError(f"{path}[{i}]", f"no {what} with id {wanted}")


# --- field conditions --------------------------------------------------------------------------


def _check_field(
    session: Session, workspace_id: int, node: FieldCondition, catalog: dict[str, FieldSpec], *, check_names: bool
) -> Node:
    spec = catalog.get(node.field)
    if spec is None:
        raise DefinitionError(f"{node.path}.field", f"unknown field {node.field!r}")
    if node.op not in spec.ops:
        raise DefinitionError(
            f"{node.path}.op",
            f"{node.op} does not apply to {spec.type} field {node.field}; use one of " + ", ".join(sorted(spec.ops)),
        )
    if node.op in ("is_set", "is_not_set", "within_last", "more_than_ago", "anniversary_within_next"):
        return node
    value_path = f"{node.path}.value"
    coerce = _coercer(spec)
    if node.op in ("in", "not_in"):
        values = tuple(coerce(v, f"{value_path}[{i}]") for i, v in enumerate(node.value))
        if spec.type is FieldType.STAFF and check_names:
            _exist(session, Staff, workspace_id, values, value_path, "staff member")
        return dataclasses.replace(node, value=values)
    value = coerce(node.value, value_path if node.op != "between" else f"{value_path}[0]")
    if node.op == "between":
        upper = coerce(node.upper, f"{value_path}[1]")
        if upper < value:
            raise DefinitionError(value_path, "between takes [low, high] with low ≤ high")
        return dataclasses.replace(node, value=value, upper=upper)
    if (
        spec.type is FieldType.STAFF
        and session.scalar(select(Staff.id).where(Staff.workspace_id == workspace_id, Staff.id == value)) is None
    ):
        raise DefinitionError(value_path, f"no staff member with id {value}")
    return dataclasses.replace(node, value=value)


def _coercer(spec: FieldSpec) -> Callable[[Any, str], Any]:
    def coerce(value: Any, path: str) -> Any:
        match spec.type:
            case FieldType.STRING:
                if not isinstance(value, str) or len(value) > 200:
                    raise DefinitionError(path, "expected a string of at most 200 characters")
                return value
            case FieldType.ENUM:
                if value not in spec.choices:
                    raise DefinitionError(path, f"expected one of {', '.join(spec.choices)}")
                return value
            case FieldType.STAFF | FieldType.INTEGER:
                if isinstance(value, bool) or not isinstance(value, int) or abs(value) > 2**53:
                    raise DefinitionError(path, "expected a whole number")
                return value
            case FieldType.NUMBER:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise DefinitionError(path, "expected a number")
                if (isinstance(value, int) and abs(value) > 2**53) or not math.isfinite(value) or abs(value) > 2**53:
                    raise DefinitionError(path, "expected a number within ±2⁵³")
                return value
            case FieldType.BOOLEAN:
                if not isinstance(value, bool):
                    raise DefinitionError(path, "expected true or false")
                return value
            case FieldType.DATE | FieldType.DATETIME:
                day = parse_date(value)
                if day is None:
                    raise DefinitionError(path, "expected a date as YYYY-MM-DD between 1900 and 2999")
                return day
        raise AssertionError(spec.type)

    return coerce


# --- references between segments --------------------------------------------------------------


def _check_references(session: Session, workspace_id: int, node: Node, segment_id: int | None) -> None:
    """Every referenced segment exists, and no chain of references leads back to `segment_id`
    (or to any segment twice on one path) or runs deeper than `MAX_REFERENCE_DEPTH`."""
    for ref in (n for n in walk(node) if isinstance(n, SegmentCondition)):
        path = f"{ref.path}.segment_id"
        if ref.segment_id == segment_id:
            raise DefinitionError(path, "a segment cannot refer to itself")
        seen: list[int] = [segment_id] if segment_id is not None else []
        _follow(session, workspace_id, ref.segment_id, path, seen, depth=1)


def _follow(session: Session, workspace_id: int, target: int, path: str, seen: list[int], depth: int) -> None:
    if depth > MAX_REFERENCE_DEPTH:
        raise DefinitionError(path, f"segments refer to segments at most {MAX_REFERENCE_DEPTH} levels deep")
    segment = session.scalar(select(Segment).where(Segment.id == target, Segment.workspace_id == workspace_id))
    if segment is None:
        raise DefinitionError(path, f"no segment with id {target}")
    if target in seen:
        chain = " → ".join(str(s) for s in [*seen, target])
        raise DefinitionError(path, f"segments refer to each other in a cycle ({chain})")
    if segment.kind != "dynamic" or not segment.definition:
        return
    try:
        inner = parse_definition(segment.definition)
    except DefinitionError:
        return  # a stored definition was valid when saved; its own validation reports problems
    for next_id in sorted(referenced_segments(inner)):
        _follow(session, workspace_id, next_id, path, [*seen, target], depth + 1)


PII_FIELDS = frozenset({"phone", "email"})


def refuse_pii_conditions(node: Node, actor: Actor) -> None:
    """Without `customers:pii`, phone and e-mail may only be tested for presence: a value test
    (`phone starts_with …`) with a count or a sample would reveal a masked number digit by digit."""
    if actor.can(Scope.CUSTOMERS_PII):
        return
    for item in walk(node):
        if isinstance(item, FieldCondition) and item.field in PII_FIELDS and item.op not in ("is_set", "is_not_set"):
            raise PiiConditionDenied(
                f"{item.path}: conditions on {item.field} values need the customers:pii permission",
                details={"field": "definition", "path": f"{item.path}.field", "scope": str(Scope.CUSTOMERS_PII)},
            )


class PiiConditionDenied(PermissionDenied):
    code = "pii_condition_denied"


__all__ = ["MAX_DEPTH", "MAX_REFERENCE_DEPTH", "field_catalog", "stored_tree", "validate_definition"]
