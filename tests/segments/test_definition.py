"""The definition language: what the parser accepts (typed nodes), what it rejects (the exact path
and message of the offending node), and the checks against a workspace (fields, tags, staff,
channels, segments, cycles, reference depth)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.models import Workspace
from siyu.segments.definition import (
    CONDITION_KINDS,
    Comparison,
    DefinitionError,
    EventCondition,
    FieldCondition,
    Group,
    OrderCondition,
    PropertyFilter,
    SampleCondition,
    TagCondition,
    Window,
    parse_definition,
    referenced_segments,
    walk,
)
from siyu.segments.validation import validate_definition
from tests.factories import make_channel, make_staff, make_tag, make_workspace
from tests.segments.factories import make_attribute, make_identity_type, make_segment

CITY = {"kind": "field", "field": "city", "op": "eq", "value": "上海"}
VIEWS = {"kind": "event", "type": "page.view", "op": "at_least", "value": 3}


def _error(raw: Any) -> tuple[str, str]:
    with pytest.raises(DefinitionError) as caught:
        parse_definition(raw)
    assert caught.value.details == {"field": "definition", "path": caught.value.path}
    assert caught.value.code == "invalid_segment"
    assert caught.value.message.startswith(f"{caught.value.path}: ")
    return caught.value.path, caught.value.message.removeprefix(f"{caught.value.path}: ")


def _nested(levels: int, leaf: dict[str, Any]) -> dict[str, Any]:
    node: dict[str, Any] = leaf
    for _ in range(levels):
        node = {"all": [node]}
    return node


# --- what parses, and into what ------------------------------------------------------------------


def test_the_documented_example_parses_into_typed_nodes_with_paths() -> None:
    raw = {
        "all": [
            {"kind": "tag", "match": "any", "tag_ids": [12, 3, 12]},
            {"kind": "event", "type": "page.view", "op": "at_least", "value": 3, "window": {"last_days": 30}},
            {"kind": "order", "measure": "total_fen", "op": "gt", "value": 50000, "window": {"last_days": 90}},
            {"not": {"kind": "segment", "segment_id": 7}},
            {
                "any": [
                    {"kind": "field", "field": "gender", "op": "eq", "value": "female"},
                    {"kind": "relationship", "status": "removed", "removed_by": "customer"},
                ]
            },
        ]
    }
    node = parse_definition(raw)
    assert isinstance(node, Group) and node.combinator == "all" and node.path == "$"
    assert [n.path for n in walk(node)] == [
        "$",
        "$.all[0]",
        "$.all[1]",
        "$.all[2]",
        "$.all[3]",
        "$.all[3].not",
        "$.all[4]",
        "$.all[4].any[0]",
        "$.all[4].any[1]",
    ]
    assert node.children[0] == TagCondition("$.all[0]", "any", (3, 12))
    assert node.children[1] == EventCondition(
        "$.all[1]", "page.view", (), "count", Comparison("gte", 3), Window(last_days=30)
    )
    assert node.children[2] == OrderCondition(
        "$.all[2]", "total_fen", Comparison("gt", 50000), Window(last_days=90), None
    )
    assert referenced_segments(node) == {7}


def test_defaults_aliases_and_windows() -> None:
    event = parse_definition(
        {
            "kind": "event",
            "type": "order.paid",
            "where": [{"property": "sku", "op": "in", "value": ["A", "B"]}],
            "op": "between",
            "value": [1, 4],
            "window": {"from": "2026-11-01", "to": "2026-11-01"},
        }
    )
    assert event == EventCondition(
        "$",
        "order.paid",
        (PropertyFilter("$.where[0]", "sku", "in", ("A", "B")),),
        "count",
        Comparison("between", 1, 4),
        Window(start=date(2026, 11, 1), end=date(2026, 11, 1)),
    )
    last = parse_definition(
        {"kind": "event", "type": "login", "measure": "last", "op": "before", "value": "2026-01-31"}
    )
    assert isinstance(last, EventCondition) and last.comparison == Comparison("before", date(2026, 1, 31))
    assert parse_definition({"kind": "tag", "tag_ids": [5]}) == TagCondition("$", "any", (5,))
    assert parse_definition({"kind": "sample", "percent": 12.5, "seed": "s"}) == SampleCondition("$", 12.5, "s")
    assert parse_definition({"kind": "field", "field": "birthday", "op": "is_set"}) == FieldCondition(
        "$", "birthday", "is_set"
    )
    only_from = parse_definition({"kind": "order", "op": "exactly", "value": 0, "window": {"from": "2026-06-01"}})
    assert isinstance(only_from, OrderCondition)
    assert only_from.comparison == Comparison("eq", 0)
    assert only_from.window == Window(start=date(2026, 6, 1))


def test_the_eighteen_condition_kinds() -> None:
    assert CONDITION_KINDS == (
        "field",
        "identity",
        "tag",
        "relationship",
        "event",
        "order",
        "purchase",
        "consent",
        "segment",
        "sample",
        "tier",
        "points_balance",
        "points_expiring",
        "coupon",
        "first_order",
        "repurchaser",
        "super_user",
        "clv_value",
    )


def test_exactly_eight_levels_and_two_hundred_nodes_are_accepted() -> None:
    assert isinstance(parse_definition(_nested(8, CITY)), Group)
    assert len(walk(parse_definition({"all": [CITY] * 199}))) == 200


@pytest.mark.parametrize("percent", [0.01, 1.1, 0.29, 0.57, 12.34, 33.33, 99.99, 100])
def test_sample_percents_with_two_decimals_are_accepted(percent: float) -> None:
    # 1.1 * 100 is 110.00000000000001 in binary floating point; the rule is about decimals written.
    node = parse_definition({"kind": "sample", "percent": percent, "seed": "holdout"})
    assert node == SampleCondition("$", float(percent), "holdout")


# --- what the parser rejects, with the path and message ----------------------------------------------


@pytest.mark.parametrize(
    ("raw", "path", "message"),
    [
        ([CITY], "$", "expected an object: a group (all / any / not) or a condition (kind)"),
        ({}, "$", "expected a group (all / any / not) or a condition with a kind"),
        (
            {"all": [{"kind": "mood"}]},
            "$.all[0].kind",
            "unknown condition kind 'mood'; use one of " + ", ".join(CONDITION_KINDS),
        ),
        ({"all": [{"kind": 3}]}, "$.all[0].kind", "unknown condition kind 3; use one of " + ", ".join(CONDITION_KINDS)),
        ({"all": []}, "$.all", "expected a non-empty list of groups and conditions"),
        ({"any": {"kind": "tag"}}, "$.any", "expected a non-empty list of groups and conditions"),
        ({"all": [CITY], "any": [CITY]}, "$", "a group holds exactly one key: all, any or not"),
        ({"all": [CITY], "kind": "field"}, "$", "a group holds exactly one key: all, any or not"),
        ({"not": [CITY]}, "$.not", "expected an object: a group (all / any / not) or a condition (kind)"),
        ({"all": [{**CITY, "colour": "red"}]}, "$.all[0].colour", "unknown key 'colour' in a field condition"),
        ({"kind": "tag", "tag_ids": [1], "zz": 1, "aa": 2}, "$.aa", "unknown key 'aa' in a tag condition"),
        ({"kind": "field", "op": "eq", "value": 1}, "$.field", "required"),
        ({"kind": "field", "field": "city", "op": "like", "value": "x"}, "$.op", None),
        ({"kind": "field", "field": "city", "op": "is_set", "value": "x"}, "$.value", "is_set takes no value"),
        ({"kind": "field", "field": "city", "op": "eq"}, "$.value", "required"),
        (
            {"kind": "field", "field": "city", "op": "in", "value": []},
            "$.value",
            "in takes a non-empty list of at most 1000 values",
        ),
        (
            {"kind": "field", "field": "city", "op": "in", "value": ["x"] * 1001},
            "$.value",
            "in takes a non-empty list of at most 1000 values",
        ),
        ({"kind": "field", "field": "city", "op": "between", "value": ["a"]}, "$.value", "between takes [low, high]"),
        (
            {"kind": "field", "field": "birthday", "op": "within_last", "value": -3},
            "$.value",
            "expected a number from 0 to 3660",
        ),
        (
            {"all": [{**VIEWS, "window": {"last_days": -3}}]},
            "$.all[0].window.last_days",
            "expected a number from 1 to 3660",
        ),
        ({**VIEWS, "window": {"last_days": 0}}, "$.window.last_days", "expected a number from 1 to 3660"),
        ({**VIEWS, "window": {"last_days": 3661}}, "$.window.last_days", "expected a number from 1 to 3660"),
        ({**VIEWS, "window": {"last_days": "30"}}, "$.window.last_days", "expected a whole number"),
        (
            {**VIEWS, "window": {"from": "2026-11-02", "to": "2026-11-01"}},
            "$.window.to",
            "the window ends before it starts",
        ),
        (
            {**VIEWS, "window": {"from": "2026-02-30"}},
            "$.window.from",
            "expected a date as YYYY-MM-DD between 1900 and 2999",
        ),
        (
            {**VIEWS, "window": {"from": "2026-1-1"}},
            "$.window.from",
            "expected a date as YYYY-MM-DD between 1900 and 2999",
        ),
        (
            {**VIEWS, "window": {"last_days": 3, "from": "2026-01-01"}},
            "$.window",
            "give last_days or from/to, not both",
        ),
        ({**VIEWS, "window": {"days": 3}}, "$.window.days", "unknown key 'days' in a window"),
        ({**VIEWS, "window": {}}, "$.window", 'expected {"last_days": N} or {"from": date, "to": date}'),
        ({**VIEWS, "value": 2.5}, "$.value", "an event count is a whole number ≥ 0"),
        ({**VIEWS, "value": -1}, "$.value", "an event count is a whole number ≥ 0"),
        ({**VIEWS, "value": 2**53 + 1}, "$.value", "number out of range"),
        ({**VIEWS, "value": 10**30}, "$.value", "number out of range"),
        ({**VIEWS, "value": True}, "$.value", "expected a number"),
        ({**VIEWS, "op": "between", "value": [5, 2]}, "$.value", "between takes [low, high] with low ≤ high"),
        ({**VIEWS, "type": "Page View"}, "$.type", "expected a dotted event type such as page.view"),
        ({**VIEWS, "op": "before"}, "$.op", None),
        (
            {**VIEWS, "where": [{"property": "path", "op": "contains", "value": 3}]},
            "$.where[0].value",
            "contains takes a string",
        ),
        (
            {**VIEWS, "where": [{"property": "a.b", "op": "eq", "value": 3}]},
            "$.where[0].property",
            "expected a property name of letters, digits, _ and -",
        ),
        (
            {"kind": "event", "type": "login", "measure": "first", "op": "after", "value": "abc"},
            "$.value",
            "expected a date as YYYY-MM-DD between 1900 and 2999",
        ),
        (
            {"kind": "order", "measure": "total_fen", "op": "gt", "value": 1.5},
            "$.value",
            "order counts and amounts in fen are whole numbers",
        ),
        (
            {"kind": "order", "measure": "count", "op": "between", "value": [1, 2.5]},
            "$.value",
            "order counts and amounts in fen are whole numbers",
        ),
        ({"kind": "order", "measure": "profit", "op": "gt", "value": 1}, "$.measure", None),
        (
            {"kind": "order", "op": "gt", "value": 1, "platforms": ["taobao", ""]},
            "$.platforms[1]",
            "expected a non-empty string of at most 20 characters",
        ),
        ({"kind": "purchase"}, "$.skus", "give at least one SKU or category"),
        ({"kind": "purchase", "skus": ["A"], "bought": "yes"}, "$.bought", "expected true or false"),
        ({"kind": "tag", "tag_ids": []}, "$.tag_ids", "expected a non-empty list of ids"),
        ({"kind": "tag", "tag_ids": [1, "2"]}, "$.tag_ids[1]", "expected a whole number"),
        ({"kind": "tag", "tag_ids": [0]}, "$.tag_ids[0]", "expected a number from 1 to 9007199254740992"),
        ({"kind": "tag", "tag_ids": [2**63 + 5]}, "$.tag_ids[0]", "expected a number from 1 to 9007199254740992"),
        ({"kind": "tag", "tag_ids": list(range(1, 1002))}, "$.tag_ids", "at most 1000 ids"),
        ({"kind": "tag", "match": "some", "tag_ids": [1]}, "$.match", "expected one of all, any, none"),
        (
            {"kind": "relationship", "removed_by": "customer"},
            "$.removed_by",
            "removed_by needs status removed (or any)",
        ),
        (
            {"kind": "relationship", "status": "removed", "removed_by": "bot"},
            "$.removed_by",
            "expected customer or staff",
        ),
        ({"kind": "segment", "segment_id": 2**64}, "$.segment_id", "expected a number from 1 to 9007199254740992"),
        ({"kind": "segment", "segment_id": 3, "member": "no"}, "$.member", "expected true or false"),
        (
            {"kind": "consent", "channel": "fax"},
            "$.channel",
            "expected one of email, official_account, phone_call, sms, wecom",
        ),
        ({"kind": "identity", "type": ""}, "$.type", "expected a non-empty string of at most 40 characters"),
        (
            {"kind": "sample", "percent": 0},
            "$.percent",
            "expected a percentage above 0 and up to 100, two decimals at most",
        ),
        (
            {"kind": "sample", "percent": -5},
            "$.percent",
            "expected a percentage above 0 and up to 100, two decimals at most",
        ),
        (
            {"kind": "sample", "percent": 100.001},
            "$.percent",
            "expected a percentage above 0 and up to 100, two decimals at most",
        ),
        (
            {"kind": "sample", "percent": 12.345},
            "$.percent",
            "expected a percentage above 0 and up to 100, two decimals at most",
        ),
        ({"kind": "sample", "percent": "10"}, "$.percent", "expected a number"),
        ({"kind": "sample", "percent": 10, "seed": 7}, "$.seed", "expected a string of at most 100 characters"),
    ],
)
def test_the_parser_rejects_with_the_path_of_the_node(raw: Any, path: str, message: str | None) -> None:
    got_path, got_message = _error(raw)
    assert got_path == path
    if message is not None:
        assert got_message == message


def test_depth_over_eight_names_the_ninth_group() -> None:
    path, message = _error(_nested(9, CITY))
    assert path == "$" + ".all[0]" * 8
    assert message == "groups nest at most 8 deep"
    path, _ = _error({"not": {"not": {"not": {"not": {"not": {"not": {"not": {"not": {"not": CITY}}}}}}}}})
    assert path == "$" + ".not" * 8


def test_more_than_two_hundred_nodes_names_the_two_hundred_first() -> None:
    path, message = _error({"all": [CITY] * 200})
    assert (path, message) == ("$.all[199]", "a definition holds at most 200 groups and conditions")


def test_property_values_out_of_range_are_rejected() -> None:
    # A JSON integer beyond what SQLite stores (or a double represents exactly) is not a usable
    # property value: it would be a 500 (OverflowError) or a silently rounded comparison later.
    path, _ = _error({**VIEWS, "where": [{"property": "amount", "op": "gt", "value": 10**30}]})
    assert path == "$.where[0].value"
    path, _ = _error({**VIEWS, "where": [{"property": "amount", "op": "in", "value": [1, 2**64]}]})
    assert path == "$.where[0].value"


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ({"kind": "field", "field": "city", "op": "eq", "value": "上\x00海"}, "$.value"),
        ({"kind": "field", "field": "city", "op": "in", "value": ["杭州", "a\x00"]}, "$.value[1]"),
        (
            {**VIEWS, "type": "page.view", "where": [{"property": "path", "op": "eq", "value": "/\x00"}]},
            "$.where[0].value",
        ),
        ({"kind": "purchase", "skus": ["SKU\x00"]}, "$.skus[0]"),
        ({"kind": "identity", "type": "tao\x00bao"}, "$.type"),
        ({"kind": "sample", "percent": 5, "seed": "s\x00"}, "$.seed"),
    ],
)
def test_nul_characters_are_rejected_where_they_are(raw: Any, path: str) -> None:
    # PostgreSQL cannot store U+0000 in text or jsonb: such a definition could be saved on one
    # database and not the other, so it is refused as bad input with its path.
    assert _error(raw)[0] == path


# --- checks against the workspace --------------------------------------------------------------------


@pytest.fixture
def ws(db: Session, clock: FrozenClock) -> Workspace:
    workspace = make_workspace(db, clock=clock)
    make_attribute(db, workspace=workspace, key="visits", type="integer")
    make_attribute(db, workspace=workspace, key="vip", type="boolean")
    make_attribute(db, workspace=workspace, key="anniv", type="date")
    make_identity_type(db, workspace=workspace, key="douyin")
    return workspace


def _invalid(db: Session, ws: Workspace, raw: Any, segment_id: int | None = None) -> tuple[str, str]:
    with pytest.raises(DefinitionError) as caught:
        validate_definition(db, workspace_id=ws.id, raw=raw, segment_id=segment_id)
    return caught.value.path, caught.value.message.removeprefix(f"{caught.value.path}: ")


def test_values_are_converted_to_the_field_type(db: Session, ws: Workspace) -> None:
    node = validate_definition(
        db,
        workspace_id=ws.id,
        raw={
            "all": [
                {"kind": "field", "field": "birthday", "op": "between", "value": ["1990-01-01", "1999-12-31"]},
                {"kind": "field", "field": "created_at", "op": "eq", "value": "2026-11-01"},
                {"kind": "field", "field": "attributes.visits", "op": "gt", "value": 3},
                {"kind": "identity", "type": "douyin"},
            ]
        },
    )
    assert isinstance(node, Group)
    assert node.children[0] == FieldCondition("$.all[0]", "birthday", "between", date(1990, 1, 1), date(1999, 12, 31))
    assert node.children[1] == FieldCondition("$.all[1]", "created_at", "eq", date(2026, 11, 1))
    assert node.children[2] == FieldCondition("$.all[2]", "attributes.visits", "gt", 3)


@pytest.mark.parametrize(
    ("raw", "path", "message"),
    [
        (
            {"all": [{"kind": "field", "field": "shoe", "op": "eq", "value": "x"}]},
            "$.all[0].field",
            "unknown field 'shoe'",
        ),
        (
            {"kind": "field", "field": "attributes.height", "op": "eq", "value": 1},
            "$.field",
            "unknown field 'attributes.height'",
        ),
        (
            {"all": [CITY, {"kind": "field", "field": "attributes.visits", "op": "contains", "value": "3"}]},
            "$.all[1].op",
            "contains does not apply to integer field attributes.visits; use one of "
            "between, eq, gt, gte, in, is_not_set, is_set, lt, lte, ne, not_in",
        ),
        (
            {"kind": "field", "field": "gender", "op": "gt", "value": "female"},
            "$.op",
            "gt does not apply to enum field gender; use one of eq, in, is_not_set, is_set, ne, not_in",
        ),
        (
            {"kind": "field", "field": "created_at", "op": "anniversary_within_next", "value": 7},
            "$.op",
            "anniversary_within_next does not apply to datetime field created_at; use one of "
            "between, eq, gt, gte, is_not_set, is_set, lt, lte, more_than_ago, ne, within_last",
        ),
        ({"kind": "field", "field": "attributes.vip", "op": "in", "value": [True]}, "$.op", None),
        (
            {"kind": "field", "field": "attributes.visits", "op": "eq", "value": "3"},
            "$.value",
            "expected a whole number",
        ),
        (
            {"kind": "field", "field": "attributes.visits", "op": "eq", "value": 3.5},
            "$.value",
            "expected a whole number",
        ),
        (
            {"kind": "field", "field": "attributes.visits", "op": "eq", "value": 2**60},
            "$.value",
            "expected a whole number",
        ),
        (
            {"kind": "field", "field": "attributes.visits", "op": "in", "value": [1, True]},
            "$.value[1]",
            "expected a whole number",
        ),
        ({"kind": "field", "field": "attributes.vip", "op": "eq", "value": 1}, "$.value", "expected true or false"),
        (
            {"kind": "field", "field": "birthday", "op": "eq", "value": "abc"},
            "$.value",
            "expected a date as YYYY-MM-DD between 1900 and 2999",
        ),
        (
            {"kind": "field", "field": "attributes.anniv", "op": "gt", "value": "2026-13-01"},
            "$.value",
            "expected a date as YYYY-MM-DD between 1900 and 2999",
        ),
        (
            {"kind": "field", "field": "birthday", "op": "between", "value": ["2000-01-01", "1999-01-01"]},
            "$.value",
            "between takes [low, high] with low ≤ high",
        ),
        (
            {"kind": "field", "field": "created_at", "op": "between", "value": ["2026-01-01", 5]},
            "$.value[1]",
            "expected a date as YYYY-MM-DD between 1900 and 2999",
        ),
        (
            {"kind": "field", "field": "gender", "op": "eq", "value": "robot"},
            "$.value",
            "expected one of female, male, unknown",
        ),
        (
            {"kind": "field", "field": "city", "op": "eq", "value": 3},
            "$.value",
            "expected a string of at most 200 characters",
        ),
        (
            {"kind": "field", "field": "city", "op": "eq", "value": "长" * 201},
            "$.value",
            "expected a string of at most 200 characters",
        ),
        ({"kind": "identity", "type": "myspace"}, "$.type", "unknown identity type 'myspace'"),
    ],
)
def test_fields_and_operators_are_checked(db: Session, ws: Workspace, raw: Any, path: str, message: str | None) -> None:
    got_path, got_message = _invalid(db, ws, raw)
    assert got_path == path
    if message is not None:
        assert got_message == message


def test_tags_staff_and_channels_of_another_workspace_are_unknown(
    db: Session, clock: FrozenClock, ws: Workspace
) -> None:
    other = make_workspace(db, clock=clock)
    own_tag, foreign_tag = make_tag(db, workspace=ws), make_tag(db, workspace=other)
    own_staff, foreign_staff = make_staff(db, workspace=ws, clock=clock), make_staff(db, workspace=other, clock=clock)
    foreign_channel = make_channel(db, workspace=other, clock=clock)
    assert _invalid(db, ws, {"kind": "tag", "tag_ids": [own_tag.id, foreign_tag.id]}) == (
        "$.tag_ids[1]",
        f"no tag with id {foreign_tag.id}",
    )
    assert _invalid(db, ws, {"all": [{"kind": "relationship", "staff_ids": [foreign_staff.id]}]}) == (
        "$.all[0].staff_ids[0]",
        f"no staff member with id {foreign_staff.id}",
    )
    assert _invalid(db, ws, {"kind": "relationship", "channel_ids": [foreign_channel.id]}) == (
        "$.channel_ids[0]",
        f"no channel with id {foreign_channel.id}",
    )
    # One value is at `$.value` itself (there is no list to index into).
    assert _invalid(db, ws, {"kind": "field", "field": "owner_staff_id", "op": "eq", "value": 987654321}) == (
        "$.value",
        "no staff member with id 987654321",
    )
    assert _invalid(
        db, ws, {"kind": "field", "field": "owner_staff_id", "op": "in", "value": [own_staff.id, foreign_staff.id]}
    ) == ("$.value[1]", f"no staff member with id {foreign_staff.id}")


def test_segment_references_unknown_self_cycles_and_depth(db: Session, clock: FrozenClock, ws: Workspace) -> None:
    other = make_workspace(db, clock=clock)
    foreign = make_segment(db, workspace=other, clock=clock, definition=CITY)
    assert _invalid(db, ws, {"not": {"kind": "segment", "segment_id": foreign.id}}) == (
        "$.not.segment_id",
        f"no segment with id {foreign.id}",
    )
    a = make_segment(db, workspace=ws, clock=clock, definition=CITY)
    b = make_segment(db, workspace=ws, clock=clock, definition={"kind": "segment", "segment_id": a.id})
    assert _invalid(db, ws, {"kind": "segment", "segment_id": a.id}, segment_id=a.id) == (
        "$.segment_id",
        "a segment cannot refer to itself",
    )
    assert _invalid(db, ws, {"all": [CITY, {"kind": "segment", "segment_id": b.id}]}, segment_id=a.id) == (
        "$.all[1].segment_id",
        f"segments refer to each other in a cycle ({a.id} → {b.id} → {a.id})",
    )
    chain = [a]
    for _ in range(5):
        chain.append(
            make_segment(db, workspace=ws, clock=clock, definition={"kind": "segment", "segment_id": chain[-1].id})
        )
    # chain[5] → chain[4] → … → chain[0]: five levels below a new segment referring to chain[4].
    validate_definition(db, workspace_id=ws.id, raw={"kind": "segment", "segment_id": chain[4].id})
    assert _invalid(db, ws, {"kind": "segment", "segment_id": chain[5].id}) == (
        "$.segment_id",
        "segments refer to segments at most 5 levels deep",
    )
    static = make_segment(db, workspace=ws, clock=clock, members=[])
    validate_definition(db, workspace_id=ws.id, raw={"kind": "segment", "segment_id": static.id, "member": False})
