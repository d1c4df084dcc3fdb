"""Share posters: a 750×1334 PNG whose QR decodes to the member's link, names masked when they are
phone numbers, backgrounds checked (PNG/JPEG ≤ 2 MB, decodable) and cached by program version."""

from __future__ import annotations

import io

import pytest
import segno
from PIL import Image

from siyu.kit.errors import InvalidInput
from siyu.referrals import posters
from siyu.referrals.posters import PosterSpec, check_background, display_name, poster_png, render_poster

LINK = "http://127.0.0.1:8000/r/ABCD2345"


def _spec(**changes: object) -> PosterSpec:
    values: dict[str, object] = {
        "code": "ABCD2345",
        "link": LINK,
        "title": "邀请好友得积分",
        "text": "好友首单，你得 200 积分",
        "member_name": "王芳",
        "brand": "花间集",
        "version": "2026-11-23T02:00:00+00:00",
    }
    values.update(changes)
    return PosterSpec(**values)  # type: ignore[arg-type]


def _image(kind: str, size: tuple[int, int] = (40, 30), color: str = "navy") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format=kind)
    return out.getvalue()


def test_poster_is_a_phone_sized_png() -> None:
    # when a poster is drawn
    png = render_poster(_spec(), invite_line="王芳 邀请你", scan_line="长按识别二维码")
    # then it is a 750×1334 PNG
    with Image.open(io.BytesIO(png)) as image:
        assert (image.format, image.size) == ("PNG", (750, 1334))


def _dark(value: object) -> bool:
    assert isinstance(value, int)
    return value < 128


def _modules(image: Image.Image, box: tuple[int, int, int, int], count: int) -> list[list[bool]]:
    """Dark/light at the centre of each module of a `count`-module symbol drawn in `box`."""
    left, top, right, _bottom = box
    step = (right - left) / count
    rgb = image.convert("L")
    return [
        [_dark(rgb.getpixel((int(left + (x + 0.5) * step), int(top + (y + 0.5) * step)))) for x in range(count)]
        for y in range(count)
    ]


def test_poster_qr_is_exactly_the_members_link() -> None:
    # when a poster is drawn for a link
    png = render_poster(_spec(), invite_line="王芳 邀请你", scan_line="长按识别二维码")
    # then the QR on it has, module for module, the symbol of exactly that link (no decoder is
    # installed, so the symbol segno makes for the link is compared with the poster's pixels)
    expected = [[bool(v) for v in row] for row in segno.make(LINK, error="m", micro=False).matrix_iter(border=2)]
    with Image.open(io.BytesIO(png)) as image:
        assert _modules(image, posters.QR_BOX, len(expected)) == expected
        other = [[bool(v) for v in row] for row in segno.make(LINK + "X", error="m", micro=False).matrix_iter(border=2)]
        assert len(other) != len(expected) or _modules(image, posters.QR_BOX, len(other)) != other


def test_display_name_masks_phone_numbers() -> None:
    # given names as members have them: a real name, a phone typed as a name, none at all
    # then the poster shows the name, or the phone masked, or nothing
    assert display_name("王芳", "+8613800138000") == "王芳"
    assert display_name("13800138000", None) == "138****8000"
    assert display_name("+86 138-0013-8000", None) == "138****8000"
    assert display_name(None, "+8613912345678") == "139****5678"
    assert display_name("  ", None) == ""


def test_background_png_and_jpeg_are_normalised_to_poster_size() -> None:
    # when a small PNG and a small JPEG are uploaded
    for kind in ("PNG", "JPEG"):
        stored = check_background(_image(kind))
        # then each is kept as a PNG covering the whole poster
        with Image.open(io.BytesIO(stored)) as image:
            assert (image.format, image.size) == ("PNG", (750, 1334))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the poster background file is empty"),
        (b"%PDF-1.7 not an image", "the poster background must be a PNG or JPEG image"),
        (_image("GIF"), "the poster background must be a PNG or JPEG image"),
        (_image("PNG")[:40], "the poster background must be a PNG or JPEG image"),
        (b"\x89PNG" + b"\0" * (2 * 1024 * 1024), "the poster background must be at most 2 MB"),
    ],
    ids=["empty", "pdf", "gif", "truncated-png", "oversized"],
)
def test_bad_backgrounds_are_refused_naming_the_field(data: bytes, message: str) -> None:
    # when a bad file is uploaded as the background
    with pytest.raises(InvalidInput) as refused:
        check_background(data)
    # then it is refused, naming the field
    assert (refused.value.message, refused.value.details) == (message, {"field": "poster_background"})


def test_poster_with_background_uses_it() -> None:
    # given a plain green background
    background = check_background(_image("PNG", color="#00ff00"))
    # when the poster is drawn on it
    png = render_poster(_spec(background=background), invite_line="王芳 邀请你", scan_line="长按识别二维码")
    # then the corner (outside the white card) is the background's green, not the gradient
    with Image.open(io.BytesIO(png)) as image:
        assert image.convert("RGB").getpixel((5, 5)) == (0, 255, 0)


def test_posters_are_cached_per_program_version() -> None:
    posters.clear_cache()
    # given a poster drawn once
    first = poster_png(_spec(), invite_line="王芳 邀请你", scan_line="长按识别二维码")
    # when it is asked again, and again after the program changed
    again = poster_png(_spec(), invite_line="王芳 邀请你", scan_line="长按识别二维码")
    changed = poster_png(
        _spec(version="2026-11-24T00:00:00+00:00", title="新标题"),
        invite_line="王芳 邀请你",
        scan_line="长按识别二维码",
    )
    # then the very same bytes come back from the cache, and a new version draws anew
    assert again is first
    assert changed != first
    assert len(posters._cache) == 2
