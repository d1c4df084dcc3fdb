"""`siyu backup` / `siyu restore`: an online backup restores to the same rows, table by table."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, make_url, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from siyu.cli import app
from siyu.config import Settings
from siyu.db import Database, make_engine
from siyu.kit.clock import FrozenClock
from siyu.migrate import upgrade
from siyu.models import Base, IntegrationEvent, ShortLink, ShortLinkClick
from siyu.models.integration import EventSource, EventStatus
from siyu.ops.backup import BackupError, Manifest, backup, manifest_path, restore
from tests.conftest import NOW, PG_URL
from tests.factories import (
    actor_for,
    make_channel,
    make_customer,
    make_experiment,
    make_group,
    make_live_code,
    make_order,
    make_relationship,
    make_staff,
    make_store,
    make_tag,
    make_token,
    make_user,
    make_workspace,
)

runner = CliRunner()


@dataclass
class Source:
    engine: Engine
    url: str
    workspace_id: int
    new_database: Any  # () -> url of a fresh, empty database of the same backend


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False).replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture(scope="module")
def source(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Source]:
    """A committed, migrated database of the run's backend with rows in many tables.

    Cloned from the suite's migrated database (migrating afresh costs seconds)."""
    tmp = tmp_path_factory.mktemp("backup")
    if engine.dialect.name == "sqlite":
        assert engine.url.database
        src, dst = sqlite3.connect(engine.url.database), sqlite3.connect(tmp / "source.db")
        src.backup(dst)
        src.close()
        dst.close()
        names = iter(range(1_000))
        clone = make_engine(f"sqlite:///{tmp / 'source.db'}")
        yield from _filled(clone, lambda: f"sqlite:///{tmp / f'target-{next(names)}.db'}")
        clone.dispose()
        return
    assert PG_URL
    admin = make_engine(PG_URL).execution_options(isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def create(template: str | None = None) -> str:
        name = f"siyu_backup_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
            conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))  # as tests/conftest.py
        made.append(name)
        return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)

    engine.dispose()  # a template database must have no open connections
    try:
        clone = make_engine(create(engine.url.database))
    except DBAPIError:  # a connection of an earlier test is still open: migrate afresh
        clone = make_engine(create())
        upgrade(clone)
    try:
        yield from _filled(clone, create)
    finally:
        clone.dispose()
        with admin.connect() as conn:
            for name in made:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _filled(engine: Engine, new_database: Any) -> Iterator[Source]:
    clock = FrozenClock(NOW)
    settings = Settings(database_url=_url(engine), secret_key="test-secret", log_json=False)
    with Database(settings, engine=engine).transaction() as db:
        ws = make_workspace(db, clock=clock)
        store = make_store(db, workspace=ws)
        staff = make_staff(db, workspace=ws, clock=clock, store=store)
        make_user(db, clock=clock, workspace=ws)
        make_token(db, clock=clock, workspace=ws)
        channel = make_channel(db, workspace=ws, clock=clock)
        make_group(db, workspace=ws, clock=clock, members=3)
        make_experiment(db, workspace=ws, clock=clock)
        make_live_code(db, workspace=ws, clock=clock, routes=[{"staff_id": staff.id}])
        make_tag(db, workspace=ws)
        for n in range(5):
            customer = make_customer(db, actor=actor_for(ws), clock=clock, name=f"顾客{n}").customer
            make_order(db, customer=customer, paid_at=NOW - timedelta(days=n))
            make_relationship(db, customer=customer, staff=staff, added_at=NOW - timedelta(days=n), channel=channel)
        link = ShortLink(workspace_id=ws.id, slug="bk1", target_url="https://x.cn", utm={"s": "短信"}, created_at=NOW)
        db.add(link)
        db.flush()
        db.add(
            ShortLinkClick(
                workspace_id=ws.id, link_id=link.id, campaign_link_id=link.id, visitor_id="v", clicked_at=NOW
            )
        )
        db.flush()
        workspace_id = ws.id
    yield Source(engine, _url(engine), workspace_id, new_database)


def _event(workspace_id: int, n: int) -> IntegrationEvent:
    return IntegrationEvent(
        workspace_id=workspace_id,
        source=EventSource.WECOM,
        dedup_key=f"w{n}",
        event="change_external_contact",
        change_type=None,
        payload={"n": n, "文本": "你好"},
        status=EventStatus.PROCESSED,
        error=None,
        attempts=1,
        duplicates=0,
        received_at=NOW,
        processed_at=NOW,
    )


