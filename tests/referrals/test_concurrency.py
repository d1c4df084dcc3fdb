"""Two threads attributing the same new customer at once: one referral, one reward (real commits)."""

from __future__ import annotations

from sqlalchemy import func, select

from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.models import Member, Referral, ReferralCode, ReferralReward, VisitKind
from siyu.referrals import attribution
from tests.concurrency import committed_database, run_together  # noqa: F401 - fixture `database`: real commits
from tests.factories import actor_for, make_customer, make_workspace
from tests.referrals.factories import make_program


def test_two_threads_attributing_one_referee_make_one_referral_and_one_reward(
    database: Database, clock: FrozenClock
) -> None:
    # given A's code in an added-staff program paying 50 points, and new customer B who scanned it
    with database.transaction() as session:
        ws = make_workspace(session, clock=clock)
        actor = actor_for(ws)
        program = make_program(session, actor=actor, clock=clock, referrer_reward={"points": 50})
        alice = make_customer(session, actor=actor, clock=clock).customer
        bob = make_customer(session, actor=actor, clock=clock).customer
        from siyu.referrals import codes

        code = codes.code_for(session, workspace_id=ws.id, program_id=program.id, customer_id=alice.id, clock=clock)
        visit = attribution.record_visit(
            session, code=code, kind=VisitKind.SCAN, visitor_id="v-b", device_id=None, clock=clock
        )
        ids = (ws.id, code.id, visit.id, alice.id, bob.id)
    ws_id, code_id, visit_id, alice_id, bob_id = ids

    def attribute() -> None:
        with database.transaction() as session:
            code = session.get(ReferralCode, code_id)
            assert code is not None
            from siyu.models import ReferralVisit

            attribution.attribute(
                session,
                workspace_id=ws_id,
                referee_customer_id=bob_id,
                code=code,
                visit=session.get(ReferralVisit, visit_id),
                is_new_customer=True,
                device_id=None,
                clock=clock,
            )

    # when two threads report the add at the same instant
    errors = run_together([attribute, attribute])
    # then one referral, one reward, 50 points
    assert errors == []
    with database.session() as session:
        referrals = session.scalar(select(func.count()).select_from(Referral).where(Referral.workspace_id == ws_id))
        rewards = session.scalar(
            select(func.count()).select_from(ReferralReward).where(ReferralReward.workspace_id == ws_id)
        )
        balance = session.scalar(select(Member.points_balance).where(Member.customer_id == alice_id))
    assert (referrals, rewards, balance) == (1, 1, 50)
