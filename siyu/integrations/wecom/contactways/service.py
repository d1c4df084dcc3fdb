"""Live codes as real WeCom ways: one 「联系我」 (`add_contact_way`) or group-join
(`groupchat/add_join_way`) way per live code route and experiment arm, plus one pooled way per code
and arm that carries only the users / groups eligible right now.

Ways siyu keeps for a code (`WecomContactWay`, keyed by route, variant and kind):
- staff and store codes: per active route with a WeCom userid, a single-person way (type 1,
  scene 2, skip_verify) whose `state` is `encode_state(code, channel, variant)`; its QR is what the
  landing page shows for a scan routed there. Plus a pooled multi-person way (type 2, route None)
  listing the users on shift and under their daily cap (regular routes first, else backups): the
  code to print when the landing page is not wanted.
- group codes: per active route whose group has a WeCom chat id, a join way (scene 2) for that
  chat; plus a pooled join way with up to 5 chats that still have room.

`sync_code` makes WeCom match that plan: creates what is missing, updates a way only when what WeCom
last accepted (`WecomContactWay.pushed`) differs, deletes ways of removed routes, inactive staff and
deleted codes. It first locks the code's row, so two pushes of one code never create its ways twice.
`sweep_orphans` finds contact ways on WeCom whose state names one of the workspace's codes but that
siyu holds no row for (an add whose answer was lost) and deletes them. Services take a session and
never commit; `tasks.push_workspace` runs one short transaction per code.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.integrations.wecom.client import WecomClient, redact
from siyu.integrations.wecom.config import WecomConfig, client_for
from siyu.integrations.wecom.errors import WecomError
from siyu.integrations.wecom.status import note_error
from siyu.kit.clock import Clock
from siyu.livecodes import routing
from siyu.livecodes.scan import workspace_tz
from siyu.livecodes.schedule import is_working
from siyu.livecodes.state import decode_state, encode_state
from siyu.models import (
    ContactWayKind,
    ExperimentVariant,
    LiveCode,
    LiveCodeKind,
    LiveCodeRoute,
    Relationship,
    SyncStatus,
    WecomContactWay,
    WecomIntegration,
    WecomSyncRun,
)

logger = logging.getLogger(__name__)

SYNC_SCOPE = "contact_ways"
MAX_POOL_USERS = 100  # WeCom: a multi-person contact way lists at most 100 users
MAX_JOIN_CHATS = 5  # WeCom: a join way lists at most 5 chats
GONE_CODES = frozenset({40097, 41012})
"""Answers to del/update/get of a config_id WeCom no longer knows: the way is gone already."""
NO_USERS = "当前无可用成员，保留上次名单"
NO_CHATS = "当前无可用群，保留上次名单"
NO_USERS_NEW = "当前无可用成员，汇总码暂未创建"
NO_CHATS_NEW = "当前无可用群，汇总码暂未创建"
SWEEP_MAX_PAGES = 5  # list_contact_way pages (≤ 1000 ids each) read per sweep
SWEEP_MAX_CHECKS = 100  # get_contact_way calls per sweep (ways siyu holds no row for)
SWEEP_MAX_DELETES = 50


@dataclass(frozen=True)
class WaySpec:
    """One way as it should exist on WeCom."""

    route_id: int | None
    variant: str | None
    kind: ContactWayKind
    state: str
    targets: tuple[str, ...]
    """Userids (contact ways) or chat ids (join ways)."""
    remark: str

    @property
    def key(self) -> tuple[int | None, str | None, str]:
        return (self.route_id, self.variant, str(self.kind))

    @property
    def way_type(self) -> int:
        return 1 if self.route_id is not None else 2

    def pushed(self) -> dict[str, Any]:
        """What WeCom holds once this spec is pushed (compared with `WecomContactWay.pushed`)."""
        if self.kind == ContactWayKind.JOIN:
            return {"chat_id_list": list(self.targets), "state": self.state}
        return {"type": self.way_type, "user": list(self.targets), "state": self.state}


@dataclass
class SyncReport:
    """What one push did; `failures` name the code, route and arm of each error."""

    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    by_code: dict[int, dict[str, int]] = field(default_factory=dict)
    """Counts per code (what a single-code push replaces on the run)."""

    def merge(self, code_id: int, other: SyncReport) -> None:
        """Add one code's report to this one."""
        self.created += other.created
        self.updated += other.updated
        self.deleted += other.deleted
        self.unchanged += other.unchanged
        self.failures.extend(other.failures)
        self.by_code[code_id] = other.counts()

    def counts(self) -> dict[str, int]:
        return {
            "created": self.created,
            "updated": self.updated,
            "deleted": self.deleted,
            "unchanged": self.unchanged,
            "errors": len(self.failures),
        }


