"""Referral programs: create, change, start/pause/end, and who may invite.

Reward references (coupon templates, mall rewards), the segment, tiers, live code and group must
belong to the workspace; fission programs need a target; `first_order_over` needs a minimum.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.kit.clock import Clock
from siyu.loyalty.rewards.catalog import check_audience
from siyu.models import (
    CommunityGroup,
    CouponTemplate,
    Customer,
    LiveCode,
    ProgramKind,
    ProgramStatus,
    ReferralCondition,
    ReferralProgram,
    ReferralReward,
    ReferralUnlock,
    Reward,
    Segment,
)
from siyu.referrals.errors import InvalidProgram, ProgramNotFound
from siyu.referrals.schemas import ProgramIn, ProgramPatch, RewardSpecIn, UnlockIn

FISSION_KINDS = frozenset({ProgramKind.GROUP_FISSION, ProgramKind.TASK_FISSION})
KIND_CONDITION: dict[ProgramKind, ReferralCondition] = {
    ProgramKind.GROUP_FISSION: ReferralCondition.JOINED_GROUP,
    ProgramKind.TASK_FISSION: ReferralCondition.ADDED_STAFF,
}
"""The only condition a fission kind may have: 群裂变 counts joins of its group, 任务宝 counts adds."""
_TRANSITIONS: dict[ProgramStatus, frozenset[ProgramStatus]] = {
    ProgramStatus.DRAFT: frozenset({ProgramStatus.ACTIVE, ProgramStatus.ENDED}),
    ProgramStatus.ACTIVE: frozenset({ProgramStatus.PAUSED, ProgramStatus.ENDED}),
    ProgramStatus.PAUSED: frozenset({ProgramStatus.ACTIVE, ProgramStatus.ENDED}),
    ProgramStatus.ENDED: frozenset(),
}
_SCALARS = (
    "starts_at",
    "ends_at",
    "eligible_segment_id",
    "condition",
    "min_order_fen",
    "live_code_id",
    "group_id",
    "target_count",
    "attribution_days",
    "daily_cap_per_referrer",
    "burst_threshold",
    "burst_window_minutes",
    "point_cost_fen",
    "poster_title",
    "poster_text",
)


def _fail(message: str, field: str) -> InvalidProgram:
    return InvalidProgram(message, details={"field": field})


def _check_reward(session: Session, workspace_id: int, spec: RewardSpecIn, field: str) -> dict[str, int]:
    if spec.coupon_template_id is not None:
        template = session.get(CouponTemplate, spec.coupon_template_id)
        if template is None or template.workspace_id != workspace_id:
            raise _fail(f"coupon template {spec.coupon_template_id} not found", f"{field}.coupon_template_id")
    if spec.reward_id is not None:
        reward = session.get(Reward, spec.reward_id)
        if reward is None or reward.workspace_id != workspace_id:
            raise _fail(f"mall reward {spec.reward_id} not found", f"{field}.reward_id")
    return spec.as_dict()


def _owned(session: Session, model: Any, workspace_id: int, ident: int | None, field: str) -> None:
    if ident is None:
        return
    row = session.get(model, ident)
    if row is None or row.workspace_id != workspace_id:
        raise _fail(f"{field.removesuffix('_id')} {ident} not found", field)


def _validate(session: Session, workspace_id: int, values: dict[str, Any], kind: ProgramKind) -> None:
    """Cross-field rules and references, on the program as it will be after the change."""
    starts, ends = values.get("starts_at"), values.get("ends_at")
    for field, at in (("starts_at", starts), ("ends_at", ends)):
        if at is not None and at.tzinfo is None:
            raise _fail(f"{field} needs a time zone offset", field)
    if starts is not None and ends is not None and ends <= starts:
        raise _fail("ends_at must be after starts_at", "ends_at")
    if values.get("condition") == ReferralCondition.FIRST_ORDER_OVER and values.get("min_order_fen", 0) <= 0:
        raise _fail("first_order_over needs min_order_fen above 0", "min_order_fen")
    if kind in FISSION_KINDS and values.get("target_count", 0) < 1:
        raise _fail("a fission program needs target_count of at least 1", "target_count")
    if (forced := KIND_CONDITION.get(kind)) is not None and values.get("condition") != forced:
        raise _fail(f"a {kind} program counts {forced} only", "condition")
    if kind == ProgramKind.GROUP_FISSION and values.get("group_id") is None:
        raise _fail("a group fission program needs a group", "group_id")
    _owned(session, Segment, workspace_id, values.get("eligible_segment_id"), "eligible_segment_id")
    _owned(session, LiveCode, workspace_id, values.get("live_code_id"), "live_code_id")
    _owned(session, CommunityGroup, workspace_id, values.get("group_id"), "group_id")
    # the segment stays checked by `_owned` above: a program whose segment was archived later can still be edited
    check_audience(
        session,
        workspace_id=workspace_id,
        tier_ids=[int(t) for t in values.get("eligible_tier_ids") or []],
        segment_id=None,
        fields=("eligible_tier_ids", "eligible_segment_id"),
        fail=_fail,
    )


def _unlock_values(session: Session, workspace_id: int, unlocks: Sequence[UnlockIn]) -> list[dict[str, Any]]:
    seen: set[int] = set()
    rows = []
    for i, unlock in enumerate(unlocks):
        if unlock.threshold in seen:
            raise _fail(f"two unlocks at threshold {unlock.threshold}", f"unlocks.{i}.threshold")
        seen.add(unlock.threshold)
        reward = _check_reward(session, workspace_id, unlock.reward, f"unlocks.{i}.reward")
        if not reward:
            raise _fail("an unlock needs a reward", f"unlocks.{i}.reward")
        rows.append({"threshold": unlock.threshold, "name": unlock.name.strip(), "reward": reward})
    return sorted(rows, key=lambda r: r["threshold"])


def _replace_unlocks(session: Session, program: ReferralProgram, rows: list[dict[str, Any]], now: datetime) -> None:
    """Make the ladder `rows`. An unlock whose threshold stays keeps its row; one taken off is deleted
    when it never paid anything, else *retired* (kept with `retired_at`, so its rewards stay and its
    key `unlock:{program_id}:{threshold}:{customer_id}` is never paid twice); re-adding a retired
    threshold revives it."""
    existing = {u.threshold: u for u in unlocks_of(session, program.id, include_retired=True)}
    wanted = {r["threshold"] for r in rows}
    for threshold, old in existing.items():
        if threshold in wanted or old.retired_at is not None:
            continue
        paid = session.scalar(select(ReferralReward.id).where(ReferralReward.unlock_id == old.id).limit(1))
        if paid is None:
            session.execute(delete(ReferralUnlock).where(ReferralUnlock.id == old.id))
        else:
            old.retired_at = now
    for row in rows:
        if (unlock := existing.get(row["threshold"])) is not None:
            unlock.name, unlock.reward, unlock.retired_at = row["name"], row["reward"], None
        else:
            session.add(ReferralUnlock(workspace_id=program.workspace_id, program_id=program.id, **row))
    session.flush()


def _audit_values(program: ReferralProgram, session: Session) -> dict[str, Any]:
    values = {f: getattr(program, f) for f in _SCALARS}
    values.update(
        name=program.name,
        kind=str(program.kind),
        status=str(program.status),
        referrer_reward=program.referrer_reward,
        referee_reward=program.referee_reward,
        eligible_tier_ids=program.eligible_tier_ids,
        unlocks=[{"threshold": u.threshold, "reward": u.reward} for u in unlocks_of(session, program.id)],
    )
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()}


def unlocks_of(session: Session, program_id: int, *, include_retired: bool = False) -> list[ReferralUnlock]:
    """A program's unlocks by threshold (the current ladder: retired ones only when asked)."""
    query = select(ReferralUnlock).where(ReferralUnlock.program_id == program_id)
    if not include_retired:
        query = query.where(ReferralUnlock.retired_at.is_(None))
    return list(session.scalars(query.order_by(ReferralUnlock.threshold)))


