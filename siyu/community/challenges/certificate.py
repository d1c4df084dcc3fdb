"""The completion certificate (电子证书): a PNG drawn with Pillow and the CJK font, for sharing."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date

from PIL import Image, ImageDraw

from siyu.kit.fonts import cjk_font

WIDTH, HEIGHT = 900, 1200


@dataclass(frozen=True)
class CertificateText:
    """What the certificate says."""

    brand: str
    member: str
    title: str
    days: int
    completed_on: date
    number: str


def _centered(draw: ImageDraw.ImageDraw, y: int, text: str, size: int, fill: str) -> None:
    font = cjk_font(size)
    left, _top, right, _bottom = draw.textbbox((0, 0), text, font=font)
    draw.text(((WIDTH - (right - left)) // 2, y), text, font=font, fill=fill)


def render_certificate(text: CertificateText) -> bytes:
    """The certificate as PNG bytes."""
    image = Image.new("RGB", (WIDTH, HEIGHT), "#fffaf0")
    draw = ImageDraw.Draw(image)
    draw.rectangle((30, 30, WIDTH - 30, HEIGHT - 30), outline="#b8860b", width=6)
    draw.rectangle((48, 48, WIDTH - 48, HEIGHT - 48), outline="#e0c080", width=2)
    _centered(draw, 110, text.brand, 40, "#7a5c00")
    _centered(draw, 210, "完成证书", 72, "#8b0000")
    _centered(draw, 360, text.member, 56, "#222222")
    _centered(draw, 470, "完成了打卡挑战", 34, "#444444")
    _centered(draw, 540, f"「{text.title}」", 44, "#222222")
    _centered(draw, 650, f"累计打卡 {text.days} 天", 38, "#444444")
    _centered(draw, 900, text.completed_on.isoformat(), 32, "#666666")
    _centered(draw, 960, f"证书编号 {text.number}", 28, "#666666")
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()
