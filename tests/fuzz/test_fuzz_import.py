"""Fuzzing the customer importer: random CSV-ish files — random encodings and BOMs, quotes,
delimiters, NUL and control characters, huge fields, wrong column counts, junk headers, random
bytes and fake spreadsheets — either import with per-row rejections, or are refused as a whole
with `InvalidInput` (`ImportFileError`); never another exception, and a refused file writes nothing.

Both backends: accepted rows are written, and PostgreSQL refuses values SQLite stores.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.customers.importing.reader import MAX_FIELD_LENGTH
from siyu.customers.importing.service import ImportOptions, run_import
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput
from siyu.models import Customer, Identity
from siyu.workspaces.scope import bind_workspace
from tests.factories import actor_for, make_workspace
from tests.fuzz.conftest import fuzz_examples

HEADERS = [
    "姓名",
    "手机号",
    "淘宝ID",
    "性别",
    "生日",
    "标签",
    "备注",
    "phone",
    "name",
    "",
    "  ",
    "手机号",
    "未知列",
    'a"b',
]
CELLS = st.one_of(
    st.sampled_from(["13800138000", "+8613800138000", "138-0013-8000", "1380013800", "+1 650 253 0000", "0"]),
    st.sampled_from(["张三", "", " ", "男", "女", "x", "2026-02-30", "1990-01-01", "19900101", "VIP;新客", "VIP,新客"]),
    st.sampled_from(['"', '""', 'a"b', "\n", "\r\n", "\r", "\t", ";", "\x00", "\x1b", "\ufeff", "😀", "\u202e"]),
    st.integers(min_value=MAX_FIELD_LENGTH - 2, max_value=MAX_FIELD_LENGTH + 2).map(lambda n: "长" * n),
    st.text(max_size=30),
)
ENCODINGS = st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "gbk", "gb18030", "utf-16", "latin-1", "big5"])


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    """A delimited text file built cell by cell, so quotes and delimiters land anywhere."""
    delimiter = draw(st.sampled_from([",", ",", "\t", ";", "|"]))
    quote_all = draw(st.booleans())
    headers = draw(st.lists(st.sampled_from(HEADERS), min_size=1, max_size=6))
    if draw(st.integers(min_value=0, max_value=3)):  # mostly with an identity column, so rows get read
        headers.insert(draw(st.integers(min_value=0, max_value=len(headers))), "手机号")

    def line(cells: list[str]) -> str:
        if quote_all:
            return delimiter.join('"' + c.replace('"', '""') + '"' for c in cells)
        return delimiter.join(cells)

    rows = draw(st.lists(st.lists(CELLS, max_size=len(headers) + 2), max_size=6))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = newline.join(line(cells) for cells in [headers, *rows]) + draw(st.sampled_from(["", newline]))
    return text.encode(draw(ENCODINGS), errors="replace")


FILES = st.one_of(
    csv_files(),
    csv_files(),
    csv_files().map(lambda data: b"\xef\xbb\xbf" + data),  # a BOM, whatever the encoding really is
    st.binary(max_size=200),
    st.binary(max_size=200).map(lambda data: b"PK\x03\x04" + data),  # looks like an .xlsx, is not
    st.just(b""),
)


def _customers(db: Session, workspace_id: int) -> tuple[int, int]:
    db.expire_all()
    customers = db.scalar(select(func.count()).select_from(Customer).where(Customer.workspace_id == workspace_id))
    identities = db.scalar(select(func.count()).select_from(Identity).where(Identity.workspace_id == workspace_id))
    return int(customers or 0), int(identities or 0)


@settings(
    max_examples=fuzz_examples(30),
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=FILES, dry_run=st.booleans(), encoding=st.sampled_from([None, None, None, None, "utf-8", "gbk", "latin-1"]))
def test_any_file_imports_row_by_row_or_is_refused_whole(
    database: Database,
    db: Session,
    clock: FrozenClock,
    tmp_path: Path,
    data: bytes,
    dry_run: bool,
    encoding: str | None,
) -> None:
    # given a workspace and a file of random content
    ws = make_workspace(db, clock=clock)
    db.commit()
    actor = actor_for(ws)
    path = tmp_path / "customers.csv"
    path.write_bytes(data)
    note(repr(data[:500]))

    @contextmanager
    def transaction() -> Iterator[Session]:
        with database.transaction() as session:
            bind_workspace(session, ws.id)
            yield session

    # when it is imported
    try:
        report = run_import(
            transaction,
            actor=actor,
            path=path,
            options=ImportOptions(dry_run=dry_run, encoding=encoding, batch_size=3),
            clock=clock,
        )
    except InvalidInput as refused:
        # then either the whole file is refused with a reason, and nothing is written
        event(f"refused: {refused.code} {refused.message[:40]}")
        assert refused.status_code == 422 and refused.message
        assert _customers(db, ws.id) == (0, 0)
        return
    # or every row is accounted for: written, or rejected with its line and a reason
    event("imported" + (" (dry run)" if dry_run else ""))
    assert report.rows == report.created + report.merged + report.updated + report.rejected
    assert all(r["line"] >= 2 and r["reason"] for r in report.rejections)
    customers, _ = _customers(db, ws.id)
    assert customers == (0 if dry_run else report.created)