def get_program(session: Session, *, actor: Actor, program_id: int, for_update: bool = False) -> ReferralProgram:
    """A program of the actor's workspace (`ProgramNotFound` otherwise); needs growth:read."""
    actor.require(Scope.GROWTH_READ)
    query = select(ReferralProgram).where(
        ReferralProgram.id == program_id, ReferralProgram.workspace_id == actor.workspace_id
    )
    if for_update:
        query = query.with_for_update()
    program = session.scalar(query)
    if program is None:
        raise ProgramNotFound(f"referral program {program_id} not found", details={"program_id": program_id})
    return program


def list_programs(session: Session, *, actor: Actor, status: ProgramStatus | None = None) -> list[ReferralProgram]:
    """The workspace's programs, newest first, optionally of one status."""
    actor.require(Scope.GROWTH_READ)
    query = select(ReferralProgram).where(ReferralProgram.workspace_id == actor.workspace_id)
    if status is not None:
        query = query.where(ReferralProgram.status == status)
    return list(session.scalars(query.order_by(ReferralProgram.id.desc())))


def create_program(session: Session, *, actor: Actor, data: ProgramIn, clock: Clock) -> ReferralProgram:
    """A new draft program with its unlocks; validated and audited."""
    actor.require(Scope.GROWTH_WRITE)
    ws = actor.workspace_id
    values: dict[str, Any] = {f: getattr(data, f) for f in _SCALARS}
    values["eligible_tier_ids"] = list(data.eligible_tier_ids)
    if (forced := KIND_CONDITION.get(data.kind)) is not None and "condition" not in data.model_fields_set:
        values["condition"] = forced  # a fission program's condition follows from its kind
    _validate(session, ws, values, data.kind)
    values["referrer_reward"] = _check_reward(session, ws, data.referrer_reward, "referrer_reward")
    values["referee_reward"] = _check_reward(session, ws, data.referee_reward, "referee_reward")
    unlocks = _unlock_values(session, ws, data.unlocks)
    now = clock.now()
    program = ReferralProgram(
        workspace_id=ws,
        name=data.name.strip(),
        kind=data.kind,
        status=ProgramStatus.DRAFT,
        created_at=now,
        updated_at=now,
        **values,
    )
    session.add(program)
    session.flush()
    _replace_unlocks(session, program, unlocks, now)
    record(
        session,
        actor,
        action="referral_program.create",
        entity_type="referral_program",
        entity_id=program.id,
        clock=clock,
        after=_audit_values(program, session),
    )
    return program


