"""Validation of journey definitions: every error names its JSON path, and nothing is saved."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.campaigns.journeys.service import JourneyInput, create_journey, update_journey
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import Conflict, InvalidInput
from siyu.models import Journey
from tests.campaigns.journeys.factories import make_journey
from tests.factories import actor_for, make_tag, make_workspace
from tests.messaging.factories import make_account, make_content
from tests.segments.factories import make_segment

TRIGGER = {"type": "group_joined"}


def _error(db: Session, clock: FrozenClock, **parts: Any) -> tuple[str, str]:
    workspace = make_workspace(db, clock=clock)
    data = JourneyInput(name="欢迎", trigger=parts.pop("trigger", TRIGGER), steps=parts.pop("steps"), **parts)
    with pytest.raises(InvalidInput) as caught:
        create_journey(db, actor=actor_for(workspace), data=data, clock=clock)
    assert db.scalar(select(func.count()).select_from(Journey).where(Journey.workspace_id == workspace.id)) == 0
    return caught.value.details["path"], caught.value.message


@pytest.mark.parametrize(
    ("steps", "path", "words"),
    [
        ([], "$.steps", "at least one step"),
        ([{"id": "a", "type": "wait"}], "$.steps[0]", "needs days, hours or minutes"),
        ([{"id": "a", "type": "wait", "day": 3, "at": "24:00"}], "$.steps[0].at", "HH:MM"),
        ([{"id": "a", "type": "wait", "day": -1, "at": "20:00"}], "$.steps[0].day", "from 0 to 366"),
        ([{"id": "a", "type": "wait", "days": 1}, {"id": "a", "type": "exit"}], "$.steps[1].id", "duplicate"),
        ([{"id": "a b", "type": "exit"}], "$.steps[0].id", "letters, digits"),
        ([{"id": "a", "type": "teleport"}], "$.steps[0].type", "expected one of"),
        (
            [
                {"id": "a", "type": "exit"},
                {"id": "b", "type": "exit"},
                {"id": "c", "type": "branch", "condition": {"event_type": "page.view"}, "then": "nowhere"},
            ],
            "$.steps[2].then",
            "no step with id 'nowhere'",
        ),
        (
            [
                {"id": "a", "type": "exit"},
                {"id": "b", "type": "branch", "condition": {"event_type": "page.view"}, "else": "a"},
            ],
            "$.steps[1].else",
            "later step",
        ),
        (
            [{"id": "s", "type": "split", "arms": [{"key": "A"}, {"key": "B", "goto": "s"}]}],
            "$.steps[0].arms[1].goto",
            "later step",
        ),
        ([{"id": "c", "type": "coupon"}], "$.steps[0].template_id", "expected a positive integer id"),
        ([{"id": "t", "type": "tag", "tag_id": 999_999}], "$.steps[0].tag_id", "no tag with id 999999"),
        ([{"id": "s", "type": "send", "content_id": 999_999}], "$.steps[0].content_id", "no content"),
        ([{"id": "t", "type": "task"}], "$.steps[0].title", "required"),
        ([{"id": "w", "type": "wait", "days": 1, "colour": "red"}], "$.steps[0].colour", "unknown field"),
        ([{"id": "w", "type": "wait", "cycle": True}], "$.steps[0].cycle", "repurchase cycle"),
        ("not a list", "$.steps", "expected a list"),
    ],
)
def test_step_errors_name_their_path(db: Session, clock: FrozenClock, steps: Any, path: str, words: str) -> None:
    # when a journey with a broken step is saved, then the error points at the step's field
    found_path, message = _error(db, clock, steps=steps)
    assert found_path == path
    assert words in message


@pytest.mark.parametrize(
    ("trigger", "path", "words"),
    [
        ({"type": "points_expiring"}, "$.trigger.within_days", "expected a whole number"),
        ({"type": "tag_added"}, "$.trigger.tag_id", "positive integer"),
        ({"type": "inactive", "days": 0}, "$.trigger.days", "from 1 to 366"),
        ({"type": "segment_entered", "segment_id": 999_999}, "$.trigger.segment_id", "no segment"),
        ({"type": "product_ordered"}, "$.trigger.sku", "required"),
        ("group_joined", "$.trigger", "expected an object"),
    ],
)
def test_trigger_errors_name_their_path(db: Session, clock: FrozenClock, trigger: Any, path: str, words: str) -> None:
    found_path, message = _error(db, clock, trigger=trigger, steps=[{"id": "x", "type": "exit"}])
    assert (found_path, words in message) == (path, True)


def test_references_must_be_usable(db: Session, clock: FrozenClock) -> None:
    # given an untracked segment, content and no channel account
    workspace = make_workspace(db, clock=clock)
    actor = actor_for(workspace)
    segment = make_segment(db, workspace=workspace, clock=clock, members=[])
    item = make_content(db, workspace=workspace, clock=clock)
    tracked = JourneyInput(
        name="进入人群",
        trigger={"type": "segment_entered", "segment_id": segment.id},
        steps=[{"id": "x", "type": "exit"}],
    )
    send = JourneyInput(name="发送", trigger=TRIGGER, steps=[{"id": "s", "type": "send", "content_id": item.id}])
    bad_goal = JourneyInput(name="目标", trigger=TRIGGER, steps=[{"id": "x", "type": "exit"}], goal={"type": "click"})
    # then each is refused with its path
    for data, path in (
        (tracked, "$.trigger.segment_id"),
        (send, "$.steps[0].channel_account_ids"),
        (bad_goal, "$.goal.type"),
    ):
        with pytest.raises(InvalidInput) as caught:
            create_journey(db, actor=actor, data=data, clock=clock)
        assert caught.value.details["path"] == path


def test_a_valid_definition_is_stored_normalised(db: Session, clock: FrozenClock) -> None:
    # given content, an account and a tag
    workspace = make_workspace(db, clock=clock)
    account = make_account(db, workspace=workspace, clock=clock)
    item = make_content(db, workspace=workspace, clock=clock)
    tag = make_tag(db, workspace=workspace)
    # when a three-step journey is saved
    journey = make_journey(
        db,
        workspace=workspace,
        clock=clock,
        trigger={"type": "group_joined"},
        steps=[
            {"id": "w", "type": "wait", "days": 1},
            {"id": "s", "type": "send", "content_id": item.id},
            {"id": "t", "type": "tag", "tag_id": tag.id},
        ],
        goal={"type": "event", "event_type": "order.paid"},
        channel_account_ids=[account.id],
        active=False,
    )
    # then the stored steps are normalised (missing wait parts are zero)
    assert journey.steps == [
        {"id": "w", "type": "wait", "days": 1, "hours": 0, "minutes": 0},
        {"id": "s", "type": "send", "content_id": item.id},
        {"id": "t", "type": "tag", "tag_id": tag.id},
    ]
    assert (journey.status, journey.goal) == ("draft", {"type": "event", "event_type": "order.paid"})


def test_an_active_journey_must_be_paused_before_editing(db: Session, clock: FrozenClock) -> None:
    workspace = make_workspace(db, clock=clock)
    journey = make_journey(db, workspace=workspace, clock=clock, trigger=TRIGGER, steps=[{"id": "x", "type": "exit"}])
    data = JourneyInput(name="改", trigger=TRIGGER, steps=[{"id": "y", "type": "exit"}])
    with pytest.raises(Conflict):
        update_journey(db, actor=actor_for(workspace), journey_id=journey.id, data=data, clock=clock)