def _key_of(way: WecomContactWay) -> tuple[int | None, str | None, str]:
    return (way.route_id, way.variant, str(way.kind))


def variants_of(session: Session, code: LiveCode) -> list[str | None]:
    """The experiment arms the code's states carry ([None] without an experiment)."""
    if code.experiment_id is None:
        return [None]
    keys = session.scalars(
        select(ExperimentVariant.key)
        .where(ExperimentVariant.experiment_id == code.experiment_id)
        .order_by(ExperimentVariant.position, ExperimentVariant.id)
    ).all()
    return list(keys) or [None]


def _pool_users(session: Session, code: LiveCode, candidates: list[routing.Candidate], at: datetime) -> list[str]:
    """Userids a multi-person way should carry now: on shift and under today's cap, backups only
    when no regular route qualifies (the landing page's routing, without rotation)."""
    tz = workspace_tz(session, code.workspace_id)
    working = is_working(code.schedule, at, tz)
    day = routing.local_day(at, tz)
    taken = routing.routes_taken_on(session, [c.route.id for c in candidates], day)
    adds = adds_on(session, code, day, tz)

    def used(c: routing.Candidate) -> int:
        # An add through the landing page was a scan first: the larger count, not the sum.
        return max(taken.get(c.route.id, 0), adds.get(c.staff.id, 0) if c.staff else 0)

    eligible = [
        c
        for c in candidates
        if c.staff is not None
        and c.staff.wecom_user_id
        and routing.in_shift(c.route, working)
        and (c.route.daily_cap is None or used(c) < c.route.daily_cap)
    ]
    regular = [c for c in eligible if not c.route.is_backup]
    chosen = regular or [c for c in eligible if c.route.is_backup]
    users: list[str] = []
    for candidate in chosen:
        userid = str(candidate.staff.wecom_user_id) if candidate.staff else ""
        if userid and userid not in users:
            users.append(userid)
    return users[:MAX_POOL_USERS]


def adds_on(session: Session, code: LiveCode, day: Any, tz: Any) -> dict[int, int]:
    """Friends each staff member gained from this code on the brand-local `day` (adds through the
    WeCom ways skip the landing page, so its scan counts miss them)."""
    start = datetime.combine(day, time.min, tzinfo=tz)
    rows = session.execute(
        select(Relationship.staff_id, func.count())
        .where(
            Relationship.live_code_id == code.id,
            Relationship.added_at >= start,
            Relationship.added_at < start + timedelta(days=1),
        )
        .group_by(Relationship.staff_id)
    ).all()
    return {staff_id: int(count) for staff_id, count in rows}


def _pool_chats(candidates: list[routing.Candidate]) -> list[str]:
    chats: list[str] = []
    for candidate in candidates:
        group = candidate.group
        chat_id = group.wecom_chat_id if group is not None and group.member_count < group.member_limit else None
        if chat_id and chat_id not in chats:
            chats.append(chat_id)
    return chats[:MAX_JOIN_CHATS]


