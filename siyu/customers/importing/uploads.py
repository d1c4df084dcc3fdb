"""Storing uploaded import files under the data directory, with a size limit."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import BinaryIO

from siyu.kit.errors import InvalidInput, PayloadTooLarge

ALLOWED_SUFFIXES = {".csv", ".txt", ".tsv", ".xlsx"}
_CHUNK = 1 << 20


def save_upload(stream: BinaryIO, *, filename: str, data_dir: Path, workspace_id: int, max_bytes: int) -> Path:
    """Copy an upload to `data_dir/uploads/<workspace>/`; 413 past `max_bytes`, 422 for other types."""
    suffix = Path(filename or "").suffix.lower()
    if suffix not in ALLOWED_SUFFIXES:
        raise InvalidInput("upload a .csv or .xlsx file", details={"field": "file"})
    folder = data_dir / "uploads" / str(workspace_id)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{uuid.uuid4().hex}{suffix}"
    written = 0
    try:
        with target.open("wb") as out:
            while chunk := stream.read(_CHUNK):
                written += len(chunk)
                if written > max_bytes:
                    raise PayloadTooLarge(
                        f"file larger than {max_bytes // (1 << 20)} MiB",
                        details={"field": "file", "max_bytes": max_bytes},
                    )
                out.write(chunk)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    if written == 0:
        target.unlink(missing_ok=True)
        raise InvalidInput("the file is empty", details={"field": "file"})
    return target
