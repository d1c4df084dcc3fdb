"""What an import is asked to do and what it reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

BATCH_SIZE = 1000
MAX_REPORTED_REJECTIONS = 1000


@dataclass
class ImportOptions:
    encoding: str | None = None
    mapping: dict[str, str] | None = None
    """Header → target overrides on top of the guessed mapping."""
    dry_run: bool = False
    source: str = "import"
    batch_size: int = BATCH_SIZE


@dataclass
class ImportReport:
    file_kind: str = ""
    encoding: str | None = None
    mapping: dict[str, str] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)
    dry_run: bool = False
    rows: int = 0
    created: int = 0
    merged: int = 0
    """Rows that matched a known customer and brought a new identity, or joined several customers."""
    updated: int = 0
    """Rows that matched a known customer and only refreshed its fields or tags."""
    rejected: int = 0
    rejections: list[dict[str, Any]] = field(default_factory=list)
    """First rejections: {"line", "column", "reason"}."""

    def reject(self, line: int, column: str, reason: str) -> None:
        self.rejected += 1
        if len(self.rejections) < MAX_REPORTED_REJECTIONS:
            self.rejections.append({"line": line, "column": column, "reason": reason})

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)