@dataclass
class Plan:
    """What `plan_ways` found: the ways to have, routes/arms that cannot have one, arms whose pool is empty."""

    specs: list[WaySpec] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    empty_pools: set[str | None] = field(default_factory=set)


def plan_ways(session: Session, code: LiveCode, at: datetime) -> Plan:
    """The ways the code should have on WeCom at `at`, the routes that cannot have one (why), and the
    arms whose pooled way has nobody eligible right now.

    A deleted code has none. An empty pool is left out of the specs but not deleted (see
    `sync_code`): WeCom needs at least one user or chat."""
    plan = Plan()
    if code.deleted_at is not None:
        return plan
    candidates = routing.load_candidates(session, code)
    kind = ContactWayKind.JOIN if code.kind == LiveCodeKind.GROUP else ContactWayKind.CONTACT
    specs, skipped = plan.specs, plan.skipped
    for variant in variants_of(session, code):
        try:
            state = encode_state(code.id, code.channel_id, variant)
        except ValueError as exc:
            skipped.append({"live_code_id": code.id, "route_id": None, "variant": variant, "error": str(exc)})
            continue
        suffix = f"·{variant}" if variant else ""
        for candidate in candidates:
            target = (
                candidate.group.wecom_chat_id
                if kind == ContactWayKind.JOIN and candidate.group is not None
                else (candidate.staff.wecom_user_id if candidate.staff is not None else None)
            )
            if not target:
                what = "group has no WeCom chat id" if kind == ContactWayKind.JOIN else "staff has no WeCom userid"
                skipped.append(
                    {"live_code_id": code.id, "route_id": candidate.route.id, "variant": variant, "error": what}
                )
                continue
            remark = f"{code.name[:20]}#{candidate.route.id}{suffix}"[:30]
            specs.append(WaySpec(candidate.route.id, variant, kind, state, (target,), remark))
        if code.kind == LiveCodeKind.STORE and code.store_id is None:
            continue  # a code that asks for the store first has no single printable pool
        pool = _pool_chats(candidates) if kind == ContactWayKind.JOIN else _pool_users(session, code, candidates, at)
        if pool:
            specs.append(WaySpec(None, variant, kind, state, tuple(pool), f"{code.name[:24]}{suffix}"[:30]))
        else:
            plan.empty_pools.add(variant)
    return plan


def _api(kind: ContactWayKind, verb: str) -> str:
    if kind == ContactWayKind.JOIN:
        return f"externalcontact/groupchat/{verb}_join_way"
    return f"externalcontact/{verb}_contact_way"


def _create(client: WecomClient, spec: WaySpec) -> tuple[str, str | None]:
    """Add the way; its config_id and QR (None when the join way's QR could not be read yet: the
    next push reads it). A failure of the add itself raises; a lost answer (timeout) leaves a way
    siyu does not know, which `sweep_orphans` deletes."""
    if spec.kind == ContactWayKind.JOIN:
        answer = client.call(
            "POST",
            _api(spec.kind, "add"),
            data={
                "scene": 2,
                "remark": spec.remark,
                "auto_create_room": 0,
                "chat_id_list": list(spec.targets),
                "state": spec.state,
            },
        )
        config_id = str(answer["config_id"])
        try:
            return config_id, _qr_of(client, spec.kind, config_id)
        except WecomError as exc:
            logger.warning("join way QR not read yet", extra={"config_id": config_id, "error": redact(str(exc))})
            return config_id, None
    answer = client.call(
        "POST",
        _api(spec.kind, "add"),
        data={
            "type": spec.way_type,
            "scene": 2,
            "remark": spec.remark,
            "skip_verify": True,
            "state": spec.state,
            "user": list(spec.targets),
        },
    )
    return str(answer["config_id"]), answer.get("qr_code") or None


def _qr_of(client: WecomClient, kind: ContactWayKind, config_id: str) -> str | None:
    got = client.call("POST", _api(kind, "get"), data={"config_id": config_id})
    return (got.get("join_way" if kind == ContactWayKind.JOIN else "contact_way") or {}).get("qr_code") or None


