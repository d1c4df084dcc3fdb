"""Files of every allowed type (built in memory) and resources written directly as rows."""

from __future__ import annotations

import io
import zipfile
from typing import Any

from sqlalchemy.orm import Session

from siyu.kit.clock import Clock
from siyu.models import Workspace
from siyu.models.resource import Resource, ResourceKind, ResourceStatus

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 17
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 20
TEXT = "第一行\n第二行\n".encode()
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00"


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            # a fixed timestamp: the same entries always make the same bytes
            archive.writestr(zipfile.ZipInfo(name, date_time=(2026, 11, 23, 10, 0, 0)), data)
    return buffer.getvalue()


def office(folder: str) -> bytes:
    """A minimal OOXML package: `[Content_Types].xml` plus a part under `word/`, `xl/` or `ppt/`."""
    return zip_bytes({"[Content_Types].xml": b"<Types/>", f"{folder}/document.xml": b"<x/>"})


def make_resource(
    db: Session,
    *,
    workspace: Workspace,
    clock: Clock,
    title: str = "新手护肤指南",
    kind: ResourceKind = ResourceKind.GUIDE,
    status: ResourceStatus = ResourceStatus.PUBLISHED,
    **values: Any,
) -> Resource:
    """A resource row (published now unless told otherwise)."""
    resource = Resource(
        workspace_id=workspace.id,
        kind=kind,
        title=title,
        summary=values.pop("summary", ""),
        body=values.pop("body", "正文"),
        status=status,
        published_at=values.pop("published_at", clock.now() if status != ResourceStatus.DRAFT else None),
        visible_tier_ids=values.pop("visible_tier_ids", []),
        reads_count=0,
        downloads_count=0,
        is_pinned=values.pop("is_pinned", False),
        created_at=clock.now(),
        updated_at=clock.now(),
        **values,
    )
    db.add(resource)
    db.flush()
    return resource
