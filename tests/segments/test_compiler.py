"""The segment compiler on hand-written examples: every condition kind with exact member sets, and
the edges docs/segments.md spells out — unset fields under negatives, empty strings, attributes of
the wrong JSON type, windows at their exact boundaries, brand-local days (Asia/Shanghai), birthdays
across the year end and on 29 February, counts with zero, refunds, exact averages, segment
references, samples, per-node counts and one-customer evaluation.

`now` is 2026-11-23T02:00Z, which is 10:00 on 2026-11-23 in Shanghai.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.models import Customer, Relationship, Workspace
from siyu.segments.definition import walk
from siyu.segments.query import count_definition, customer_matches, explain_sql, members_select, node_counts
from siyu.segments.semantics import in_sample
from siyu.segments.validation import validate_definition
from tests.conftest import NOW
from tests.factories import make_channel, make_staff, make_tag, make_workspace
from tests.segments.factories import (
    make_attribute,
    make_consent,
    make_event,
    make_identity,
    make_identity_type,
    make_person,
    make_sale,
    make_segment,
    tag_customer,
)

UNSCOPED = {"siyu_unscoped": True}
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)
LOCAL_MIDNIGHT = datetime(2026, 11, 22, 16, 0, tzinfo=UTC)
"""2026-11-23 00:00 in Shanghai."""


@dataclass
class Pool:
    """A workspace and its customers by label; `members` answers with labels."""

    db: Session
    ws: Workspace
    clock: FrozenClock
    who: dict[str, Customer] = field(default_factory=dict)

    def add(self, label: str, created_at: datetime | None = None, **values: Any) -> Customer:
        self.who[label] = make_person(self.db, workspace=self.ws, created_at=created_at or NOW - 400 * DAY, **values)
        return self.who[label]

    def members(self, definition: dict[str, Any]) -> set[str]:
        node = validate_definition(self.db, workspace_id=self.ws.id, raw=definition)
        ids = set(
            self.db.scalars(
                members_select(self.db, workspace_id=self.ws.id, definition=node, now=NOW),
                execution_options=UNSCOPED,
            )
        )
        labels = {label for label, c in self.who.items() if c.id in ids}
        assert len(labels) == len(ids), "a member that is no customer of this test"
        return labels


@pytest.fixture
def pool(db: Session, clock: FrozenClock) -> Pool:
    ws = make_workspace(db, clock=clock)
    assert ws.timezone == "Asia/Shanghai"
    attributes = {"visits": "integer", "score": "number", "vip": "boolean", "skin": "string", "anniv": "date"}
    for key, kind in attributes.items():
        make_attribute(db, workspace=ws, key=key, type=kind)
    return Pool(db, ws, clock)


def _field(name: str, op: str, value: Any = None) -> dict[str, Any]:
    out = {"kind": "field", "field": name, "op": op}
    return out if value is None else {**out, "value": value}


# --- profile fields --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        (_field("city", "eq", "上海"), {"sh"}),
        (_field("city", "ne", "上海"), {"hz", "unset", "empty"}),
        (_field("city", "in", ["上海", "杭州"]), {"sh", "hz"}),
        (_field("city", "not_in", ["上海"]), {"hz", "unset", "empty"}),
        ({"not": _field("city", "eq", "上海")}, {"hz", "unset", "empty"}),
        ({"not": {"not": _field("city", "eq", "上海")}}, {"sh"}),
        (_field("city", "is_set"), {"sh", "hz"}),
        (_field("city", "is_not_set"), {"unset", "empty"}),
        (_field("city", "eq", ""), set()),
        (_field("city", "ne", ""), {"sh", "hz", "unset", "empty"}),
        (_field("city", "contains", ""), {"sh", "hz"}),
        (_field("city", "lt", "杭"), {"sh"}),  # 上 U+4E0A < 杭 U+676D
        (_field("gender", "eq", "female"), {"sh"}),
        (_field("gender", "ne", "female"), {"hz", "unset", "empty"}),
        (_field("gender", "is_not_set"), {"unset", "empty"}),
        (_field("owner_staff_id", "is_set"), {"hz"}),
    ],
)
def test_unset_and_empty_fields_only_match_negatives(
    pool: Pool, definition: dict[str, Any], expected: set[str]
) -> None:
    # given customers with a city and gender, none, and empty strings
    staff = make_staff(pool.db, workspace=pool.ws, clock=pool.clock)
    pool.add("sh", city="上海", gender="female")
    pool.add("hz", city="杭州", gender="male", owner_staff_id=staff.id)
    pool.add("unset")
    pool.add("empty", city="", gender="")
    # then positive operators need the field set; ne / not_in / not are exact complements
    assert pool.members(definition) == expected


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        (_field("name", "contains", "A"), {"Alice"}),
        (_field("name", "contains", "a"), {"alice", "a%b", "a_b", "axb"}),
        (_field("name", "contains", "%"), {"a%b"}),
        (_field("name", "contains", "_"), {"a_b"}),
        (_field("name", "starts_with", "a_"), {"a_b"}),
        (_field("name", "starts_with", "张"), {"张三"}),
        (_field("name", "gt", "a"), {"alice", "a%b", "a_b", "axb", "张三"}),
        (_field("name", "lt", "a"), {"Alice"}),
        (_field("name", "lte", "Alice"), {"Alice"}),
        (_field("name", "between", ["a_", "b"]), {"a_b", "alice", "axb"}),
        (_field("name", "in", ["alice", "张三"]), {"alice", "张三"}),
    ],
)
def test_strings_compare_by_code_point_and_case_sensitively(
    pool: Pool, definition: dict[str, Any], expected: set[str]
) -> None:
    for name in ("Alice", "alice", "a%b", "a_b", "axb", "张三"):
        pool.add(name, name=name)
    assert pool.members(definition) == expected


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        (_field("attributes.visits", "eq", 3), {"int", "float"}),
        (_field("attributes.visits", "gt", 2), {"int", "float"}),
        (_field("attributes.visits", "in", [3, 0]), {"int", "float", "zero"}),
        (_field("attributes.visits", "between", [0, 3]), {"int", "float", "zero"}),
        (_field("attributes.visits", "is_set"), {"int", "float", "zero"}),
        (_field("attributes.visits", "ne", 3), {"text", "bool", "null", "missing", "zero"}),
        (_field("attributes.score", "lt", 1), {"zero"}),
        # a number list is compared as numbers whichever comes first (PostgreSQL once read 1.5 as 1 here)
        (_field("attributes.score", "in", [0, 1.5]), {"float", "zero"}),
        (_field("attributes.score", "in", [1.5, 0]), {"float", "zero"}),
        (_field("attributes.score", "in", [1]), set()),
        (_field("attributes.score", "not_in", [0, 1.5]), {"int", "text", "bool", "null", "missing"}),
        (_field("attributes.score", "gte", 1.5), {"float"}),
        (_field("attributes.vip", "eq", True), {"bool"}),
        (_field("attributes.vip", "is_set"), {"bool", "zero"}),
        (_field("attributes.vip", "ne", True), {"int", "float", "text", "null", "missing", "zero"}),
        (_field("attributes.skin", "is_set"), {"text"}),
        (_field("attributes.skin", "ne", "油性"), {"int", "float", "bool", "null", "missing", "zero"}),
        (_field("attributes.anniv", "is_set"), {"text"}),
        (_field("attributes.anniv", "gte", "2026-01-01"), {"text"}),
    ],
)
def test_attributes_of_another_json_type_count_as_unset(
    pool: Pool, definition: dict[str, Any], expected: set[str]
) -> None:
    # given attributes stored as defined, with another JSON type, as null, empty or missing
    pool.add("int", attributes={"visits": 3, "score": "1.5", "vip": 1, "skin": 5, "anniv": 20261123})
    pool.add("float", attributes={"visits": 3.0, "score": 1.5, "vip": "true", "skin": ["油性"], "anniv": ""})
    pool.add("text", attributes={"visits": "3", "skin": "油性", "anniv": "2026-11-23"})
    pool.add("bool", attributes={"visits": True, "vip": True, "skin": True, "anniv": True})
    pool.add("null", attributes={"visits": None, "vip": None, "skin": None, "anniv": None})
    pool.add("missing")
    pool.add("zero", attributes={"visits": 0, "score": 0, "vip": False, "skin": ""})
    assert pool.members(definition) == expected


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        # 2026-11-22T17:00Z is 01:00 on 23 November in Shanghai: the local day counts, not the UTC one
        (_field("created_at", "eq", "2026-11-23"), {"midnight", "after_midnight", "now"}),
        (_field("created_at", "eq", "2026-11-22"), {"before_midnight"}),
        (_field("created_at", "gt", "2026-11-22"), {"midnight", "after_midnight", "now"}),
        (_field("created_at", "gte", "2026-11-23"), {"midnight", "after_midnight", "now"}),
        (_field("created_at", "lte", "2026-11-22"), {"before_midnight", "week"}),
        (_field("created_at", "lt", "2026-11-23"), {"before_midnight", "week"}),
        (_field("created_at", "between", ["2026-11-16", "2026-11-22"]), {"before_midnight", "week"}),
        (_field("created_at", "ne", "2026-11-23"), {"before_midnight", "week"}),
        # rolling: now − 7 days ≤ t ≤ now
        (_field("created_at", "within_last", 7), {"week", "before_midnight", "midnight", "after_midnight", "now"}),
        (_field("created_at", "within_last", 0), {"now"}),
        (_field("created_at", "more_than_ago", 0), {"week", "before_midnight", "midnight", "after_midnight"}),
        (_field("created_at", "more_than_ago", 7), set()),
    ],
)
def test_datetime_fields_compare_brand_local_days(pool: Pool, definition: dict[str, Any], expected: set[str]) -> None:
    pool.add("week", created_at=NOW - 7 * DAY)
    pool.add("before_midnight", created_at=LOCAL_MIDNIGHT - SECOND)
    pool.add("midnight", created_at=LOCAL_MIDNIGHT)
    pool.add("after_midnight", created_at=datetime(2026, 11, 22, 17, 0, tzinfo=UTC))
    pool.add("now", created_at=NOW)
    assert pool.members(definition) == expected


def test_created_at_just_outside_rolling_windows(pool: Pool) -> None:
    pool.add("too_old", created_at=NOW - 7 * DAY - SECOND)
    pool.add("future", created_at=NOW + SECOND)
    assert pool.members(_field("created_at", "within_last", 7)) == set()
    assert pool.members(_field("created_at", "more_than_ago", 7)) == {"too_old"}


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        (0, {"11-23"}),
        (37, {"11-23"}),
        (38, {"11-23", "12-31"}),
        (39, {"11-23", "12-31", "01-01"}),
        (96, {"11-23", "12-31", "01-01"}),
        # 2027 has no 29 February: it falls on 28 February (today + 97)
        (97, {"11-23", "12-31", "01-01", "02-28", "02-29"}),
        (98, {"11-23", "12-31", "01-01", "02-28", "02-29", "03-01"}),
        (363, {"11-23", "12-31", "01-01", "02-28", "02-29", "03-01"}),
        (364, {"11-23", "12-31", "01-01", "02-28", "02-29", "03-01", "11-22"}),
        (365, {"11-23", "12-31", "01-01", "02-28", "02-29", "03-01", "11-22"}),
    ],
)
@pytest.mark.parametrize("field_name", ["birthday", "attributes.anniv"])
def test_anniversary_within_next_across_year_end_and_29_february(
    pool: Pool, field_name: str, days: int, expected: set[str]
) -> None:
    births = {
        "11-23": "1990-11-23",
        "12-31": "1985-12-31",
        "01-01": "2001-01-01",
        "02-28": "1990-02-28",
        "02-29": "2000-02-29",
        "03-01": "1991-03-01",
        "11-22": "1980-11-22",
    }
    for label, born in births.items():
        if field_name == "birthday":
            pool.add(label, birthday=datetime.fromisoformat(born).date())
        else:
            pool.add(label, attributes={"anniv": born})
    pool.add("unset", attributes={"anniv": ""})
    assert pool.members(_field(field_name, "anniversary_within_next", days)) == expected


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        # today is 2026-11-23 (brand-local): today − 7 ≤ d ≤ today
        (_field("birthday", "within_last", 7), {"today", "week"}),
        (_field("birthday", "more_than_ago", 7), {"old"}),
        (_field("birthday", "more_than_ago", 6), {"old", "week"}),
        (_field("birthday", "eq", "2026-11-23"), {"today"}),
        (_field("birthday", "gt", "2026-11-16"), {"today", "tomorrow"}),
        (_field("birthday", "between", ["2026-11-16", "2026-11-23"]), {"today", "week"}),
        (_field("birthday", "ne", "2026-11-23"), {"week", "old", "tomorrow", "unset"}),
        (_field("attributes.anniv", "within_last", 7), {"today", "week"}),
        (_field("attributes.anniv", "more_than_ago", 7), {"old"}),
        (_field("attributes.anniv", "lt", "2026-11-23"), {"week", "old"}),
    ],
)
def test_date_fields_count_days_from_the_brand_local_today(
    pool: Pool, definition: dict[str, Any], expected: set[str]
) -> None:
    days = {"today": "2026-11-23", "week": "2026-11-16", "old": "2026-11-15", "tomorrow": "2026-11-24"}
    for label, day in days.items():
        pool.add(label, birthday=datetime.fromisoformat(day).date(), attributes={"anniv": day})
    pool.add("unset")
    assert pool.members(definition) == expected


# --- identities, tags, relationships, consent --------------------------------------------------------


def test_identity_tag_and_consent_conditions(pool: Pool) -> None:
    make_identity_type(pool.db, workspace=pool.ws, key="app_uid")
    vip, new = make_tag(pool.db, workspace=pool.ws), make_tag(pool.db, workspace=pool.ws)
    both, one = pool.add("both"), pool.add("one")
    pool.add("none")
    for customer, tags in ((both, (vip, new)), (one, (vip,))):
        for tag in tags:
            tag_customer(pool.db, customer=customer, tag=tag, at=NOW)
    make_identity(pool.db, customer=both, type="taobao", at=NOW)
    make_identity(pool.db, customer=one, type="app_uid", at=NOW)
    make_consent(pool.db, customer=both, channel="sms", status="granted", at=NOW)
    make_consent(pool.db, customer=one, channel="sms", status="unsubscribed", at=NOW)
    assert pool.members({"kind": "identity", "type": "taobao"}) == {"both"}
    assert pool.members({"kind": "identity", "type": "taobao", "present": False}) == {"one", "none"}
    assert pool.members({"kind": "identity", "type": "app_uid"}) == {"one"}
    assert pool.members({"kind": "tag", "tag_ids": [vip.id, new.id]}) == {"both", "one"}
    assert pool.members({"kind": "tag", "match": "all", "tag_ids": [vip.id, new.id]}) == {"both"}
    assert pool.members({"kind": "tag", "match": "none", "tag_ids": [new.id]}) == {"one", "none"}
    assert pool.members({"kind": "consent", "channel": "sms", "status": "granted"}) == {"both"}
    assert pool.members({"kind": "consent", "channel": "sms", "status": "unsubscribed"}) == {"one"}
    assert pool.members({"not": {"kind": "consent", "channel": "sms", "status": "granted"}}) == {"one", "none"}


def test_relationship_status_staff_channel_and_windows(pool: Pool) -> None:
    db, ws = pool.db, pool.ws
    amy, bob = make_staff(db, workspace=ws, clock=pool.clock), make_staff(db, workspace=ws, clock=pool.clock)
    card = make_channel(db, workspace=ws, clock=pool.clock)

    def edge(
        label: str, staff: Any, added: datetime, removed: datetime | None = None, by: str | None = None, via: Any = None
    ) -> None:
        db.add(
            Relationship(
                workspace_id=ws.id,
                customer_id=pool.who[label].id,
                staff_id=staff.id,
                added_at=added,
                removed_at=removed,
                removed_by=by,
                channel_id=via.id if via else None,
            )
        )
        db.flush()

    for label in ("friend", "deleted_us", "we_deleted", "old_friend", "stranger"):
        pool.add(label)
    edge("friend", amy, NOW - 30 * DAY, via=card)
    edge("deleted_us", bob, NOW - 100 * DAY, removed=NOW - 30 * DAY, by="customer")
    edge("we_deleted", amy, NOW - 10 * DAY, removed=NOW - 31 * DAY - SECOND, by="staff")
    edge("old_friend", bob, NOW - 400 * DAY)
    assert pool.members({"kind": "relationship"}) == {"friend", "old_friend"}
    assert pool.members({"kind": "relationship", "status": "any"}) == {
        "friend",
        "deleted_us",
        "we_deleted",
        "old_friend",
    }
    assert pool.members({"kind": "relationship", "staff_ids": [amy.id]}) == {"friend"}
    assert pool.members({"kind": "relationship", "status": "any", "staff_ids": [amy.id]}) == {"friend", "we_deleted"}
    assert pool.members({"kind": "relationship", "channel_ids": [card.id]}) == {"friend"}
    assert pool.members({"kind": "relationship", "status": "removed", "removed_by": "customer"}) == {"deleted_us"}
    # the window applies to removed_at for status removed, to added_at otherwise; 30 days back is included
    removed_lately = {"kind": "relationship", "status": "removed", "window": {"last_days": 30}}
    assert pool.members(removed_lately) == {"deleted_us"}
    assert pool.members({"kind": "relationship", "status": "any", "window": {"last_days": 30}}) == {
        "friend",
        "we_deleted",
    }
    assert pool.members({"not": {"kind": "relationship", "status": "any"}}) == {"stranger"}


# --- events -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        ({"op": "at_most", "value": 2}, {"never", "once"}),
        ({"op": "exactly", "value": 0}, {"never"}),
        ({"op": "at_least", "value": 1}, {"once", "thrice"}),
        ({"op": "between", "value": [1, 2]}, {"once"}),
        ({"op": "between", "value": [0, 1]}, {"never", "once"}),
        ({"op": "ne", "value": 1}, {"never", "thrice"}),
        ({"op": "lt", "value": 1}, {"never"}),
        ({"op": "gt", "value": 2}, {"thrice"}),
        ({"op": "exactly", "value": 3}, {"thrice"}),
    ],
)
def test_event_counts_include_customers_without_events(
    pool: Pool, definition: dict[str, Any], expected: set[str]
) -> None:
    never, once, thrice = pool.add("never"), pool.add("once"), pool.add("thrice")
    make_event(pool.db, customer=never, type="coupon.used", occurred_at=NOW)  # another type
    make_event(pool.db, customer=once, type="page.view", occurred_at=NOW - DAY)
    for n in range(3):
        make_event(pool.db, customer=thrice, type="page.view", occurred_at=NOW - n * DAY)
    assert pool.members({"kind": "event", "type": "page.view", **definition}) == expected


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ({"last_days": 7}, {"week", "before_midnight", "midnight", "now"}),
        ({"from": "2026-11-23"}, {"midnight", "now", "future"}),
        ({"to": "2026-11-22"}, {"week_ago_minus", "week", "before_midnight"}),
        ({"from": "2026-11-16", "to": "2026-11-22"}, {"week_ago_minus", "week", "before_midnight"}),
        ({"from": "2026-11-23", "to": "2026-11-23"}, {"midnight", "now", "future"}),
    ],
)
def test_event_windows_at_their_exact_boundaries(pool: Pool, window: dict[str, Any], expected: set[str]) -> None:
    moments = {
        "week_ago_minus": NOW - 7 * DAY - SECOND,  # 2026-11-16 09:59:59 local
        "week": NOW - 7 * DAY,
        "before_midnight": LOCAL_MIDNIGHT - SECOND,
        "midnight": LOCAL_MIDNIGHT,
        "now": NOW,
        "future": NOW + SECOND,
    }
    for label, at in moments.items():
        make_event(pool.db, customer=pool.add(label), type="page.view", occurred_at=at)
    definition = {"kind": "event", "type": "page.view", "op": "at_least", "value": 1, "window": window}
    assert pool.members(definition) == expected
    # and "at most 0" in the window is the exact complement
    assert pool.members({**definition, "op": "at_most", "value": 0}) == set(moments) - expected


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"property": "n", "op": "eq", "value": 5}, {"int", "float"}),
        ({"property": "n", "op": "eq", "value": "5"}, {"text"}),
        ({"property": "n", "op": "eq", "value": True}, {"bool"}),
        ({"property": "n", "op": "ne", "value": 5}, {"text", "bool", "null", "list", "object", "missing"}),
        ({"property": "n", "op": "in", "value": [5, "5"]}, {"int", "float", "text"}),
        ({"property": "n", "op": "not_in", "value": [5, True]}, {"text", "null", "list", "object", "missing"}),
        ({"property": "n", "op": "gt", "value": 4}, {"int", "float"}),
        ({"property": "n", "op": "lt", "value": "6"}, {"text"}),
        ({"property": "n", "op": "is_set"}, {"int", "float", "text", "bool"}),
        ({"property": "n", "op": "is_not_set"}, {"null", "list", "object", "missing"}),
        ({"property": "n", "op": "contains", "value": "5"}, {"text"}),
        ({"property": "n", "op": "starts_with", "value": ""}, {"text"}),
    ],
)
def test_event_property_filters_read_by_the_operand_type(pool: Pool, where: dict[str, Any], expected: set[str]) -> None:
    stored: dict[str, dict[str, Any]] = {
        "int": {"n": 5},
        "float": {"n": 5.0},
        "text": {"n": "5"},
        "bool": {"n": True},
        "null": {"n": None},
        "list": {"n": [5]},
        "object": {"n": {"v": 5}},
        "missing": {},
    }
    for label, properties in stored.items():
        make_event(pool.db, customer=pool.add(label), type="page.view", occurred_at=NOW, properties=properties)
    assert pool.members({"kind": "event", "type": "page.view", "where": [where], "op": "at_least", "value": 1}) == (
        expected
    )


def test_event_first_and_last_occurrence(pool: Pool) -> None:
    early, late, never = pool.add("early"), pool.add("late"), pool.add("never")
    make_event(pool.db, customer=early, type="page.view", occurred_at=NOW - 60 * DAY)
    make_event(pool.db, customer=early, type="page.view", occurred_at=LOCAL_MIDNIGHT - SECOND)  # local 11-22
    make_event(pool.db, customer=late, type="page.view", occurred_at=LOCAL_MIDNIGHT)  # local 11-23
    del never

    def moment(measure: str, op: str, value: Any) -> dict[str, Any]:
        return {"kind": "event", "type": "page.view", "measure": measure, "op": op, "value": value}

    assert pool.members(moment("first", "before", "2026-11-23")) == {"early"}
    assert pool.members(moment("last", "after", "2026-11-22")) == {"late"}
    assert pool.members(moment("last", "before", "2026-11-23")) == {"early"}
    assert pool.members(moment("last", "between", ["2026-11-22", "2026-11-22"])) == {"early"}
    assert pool.members(moment("first", "more_than_ago", 30)) == {"early"}
    assert pool.members(moment("last", "within_last", 1)) == {"early", "late"}
    # customers with no such events never match a moment, nor its negation's positive side
    assert pool.members({"not": moment("last", "within_last", 1)}) == {"never"}


# --- orders and purchases ---------------------------------------------------------------------------------


@pytest.fixture
def buyers(pool: Pool) -> Pool:
    """nothing: no orders; refunded: only a fully refunded order; small: 100 + 101 fen (average 100.5);
    big: 60,000 fen less 10,000 refunded, on JD, 100 days ago; recent: 19,900 on Taobao yesterday."""
    pool.add("nothing")
    make_sale(
        pool.db,
        customer=pool.add("refunded"),
        paid_at=NOW - DAY,
        total_fen=50_000,
        refunded_fen=50_000,
        items=[("SKU-1", "面霜")],
    )
    small = pool.add("small")
    make_sale(pool.db, customer=small, paid_at=NOW - 10 * DAY, total_fen=100, items=[("SKU-2", "精华")])
    make_sale(pool.db, customer=small, paid_at=NOW - 5 * DAY, total_fen=101)
    make_sale(
        pool.db,
        customer=pool.add("big"),
        paid_at=NOW - 100 * DAY,
        total_fen=60_000,
        refunded_fen=10_000,
        platform="jd",
        items=[("SKU-1", "面霜"), ("SKU-3", None)],
    )
    make_sale(pool.db, customer=pool.add("recent"), paid_at=NOW - DAY, total_fen=19_900, items=[("SKU-3", "面霜")])
    return pool


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        ({"measure": "total_fen", "op": "lt", "value": 10_000}, {"nothing", "refunded", "small"}),
        ({"measure": "total_fen", "op": "eq", "value": 50_000}, {"big"}),
        ({"measure": "total_fen", "op": "gt", "value": 10_000, "window": {"last_days": 90}}, {"recent"}),
        (
            {"measure": "total_fen", "op": "lte", "value": 0, "window": {"last_days": 90}},
            {"nothing", "refunded", "big"},
        ),
        ({"measure": "count", "op": "exactly", "value": 0}, {"nothing", "refunded"}),
        ({"measure": "count", "op": "at_most", "value": 1}, {"nothing", "refunded", "big", "recent"}),
        ({"measure": "count", "op": "at_least", "value": 2}, {"small"}),
        (
            {"measure": "count", "op": "exactly", "value": 0, "window": {"from": "2026-11-01"}},
            {"nothing", "refunded", "big"},
        ),
        ({"measure": "count", "op": "at_least", "value": 1, "platforms": ["jd"]}, {"big"}),
        ({"measure": "average_fen", "op": "gt", "value": 100}, {"small", "big", "recent"}),
        ({"measure": "average_fen", "op": "eq", "value": 100}, set()),
        ({"measure": "average_fen", "op": "lt", "value": 101}, {"small"}),
        ({"measure": "average_fen", "op": "between", "value": [100, 101]}, {"small"}),
        ({"measure": "average_fen", "op": "gte", "value": 0}, {"small", "big", "recent"}),
        ({"measure": "first_paid_at", "op": "before", "value": "2026-11-01"}, {"big"}),
        ({"measure": "last_paid_at", "op": "within_last", "value": 7}, {"small", "recent"}),
        ({"measure": "last_paid_at", "op": "more_than_ago", "value": 30}, {"big"}),
    ],
)
def test_order_measures(buyers: Pool, definition: dict[str, Any], expected: set[str]) -> None:
    assert buyers.members({"kind": "order", **definition}) == expected


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        ({"skus": ["SKU-1"]}, {"big"}),  # the refunded order's SKU-1 does not count
        ({"categories": ["面霜"]}, {"big", "recent"}),
        ({"skus": ["SKU-2"], "categories": ["面霜"]}, {"small", "big", "recent"}),
        ({"categories": ["面霜"], "window": {"last_days": 30}}, {"recent"}),
        ({"skus": ["SKU-1"], "bought": False}, {"nothing", "refunded", "small", "recent"}),
        ({"skus": ["SKU-9"]}, set()),
    ],
)
def test_purchase_by_sku_or_category(buyers: Pool, definition: dict[str, Any], expected: set[str]) -> None:
    assert buyers.members({"kind": "purchase", **definition}) == expected


# --- references, samples, pools --------------------------------------------------------------------------


def test_a_dynamic_segment_is_one_cte_however_often_it_is_referred_to(pool: Pool) -> None:
    shanghai = make_segment(pool.db, workspace=pool.ws, clock=pool.clock, definition=_field("city", "eq", "上海"))
    pool.add("sh_f", city="上海", gender="female")
    pool.add("sh_m", city="上海", gender="male")
    pool.add("hz_f", city="杭州", gender="female")
    twice = {
        "any": [
            {"all": [{"kind": "segment", "segment_id": shanghai.id}, _field("gender", "eq", "female")]},
            {"all": [{"kind": "segment", "segment_id": shanghai.id, "member": False}, _field("gender", "eq", "male")]},
        ]
    }
    assert pool.members(twice) == {"sh_f"}
    sql = explain_sql(pool.db, workspace_id=pool.ws.id, definition=twice, now=NOW)
    assert len(re.findall(rf"\bsegment_{shanghai.id} AS\b", sql)) == 1
    assert sql.count("'上海'") == 1


def test_a_static_segment_uses_its_member_list(pool: Pool) -> None:
    a, b = pool.add("a", city="上海"), pool.add("b", city="上海")
    pool.add("c", city="上海")
    listed = make_segment(pool.db, workspace=pool.ws, clock=pool.clock, members=[a.id, b.id])
    assert pool.members({"kind": "segment", "segment_id": listed.id}) == {"a", "b"}
    assert pool.members({"kind": "segment", "segment_id": listed.id, "member": False}) == {"c"}


@pytest.mark.parametrize(
    ("inner", "expected"),
    [
        (_field("created_at", "eq", "2026-11-23"), {"today"}),
        (_field("created_at", "between", ["2026-11-01", "2026-11-22"]), {"yesterday"}),
        (_field("birthday", "gt", "2000-01-01"), {"today"}),
        (_field("attributes.anniv", "between", ["2026-01-01", "2026-12-31"]), {"yesterday"}),
        (_field("attributes.anniv", "eq", "2026-11-22"), {"yesterday"}),
    ],
)
def test_a_referenced_segment_with_date_conditions_means_what_it_means_alone(
    pool: Pool, inner: dict[str, Any], expected: set[str]
) -> None:
    # given a saved dynamic segment whose definition compares dates (stored as JSON: dates are strings)
    pool.add("today", created_at=LOCAL_MIDNIGHT, birthday=datetime(2001, 5, 1).date())
    pool.add(
        "yesterday",
        created_at=LOCAL_MIDNIGHT - SECOND,
        birthday=datetime(1990, 5, 1).date(),
        attributes={"anniv": "2026-11-22"},
    )
    saved = make_segment(pool.db, workspace=pool.ws, clock=pool.clock, definition=inner)
    # then referring to it selects what the definition selects on its own
    assert pool.members(inner) == expected
    assert pool.members({"kind": "segment", "segment_id": saved.id}) == expected
    assert pool.members({"kind": "segment", "segment_id": saved.id, "member": False}) == {"today", "yesterday"} - (
        expected
    )


def test_sample_is_deterministic_proportionate_and_complemented_by_not(pool: Pool) -> None:
    # given 10,000 customers
    rows = [
        {
            "workspace_id": pool.ws.id,
            "lifecycle_stage": "new",
            "attributes": {},
            "field_updated_at": {},
            "created_at": NOW,
            "updated_at": NOW,
        }
        for _ in range(10_000)
    ]
    pool.db.execute(insert(Customer), rows)
    ids = set(pool.db.scalars(select(Customer.id).where(Customer.workspace_id == pool.ws.id)))
    assert len(ids) == 10_000
    for percent in (10, 33.33):
        sample = {"kind": "sample", "percent": percent, "seed": "spring-holdout"}
        node = validate_definition(pool.db, workspace_id=pool.ws.id, raw=sample)
        picked = set(
            pool.db.scalars(
                members_select(pool.db, workspace_id=pool.ws.id, definition=node, now=NOW), execution_options=UNSCOPED
            )
        )
        # exactly the customers the documented hash picks, about `percent` of them
        assert picked == {i for i in ids if in_sample(i, percent, "spring-holdout")}
        assert abs(len(picked) / 100 - percent) <= 1.5
        # the same seed picks the same customers again; not with the same seed is the rest
        assert count_definition(pool.db, workspace_id=pool.ws.id, definition=sample, now=NOW) == len(picked)
        rest = set(
            pool.db.scalars(
                members_select(pool.db, workspace_id=pool.ws.id, definition={"not": sample}, now=NOW),
                execution_options=UNSCOPED,
            )
        )
        assert rest == ids - picked
    other = {"kind": "sample", "percent": 10, "seed": "another"}
    assert count_definition(pool.db, workspace_id=pool.ws.id, definition=other, now=NOW) == sum(
        in_sample(i, 10, "another") for i in ids
    )
    full = {"kind": "sample", "percent": 100, "seed": "x"}
    assert count_definition(pool.db, workspace_id=pool.ws.id, definition=full, now=NOW) == 10_000


def test_merged_customers_and_other_workspaces_are_never_members(pool: Pool, db: Session, clock: FrozenClock) -> None:
    survivor = pool.add("survivor", city="上海")
    pool.add("merged", city="上海", merged_into_id=survivor.id)
    pool.add("erased", erased_at=NOW)
    make_sale(db, customer=pool.who["erased"], paid_at=NOW - DAY, total_fen=30_000)
    elsewhere = make_workspace(db, clock=clock)
    make_attribute(db, workspace=elsewhere, key="visits", type="string")
    stranger = make_person(db, workspace=elsewhere, created_at=NOW, city="上海")
    make_sale(db, customer=stranger, paid_at=NOW - DAY, total_fen=30_000)
    assert pool.members(_field("city", "eq", "上海")) == {"survivor"}
    assert pool.members(_field("city", "ne", "杭州")) == {"survivor", "erased"}
    # erased customers keep their aggregates
    assert pool.members({"kind": "order", "measure": "total_fen", "op": "gt", "value": 0}) == {"erased"}
    assert pool.members({"kind": "order", "measure": "total_fen", "op": "lt", "value": 1}) == {"survivor"}


# --- per-node counts and one customer ---------------------------------------------------------------------


def test_node_counts_and_customer_matches_agree_with_the_members(pool: Pool) -> None:
    vip = make_tag(pool.db, workspace=pool.ws)
    sh = pool.add("sh", city="上海")
    pool.add("hz", city="杭州")
    viewer = pool.add("viewer", city="上海")
    pool.add("nobody")
    tag_customer(pool.db, customer=sh, tag=vip, at=NOW)
    for n in range(3):
        make_event(pool.db, customer=viewer, type="page.view", occurred_at=NOW - n * DAY)
    definition = {
        "all": [
            _field("city", "eq", "上海"),
            {
                "any": [
                    {"kind": "tag", "tag_ids": [vip.id]},
                    {"kind": "event", "type": "page.view", "op": "at_least", "value": 3, "window": {"last_days": 30}},
                ]
            },
            {"not": {"kind": "order", "measure": "count", "op": "at_least", "value": 1}},
        ]
    }
    assert pool.members(definition) == {"sh", "viewer"}
    node = validate_definition(pool.db, workspace_id=pool.ws.id, raw=definition)
    counts = node_counts(pool.db, workspace_id=pool.ws.id, node=node, now=NOW)
    assert counts == {
        "$": 2,
        "$.all[0]": 2,
        "$.all[1]": 2,
        "$.all[1].any[0]": 1,
        "$.all[1].any[1]": 1,
        "$.all[2]": 4,
        "$.all[2].not": 0,
    }
    assert [n.path for n in walk(node)] == list(counts)
    matches = {
        label
        for label, c in pool.who.items()
        if customer_matches(pool.db, workspace_id=pool.ws.id, node=node, customer_id=c.id, now=NOW)
    }
    assert matches == {"sh", "viewer"}
    assert count_definition(pool.db, workspace_id=pool.ws.id, definition=definition, now=NOW) == 2
