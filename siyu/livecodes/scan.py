"""A scan of a live code: find the code, assign the experiment arm, route, record.

This is the public hot path (`/q/{slug}`): one short write transaction, a handful of statements.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.experiments.assignment import expose
from siyu.livecodes import routing
from siyu.livecodes.state import encode_state
from siyu.models import (
    Channel,
    Experiment,
    ExperimentVariant,
    LiveCode,
    LiveCodeKind,
    LiveCodeScan,
    Store,
    Workspace,
)
from siyu.workspaces.scope import bind_workspace

GONE_OUTCOME = "gone"
NO_ROUTE_OUTCOME = "no_route"

_rng = random.SystemRandom()


@dataclass
class ScanResult:
    """What the landing page shows for one scan."""

    code: LiveCode
    outcome: str
    scan: LiveCodeScan | None = None
    candidate: routing.Candidate | None = None
    channel: Channel | None = None
    variant: ExperimentVariant | None = None
    state: str | None = None
    store: Store | None = None
    store_choices: list[Store] = field(default_factory=list)
    """Set, with no scan recorded, when a store code needs the scanner to pick a store first."""

    @property
    def hook(self) -> str | None:
        """The offer shown: the experiment arm's hook if it has one, else the channel's."""
        if self.variant is not None and self.variant.content.get("hook"):
            return str(self.variant.content["hook"])
        return self.channel.hook if self.channel else None


def find_code(session: Session, slug: str) -> LiveCode | None:
    """The code behind a public slug, deleted ones included; binds the session to its workspace."""
    code = session.scalar(select(LiveCode).where(LiveCode.slug == slug))
    if code is not None:
        bind_workspace(session, code.workspace_id)
    return code


def workspace_tz(session: Session, workspace_id: int) -> ZoneInfo:
    name = session.scalar(select(Workspace.timezone).where(Workspace.id == workspace_id))
    return ZoneInfo(name or "Asia/Shanghai")


def store_choices(session: Session, code: LiveCode) -> list[Store]:
    """Stores a store code can route to (those with an active staff route), by city then name."""
    candidates = routing.load_candidates(session, code)
    store_ids = {c.staff.store_id for c in candidates if c.staff is not None and c.staff.store_id is not None}
    if not store_ids:
        return []
    return list(session.scalars(select(Store).where(Store.id.in_(store_ids)).order_by(Store.city, Store.name)))


def scan_code(
    session: Session,
    code: LiveCode,
    *,
    visitor_id: str,
    at: datetime,
    user_agent: str | None = None,
    ip_hash: str | None = None,
    store_id: int | None = None,
    rng: random.Random = _rng,
) -> ScanResult:
    """Route one scan and record it. Never raises for a retired, expired or saturated code."""
    channel = session.get(Channel, code.channel_id) if code.channel_id else None
    if code.deleted_at is not None or (code.expires_at is not None and code.expires_at <= at):
        scan = _record(
            session, code, None, channel, None, None, None, visitor_id, user_agent, ip_hash, GONE_OUTCOME, at
        )
        return ScanResult(code=code, outcome=GONE_OUTCOME, scan=scan, channel=channel)
    store: Store | None = None
    if code.kind == LiveCodeKind.STORE:
        chosen = code.store_id or store_id
        if chosen is None:
            return ScanResult(
                code=code, outcome="choose_store", channel=channel, store_choices=store_choices(session, code)
            )
        store = session.scalar(select(Store).where(Store.id == chosen, Store.workspace_id == code.workspace_id))
        if store is None:
            return ScanResult(
                code=code, outcome="choose_store", channel=channel, store_choices=store_choices(session, code)
            )
    variant = None
    if code.experiment_id is not None and (experiment := session.get(Experiment, code.experiment_id)) is not None:
        variant = expose(session, experiment=experiment, visitor_id=visitor_id, at=at)
    candidates = routing.load_candidates(session, code, store_id=store.id if store else None)
    if code.kind == LiveCodeKind.GROUP:
        choice = routing.choose_group_route(candidates)
    else:
        tz = workspace_tz(session, code.workspace_id)
        choice = routing.choose_staff_route(session, code, candidates, at=at, tz=tz, visitor_id=visitor_id, rng=rng)
    state = encode_state(code.id, code.channel_id, variant.key if variant else None)
    outcome = choice.outcome if choice else NO_ROUTE_OUTCOME
    candidate = choice.candidate if choice else None
    scan = _record(
        session, code, candidate, channel, store, variant, state, visitor_id, user_agent, ip_hash, outcome, at
    )
    return ScanResult(
        code=code,
        outcome=outcome,
        scan=scan,
        candidate=candidate,
        channel=channel,
        variant=variant,
        state=state,
        store=store,
    )


def _record(
    session: Session,
    code: LiveCode,
    candidate: routing.Candidate | None,
    channel: Channel | None,
    store: Store | None,
    variant: ExperimentVariant | None,
    state: str | None,
    visitor_id: str,
    user_agent: str | None,
    ip_hash: str | None,
    outcome: str,
    at: datetime,
) -> LiveCodeScan:
    staff = candidate.staff if candidate else None
    scan = LiveCodeScan(
        workspace_id=code.workspace_id,
        live_code_id=code.id,
        route_id=candidate.route.id if candidate else None,
        staff_id=staff.id if staff else None,
        group_id=candidate.group.id if candidate and candidate.group else None,
        store_id=store.id if store else (staff.store_id if staff else None),
        channel_id=channel.id if channel else None,
        variant=variant.key if variant else None,
        state=state,
        visitor_id=visitor_id,
        user_agent=user_agent,
        ip_hash=ip_hash,
        outcome=outcome,
        scanned_at=at,
    )
    session.add(scan)
    session.flush()
    return scan