def _is_gone(client: WecomClient, way: WecomContactWay) -> bool:
    """Whether WeCom no longer knows the way (asked with a get, since 40097 also means other bad args)."""
    try:
        _qr_of(client, ContactWayKind(way.kind), way.config_id)
    except WecomError as exc:
        return exc.code in GONE_CODES
    return False


def _update(client: WecomClient, way: WecomContactWay, spec: WaySpec) -> None:
    if spec.kind == ContactWayKind.JOIN:
        data: dict[str, Any] = {
            "config_id": way.config_id,
            "scene": 2,
            "remark": spec.remark,
            "auto_create_room": 0,
            "chat_id_list": list(spec.targets),
            "state": spec.state,
        }
    else:
        data = {
            "config_id": way.config_id,
            "remark": spec.remark,
            "skip_verify": True,
            "state": spec.state,
            "user": list(spec.targets),
        }
    client.call("POST", _api(spec.kind, "update"), data=data)


def _delete(client: WecomClient, way: WecomContactWay) -> None:
    _delete_config(client, ContactWayKind(way.kind), way.config_id)


def _delete_config(client: WecomClient, kind: ContactWayKind, config_id: str) -> None:
    try:
        client.call("POST", _api(kind, "del"), data={"config_id": config_id})
    except WecomError as exc:
        if exc.code not in GONE_CODES:
            raise


def _failure(
    session: Session,
    report: SyncReport,
    code: LiveCode,
    key: tuple[int | None, str | None, str],
    exc: WecomError,
    clock: Clock,
) -> str:
    text = redact(str(exc))
    report.failures.append(
        {"live_code_id": code.id, "route_id": key[0], "variant": key[1], "error": text, "retryable": exc.retryable}
    )
    if not exc.retryable:
        note_error(session, code.workspace_id, exc, clock)
    return text


def _is_ours(url: str | None, ours: set[str]) -> bool:
    return url is None or url == "" or url in ours


def _set_route_qrs(session: Session, code: LiveCode, ways: list[WecomContactWay], previous: set[str]) -> None:
    """Point each route's `contact_qr_url` at its way (no arm, else the first arm); a URL entered by
    hand (not one of siyu's ways) is left alone."""
    arms = variants_of(session, code)
    by_route: dict[int, WecomContactWay] = {}
    for way in sorted(ways, key=lambda w: arms.index(w.variant) if w.variant in arms else len(arms)):
        if way.route_id is not None and way.deleted_at is None and way.qr_code:
            by_route.setdefault(way.route_id, way)
    routes = session.scalars(select(LiveCodeRoute).where(LiveCodeRoute.live_code_id == code.id)).all()
    for route in routes:
        chosen = by_route.get(route.id)
        wanted = chosen.qr_code if chosen else None
        if route.contact_qr_url != wanted and _is_ours(route.contact_qr_url, previous):
            route.contact_qr_url = wanted


def lock_code(session: Session, code_id: int) -> LiveCode | None:
    """Lock the code's row for this transaction (SQLite: its write transaction already holds the
    database lock) and read it afresh: pushes of one code queue here."""
    return session.scalar(
        select(LiveCode).where(LiveCode.id == code_id).with_for_update().execution_options(populate_existing=True)
    )


