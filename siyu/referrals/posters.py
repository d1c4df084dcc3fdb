"""Share posters of referral codes: a PNG with the brand background, the program's title and text,
the member's (masked) name and a QR of their `/r/{code}` link, drawn server-side with Pillow.

A poster is a pure function of (program poster fields, member name, link); rendering one takes
~40 ms on the 2-core test machine, so the last few are kept in a small in-memory cache keyed by
everything they are drawn from (the program's `updated_at` included), and a changed program or name
draws a new one. Backgrounds are checked and normalised once, at upload (`check_background`).
"""

from __future__ import annotations

import io
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace

import segno
from PIL import Image, ImageDraw, UnidentifiedImageError

from siyu.kit.errors import InvalidInput
from siyu.kit.fonts import Font, cjk_font
from siyu.kit.phone import mask_phone

WIDTH, HEIGHT = 750, 1334
"""A phone screen at 2×: what WeChat shows full-width and saves without scaling."""
MAX_BACKGROUND_BYTES = 2 * 1024 * 1024
BACKGROUND_FORMATS = frozenset({"PNG", "JPEG"})
CACHE_SIZE = 64
QR_BOX = (165, 560, 585, 980)
"""Where the QR sits (left, top, right, bottom): fixed, whatever the text, so it never moves."""
_PHONE_LIKE = re.compile(r"^\+?\d[\d\s-]{6,}$")


@dataclass(frozen=True)
class PosterSpec:
    """Everything a poster is drawn from (also its cache key, with `version`)."""

    code: str
    link: str
    title: str
    text: str
    member_name: str
    brand: str
    version: str
    """Changes whenever the program's poster fields or background change (its `updated_at`)."""
    background: bytes | None = None


def display_name(name: str | None, phone: str | None) -> str:
    """How the member is named on their poster: their name, masked when it is a phone number;
    their masked phone when they have no name; "" when neither."""
    name = (name or "").strip()
    if name and _PHONE_LIKE.match(name):
        digits = re.sub(r"[\s-]", "", name)
        return mask_phone(digits if digits.startswith("+") else "+86" + digits) or ""
    if name:
        return name[:20]
    return mask_phone(phone) or ""


def check_background(data: bytes) -> bytes:
    """An uploaded poster background normalised to PNG (at most 750×1334, cover-cropped), or
    InvalidInput naming the field: empty, over 2 MB, or not a PNG/JPEG Pillow can decode."""
    field = {"field": "poster_background"}
    if not data:
        raise InvalidInput("the poster background file is empty", details=field)
    if len(data) > MAX_BACKGROUND_BYTES:
        raise InvalidInput("the poster background must be at most 2 MB", details=field)
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in BACKGROUND_FORMATS:
                raise InvalidInput("the poster background must be a PNG or JPEG image", details=field)
            image.load()
            picture = image.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError, ValueError):
        raise InvalidInput("the poster background must be a PNG or JPEG image", details=field) from None
    out = io.BytesIO()
    _cover(picture).save(out, format="PNG", optimize=False)
    return out.getvalue()


def _cover(picture: Image.Image) -> Image.Image:
    """Scale and centre-crop to fill the poster."""
    scale = max(WIDTH / picture.width, HEIGHT / picture.height)
    size = (max(WIDTH, round(picture.width * scale)), max(HEIGHT, round(picture.height * scale)))
    resized = picture.resize(size, Image.Resampling.LANCZOS)
    left, top = (resized.width - WIDTH) // 2, (resized.height - HEIGHT) // 2
    return resized.crop((left, top, left + WIDTH, top + HEIGHT))


def _gradient() -> Image.Image:
    top, bottom = (255, 94, 58), (255, 42, 104)
    column = Image.new("RGB", (1, HEIGHT))
    for y in range(HEIGHT):
        t = y / (HEIGHT - 1)
        column.putpixel((0, y), tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    return column.resize((WIDTH, HEIGHT))


def _background(data: bytes | None) -> Image.Image:
    if data:
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                return _cover(image.convert("RGB"))
        except (UnidentifiedImageError, OSError, ValueError):
            pass  # a stored background that no longer decodes falls back to the gradient
    return _gradient()


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: Font, width: int, max_lines: int) -> list[str]:
    """Break `text` into lines no wider than `width` (CJK breaks anywhere), at most `max_lines`."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for char in paragraph:
            if draw.textlength(line + char, font=font) > width and line:
                lines.append(line)
                line = char
            else:
                line += char
        lines.append(line)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][:-1] + "…"
    return lines


def _centered(draw: ImageDraw.ImageDraw, y: int, text: str, font: Font, fill: str) -> None:
    draw.text((WIDTH // 2, y), text, font=font, fill=fill, anchor="ma")


def qr_image(link: str, size: int) -> Image.Image:
    """The link's QR (with a 2-module quiet zone) as a `size`×`size` black-on-white image."""
    qr = segno.make(link, error="m", micro=False)
    buffer = io.BytesIO()
    qr.save(buffer, kind="png", scale=10, border=2)
    with Image.open(io.BytesIO(buffer.getvalue())) as raw:
        return raw.convert("RGB").resize((size, size), Image.Resampling.NEAREST)


def render_poster(spec: PosterSpec, *, invite_line: str, scan_line: str) -> bytes:
    """Draw the poster; `invite_line` ("{name} 邀请你") and `scan_line` come translated."""
    canvas = _background(spec.background)
    draw = ImageDraw.Draw(canvas)
    # a white card for the text and the QR keeps them readable on any background
    draw.rounded_rectangle((40, 160, WIDTH - 40, HEIGHT - 80), radius=28, fill="white")
    if spec.brand:
        _centered(draw, 70, spec.brand, cjk_font(40), "white")
    y = 210
    for line in _wrap(draw, spec.title, cjk_font(52), WIDTH - 140, 2):
        _centered(draw, y, line, cjk_font(52), "#1f2430")
        y += 66
    y += 10  # at most 2 title and 4 text lines: the text ends above the QR (QR_BOX)
    for line in _wrap(draw, spec.text, cjk_font(30), WIDTH - 160, 4):
        _centered(draw, y, line, cjk_font(30), "#4a5160")
        y += 42
    left, top, right, bottom = QR_BOX
    canvas.paste(qr_image(spec.link, right - left), (left, top))
    if spec.member_name:
        _centered(draw, bottom + 24, invite_line, cjk_font(32), "#1f2430")
    _centered(draw, bottom + 74, scan_line, cjk_font(26), "#8a90a0")
    out = io.BytesIO()
    canvas.save(out, format="PNG", optimize=False)
    return out.getvalue()


_cache: OrderedDict[tuple[PosterSpec, str, str], bytes] = OrderedDict()
_cache_lock = threading.Lock()


def poster_png(spec: PosterSpec, *, invite_line: str, scan_line: str) -> bytes:
    """The poster for `spec`, from the cache when it was drawn already (same program version,
    name, link and texts), otherwise drawn now and kept (the `CACHE_SIZE` most recent)."""
    key = (replace(spec, background=None), invite_line, scan_line)  # `version` stands for the background
    with _cache_lock:
        if (hit := _cache.get(key)) is not None:
            _cache.move_to_end(key)
            return hit
    png = render_poster(spec, invite_line=invite_line, scan_line=scan_line)
    with _cache_lock:
        _cache[key] = png
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return png


def clear_cache() -> None:
    """Forget every cached poster (tests)."""
    with _cache_lock:
        _cache.clear()
