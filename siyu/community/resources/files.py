"""Uploaded files of the library: the type is decided by the bytes, never by the name alone.

Allowed: PDF, PNG, JPEG, DOCX, XLSX, PPTX, ZIP and plain text (UTF-8, or GB18030 as Chinese
Windows saves it). Office files are ZIP archives; their `[Content_Types].xml` and top folder
(`word/`, `xl/`, `ppt/`) tell them apart from a plain ZIP.
"""

from __future__ import annotations

import io
import re
import unicodedata
import zipfile
from dataclasses import dataclass
from urllib.parse import quote

from siyu.community.resources.errors import InvalidUpload

MAX_FILE_BYTES = 10 << 20
"""10 MiB."""
MAX_NAME_CHARS = 200

PDF = "application/pdf"
PNG = "image/png"
JPEG = "image/jpeg"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
ZIP = "application/zip"
TEXT = "text/plain; charset=utf-8"
TEXT_GB = "text/plain; charset=gb18030"

_OFFICE_FOLDERS = (("word/", DOCX), ("xl/", XLSX), ("ppt/", PPTX))
_TEXT_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
"""Control characters no text file holds (tab, line feed, form feed and carriage return are fine)."""


@dataclass(frozen=True)
class CheckedFile:
    """An upload that passed: its cleaned name, the type its bytes show, its size."""

    name: str
    content_type: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)


def _fail(message: str, field: str) -> InvalidUpload:
    return InvalidUpload(message, details={"field": field})


def _zip_kind(data: bytes) -> str | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        return None
    if "[Content_Types].xml" in names:
        for folder, kind in _OFFICE_FOLDERS:
            if any(name.startswith(folder) for name in names):
                return kind
    return ZIP


def _text_kind(data: bytes) -> str | None:
    if b"\x00" in data:
        return None
    for encoding, kind in (("utf-8-sig", TEXT), ("gb18030", TEXT_GB)):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        return None if _TEXT_CONTROLS.search(text) else kind
    return None


def sniff(data: bytes) -> str | None:
    """The allowed content type these bytes are, or None."""
    if data.startswith(b"%PDF-"):
        return PDF
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _zip_kind(data)
    return _text_kind(data)


def clean_name(name: str) -> str:
    """The file's own name without any folder part or control characters, at most 200 characters
    (keeping the extension)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C").strip().strip(".")
    if len(base) > MAX_NAME_CHARS:
        stem, dot, ext = base.rpartition(".")
        keep = ext if dot and len(ext) <= 10 else ""
        base = (stem if keep else base)[: MAX_NAME_CHARS - len(keep) - 1].rstrip() + ("." + keep if keep else "")
    return base


def check_upload(name: str | None, data: bytes, *, field: str = "file") -> CheckedFile:
    """Accept an upload or raise `InvalidUpload` naming `field`: missing, empty, over 10 MB, or
    bytes that are none of the allowed types (whatever its name says)."""
    if not name or not clean_name(name):
        raise _fail("choose a file to upload", field)
    if not data:
        raise _fail("the file is empty", field)
    if len(data) > MAX_FILE_BYTES:
        raise _fail("the file is larger than 10 MB", field)
    content_type = sniff(data)
    if content_type is None:
        raise _fail("only PDF, PNG, JPEG, DOCX, XLSX, PPTX, ZIP and TXT files are accepted", field)
    return CheckedFile(name=clean_name(name), content_type=content_type, data=data)


def content_disposition(name: str) -> str:
    """`attachment` with an ASCII fallback name and the real name RFC 5987-encoded (`filename*`)."""
    fallback = "".join(ch if ch.isascii() and ch.isprintable() and ch not in '"\\;' else "_" for ch in name)
    return f"attachment; filename=\"{fallback or 'download'}\"; filename*=UTF-8''{quote(name, safe='')}"
