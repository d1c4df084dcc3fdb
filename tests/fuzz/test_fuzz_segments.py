"""Fuzzing the segment compiler: random condition trees, valid and not — wrong shapes, unknown kinds,
keys, fields and operators, bad values, deep nesting — either compile to SQL that runs, or are
refused with `DefinitionError` naming the path; never another exception.

tests/segments/test_properties.py checks that *valid* definitions select the right customers;
this file throws everything else at the parser, the validator and the compiler. Both backends:
a value the compiler lets through can still be refused by PostgreSQL alone (ranges, NUL, casts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.kit.clock import FrozenClock
from siyu.segments.definition import _CONDITIONS, FIELD_OPS, MOMENT_OPS, DefinitionError
from siyu.segments.fields import PROFILE_FIELDS
from siyu.segments.query import SegmentQueryTimeout
from siyu.segments.service.preview import preview_definition
from tests.factories import actor_for, make_channel, make_customer, make_staff, make_tag, make_workspace
from tests.fuzz.conftest import fuzz_examples
from tests.segments.factories import make_attribute
from tests.segments.strategies import Catalog, definitions

KINDS = [*_CONDITIONS, "", "Field", "all", "unknown", "field "]
KEYS = sorted({key for allowed, _ in _CONDITIONS.values() for key in allowed} | {"kind", "extra", "", "all", "any"})
OPS = sorted(FIELD_OPS | MOMENT_OPS | {"at_least", "at_most", "exactly", "like", "", "EQ"})
FIELDS = [*PROFILE_FIELDS, "attributes.visits", "attributes.skin", "attributes.anniv", "attributes.nope", "id", "x"]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, 7, 30, 3660, 3661, -1, 2**31, 2**63, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["2026-11-23", "2026-02-30", "0001-01-01", "9999-12-31", "2026-11-23T10:00:00+08:00"]),
    st.sampled_from(["", "%", "_", "\\", "'; DROP TABLE customers;--", "上海", "😀", "\x00", "a" * 300]),
    st.sampled_from(OPS),
    st.sampled_from(FIELDS),
    st.text(max_size=20),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=4),
    max_leaves=8,
)


@st.composite
def conditions(draw: st.DrawFn) -> dict[str, Any]:
    """A condition object: a known (or near-miss) kind with a few of its keys holding plausible or junk values."""
    kind = draw(st.sampled_from(KINDS))
    allowed = sorted(_CONDITIONS[kind][0]) if kind in _CONDITIONS else KEYS
    raw: dict[str, Any] = {"kind": kind}
    for key in draw(st.lists(st.sampled_from([*allowed, "extra"]), max_size=5, unique=True)):
        if key == "op":
            raw[key] = draw(st.sampled_from(OPS) | JSON)
        elif key == "field":
            raw[key] = draw(st.sampled_from(FIELDS) | JSON)
        elif key.endswith("_ids"):
            raw[key] = draw(st.lists(st.integers(min_value=-1, max_value=2**64), max_size=3) | JSON)
        else:
            raw[key] = draw(JSON)
    return raw


DEFINITIONS = st.recursive(
    conditions() | JSON,
    lambda inner: st.one_of(
        st.builds(lambda items: {"all": items}, st.lists(inner, max_size=3)),
        st.builds(lambda items: {"any": items}, st.lists(inner, max_size=3)),
        st.builds(lambda item: {"not": item}, inner),
        st.builds(lambda items: {"all": items, "any": items}, st.lists(inner, max_size=2)),
    ),
    max_leaves=12,
)
# Nesting past MAX_DEPTH (8) and wide trees past MAX_NODES (200) must be refused, not recursed into.
DEEP = st.integers(min_value=1, max_value=60).map(
    lambda n: _nest({"kind": "field", "field": "city", "op": "eq", "value": "上海"}, n)
)


def _nest(node: dict[str, Any], depth: int) -> dict[str, Any]:
    for i in range(depth):
        node = {"not": node} if i % 2 else {"all": [node]}
    return node


@dataclass(frozen=True)
class SegmentWorld:
    actor: Actor
    catalog: Catalog


@pytest.fixture
def segment_world(db: Session, clock: FrozenClock) -> SegmentWorld:
    """A workspace with a customer, tags, staff, a channel and custom attributes, made once per test."""
    ws = make_workspace(db, clock=clock)
    make_attribute(db, workspace=ws, key="visits", type="integer")
    make_attribute(db, workspace=ws, key="skin", type="string")
    make_attribute(db, workspace=ws, key="anniv", type="date")
    catalog = Catalog(
        workspace_id=ws.id,
        tag_ids=(make_tag(db, workspace=ws).id, make_tag(db, workspace=ws).id),
        staff_ids=(make_staff(db, workspace=ws, clock=clock).id,),
        channel_ids=(make_channel(db, workspace=ws, clock=clock).id,),
    )
    make_customer(db, actor=actor_for(ws), clock=clock, name="韩梅梅", city="上海")
    return SegmentWorld(actor=actor_for(ws), catalog=catalog)


def _preview_or_refusal(db: Session, world: SegmentWorld, clock: FrozenClock, definition: Any) -> None:
    """Preview `definition` (parse, validate, compile, count every node, sample) inside a savepoint;
    it must either run or be refused with a path into the tree."""
    note(repr(definition))
    savepoint = db.begin_nested()
    try:
        preview = preview_definition(db, actor=world.actor, definition=definition, clock=clock)
    except DefinitionError as refused:
        event("refused")
        assert refused.status_code == 422
        assert str(refused.details["path"]).startswith("$"), refused.details
    except SegmentQueryTimeout:
        event("timed out")  # PostgreSQL's statement timeout on a busy machine: a clear 422 too
    else:
        event("compiled and ran")
        assert preview.count in (0, 1)  # the pool holds one customer
    finally:
        savepoint.rollback()


def _mutate(draw: st.DataObject, tree: Any) -> Any:
    """Replace one value somewhere in `tree` (a dict or list) with junk, or add an unknown key."""
    slots: list[tuple[Any, Any]] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            slots.extend((node, key) for key in node)
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            slots.extend((node, index) for index in range(len(node)))
            for value in node:
                collect(value)

    collect(tree)
    container, key = draw.draw(st.sampled_from(slots), label="slot")
    if isinstance(container, dict) and draw.draw(st.booleans(), label="new key"):
        container[draw.draw(st.sampled_from(KEYS), label="key")] = draw.draw(JSON, label="junk")
    else:
        container[key] = draw.draw(JSON, label="junk")
    return tree


FUZZ_SETTINGS = settings(
    max_examples=fuzz_examples(40),
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ_SETTINGS
@given(definition=DEFINITIONS | DEEP)
def test_any_json_tree_compiles_and_runs_or_is_refused_with_a_path(
    db: Session, clock: FrozenClock, segment_world: SegmentWorld, definition: Any
) -> None:
    _preview_or_refusal(db, segment_world, clock, definition)


@FUZZ_SETTINGS
@given(data=st.data())
def test_valid_definitions_with_one_bad_value_compile_and_run_or_are_refused_with_a_path(
    db: Session, clock: FrozenClock, segment_world: SegmentWorld, data: st.DataObject
) -> None:
    # given a valid definition over this workspace's ids, with up to two values swapped for junk
    definition = data.draw(definitions(segment_world.catalog, max_depth=3), label="valid definition")
    for _ in range(data.draw(st.integers(min_value=0, max_value=2), label="mutations")):
        definition = _mutate(data, definition)
    # then it previews or is refused naming the path
    _preview_or_refusal(db, segment_world, clock, definition)
