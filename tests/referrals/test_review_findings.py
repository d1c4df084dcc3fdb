"""Review findings on the referrals core: the unlock ladder's edits, fission conditions, invite-task
reversal, the member's own device, failed rewards, review of orders and group stays, orders between the
scan and the add, coupon cost, and the rewards' referral index."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.loyalty.member_tasks.definitions import create_task
from siyu.loyalty.member_tasks.schemas import TaskIn
from siyu.models import (
    CouponKind,
    Customer,
    GroupMember,
    PointsEntry,
    Referral,
    ReferralReward,
    ReferralStatus,
    ReferralUnlock,
    ReferralVisit,
    RewardRole,
    TaskKind,
    VisitKind,
)
from siyu.referrals import attribution, fraud, metrics, programs
from siyu.referrals.errors import InvalidProgram
from siyu.referrals.schemas import ProgramPatch
from tests.commerce.coupons.factories import make_template
from tests.factories import make_group
from tests.referrals.factories import World, count, make_program


def _referral(db: Session, referee: Customer) -> Referral:
    found = db.scalar(select(Referral).where(Referral.referee_customer_id == referee.id))
    assert found is not None
    return found


def _patch(world: World, **values: object) -> None:
    programs.update_program(
        world.db,
        actor=world.actor,
        program_id=world.program.id,
        data=ProgramPatch.model_validate(values),
        clock=world.clock,
    )


# --- 1. the unlock ladder -------------------------------------------------------------------------


def test_an_unlock_taken_off_the_ladder_is_retired_and_never_paid_twice(db: Session, clock: FrozenClock) -> None:
    # given an unlock at 1 friend (50 points) that A has been paid
    world = World(db, clock, unlocks=[{"threshold": 1, "name": "铜牌", "reward": {"points": 50}}])
    alice = world.member()
    code = world.code(alice)
    world.invite(code)
    assert world.balance(alice) == 50
    # when the operator removes the unlock, then adds the same threshold back, and A brings another friend
    _patch(world, unlocks=[])
    retired = [
        (u.id, u.threshold, u.retired_at) for u in programs.unlocks_of(db, world.program.id, include_retired=True)
    ]
    ladder_without = programs.unlocks_of(db, world.program.id)
    _patch(world, unlocks=[{"threshold": 1, "name": "铜牌", "reward": {"points": 50}}])
    clock.advance(timedelta(minutes=5))
    world.invite(code)
    # then the paid unlock was retired (kept with its reward), revived, and its reward paid only once
    assert ladder_without == []
    assert [(t, at) for _id, t, at in retired] == [(1, clock.now() - timedelta(minutes=5))]
    assert count(db, ReferralUnlock, ReferralUnlock.program_id == world.program.id) == 1
    rewards = db.scalars(select(ReferralReward).where(ReferralReward.role == RewardRole.UNLOCK)).all()
    assert [(r.idempotency_key, r.unlock_id, r.reversed_at) for r in rewards] == [
        (f"unlock:{world.program.id}:1:{alice.id}", retired[0][0], None)
    ]
    assert world.balance(alice) == 50


def test_an_unlock_nobody_reached_is_deleted(db: Session, clock: FrozenClock) -> None:
    # given unlocks at 1 and 5; A reached only 1
    world = World(
        db,
        clock,
        unlocks=[
            {"threshold": 1, "name": "铜牌", "reward": {"points": 50}},
            {"threshold": 5, "name": "金牌", "reward": {"points": 500}},
        ],
    )
    world.invite(world.code(world.member()))
    # when both are removed
    _patch(world, unlocks=[])
    # then the unpaid one is gone, the paid one retired
    left = programs.unlocks_of(db, world.program.id, include_retired=True)
    assert [(u.threshold, u.retired_at is not None) for u in left] == [(1, True)]


# --- 2. fission conditions ------------------------------------------------------------------------


def test_fission_kinds_get_their_condition_and_refuse_another(db: Session, clock: FrozenClock) -> None:
    # given a workspace with a group
    world = World(db, clock)
    group = make_group(db, workspace=world.ws, clock=clock)
    # when a 群裂变 and a 任务宝 are created without a condition
    grouped = make_program(db, actor=world.actor, clock=clock, kind="group_fission", group_id=group.id, target_count=3)
    tasked = make_program(db, actor=world.actor, clock=clock, kind="task_fission", target_count=3)
    # then each has its kind's condition
    assert (str(grouped.condition), str(tasked.condition)) == ("joined_group", "added_staff")
    # and a different explicit condition, on create or on change, is refused naming the field
    for kind, condition in (("group_fission", "first_order"), ("task_fission", "joined_group")):
        with pytest.raises(InvalidProgram) as refused:
            make_program(
                db,
                actor=world.actor,
                clock=clock,
                kind=kind,
                condition=condition,
                group_id=group.id,
                target_count=3,
            )
        assert refused.value.details == {"field": "condition"}
    with pytest.raises(InvalidProgram) as changed:
        programs.update_program(
            db,
            actor=world.actor,
            program_id=tasked.id,
            data=ProgramPatch.model_validate({"condition": "first_order"}),
            clock=clock,
        )
    assert changed.value.details == {"field": "condition"}


# --- 3. invite task points ------------------------------------------------------------------------


def test_a_refund_takes_back_the_invite_task_points(db: Session, clock: FrozenClock) -> None:
    # given an invite task worth 5 points and a first-order program paying A 100 points
    world = World(db, clock, condition="first_order", referrer_reward={"points": 100})
    create_task(
        db,
        actor=world.actor,
        data=TaskIn(key="invite", kind=TaskKind.INVITE, name="邀请好友", points=5, limit_count=10),
        clock=clock,
    )
    alice = world.member()
    start = world.balance(alice)
    bob = world.invite(world.code(alice)).customer
    order = world.order(bob)
    assert world.balance(alice) == start + 105
    # when B's order is fully refunded
    world.refund(order, order.total_fen)
    # then A is back where she started, the task points reversed under their own key
    referral = _referral(db, bob)
    assert (referral.status, world.balance(alice)) == (ReferralStatus.REVERSED, start)
    reversal = db.scalar(
        select(PointsEntry).where(PointsEntry.idempotency_key == f"referral:{referral.id}:task:reverse")
    )
    assert reversal is not None and reversal.amount == -5


# --- 4. the member's own device --------------------------------------------------------------------


def test_a_referee_on_the_device_the_referrer_viewed_their_page_from_is_rejected(
    db: Session, clock: FrozenClock
) -> None:
    # given A opened her referral page twice from device "dev-a" (never pressed 我已分享)
    world = World(db, clock)
    code = world.code(world.member())
    attribution.record_view(db, code=code, device_id="dev-a", clock=clock)
    attribution.record_view(db, code=code, device_id="dev-a", clock=clock)
    # when a "new" customer scans from that device and adds
    outcome = world.invite(code, device_id="dev-a")
    # then the referral is rejected for the shared device; the view was kept once and counts nowhere
    referral = _referral(db, outcome.customer)
    assert (referral.status, referral.reason) == (ReferralStatus.REJECTED, "shared_device")
    assert count(db, ReferralVisit, ReferralVisit.kind == VisitKind.VIEW) == 1
    assert (code.shares_count, code.visits_count) == (0, 1)


# --- 5 and 13. failed rewards, coupon cost ---------------------------------------------------------


def test_a_reward_that_could_not_be_issued_is_failed_then_retried(db: Session, clock: FrozenClock) -> None:
    # given an unlock at 1 friend giving a ¥20 coupon whose stock is used up
    probe = World(db, clock)
    template = make_template(db, workspace=probe.ws, clock=clock, value=2_000, total_stock=0)
    program = make_program(
        db,
        actor=probe.actor,
        clock=clock,
        live_code_id=probe.live_code.id,
        unlocks=[{"threshold": 1, "name": "券", "reward": {"coupon_template_id": template.id}}],
    )
    alice = probe.member()
    code = probe.code(alice, program)
    # when A brings a friend, then the stock is refilled and A brings another
    probe.invite(code)
    failed = db.scalars(select(ReferralReward).where(ReferralReward.customer_id == alice.id)).one()
    template.total_stock = 5
    clock.advance(timedelta(minutes=1))
    probe.invite(code)
    # then the first attempt is failed (no coupon, no cost), the retry issued under the next key
    rows = db.scalars(
        select(ReferralReward).where(ReferralReward.customer_id == alice.id).order_by(ReferralReward.id)
    ).all()
    assert [(r.idempotency_key, r.failed_at is not None, r.coupon_id is not None, r.cost_fen) for r in rows] == [
        (f"unlock:{program.id}:1:{alice.id}", True, False, 0),
        (f"unlock:{program.id}:1:{alice.id}:2", False, True, 2_000),
    ]
    assert failed.note is not None and failed.note.startswith("not issued:")
    today = clock.now().date()
    result = metrics.program_metrics(db, actor=probe.actor, program_id=program.id, start=today, end=today)
    assert result.totals.cost_fen == 2_000


def test_a_percent_off_coupon_costs_its_cap(db: Session, clock: FrozenClock) -> None:
    # given referee rewards of 15% off capped at ¥30, and 15% off without a cap
    probe = World(db, clock)
    capped = make_template(
        db, workspace=probe.ws, clock=clock, kind=CouponKind.PERCENT_OFF, value=15, max_discount_fen=3_000
    )
    uncapped = make_template(db, workspace=probe.ws, clock=clock, kind=CouponKind.PERCENT_OFF, value=15)
    costs = []
    for template in (capped, uncapped):
        program = make_program(
            db,
            actor=probe.actor,
            clock=clock,
            live_code_id=probe.live_code.id,
            referee_reward={"coupon_template_id": template.id},
        )
        # when a friend comes through a member's link
        bob = probe.invite(probe.code(probe.member(), program)).customer
        reward = db.scalars(select(ReferralReward).where(ReferralReward.customer_id == bob.id)).one()
        costs.append(reward.cost_fen)
    # then the capped coupon costs its cap, the uncapped one 0 (unknown)
    assert costs == [3_000, 0]


# --- 6. review ------------------------------------------------------------------------------------


def _flagged(world: World, n: int) -> list[Customer]:
    """`n` flagged referees of one member (a burst threshold of 2: all but the first are flagged)."""
    code = world.code(world.member())
    referees = [world.invite(code).customer for _ in range(n + 1)][1:]
    assert [_referral(world.db, c).status for c in referees] == [ReferralStatus.FLAGGED] * n
    return referees


def test_approving_a_referral_whose_first_order_was_under_the_minimum_rejects_it(
    db: Session, clock: FrozenClock
) -> None:
    # given a flagged referee in a ¥50-minimum program who then ordered ¥30
    world = World(db, clock, condition="first_order_over", min_order_fen=5_000, burst_threshold=2)
    (bob,) = _flagged(world, 1)
    world.order(bob, total_fen=3_000)
    # when a reviewer approves it
    referral = fraud.review(
        db, actor=world.actor, referral_id=_referral(db, bob).id, approve=True, note="", clock=clock
    )
    # then it is rejected as attribution would have done
    assert (referral.status, referral.reason) == (ReferralStatus.REJECTED, "first_order_below_minimum")


def test_approving_a_group_referral_needs_an_open_stay_begun_after_the_attribution(
    db: Session, clock: FrozenClock
) -> None:
    # given a joined-group program of group G and three flagged referees: B was in G before the
    # referral, C joined after it and left, D joined after it and stays
    world = World(db, clock)
    group = make_group(db, workspace=world.ws, clock=clock)
    world.program = make_program(
        db,
        actor=world.actor,
        clock=clock,
        live_code_id=world.live_code.id,
        condition="joined_group",
        group_id=group.id,
        burst_threshold=2,
    )
    bob, carol, dave = _flagged(world, 3)
    attributed = _referral(db, bob).attributed_at
    stays = [
        (bob, attributed - timedelta(days=1), None),
        (carol, attributed + timedelta(minutes=1), attributed + timedelta(minutes=2)),
        (dave, attributed + timedelta(minutes=1), None),
    ]
    for customer, joined, left in stays:
        db.add(
            GroupMember(
                workspace_id=world.ws.id, group_id=group.id, customer_id=customer.id, joined_at=joined, left_at=left
            )
        )
    db.flush()
    # when each is approved
    for customer in (bob, carol, dave):
        fraud.review(db, actor=world.actor, referral_id=_referral(db, customer).id, approve=True, note="", clock=clock)
    # then only D qualifies; B and C wait for a join
    assert [_referral(db, c).status for c in (bob, carol, dave)] == [
        ReferralStatus.PENDING,
        ReferralStatus.PENDING,
        ReferralStatus.QUALIFIED,
    ]


# --- 7. an order between the scan and the add -----------------------------------------------------


@pytest.mark.parametrize(
    ("program", "total_fen", "expected"),
    [
        ({"condition": "first_order"}, 3_000, (ReferralStatus.QUALIFIED, None, 100)),
        (
            {"condition": "first_order_over", "min_order_fen": 5_000},
            3_000,
            (ReferralStatus.REJECTED, "first_order_below_minimum", 0),
        ),
    ],
)
def test_a_referee_who_ordered_between_the_scan_and_the_add_is_decided_at_once(
    db: Session, clock: FrozenClock, program: dict[str, object], total_fen: int, expected: tuple[object, ...]
) -> None:
    # given B opened A's link, then (before adding the staff member) became a customer and ordered
    world = World(db, clock, referrer_reward={"points": 100}, **program)
    alice = world.member()
    code = world.code(alice)
    visit = attribution.record_visit(db, code=code, kind=VisitKind.SCAN, visitor_id="v-b", device_id=None, clock=clock)
    clock.advance(timedelta(minutes=10))
    bob = world.member()
    order = world.order(bob, total_fen=total_fen)
    clock.advance(timedelta(minutes=10))
    # when the add is attributed
    referral = attribution.attribute(
        db,
        workspace_id=world.ws.id,
        referee_customer_id=bob.id,
        code=code,
        visit=visit,
        is_new_customer=True,
        device_id=None,
        clock=clock,
    )
    # then the first order decides at once
    assert referral is not None
    assert (referral.status, referral.reason, world.balance(alice)) == expected
    if referral.status == ReferralStatus.QUALIFIED:
        assert referral.qualifying_order_id == order.id


# --- 12. index --------------------------------------------------------------------------------------


def test_rewards_are_indexed_by_referral(db: Session) -> None:
    # given the migrated schema, when the indexes of referral_rewards are read
    indexes = {i["name"]: i["column_names"] for i in inspect(db.connection()).get_indexes("referral_rewards")}
    # then rewards are found by referral
    assert indexes["ix_referral_rewards_referral"] == ["referral_id"]
