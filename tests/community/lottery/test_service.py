"""Draw set-up, entries (points, tasks, redemptions) and the draw itself, against the real database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.community.lottery import drawing, entries, fairness, service
from siyu.community.lottery.errors import DrawNotOpen, DrawStateConflict, EntryLimitReached, InvalidDraw
from siyu.community.lottery.tasks import draw_due
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import Conflict, NotFound, PermissionDenied
from siyu.loyalty.errors import InsufficientPoints
from siyu.loyalty.members import get_member
from siyu.loyalty.points.service import award_points
from siyu.loyalty.rewards.service import redeem
from siyu.models import (
    AuditEntry,
    Coupon,
    DrawMethod,
    DrawStatus,
    EntrySource,
    LotteryEntry,
    LotteryPrize,
    LotteryWin,
    PointsReason,
    RewardKind,
    Role,
    Workspace,
)
from tests.community.lottery.factories import make_draw
from tests.factories import actor_for, make_customer, make_workspace
from tests.loyalty.rewards.factories import make_coupon_template, make_reward
from tests.messaging.factories import make_account, make_content


@pytest.fixture
def workspace(db: Session, clock: FrozenClock) -> Workspace:
    return make_workspace(db, clock=clock)


def _customer(db: Session, workspace: Workspace, clock: FrozenClock, points: int = 0) -> int:
    customer_id = make_customer(db, actor=actor_for(workspace), clock=clock).customer.id
    if points:
        award_points(
            db,
            workspace_id=workspace.id,
            customer_id=customer_id,
            points=points,
            reason=PointsReason.MANUAL,
            description="测试",
            idempotency_key=f"seed:{customer_id}",
            clock=clock,
        )
    return customer_id


def _balance(db: Session, workspace: Workspace, customer_id: int) -> int:
    member = get_member(db, workspace_id=workspace.id, customer_id=customer_id)
    assert member is not None
    return member.points_balance


def _task_entry(db: Session, workspace: Workspace, draw_id: int, customer_id: int, clock: FrozenClock) -> LotteryEntry:
    return entries.enter(
        db,
        workspace_id=workspace.id,
        draw_id=draw_id,
        customer_id=customer_id,
        source=EntrySource.TASK,
        source_ref="task:share",
        idempotency_key=f"task:{draw_id}:{customer_id}",
        clock=clock,
    )


def test_open_publishes_the_commitment_of_a_secret_seed(db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    # given a draft draw
    draw = make_draw(db, actor=actor_for(workspace), clock=clock, is_open=False)
    assert draw.status == DrawStatus.DRAFT and draw.commitment is None
    # when it opens
    service.open_draw(db, actor=actor_for(workspace), draw_id=draw.id, clock=clock)
    # then a 32-byte seed exists and the commitment is sha256 of its hex
    assert draw.status == DrawStatus.OPEN
    assert draw.seed is not None and len(bytes.fromhex(draw.seed)) == 32
    assert draw.commitment == fairness.commitment_of(draw.seed)
    assert db.scalar(select(func.count()).where(AuditEntry.action == "lottery.opened")) == 1


def test_no_entries_before_open(db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    # given a draft draw
    draw = make_draw(db, actor=actor_for(workspace), clock=clock, is_open=False)
    customer_id = _customer(db, workspace, clock)
    # when a task entry is tried, then it is refused and nothing is written
    with pytest.raises(DrawNotOpen):
        _task_entry(db, workspace, draw.id, customer_id, clock)
    assert service.entry_count(db, draw.id) == 0


def test_entries_outside_the_dates_are_refused(db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    # given an open draw whose window starts tomorrow
    draw = make_draw(
        db,
        actor=actor_for(workspace),
        clock=clock,
        opens_at=clock.now() + timedelta(days=1),
        closes_at=clock.now() + timedelta(days=2),
    )
    customer_id = _customer(db, workspace, clock)
    # when / then
    with pytest.raises(DrawNotOpen):
        _task_entry(db, workspace, draw.id, customer_id, clock)


@pytest.mark.parametrize(
    ("method", "prize", "field"),
    [
        (DrawMethod.FIXED, {"name": "奖", "stock": 1, "winners": 2}, "prizes.0.winners"),
        (DrawMethod.FIXED, {"name": "奖", "stock": 1}, "prizes.0.winners"),
        (DrawMethod.PROBABILITY, {"name": "奖", "stock": 1}, "prizes.0.probability_ppm"),
        (
            DrawMethod.FIXED,
            {"name": "奖", "stock": 1, "winners": 1, "coupon_template_id": 999_999},
            "prizes.0.coupon_template_id",
        ),
    ],
)
def test_invalid_prizes_name_the_field(
    db: Session, clock: FrozenClock, workspace: Workspace, method: DrawMethod, prize: dict[str, object], field: str
) -> None:
    # when a draw with a bad prize is created, then the error names the field and nothing is written
    with pytest.raises(InvalidDraw) as caught:
        make_draw(db, actor=actor_for(workspace), clock=clock, method=method, prizes=[prize], is_open=False)
    assert caught.value.details == {"field": field}
    assert db.scalar(select(func.count()).where(LotteryPrize.workspace_id == workspace.id)) == 0


def test_probabilities_over_one_million_ppm_are_refused(db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    prizes = [
        {"name": "A", "stock": 5, "probability_ppm": 600_000},
        {"name": "B", "stock": 5, "probability_ppm": 400_001},
    ]
    with pytest.raises(InvalidDraw) as caught:
        make_draw(db, actor=actor_for(workspace), clock=clock, method=DrawMethod.PROBABILITY, prizes=prizes)
    assert caught.value.details == {"field": "prizes"}


def test_staff_without_growth_write_cannot_create(db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    with pytest.raises(PermissionDenied):
        make_draw(db, actor=actor_for(workspace, role=Role.STAFF), clock=clock)


def test_points_entry_spends_once_on_double_submit(db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    # given a draw costing 50 points and a member with 120
    draw = make_draw(db, actor=actor_for(workspace), clock=clock, entry_points=50, max_entries_per_member=3)
    customer_id = _customer(db, workspace, clock, points=120)
    # when the same form (n=1) is submitted twice
    first = entries.enter_with_points(
        db, workspace_id=workspace.id, draw_id=draw.id, customer_id=customer_id, n=1, clock=clock
    )
    again = entries.enter_with_points(
        db, workspace_id=workspace.id, draw_id=draw.id, customer_id=customer_id, n=1, clock=clock
    )
    # then one ticket, 50 points spent, key per the convention
    assert again.id == first.id
    assert first.ticket_no == 1
    assert first.idempotency_key == f"lottery:{draw.id}:{customer_id}:1"
    assert first.source == EntrySource.POINTS
    assert service.entry_count(db, draw.id) == 1
    assert _balance(db, workspace, customer_id) == 70


def test_points_entry_without_enough_points_writes_nothing(
    db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    draw = make_draw(db, actor=actor_for(workspace), clock=clock, entry_points=50)
    customer_id = _customer(db, workspace, clock, points=30)
    with pytest.raises(InsufficientPoints):
        entries.enter_with_points(
            db, workspace_id=workspace.id, draw_id=draw.id, customer_id=customer_id, n=1, clock=clock
        )
    assert service.entry_count(db, draw.id) == 0
    assert _balance(db, workspace, customer_id) == 30


def test_max_entries_per_member(db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    # given a draw allowing 2 entries per member
    draw = make_draw(db, actor=actor_for(workspace), clock=clock, entry_points=10, max_entries_per_member=2)
    customer_id = _customer(db, workspace, clock, points=100)
    for n in (1, 2):
        entries.enter_with_points(
            db, workspace_id=workspace.id, draw_id=draw.id, customer_id=customer_id, n=n, clock=clock
        )
    # when a third is tried, then it is refused and no points move
    with pytest.raises(EntryLimitReached):
        entries.enter_with_points(
            db, workspace_id=workspace.id, draw_id=draw.id, customer_id=customer_id, n=3, clock=clock
        )
    assert _balance(db, workspace, customer_id) == 80


def test_draw_not_enterable_by_points(db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    draw = make_draw(db, actor=actor_for(workspace), clock=clock)
    customer_id = _customer(db, workspace, clock, points=100)
    with pytest.raises(InvalidDraw):
        entries.enter_with_points(
            db, workspace_id=workspace.id, draw_id=draw.id, customer_id=customer_id, n=1, clock=clock
        )


def test_task_entries_are_idempotent_and_numbered(db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    draw = make_draw(db, actor=actor_for(workspace), clock=clock)
    a, b = _customer(db, workspace, clock), _customer(db, workspace, clock)
    first = _task_entry(db, workspace, draw.id, a, clock)
    assert _task_entry(db, workspace, draw.id, a, clock).id == first.id
    second = _task_entry(db, workspace, draw.id, b, clock)
    assert (first.ticket_no, second.ticket_no) == (1, 2)
    # the same key for another customer is a conflict
    with pytest.raises(Conflict):
        entries.enter(
            db,
            workspace_id=workspace.id,
            draw_id=draw.id,
            customer_id=b,
            source=EntrySource.TASK,
            source_ref=None,
            idempotency_key=first.idempotency_key,
            clock=clock,
        )


def test_unknown_customer_cannot_enter(db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    draw = make_draw(db, actor=actor_for(workspace), clock=clock)
    with pytest.raises(NotFound):
        _task_entry(db, workspace, draw.id, 999_999_999, clock)


def test_mall_redemption_enters_the_rewards_draw(db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    # given a LOTTERY_ENTRY reward pointing at an open draw, and a redemption of it
    draw = make_draw(db, actor=actor_for(workspace), clock=clock)
    reward = make_reward(db, workspace=workspace, clock=clock, kind=RewardKind.LOTTERY_ENTRY, lottery_draw_id=draw.id)
    customer_id = _customer(db, workspace, clock, points=500)
    redemption = redeem(
        db,
        workspace_id=workspace.id,
        customer_id=customer_id,
        reward_id=reward.id,
        idempotency_key="mall-1",
        address=None,
        clock=clock,
    )
    # when the redemption hook runs (twice)
    entry = entries.enter_for_redemption(db, redemption=redemption, reward=reward, clock=clock)
    again = entries.enter_for_redemption(db, redemption=redemption, reward=reward, clock=clock)
    # then one ticket from the redemption
    assert entry is not None and again is not None and again.id == entry.id
    assert (entry.customer_id, entry.source, entry.source_ref) == (
        customer_id,
        EntrySource.REDEMPTION,
        f"redemption:{redemption.id}",
    )


def test_fixed_draw_awards_points_and_coupons_and_reveals(
    db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    # given a fixed draw: 1 × 500 points, 2 × coupon; five entrants
    template = make_coupon_template(db, workspace=workspace, clock=clock)
    draw = make_draw(
        db,
        actor=actor_for(workspace),
        clock=clock,
        prizes=[
            {"name": "一等奖", "stock": 1, "winners": 1, "points": 500},
            {"name": "优惠券", "stock": 3, "winners": 2, "coupon_template_id": template.id},
        ],
    )
    people = [_customer(db, workspace, clock) for _ in range(5)]
    for customer_id in people:
        _task_entry(db, workspace, draw.id, customer_id, clock)
    # when drawn
    drawing.run_draw(db, actor=actor_for(workspace), draw_id=draw.id, clock=clock)
    # then three distinct winners, prizes counted, given, and the public data verifies
    wins = service.wins_of(db, draw.id)
    assert len(wins) == 3
    assert len({w.customer_id for w in wins}) == 3
    prizes = service.prizes_of(db, draw.id)
    assert [p.awarded_count for p in prizes] == [1, 2]
    first = next(w for w in wins if w.prize_id == prizes[0].id)
    assert first.points_entry_id is not None
    assert _balance(db, workspace, first.customer_id) == 500
    coupons = db.scalars(select(Coupon).where(Coupon.template_id == template.id)).all()
    assert len(coupons) == 2
    assert draw.status == DrawStatus.DRAWN
    assert draw.entries_digest == fairness.entries_digest(drawing.tickets_of(db, draw.id))
    public = drawing.public_draw(db, draw_id=draw.id)
    assert public is not None and public.is_verified is True
    # drawing again changes nothing
    drawing.run_draw(db, actor=actor_for(workspace), draw_id=draw.id, clock=clock)
    assert db.scalar(select(func.count()).where(LotteryWin.draw_id == draw.id)) == 3


def test_probability_draw_never_exceeds_stock(db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    # given a 100% prize with stock 2 and six entrants
    draw = make_draw(
        db,
        actor=actor_for(workspace),
        clock=clock,
        method=DrawMethod.PROBABILITY,
        prizes=[{"name": "必中", "stock": 2, "probability_ppm": 1_000_000, "points": 10}],
    )
    for _ in range(6):
        _task_entry(db, workspace, draw.id, _customer(db, workspace, clock), clock)
    # when drawn, then exactly the first two tickets win (each roll is below 100%)
    drawing.run_draw(db, actor=actor_for(workspace), draw_id=draw.id, clock=clock)
    wins = service.wins_of(db, draw.id)
    tickets = {e.id: e.ticket_no for e in entries.draw_entries(db, draw_id=draw.id)}
    assert sorted(tickets[w.entry_id] for w in wins) == [1, 2]
    assert service.prizes_of(db, draw.id)[0].awarded_count == 2


def test_database_refuses_awarded_count_over_stock(db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    draw = make_draw(db, actor=actor_for(workspace), clock=clock)
    prize = service.prizes_of(db, draw.id)[0]
    with pytest.raises(IntegrityError), db.begin_nested():
        db.execute(update(LotteryPrize).where(LotteryPrize.id == prize.id).values(awarded_count=prize.stock + 1))


def test_draft_or_cancelled_draw_cannot_be_drawn(db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    draw = make_draw(db, actor=actor_for(workspace), clock=clock, is_open=False)
    with pytest.raises(DrawStateConflict):
        drawing.run_draw(db, actor=actor_for(workspace), draw_id=draw.id, clock=clock)
    service.cancel_draw(db, actor=actor_for(workspace), draw_id=draw.id, clock=clock)
    with pytest.raises(DrawStateConflict):
        drawing.run_draw(db, actor=actor_for(workspace), draw_id=draw.id, clock=clock)
    assert drawing.public_draw(db, draw_id=draw.id) is not None


def test_open_draw_cannot_be_edited(db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    from siyu.community.lottery.schemas import DrawIn, PrizeIn

    draw = make_draw(db, actor=actor_for(workspace), clock=clock)
    data = DrawIn(name="改名", method=DrawMethod.FIXED, prizes=[PrizeIn(name="奖", stock=9, winners=9)])
    with pytest.raises(DrawStateConflict):
        service.update_draw(db, actor=actor_for(workspace), draw_id=draw.id, data=data, clock=clock)


def test_failed_notification_is_recorded_and_the_draw_completes(
    db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    # given a draw notifying through an account with marketing content (refused by the touch layer)
    account = make_account(db, workspace=workspace, clock=clock)
    content = make_content(db, workspace=workspace, clock=clock, is_marketing=True)
    draw = make_draw(
        db,
        actor=actor_for(workspace),
        clock=clock,
        notify_channel_account_id=account.id,
        notify_content_id=content.id,
    )
    _task_entry(db, workspace, draw.id, _customer(db, workspace, clock), clock)
    # when drawn
    drawing.run_draw(db, actor=actor_for(workspace), draw_id=draw.id, clock=clock)
    # then the win exists, its prize was given, and the failure is on the win
    (win,) = service.wins_of(db, draw.id)
    assert win.points_entry_id is not None
    assert win.delivery_id is None
    assert win.notify_error == "marketing content cannot be sent as a transactional message"


def test_winner_is_notified_through_the_draws_account(db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    account = make_account(db, workspace=workspace, clock=clock)
    content = make_content(db, workspace=workspace, clock=clock, body="恭喜中奖", is_marketing=False)
    draw = make_draw(
        db, actor=actor_for(workspace), clock=clock, notify_channel_account_id=account.id, notify_content_id=content.id
    )
    _task_entry(db, workspace, draw.id, _customer(db, workspace, clock), clock)
    drawing.run_draw(db, actor=actor_for(workspace), draw_id=draw.id, clock=clock)
    (win,) = service.wins_of(db, draw.id)
    assert win.notify_error is None
    assert win.delivery_id is not None


def test_due_draws_are_found_at_closes_at(db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    draw = make_draw(db, actor=actor_for(workspace), clock=clock, closes_at=clock.now() + timedelta(hours=1))
    assert drawing.due_draw_ids(db, workspace_id=workspace.id, clock=clock) == []
    clock.advance(timedelta(hours=1))
    assert drawing.due_draw_ids(db, workspace_id=workspace.id, clock=clock) == [draw.id]


def test_scheduled_job_draws_due_draws(
    db: Session, database: Database, clock: FrozenClock, workspace: Workspace
) -> None:
    # given an open draw closing in an hour, with one entry
    draw = make_draw(db, actor=actor_for(workspace), clock=clock, closes_at=clock.now() + timedelta(hours=1))
    _task_entry(db, workspace, draw.id, _customer(db, workspace, clock), clock)
    db.commit()
    # when the job runs before and after closes_at
    assert draw_due(database, clock, workspace_id=workspace.id) == {"drawn": 0, "failed": 0}
    clock.advance(timedelta(hours=1))
    assert draw_due(database, clock, workspace_id=workspace.id) == {"drawn": 1, "failed": 0}
    # then the draw is drawn once, with its winner
    db.refresh(draw)
    assert draw.status == DrawStatus.DRAWN
    assert len(service.wins_of(db, draw.id)) == 1
    assert draw_due(database, clock, workspace_id=workspace.id) == {"drawn": 0, "failed": 0}


def _redeem_ticket(db: Session, workspace: Workspace, clock: FrozenClock, *, price: int, points: int) -> tuple:
    """A LOTTERY_ENTRY reward (through the catalog) pointing at a fresh open draw, redeemed once."""
    from siyu.loyalty.rewards.catalog import create_reward
    from siyu.loyalty.rewards.schemas import RewardIn

    draw = make_draw(db, actor=actor_for(workspace), clock=clock, entry_points=10, max_entries_per_member=5)
    reward = create_reward(
        db,
        actor=actor_for(workspace),
        data=RewardIn(name="抽奖券", kind=RewardKind.LOTTERY_ENTRY, points_price=price, lottery_draw_id=draw.id),
        clock=clock,
    )
    customer_id = _customer(db, workspace, clock, points=points)
    redemption = redeem(
        db,
        workspace_id=workspace.id,
        customer_id=customer_id,
        reward_id=reward.id,
        idempotency_key="mall-ticket",
        address=None,
        clock=clock,
    )
    return draw, reward, customer_id, redemption


def _ticket_of(db: Session, redemption_id: int) -> LotteryEntry | None:
    return db.scalar(select(LotteryEntry).where(LotteryEntry.idempotency_key == f"redemption:{redemption_id}"))


def test_cancelling_a_redemption_withdraws_its_ticket_while_the_draw_is_open(
    db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    from siyu.loyalty.rewards.fulfilment import cancel_redemption

    # given a member with 500 points who redeemed a 120-point lottery-entry reward: one ticket
    draw, reward, customer_id, redemption = _redeem_ticket(db, workspace, clock, price=120, points=500)
    ticket = _ticket_of(db, redemption.id)
    assert ticket is not None and (ticket.draw_id, ticket.customer_id, ticket.ticket_no) == (draw.id, customer_id, 1)
    assert _balance(db, workspace, customer_id) == 380
    # when the redemption is cancelled while the draw is open
    cancel_redemption(db, actor=actor_for(workspace), redemption_id=redemption.id, reason="不要了", clock=clock)
    # then the ticket is gone and the 120 points are back
    assert _ticket_of(db, redemption.id) is None
    assert service.entry_count(db, draw.id) == 0
    assert _balance(db, workspace, customer_id) == 500
    assert str(redemption.status) == "cancelled"
    db.refresh(reward)
    assert reward.redeemed_count == 0


def test_a_redemption_whose_draw_was_drawn_cannot_be_cancelled(
    db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    from siyu.loyalty.rewards.fulfilment import cancel_redemption

    # given a redeemed ticket in a draw that has since been drawn (the ticket won 100 points)
    draw, reward, customer_id, redemption = _redeem_ticket(db, workspace, clock, price=120, points=500)
    drawing.run_draw(db, actor=actor_for(workspace), draw_id=draw.id, clock=clock)
    assert _balance(db, workspace, customer_id) == 480
    # when the redemption is cancelled, then it is refused (409) and nothing changes
    with pytest.raises(DrawNotOpen) as refused, db.begin_nested():
        cancel_redemption(db, actor=actor_for(workspace), redemption_id=redemption.id, reason=None, clock=clock)
    assert refused.value.status_code == 409
    db.refresh(redemption)
    db.refresh(reward)
    assert str(redemption.status) == "completed"
    assert reward.redeemed_count == 1
    ticket = _ticket_of(db, redemption.id)
    assert ticket is not None and ticket.ticket_no == 1
    assert _balance(db, workspace, customer_id) == 480
    public = drawing.public_draw(db, draw_id=draw.id)
    assert public is not None and public.is_verified is True


def test_cancelling_a_draw_gives_back_the_points_of_its_tickets(
    db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    # given a draw costing 30 points: 王 (200 points) bought two tickets with points and one through
    # a 120-point mall redemption; 李 (100 points) bought one; 张 got a free task ticket
    draw = make_draw(db, actor=actor_for(workspace), clock=clock, entry_points=30, max_entries_per_member=5)
    reward = make_reward(
        db, workspace=workspace, clock=clock, kind=RewardKind.LOTTERY_ENTRY, points_price=120, lottery_draw_id=draw.id
    )
    wang = _customer(db, workspace, clock, points=200)
    li = _customer(db, workspace, clock, points=100)
    zhang = _customer(db, workspace, clock)
    for n in (1, 2):
        entries.enter_with_points(db, workspace_id=workspace.id, draw_id=draw.id, customer_id=wang, n=n, clock=clock)
    redemption = redeem(
        db, workspace_id=workspace.id, customer_id=wang, reward_id=reward.id, idempotency_key="m", address=None,
        clock=clock,
    )  # fmt: skip
    entries.enter_with_points(db, workspace_id=workspace.id, draw_id=draw.id, customer_id=li, n=1, clock=clock)
    _task_entry(db, workspace, draw.id, zhang, clock)
    assert (_balance(db, workspace, wang), _balance(db, workspace, li)) == (20, 70)
    assert service.entry_count(db, draw.id) == 5
    # when the draw is cancelled (twice)
    service.cancel_draw(db, actor=actor_for(workspace), draw_id=draw.id, clock=clock)
    service.cancel_draw(db, actor=actor_for(workspace), draw_id=draw.id, clock=clock)
    # then every point spent on it is back, once; the entries stay recorded
    assert (_balance(db, workspace, wang), _balance(db, workspace, li)) == (200, 100)
    assert draw.status == DrawStatus.CANCELLED
    assert service.entry_count(db, draw.id) == 5
    audit = db.scalar(
        select(AuditEntry).where(AuditEntry.action == "lottery.cancelled", AuditEntry.entity_id == str(draw.id))
    )
    assert audit is not None and audit.after is not None and audit.after["points_refunded"] == 210
    # and the redemption cannot be cancelled for a second refund (its draw is no longer open)
    from siyu.loyalty.rewards.fulfilment import cancel_redemption

    with pytest.raises(DrawNotOpen), db.begin_nested():
        cancel_redemption(db, actor=actor_for(workspace), redemption_id=redemption.id, reason=None, clock=clock)
    assert _balance(db, workspace, wang) == 200


def test_a_draw_with_a_draw_time_cannot_be_drawn_by_hand_before_it(
    db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    # given an open draw closing in an hour, with an entry
    draw = make_draw(db, actor=actor_for(workspace), clock=clock, closes_at=clock.now() + timedelta(hours=1))
    _task_entry(db, workspace, draw.id, _customer(db, workspace, clock), clock)
    # when an operator draws it early, then 409 and it stays open
    with pytest.raises(DrawStateConflict) as refused:
        drawing.run_draw(db, actor=actor_for(workspace), draw_id=draw.id, clock=clock)
    assert refused.value.status_code == 409
    assert draw.status == DrawStatus.OPEN and service.wins_of(db, draw.id) == []
    # at closes_at it can be drawn
    clock.advance(timedelta(hours=1))
    assert drawing.run_draw(db, actor=actor_for(workspace), draw_id=draw.id, clock=clock).status == DrawStatus.DRAWN


def test_next_points_number_counts_only_points_tickets_uncapped(
    db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    # given a member with two points tickets and a task ticket in a draw
    draw = make_draw(db, actor=actor_for(workspace), clock=clock, entry_points=10, max_entries_per_member=5)
    customer_id = _customer(db, workspace, clock, points=100)
    assert entries.next_points_n(db, draw.id, customer_id) == 1
    _task_entry(db, workspace, draw.id, customer_id, clock)
    for n in (1, 2):
        entries.enter_with_points(
            db, workspace_id=workspace.id, draw_id=draw.id, customer_id=customer_id, n=n, clock=clock
        )
    # then the next points entry is n = 3 (the task ticket does not shift it)
    assert entries.next_points_n(db, draw.id, customer_id) == 3
