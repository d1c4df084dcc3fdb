"""Concurrent scans never push a route past its daily cap, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import random
import threading

import pytest
from sqlalchemy import func, select

from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.livecodes.scan import find_code, scan_code
from siyu.models import CommunityGroup, LiveCodeRouteDay, LiveCodeScan
from tests.concurrency import committed_database, run_together  # noqa: F401 - fixture `database`: real commits
from tests.factories import make_group, make_live_code, make_staff, make_workspace

THREADS = 6
SCANS_PER_THREAD = 5


def _scan_concurrently(database: Database, slug: str, clock: FrozenClock) -> list[str]:
    errors: list[str] = []
    barrier = threading.Barrier(THREADS)

    def run(worker: int) -> None:
        rng = random.Random(worker)
        barrier.wait()
        for n in range(SCANS_PER_THREAD):
            try:
                with database.transaction() as session:
                    code = find_code(session, slug)
                    assert code is not None
                    scan_code(session, code, visitor_id=f"w{worker}-{n}", at=clock.now(), rng=rng)
            except Exception as exc:  # collected and asserted on below
                errors.append(repr(exc))

    threads = [threading.Thread(target=run, args=(w,)) for w in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.mark.parametrize("rotation", ["round_robin", "random"])
def test_concurrent_scans_respect_caps(database: Database, clock: FrozenClock, rotation: str) -> None:
    # given two capped staff members and a capped backup: 4 + 3 + 2 = 9 places for 30 scans
    with database.transaction() as session:
        ws = make_workspace(session, clock=clock)
        a, b, c = (make_staff(session, workspace=ws, clock=clock) for _ in range(3))
        code = make_live_code(
            session,
            workspace=ws,
            clock=clock,
            rotation=rotation,
            is_sticky=False,
            routes=[
                {"staff_id": a.id, "daily_cap": 4},
                {"staff_id": b.id, "daily_cap": 3},
                {"staff_id": c.id, "daily_cap": 2, "is_backup": True},
            ],
        )
        slug, staff_ids = code.slug, (a.id, b.id, c.id)
    # when six phones scan five times each at once
    assert _scan_concurrently(database, slug, clock) == []
    # then every scan is recorded and no staff member got more than the cap
    with database.session() as session:
        per_staff = dict(
            session.execute(
                select(LiveCodeScan.staff_id, func.count())
                .where(LiveCodeScan.workspace_id == ws.id)
                .group_by(LiveCodeScan.staff_id)
            ).all()
        )
        total = session.scalar(select(func.count()).select_from(LiveCodeScan).where(LiveCodeScan.workspace_id == ws.id))
        counters = sorted(session.scalars(select(LiveCodeRouteDay.taken).where(LiveCodeRouteDay.workspace_id == ws.id)))
    assert total == THREADS * SCANS_PER_THREAD
    assert {k: per_staff.get(k, 0) for k in staff_ids} == {staff_ids[0]: 4, staff_ids[1]: 3, staff_ids[2]: 2}
    assert per_staff[None] == THREADS * SCANS_PER_THREAD - 9
    assert counters == [2, 3, 4]


def test_concurrent_group_joins_never_overfill(database: Database, clock: FrozenClock) -> None:
    from siyu.livecodes.adds import record_group_join

    with database.transaction() as session:
        ws = make_workspace(session, clock=clock)
        group = make_group(session, workspace=ws, clock=clock, limit=3)
        code = make_live_code(session, workspace=ws, clock=clock, kind="group", routes=[{"group_id": group.id}])
        scans = [scan_code(session, code, visitor_id=f"j{n}", at=clock.now()).scan for n in range(8)]
        slug, scan_ids, group_id = code.slug, [s.id for s in scans if s is not None], group.id
    outcomes: list[str] = []
    barrier = threading.Barrier(len(scan_ids))

    def join(scan_id: int) -> None:
        barrier.wait()
        try:
            with database.transaction() as session:
                code = find_code(session, slug)
                scan = session.get(LiveCodeScan, scan_id)
                assert code is not None and scan is not None
                record_group_join(
                    session, code=code, scan=scan, external_userid=f"wm{scan_id}", at=clock.now(), clock=clock
                )
            outcomes.append("joined")
        except Exception as exc:
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=join, args=(s,)) for s in scan_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with database.session() as session:
        members = session.scalar(select(CommunityGroup.member_count).where(CommunityGroup.id == group_id))
    assert sorted(outcomes) == ["Conflict"] * 5 + ["joined"] * 3
    assert members == 3


def test_the_same_add_reported_at_once_opens_one_edge_and_one_welcome(database: Database, clock: FrozenClock) -> None:
    from siyu.livecodes.adds import record_add
    from siyu.models import CustomerEvent, Relationship

    with database.transaction() as session:
        ws = make_workspace(session, clock=clock)
        staff = make_staff(session, workspace=ws, clock=clock)
        code = make_live_code(
            session, workspace=ws, clock=clock, routes=[{"staff_id": staff.id}], welcome={"text": "欢迎"}
        )
        state = scan_code(session, code, visitor_id="dup", at=clock.now()).state
        ws_id, staff_id = ws.id, staff.id

    def report() -> None:
        with database.transaction() as session:
            record_add(
                session,
                workspace_id=ws_id,
                staff_id=staff_id,
                external_userid="wmSAME",
                state=state,
                at=clock.now(),
                clock=clock,
            )

    errors = run_together([report] * 4)
    with database.session() as session:
        edges = session.scalar(select(func.count()).select_from(Relationship).where(Relationship.workspace_id == ws_id))
        welcomes = session.scalar(
            select(func.count())
            .select_from(CustomerEvent)
            .where(CustomerEvent.workspace_id == ws_id, CustomerEvent.type == "welcome.sent")
        )
    # a loser may see the identity claimed concurrently and ask for a retry (409); none writes twice
    assert all("Conflict" in e for e in errors), errors
    assert (edges, welcomes) == (1, 1)
