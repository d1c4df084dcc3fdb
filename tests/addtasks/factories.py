"""Phone list files for add-by-phone tests."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

from openpyxl import Workbook


def phone_csv(
    rows: list[tuple[str, str]], *, header: tuple[str, str] = ("手机号", "姓名"), encoding: str = "utf-8"
) -> bytes:
    lines = [",".join(header)] + [f"{phone},{name}" for phone, name in rows]
    return ("\n".join(lines) + "\n").encode(encoding)


def numbered_phones(count: int, *, start: int = 0) -> list[tuple[str, str]]:
    """`count` distinct valid mainland mobile numbers with names."""
    return [(f"1390000{start + n:04d}", f"客户{start + n}") for n in range(count)]


def phone_xlsx(rows: list[list[object]]) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    buffer = BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path
