"""The Korean interface (issue 23): complete catalogs, per-session languages, every page in Korean."""

import re
import sys
import threading

import pytest
from streamlit.testing.v1 import AppTest

from explorer.i18n import LANGUAGES, catalog_path, language_of, translations
from explorer.ui.navigation import PAGE_TABLE
from tests.conftest import ROOT
from tests.test_app import open_page
from tests.i18n_measure import KOREAN_WORD_SHARE, english_words, korean_word_share

sys.path.insert(0, str(ROOT / "tools"))
import i18n as catalog_tools  # noqa: E402  (tools/i18n.py)

APP = str(ROOT / "explorer" / "app.py")
GLOSSARY = ROOT / "explorer" / "locales" / "glossary.md"


def test_every_message_has_a_korean_translation_and_none_is_unused():
    problems = catalog_tools.problems("ko")
    assert not problems, "\n".join(problems[:40])


def test_the_check_fails_on_missing_fuzzy_and_unused_translations(tmp_path, monkeypatch):
    """The test above can fail: a catalog with a gap, a fuzzy entry and a stale one is caught."""
    catalog = catalog_tools.load("ko")
    messages = [message for message in catalog if message.id]
    missing, fuzzy = messages[0], messages[1]
    catalog.delete(missing.id, context=missing.context)
    fuzzy.flags.add("fuzzy")
    catalog.add("A text the code no longer has", "코드에 없는 문장")
    broken = tmp_path / "explorer.po"
    catalog_tools.save(catalog, broken)
    monkeypatch.setattr(catalog_tools, "catalog_path", lambda language: broken)
    found = catalog_tools.problems("ko")
    assert any(line.startswith("missing: ") and repr(missing.id) in line for line in found)
    assert any(line.startswith("fuzzy: ") and repr(fuzzy.id) in line for line in found)
    assert "unused: 'A text the code no longer has'" in found


def test_marked_texts_are_plain_literals_with_named_placeholders():
    assert catalog_tools.marked_calls_without_literal() == []
    for message in catalog_tools.extracted():
        if message.id and isinstance(message.id, str):
            # Numbers are placeholders: "{steps:,} steps", never "{}" (translators may reorder them).
            assert "{}" not in message.id, message.id


def _glossary() -> list[tuple[str, str]]:
    rows = []
    for line in GLOSSARY.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[2] == "yes":
            rows.append((cells[0], cells[1]))
    return rows


def test_the_translations_use_the_glossarys_terms():
    terms = _glossary()
    assert ("residual block", "잔여 블록") in terms and ("plain network", "평형망") in terms
    catalog = catalog_tools.load("ko")
    wrong = []
    for message in catalog:
        if not message.id or not isinstance(message.id, str) or not message.string:
            continue  # a missing translation is the first test's to report
        for english, korean in terms:
            if re.search(rf"\b{re.escape(english)}s?\b", message.id, re.IGNORECASE) and korean not in message.string:
                wrong.append(f"{message.id!r}: {english!r} is not {korean!r} in {message.string!r}")
    assert not wrong, "\n".join(wrong[:20])


@pytest.mark.parametrize("locale, language", [
    ("ko", "ko"), ("ko-KR", "ko"), ("ko_KR", "ko"), ("KO-kr", "ko"), ("en", "en"), ("en-GB", "en"), ("en-US", "en"),
    ("fr-FR", None), ("", None), (None, None), ("<script>alert(1)</script>", None), ("ko;drop", None),
    ("k" * 300, None), ("ko-" + "x" * 50, None), (["ko"], None),
])
def test_a_locale_maps_to_a_language_or_to_none(locale, language):
    assert language_of(locale) == language


def test_the_catalogs_are_compiled_once_and_shared_read_only():
    korean = translations("ko")
    assert translations("ko") is korean
    assert korean.gettext("Language") == "언어"
    assert translations("en").gettext("Language") == "Language"
    with pytest.raises(ValueError, match="valid: en, ko"):
        translations("fr")
    assert catalog_path("ko").name == "explorer.po"


def _page_text(app: AppTest) -> str:
    parts = [element.value for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning",
                                        "success", "error")
             for element in getattr(app, kind) if isinstance(element.value, str)]
    parts += [widget.label for kind in ("button", "selectbox", "radio", "slider", "number_input", "checkbox",
                                        "multiselect", "select_slider", "text_input", "toggle")
              for widget in getattr(app, kind) if getattr(widget, "label", None)]
    parts += [expander.label for expander in app.expander]
    # Code, formulas and the sidebar's citation are not prose: st.code and st.latex are not read.
    return "\n".join(parts)


