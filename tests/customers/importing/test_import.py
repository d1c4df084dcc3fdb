"""Importing customers from CSV and XLSX: encodings, mapping, duplicates, rejections, atomicity."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.customers import repository
from siyu.customers.importing.reader import ImportFileError
from siyu.customers.importing.service import ImportOptions, preview, run_import
from siyu.customers.service.tags import tags_of
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput, PermissionDenied
from siyu.models import Customer, Identity, Role
from siyu.workspaces.scope import bind_workspace
from tests.factories import actor_for, make_customer, make_staff, make_workspace

HEADER = "姓名,手机号,淘宝ID,性别,生日,标签,备注\n"


def _write(tmp_path: Path, text: str, encoding: str = "utf-8", name: str = "customers.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def _run(database: Database, actor: Actor, path: Path, clock: FrozenClock, **options: object):  # type: ignore[no-untyped-def]
    @contextmanager
    def transaction() -> Iterator[Session]:
        with database.transaction() as session:
            bind_workspace(session, actor.workspace_id)
            yield session

    return run_import(transaction, actor=actor, path=path, options=ImportOptions(**options), clock=clock)  # type: ignore[arg-type]


def _count(db: Session, workspace_id: int) -> int:
    return int(
        db.scalar(
            select(func.count())
            .select_from(Customer)
            .where(Customer.workspace_id == workspace_id, Customer.merged_into_id.is_(None))
        )
        or 0
    )


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
def test_every_common_encoding_is_detected(
    database: Database, db: Session, clock: FrozenClock, tmp_path: Path, encoding: str
) -> None:
    ws = make_workspace(db, clock=clock)
    db.commit()
    path = _write(tmp_path, HEADER + "陈静,13800138000,tb_chen,女,1996年3月8日,通勤|甜美,老客\n", encoding)
    report = _run(database, actor_for(ws), path, clock)
    assert (report.created, report.rejected, report.encoding) == (
        1,
        0,
        {"utf-8": "utf-8", "utf-8-sig": "utf-8-sig", "gbk": "gb18030", "gb18030": "gb18030"}[encoding],
    )
    customer = repository.find_by_identity(db, ws.id, "taobao", "tb_chen")
    assert customer is not None
    assert (customer.name, customer.phone, customer.gender, str(customer.birthday)) == (
        "陈静",
        "+8613800138000",
        "female",
        "1996-03-08",
    )
    assert sorted(t.name for _, t in tags_of(db, customer.id)) == ["甜美", "通勤"]
    assert report.ignored_columns == ["备注"]


def test_bad_rows_are_rejected_with_line_and_reason_good_rows_land(
    database: Database, db: Session, clock: FrozenClock, tmp_path: Path
) -> None:
    ws = make_workspace(db, clock=clock)
    db.commit()
    text = HEADER + (
        "张三,+86 138-0013-8000,,男,,,\n"
        "李四,12345,,,,,\n"  # invalid phone
        "王五,13900139000,,不详,,,\n"  # unknown gender
        "赵六,,,,,,\n"  # no identity
        "钱七,13700137000,,,1990-02-30,,\n"  # impossible date
        "孙八,8613600136000,,,,,\n"
    )
    report = _run(database, actor_for(ws), _write(tmp_path, text), clock)
    assert (report.rows, report.created, report.rejected) == (6, 2, 4)
    assert report.rejections == [
        {"line": 3, "column": "手机号", "reason": "invalid phone number"},
        {"line": 4, "column": "性别", "reason": "invalid value '不详'"},
        {"line": 5, "column": "", "reason": "no identity: the row needs a phone, e-mail or platform id"},
        {"line": 6, "column": "生日", "reason": "invalid value '1990-02-30'"},
    ]
    assert _count(db, ws.id) == 2


def test_duplicates_in_file_and_pool_merge(database: Database, db: Session, clock: FrozenClock, tmp_path: Path) -> None:
    # given a pool customer known by Taobao id, and another known by phone only
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    known = make_customer(db, actor=actor, clock=clock, identities=[("taobao", "tb_known")], name="老客").customer
    phone_only = make_customer(db, actor=actor, clock=clock, phone="13500135000").customer
    db.commit()
    text = HEADER + (
        "新人,13800138000,tb_new,,,,\n"
        "新人,13800138000,,,,,\n"  # same person again in the file: nothing new
        ",13811138111,tb_new,,,,\n"  # same person, new phone: merged in
        "老客户,13900139000,tb_known,,,,\n"  # known customer gains a phone
        ",13500135000,tb_known,,,,\n"  # links the two pool customers: merge
    )
    report = _run(database, actor, _write(tmp_path, text), clock)
    assert (report.created, report.merged, report.updated, report.rejected) == (1, 3, 1, 0)
    newcomer = repository.find_by_identity(db, ws.id, "taobao", "tb_new")
    assert newcomer is not None
    assert sorted(v for t, v in ((i.type, i.value) for i in repository.identities_of(db, newcomer.id))) == [
        "+8613800138000",
        "+8613811138111",
        "tb_new",
    ]
    db.refresh(known)
    db.refresh(phone_only)
    assert phone_only.merged_into_id == known.id
    assert known.name == "老客户"
    assert _count(db, ws.id) == 2


def test_dry_run_reports_but_writes_nothing(
    database: Database, db: Session, clock: FrozenClock, tmp_path: Path
) -> None:
    ws = make_workspace(db, clock=clock)
    db.commit()
    path = _write(tmp_path, HEADER + "甲,13800138000,,,,新客,\n乙,13800138000,tb_y,,,,\n丙,bad,,,,,\n")
    report = _run(database, actor_for(ws), path, clock, dry_run=True)
    assert (report.dry_run, report.created, report.merged, report.rejected) == (True, 1, 1, 1)
    assert _count(db, ws.id) == 0
    assert db.scalar(select(func.count()).select_from(Identity).where(Identity.workspace_id == ws.id)) == 0


def test_xlsx_with_numeric_phones_and_mapping_override(
    database: Database, db: Session, clock: FrozenClock, tmp_path: Path
) -> None:
    ws = make_workspace(db, clock=clock)
    staff = make_staff(db, workspace=ws, clock=clock, name="小美", wecom_user_id="xiaomei")
    db.commit()
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Customer Name", "Mobile", "会员卡", "Owner"])
    sheet.append(["Lily", 13800138000, "VIP001", "xiaomei"])
    sheet.append(["Amy", 13900139000, "VIP002", "小美"])
    path = tmp_path / "c.xlsx"
    book.save(path)
    report = _run(database, actor_for(ws), path, clock, mapping={"会员卡": "identity:store_member_no"})
    assert (report.file_kind, report.created, report.rejected) == ("xlsx", 2, 0)
    lily = repository.find_by_identity(db, ws.id, "store_member_no", "VIP001")
    assert lily is not None and (lily.name, lily.phone, lily.owner_staff_id) == ("Lily", "+8613800138000", staff.id)


def test_file_level_problems_are_clear_422s(
    database: Database, db: Session, clock: FrozenClock, tmp_path: Path
) -> None:
    ws = make_workspace(db, clock=clock)
    db.commit()
    actor = actor_for(ws)
    gbk = _write(tmp_path, HEADER + "陈静,13800138000,,,,,\n", "gbk", name="gbk.csv")
    with pytest.raises(ImportFileError) as err:
        _run(database, actor, gbk, clock, encoding="utf-8")
    assert err.value.details == {"field": "encoding", "line": 1}
    with pytest.raises(ImportFileError):
        _run(database, actor, _write(tmp_path, "", name="empty.csv"), clock)
    with pytest.raises(InvalidInput) as no_identity:
        _run(database, actor, _write(tmp_path, "姓名,备注\n甲,乙\n", name="x.csv"), clock)
    assert "no column holds an identity" in no_identity.value.message
    with pytest.raises(InvalidInput):
        _run(database, actor, gbk, clock, mapping={"不存在": "phone"})
    with pytest.raises(InvalidInput):
        _run(database, actor, gbk, clock, mapping={"备注": "shoe_size"})
    with pytest.raises(ImportFileError):
        _run(database, actor, _write(tmp_path, "PK\x03\x04garbage", name="bad.xlsx"), clock)


def test_malformed_csv_rows_are_rejected_not_crashing(
    database: Database, db: Session, clock: FrozenClock, tmp_path: Path
) -> None:
    ws = make_workspace(db, clock=clock)
    db.commit()
    text = '姓名,手机号\n甲,13800138000\n乙,13900139000,多余,列\n丙,"13700137000\n'
    report = _run(database, actor_for(ws), _write(tmp_path, text), clock)
    assert report.created == 1
    assert [r["line"] for r in report.rejections] == [3, 4]
    assert report.rejections[0]["reason"] == "expected 2 columns, found 4"
    assert report.rejections[1]["reason"].startswith("malformed CSV")


def test_failure_midway_leaves_whole_rows_only(
    database: Database, db: Session, clock: FrozenClock, tmp_path: Path
) -> None:
    # given a file of 5 rows imported in batches of 2, and a crash after the first batch
    ws = make_workspace(db, clock=clock)
    db.commit()
    rows = "".join(f"客{n},1380013800{n},tb{n},,,,\n" for n in range(5))
    calls: list[int] = []

    def crash(done: int, total: int | None) -> None:
        calls.append(done)
        if done >= 2:
            raise RuntimeError("worker killed")

    @contextmanager
    def transaction() -> Iterator[Session]:
        with database.transaction() as session:
            bind_workspace(session, ws.id)
            yield session

    with pytest.raises(RuntimeError):
        run_import(
            transaction,
            actor=actor_for(ws),
            path=_write(tmp_path, HEADER + rows),
            clock=clock,
            options=ImportOptions(batch_size=2),
            progress=crash,
        )
    # then the first batch is there whole (both identities), nothing of the rest
    assert _count(db, ws.id) == 2
    for customer in db.scalars(select(Customer).where(Customer.workspace_id == ws.id)):
        assert len(repository.identities_of(db, customer.id)) == 2


def test_import_needs_the_permission(database: Database, db: Session, clock: FrozenClock, tmp_path: Path) -> None:
    ws = make_workspace(db, clock=clock)
    db.commit()
    with pytest.raises(PermissionDenied):
        _run(database, actor_for(ws, role=Role.ANALYST), _write(tmp_path, HEADER), clock)


def test_preview_guesses_the_mapping(db: Session, clock: FrozenClock, tmp_path: Path) -> None:
    ws = make_workspace(db, clock=clock)
    path = _write(tmp_path, "Name,Phone Number,JD,Tags,Whatever\nLily,13800138000,jd1,a,b\n")
    result = preview(db, actor=actor_for(ws), path=path)
    assert result["mapping"] == {
        "Name": "name",
        "Phone Number": "phone",
        "JD": "identity:jd",
        "Tags": "tags",
        "Whatever": "",
    }
    assert result["rows"] == [["Lily", "13800138000", "jd1", "a", "b"]]