def sync_code(
    session: Session,
    config: WecomConfig,
    code: LiveCode,
    clock: Clock,
    *,
    client: WecomClient | None = None,
    report: SyncReport | None = None,
) -> SyncReport:
    """Make the code's ways on WeCom match `plan_ways`: create, update on change, delete. Locks the
    code's row first and reads its ways after the lock. Returns this code's report (also merged
    into `report` when given)."""
    own = SyncReport()
    client = client or client_for(config, secret="contact")
    now = clock.now()
    code = lock_code(session, code.id) or code
    plan = plan_ways(session, code, now)
    own.failures.extend(plan.skipped)
    ways = list(
        session.scalars(
            select(WecomContactWay)
            .where(WecomContactWay.live_code_id == code.id, WecomContactWay.deleted_at.is_(None))
            .order_by(WecomContactWay.id)
            .execution_options(populate_existing=True)
        )
    )
    previous = {w.qr_code for w in ways if w.qr_code}
    for retired in [w for w in ways if w.pushed.get("retired")]:
        ways.remove(retired)
        try:
            _delete(client, retired)
        except WecomError as exc:
            retired.error = _failure(session, own, code, _key_of(retired), exc, clock)
            continue
        retired.deleted_at, retired.error = now, None
        own.deleted += 1
    existing = {_key_of(w): w for w in ways}
    wanted = {spec.key: spec for spec in plan.specs}
    arms = variants_of(session, code)
    kind = _kind_of(code)
    for key, old in existing.items():
        if key in wanted:
            continue
        if old.route_id is None and code.deleted_at is None and old.kind == kind and old.variant in arms:
            # A pool with nobody eligible now keeps its last list (WeCom needs one): said on the row and page.
            old.error = NO_CHATS if kind == ContactWayKind.JOIN else NO_USERS
            own.failures.append({"live_code_id": code.id, "route_id": None, "variant": old.variant, "error": old.error})
            own.unchanged += 1
            continue
        try:
            _delete(client, old)
        except WecomError as exc:
            old.error = _failure(session, own, code, key, exc, clock)
            continue
        old.deleted_at, old.error = now, None
        own.deleted += 1
    for variant in sorted(plan.empty_pools - {k[1] for k in existing if k[0] is None}, key=str):
        error = NO_CHATS_NEW if kind == ContactWayKind.JOIN else NO_USERS_NEW
        own.failures.append({"live_code_id": code.id, "route_id": None, "variant": variant, "error": error})
    for key, spec in wanted.items():
        way = existing.get(key)
        if way is not None and way.pushed == spec.pushed():
            own.unchanged += 1
            way.error = None
            if not way.qr_code:
                _fill_qr(client, way)
            continue
        if way is not None:
            try:
                _update(client, way, spec)
            except WecomError as exc:
                if exc.code in GONE_CODES and _is_gone(client, way):
                    way.deleted_at, way.error = now, "企业微信中已不存在，已重新创建"
                    ways.remove(way)
                    own.deleted += 1
                    way = None  # recreated below
                else:
                    way.error = _failure(session, own, code, key, exc, clock)
                    continue
            else:
                way.pushed, way.pushed_at, way.state, way.error = spec.pushed(), now, spec.state, None
                own.updated += 1
                continue
        try:
            config_id, qr_code = _create(client, spec)
        except WecomError as exc:
            _failure(session, own, code, key, exc, clock)
            continue
        way = WecomContactWay(
            workspace_id=code.workspace_id,
            live_code_id=code.id,
            route_id=spec.route_id,
            variant=spec.variant,
            kind=spec.kind,
            state=spec.state,
            config_id=config_id,
            qr_code=qr_code,
            pushed=spec.pushed(),
            pushed_at=now,
            created_at=now,
        )
        session.add(way)
        session.flush()  # the config_id is on the row before any further call
        ways.append(way)
        own.created += 1
    session.flush()
    _set_route_qrs(session, code, ways, previous)
    if report is not None:
        report.merge(code.id, own)
    return own


def _fill_qr(client: WecomClient, way: WecomContactWay) -> None:
    """Read the QR of a way saved without one (its get failed right after the add)."""
    try:
        way.qr_code = _qr_of(client, ContactWayKind(way.kind), way.config_id)
    except WecomError as exc:
        way.error = redact(str(exc))


def _kind_of(code: LiveCode) -> ContactWayKind:
    return ContactWayKind.JOIN if code.kind == LiveCodeKind.GROUP else ContactWayKind.CONTACT


