"""Inputs that once leaked a masked phone, overflowed PostgreSQL or crashed: each is now refused or harmless."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.customers.repository import customer_ids_for_identities
from siyu.kit.clock import FrozenClock
from siyu.models import Role, Segment, User, Workspace
from siyu.segments.definition import DefinitionError
from siyu.segments.query import count_definition
from siyu.segments.service.preview import preview_definition
from siyu.segments.validation import PiiConditionDenied
from tests.factories import actor_for, make_customer, make_workspace
from tests.segments.factories import make_attribute, make_event
from tests.web.conftest import login

PHONE_PREFIX = {"kind": "field", "field": "phone", "op": "starts_with", "value": "+86138"}


def test_without_pii_a_phone_may_be_tested_for_presence_only(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    make_customer(db, actor=Actor.system(ws.id), clock=clock, phone="13800138000", name="张三")
    analyst = actor_for(ws, role=Role.ANALYST)
    # a value test on the phone would reveal a masked number, digit by digit, through counts
    with pytest.raises(PiiConditionDenied) as refused:
        preview_definition(db, actor=analyst, definition={"all": [PHONE_PREFIX]}, clock=clock)
    assert refused.value.status_code == 403
    assert refused.value.details["path"] == "$.all[0].field"
    # presence is fine
    present = preview_definition(
        db, actor=analyst, definition={"kind": "field", "field": "phone", "op": "is_set"}, clock=clock
    )
    assert present.count == 1
    # and a role with customers:pii may test values
    admin = preview_definition(db, actor=actor_for(ws, role=Role.ADMIN), definition=PHONE_PREFIX, clock=clock)
    assert (admin.count, [c.name for c in admin.sample]) == (1, ["张三"])


def test_a_reader_without_customers_read_gets_counts_but_no_members(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    make_customer(db, actor=Actor.system(ws.id), clock=clock, city="上海", name="张三")
    reader = Actor(kind="token", workspace_id=ws.id, label="t", scopes=frozenset({"segments:read"}))
    result = preview_definition(
        db, actor=reader, definition={"kind": "field", "field": "city", "op": "eq", "value": "上海"}, clock=clock
    )
    assert (result.count, result.sample) == (1, [])


def test_numbers_too_large_for_a_float_count_as_unset_instead_of_failing(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    actor = Actor.system(ws.id)
    make_attribute(db, workspace=ws, key="visits", type="integer")
    huge = make_customer(db, actor=actor, clock=clock, attributes={"visits": 10**400}).customer
    small = make_customer(db, actor=actor, clock=clock, attributes={"visits": 7}).customer
    for customer in (huge, small):
        make_event(db, customer=customer, type="page.view", occurred_at=clock.now(), properties={"n": 10**400})
    make_event(db, customer=small, type="page.view", occurred_at=clock.now(), properties={"n": 9})
    visits = {"kind": "field", "field": "attributes.visits", "op": "gt", "value": 5}
    events = {
        "kind": "event",
        "type": "page.view",
        "where": [{"property": "n", "op": "gt", "value": 5}],
        "op": "at_least",
        "value": 1,
    }
    assert count_definition(db, workspace_id=ws.id, definition=visits, now=clock.now()) == 1
    assert count_definition(db, workspace_id=ws.id, definition=events, now=clock.now()) == 1


@pytest.mark.parametrize(
    ("definition", "path"),
    [
        ({"kind": "field", "field": "created_at", "op": "gt", "value": "9999-12-31"}, "$.value"),
        ({"kind": "field", "field": "birthday", "op": "lt", "value": "0001-01-01"}, "$.value"),
        ({"kind": "field", "field": "birthday", "op": "eq", "value": "2026-W01-1"}, "$.value"),
        ({"kind": "event", "type": "a.b", "measure": "first", "op": "before", "value": "9999-12-31"}, "$.value"),
        ({"kind": "order", "op": "at_least", "value": 1, "window": {"from": "0001-01-01"}}, "$.window.from"),
        ({"kind": "order", "measure": "total_fen", "op": "gt", "value": 10**400}, "$.value"),
    ],
)
def test_dates_and_numbers_that_would_overflow_later_are_refused_on_save(
    db: Session, clock: FrozenClock, definition: dict[str, object], path: str
) -> None:
    ws = make_workspace(db, clock=clock)
    with pytest.raises(DefinitionError) as refused:
        count_definition(db, workspace_id=ws.id, definition=definition, now=clock.now())
    assert refused.value.path == path


def test_console_json_nested_past_the_parser_stack_is_a_422(
    client: TestClient, workspace: Workspace, user_with_role: Callable[..., User], db: Session
) -> None:
    user = user_with_role(Role.OPERATOR)
    csrf = login(client, user.email)
    body = '{"definition": ' + '{"not": ' * 3000 + '{"kind": "tag", "tag_ids": [1]}' + "}" * 3001
    response = client.post(
        "/segments/preview.json", content=body, headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert db.scalar(select(func.count()).select_from(Segment)) == 0


def test_identity_lookups_beyond_sqlites_variable_limit_are_asked_in_slices(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    known = make_customer(db, actor=Actor.system(ws.id), clock=clock, phone="13800138000").customer
    pairs = [("taobao", f"tb-{n}") for n in range(260_000)] + [("phone", "+8613800138000")]
    found = customer_ids_for_identities(db, ws.id, pairs)
    assert found == {("phone", "+8613800138000"): known.id}


def test_an_archived_segment_cannot_be_tracked_again(db: Session, clock: FrozenClock) -> None:
    from siyu.kit.errors import InvalidInput
    from siyu.segments.service.crud import SegmentChanges, SegmentInput, archive_segment, create_segment, update_segment

    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    segment = create_segment(
        db, actor=actor, data=SegmentInput(name="s", definition={"kind": "relationship"}), clock=clock
    )
    archive_segment(db, actor=actor, segment_id=segment.id, clock=clock)
    with pytest.raises(InvalidInput):
        update_segment(db, actor=actor, segment_id=segment.id, changes=SegmentChanges(is_tracked=True), clock=clock)
    assert segment.is_tracked is False


def test_integer_attribute_lists_hold_values_beyond_32_bits(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    actor = Actor.system(ws.id)
    make_attribute(db, workspace=ws, key="visits", type="integer")
    big = make_customer(db, actor=actor, clock=clock, attributes={"visits": 2**40}).customer
    one = make_customer(db, actor=actor, clock=clock, attributes={"visits": 1}).customer
    other = make_customer(db, actor=actor, clock=clock, attributes={"visits": 3}).customer
    listed = {"kind": "field", "field": "attributes.visits", "op": "in", "value": [1, 2**40]}
    unlisted = {"kind": "field", "field": "attributes.visits", "op": "not_in", "value": [1, 2**40]}
    from siyu.segments.query import execute, members_select

    def ids(definition: dict[str, object]) -> set[int]:
        return set(
            execute(db, members_select(db, workspace_id=ws.id, definition=definition, now=clock.now())).scalars()
        )

    assert ids(listed) == {big.id, one.id}
    assert ids(unlisted) == {other.id}
