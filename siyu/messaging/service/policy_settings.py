"""The delivery policy settings: caps, platform caps, quiet hours, dedup window, approval threshold.

One `TouchPolicy` row per workspace; until someone saves one, the defaults of
`siyu.messaging.policy` apply and `get_policy` returns them as an unsaved row.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.kit.clock import Clock
from siyu.messaging import admission, policy
from siyu.messaging.schemas import PolicyIn
from siyu.models import TouchPolicy


def _defaults(workspace_id: int) -> TouchPolicy:
    return TouchPolicy(
        workspace_id=workspace_id,
        caps={scope: dict(periods) for scope, periods in policy.DEFAULT_CAPS.items()},
        platform_caps={scope: dict(periods) for scope, periods in policy.DEFAULT_PLATFORM_CAPS.items()},
        quiet_start="21:00",
        quiet_end="09:00",
        dedup_days=7,
        approval_threshold=admission.DEFAULT_APPROVAL_THRESHOLD,
        moments_marketing_share=20,
        updated_at=None,
    )


def get_policy(session: Session, actor: Actor) -> TouchPolicy:
    """The saved policy, or an unsaved row holding the defaults (its `id` is None)."""
    actor.require(Scope.TOUCH_READ)
    row = session.scalar(select(TouchPolicy).where(TouchPolicy.workspace_id == actor.workspace_id))
    return row if row is not None else _defaults(actor.workspace_id)


def _values(row: TouchPolicy) -> dict[str, Any]:
    return {
        "caps": row.caps,
        "platform_caps": row.platform_caps,
        "quiet_start": row.quiet_start,
        "quiet_end": row.quiet_end,
        "dedup_days": row.dedup_days,
        "approval_threshold": row.approval_threshold,
        "moments_marketing_share": row.moments_marketing_share,
    }


def save_policy(session: Session, *, actor: Actor, data: PolicyIn, clock: Clock) -> TouchPolicy:
    """Replace the workspace's policy. New caps apply to sends planned from now on; deliveries
    already queued keep the slots they took."""
    actor.require(Scope.TOUCH_CHANNELS)
    row = session.scalar(select(TouchPolicy).where(TouchPolicy.workspace_id == actor.workspace_id).with_for_update())
    before = _values(row) if row is not None else None
    if row is None:
        row = TouchPolicy(workspace_id=actor.workspace_id)
        session.add(row)
    values = data.model_dump()
    # Drop empty scopes so {"sms": {}} and no "sms" mean the same and read back the same.
    values["caps"] = {s: dict(p) for s, p in data.caps.items() if p}
    values["platform_caps"] = {s: dict(p) for s, p in data.platform_caps.items() if p}
    for key, value in values.items():
        setattr(row, key, value)
    row.updated_at = clock.now()
    session.flush()
    record(
        session,
        actor,
        action="update",
        entity_type="touch_policy",
        entity_id=row.id,
        before=before,
        after=_values(row),
        clock=clock,
    )
    return row
