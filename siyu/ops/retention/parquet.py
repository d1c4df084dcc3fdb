"""Parquet files of archived rows: typed from the table, merged by id, written atomically.

A month's file is rewritten on every batch that adds to it: the rows already in it are read,
rows with the same id replaced by the batch's (the database copy is the newer one), and the
result written to a temporary name, fsync'd and renamed over the file. A crash at any point
leaves either the old file or the new one, never a half-written file and never a row twice.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Boolean, Integer, String, Table, Text

from siyu.models.base import UTCDateTime

# polars is imported inside the functions that use it: every worker and CLI process imports this
# module (to register the retention job) and few of them ever archive; the import costs ~0.3 s.
if TYPE_CHECKING:
    import polars as pl


class ArchiveFileError(RuntimeError):
    """An archive file could not be written or did not read back as written."""


def polars_schema(table: Table) -> dict[str, pl.DataType]:
    """The Parquet column types of `table` (JSON documents are stored as JSON text)."""
    import polars as pl

    schema: dict[str, pl.DataType] = {}
    for column in table.columns:
        kind = column.type
        if isinstance(kind, UTCDateTime):
            schema[column.name] = pl.Datetime("us", "UTC")
        elif isinstance(kind, Boolean):
            schema[column.name] = pl.Boolean()
        elif isinstance(kind, Integer):  # BigInteger is an Integer
            schema[column.name] = pl.Int64()
        elif isinstance(kind, JSON | String | Text):  # JSON documents as JSON text
            schema[column.name] = pl.Utf8()
        else:
            raise TypeError(f"{table.name}.{column.name}: no Parquet type for {kind!r}")
    return schema


def json_columns(table: Table) -> list[str]:
    return [column.name for column in table.columns if isinstance(column.type, JSON)]


def to_frame(table: Table, rows: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """Rows as read by SQLAlchemy Core → a typed frame."""
    import polars as pl

    schema = polars_schema(table)
    docs = set(json_columns(table))
    records = [
        {
            name: (json.dumps(value, ensure_ascii=False, sort_keys=True) if name in docs else value)
            for name, value in row.items()
        }
        for row in rows
    ]
    return pl.DataFrame(records, schema=schema, orient="row")


def read_rows(table: Table, path: Path) -> list[dict[str, Any]]:
    """The rows of an archive file, JSON documents parsed back (what the database held)."""
    import polars as pl

    docs = set(json_columns(table))
    rows = pl.read_parquet(path).to_dicts()
    for row in rows:
        for name in docs:
            if row[name] is not None:
                row[name] = json.loads(row[name])
    return rows


def merge_write(table: Table, path: Path, rows: Sequence[Mapping[str, Any]]) -> tuple[int, str]:
    """Merge `rows` into the file at `path` (created if missing); returns (rows in file, sha256).

    Verified: the file is read back and must hold every id of `rows` and the expected count;
    otherwise `ArchiveFileError` (the old file, if any, is left as it was)."""
    import polars as pl

    batch = to_frame(table, rows)
    ids = set(batch["id"].to_list())
    if path.exists():
        old = pl.read_parquet(path)
        if old.schema != batch.schema:
            raise ArchiveFileError(f"{path}: columns differ from table {table.name}; move the file away first")
        merged = pl.concat([old.filter(~pl.col("id").is_in(list(ids))), batch])
    else:
        merged = batch
    merged = merged.sort("id")
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        merged.write_parquet(temp, compression="zstd", statistics=True)
        _fsync(temp)
        back = pl.read_parquet(temp, columns=["id"])["id"]
        if back.len() != merged.height or not ids <= set(back.to_list()) or back.n_unique() != back.len():
            raise ArchiveFileError(f"{path}: the written file did not read back with the {merged.height} rows")
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return merged.height, sha256_of(path)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def month_of(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
