"""QR images of live codes for print: PNG or SVG, a size, an optional centre logo, one or a zip.

A logo covers part of the symbol, so codes with a logo use the highest error correction (H,
~30 % recoverable) and the logo is kept to a fifth of the width, well inside what H recovers.
"""

from __future__ import annotations

import base64
import io
import re
import zipfile
from collections.abc import Sequence
from enum import StrEnum

import segno
from PIL import Image, UnidentifiedImageError

from siyu.kit.errors import InvalidInput

SIZES = {"s": 300, "m": 600, "l": 1200}
"""Target widths in pixels: s for screens, m for package cards, l for posters."""
MAX_LOGO_BYTES = 512 * 1024
LOGO_SHARE = 0.2
BORDER = 2


class QrFormat(StrEnum):
    PNG = "png"
    SVG = "svg"


def _symbol(url: str, with_logo: bool) -> segno.QRCode:
    return segno.make(url, error="h" if with_logo else "m", micro=False)


def _scale(symbol: segno.QRCode, size: str) -> int:
    if size not in SIZES:
        raise InvalidInput(f"size must be one of {', '.join(SIZES)}", details={"field": "size"})
    width, _ = symbol.symbol_size(scale=1, border=BORDER)
    return max(1, SIZES[size] // int(width))


def check_logo(data: bytes) -> bytes:
    """The logo normalised to PNG (at most 256×256), or InvalidInput naming the field."""
    if not data:
        raise InvalidInput("the logo file is empty", details={"field": "logo"})
    if len(data) > MAX_LOGO_BYTES:
        raise InvalidInput("the logo must be at most 512 KiB", details={"field": "logo"})
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            logo = image.convert("RGBA")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        raise InvalidInput("the logo is not a PNG or JPEG image", details={"field": "logo"}) from None
    logo.thumbnail((256, 256))
    out = io.BytesIO()
    logo.save(out, format="PNG")
    return out.getvalue()


def _png(symbol: segno.QRCode, scale: int, logo: bytes | None) -> bytes:
    buffer = io.BytesIO()
    symbol.save(buffer, kind="png", scale=scale, border=BORDER)
    if logo is None:
        return buffer.getvalue()
    buffer.seek(0)
    with Image.open(buffer) as raw:
        canvas = raw.convert("RGBA")
    with Image.open(io.BytesIO(logo)) as raw_logo:
        mark = raw_logo.convert("RGBA")
    side = int(canvas.width * LOGO_SHARE)
    mark.thumbnail((side, side))
    pad = max(2, side // 12)
    plate = Image.new("RGBA", (mark.width + 2 * pad, mark.height + 2 * pad), "white")
    plate.alpha_composite(mark, (pad, pad))
    canvas.alpha_composite(plate, ((canvas.width - plate.width) // 2, (canvas.height - plate.height) // 2))
    out = io.BytesIO()
    canvas.convert("RGB").save(out, format="PNG", optimize=True)
    return out.getvalue()


def _svg(symbol: segno.QRCode, scale: int, logo: bytes | None) -> bytes:
    buffer = io.BytesIO()
    symbol.save(buffer, kind="svg", scale=scale, border=BORDER, xmldecl=True)
    if logo is None:
        return buffer.getvalue()
    width = int(symbol.symbol_size(scale=scale, border=BORDER)[0])
    side = int(width * LOGO_SHARE)
    offset = (width - side) // 2
    embedded = base64.b64encode(logo).decode()
    element = (
        f'<rect x="{offset}" y="{offset}" width="{side}" height="{side}" fill="#fff"/>'
        f'<image x="{offset}" y="{offset}" width="{side}" height="{side}" '
        f'href="data:image/png;base64,{embedded}"/>'
    )
    return buffer.getvalue().replace(b"</svg>", element.encode() + b"</svg>")


def render_qr(url: str, *, fmt: QrFormat = QrFormat.PNG, size: str = "m", logo: bytes | None = None) -> bytes:
    """The QR image of `url`."""
    symbol = _symbol(url, logo is not None)
    scale = _scale(symbol, size)
    return _png(symbol, scale, logo) if fmt == QrFormat.PNG else _svg(symbol, scale, logo)


def safe_filename(name: str) -> str:
    """A file name that keeps Chinese but drops path separators and control characters."""
    cleaned = re.sub(r'[\\/:*?"<>|\x00-\x1f]+', "_", name).strip(" .")
    return cleaned[:80] or "qr"


def qr_zip(items: Sequence[tuple[str, str, bytes | None]], *, fmt: QrFormat, size: str) -> bytes:
    """A zip of QR images, one per (file stem, url, logo), for printing in bulk."""
    out = io.BytesIO()
    used: set[str] = set()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for stem, url, logo in items:
            name = safe_filename(stem)
            candidate, n = name, 2
            while candidate in used:
                candidate, n = f"{name}-{n}", n + 1
            used.add(candidate)
            archive.writestr(f"{candidate}.{fmt}", render_qr(url, fmt=fmt, size=size, logo=logo))
    return out.getvalue()
