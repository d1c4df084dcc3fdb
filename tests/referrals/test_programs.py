"""Programs: validation of rules and references, status changes, codes and eligibility."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from siyu.auth.permissions import Role
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import PermissionDenied
from siyu.models import AuditEntry, ProgramStatus, ReferralProgram
from siyu.referrals import codes, programs
from siyu.referrals.errors import InvalidProgram, MemberNotFound, ProgramNotActive
from siyu.referrals.schemas import ProgramIn, ProgramPatch
from tests.commerce.coupons.factories import make_template
from tests.factories import actor_for, make_customer, make_workspace
from tests.referrals.factories import count, make_program


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"condition": "first_order_over"}, "min_order_fen"),
        ({"kind": "task_fission"}, "target_count"),
        ({"kind": "group_fission", "target_count": 3}, "group_id"),
        ({"referrer_reward": {"coupon_template_id": 999_999}}, "referrer_reward.coupon_template_id"),
        ({"referee_reward": {"reward_id": 999_999}}, "referee_reward.reward_id"),
        ({"unlocks": [{"threshold": 2, "name": "a", "reward": {"points": 1}}] * 2}, "unlocks.1.threshold"),
        ({"unlocks": [{"threshold": 2, "name": "a", "reward": {}}]}, "unlocks.0.reward"),
        ({"live_code_id": 999_999}, "live_code_id"),
        ({"eligible_tier_ids": [999_999]}, "eligible_tier_ids"),
        ({"starts_at": "2026-12-01T00:00:00+08:00", "ends_at": "2026-11-01T00:00:00+08:00"}, "ends_at"),
    ],
)
def test_bad_programs_are_refused_naming_the_field(
    db: Session, clock: FrozenClock, values: dict[str, object], field: str
) -> None:
    # given a workspace
    ws = make_workspace(db, clock=clock)
    # when a program breaking one rule is created
    with pytest.raises(InvalidProgram) as caught:
        programs.create_program(
            db, actor=actor_for(ws), data=ProgramIn.model_validate({"name": "x", **values}), clock=clock
        )
    # then the error names the field and nothing was written
    assert caught.value.details == {"field": field}
    assert count(db, ReferralProgram, ReferralProgram.workspace_id == ws.id) == 0


def test_another_workspaces_coupon_template_is_not_found(db: Session, clock: FrozenClock) -> None:
    # given a coupon template of another workspace
    ours, theirs = make_workspace(db, clock=clock), make_workspace(db, clock=clock)
    template = make_template(db, workspace=theirs, clock=clock)
    # when our program names it
    data = ProgramIn.model_validate({"name": "x", "referrer_reward": {"coupon_template_id": template.id}})
    # then it is refused
    with pytest.raises(InvalidProgram):
        programs.create_program(db, actor=actor_for(ours), data=data, clock=clock)


def test_update_replaces_unlocks_and_audits(db: Session, clock: FrozenClock) -> None:
    # given a program with one unlock
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    program = make_program(
        db, actor=actor, clock=clock, unlocks=[{"threshold": 3, "name": "三人", "reward": {"points": 30}}]
    )
    # when the ladder is replaced and the condition changed
    patch = ProgramPatch.model_validate(
        {
            "condition": "first_order_over",
            "min_order_fen": 9_900,
            "unlocks": [{"threshold": 5, "name": "五人", "reward": {"points": 99}}],
        }
    )
    programs.update_program(db, actor=actor, program_id=program.id, data=patch, clock=clock)
    # then the program has the new rules, and the change is audited
    assert (program.condition, program.min_order_fen) == ("first_order_over", 9_900)
    assert [(u.threshold, u.reward) for u in programs.unlocks_of(db, program.id)] == [(5, {"points": 99})]
    assert count(db, AuditEntry, AuditEntry.entity_type == "referral_program") == 3  # create, start, update


def test_a_change_that_breaks_a_rule_is_refused(db: Session, clock: FrozenClock) -> None:
    # given a plain program
    ws = make_workspace(db, clock=clock)
    program = make_program(db, actor=actor_for(ws), clock=clock)
    # when the condition becomes first_order_over without a minimum
    with pytest.raises(InvalidProgram) as caught:
        programs.update_program(
            db,
            actor=actor_for(ws),
            program_id=program.id,
            data=ProgramPatch(condition="first_order_over"),  # type: ignore[arg-type]
            clock=clock,
        )
    # then the field is named and nothing changed
    assert caught.value.details == {"field": "min_order_fen"}
    assert program.condition == "added_staff"


def test_status_moves_and_ended_is_final(db: Session, clock: FrozenClock) -> None:
    # given a draft program
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    program = make_program(db, actor=actor, clock=clock, status=ProgramStatus.DRAFT)
    # when it is started, paused, ended, then restarted
    for status in ("active", "paused", "ended"):
        programs.set_status(db, actor=actor, program_id=program.id, status=status, clock=clock)
    with pytest.raises(InvalidProgram):
        programs.set_status(db, actor=actor, program_id=program.id, status="active", clock=clock)
    # then it stays ended
    assert program.status == ProgramStatus.ENDED


def test_an_analyst_cannot_write_programs(db: Session, clock: FrozenClock) -> None:
    # given an analyst
    ws = make_workspace(db, clock=clock)
    # when they create a program, then it is refused and nothing is written
    with pytest.raises(PermissionDenied):
        programs.create_program(db, actor=actor_for(ws, role=Role.ANALYST), data=ProgramIn(name="x"), clock=clock)
    assert count(db, ReferralProgram, ReferralProgram.workspace_id == ws.id) == 0


def test_codes_are_one_per_member_and_found_in_any_case(db: Session, clock: FrozenClock) -> None:
    # given a running program and a member
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    program = make_program(db, actor=actor, clock=clock)
    member = make_customer(db, actor=actor, clock=clock).customer
    # when the member asks for their code twice
    first = codes.code_for(db, workspace_id=ws.id, program_id=program.id, customer_id=member.id, clock=clock)
    second = codes.code_for(db, workspace_id=ws.id, program_id=program.id, customer_id=member.id, clock=clock)
    # then it is one 8-character code, found typed in lower case
    assert first is second
    assert len(first.code) == 8 and set(first.code) <= set(codes.ALPHABET)
    assert codes.find_code(db, first.code.lower()) is first
    assert codes.find_code(db, "I0O1ABCD") is None


def test_codes_are_refused_for_paused_programs_erased_and_ineligible_members(db: Session, clock: FrozenClock) -> None:
    # given a program starting tomorrow, a running one for one tier, and an erased member
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    later = make_program(db, actor=actor, clock=clock, starts_at=clock.now() + timedelta(days=1))
    member = make_customer(db, actor=actor, clock=clock).customer
    erased = make_customer(db, actor=actor, clock=clock).customer
    erased.erased_at = clock.now()
    running = make_program(db, actor=actor, clock=clock)
    # then each refusal is its own error
    with pytest.raises(ProgramNotActive):
        codes.code_for(db, workspace_id=ws.id, program_id=later.id, customer_id=member.id, clock=clock)
    with pytest.raises(MemberNotFound):
        codes.code_for(db, workspace_id=ws.id, program_id=running.id, customer_id=erased.id, clock=clock)
    assert [p.id for p in programs.eligible_programs(db, workspace_id=ws.id, customer_id=member.id, clock=clock)] == [
        running.id
    ]
    assert programs.eligible_programs(db, workspace_id=ws.id, customer_id=erased.id, clock=clock) == []