def update_program(
    session: Session, *, actor: Actor, program_id: int, data: ProgramPatch, clock: Clock
) -> ReferralProgram:
    """Change the fields given (validated against the program as it will be); audited."""
    actor.require(Scope.GROWTH_WRITE)
    program = get_program(session, actor=actor, program_id=program_id, for_update=True)
    before = _audit_values(program, session)
    given = data.model_fields_set
    values: dict[str, Any] = {f: getattr(program, f) for f in _SCALARS}
    values["eligible_tier_ids"] = list(program.eligible_tier_ids or [])
    for f in (*_SCALARS, "eligible_tier_ids"):
        if f in given:
            new = getattr(data, f)
            if new is None and f in ("condition", "min_order_fen", "target_count", "attribution_days"):
                raise _fail(f"{f} cannot be empty", f)
            if new is None and f in ("burst_window_minutes", "point_cost_fen", "poster_title", "poster_text"):
                raise _fail(f"{f} cannot be empty", f)
            values[f] = list(new or []) if f == "eligible_tier_ids" else new
    _validate(session, program.workspace_id, values, program.kind)
    ws = program.workspace_id
    if "referrer_reward" in given:
        program.referrer_reward = _check_reward(session, ws, data.referrer_reward or RewardSpecIn(), "referrer_reward")
    if "referee_reward" in given:
        program.referee_reward = _check_reward(session, ws, data.referee_reward or RewardSpecIn(), "referee_reward")
    if "unlocks" in given:
        _replace_unlocks(session, program, _unlock_values(session, ws, data.unlocks or []), clock.now())
    if "name" in given and data.name is not None:
        program.name = data.name.strip()
    for f, v in values.items():
        setattr(program, f, v)
    program.updated_at = clock.now()
    session.flush()
    record(
        session,
        actor,
        action="referral_program.update",
        entity_type="referral_program",
        entity_id=program.id,
        clock=clock,
        before=before,
        after=_audit_values(program, session),
    )
    return program


