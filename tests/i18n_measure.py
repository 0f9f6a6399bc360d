"""How Korean a page's visible text is: the measure the Korean-interface tests hold pages to.

A word is a run of text between spaces that holds a letter (Latin or Hangul); it counts as Korean
when it holds a Hangul syllable. Model names (ResNet-56), code, formulas and units stay English in
the Korean interface, so a page is not all Hangul: it counts as mostly Korean when at least
``KOREAN_WORD_SHARE`` of its words are Korean. The English interface has none (the language switch's
own "한국어" aside).
"""

import re

KOREAN_WORD_SHARE = 0.6
_HANGUL = re.compile(r"[\uac00-\ud7a3]")
_LETTER = re.compile(r"[A-Za-z\uac00-\ud7a3]")


def korean_word_share(text: str) -> float:
    words = [word for word in text.split() if _LETTER.search(word)]
    if not words:
        return 0.0
    return sum(bool(_HANGUL.search(word)) for word in words) / len(words)


def english_words(text: str, limit: int = 40) -> list[str]:
    """The words without Hangul, for a failure's message: what was left untranslated."""
    return [word for word in text.split() if _LETTER.search(word) and not _HANGUL.search(word)][:limit]
