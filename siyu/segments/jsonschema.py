"""The JSON Schema of a definition, published at `GET /api/v1/segments/schema`.

It describes the shape (what `parse_definition` checks); names that depend on the workspace
(fields, tag ids, segments) are checked on save and reported with the node's path.
"""

from __future__ import annotations

from typing import Any

from siyu.models import ConsentChannel
from siyu.segments.analytics_conditions import json_schemas as _analytics_conditions
from siyu.segments.definition import (
    AMOUNT_OPS,
    COUNT_ALIASES,
    EVENT_MEASURES,
    FIELD_OPS,
    MAX_DAYS,
    MAX_LIST,
    MOMENT_OPS,
    ORDER_MEASURES,
    PROPERTY_OPS,
)
from siyu.segments.loyalty_conditions import COUPON_STATES

_DATE = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
_IDS = {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1, "maxItems": MAX_LIST}
_SCALAR = {"type": ["string", "number", "boolean"]}


def _condition(kind: str, properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"kind": {"const": kind}, **properties},
        "required": ["kind", *(required or [])],
        "additionalProperties": False,
    }


def definition_schema() -> dict[str, Any]:
    """The schema document (draft 2020-12)."""
    number_ops = sorted(AMOUNT_OPS | set(COUNT_ALIASES))
    comparison_value = {
        "oneOf": [
            {"type": "number"},
            _DATE,
            {"type": "array", "minItems": 2, "maxItems": 2, "items": {"oneOf": [{"type": "number"}, _DATE]}},
        ]
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://siyu.dev/schemas/segment-definition.json",
        "title": "siyu segment definition",
        "$ref": "#/$defs/node",
        "$defs": {
            "node": {"oneOf": [{"$ref": "#/$defs/group"}, {"$ref": "#/$defs/condition"}]},
            "group": {
                "oneOf": [
                    {
                        "type": "object",
                        "properties": {"all": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/node"}}},
                        "required": ["all"],
                        "additionalProperties": False,
                    },
                    {
                        "type": "object",
                        "properties": {"any": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/node"}}},
                        "required": ["any"],
                        "additionalProperties": False,
                    },
                    {
                        "type": "object",
                        "properties": {"not": {"$ref": "#/$defs/node"}},
                        "required": ["not"],
                        "additionalProperties": False,
                    },
                ]
            },
            "window": {
                "oneOf": [
                    {
                        "type": "object",
                        "properties": {"last_days": {"type": "integer", "minimum": 1, "maximum": MAX_DAYS}},
                        "required": ["last_days"],
                        "additionalProperties": False,
                    },
                    {
                        "type": "object",
                        "properties": {"from": _DATE, "to": _DATE},
                        "minProperties": 1,
                        "additionalProperties": False,
                    },
                ]
            },
            "condition": {
                "oneOf": [
                    _condition(
                        "field",
                        {
                            "field": {"type": "string", "minLength": 1, "maxLength": 100},
                            "op": {"enum": sorted(FIELD_OPS)},
                            "value": {},
                        },
                        ["field", "op"],
                    ),
                    _condition(
                        "identity",
                        {"type": {"type": "string", "minLength": 1, "maxLength": 40}, "present": {"type": "boolean"}},
                        ["type"],
                    ),
                    _condition("tag", {"match": {"enum": ["any", "all", "none"]}, "tag_ids": _IDS}, ["tag_ids"]),
                    _condition(
                        "relationship",
                        {
                            "staff_ids": _IDS,
                            "channel_ids": _IDS,
                            "status": {"enum": ["active", "removed", "any"]},
                            "removed_by": {"enum": ["customer", "staff", None]},
                            "window": {"$ref": "#/$defs/window"},
                        },
                    ),
                    _condition(
                        "event",
                        {
                            "type": {"type": "string", "pattern": r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$", "maxLength": 60},
                            "where": {
                                "type": "array",
                                "maxItems": 20,
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "property": {"type": "string", "pattern": r"^[A-Za-z0-9_\-]{1,64}$"},
                                        "op": {"enum": sorted(PROPERTY_OPS)},
                                        "value": {"oneOf": [_SCALAR, {"type": "array", "items": _SCALAR}]},
                                    },
                                    "required": ["property", "op"],
                                    "additionalProperties": False,
                                },
                            },
                            "measure": {"enum": sorted(EVENT_MEASURES)},
                            "op": {"enum": sorted(set(number_ops) | MOMENT_OPS)},
                            "value": comparison_value,
                            "window": {"$ref": "#/$defs/window"},
                        },
                        ["type", "op", "value"],
                    ),
                    _condition(
                        "order",
                        {
                            "measure": {"enum": sorted(ORDER_MEASURES)},
                            "op": {"enum": sorted(set(number_ops) | MOMENT_OPS)},
                            "value": comparison_value,
                            "window": {"$ref": "#/$defs/window"},
                            "platforms": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
                        },
                        ["op", "value"],
                    ),
                    _condition(
                        "purchase",
                        {
                            "skus": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 64}},
                            "categories": {
                                "type": "array",
                                "items": {"type": "string", "minLength": 1, "maxLength": 100},
                            },
                            "window": {"$ref": "#/$defs/window"},
                            "bought": {"type": "boolean"},
                        },
                    ),
                    _condition(
                        "consent",
                        {
                            "channel": {"enum": [str(c) for c in ConsentChannel]},
                            "status": {"enum": ["granted", "unsubscribed"]},
                        },
                        ["channel"],
                    ),
                    _condition(
                        "segment",
                        {"segment_id": {"type": "integer", "minimum": 1}, "member": {"type": "boolean"}},
                        ["segment_id"],
                    ),
                    _condition(
                        "sample",
                        {
                            "percent": {"type": "number", "exclusiveMinimum": 0, "maximum": 100},
                            "seed": {"type": "string", "maxLength": 100},
                        },
                        ["percent"],
                    ),
                    *_loyalty_conditions(number_ops),
                    *_analytics_conditions(number_ops),
                ]
            },
        },
    }


def _loyalty_conditions(number_ops: list[str]) -> list[dict[str, Any]]:
    """Tier, points, coupons, first order and repurchase (see `siyu.segments.loyalty_conditions`)."""
    points = {
        "oneOf": [{"type": "integer"}, {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "integer"}}]
    }
    names = {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1, "maxLength": 50}}
    return [
        _condition("tier", {"tier_ids": _IDS, "tier_names": names, "member": {"type": "boolean"}}),
        _condition("points_balance", {"op": {"enum": number_ops}, "value": points}, ["op", "value"]),
        _condition(
            "points_expiring",
            {
                "within_days": {"type": "integer", "minimum": 1, "maximum": MAX_DAYS},
                "op": {"enum": number_ops},
                "value": points,
            },
            ["within_days"],
        ),
        _condition(
            "coupon",
            {"template_ids": _IDS, "state": {"enum": sorted(COUPON_STATES)}, "has": {"type": "boolean"}},
        ),
        _condition("first_order", {"value": {"type": "boolean"}}),
        _condition("repurchaser", {"value": {"type": "boolean"}}),
    ]
