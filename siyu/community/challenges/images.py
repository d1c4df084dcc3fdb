"""Member images: decoded and verified by Pillow, JPEG/PNG/WebP only, ≤ 5 MB, ≤ 4096 px a side,
then re-encoded so nothing but pixels survives (EXIF, GPS, comments, trailing bytes are dropped)."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from siyu.community.challenges.errors import InvalidPost

MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_SIDE = 4096
MAX_IMAGES = 9
FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


@dataclass(frozen=True)
class CleanImage:
    """A re-encoded image ready to store."""

    content_type: str
    data: bytes
    width: int
    height: int


def _refuse(message: str, index: int) -> InvalidPost:
    return InvalidPost(message, details={"field": "images", "index": index})


def clean_image(raw: bytes, *, index: int = 0) -> CleanImage:
    """Check one uploaded image and re-encode it; `InvalidPost` (field "images") otherwise."""
    if not raw:
        raise _refuse("images: the file is empty", index)
    if len(raw) > MAX_IMAGE_BYTES:
        raise _refuse("images: larger than 5 MB", index)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as probe:
                kind = probe.format or ""
                width, height = probe.size
                probe.verify()
            if kind not in FORMATS:
                raise _refuse("images: only JPEG, PNG or WebP images", index)
            if width > MAX_SIDE or height > MAX_SIDE:
                raise _refuse("images: at most 4096 pixels a side", index)
            with Image.open(io.BytesIO(raw)) as image:
                image.load()
                upright = ImageOps.exif_transpose(image)
    except InvalidPost:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError, Warning):
        raise _refuse("images: not a readable JPEG, PNG or WebP image", index) from None
    out = io.BytesIO()
    if kind == "JPEG":
        upright.convert("RGB").save(out, "JPEG", quality=85, optimize=True)
    elif kind == "PNG":
        upright.save(out, "PNG", optimize=True)
    else:
        upright.save(out, "WEBP", quality=85)
    return CleanImage(FORMATS[kind], out.getvalue(), upright.width, upright.height)


def clean_images(files: list[bytes]) -> list[CleanImage]:
    """Every image of one post (at most 9), all checked before anything is stored."""
    if len(files) > MAX_IMAGES:
        raise InvalidPost("images: at most 9 images", details={"field": "images"})
    return [clean_image(raw, index=n) for n, raw in enumerate(files)]
