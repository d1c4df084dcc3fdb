"""The message catalogue. Source strings are Chinese (zh_CN is the default); `en` translates them.

Catalogues are `.po` files under `siyu/locale/<locale>/LC_MESSAGES/`, one per area (`messages.po`
for the foundation, `channels.po`, `experiments.po`…), merged and compiled in memory at first use
so a checkout needs no build step.
"""

from __future__ import annotations

import gettext
from functools import lru_cache
from io import BytesIO
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
DEFAULT_LOCALE = "zh_CN"
LOCALES = {"zh_CN": "简体中文", "en": "English"}


@lru_cache
def translations(locale: str) -> gettext.NullTranslations:
    """Translations for `locale`; the source language and unknown locales pass text through."""
    po_paths = sorted((LOCALE_DIR / locale / "LC_MESSAGES").glob("*.po"))
    if locale == DEFAULT_LOCALE or not po_paths:
        return gettext.NullTranslations()
    catalog = Catalog(locale=locale)
    for po_path in po_paths:
        with po_path.open("rb") as handle:
            for message in read_po(handle, locale=locale):
                if message.id and message.string and not message.fuzzy:
                    catalog.add(message.id, message.string)
    buffer = BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def normalize_locale(value: str | None) -> str:
    if not value:
        return DEFAULT_LOCALE
    value = value.replace("-", "_")
    if value in LOCALES:
        return value
    if value.lower().startswith("en"):
        return "en"
    if value.lower().startswith("zh"):
        return "zh_CN"
    return DEFAULT_LOCALE


def gettext_for(locale: str) -> gettext.NullTranslations:
    return translations(normalize_locale(locale))
