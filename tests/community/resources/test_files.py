"""Uploads are judged by their bytes: allowed types pass, anything else (whatever its name) is refused."""

from __future__ import annotations

import pytest

from siyu.community.resources.errors import InvalidUpload
from siyu.community.resources.files import (
    DOCX,
    JPEG,
    MAX_FILE_BYTES,
    PDF,
    PNG,
    PPTX,
    TEXT,
    TEXT_GB,
    XLSX,
    ZIP,
    check_upload,
    clean_name,
    content_disposition,
)
from tests.community.resources import factories as f


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("价目表.pdf", f.PDF, PDF),
        ("海报.png", f.PNG, PNG),
        ("海报.jpg", f.JPEG, JPEG),
        ("手册.docx", f.office("word"), DOCX),
        ("数据.xlsx", f.office("xl"), XLSX),
        ("培训.pptx", f.office("ppt"), PPTX),
        ("素材.zip", f.zip_bytes({"a.txt": b"hi"}), ZIP),
        ("说明.txt", f.TEXT, TEXT),
        ("说明-gbk.txt", "第一行\r\n第二行".encode("gbk"), TEXT_GB),
        # the bytes decide, not the name: a PDF named .docx is still a PDF
        ("misnamed.docx", f.PDF, PDF),
    ],
)
def test_allowed_types_are_recognised_by_their_bytes(name: str, data: bytes, expected: str) -> None:
    # given an upload / when it is checked / then its type is the one its bytes show
    checked = check_upload(name, data)
    assert (checked.name, checked.content_type, checked.size) == (name, expected, len(data))


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("evil.pdf", f.EXE, "only PDF, PNG, JPEG, DOCX, XLSX, PPTX, ZIP and TXT files are accepted"),
        (
            "broken.zip",
            b"PK\x03\x04" + b"\x00" * 30,
            "only PDF, PNG, JPEG, DOCX, XLSX, PPTX, ZIP and TXT files are accepted",
        ),
        ("nul.txt", b"abc\x00def", "only PDF, PNG, JPEG, DOCX, XLSX, PPTX, ZIP and TXT files are accepted"),
        ("empty.pdf", b"", "the file is empty"),
        ("big.pdf", b"%PDF-" + b"0" * (MAX_FILE_BYTES - 4), "the file is larger than 10 MB"),
        ("", f.PDF, "choose a file to upload"),
        (None, f.PDF, "choose a file to upload"),
    ],
)
def test_bad_uploads_are_refused_naming_the_field(name: str | None, data: bytes, message: str) -> None:
    # given a bad upload / when it is checked / then 422 names the field
    with pytest.raises(InvalidUpload) as refused:
        check_upload(name, data, field="file")
    assert (refused.value.status_code, refused.value.message, refused.value.details) == (
        422,
        message,
        {"field": "file"},
    )


def test_exactly_ten_megabytes_is_accepted() -> None:
    # given a PDF of exactly 10 MiB / when checked / then it passes
    assert check_upload("a.pdf", b"%PDF-" + b"0" * (MAX_FILE_BYTES - 5)).size == MAX_FILE_BYTES


def test_file_names_lose_folders_and_control_characters() -> None:
    assert clean_name("C:\\Users\\王芳\\资料.pdf") == "资料.pdf"
    assert clean_name("../../etc/pa\x00ss\nwd.txt") == "passwd.txt"
    long = clean_name("长" * 300 + ".pdf")
    assert (len(long), long[-4:]) == (200, ".pdf")


def test_content_disposition_encodes_the_original_name_rfc5987() -> None:
    assert content_disposition("新品 价目表(2026).pdf") == (
        'attachment; filename="__ ___(2026).pdf"; '
        "filename*=UTF-8''%E6%96%B0%E5%93%81%20%E4%BB%B7%E7%9B%AE%E8%A1%A8%282026%29.pdf"
    )
    assert content_disposition('a";b.txt') == "attachment; filename=\"a__b.txt\"; filename*=UTF-8''a%22%3Bb.txt"