def codes_to_sync(session: Session, workspace_id: int, live_code_id: int | None = None) -> list[LiveCode]:
    """Codes of the workspace that have or should have ways: live ones, and deleted ones still holding ways."""
    query = select(LiveCode).where(LiveCode.workspace_id == workspace_id)
    if live_code_id is not None:
        query = query.where(LiveCode.id == live_code_id)
    with_ways = select(WecomContactWay.live_code_id).where(
        WecomContactWay.workspace_id == workspace_id, WecomContactWay.deleted_at.is_(None)
    )
    query = query.where(LiveCode.deleted_at.is_(None) | LiveCode.id.in_(with_ways))
    return list(session.scalars(query.order_by(LiveCode.id)))


def retire_route_ways(session: Session, *, workspace_id: int, route_ids: list[int]) -> int:
    """Call before deleting live code routes: their ways are detached from the routes (the route
    rows' deletion would cascade to them) and marked `pushed["retired"]`, so the next push deletes
    them on WeCom. Returns how many."""
    if not route_ids:
        return 0
    ways = session.scalars(
        select(WecomContactWay).where(
            WecomContactWay.workspace_id == workspace_id,
            WecomContactWay.route_id.in_(route_ids),
            WecomContactWay.deleted_at.is_(None),
        )
    ).all()
    for way in ways:
        way.route_id, way.pushed = None, {"retired": True}
    session.flush()
    return len(ways)


def sync_workspace(
    session: Session,
    config: WecomConfig,
    clock: Clock,
    *,
    live_code_id: int | None = None,
    client: WecomClient | None = None,
) -> WecomSyncRun:
    """Push every code of the workspace (or one) in this one session and record it (`record_run`).
    The job uses `tasks.push_workspace` instead: one transaction per code."""
    report = SyncReport()
    client = client or client_for(config, secret="contact")
    started = clock.now()
    for code in codes_to_sync(session, config.workspace_id, live_code_id):
        sync_code(session, config, code, clock, client=client, report=report)
    return record_run(session, config.workspace_id, report, clock, started_at=started, live_code_id=live_code_id)


def record_run(
    session: Session,
    workspace_id: int,
    report: SyncReport,
    clock: Clock,
    *,
    started_at: datetime,
    live_code_id: int | None = None,
    sweep: dict[str, int] | None = None,
) -> WecomSyncRun:
    """Record a push on the workspace's one `WecomSyncRun` of scope "contact_ways": counts (summed
    over `cursor["by_code"]`), failures in `cursor["failures"]`, always finished (the full sync never
    takes it for a run to resume). A push of one code replaces only that code's counts and failures.
    Locks the integration row first, so concurrent pushes never make two run rows."""
    session.execute(select(WecomIntegration.id).where(WecomIntegration.workspace_id == workspace_id).with_for_update())
    run = session.scalar(
        select(WecomSyncRun)
        .where(WecomSyncRun.workspace_id == workspace_id, WecomSyncRun.scope == SYNC_SCOPE)
        .order_by(WecomSyncRun.id.desc())
        .limit(1)
        .execution_options(populate_existing=True)
    )
    if run is None:
        run = WecomSyncRun(workspace_id=workspace_id, scope=SYNC_SCOPE, cursor={}, counts={}, started_at=started_at)
        session.add(run)
    cursor = dict(run.cursor or {})
    if live_code_id is None:
        by_code = {str(k): v for k, v in report.by_code.items()}
        failures = list(report.failures)
        cursor["sweep"] = sweep or {}
    else:
        by_code = dict(cursor.get("by_code") or {})
        by_code.pop(str(live_code_id), None)
        by_code.update({str(k): v for k, v in report.by_code.items()})
        kept = [f for f in cursor.get("failures") or [] if f.get("live_code_id") != live_code_id]
        failures = kept + report.failures
    keys = ("created", "updated", "deleted", "unchanged")
    counts = {key: sum(int(c.get(key, 0)) for c in by_code.values()) for key in keys}
    counts["errors"] = len(failures)
    cursor["by_code"], cursor["failures"] = by_code, failures[:200]
    run.cursor, run.counts = cursor, counts
    api_failures = [f for f in failures if "retryable" in f]
    run.status = SyncStatus.DONE  # never FAILED: a push has nothing to resume, the next one redoes it
    run.error = "; ".join(str(f["error"]) for f in api_failures[:5])[:1000] or None
    run.started_at, run.step, run.finished_at = started_at, "done", clock.now()
    session.flush()
    return run


