"""A scan of a live code: find the code, assign the experiment arm, route, record.

This is the public hot path (`/q/{slug}`): one short write transaction, a handful of statements.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, insert, select
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
    WechatOfficialAccount,
    WecomContactWay,
    Workspace,
)
from siyu.workspaces.scope import bind_workspace

_SCANS = cast(Table, LiveCodeScan.__table__)

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


@dataclass
class ScanPlan:
    """The read half of a scan (no locks taken): what `commit_scan` needs to route and record."""

    code: LiveCode
    at: datetime
    visitor_id: str
    channel: Channel | None
    outcome: str | None = None
    """Set when the scan is settled without routing: "gone" or "choose_store"."""
    store: Store | None = None
    store_choices: list[Store] = field(default_factory=list)
    experiment: Experiment | None = None
    candidates: list[routing.Candidate] = field(default_factory=list)
    staff_plan: routing.StaffPlan | None = None


@dataclass
class CodeSnapshot:
    """What routing needs to know about a code, apart from who is scanning: cacheable for seconds."""

    code: LiveCode
    channel: Channel | None
    tz: ZoneInfo
    experiment: Experiment | None = None
    store: Store | None = None
    store_choices: list[Store] = field(default_factory=list)
    candidates: list[routing.Candidate] = field(default_factory=list)
    way_qrs: dict[tuple[int | None, str | None], str] = field(default_factory=dict)
    """QR of each live WeCom way of the code by (route id, arm); route None = the arm's pooled way."""
    our_qrs: frozenset[str] = frozenset()
    """Every QR siyu ever made for the code (a route's `contact_qr_url` among them was not typed by hand)."""
    official_account: bool = False
    """Whether the workspace has an active official account (only then is its QR looked up)."""

    @property
    def is_cacheable(self) -> bool:
        # Group codes route on live member counts; everything else changes only when edited.
        return self.code.kind != LiveCodeKind.GROUP


def load_snapshot(session: Session, code: LiveCode, *, store_id: int | None = None) -> CodeSnapshot:
    """Read the code's channel, time zone, experiment, store and active routes."""
    snapshot = CodeSnapshot(
        code=code,
        channel=session.get(Channel, code.channel_id) if code.channel_id else None,
        tz=workspace_tz(session, code.workspace_id),
    )
    if code.kind == LiveCodeKind.STORE:
        chosen = code.store_id or store_id
        if chosen is not None:
            snapshot.store = session.scalar(
                select(Store).where(Store.id == chosen, Store.workspace_id == code.workspace_id)
            )
        if snapshot.store is None:
            snapshot.store_choices = store_choices(session, code)
            return snapshot
    if code.experiment_id is not None:
        snapshot.experiment = session.get(Experiment, code.experiment_id)
    snapshot.candidates = routing.load_candidates(session, code, store_id=snapshot.store.id if snapshot.store else None)
    _load_wecom(session, snapshot)
    return snapshot


def _load_wecom(session: Session, snapshot: CodeSnapshot) -> None:
    """The code's WeCom way QRs and the official-account flag, cached with the snapshot so a cached
    scan's landing page reads nothing more."""
    code = snapshot.code
    rows = session.execute(
        select(WecomContactWay.route_id, WecomContactWay.variant, WecomContactWay.qr_code, WecomContactWay.deleted_at)
        .where(WecomContactWay.live_code_id == code.id, WecomContactWay.qr_code.is_not(None))
        .order_by(WecomContactWay.id)
    ).all()
    snapshot.our_qrs = frozenset(str(qr) for _r, _v, qr, _d in rows if qr)
    snapshot.way_qrs = {
        (route_id, variant): str(qr) for route_id, variant, qr, deleted in rows if qr and deleted is None
    }
    snapshot.official_account = (
        session.scalar(
            select(WechatOfficialAccount.id).where(
                WechatOfficialAccount.workspace_id == code.workspace_id, WechatOfficialAccount.is_active.is_(True)
            )
        )
        is not None
    )


class SnapshotCache:
    """Code snapshots by (slug, store) for a couple of seconds, so a burst of scans reads nothing.

    Edits made in this process clear it at once; other processes see them within `ttl` seconds.
    Caps never depend on it: they are counted in the database on every scan.
    """

    def __init__(self, ttl: float = 2.0, max_entries: int = 4096) -> None:
        self.ttl, self.max_entries = ttl, max_entries
        self._entries: dict[tuple[str, int | None], tuple[float, CodeSnapshot]] = {}

    def get(self, slug: str, store_id: int | None) -> CodeSnapshot | None:
        entry = self._entries.get((slug, store_id))
        if entry is None or time.monotonic() - entry[0] > self.ttl:
            return None
        return entry[1]

    def put(self, slug: str, store_id: int | None, snapshot: CodeSnapshot) -> None:
        if not snapshot.is_cacheable:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[(slug, store_id)] = (time.monotonic(), snapshot)

    def clear(self) -> None:
        self._entries.clear()


