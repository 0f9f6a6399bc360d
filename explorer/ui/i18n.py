"""The session's language: from ``?lang=``, else the session's earlier choice, else the browser's locale.

Per session, never process-wide: the choice lives in ``st.session_state`` and every text is looked
up in that session's catalog (the catalogs themselves are shared read-only, explorer/i18n.py). The
address carries the choice (``?lang=ko``), so a shared link opens in the same language; an unknown
or malformed ``lang`` falls back to the browser's language without a word. The browser's locale
(``st.context.locale``, Streamlit 1.44+) can be empty after a page switch, which is why the first
answer is kept in the session.
"""

from __future__ import annotations

import streamlit as st

from explorer.i18n import LANGUAGES, SOURCE_LANGUAGE, language_of, translations

LANGUAGE_KEY = "interface_language"
SWITCH_KEY = "interface_language_switch"


def choose_language() -> str:
    """The language of this script run; called once per run by explorer/app.py, before any text."""
    state = st.session_state
    asked = language_of(st.query_params.get("lang"))
    if asked:
        state[LANGUAGE_KEY] = asked
    elif state.get(LANGUAGE_KEY) not in LANGUAGES:
        state[LANGUAGE_KEY] = language_of(_browser_locale()) or SOURCE_LANGUAGE
    language = state[LANGUAGE_KEY]
    if st.query_params.get("lang") != language:  # a page switch drops the query; a bad value is replaced
        st.query_params["lang"] = language
    return language


def _browser_locale() -> str | None:
    try:
        return st.context.locale
    except AttributeError:  # Streamlit before 1.44
        return None


def language() -> str:
    language = st.session_state.get(LANGUAGE_KEY)
    return language if language in LANGUAGES else SOURCE_LANGUAGE


def _(message: str) -> str:
    """``message`` in this session's language."""
    return translations(language()).gettext(message)


def translate(text: str) -> str:
    """A text marked with ``N_`` where it was defined (a table's title, a preset's caption), in this
    session's language."""
    return translations(language()).gettext(text)


def ngettext(singular: str, plural: str, count: int) -> str:
    return translations(language()).ngettext(singular, plural, count)


def language_switch() -> None:
    """The sidebar's switch: English or 한국어, for this browser session (and its address)."""
    current = language()
    st.segmented_control(
        _("Language"), list(LANGUAGES), format_func=LANGUAGES.get, default=current, key=SWITCH_KEY,
        on_change=_switched, label_visibility="collapsed")
    if st.session_state.get(SWITCH_KEY) != current:  # the language changed by the address, not the switch
        st.session_state[SWITCH_KEY] = current


def _switched() -> None:
    chosen = st.session_state.get(SWITCH_KEY)
    if chosen in LANGUAGES:
        st.session_state[LANGUAGE_KEY] = chosen
        st.query_params["lang"] = chosen
    else:  # a segmented control clicked off: keep the language
        st.session_state[SWITCH_KEY] = language()
