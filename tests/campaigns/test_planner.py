"""Planning broadcasts: the policy per row, held sends, variants, resumption and cancellation."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.campaigns.broadcasts import planner
from siyu.campaigns.broadcasts.planner import run_planning
from siyu.campaigns.broadcasts.service import approve_broadcast, cancel_broadcast, submit_broadcast
from siyu.campaigns.broadcasts.tasks import dispatch
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput, PermissionDenied
from siyu.messaging import admission, policy
from siyu.messaging.planning import PlanSpec, Variant, plan_batch
from siyu.models import Broadcast, Delivery, Priority, Role, SandboxMessage, SegmentMember, TouchState, Workspace
from tests.factories import actor_for, make_customer, make_workspace
from tests.messaging.factories import make_account, make_broadcast, make_content, make_policy
from tests.segments.factories import make_segment


def _pool(db: Session, clock: FrozenClock, n: int) -> tuple[Workspace, list[int]]:
    workspace = make_workspace(db, clock=clock)
    actor = actor_for(workspace)
    return workspace, [make_customer(db, actor=actor, clock=clock, name=f"顾客{i}").customer.id for i in range(n)]


def _rows(db: Session, broadcast: Broadcast) -> list[Delivery]:
    db.expire_all()
    return list(db.scalars(select(Delivery).where(Delivery.source_id == broadcast.id).order_by(Delivery.customer_id)))


def _send(db: Session, database: Database, clock: FrozenClock, broadcast: Broadcast) -> None:
    submit_broadcast(
        db, actor=actor_for(db.get(Workspace, broadcast.workspace_id)), broadcast_id=broadcast.id, clock=clock
    )  # type: ignore[arg-type]
    db.commit()
    dispatch(database, clock)


def test_a_send_in_quiet_hours_waits_for_the_morning_and_counts_on_that_day(
    db: Session, database: Database, clock: FrozenClock
) -> None:
    # given 22:00 in Shanghai, quiet hours 21:00-09:00 and a per-day cap of 1
    clock.set(datetime(2026, 11, 23, 14, 0, tzinfo=UTC))
    workspace, ids = _pool(db, clock, 2)
    make_policy(db, workspace=workspace, clock=clock, caps={"all": {"day": 1}}, quiet_start="21:00", quiet_end="09:00")
    segment = make_segment(db, workspace=workspace, clock=clock, members=ids)
    account = make_account(db, workspace=workspace, clock=clock)
    broadcast = make_broadcast(
        db,
        workspace=workspace,
        clock=clock,
        segment_id=segment.id,
        accounts=[account],
        contents=[make_content(db, workspace=workspace, clock=clock)],
    )
    # when it is sent
    _send(db, database, clock, broadcast)
    # then nothing goes out at night; both are held until 09:00 local (01:00 UTC) and counted on the 24th
    morning = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
    assert [(r.status, r.not_before) for r in _rows(db, broadcast)] == [("queued", morning), ("queued", morning)]
    assert {s.customer_id: s.counts for s in db.scalars(select(TouchState))} == {
        cid: {"d2026-11-24": {"all": 1}} for cid in ids
    }
    clock.set(morning)
    dispatch(database, clock)
    assert [r.status for r in _rows(db, broadcast)] == ["sent", "sent"]
    assert db.get(Broadcast, broadcast.id).status == "done"  # type: ignore[union-attr]


def test_drop_mode_suppresses_sends_in_quiet_hours(db: Session, database: Database, clock: FrozenClock) -> None:
    clock.set(datetime(2026, 11, 23, 14, 0, tzinfo=UTC))
    workspace, ids = _pool(db, clock, 1)
    make_policy(db, workspace=workspace, clock=clock, quiet_start="21:00", quiet_end="09:00")
    segment = make_segment(db, workspace=workspace, clock=clock, members=ids)
    broadcast = make_broadcast(
        db,
        workspace=workspace,
        clock=clock,
        segment_id=segment.id,
        accounts=[make_account(db, workspace=workspace, clock=clock)],
        contents=[make_content(db, workspace=workspace, clock=clock)],
        quiet_hours="drop",
    )
    _send(db, database, clock, broadcast)
    assert [(r.status, r.reason) for r in _rows(db, broadcast)] == [("suppressed", "quiet_hours")]
    assert [s.counts for s in db.scalars(select(TouchState))] == [{}]  # nothing counted for a dropped send


def test_caps_and_dedup_hold_across_broadcasts_and_a_cancel_gives_slots_back(
    db: Session, database: Database, clock: FrozenClock
) -> None:
    # given a weekly cap of 2 and 7-day dedup; one content sent already
    workspace, ids = _pool(db, clock, 3)
    make_policy(db, workspace=workspace, clock=clock, caps={"all": {"week": 2}}, dedup_days=7)
    segment = make_segment(db, workspace=workspace, clock=clock, members=ids)
    account = make_account(db, workspace=workspace, clock=clock)
    same = make_content(db, workspace=workspace, clock=clock, body="双11 提前购")
    copy = make_content(db, workspace=workspace, clock=clock, body="双11 提前购", name="同文案另一份")
    other = make_content(db, workspace=workspace, clock=clock, body="会员日")
    third = make_content(db, workspace=workspace, clock=clock, body="售后关怀")
    first = make_broadcast(
        db, workspace=workspace, clock=clock, segment_id=segment.id, accounts=[account], contents=[same]
    )
    _send(db, database, clock, first)
    # when the same text (as another content item), then new content, then a third go out
    again = make_broadcast(
        db, workspace=workspace, clock=clock, segment_id=segment.id, accounts=[account], contents=[copy]
    )
    _send(db, database, clock, again)
    second = make_broadcast(
        db, workspace=workspace, clock=clock, segment_id=segment.id, accounts=[account], contents=[other]
    )
    _send(db, database, clock, second)
    over = make_broadcast(
        db, workspace=workspace, clock=clock, segment_id=segment.id, accounts=[account], contents=[third]
    )
    _send(db, database, clock, over)
    # then the copy is a duplicate, the second fits the cap, the third is capped
    assert Counter((r.status, r.reason) for r in _rows(db, again)) == {("suppressed", "duplicate"): 3}
    assert Counter(r.status for r in _rows(db, second)) == {"sent": 3}
    assert Counter((r.status, r.reason) for r in _rows(db, over)) == {("suppressed", "capped"): 3}
    assert len(db.scalars(select(SandboxMessage)).all()) == 6


def test_cancelling_a_held_broadcast_suppresses_it_and_returns_its_cap_slots(
    db: Session, database: Database, clock: FrozenClock
) -> None:
    clock.set(datetime(2026, 11, 23, 14, 0, tzinfo=UTC))  # 22:00 local: held
    workspace, ids = _pool(db, clock, 2)
    make_policy(db, workspace=workspace, clock=clock, caps={"all": {"day": 1}}, quiet_start="21:00", quiet_end="09:00")
    segment = make_segment(db, workspace=workspace, clock=clock, members=ids)
    broadcast = make_broadcast(
        db,
        workspace=workspace,
        clock=clock,
        segment_id=segment.id,
        accounts=[make_account(db, workspace=workspace, clock=clock)],
        contents=[make_content(db, workspace=workspace, clock=clock)],
    )
    _send(db, database, clock, broadcast)
    cancel_broadcast(db, actor=actor_for(workspace), broadcast_id=broadcast.id, clock=clock)
    db.commit()
    assert [(r.status, r.reason) for r in _rows(db, broadcast)] == [("suppressed", "cancelled")] * 2
    assert {s.customer_id: s.counts for s in db.scalars(select(TouchState))} == {cid: {} for cid in ids}
    assert db.get(Broadcast, broadcast.id).status == "cancelled"  # type: ignore[union-attr]


def test_variants_split_by_weight_and_a_replan_picks_the_same(db: Session, clock: FrozenClock) -> None:
    workspace, ids = _pool(db, clock, 200)
    account = make_account(db, workspace=workspace, clock=clock)
    a, b = (make_content(db, workspace=workspace, clock=clock, body=text) for text in ("甲", "乙"))
    spec = PlanSpec(
        source="test",
        source_id=1,
        step="",
        accounts=[account],
        variants=[Variant("A", a.id, "ha", 80), Variant("B", b.id, "hb", 20)],
        send_at=clock.now(),
        salt="s",
    )
    plan_batch(db, workspace.id, spec, ids, clock)
    again = plan_batch(db, workspace.id, spec, ids, clock)
    rows = db.scalars(select(Delivery).where(Delivery.source == "test")).all()
    split = Counter(r.variant for r in rows)
    assert len(rows) == 200 and again.inserted == 0
    assert 140 <= split["A"] <= 180 and split["A"] + split["B"] == 200


def test_transactional_messages_pass_a_full_cap_and_are_claimed_first(
    db: Session, database: Database, clock: FrozenClock
) -> None:
    workspace, ids = _pool(db, clock, 1)
    make_policy(db, workspace=workspace, clock=clock, caps={"all": {"day": 1}})
    account = make_account(db, workspace=workspace, clock=clock)

    def spec(source: str, priority: Priority) -> PlanSpec:
        return PlanSpec(
            source=source,
            source_id=1,
            step="",
            accounts=[account],
            variants=[Variant("A", _content_id, source)],
            send_at=clock.now(),
            priority=int(priority),
        )

    _content_id = make_content(db, workspace=workspace, clock=clock).id
    plan_batch(db, workspace.id, spec("marketing", Priority.MARKETING), ids, clock)
    capped = plan_batch(db, workspace.id, spec("marketing2", Priority.MARKETING), ids, clock)
    urgent = plan_batch(db, workspace.id, spec("transactional", Priority.TRANSACTIONAL), ids, clock)
    db.commit()
    assert dict(capped.by_reason) == {"capped": 1} and dict(urgent.by_status) == {"queued": 1}
    from siyu.messaging.sending import send_due

    send_due(database, clock, limit=1)
    db.expire_all()
    sent = db.scalars(select(Delivery).where(Delivery.status == "sent")).all()
    assert [d.source for d in sent] == ["transactional"]


def test_planning_resumes_after_the_last_committed_batch(
    db: Session, database: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a 10-member broadcast planned in batches of 3, and a planner that dies in the third batch
    workspace, ids = _pool(db, clock, 10)
    segment = make_segment(db, workspace=workspace, clock=clock, members=ids)
    broadcast = make_broadcast(
        db,
        workspace=workspace,
        clock=clock,
        segment_id=segment.id,
        accounts=[make_account(db, workspace=workspace, clock=clock)],
        contents=[make_content(db, workspace=workspace, clock=clock)],
    )
    broadcast.status = "scheduled"
    db.commit()
    calls = {"n": 0}
    real = planner.plan_batch

    def dying(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(planner, "plan_batch", dying)
    # The test database shares one connection, so the streaming read must not wrap the batch
    # transactions (in production it is a connection of its own): read the ids up front.
    monkeypatch.setattr(
        planner,
        "_member_batches",
        lambda _db, _segment, after, _at, size: iter([ids[i : i + size] for i in range(0, 10, size) if ids[i] > after]),
    )
    with pytest.raises(RuntimeError):
        run_planning(database, workspace.id, broadcast.id, clock, batch_size=3)
    db.expire_all()
    assert (len(_rows(db, broadcast)), db.get(Broadcast, broadcast.id).planned_through) == (6, ids[5])  # type: ignore[union-attr]
    # when it runs again
    monkeypatch.setattr(planner, "plan_batch", real)
    run_planning(database, workspace.id, broadcast.id, clock, batch_size=3)
    # then every member has exactly one row and the broadcast moves on to sending
    rows = _rows(db, broadcast)
    assert [r.customer_id for r in rows] == ids
    assert db.get(Broadcast, broadcast.id).status == "sending"  # type: ignore[union-attr]


def test_large_audiences_wait_for_an_admin(db: Session, database: Database, clock: FrozenClock) -> None:
    workspace, ids = _pool(db, clock, 3)
    make_policy(db, workspace=workspace, clock=clock, approval_threshold=2)
    segment = make_segment(db, workspace=workspace, clock=clock, members=ids)
    broadcast = make_broadcast(
        db,
        workspace=workspace,
        clock=clock,
        segment_id=segment.id,
        accounts=[make_account(db, workspace=workspace, clock=clock)],
        contents=[make_content(db, workspace=workspace, clock=clock)],
    )
    operator = actor_for(workspace, role=Role.OPERATOR)
    submitted = submit_broadcast(db, actor=operator, broadcast_id=broadcast.id, clock=clock)
    assert (submitted.status, submitted.audience_size) == ("pending_approval", 3)
    with pytest.raises(PermissionDenied):
        approve_broadcast(db, actor=operator, broadcast_id=broadcast.id, clock=clock)
    approved = approve_broadcast(db, actor=actor_for(workspace), broadcast_id=broadcast.id, clock=clock)
    assert (approved.status, approved.approved_by) == ("scheduled", "admin@test")
    db.commit()
    dispatch(database, clock)
    assert Counter(r.status for r in _rows(db, broadcast)) == {"sent": 3}


def test_an_empty_segment_cannot_be_submitted(db: Session, clock: FrozenClock) -> None:
    workspace, _ids = _pool(db, clock, 0)
    segment = make_segment(db, workspace=workspace, clock=clock, members=[])
    broadcast = make_broadcast(
        db,
        workspace=workspace,
        clock=clock,
        segment_id=segment.id,
        accounts=[make_account(db, workspace=workspace, clock=clock)],
        contents=[make_content(db, workspace=workspace, clock=clock)],
    )
    with pytest.raises(InvalidInput) as caught:
        submit_broadcast(db, actor=actor_for(workspace), broadcast_id=broadcast.id, clock=clock)
    assert caught.value.details == {"field": "segment_id"}
    assert db.get(Broadcast, broadcast.id).status == "draft"  # type: ignore[union-attr]


def test_a_variable_that_does_not_resolve_fails_only_that_delivery(
    db: Session, database: Database, clock: FrozenClock
) -> None:
    workspace = make_workspace(db, clock=clock)
    actor = actor_for(workspace)
    named = make_customer(db, actor=actor, clock=clock, name="王芳").customer
    nameless = make_customer(db, actor=actor, clock=clock).customer
    segment = make_segment(db, workspace=workspace, clock=clock, members=[named.id, nameless.id])
    broadcast = make_broadcast(
        db,
        workspace=workspace,
        clock=clock,
        segment_id=segment.id,
        accounts=[make_account(db, workspace=workspace, clock=clock)],
        contents=[make_content(db, workspace=workspace, clock=clock, body="{{ name }}，您好")],
    )
    _send(db, database, clock, broadcast)
    rows = {r.customer_id: r for r in _rows(db, broadcast)}
    assert (rows[named.id].status, rows[named.id].message["text"]) == ("sent", "王芳，您好")  # type: ignore[index]
    assert (rows[nameless.id].status, rows[nameless.id].reason) == ("failed", "unresolved_variable")
    assert rows[nameless.id].error == "body: 'name' is undefined"
    assert {s.customer_id: s.counts for s in db.scalars(select(TouchState))}[nameless.id] == {}  # slot given back


def test_an_sms_cap_counts_both_providers_together(db: Session, clock: FrozenClock) -> None:
    workspace, _ids = _pool(db, clock, 0)
    make_policy(db, workspace=workspace, clock=clock, caps={"sms": {"week": 1}})
    config = admission.load_config(db, workspace.id)
    counts: dict[str, Any] = {}
    requests = [
        policy.Request(channel=kind, priority=int(Priority.MARKETING), send_at=clock.now(), content_hash=None)
        for kind in ("sms_aliyun", "sms_tencent", "email")
    ]
    decisions = [policy.decide(config, counts, {}, r) for r in requests]
    assert [(d.admitted, d.reason) for d in decisions] == [(True, None), (False, "capped"), (True, None)]
    assert counts == {"w2026-48": {"sms": 1}}


def test_a_scheduled_broadcast_whose_segment_grew_past_the_threshold_waits_for_approval(
    db: Session, database: Database, clock: FrozenClock
) -> None:
    # given a broadcast of 2 submitted under a threshold of 2, whose static list then grows to 3
    workspace, ids = _pool(db, clock, 3)
    make_policy(db, workspace=workspace, clock=clock, approval_threshold=2)
    segment = make_segment(db, workspace=workspace, clock=clock, members=ids[:2])
    broadcast = make_broadcast(
        db,
        workspace=workspace,
        clock=clock,
        segment_id=segment.id,
        accounts=[make_account(db, workspace=workspace, clock=clock)],
        contents=[make_content(db, workspace=workspace, clock=clock)],
        scheduled_at=datetime(2026, 11, 24, 12, 0, tzinfo=UTC),
    )
    operator = actor_for(workspace, role=Role.OPERATOR)
    assert submit_broadcast(db, actor=operator, broadcast_id=broadcast.id, clock=clock).status == "scheduled"
    db.add(SegmentMember(workspace_id=workspace.id, segment_id=segment.id, customer_id=ids[2], added_at=clock.now()))
    db.commit()
    # when its time comes
    clock.set(datetime(2026, 11, 24, 12, 0, tzinfo=UTC))
    dispatch(database, clock)
    # then nothing is planned and it waits for an admin
    db.expire_all()
    waiting = db.get(Broadcast, broadcast.id)
    assert waiting is not None and (waiting.status, waiting.audience_size) == ("pending_approval", 3)
    assert _rows(db, broadcast) == []
