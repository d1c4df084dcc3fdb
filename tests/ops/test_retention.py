"""Data retention: old events go to monthly Parquet files, then leave the database."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from siyu.app import create_app
from siyu.config import Settings
from siyu.db import Database
from siyu.jobs.scheduler import periodic_tasks
from siyu.kit.clock import FrozenClock
from siyu.models import IntegrationEvent, RetentionArchive, Role, ShortLink, ShortLinkClick, Workspace
from siyu.models.integration import EventSource, EventStatus
from siyu.ops import cli as ops_cli
from siyu.ops.retention import repository
from siyu.ops.retention.parquet import read_rows, sha256_of
from siyu.ops.retention.repository import table_of
from siyu.ops.retention.schemas import BY_NAME, RetentionConfigError, RetentionPolicy, cutoff
from siyu.ops.retention.service import run_retention
from tests.factories import make_user, make_workspace
from tests.web.conftest import PASSWORD, login

EVENTS = BY_NAME["integration_events"]
PAYLOAD = {"ToUserName": "ww1", "Changes": ["添加", {"tags": [1, 2]}], "ok": True, "n": None}


def _event(db: Session, ws: Workspace, *, at: datetime, status: EventStatus, key: str) -> IntegrationEvent:
    event = IntegrationEvent(
        workspace_id=ws.id,
        source=EventSource.WECOM,
        dedup_key=key,
        event="change_external_contact",
        change_type="add_external_contact",
        payload=PAYLOAD | {"key": key},
        status=status,
        error=None,
        attempts=1,
        duplicates=0,
        received_at=at,
        processed_at=None if status == EventStatus.RECEIVED else at + timedelta(seconds=1),
    )
    db.add(event)
    db.flush()
    return event


def _rows(db: Session, ids: list[int]) -> list[dict[str, Any]]:
    table = table_of(EVENTS)
    return [dict(r) for r in db.execute(select(table).where(table.c.id.in_(ids)).order_by(table.c.id)).mappings()]


def _keep(settings: Settings, months: int, tmp: Path) -> Settings:
    settings.retention_months = months
    settings.archive_dir = tmp
    return settings


def test_cutoff_is_the_start_of_a_whole_month() -> None:
    now = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    assert cutoff(now, 3) == datetime(2026, 8, 1, tzinfo=UTC)
    assert cutoff(now, 11) == datetime(2025, 12, 1, tzinfo=UTC)
    assert cutoff(now, 12) == datetime(2025, 11, 1, tzinfo=UTC)
    assert cutoff(datetime(2026, 1, 31, tzinfo=UTC), 1) == datetime(2025, 12, 1, tzinfo=UTC)


def test_per_table_overrides_and_typos(settings: Settings) -> None:
    settings.retention_months = 12
    settings.retention_overrides = "short_link_clicks=6, delivery_callbacks=0"
    policy = RetentionPolicy.from_settings(settings)
    assert policy.months == {
        "live_code_scans": 12,
        "short_link_clicks": 6,
        "referral_visits": 12,
        "delivery_callbacks": 0,
        "integration_events": 12,
    }
    assert policy.archive_dir == settings.data_dir / "archive"
    for bad in ("customer_events=3", "short_link_clicks", "short_link_clicks=-1", "short_link_clicks=３"):
        settings.retention_overrides = bad
        with pytest.raises(RetentionConfigError, match="SIYU_RETENTION_OVERRIDES"):
            RetentionPolicy.from_settings(settings)


def test_old_settled_events_move_to_monthly_files_and_leave_the_database(
    database: Database, db: Session, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    # given events either side of the cutoff (2026-08-01 for 3 months on 2026-11-23), some unsettled
    ws, other = make_workspace(db, clock=clock), make_workspace(db, clock=clock)
    june = _event(db, ws, at=datetime(2026, 6, 15, 8, tzinfo=UTC), status=EventStatus.PROCESSED, key="a")
    july1 = _event(db, ws, at=datetime(2026, 7, 1, tzinfo=UTC), status=EventStatus.IGNORED, key="b")
    july2 = _event(
        db, ws, at=datetime(2026, 7, 31, 23, 59, 59, 999999, tzinfo=UTC), status=EventStatus.PROCESSED, key="c"
    )
    failed = _event(db, ws, at=datetime(2026, 7, 10, tzinfo=UTC), status=EventStatus.FAILED, key="d")
    received = _event(db, ws, at=datetime(2026, 5, 10, tzinfo=UTC), status=EventStatus.RECEIVED, key="e")
    recent = _event(db, ws, at=datetime(2026, 8, 1, tzinfo=UTC), status=EventStatus.PROCESSED, key="f")
    elsewhere = _event(db, other, at=datetime(2026, 7, 2, tzinfo=UTC), status=EventStatus.PROCESSED, key="g")
    link = ShortLink(workspace_id=ws.id, slug="r1", target_url="https://x.cn", utm={}, created_at=clock.now())
    db.add(link)
    db.flush()
    click = ShortLinkClick(
        workspace_id=ws.id,
        link_id=link.id,
        campaign_link_id=link.id,
        visitor_id="v",
        clicked_at=datetime(2026, 7, 3, tzinfo=UTC),
    )
    db.add(click)
    db.commit()
    archived = [june.id, july1.id, july2.id]
    before = _rows(db, [*archived, elsewhere.id])
    _keep(settings, 3, tmp_path)
    settings.retention_overrides = "short_link_clicks=0"

    # when retention runs with batches of two
    report = run_retention(database, settings, clock=clock, batch_size=2)

    # then exactly the settled old events are in their month's file, and gone from the database
    assert report.as_dict()["rows"] == 4
    assert {(t.workspace_id, t.table): t.rows_by_month for t in report.tables if t.rows} == {
        (ws.id, "integration_events"): {"2026-06": 1, "2026-07": 2},
        (other.id, "integration_events"): {"2026-07": 1},
    }
    june_file = tmp_path / str(ws.id) / "integration_events" / "2026-06.parquet"
    july_file = tmp_path / str(ws.id) / "integration_events" / "2026-07.parquet"
    table = table_of(EVENTS)
    assert read_rows(table, june_file) == before[:1]
    assert read_rows(table, july_file) == before[1:3]  # JSON payloads and timestamps round-trip
    assert read_rows(table, july_file)[0]["payload"] == PAYLOAD | {"key": "b"}
    kept, gone, click_id = {failed.id, received.id, recent.id}, set([*archived, elsewhere.id]), click.id
    db.expire_all()
    left = set(db.scalars(select(IntegrationEvent.id)))
    assert left >= kept and not left & gone
    assert db.get(ShortLinkClick, click_id) is not None  # its table keeps forever
    records = db.scalars(
        select(RetentionArchive).where(RetentionArchive.workspace_id == ws.id).order_by(RetentionArchive.period)
    ).all()
    assert [(r.table_name, r.period, r.rows, r.path, r.sha256) for r in records] == [
        ("integration_events", "2026-06", 1, f"{ws.id}/integration_events/2026-06.parquet", sha256_of(june_file)),
        ("integration_events", "2026-07", 2, f"{ws.id}/integration_events/2026-07.parquet", sha256_of(july_file)),
    ]

    # and a second run finds nothing left to do
    assert run_retention(database, settings, clock=clock).rows == 0


def test_dry_run_counts_and_writes_nothing(
    database: Database, db: Session, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    ws = make_workspace(db, clock=clock)
    for n, at in enumerate(
        [datetime(2026, 6, 30, 23, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC), datetime(2026, 9, 1, tzinfo=UTC)]
    ):
        _event(db, ws, at=at, status=EventStatus.PROCESSED, key=f"k{n}")
    db.commit()
    archive = tmp_path / "archive"
    report = run_retention(database, _keep(settings, 3, archive), clock=clock, dry_run=True)
    assert [(t.table, t.rows_by_month) for t in report.tables if t.workspace_id == ws.id and t.rows] == [
        ("integration_events", {"2026-06": 1, "2026-07": 1})
    ]
    assert not archive.exists()
    assert db.scalar(select(RetentionArchive.id).where(RetentionArchive.workspace_id == ws.id)) is None
    assert len(db.scalars(select(IntegrationEvent.id).where(IntegrationEvent.workspace_id == ws.id)).all()) == 3


def test_nothing_happens_when_retention_is_off(
    database: Database, db: Session, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    ws = make_workspace(db, clock=clock)
    _event(db, ws, at=datetime(2020, 1, 1, tzinfo=UTC), status=EventStatus.PROCESSED, key="old")
    db.commit()
    assert run_retention(database, _keep(settings, 0, tmp_path / "a"), clock=clock).tables == []
    assert not (tmp_path / "a").exists()


def test_a_crash_between_file_and_delete_reruns_without_duplicates(
    database: Database,
    db: Session,
    settings: Settings,
    clock: FrozenClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ws = make_workspace(db, clock=clock)
    events = [
        _event(db, ws, at=datetime(2026, 7, day, tzinfo=UTC), status=EventStatus.PROCESSED, key=f"c{day}")
        for day in (1, 2, 3)
    ]
    db.commit()
    ids = [e.id for e in events]
    originals = _rows(db, ids)
    _keep(settings, 3, tmp_path)
    path = tmp_path / str(ws.id) / "integration_events" / "2026-07.parquet"

    # given a run that dies after writing the first batch's file, before its delete
    def crash(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("power cut")

    monkeypatch.setattr(repository, "delete_rows", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        run_retention(database, settings, clock=clock, batch_size=2)
    assert [r["id"] for r in read_rows(table_of(EVENTS), path)] == ids[:2]
    db.expire_all()
    assert _rows(db, ids) == originals  # nothing deleted, nothing recorded
    assert db.scalar(select(RetentionArchive.id).where(RetentionArchive.workspace_id == ws.id)) is None

    # when it runs again
    monkeypatch.undo()
    assert run_retention(database, settings, clock=clock, batch_size=2).rows == 3

    # then every row is in the file once and the record describes the file
    assert read_rows(table_of(EVENTS), path) == originals
    record = db.scalars(select(RetentionArchive).where(RetentionArchive.workspace_id == ws.id)).one()
    assert (record.rows, record.sha256) == (3, sha256_of(path))
    assert _rows(db, ids) == []


@hsettings(max_examples=12, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    events=st.lists(
        st.tuples(st.integers(min_value=0, max_value=200), st.sampled_from(list(EventStatus))), min_size=0, max_size=12
    ),
    batch_size=st.integers(min_value=1, max_value=5),
)
def test_archived_plus_remaining_is_the_original_and_no_row_twice(
    database: Database,
    connection: Connection,
    settings: Settings,
    events: list[tuple[int, EventStatus]],
    batch_size: int,
) -> None:
    clock = FrozenClock(datetime(2026, 11, 23, 2, tzinfo=UTC))
    savepoint = connection.begin_nested()
    try:
        with (
            tempfile.TemporaryDirectory() as tmp,
            Session(bind=connection, join_transaction_mode="create_savepoint") as db,
        ):
            ws = make_workspace(db, clock=clock)
            made = [
                _event(db, ws, at=datetime(2026, 4, 1, tzinfo=UTC) + timedelta(days=day), status=status, key=f"p{n}")
                for n, (day, status) in enumerate(events)
            ]
            db.commit()
            original = {row["id"]: row for row in _rows(db, [e.id for e in made])}
            run_retention(database, _keep(settings, 3, Path(tmp)), clock=clock, batch_size=batch_size)
            archived: list[dict[str, Any]] = []
            for path in sorted((Path(tmp) / str(ws.id) / "integration_events").glob("*.parquet")):
                rows = read_rows(table_of(EVENTS), path)
                assert {r["received_at"].strftime("%Y-%m") for r in rows} == {path.stem}
                archived += rows
            db.expire_all()
            remaining = _rows(db, list(original))
            ids = [r["id"] for r in archived] + [r["id"] for r in remaining]
            assert sorted(ids) == sorted(original)  # each row exactly once, in a file or in the database
            assert all(original[r["id"]] == r for r in archived + remaining)
            settled = {EventStatus.PROCESSED, EventStatus.IGNORED}
            assert {r["id"] for r in archived} == {
                i
                for i, r in original.items()
                if r["status"] in settled and r["received_at"] < datetime(2026, 8, 1, tzinfo=UTC)
            }
    finally:
        savepoint.rollback()


def test_cli_run_and_list(
    database: Database, db: Session, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    ws = make_workspace(db, clock=clock)
    _event(db, ws, at=datetime(2025, 1, 5, tzinfo=UTC), status=EventStatus.PROCESSED, key="cli")
    db.commit()
    _keep(settings, 1, tmp_path)
    runner = CliRunner()
    dry = runner.invoke(ops_cli.retention_app, ["run", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert {"workspace_id": ws.id, "table": "integration_events", "rows": 1, "months": {"2025-01": 1}}.items() <= next(
        t for t in json.loads(dry.stdout)["tables"] if t["workspace_id"] == ws.id
    ).items()
    assert not tmp_path.joinpath(str(ws.id)).exists()
    done = runner.invoke(ops_cli.retention_app, ["run"])
    assert done.exit_code == 0, done.output
    listed = runner.invoke(ops_cli.retention_app, ["list", "--workspace-id", str(ws.id)])
    assert listed.exit_code == 0, listed.output
    [line] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (line["table"], line["period"], line["rows"], line["path"]) == (
        "integration_events",
        "2025-01",
        1,
        f"{ws.id}/integration_events/2025-01.parquet",
    )
    bad = runner.invoke(ops_cli.retention_app, ["list", "--workspace-id", "1e3"])
    assert bad.exit_code == 2 and "--workspace-id" in bad.stderr


def test_the_daily_job_is_declared() -> None:
    [task] = [t for t in periodic_tasks() if t.kind == "retention.run"]
    assert (task.name, task.every(), task.args) == ("retention.run", timedelta(days=1), {})


def test_the_console_page_shows_settings_and_archives_to_admins_only(
    database: Database, db: Session, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    ws = make_workspace(db, clock=clock)
    admin = make_user(db, clock=clock, workspace=ws, role=Role.ADMIN, password=PASSWORD)
    operator = make_user(db, clock=clock, workspace=ws, role=Role.OPERATOR, password=PASSWORD)
    _event(db, ws, at=datetime(2026, 2, 5, tzinfo=UTC), status=EventStatus.PROCESSED, key="page")
    db.commit()
    _keep(settings, 6, tmp_path)
    settings.retention_overrides = "short_link_clicks=0"
    run_retention(database, settings, clock=clock)
    app = create_app(settings, database=database, clock=clock, run_worker=False)
    with TestClient(app, follow_redirects=False) as client:
        login(client, operator.email)
        assert client.get("/retention").status_code == 403
        client.cookies.clear()
        login(client, admin.email)
        page = client.get("/retention")
    assert page.status_code == 200
    html = page.text
    assert "<td><code>integration_events</code></td>\n        <td>6</td>" in html
    assert '<td><code>short_link_clicks</code></td>\n        <td><span class="text-secondary">永久保留</span>' in html
    assert f'<code id="archive-dir">{tmp_path}</code>' in html
    assert "<td>2026-02</td><td>1</td>" in html and f"{ws.id}/integration_events/2026-02.parquet" in html
