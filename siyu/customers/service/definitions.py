"""The workspace's own vocabulary for profiles: custom attributes (typed) and identity types."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.customers.identities import BUILTIN_TYPES, is_valid_type_key
from siyu.kit.clock import Clock
from siyu.kit.errors import Conflict, InvalidInput
from siyu.models import (
    AttributeDefinition,
    AttributeType,
    IdentityTypeDefinition,
)


def identity_types(session: Session, workspace_id: int) -> set[str]:
    """Built-in identity types plus the workspace's own."""
    custom = session.scalars(
        select(IdentityTypeDefinition.key).where(IdentityTypeDefinition.workspace_id == workspace_id)
    )
    return set(BUILTIN_TYPES) | set(custom)


def attribute_definitions(session: Session, workspace_id: int) -> dict[str, AttributeDefinition]:
    rows = session.scalars(select(AttributeDefinition).where(AttributeDefinition.workspace_id == workspace_id))
    return {row.key: row for row in rows}


def coerce_attribute(definition: AttributeDefinition, value: Any) -> Any:
    """Check and convert a custom attribute value to its declared type (JSON-safe result)."""
    name = f"attributes.{definition.key}"
    try:
        match AttributeType(definition.type):
            case AttributeType.STRING:
                return str(value)
            case AttributeType.INTEGER:
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise ValueError
                return int(str(value).strip()) if isinstance(value, str) else int(value)
            case AttributeType.NUMBER:
                if isinstance(value, bool):
                    raise ValueError
                return float(value)
            case AttributeType.BOOLEAN:
                if isinstance(value, bool):
                    return value
                text = str(value).strip().lower()
                if text in {"true", "1", "yes", "y", "是"}:
                    return True
                if text in {"false", "0", "no", "n", "否"}:
                    return False
                raise ValueError
            case AttributeType.DATE:
                return value.isoformat() if isinstance(value, date) else date.fromisoformat(str(value)).isoformat()
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name} must be a {definition.type}", details={"field": name}) from exc


def define_attribute(
    session: Session, *, actor: Actor, key: str, label: str, type_: str, clock: Clock
) -> AttributeDefinition:
    """Define a typed custom attribute for the workspace's profiles."""
    actor.require(Scope.CUSTOMERS_WRITE)
    if not is_valid_type_key(key):
        raise InvalidInput("key must be lower-case letters, digits and _", details={"field": "key"})
    try:
        attr_type = AttributeType(type_)
    except ValueError as exc:
        raise InvalidInput(f"unknown type {type_!r}", details={"field": "type"}) from exc
    if key in attribute_definitions(session, actor.workspace_id):
        raise Conflict(f"attribute {key!r} exists", details={"field": "key"})
    definition = AttributeDefinition(workspace_id=actor.workspace_id, key=key, label=label or key, type=attr_type)
    session.add(definition)
    session.flush()
    record(
        session,
        actor,
        action="create",
        entity_type="attribute_definition",
        entity_id=definition.id,
        after={"key": key, "type": str(attr_type)},
        clock=clock,
    )
    return definition


def define_identity_type(
    session: Session, *, actor: Actor, key: str, label: str, clock: Clock
) -> IdentityTypeDefinition:
    """Add an operator-defined identity type (e.g. the brand app's user id)."""
    actor.require(Scope.CUSTOMERS_WRITE)
    if not is_valid_type_key(key):
        raise InvalidInput("key must be lower-case letters, digits and _", details={"field": "key"})
    if key in identity_types(session, actor.workspace_id):
        raise Conflict(f"identity type {key!r} exists", details={"field": "key"})
    definition = IdentityTypeDefinition(workspace_id=actor.workspace_id, key=key, label=label or key)
    session.add(definition)
    session.flush()
    record(
        session,
        actor,
        action="create",
        entity_type="identity_type",
        entity_id=definition.id,
        after={"key": key},
        clock=clock,
    )
    return definition
