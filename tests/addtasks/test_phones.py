"""Reading phone list files and the greeting template."""

from __future__ import annotations

from pathlib import Path

import pytest

from siyu.addtasks.phones import PhoneRow, check_greeting, read_phone_file, render_greeting
from siyu.kit.errors import InvalidInput
from tests.addtasks.factories import phone_csv, phone_xlsx, write


def test_csv_in_gbk_with_chinese_headers_and_bad_rows(tmp_path: Path) -> None:
    content = phone_csv(
        [("138 0013 8000", "陈静"), ("abc", "李娜"), ("", "王芳"), ("+86 139-0013-9000", ""), ("12345", "赵敏")],
        encoding="gbk",
    )
    parsed = read_phone_file(write(tmp_path, "list.csv", content))
    assert parsed.rows == [
        PhoneRow(row=2, phone="+8613800138000", name="陈静"),
        PhoneRow(row=5, phone="+8613900139000", name=None),
    ]
    assert parsed.invalid == [
        {"row": 3, "reason": "not a valid phone number"},
        {"row": 4, "reason": "empty phone"},
        {"row": 6, "reason": "not a valid phone number"},
    ]
    assert (parsed.invalid_count, parsed.total_rows) == (3, 5)


def test_english_headers_and_a_phone_only_file(tmp_path: Path) -> None:
    both = read_phone_file(write(tmp_path, "a.csv", b"Name,Phone\nLily,13800138000\n"))
    assert both.rows == [PhoneRow(row=2, phone="+8613800138000", name="Lily")]
    only = read_phone_file(write(tmp_path, "b.csv", "手机\n13800138001\n".encode()))
    assert only.rows == [PhoneRow(row=2, phone="+8613800138001", name=None)]


def test_xlsx_with_numbers_typed_as_numbers(tmp_path: Path) -> None:
    content = phone_xlsx(
        [["姓名", "手机"], ["陈静", 13800138000], ["李娜", "not a phone"], [None, None], ["王芳", 13900139000]]
    )
    parsed = read_phone_file(write(tmp_path, "list.xlsx", content))
    assert parsed.rows == [
        PhoneRow(row=2, phone="+8613800138000", name="陈静"),
        PhoneRow(row=5, phone="+8613900139000", name="王芳"),
    ]
    assert parsed.invalid == [{"row": 3, "reason": "not a valid phone number"}]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        ("姓名,地址\n陈静,上海\n".encode(), "the file has no phone column (手机 / 手机号 / phone)"),
        ("手机号,姓名\n".encode(), "the file has no data rows under its header"),
    ],
)
def test_unusable_files_are_422_naming_file(tmp_path: Path, content: bytes, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        read_phone_file(write(tmp_path, "x.csv", content))
    assert caught.value.message == message
    assert caught.value.details["field"] == "file"


def test_greeting_allows_only_name() -> None:
    assert check_greeting("  您好{name}，我是花间集的小美 ") == "您好{name}，我是花间集的小美"
    assert check_greeting("") == ""
    assert check_greeting("{{name}} 是字面量") == "{{name}} 是字面量"
    for bad, placeholder in [
        ("您好{nickname}", "nickname"),
        ("{}", ""),
        ("{name.__class__}", "name.__class__"),
        ("{name!r}", "name"),
        ("{name:>10}", "name"),
        ("{0}", "0"),
    ]:
        with pytest.raises(InvalidInput) as caught:
            check_greeting(bad)
        assert caught.value.details == {"field": "greeting", "placeholder": placeholder}
    for unbalanced in ("您好{name", "您好}"):
        with pytest.raises(InvalidInput) as caught:
            check_greeting(unbalanced)
        assert caught.value.details == {"field": "greeting"}
    with pytest.raises(InvalidInput):
        check_greeting("长" * 501)


def test_greeting_renders_the_name_and_nothing_else() -> None:
    assert render_greeting("您好{name}，送您小样", "陈静") == "您好陈静，送您小样"
    assert render_greeting("您好{name}，送您小样", None) == "您好，送您小样"
    assert render_greeting("{{name}} 与 {name}", "{0.__class__}") == "{name} 与 {0.__class__}"