snapshots = SnapshotCache()


def plan_scan(
    session: Session | None,
    code: LiveCode,
    *,
    visitor_id: str,
    at: datetime,
    store_id: int | None = None,
    snapshot: CodeSnapshot | None = None,
    is_new_visitor: bool = False,
) -> ScanPlan:
    """Everything a scan reads: the code's snapshot and, for a returning visitor, their last route.

    Runs on a read-only session (or none: a cached snapshot and a first-time visitor need no
    reads), so the write transaction of `commit_scan` is a few statements long: on SQLite,
    concurrent scans queue for the write lock only that long.
    """
    if snapshot is None:
        assert session is not None, "plan_scan needs a session or a snapshot"
        snapshot = load_snapshot(session, code, store_id=store_id)
    code = snapshot.code
    plan = ScanPlan(code=code, at=at, visitor_id=visitor_id, channel=snapshot.channel, store=snapshot.store)
    if code.deleted_at is not None or (code.expires_at is not None and code.expires_at <= at):
        plan.outcome = GONE_OUTCOME
        return plan
    if code.kind == LiveCodeKind.STORE and snapshot.store is None:
        plan.outcome, plan.store_choices = "choose_store", snapshot.store_choices
        return plan
    plan.experiment, plan.candidates = snapshot.experiment, snapshot.candidates
    if code.kind != LiveCodeKind.GROUP:
        plan.staff_plan = routing.plan_staff_route(
            None if is_new_visitor else session,
            code,
            plan.candidates,
            at=at,
            tz=snapshot.tz,
            visitor_id=visitor_id,
        )
    return plan


def commit_scan(
    session: Session,
    plan: ScanPlan,
    *,
    user_agent: str | None = None,
    ip_hash: str | None = None,
    rng: random.Random = _rng,
) -> ScanResult:
    """The write half: assign the experiment arm, take a route under its cap, record the scan."""
    code, channel = plan.code, plan.channel
    if plan.outcome == "choose_store":
        return ScanResult(code=code, outcome=plan.outcome, channel=channel, store_choices=plan.store_choices)
    if plan.outcome == GONE_OUTCOME:
        scan = _record(session, plan, None, None, None, user_agent, ip_hash, GONE_OUTCOME)
        return ScanResult(code=code, outcome=GONE_OUTCOME, scan=scan, channel=channel)
    variant = None
    if plan.experiment is not None:
        variant = expose(session, experiment=plan.experiment, visitor_id=plan.visitor_id, at=plan.at)
    if plan.staff_plan is None:
        choice = routing.choose_group_route(plan.candidates)
    else:
        choice = routing.take_staff_route(session, code, plan.staff_plan, rng=rng)
    state = encode_state(code.id, code.channel_id, variant.key if variant else None)
    outcome = choice.outcome if choice else NO_ROUTE_OUTCOME
    candidate = choice.candidate if choice else None
    scan = _record(session, plan, candidate, variant, state, user_agent, ip_hash, outcome)
    return ScanResult(
        code=code,
        outcome=outcome,
        scan=scan,
        candidate=candidate,
        channel=channel,
        variant=variant,
        state=state,
        store=plan.store,
    )


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
    """Route one scan and record it, in one session. Never raises for a retired, expired or saturated code."""
    plan = plan_scan(session, code, visitor_id=visitor_id, at=at, store_id=store_id)
    return commit_scan(session, plan, user_agent=user_agent, ip_hash=ip_hash, rng=rng)


def _record(
    session: Session,
    plan: ScanPlan,
    candidate: routing.Candidate | None,
    variant: ExperimentVariant | None,
    state: str | None,
    user_agent: str | None,
    ip_hash: str | None,
    outcome: str,
) -> LiveCodeScan:
    staff = candidate.staff if candidate else None
    scan = LiveCodeScan(
        workspace_id=plan.code.workspace_id,
        live_code_id=plan.code.id,
        route_id=candidate.route.id if candidate else None,
        staff_id=staff.id if staff else None,
        group_id=candidate.group.id if candidate and candidate.group else None,
        store_id=plan.store.id if plan.store else (staff.store_id if staff else None),
        channel_id=plan.channel.id if plan.channel else None,
        variant=variant.key if variant else None,
        state=state,
        visitor_id=plan.visitor_id,
        user_agent=user_agent,
        ip_hash=ip_hash,
        outcome=outcome,
        scanned_at=plan.at,
    )
    # A Core insert, not a flush: the scan page writes one row per request and the unit of work
    # would cost more than the statement. The returned object is transient, for reading only.
    values = {column.key: getattr(scan, column.key) for column in _SCANS.columns if column.key != "id"}
    scan.id = session.connection().execute(insert(_SCANS).values(**values).returning(_SCANS.c.id)).scalar_one()
    return scan