def list_orphan_candidates(client: WecomClient, held: set[str], clock: Clock) -> list[tuple[str, int]]:
    """Contact ways on WeCom (created in the last 90 days, WeCom's window) that siyu holds no row
    for and whose state decodes to a live code: (config_id, live_code_id). Bounded: at most
    `SWEEP_MAX_PAGES` list pages and `SWEEP_MAX_CHECKS` get calls. No database access."""
    now = int(clock.now().timestamp())
    unknown: list[str] = []
    cursor = ""
    for _ in range(SWEEP_MAX_PAGES):
        data: dict[str, Any] = {"start_time": now - 90 * 86400 + 60, "end_time": now, "limit": 1000}
        if cursor:
            data["cursor"] = cursor
        page = client.call("POST", "externalcontact/list_contact_way", data=data)
        unknown += [str(w["config_id"]) for w in page.get("contact_way") or [] if str(w["config_id"]) not in held]
        cursor = str(page.get("next_cursor") or "")
        if not cursor:
            break
    found: list[tuple[str, int]] = []
    for config_id in unknown[:SWEEP_MAX_CHECKS]:
        try:
            way = client.call("POST", "externalcontact/get_contact_way", data={"config_id": config_id})
        except WecomError as exc:
            if exc.code in GONE_CODES:
                continue
            raise
        decoded = decode_state((way.get("contact_way") or {}).get("state"))
        if decoded is not None:
            found.append((config_id, decoded.live_code_id))
    return found


def held_config_ids(session: Session, workspace_id: int) -> set[str]:
    """Config ids of the workspace's live ways."""
    return set(
        session.scalars(
            select(WecomContactWay.config_id).where(
                WecomContactWay.workspace_id == workspace_id, WecomContactWay.deleted_at.is_(None)
            )
        )
    )


def delete_orphan(
    session: Session, client: WecomClient, *, workspace_id: int, config_id: str, live_code_id: int
) -> bool:
    """Delete an orphan way on WeCom if its code is this workspace's and, once the code is locked (a
    push of the code in flight has committed its rows by then), siyu still holds no row for it."""
    code = lock_code(session, live_code_id)
    if code is None or code.workspace_id != workspace_id:
        return False
    held = session.scalar(
        select(WecomContactWay.id).where(
            WecomContactWay.config_id == config_id,
            WecomContactWay.workspace_id == workspace_id,
            WecomContactWay.deleted_at.is_(None),
        )
    )
    if held is not None:
        return False
    _delete_config(client, ContactWayKind.CONTACT, config_id)
    logger.info("orphan contact way deleted", extra={"config_id": config_id, "live_code_id": live_code_id})
    return True


def way_for_scan(session: Session, route_id: int | None, variant: str | None) -> WecomContactWay | None:
    """The live way of a scan's route and arm (the arm-less way when the arm has none)."""
    if route_id is None:
        return None
    ways = session.scalars(
        select(WecomContactWay).where(
            WecomContactWay.route_id == route_id,
            WecomContactWay.deleted_at.is_(None),
            WecomContactWay.qr_code.is_not(None),
        )
    ).all()
    by_variant = {w.variant: w for w in ways}
    return by_variant.get(variant) or by_variant.get(None)
