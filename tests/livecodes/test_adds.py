"""Scan → route → add → tag → welcome → attribution, through the service that every add goes through."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.experiments.assignment import assign_variant
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import Conflict
from siyu.livecodes.adds import record_add, record_group_join, simulated_external_userid
from siyu.livecodes.scan import scan_code
from siyu.livecodes.state import decode_state
from siyu.models import CustomerEvent, CustomerTag, ExperimentExposure, LiveCodeScan, Relationship
from tests.community.groups.factories import seat
from tests.factories import (
    make_channel,
    make_experiment,
    make_group,
    make_live_code,
    make_staff,
    make_store,
    make_tag,
    make_workspace,
)

RNG = random.Random(3)


def test_the_whole_flow_attributes_tags_and_welcomes(db: Session, clock: FrozenClock) -> None:
    # given a package-card channel with a live code over one staff member, a tag and a welcome message
    ws = make_workspace(db, clock=clock)
    store = make_store(db, workspace=ws, name="上海静安店")
    staff = make_staff(db, workspace=ws, clock=clock, name="小林", store=store)
    channel = make_channel(db, workspace=ws, clock=clock, name="双11包裹卡", hook="免费小样")
    tag = make_tag(db, workspace=ws, name="包裹卡")
    code = make_live_code(
        db,
        workspace=ws,
        clock=clock,
        channel_id=channel.id,
        tag_ids=[tag.id],
        routes=[{"staff_id": staff.id}],
        welcome={
            "text": "{{ name }}您好，我是{{ store_name }}的{{ staff_name }}，{{ hook }}已为您预留~",
            "link": {"title": "领取小样", "url": "https://shop.example.com/sample"},
        },
    )
    # when a visitor scans and then adds
    result = scan_code(db, code, visitor_id="visitor-1", at=clock.now(), rng=RNG)
    assert result.scan is not None and result.state is not None
    clock.advance(timedelta(minutes=2))
    outcome = record_add(
        db,
        workspace_id=ws.id,
        staff_id=staff.id,
        external_userid=simulated_external_userid("visitor-1"),
        state=result.state,
        at=clock.now(),
        clock=clock,
        scan_id=result.scan.id,
        name="王小姐",
    )
    # then the relationship is attributed to the channel and code, the tag applied, the welcome rendered
    assert decode_state(result.state) is not None
    edge = outcome.relationship
    assert (edge.channel_id, edge.live_code_id, edge.live_code_state, edge.staff_id) == (
        channel.id,
        code.id,
        result.state,
        staff.id,
    )
    assert outcome.is_new_customer and not outcome.already_friends
    assert outcome.customer.first_channel == "双11包裹卡"
    assert db.scalars(select(CustomerTag.tag_id).where(CustomerTag.customer_id == outcome.customer.id)).all() == [
        tag.id
    ]
    assert outcome.welcome is not None
    assert outcome.welcome.text == "王小姐您好，我是上海静安店的小林，免费小样已为您预留~"
    assert outcome.welcome.link == {"title": "领取小样", "url": "https://shop.example.com/sample"}
    scan = db.get(LiveCodeScan, result.scan.id)
    assert scan is not None and (scan.customer_id, scan.added_at) == (outcome.customer.id, clock.now())
    types = db.scalars(
        select(CustomerEvent.type).where(CustomerEvent.customer_id == outcome.customer.id).order_by(CustomerEvent.id)
    ).all()
    assert types == ["relationship.added", "welcome.sent"]


def test_reporting_the_same_add_twice_changes_nothing(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    staff = make_staff(db, workspace=ws, clock=clock)
    tag = make_tag(db, workspace=ws)
    code = make_live_code(
        db, workspace=ws, clock=clock, tag_ids=[tag.id], routes=[{"staff_id": staff.id}], welcome={"text": "欢迎"}
    )
    result = scan_code(db, code, visitor_id="v", at=clock.now(), rng=RNG)
    args = {
        "workspace_id": ws.id,
        "staff_id": staff.id,
        "external_userid": "wmABC",
        "state": result.state,
        "at": clock.now(),
        "clock": clock,
    }
    first = record_add(db, **args)  # type: ignore[arg-type]
    second = record_add(db, **args)  # type: ignore[arg-type]
    assert second.already_friends and second.relationship.id == first.relationship.id
    assert second.welcome is None and second.tags_applied == []
    assert db.scalar(select(Relationship.id).where(Relationship.customer_id == first.customer.id).offset(1)) is None
    welcomes = db.scalars(select(CustomerEvent.id).where(CustomerEvent.type == "welcome.sent")).all()
    assert len(welcomes) == 1


def test_an_add_without_its_scan_claims_the_latest_matching_scan(db: Session, clock: FrozenClock) -> None:
    # given two scans routed to the same staff member (as WeCom reports adds with the state only)
    ws = make_workspace(db, clock=clock)
    staff = make_staff(db, workspace=ws, clock=clock)
    code = make_live_code(db, workspace=ws, clock=clock, routes=[{"staff_id": staff.id}], is_sticky=False)
    older = scan_code(db, code, visitor_id="v1", at=clock.now(), rng=RNG)
    clock.advance(timedelta(minutes=1))
    newer = scan_code(db, code, visitor_id="v2", at=clock.now(), rng=RNG)
    clock.advance(timedelta(minutes=1))
    # when the add arrives without a scan id
    outcome = record_add(
        db, workspace_id=ws.id, staff_id=staff.id, external_userid="wmX", state=newer.state, at=clock.now(), clock=clock
    )
    # then the most recent unclaimed scan is linked, the older one is not
    assert outcome.scan is not None and outcome.scan.id == newer.scan.id  # type: ignore[union-attr]
    assert db.get(LiveCodeScan, older.scan.id).customer_id is None  # type: ignore[union-attr]


def test_a_foreign_or_missing_state_still_records_the_add_unattributed(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    staff = make_staff(db, workspace=ws, clock=clock)
    for state in (None, "", "campaign-2025", "s" + "z" * 40):
        outcome = record_add(
            db,
            workspace_id=ws.id,
            staff_id=staff.id,
            external_userid=f"wm{len(state or '')}",
            state=state,
            at=clock.now(),
            clock=clock,
        )
        assert (outcome.relationship.channel_id, outcome.relationship.live_code_id, outcome.live_code) == (
            None,
            None,
            None,
        )


def test_experiment_arm_travels_in_the_state_and_converts(db: Session, clock: FrozenClock) -> None:
    # given a code splitting scans between two hooks
    ws = make_workspace(db, clock=clock)
    staff = make_staff(db, workspace=ws, clock=clock)
    channel = make_channel(db, workspace=ws, clock=clock, hook="默认钩子")
    experiment = make_experiment(db, workspace=ws, clock=clock, variants=[("A", 1), ("B", 1)])
    for variant in experiment_variants(db, experiment.id):
        variant.content = {"hook": f"钩子{variant.key}", "welcome_text": f"欢迎（方案{variant.key}）"}
    db.flush()
    code = make_live_code(
        db,
        workspace=ws,
        clock=clock,
        channel_id=channel.id,
        experiment_id=experiment.id,
        routes=[{"staff_id": staff.id}],
        welcome={"text": "默认欢迎语"},
    )
    # when a visitor scans and adds
    expected = assign_variant(experiment.id, "visitor-9", [("A", 1), ("B", 1)])
    result = scan_code(db, code, visitor_id="visitor-9", at=clock.now(), rng=RNG)
    outcome = record_add(
        db,
        workspace_id=ws.id,
        staff_id=staff.id,
        external_userid="wm9",
        state=result.state,
        at=clock.now(),
        clock=clock,
        scan_id=result.scan.id,
    )  # type: ignore[union-attr]
    # then the arm is in the state, the hook and welcome are the arm's, and the exposure converted
    assert result.variant is not None and result.variant.key == expected
    decoded = decode_state(result.state)
    assert decoded is not None and (decoded.live_code_id, decoded.channel_id, decoded.variant) == (
        code.id,
        channel.id,
        expected,
    )
    assert result.hook == f"钩子{expected}"
    assert outcome.welcome is not None and outcome.welcome.text == f"欢迎（方案{expected}）"
    assert outcome.relationship.variant == expected
    exposure = db.scalar(select(ExperimentExposure).where(ExperimentExposure.experiment_id == experiment.id))
    assert exposure is not None
    assert (exposure.variant_key, exposure.converted_at, exposure.customer_id) == (
        expected,
        clock.now(),
        outcome.customer.id,
    )


def experiment_variants(db: Session, experiment_id: int) -> list:  # type: ignore[type-arg]
    from siyu.experiments.assignment import variants_of

    return variants_of(db, experiment_id)


def test_group_code_fills_groups_in_order_and_never_past_the_limit(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    first = make_group(db, workspace=ws, clock=clock, name="福利1群", limit=2)
    seat(db, group=first, clock=clock, count=1)
    second = make_group(db, workspace=ws, clock=clock, name="福利2群", limit=2, members=0)
    code = make_live_code(
        db, workspace=ws, clock=clock, kind="group", routes=[{"group_id": first.id}, {"group_id": second.id}]
    )
    joined = []
    for n in range(4):
        result = scan_code(db, code, visitor_id=f"g{n}", at=clock.now(), rng=RNG)
        if result.scan is not None and result.scan.group_id is not None:
            joined.append(
                record_group_join(
                    db, code=code, scan=result.scan, external_userid=f"wmG{n}", at=clock.now(), clock=clock
                ).group.name
            )
        else:
            joined.append(result.outcome)
    assert joined == ["福利1群", "福利2群", "福利2群", "no_route"]
    assert (first.member_count, second.member_count) == (2, 2)


def test_a_seat_taken_meanwhile_is_refused(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    group = make_group(db, workspace=ws, clock=clock, limit=1)
    code = make_live_code(db, workspace=ws, clock=clock, kind="group", routes=[{"group_id": group.id}])
    a = scan_code(db, code, visitor_id="a", at=clock.now(), rng=RNG)
    b = scan_code(db, code, visitor_id="b", at=clock.now(), rng=RNG)
    record_group_join(db, code=code, scan=a.scan, external_userid="wmA", at=clock.now(), clock=clock)  # type: ignore[arg-type]
    with pytest.raises(Conflict):
        record_group_join(db, code=code, scan=b.scan, external_userid="wmB", at=clock.now(), clock=clock)  # type: ignore[arg-type]
    assert group.member_count == 1


def test_store_code_routes_to_the_chosen_store_only(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    jingan = make_store(db, workspace=ws, name="静安店")
    xuhui = make_store(db, workspace=ws, name="徐汇店")
    a = make_staff(db, workspace=ws, clock=clock, name="静安导购", store=jingan)
    b = make_staff(db, workspace=ws, clock=clock, name="徐汇导购", store=xuhui)
    code = make_live_code(db, workspace=ws, clock=clock, kind="store", routes=[{"staff_id": a.id}, {"staff_id": b.id}])
    # without a store the scanner is asked to choose, and no scan is recorded yet
    ask = scan_code(db, code, visitor_id="s1", at=clock.now(), rng=RNG)
    assert ask.outcome == "choose_store" and {s.name for s in ask.store_choices} == {"徐汇店", "静安店"}
    assert ask.scan is None
    for n in range(3):
        chosen = scan_code(db, code, visitor_id=f"s{n}", at=clock.now(), store_id=xuhui.id, rng=RNG)
        assert chosen.candidate is not None and chosen.candidate.staff is not None
        assert (chosen.candidate.staff.name, chosen.scan.store_id) == ("徐汇导购", xuhui.id)  # type: ignore[union-attr]


def test_deleted_and_expired_codes_answer_gone_but_count_the_scan(db: Session, clock: FrozenClock) -> None:
    from siyu.auth.permissions import Actor
    from siyu.livecodes.service import delete_live_code

    ws = make_workspace(db, clock=clock)
    staff = make_staff(db, workspace=ws, clock=clock)
    expiring = make_live_code(
        db, workspace=ws, clock=clock, routes=[{"staff_id": staff.id}], expires_at=clock.now() + timedelta(hours=1)
    )
    deleted = make_live_code(db, workspace=ws, clock=clock, routes=[{"staff_id": staff.id}])
    delete_live_code(db, actor=Actor.system(ws.id), code_id=deleted.id, clock=clock)
    assert scan_code(db, expiring, visitor_id="v", at=clock.now(), rng=RNG).outcome == "routed"
    clock.advance(timedelta(hours=1))
    assert scan_code(db, expiring, visitor_id="v", at=clock.now(), rng=RNG).outcome == "gone"
    assert scan_code(db, deleted, visitor_id="v", at=clock.now(), rng=RNG).outcome == "gone"


def test_joining_twice_with_one_scan_takes_one_seat(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    group = make_group(db, workspace=ws, clock=clock, limit=5)
    code = make_live_code(db, workspace=ws, clock=clock, kind="group", routes=[{"group_id": group.id}])
    scan = scan_code(db, code, visitor_id="twice", at=clock.now(), rng=RNG).scan
    assert scan is not None
    for _ in range(2):
        record_group_join(db, code=code, scan=scan, external_userid="wmTWICE", at=clock.now(), clock=clock)
    db.refresh(group)
    assert group.member_count == 1
