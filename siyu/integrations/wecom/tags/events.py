"""Handlers of `change_external_tag` events (create / update / delete / shuffle of an enterprise
tag or tag group): each queues a tag pull job, at most one waiting per workspace (a burst of events
→ one pull, which reconciles the whole list, so a late or repeated event is harmless). Rule-group
tags (策略标签, with `StrategyId`) are not synced: noted, no pull."""

from __future__ import annotations

from siyu.integrations.wecom.dispatch import EventContext, on_event
from siyu.integrations.wecom.tags.tasks import PULL_KIND, queue_once

EVENT = "change_external_tag"


@on_event(EVENT, None)
def tag_changed(ctx: EventContext) -> str | None:
    """Queue a pull of WeCom's tag list (unless one is already waiting); the note says which."""
    if ctx.payload.get("StrategyId"):
        return "strategy tags are not synced"
    _job, queued = queue_once(
        ctx.session, kind=PULL_KIND, workspace_id=ctx.config.workspace_id, clock=ctx.clock, created_by="wecom_event"
    )
    return "pull queued" if queued else "pull already queued"
