"""`siyu backup` / `siyu restore`: a consistent copy of the whole database and its manifest.

SQLite: the online backup API copies the database in one step under a read transaction, so the
copy is a consistent snapshot even while the app writes (WAL). PostgreSQL: `pg_dump
--format=custom` of a snapshot exported by a REPEATABLE READ transaction, in which the row
counts of the manifest are taken too, so counts and dump describe the same moment.

Next to every backup `<file>` lies `<file>.manifest.json`: format, alembic revision, rows per
table, sha256 and size of the file, when and by which siyu version it was made. A restore checks
the file against it before touching the target, and the target against it afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy import URL, Connection, inspect, make_url, text

from siyu import __version__
from siyu.db import make_engine
from siyu.kit.clock import Clock
from siyu.migrate import alembic_config

MANIFEST_SUFFIX = ".manifest.json"


class BackupError(RuntimeError):
    """A backup or restore was refused or failed; the message says why (never a password)."""


@dataclass(frozen=True)
class Manifest:
    """What a backup holds, written beside it as JSON."""

    format: str
    """"sqlite" (a database file) or "postgresql" (a pg_dump custom-format archive)."""
    revision: str | None
    counts: dict[str, int]
    sha256: str
    size: int
    created_at: str
    siyu_version: str

    def write(self, path: Path) -> None:
        _atomic_write(path, json.dumps(asdict(self), ensure_ascii=False, indent=2, sort_keys=True).encode())

    @classmethod
    def read(cls, path: Path) -> Manifest:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            counts = {str(k): int(v) for k, v in data["counts"].items()}
            return cls(
                format=str(data["format"]),
                revision=None if data["revision"] is None else str(data["revision"]),
                counts=counts,
                sha256=str(data["sha256"]),
                size=int(data["size"]),
                created_at=str(data["created_at"]),
                siyu_version=str(data["siyu_version"]),
            )
        except FileNotFoundError:
            raise BackupError(f"no manifest {path.name} beside the backup") from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BackupError(f"manifest {path.name} is not valid: {exc}") from None


def manifest_path(path: Path) -> Path:
    return path.with_name(path.name + MANIFEST_SUFFIX)


def backup(url: str, path: Path, *, clock: Clock, force: bool = False) -> Manifest:
    """Back up the database at `url` to `path` (and its manifest); refuses to overwrite unless `force`."""
    path = path.resolve()
    if not force and (path.exists() or manifest_path(path).exists()):
        raise BackupError(f"{path} already exists; pass --force to overwrite it")
    if not path.parent.is_dir():
        raise BackupError(f"directory {path.parent} does not exist")
    temp = _temp_name(path)
    try:
        if _is_sqlite(url):
            revision, counts = _backup_sqlite(_sqlite_path(url), temp)
            kind = "sqlite"
        else:
            revision, counts = _backup_postgres(url, temp)
            kind = "postgresql"
        _fsync(temp)
        manifest = Manifest(
            format=kind,
            revision=revision,
            counts=counts,
            sha256=_sha256(temp),
            size=temp.stat().st_size,
            created_at=clock.now().isoformat(),
            siyu_version=__version__,
        )
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    manifest.write(manifest_path(path))
    return manifest


def restore(path: Path, url: str) -> Manifest:
    """Restore the backup at `path` into the database at `url`, then check it against the manifest.

    The file, its checksum and its schema revision are checked before the target is touched: a
    corrupted or truncated file, or one from a newer siyu, changes nothing."""
    path = path.resolve()
    if not path.is_file():
        raise BackupError(f"no backup file {path}")
    manifest = Manifest.read(manifest_path(path))
    if path.stat().st_size != manifest.size or _sha256(path) != manifest.sha256:
        raise BackupError(
            f"{path.name} does not match its manifest (size or sha256): the file is corrupted or truncated"
        )
    known = _known_revisions(url)
    if manifest.revision is not None and manifest.revision not in known:
        raise BackupError(
            f"the backup is at schema revision {manifest.revision}, which this siyu ({__version__}) does not know: "
            "restore it with the siyu version that made it (or a newer one)"
        )
    if manifest.format == "sqlite":
        if not _is_sqlite(url):
            raise BackupError("this is a SQLite backup; the target database must be SQLite too")
        _restore_sqlite(path, _sqlite_path(url), manifest)
    elif manifest.format == "postgresql":
        if _is_sqlite(url):
            raise BackupError("this is a PostgreSQL backup; the target database must be PostgreSQL too")
        _restore_postgres(path, url)
    else:
        raise BackupError(f"unknown backup format {manifest.format!r}")
    revision, counts = _describe_url(url, list(manifest.counts))
    if revision != manifest.revision or counts != manifest.counts:
        diff = sorted(t for t in manifest.counts if counts.get(t) != manifest.counts[t])
        raise BackupError(f"the restored database differs from the manifest (revision {revision}; tables {diff})")
    return manifest


# SQLite


def _backup_sqlite(source: Path, temp: Path) -> tuple[str | None, dict[str, int]]:
    if not source.is_file():
        raise BackupError(f"no SQLite database at {source}")
    src = sqlite3.connect(source, timeout=30)
    dst = sqlite3.connect(temp)
    try:
        # pages=-1: one step under one read transaction, so writers committing meanwhile
        # (in WAL mode they are not blocked) are either wholly in the copy or not at all.
        src.backup(dst, pages=-1)
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        _check_integrity(dst, temp.name)
        return _describe_sqlite(dst)
    finally:
        dst.close()
        src.close()


def _restore_sqlite(path: Path, target: Path, manifest: Manifest) -> None:
    # immutable=1: reading the backup never writes beside it (no journal, no -shm).
    src = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    try:
        _check_integrity(src, path.name)
        revision, counts = _describe_sqlite(src)
        if revision != manifest.revision or counts != manifest.counts:
            raise BackupError(f"{path.name} does not hold what its manifest says")
        target.parent.mkdir(parents=True, exist_ok=True)
        dst = sqlite3.connect(target, timeout=5)
        try:
            # The copy needs the target's exclusive lock: it fails (changing nothing) while another
            # connection is in a transaction. Connections idle meanwhile see the new content
            # afterwards, but stop siyu (serve, worker, scheduler) first: caches would be stale.
            src.backup(dst, pages=-1)
        except sqlite3.OperationalError as exc:
            raise BackupError(f"could not write {target.name}: {exc} (is siyu still running on it?)") from None
        finally:
            dst.close()
    finally:
        src.close()


def _check_integrity(conn: sqlite3.Connection, name: str) -> None:
    try:
        result = conn.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{name} is not a valid SQLite database: {exc}") from None
    if result != [("ok",)]:
        raise BackupError(f"{name} failed the integrity check: {result[:3]}")


def _describe_sqlite(conn: sqlite3.Connection) -> tuple[str | None, dict[str, int]]:
    try:
        names = [
            row[0]
            for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        ]
        counts = {name: int(conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]) for name in sorted(names)}
        revision = None
        if "alembic_version" in counts:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            revision = None if row is None else str(row[0])
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"cannot read the database: {exc}") from None
    return revision, counts


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        raise BackupError("only a SQLite database in a file can be backed up or restored")
    return Path(database).resolve()


def _is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


# PostgreSQL


def _backup_postgres(url: str, temp: Path) -> tuple[str | None, dict[str, int]]:
    pg_dump = _tool("pg_dump")
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
            snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            revision, counts = _describe_postgres(conn, None)
            # The dump runs while this transaction holds the exported snapshot open.
            _run([pg_dump, "--format=custom", f"--snapshot={snapshot}", f"--file={temp}"], make_url(url))
            _run([_tool("pg_restore"), "--list", str(temp)], None)  # the archive reads back
    finally:
        engine.dispose()
    return revision, counts


def _restore_postgres(path: Path, url: str) -> None:
    # --single-transaction: a failure part-way leaves the target as it was.
    _run(
        [
            _tool("pg_restore"),
            "--clean",
            "--if-exists",
            "--no-owner",
            "--single-transaction",
            "--exit-on-error",
            str(path),
        ],
        make_url(url),
    )


def _describe_postgres(conn: Connection, tables: list[str] | None) -> tuple[str | None, dict[str, int]]:
    names = sorted(inspect(conn).get_table_names()) if tables is None else tables
    present = set(inspect(conn).get_table_names()) if tables is not None else set(names)
    counts = {
        name: int(conn.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one()) if name in present else -1
        for name in names
    }
    revision = None
    if "alembic_version" in present:
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return revision, counts


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} not found on PATH: install the PostgreSQL client tools (same major version as the server)"
        )
    return found


def _run(args: list[str], url: URL | None) -> None:
    env = dict(os.environ)
    if url is not None:
        # Connection parameters through the libpq environment: the password never appears in
        # the process list or in an error message.
        params = {
            "PGHOST": url.host,
            "PGPORT": None if url.port is None else str(url.port),
            "PGUSER": url.username,
            "PGPASSWORD": url.password if isinstance(url.password, str) else None,
            "PGDATABASE": url.database,
            "PGSSLMODE": url.query.get("sslmode") if isinstance(url.query.get("sslmode"), str) else None,
        }
        env.update({key: str(value) for key, value in params.items() if value})
        args = [*args, "--no-password", f"--dbname={url.database}"]
    result = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        message = result.stderr.strip().splitlines()
        raise BackupError(f"{Path(args[0]).name} failed: {' '.join(message[-3:]) or result.returncode}")


# Both


def _describe_url(url: str, tables: list[str]) -> tuple[str | None, dict[str, int]]:
    if _is_sqlite(url):
        target = sqlite3.connect(_sqlite_path(url))
        try:
            revision, counts = _describe_sqlite(target)
        finally:
            target.close()
        return revision, {name: counts.get(name, -1) for name in tables}
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            return _describe_postgres(conn, tables)
    finally:
        engine.dispose()


def _known_revisions(url: str) -> set[str]:
    script = ScriptDirectory.from_config(alembic_config(url))
    return {revision.revision for revision in script.walk_revisions()}


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _atomic_write(path: Path, data: bytes) -> None:
    temp = _temp_name(path)
    try:
        with temp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def describe(manifest: Manifest) -> dict[str, Any]:
    """The manifest as printed by the CLI (row counts summed)."""
    data = asdict(manifest)
    data["rows"] = sum(manifest.counts.values())
    data["tables"] = len(manifest.counts)
    del data["counts"]
    return data
