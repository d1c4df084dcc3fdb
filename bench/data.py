"""Deterministic synthetic customers, as a shop export spells them and as siyu stores them.

Row `i` is a pure function of `i` and the seed, so the import file, the raw-insert baseline
and the lookup pool can all be produced by streaming the same generator again; nothing is
held in memory. Phones are unique valid mainland mobiles (a permutation of 10^8 suffixes
behind real prefixes), mostly written plainly, one in ten in a "+86 138 0013 8000" or
"138-0013-8000" style the importer must normalise.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

HEADERS = ["姓名", "手机", "淘宝ID", "京东ID", "标签"]
DUPLICATE_EVERY = 20
"""Every 20th row (5%) repeats an earlier customer: same phone and Taobao id, one new JD id."""
TAG_NAMES = ["复购", "高净值", "会员", "新客", "直播间", "包裹卡", "门店", "小红书种草"]
_PREFIXES = ["130", "131", "132", "135", "136", "137", "138", "139", "150", "151", "152", "155", "156", "158"]
_PREFIXES += ["159", "166", "176", "177", "180", "181", "182", "186", "187", "188", "189", "198", "199"]
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍建红文辉力鹏晨婷雪琳宇浩欣怡然梓涵子轩"
_MULTIPLIER = 48_271_147  # odd and not a multiple of 5: i → i·m mod 10^8 is a permutation
SEED = 20261123


def _suffix(i: int) -> str:
    return f"{(i * _MULTIPLIER + 12_345_679) % 100_000_000:08d}"


def phone_digits(i: int) -> str:
    """The 11-digit mobile number of customer `i` (unique for i < 10^8)."""
    return _PREFIXES[i % len(_PREFIXES)] + _suffix(i)


def taobao_id(i: int) -> str:
    return f"tb_{_suffix(i * 7 + 3)}{i % 997:03d}"


def jd_id(i: int) -> str:
    return f"jd_{i:07d}_{_suffix(i)[:4]}"


@dataclass
class Row:
    """One import row: the cells written to the file and the values siyu will store."""

    index: int
    cells: list[str]
    name: str
    phone: str
    """E.164, as stored."""
    identities: list[tuple[str, str]]
    """Normalised (type, value) pairs this row brings."""
    tags: list[str] = field(default_factory=list)
    duplicate_of: int | None = None
    """For a duplicate row: the index of the earlier row it repeats."""


def is_duplicate(index: int) -> bool:
    return index % DUPLICATE_EVERY == DUPLICATE_EVERY - 1


def rows(count: int, *, seed: int = SEED, duplicates: bool = True) -> Iterator[Row]:
    """The `count` rows of the import file, in file order (without duplicates: a lookup pool)."""
    rng = random.Random(seed)
    for i in range(count):
        if duplicates and is_duplicate(i):
            original = rng.randrange(i)
            if is_duplicate(original):
                original -= 1
            name, digits, taobao = _name(original), phone_digits(original), taobao_id(original)
            jd = f"jd_dup_{i:07d}"
            yield Row(
                index=i,
                cells=[name, digits, taobao, jd, ""],
                name=name,
                phone="+86" + digits,
                identities=[("jd", jd)],
                duplicate_of=original,
            )
            continue
        name, digits = _name(i), phone_digits(i)
        style = rng.random()
        written = digits
        if style < 0.05:
            written = f"+86 {digits[:3]} {digits[3:7]} {digits[7:]}"
        elif style < 0.10:
            written = f"{digits[:3]}-{digits[3:7]}-{digits[7:]}"
        tags = rng.sample(TAG_NAMES, rng.randrange(3))
        identities = [("phone", "+86" + digits), ("taobao", taobao_id(i)), ("jd", jd_id(i))]
        yield Row(
            index=i,
            cells=[name, written, taobao_id(i), jd_id(i), ",".join(tags)],
            name=name,
            phone="+86" + digits,
            identities=identities,
            tags=tags,
        )


def _name(i: int) -> str:
    given = _GIVEN[(i // 7) % len(_GIVEN)] + (_GIVEN[(i // 3) % len(_GIVEN)] if i % 3 else "")
    return _SURNAMES[i % len(_SURNAMES)] + given


def write_csv(path: Path, count: int, *, seed: int = SEED) -> int:
    """Stream `count` rows to a UTF-8 CSV file; returns its size in bytes."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADERS)
        for row in rows(count, seed=seed):
            writer.writerow(row.cells)
    return path.stat().st_size