def _dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order."""
    rows: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows[table.name] = [tuple(r) for r in conn.execute(select(table).order_by(*table.primary_key.columns))]
        rows["alembic_version"] = [tuple(r) for r in conn.execute(text("SELECT version_num FROM alembic_version"))]
    return rows


def test_an_online_backup_restores_every_table_row_by_row(source: Source, tmp_path: Path) -> None:
    # given a writer committing events while the backup runs
    database = Database(Settings(database_url=source.url, secret_key="x", log_json=False), engine=source.engine)
    stop, committed = threading.Event(), threading.Semaphore(0)

    def write() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            with database.transaction() as session:
                session.add(_event(source.workspace_id, n))
            committed.release()
            stop.wait(0.002)  # leave the two cores to the backup: a few hundred commits are plenty

    writer = threading.Thread(target=write)
    writer.start()
    try:
        for _ in range(5):
            assert committed.acquire(timeout=10)
        manifest = backup(source.url, tmp_path / "siyu.backup", clock=FrozenClock(NOW))
        for _ in range(5):
            assert committed.acquire(timeout=10)
    finally:
        stop.set()
        writer.join()
    after = _dump(source.engine)

    # when it is restored into a fresh database
    target_url = source.new_database()
    assert restore(tmp_path / "siyu.backup", target_url) == manifest
    target = make_engine(target_url)
    try:
        restored = _dump(target)
    finally:
        target.dispose()

    # then every table holds the same rows; the writer's table a prefix of its ids (a snapshot)
    assert set(restored) == set(after) and len(after) == len(Base.metadata.tables) + 1
    events = restored.pop("integration_events")
    assert 5 <= len(events) <= len(after["integration_events"]) - 5
    assert events == after.pop("integration_events")[: len(events)]
    assert restored == after
    assert sum(1 for rows in after.values() if rows) >= 20
    assert manifest.counts["integration_events"] == len(events)
    assert {name: manifest.counts[name] for name in after} == {name: len(rows) for name, rows in after.items()}
    assert manifest.revision == after["alembic_version"][0][0]
    assert manifest.format == source.engine.dialect.name


@pytest.fixture(scope="module")
def pristine(source: Source, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One backup made through the CLI; tests damage copies of it."""
    path = tmp_path_factory.mktemp("made") / "siyu.backup"
    result = runner.invoke(app, ["backup", str(path), "--database", source.url])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == sum(Manifest.read(manifest_path(path)).counts.values())
    return path


@pytest.fixture
def made(pristine: Path, tmp_path: Path) -> Path:
    path = tmp_path / "copy.backup"
    shutil.copyfile(pristine, path)
    shutil.copyfile(manifest_path(pristine), manifest_path(path))
    return path


def _target(tmp_path: Path) -> tuple[str, Path]:
    """A small SQLite database standing in for the database a restore must not touch."""
    path = tmp_path / "target.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE precious (n INTEGER)")
        conn.execute("INSERT INTO precious VALUES (42)")
    conn.close()
    return f"sqlite:///{path}", path


def test_overwriting_a_backup_needs_force(source: Source, made: Path) -> None:
    before = made.read_bytes()
    refused = runner.invoke(app, ["backup", str(made), "--database", source.url])
    assert refused.exit_code == 2
    assert "--force" in refused.stderr and made.read_bytes() == before
    forced = runner.invoke(app, ["backup", str(made), "--force", "--database", source.url])
    assert forced.exit_code == 0, forced.output
    assert Manifest.read(manifest_path(made)).sha256 == hashlib.sha256(made.read_bytes()).hexdigest()


@pytest.mark.parametrize("damage", ["truncated", "flipped", "no manifest"])
def test_a_damaged_backup_is_refused_and_the_target_untouched(made: Path, tmp_path: Path, damage: str) -> None:
    url, target = _target(tmp_path)
    before = target.read_bytes()
    data = made.read_bytes()
    if damage == "truncated":
        made.write_bytes(data[: len(data) // 2])
    elif damage == "flipped":
        middle = len(data) // 2
        made.write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :])
    else:
        manifest_path(made).unlink()
    message = "no manifest" if damage == "no manifest" else "corrupted or truncated"
    with pytest.raises(BackupError, match=message):
        restore(made, url)
    assert target.read_bytes() == before


def test_a_backup_from_a_newer_schema_is_refused(made: Path, tmp_path: Path) -> None:
    path = manifest_path(made)
    data = json.loads(path.read_text())
    data["revision"] = "0099"
    path.write_text(json.dumps(data))
    url, target = _target(tmp_path)
    before = target.read_bytes()
    result = runner.invoke(app, ["restore", str(made), "--database", url, "--yes"])
    assert result.exit_code == 2
    assert "revision 0099" in result.stderr and target.read_bytes() == before


def test_a_sqlite_restore_through_the_cli(source: Source, made: Path, tmp_path: Path) -> None:
    if source.engine.dialect.name != "sqlite":
        pytest.skip("the PostgreSQL restore is covered by the row-by-row test")
    url, _ = _target(tmp_path)
    asked = runner.invoke(app, ["restore", str(made), "--database", url], input="n\n")
    assert asked.exit_code == 1 and "Replace everything" in asked.output
    result = runner.invoke(app, ["restore", str(made), "--database", url, "--yes"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["revision"] == Manifest.read(manifest_path(made)).revision
    with sqlite3.connect(tmp_path / "target.db") as conn:
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'precious'").fetchone() == (0,)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
    restored = make_engine(url)
    with Session(restored) as session:
        assert session.scalar(select(ShortLink.slug)) == "bk1"
    restored.dispose()