def set_poster_background(
    session: Session, *, actor: Actor, program_id: int, png: bytes | None, clock: Clock
) -> ReferralProgram:
    """Store (or clear) the poster background; the caller has validated and normalised it to PNG."""
    actor.require(Scope.GROWTH_WRITE)
    program = get_program(session, actor=actor, program_id=program_id, for_update=True)
    program.poster_background_png = png
    program.updated_at = clock.now()
    record(
        session,
        actor,
        action="referral_program.poster",
        entity_type="referral_program",
        entity_id=program.id,
        clock=clock,
        after={"has_background": png is not None, "bytes": len(png or b"")},
    )
    return program


def set_status(
    session: Session, *, actor: Actor, program_id: int, status: ProgramStatus | str, clock: Clock
) -> ReferralProgram:
    """Start (draft/paused → active), pause, or end a program (ended is final); audited."""
    actor.require(Scope.GROWTH_WRITE)
    try:
        target = ProgramStatus(status)
    except ValueError:
        raise _fail(f"unknown status {status!r}", "status") from None
    program = get_program(session, actor=actor, program_id=program_id, for_update=True)
    if target == program.status:
        return program
    if target not in _TRANSITIONS[program.status]:
        raise _fail(f"a {program.status} program cannot become {target}", "status")
    before = str(program.status)
    program.status = target
    program.updated_at = clock.now()
    record(
        session,
        actor,
        action="referral_program.status",
        entity_type="referral_program",
        entity_id=program.id,
        clock=clock,
        before={"status": before},
        after={"status": str(target)},
    )
    return program


def is_running(program: ReferralProgram, at: datetime) -> bool:
    """Active and within its dates."""
    if program.status != ProgramStatus.ACTIVE:
        return False
    if program.starts_at is not None and at < program.starts_at:
        return False
    return program.ends_at is None or at < program.ends_at


def member_is_eligible(session: Session, *, program: ReferralProgram, customer_id: int, clock: Clock) -> bool:
    """May this member invite: the rewards mall's audience rule (`audience_allows`) with the program's
    `eligible_tier_ids` and `eligible_segment_id`."""
    from siyu.loyalty.members import get_member
    from siyu.loyalty.rewards.service import audience_allows

    return audience_allows(
        session,
        workspace_id=program.workspace_id,
        tier_ids=program.eligible_tier_ids,
        segment_id=program.eligible_segment_id,
        customer_id=customer_id,
        member=get_member(session, program.workspace_id, customer_id) if program.eligible_tier_ids else None,
        clock=clock,
    )


def live_customer(session: Session, workspace_id: int, customer_id: int) -> Customer | None:
    """The customer if they exist in the workspace, are not merged away and not erased."""
    customer = session.get(Customer, customer_id)
    if customer is None or customer.workspace_id != workspace_id:
        return None
    if customer.merged_into_id is not None or customer.erased_at is not None:
        return None
    return customer


def eligible_programs(session: Session, *, workspace_id: int, customer_id: int, clock: Clock) -> list[ReferralProgram]:
    """The running programs this member may invite in (none for an erased or unknown member)."""
    if live_customer(session, workspace_id, customer_id) is None:
        return []
    now = clock.now()
    programs = session.scalars(
        select(ReferralProgram)
        .where(ReferralProgram.workspace_id == workspace_id, ReferralProgram.status == ProgramStatus.ACTIVE)
        .order_by(ReferralProgram.id)
    )
    return [
        p
        for p in programs
        if is_running(p, now) and member_is_eligible(session, program=p, customer_id=customer_id, clock=clock)
    ]
