"""The lesson plan (docs/lesson.md, docs/lesson.ko.md) shown on the Home page, in the session's language."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent.parent / "docs"
# A link to a file of the repository works on GitHub, not in the app: the app shows its path instead.
_RELATIVE_LINK = re.compile(r"\[([^\]]+)\]\((?:\.\./)?([^)\s:]+)\)")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


@lru_cache(maxsize=4)  # two small files, read once per process; the strings are immutable
def lesson_plan(language: str) -> str:
    path = DOCS / ("lesson.ko.md" if language == "ko" else "lesson.md")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return f"`{path.name}` is missing from this installation."
    text = _COMMENT.sub("", text)
    return _RELATIVE_LINK.sub(lambda match: f"{match.group(1)} (`{match.group(2)}`)", text)
