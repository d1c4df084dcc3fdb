"""Every message the console shows has an English translation in the catalogue."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

import siyu
from siyu.kit.i18n import LOCALE_DIR

PACKAGE = Path(siyu.__file__).resolve().parent
_MESSAGE = re.compile(r"""(?<![A-Za-z0-9_])_\(\s*"((?:[^"\\]|\\.)*)"\s*[,)]""")


def console_sources() -> list[Path]:
    """Templates, view modules and the page helpers: every place console text is written."""
    templates = sorted((PACKAGE / "web" / "templates").rglob("*.html"))
    views = sorted(p for p in PACKAGE.rglob("*.py") if p.name in ("views.py", "public.py") or "views" in p.parent.parts)
    return templates + views + [PACKAGE / "web" / "pages.py"]


def used_messages() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in console_sources():
        for match in _MESSAGE.finditer(path.read_text(encoding="utf-8")):
            found.setdefault(match.group(1), path)
    return found


def test_sources_are_found() -> None:
    names = {p.name for p in console_sources()}
    assert {"base.html", "views.py", "listing.py", "detail.py", "pages.py"} <= names
    assert "客户" in used_messages()


def english_catalog() -> Catalog:
    """Every area's `.po` file merged, as `siyu.kit.i18n` merges them."""
    merged = Catalog(locale="en")
    for path in sorted((LOCALE_DIR / "en" / "LC_MESSAGES").glob("*.po")):
        with path.open("rb") as handle:
            for message in read_po(handle, locale="en"):
                if message.id:
                    assert message.id not in merged, f"{message.id!r} translated twice ({path.name})"
                    merged[message.id] = message
    return merged


def test_every_console_message_has_an_english_translation() -> None:
    catalog = english_catalog()
    missing = {
        msgid: str(path.relative_to(PACKAGE))
        for msgid, path in used_messages().items()
        if not (message := catalog.get(msgid)) or not message.string or message.fuzzy
    }
    assert missing == {}


def test_placeholders_survive_translation() -> None:
    catalog = english_catalog()
    for message in catalog:
        if message.id and isinstance(message.id, str):
            assert set(re.findall(r"\{\w+\}", message.id)) == set(re.findall(r"\{\w+\}", str(message.string))), (
                message.id
            )
