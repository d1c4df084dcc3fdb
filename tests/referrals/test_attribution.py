"""Attribution of live-code adds to referral links, and every fraud rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.models import Customer, Identity, Referral, ReferralStatus, ReferralVisit, VisitKind
from siyu.referrals import attribution, programs
from tests.factories import make_order, make_relationship
from tests.referrals.factories import World, count


def _referral(db: Session, referee: Customer) -> Referral | None:
    return db.scalar(select(Referral).where(Referral.referee_customer_id == referee.id))


def test_a_scan_then_an_add_attributes_the_new_customer(db: Session, clock: FrozenClock) -> None:
    # given member A's code in a running first-order program
    world = World(db, clock, condition="first_order", referrer_reward={"points": 100})
    alice = world.member(name="Alice")
    code = world.code(alice)
    # when visitor B opens A's link and adds the staff member through the live code
    outcome = world.invite(code, visitor="visitor-b", device_id="dev-b")
    # then B is referred by A, pending their first order, and the visit counts
    referral = _referral(db, outcome.customer)
    assert referral is not None
    assert (referral.referrer_customer_id, referral.status, referral.reason) == (alice.id, ReferralStatus.PENDING, None)
    visit = db.get(ReferralVisit, referral.visit_id)
    assert visit is not None and (visit.kind, visit.visitor_id, visit.device_id) == (
        VisitKind.SCAN,
        "visitor-b",
        "dev-b",
    )
    assert (code.visits_count, code.shares_count) == (1, 0)


def test_added_staff_condition_qualifies_at_attribution(db: Session, clock: FrozenClock) -> None:
    # given an added-staff program rewarding both sides
    world = World(db, clock, referrer_reward={"points": 50}, referee_reward={"points": 20})
    alice = world.member()
    # when B comes through A's link
    outcome = world.invite(world.code(alice))
    # then the referral qualifies at once and both sides have their points
    referral = _referral(db, outcome.customer)
    assert referral is not None and referral.status == ReferralStatus.QUALIFIED
    assert (world.balance(alice), world.balance(outcome.customer)) == (50, 20)


def test_a_visit_older_than_the_attribution_window_does_not_count(db: Session, clock: FrozenClock) -> None:
    # given B opened A's link 3 days ago in a 2-day program
    world = World(db, clock, attribution_days=2)
    code = world.code(world.member())
    attribution.record_visit(db, code=code, kind=VisitKind.SCAN, visitor_id="v-old", device_id=None, clock=clock)
    clock.advance(timedelta(days=3))
    # when B adds now
    outcome = world.add("v-old")
    # then nobody is credited
    assert _referral(db, outcome.customer) is None


def test_an_add_without_a_referral_scan_is_not_attributed(db: Session, clock: FrozenClock) -> None:
    # given a running program
    world = World(db, clock)
    world.code(world.member())
    # when someone adds through the live code without a referral link
    outcome = world.add("stranger")
    # then no referral exists
    assert count(db, Referral, Referral.workspace_id == world.ws.id) == 0
    assert outcome.is_new_customer


def test_first_valid_referral_wins(db: Session, clock: FrozenClock) -> None:
    # given B was attributed to A
    world = World(db, clock, condition="first_order")
    alice, carol = world.member(), world.member()
    outcome = world.invite(world.code(alice), visitor="v-b")
    # when B later opens C's link and the add is reported through C's code
    carol_code = world.code(carol)
    visit = attribution.record_visit(
        db, code=carol_code, kind=VisitKind.SCAN, visitor_id="v-b", device_id=None, clock=clock
    )
    again = attribution.attribute(
        db,
        workspace_id=world.ws.id,
        referee_customer_id=outcome.customer.id,
        code=carol_code,
        visit=visit,
        is_new_customer=True,
        device_id=None,
        clock=clock,
    )
    # then A keeps B; C gets nothing
    assert again is None
    referral = _referral(db, outcome.customer)
    assert referral is not None and referral.referrer_customer_id == alice.id
    assert count(db, Referral, Referral.workspace_id == world.ws.id) == 1


def test_a_repeated_add_report_makes_one_referral_and_one_reward(db: Session, clock: FrozenClock) -> None:
    # given B was attributed to A in an added-staff program paying 30 points
    world = World(db, clock, referrer_reward={"points": 30})
    alice = world.member()
    code = world.code(alice)
    outcome = world.invite(code, visitor="v-b")
    first = _referral(db, outcome.customer)
    # when the same attribution is reported again (a retried callback)
    visit = db.get(ReferralVisit, first.visit_id if first else None)
    again = attribution.attribute(
        db,
        workspace_id=world.ws.id,
        referee_customer_id=outcome.customer.id,
        code=code,
        visit=visit,
        is_new_customer=True,
        device_id=None,
        clock=clock,
    )
    # then it is the same referral, and A was paid once
    assert again is first
    assert count(db, Referral, Referral.workspace_id == world.ws.id) == 1
    assert world.balance(alice) == 30


def _attribute(world: World, code, referee: Customer, *, is_new: bool = True, device_id: str | None = None):  # type: ignore[no-untyped-def]
    visit = attribution.record_visit(
        world.db, code=code, kind=VisitKind.SCAN, visitor_id=f"v{referee.id}", device_id=device_id, clock=world.clock
    )
    return attribution.attribute(
        world.db,
        workspace_id=world.ws.id,
        referee_customer_id=referee.id,
        code=code,
        visit=visit,
        is_new_customer=is_new,
        device_id=None,
        clock=world.clock,
    )


def test_self_referral_is_rejected(db: Session, clock: FrozenClock) -> None:
    # given member A
    world = World(db, clock, referrer_reward={"points": 30})
    alice = world.member()
    # when A's own add is attributed to A's code
    referral = _attribute(world, world.code(alice), alice)
    # then it is rejected as a self-referral and nothing is paid
    assert referral is not None and (referral.status, referral.reason) == (ReferralStatus.REJECTED, "self_referral")
    assert world.balance(alice) == 0


def test_a_referee_sharing_the_referrers_phone_is_rejected(db: Session, clock: FrozenClock) -> None:
    # given A and a "new" customer B with the same phone on record
    world = World(db, clock, referrer_reward={"points": 30})
    alice = world.member(phone="13800138000")
    bob = world.member(name="Bob", identities=[("taobao", "bob-nick")])
    bob.phone = alice.phone
    # when B is attributed to A
    referral = _attribute(world, world.code(alice), bob)
    # then it is rejected for the shared identity
    assert referral is not None and (referral.status, referral.reason) == (ReferralStatus.REJECTED, "shared_identity")


def test_a_referee_sharing_an_external_id_with_the_referrer_is_rejected(db: Session, clock: FrozenClock) -> None:
    # given A and B hold the same (unmerged) external id
    world = World(db, clock)
    alice = world.member()
    bob = world.member()
    db.add(Identity(workspace_id=world.ws.id, customer_id=alice.id, type="jd", value="pin-1", created_at=clock.now()))
    db.add(Identity(workspace_id=world.ws.id, customer_id=bob.id, type="jd", value="PIN-1", created_at=clock.now()))
    db.flush()
    # when B is attributed to A
    referral = _attribute(world, world.code(alice), bob)
    # then it is rejected
    assert referral is not None and (referral.status, referral.reason) == (ReferralStatus.REJECTED, "shared_identity")


def test_a_referee_on_the_device_the_referrer_shared_from_is_rejected(db: Session, clock: FrozenClock) -> None:
    # given A shared their poster from device "dev-a"
    world = World(db, clock)
    alice = world.member()
    code = world.code(alice)
    world.share(code, device_id="dev-a")
    # when a "new" customer scans from that same device and adds
    outcome = world.invite(code, device_id="dev-a")
    # then the referral is rejected for the shared device
    referral = _referral(db, outcome.customer)
    assert referral is not None and (referral.status, referral.reason) == (ReferralStatus.REJECTED, "shared_device")


def test_a_customer_who_is_not_new_is_rejected(db: Session, clock: FrozenClock) -> None:
    # given B was already a friend of the brand before the visit, and C ordered before it
    world = World(db, clock)
    alice = world.member()
    code = world.code(alice)
    bob, carol = world.member(), world.member()
    make_relationship(db, customer=bob, staff=world.staff, added_at=clock.now() - timedelta(days=30))
    make_order(db, customer=carol, paid_at=clock.now() - timedelta(days=5))
    # when each is attributed as new, and D is attributed with the add saying "not new"
    dave = world.member()
    results = [_attribute(world, code, c) for c in (bob, carol)] + [_attribute(world, code, dave, is_new=False)]
    # then all three are rejected as not new
    assert [(r.status, r.reason) for r in results if r is not None] == [
        (ReferralStatus.REJECTED, "not_new_customer")
    ] * 3


def test_the_daily_cap_resets_at_brand_local_midnight_within_one_utc_day(db: Session, clock: FrozenClock) -> None:
    # given a cap of 2 per day, at 15:30Z = 23:30 in Shanghai
    clock.set(datetime(2026, 11, 23, 15, 30, tzinfo=UTC))
    world = World(db, clock, daily_cap_per_referrer=2)
    code = world.code(world.member())
    # when two friends come, and a third an hour later (16:30Z: the same UTC day, the next Shanghai day)
    first_day = [world.invite(code).customer for _ in range(2)]
    clock.advance(timedelta(hours=1))
    third = world.invite(code).customer
    # then all three count: the cap is per brand-local day
    assert [_referral(db, c).status for c in [*first_day, third]] == [ReferralStatus.QUALIFIED] * 3  # type: ignore[union-attr]


def test_the_daily_cap_holds_across_utc_midnight_within_one_brand_local_day(db: Session, clock: FrozenClock) -> None:
    # given a cap of 2 per day, at 23:30Z = 07:30 in Shanghai
    clock.set(datetime(2026, 11, 23, 23, 30, tzinfo=UTC))
    world = World(db, clock, daily_cap_per_referrer=2)
    code = world.code(world.member())
    # when two friends come, and a third an hour later (00:30Z: the next UTC day, the same Shanghai day)
    first = [world.invite(code).customer for _ in range(2)]
    clock.advance(timedelta(hours=1))
    third = world.invite(code).customer
    # then the third is over the cap
    assert [(_referral(db, c).status, _referral(db, c).reason) for c in [*first, third]] == [  # type: ignore[union-attr]
        (ReferralStatus.QUALIFIED, None),
        (ReferralStatus.QUALIFIED, None),
        (ReferralStatus.REJECTED, "daily_cap"),
    ]


def test_a_burst_is_flagged_for_review(db: Session, clock: FrozenClock) -> None:
    # given a burst threshold of 3 referrals within 10 minutes, 40 points per referral
    world = World(db, clock, burst_threshold=3, burst_window_minutes=10, referrer_reward={"points": 40})
    alice = world.member()
    code = world.code(alice)
    # when three friends arrive within 4 minutes, and a fourth 20 minutes later
    referees = []
    for _ in range(3):
        referees.append(world.invite(code).customer)
        clock.advance(timedelta(minutes=2))
    clock.advance(timedelta(minutes=20))
    referees.append(world.invite(code).customer)
    # then the third is held for review and unpaid; the others count
    statuses = [_referral(db, c).status for c in referees]  # type: ignore[union-attr]
    assert statuses == [
        ReferralStatus.QUALIFIED,
        ReferralStatus.QUALIFIED,
        ReferralStatus.FLAGGED,
        ReferralStatus.QUALIFIED,
    ]
    assert _referral(db, referees[2]).reason == "burst"  # type: ignore[union-attr]
    assert world.balance(alice) == 120


def test_an_erased_referrer_or_a_paused_program_makes_no_referral(db: Session, clock: FrozenClock) -> None:
    # given A's code and B's code, then A is erased and B's program paused
    world = World(db, clock)
    alice = world.member()
    code_a = world.code(alice)
    other = World(db, clock)
    code_b = other.code(other.member())
    alice.erased_at = clock.now()
    programs.set_status(db, actor=other.actor, program_id=other.program.id, status="paused", clock=clock)
    # when friends come through both links
    first = world.invite(code_a).customer
    second = other.invite(code_b).customer
    # then nobody is referred
    assert (_referral(db, first), _referral(db, second)) == (None, None)
