"""Keeping the translations in step with the code (Babel's extraction and catalogs).

    python tools/i18n.py extract          # write explorer/locales/explorer.pot from the code
    python tools/i18n.py update           # add new messages to the Korean catalog, mark changed ones fuzzy, drop unused ones
    python tools/i18n.py check            # list what is missing, fuzzy, unused or mismatched; exit 1 if anything
    python tools/i18n.py merge PART.po..  # fold partial catalogs (one per translator) into the Korean one

The same as ``pybabel extract -F babel.cfg -k N_ -o explorer/locales/explorer.pot .`` and
``pybabel update``; the check is also tests/test_i18n.py.
"""

from __future__ import annotations

import ast
import string
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from explorer.i18n import DOMAIN, LOCALE_DIR, catalog_path  # noqa: E402

SOURCES = ("explorer", "pages")  # every file whose texts a page may show
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}
TEMPLATE = LOCALE_DIR / f"{DOMAIN}.pot"
TRANSLATED = ("ko",)


def source_files() -> list[Path]:
    return sorted(path for folder in SOURCES for path in (ROOT / folder).rglob("*.py"))


def extracted() -> Catalog:
    """Every marked message in the code, with where it is."""
    catalog = Catalog(domain=DOMAIN, project="ResNet Explorer", charset="utf-8")
    for path in source_files():
        for line, message, comments, context in extract_from_file("python", str(path), keywords=KEYWORDS,
                                                                  comment_tags=("Translators:",)):
            catalog.add(message, locations=[(str(path.relative_to(ROOT)), line)], auto_comments=comments,
                        context=context)
    return catalog


def marked_calls_without_literal() -> list[str]:
    """``_(name)`` or ``_(f"...")``: texts the extraction cannot see (so they would stay English)."""
    problems = []
    for path in source_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("_", "N_")
                    and not (len(node.args) == 1 and isinstance(node.args[0], ast.Constant)
                             and isinstance(node.args[0].value, str))):
                problems.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.func.id}() of something not a "
                                "plain string")
    return problems


def placeholders(text: str) -> set[str]:
    """The ``{name}`` fields of a str.format text (a "{{" is a literal brace)."""
    try:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError:
        return {"<unbalanced braces>"}


def load(language: str, path: Path | None = None) -> Catalog:
    with open(path or catalog_path(language), "rb") as po:
        return read_po(po, locale=language, domain=DOMAIN)


def problems(language: str, part: Path | None = None, files: list[str] | None = None) -> list[str]:
    """Everything that keeps ``language``'s catalog (or a partial one, for ``files``) from matching the code."""
    code, catalog = extracted(), load(language, part)
    found = marked_calls_without_literal()
    if files:
        wanted_files = {str(Path(file)) for file in files}
        found = [problem for problem in found if problem.split(":")[0] in wanted_files]
        kept = Catalog(domain=DOMAIN)
        for message in code:
            if message.id and any(location[0] in wanted_files for location in message.locations):
                kept[message.id] = message
        code = kept
    for message in code:
        if not message.id:
            continue
        entry = catalog.get(message.id, context=message.context)
        where = message.locations[0][0] if message.locations else "?"
        key = message.id if isinstance(message.id, str) else message.id[0]
        if entry is None or not _filled(entry.string):
            found.append(f"missing: {key!r} ({where})")
        elif entry.fuzzy:
            found.append(f"fuzzy: {key!r} ({where})")
        else:
            wanted = placeholders(key)
            for text in (entry.string if isinstance(entry.string, (list, tuple)) else [entry.string]):
                if placeholders(text) != wanted:
                    found.append(f"placeholders differ: {key!r} has {sorted(wanted)}, the translation "
                                 f"{sorted(placeholders(text))}")
    for entry in catalog:
        if entry.id and code.get(entry.id, context=entry.context) is None and not files:
            key = entry.id if isinstance(entry.id, str) else entry.id[0]
            found.append(f"unused: {key!r}")
    return found


def _filled(text) -> bool:
    return all(text) if isinstance(text, (list, tuple)) else bool(text)


def save(catalog: Catalog, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as po:
        write_po(po, catalog, width=0, sort_output=False, omit_header=False)


def update(language: str) -> None:
    """The catalog with every message of the code: kept translations, new ones empty, unused ones gone."""
    catalog = load(language) if catalog_path(language).exists() else Catalog(locale=language, domain=DOMAIN)
    catalog.update(extracted(), no_fuzzy_matching=True)
    catalog.obsolete.clear()
    save(catalog, catalog_path(language))


def merge(language: str, parts: list[str]) -> None:
    catalog = load(language) if catalog_path(language).exists() else Catalog(locale=language, domain=DOMAIN)
    for part in parts:
        with open(part, "rb") as po:
            for entry in read_po(po, locale=language):
                if entry.id and _filled(entry.string):
                    existing = catalog.get(entry.id, context=entry.context)
                    if existing is None:
                        catalog.add(entry.id, entry.string, context=entry.context)
                    else:  # Catalog.add keeps an existing entry's text
                        existing.string = entry.string
                        existing.flags.discard("fuzzy")
    save(catalog, catalog_path(language))
    update(language)


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "check"
    if command == "extract":
        save(extracted(), TEMPLATE)
    elif command == "update":
        for language in TRANSLATED:
            update(language)
    elif command == "merge":
        merge("ko", argv[1:])
    elif command == "check-part":  # check-part PART.po FILE... : a translator's part, for the files it covers
        found = problems("ko", Path(argv[1]), argv[2:])
        print("\n".join(found) or "every message of these files is translated in " + argv[1])
        return 1 if found else 0
    elif command == "check":
        found = [f"{language}: {problem}" for language in TRANSLATED for problem in problems(language)]
        print("\n".join(found) or "every message is translated")
        return 1 if found else 0
    else:
        print(f"unknown command {command!r}; valid: extract, update, check, merge", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
