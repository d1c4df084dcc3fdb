"""Demo community: referrals and fission, groups with churn, a check-in challenge, lotteries, the
KOC program with commission, and the resources library, for the demo brand.

Runs after `build_loyalty` (it needs the members, their points and the coupon templates), in one
transaction, entirely through the services of the fission-and-community issue: each part plans its
steps on one timeline (`timeline.Timeline`) and the steps run in time order with a clock frozen at
their moment, so a referee's first order is ingested after the add, a KOC is approved before their
friends' orders earn commission, and every group count follows its joins and leaves. The KOC scores
are then computed by the daily scoring job's function, on the committed data.

Deterministic for a seed and `clock.now()`, but for referral codes and lottery seeds, random by design.
"""

from __future__ import annotations

import random

from sqlalchemy import select

from siyu.auth.permissions import Actor
from siyu.community.koc.tasks import score_all
from siyu.db import Database
from siyu.demo.community import challenge, groups, koc, lottery, referrals, resources
from siyu.demo.community.context import Ctx
from siyu.kit.clock import Clock
from siyu.loyalty.program import brand_zone
from siyu.models import Member, ReferralProgram, Tier, Workspace
from siyu.workspaces.scope import bind_workspace

__all__ = ["build_community"]


def build_community(database: Database, *, clock: Clock, seed: int = 7) -> bool:
    """Give the demo brand (built by `build_demo` and `build_loyalty`) its community; False (and
    nothing written) if the brand or its loyalty program is missing, or it already has referral programs."""
    # The listeners of the issue (referral qualification and reversal, commission, group-join
    # tasks) register when the app's task modules are imported, as in the app and the workers.
    import siyu.tasks  # noqa: F401

    with database.transaction() as session:
        workspace = session.scalar(select(Workspace).where(Workspace.slug == "default"))
        if workspace is None:
            return False
        if session.scalar(select(Tier.id).where(Tier.workspace_id == workspace.id).limit(1)) is None:
            return False
        if session.scalar(select(ReferralProgram.id).where(ReferralProgram.workspace_id == workspace.id).limit(1)):
            return False
        bind_workspace(session, workspace.id)
        ctx = Ctx(
            session=session,
            actor=Actor.system(workspace.id, label="siyu demo"),
            now=clock.now(),
            zone=brand_zone(session, workspace.id),
            rng=random.Random(f"{seed}:community"),
        )
        ctx.members = list(
            session.scalars(select(Member.customer_id).where(Member.workspace_id == workspace.id).order_by(Member.id))
        )
        group_ids = groups.create_groups(ctx)
        referrals.plan(ctx, fission_group_id=group_ids[groups.FISSION_GROUP])
        groups.plan_members(ctx, group_ids)
        challenge.plan(ctx)
        koc.plan(ctx)
        lottery.plan(ctx)
        resources.plan(ctx)
        ctx.timeline.run()
        groups.fill_days(ctx, group_ids)
        workspace_id = workspace.id
    score_all(database, clock, workspace_id=workspace_id)
    return True
