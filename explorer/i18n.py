"""The interface's languages: English and Korean, from gettext catalogs managed with Babel.

The Korean catalog is ``explorer/locales/ko/LC_MESSAGES/explorer.po``; it is compiled in memory
the first time a session asks for Korean (no .mo file to keep in step), and its fuzzy entries are
left out. Terms follow ``explorer/locales/glossary.md``. ``tools/i18n.py`` extracts the messages
and checks the catalog; tests/test_i18n.py fails on a missing, fuzzy or unused translation.

Texts are written in English in the code, marked where they are defined: ``_("...")`` where a
page shows them at once, ``N_("...")`` for a table's texts that are translated where shown.
Numbers go in as named placeholders: ``_("{steps:,} steps").format(steps=steps)``.

A library function that makes a text a page shows takes the page's translation as its ``_``
argument (default: English), so the library never learns about sessions or Streamlit.
"""

from __future__ import annotations

import gettext
import io
import re
import threading
from pathlib import Path
from typing import Callable

LANGUAGES = {"en": "English", "ko": "한국어"}
SOURCE_LANGUAGE = "en"  # the code's own texts
DOMAIN = "explorer"
LOCALE_DIR = Path(__file__).parent / "locales"

Translate = Callable[[str], str]

# "ko", "ko-KR", "ko_KR", "en-GB", "zh-Hant-TW": a language subtag and up to three more (BCP 47's
# shape, loosely); anything else, a script or an overlong text among them, is no locale.
_LOCALE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8}){0,3}")


def N_(message: str) -> str:
    """Marks ``message`` for the catalog; it is translated where it is shown."""
    return message


def untranslated(message: str) -> str:
    """The ``_`` of a caller with no session (the CLI, a notebook): the code's English."""
    return message


def language_of(locale: object) -> str | None:
    """The interface language for a browser locale or a ``?lang=`` value, or None when it names none we have.

    >>> language_of("ko-KR"), language_of("en_GB"), language_of("fr"), language_of("<script>")
    ('ko', 'en', None, None)
    """
    if not isinstance(locale, str) or not _LOCALE.fullmatch(locale.strip()):
        return None
    language = re.split(r"[-_]", locale.strip())[0].lower()
    return language if language in LANGUAGES else None


_lock = threading.Lock()
_catalogs: dict[str, gettext.NullTranslations] = {}


def translations(language: str) -> gettext.NullTranslations:
    """The catalog of ``language`` (English: the code's texts), compiled once per process.

    Shared by every session: built under a lock, never changed after; a gettext catalog only reads.
    """
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; valid: {', '.join(LANGUAGES)}")
    with _lock:
        if language not in _catalogs:
            _catalogs[language] = _compile(language)
        return _catalogs[language]


def _compile(language: str) -> gettext.NullTranslations:
    if language == SOURCE_LANGUAGE:
        return gettext.NullTranslations()
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with open(catalog_path(language), "rb") as po:
        catalog = read_po(po, locale=language, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def catalog_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def translator(language: str) -> Translate:
    return translations(language).gettext