def open_in(language: str | None, page: str | None = None, query: str | None = None) -> AppTest:
    """The app at ``page`` in ``language``, or with ``?lang=query`` as it was typed."""
    return open_page(page, lang=query if query is not None else language)


PAGES = [(key, file) for key, (file, *_rest) in PAGE_TABLE.items()]


@pytest.mark.parametrize("key, file", PAGES, ids=[key for key, _file in PAGES])
def test_every_page_renders_in_korean_mostly_in_hangul(key, file):
    app = open_in("ko", None if key == "home" else file)
    text = _page_text(app)
    share = korean_word_share(text)
    assert share >= KOREAN_WORD_SHARE, f"{key}: {share:.0%} of words Korean; English left: {english_words(text)}"
    assert app.session_state["interface_language"] == "ko"


def test_the_english_interface_has_no_hangul_and_the_address_keeps_the_choice():
    app = open_in("en", "train.py")
    text = _page_text(app)
    assert korean_word_share(text) == 0, text
    assert app.query_params["lang"] == ["en"] or app.query_params["lang"] == "en"


@pytest.mark.parametrize("bad", ["xx", "<script>alert(1)</script>", "ko'--", "../../etc/passwd"])
def test_an_unknown_or_malicious_lang_falls_back_without_an_error(bad):
    app = open_in(None, "runs.py", query=bad)
    assert not app.error and not app.exception
    assert app.session_state["interface_language"] == "en"  # AppTest's browser has no locale: English
    assert korean_word_share(_page_text(app)) == 0


def test_the_sidebar_switch_changes_the_language_for_this_session_only():
    english = open_in(None, "concepts.py")
    korean = open_in(None, "concepts.py")
    korean.sidebar.get("segmented_control")[0].set_value("ko").run()
    assert not korean.exception
    assert korean.session_state["interface_language"] == "ko"
    assert korean_word_share(_page_text(korean)) >= KOREAN_WORD_SHARE
    english.run()
    assert english.session_state["interface_language"] == "en"
    assert korean_word_share(_page_text(english)) == 0


def test_two_sessions_in_two_languages_at_once_on_one_server():
    """Two websocket sessions of one real server, their script runs overlapping many times: each
    sees only its own language (the language is per session, never process-wide)."""
    from tests.live_server import streamlit_server
    from tests.stream_client import StreamSession

    seen: dict[str, list[float]] = {"ko": [], "en": []}
    failures: list[str] = []

    def browse(url: str, language: str) -> None:
        try:
            with StreamSession(url, timeout=120) as session:
                for round_ in range(4):
                    for path in ("concepts", "architecture", "playground"):  # pages whose texts are all ours
                        shown = session.open(path, query=f"lang={language}") if round_ == 0 else session.switch(
                            PAGE_TABLE[path][1] if language == "en" else translations("ko").gettext(PAGE_TABLE[path][1]))
                        assert not shown.exceptions, shown.exceptions
                        seen[language].append(korean_word_share("\n".join(shown.texts)))
        except Exception as error:  # noqa: BLE001 - reported by the main thread
            failures.append(f"{language}: {type(error).__name__}: {error}")

    with streamlit_server() as (url, _process):
        threads = [threading.Thread(target=browse, args=(url, language)) for language in ("ko", "en")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)
    assert not failures, failures
    assert len(seen["ko"]) == len(seen["en"]) == 12
    assert min(seen["ko"]) >= KOREAN_WORD_SHARE, seen["ko"]
    assert max(seen["en"]) == 0, seen["en"]


def test_every_language_is_named_in_its_own_script():
    assert LANGUAGES == {"en": "English", "ko": "한국어"}


def test_the_korean_keeps_every_emphasis_working():
    """A closing ** right after punctuation and right before Hangul is not closed in CommonMark
    ("**성능 저하 문제(degradation problem)**이며" shows its asterisks): the Korean text may not leave
    more literal asterisks on screen than the English."""
    from markdown_it import MarkdownIt

    markdown = MarkdownIt("commonmark")

    def literal_asterisks(text: str) -> int:
        filled = re.sub(r"\{[^{}]*\}", "Xx9", text)  # a placeholder stands for a name or a number
        return re.sub(r"<[^>]+>", "", markdown.render(filled)).count("*")

    shown = [message.string for message in catalog_tools.load("ko")
             if message.id and isinstance(message.id, str) and message.string
             and literal_asterisks(message.string) > literal_asterisks(message.id)]
    assert not shown, shown
