"""The CJK font server-drawn images (referral posters, challenge certificates) write with."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

CJK_FONT_PATH = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@lru_cache(maxsize=16)
def cjk_font(size: int) -> Font:
    """WenQuanYi Micro Hei at `size` px; without it, Pillow's default font at that size (which
    draws no CJK glyphs, but keeps the layout's sizes: tests never depend on a font's pixels)."""
    if CJK_FONT_PATH.exists():
        return ImageFont.truetype(str(CJK_FONT_PATH), size)
    return ImageFont.load_default(size=size)
