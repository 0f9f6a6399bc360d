"""The Korean interface in Chromium: a Korean browser gets Korean pages, every page renders with
Korean glyphs and nothing spills out of its column, and the switch and the address keep the choice."""

import os

import pytest

from explorer.i18n import translations
from explorer.ui.navigation import PAGE_TABLE
from tests.i18n_measure import KOREAN_WORD_SHARE, english_words, korean_word_share
from tests.test_browser import CHROMIUM, SCREENSHOTS, assert_no_error, browser, server, wait_until_idle  # noqa: F401

pytestmark = pytest.mark.browser

if not os.path.exists(CHROMIUM) and not os.environ.get("CI"):
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium; .ci/run does)", allow_module_level=True)

KOREAN = translations("ko").gettext

# Elements wider than the column that holds them (a label or button text that does not wrap), and
# whether a Hangul glyph was drawn with a real font (a missing font draws every glyph as the same box,
# so a Korean word and a Latin word of equal length would measure alike).
OVERFLOWING = """() => {
  const main = document.querySelector("[data-testid='stMainBlockContainer']");
  const limit = main.getBoundingClientRect().right + 1;
  const wide = [];
  for (const element of main.querySelectorAll("p, h1, h2, h3, label, button, a, span")) {
    const box = element.getBoundingClientRect();
    if (box.width === 0 || !element.innerText.trim() || element.closest("[data-testid='stDataFrame'], .js-plotly-plot, [data-testid='stCode'], .katex, .stGraphVizChart, svg"))
      continue;  // tables and charts scroll and clip by design, in English too
    const style = getComputedStyle(element);
    const clipped = (style.overflowX === 'hidden' || style.overflowX === 'clip' || style.textOverflow === 'ellipsis')
                    && element.scrollWidth > element.clientWidth + 1;
    if (box.right > limit || clipped) wide.push(element.innerText.slice(0, 60));
  }
  return wide;
}"""
HANGUL_GLYPHS_DIFFER = """() => {
  // Two Hangul syllables drawn with the page's font: without a Korean font both are the same box.
  const pixels = (character) => {
    const canvas = document.createElement('canvas');
    canvas.width = canvas.height = 32;
    const context = canvas.getContext('2d');
    context.font = '24px ' + getComputedStyle(document.body).fontFamily;
    context.fillText(character, 2, 26);
    return Array.from(context.getImageData(0, 0, 32, 32).data).join(',');
  };
  return pixels('한') !== pixels('국');
}"""


def _main_text(page) -> str:
    return page.locator("[data-testid='stMainBlockContainer']").inner_text()


def test_a_korean_browser_gets_every_page_in_korean(server, browser):  # noqa: F811
    context = browser.new_context(locale="ko-KR", viewport={"width": 1280, "height": 1600})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    shares = {}
    for key, (file, title, *_rest) in PAGE_TABLE.items():
        path = "" if key == "home" else file.removesuffix(".py")
        page.goto(f"{server}/{path}")  # no ?lang=: the browser's locale decides
        wait_until_idle(page)
        page.get_by_role("heading", name=KOREAN(title) if key != "home" else "ResNet Explorer").first.wait_for(
            timeout=30_000)
        assert_no_error(page, f"ko-{key}")
        text = _main_text(page)
        shares[key] = korean_word_share(text)
        assert shares[key] >= KOREAN_WORD_SHARE, f"{key}: {shares[key]:.0%} Korean; left: {english_words(text)}"
        wide = page.evaluate(OVERFLOWING)
        assert wide == [], f"{key}: text wider than its column: {wide}"
        assert "lang=ko" in page.url
    assert page.evaluate(HANGUL_GLYPHS_DIFFER), "Hangul is drawn as boxes: no Korean font"
    assert not errors, errors
    context.close()


def test_the_switch_and_a_shared_link_keep_the_language(server, browser):  # noqa: F811
    context = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 1200})
    page = context.new_page()
    page.goto(f"{server}/concepts")
    wait_until_idle(page)
    assert korean_word_share(_main_text(page)) == 0
    page.locator("[data-testid='stSidebar']").get_by_text("한국어").click()
    page.get_by_role("heading", name=KOREAN("Concepts")).first.wait_for(timeout=30_000)
    wait_until_idle(page)
    assert "lang=ko" in page.url
    # Another page through the sidebar keeps Korean, and so does the address given to a classmate.
    page.locator("[data-testid='stSidebarNav']").get_by_text(KOREAN("Runs")).click()
    page.get_by_role("heading", name=KOREAN("Runs")).first.wait_for(timeout=30_000)
    wait_until_idle(page)
    assert korean_word_share(_main_text(page)) >= KOREAN_WORD_SHARE
    shared = page.url
    other = browser.new_context(locale="en-US").new_page()
    other.goto(shared)
    wait_until_idle(other)
    other.get_by_role("heading", name=KOREAN("Runs")).first.wait_for(timeout=30_000)
    # A bad value falls back to the browser's language, without a word about it.
    other.goto(f"{server}/runs?lang=%3Cscript%3E")
    wait_until_idle(other)
    other.get_by_role("heading", name="Runs").first.wait_for(timeout=30_000)
    assert_no_error(other, "bad-lang")
    context.close()
