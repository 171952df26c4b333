"""The translation catalogs' tools (README "Languages"): extract, fill, check.

    python -m devtools.i18n extract               # makemessages for zh_Hans (django + djangojs)
    python -m devtools.i18n fill locale-pending/*.json
    python -m devtools.i18n check                 # untranslated or fuzzy entries; exit 1 if any

``fill`` writes the translations of ``{"msgid": "译文", …}`` files (the ones helpers leave in
``locale-pending/``) into the zh_Hans catalogs wherever an entry has none or is fuzzy, then
lists what is still untranslated. A plural entry takes a string (every form) or a list.
``make makemessages`` runs ``extract``; ``make messages`` compiles the ``.mo`` files.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import polib

ROOT = Path(__file__).resolve().parent.parent
LOCALE = "zh_Hans"
DOMAINS = ("django", "djangojs")
# What makemessages must not read: other people's code and generated or vendored files.
IGNORE = [
    ".venv",
    ".venv-peers",
    "node_modules",
    "tests",
    "bench",
    "demo_gateway",
    "devtools",
    "staticfiles",
    "data",
    "static/vendor",
    "test-artifacts",
    "*/migrations/*",
]


def catalog_path(domain: str, root: Path = ROOT) -> Path:
    return root / "locale" / LOCALE / "LC_MESSAGES" / f"{domain}.po"


@contextmanager
def _working_directory(path: Path) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def extract(root: Path = ROOT) -> None:
    """``makemessages`` over ``root`` (the project, or a copy of it) into ``root/locale``:
    new msgids are added empty, vanished ones dropped. Django must be set up."""
    from django.core.management import call_command

    with _working_directory(root):
        for domain in DOMAINS:
            call_command(
                "makemessages",
                locale=[LOCALE],
                domain=domain,
                ignore_patterns=IGNORE,
                no_location=True,  # no line numbers: catalogs merge cleanly across branches
                no_wrap=True,  # one line per string, as `fill` writes them
                no_obsolete=True,
                verbosity=0,
            )


# Python-format and JavaScript interpolate() placeholders: a translation keeps each of them.
_PLACEHOLDER = re.compile(r"%\([a-z_]+\)s|%s|%%")
HEADER = {
    "Project-Id-Version": "Switchboard",
    "Language-Team": "Simplified Chinese",
    "Language": LOCALE,
    "Plural-Forms": "nplurals=1; plural=0;",
    "Last-Translator": "Switchboard",
}


# `(window.gettext || …)("text")`: a call xgettext cannot see, so "text" never reaches the catalog.
_HIDDEN_JS_CALL = re.compile(r"\(\s*window\.gettext\s*\|\|.*?\)\s*\)\s*\(\s*(['\"])(.*?)\1")


def hidden_js_strings(directory: Path) -> list[str]:
    """Strings in ``directory``'s scripts passed to gettext in a form makemessages misses
    (write ``gettext("…")``, or ``_("…")`` after ``var _ = window.gettext || …``)."""
    return [
        f"{path.name}: {match[2]!r}"
        for path in sorted(directory.glob("*.js"))
        for match in _HIDDEN_JS_CALL.finditer(path.read_text(encoding="utf-8"))
    ]


def _needs_translation(entry: polib.POEntry) -> bool:
    if entry.obsolete:
        return False
    if entry.fuzzy:
        return True
    if entry.msgid_plural:
        return not entry.msgstr_plural or not all(entry.msgstr_plural.values())
    return not entry.msgstr


def _placeholders_differ(entry: polib.POEntry) -> bool:
    translations = list(entry.msgstr_plural.values()) if entry.msgid_plural else [entry.msgstr]
    wanted = sorted(set(_PLACEHOLDER.findall(entry.msgid_plural or entry.msgid)))
    return any(sorted(set(_PLACEHOLDER.findall(text))) != wanted for text in translations if text)


def problems(path: Path) -> list[str]:
    """What a reader would see in English or broken in one catalog: empty or fuzzy entries,
    placeholders lost or invented, a fuzzy header (msgfmt would drop it, and the charset)."""
    catalog = polib.pofile(str(path))
    found = [f"{path.name}: the header is fuzzy"] if catalog.metadata_is_fuzzy else []
    for entry in catalog:
        if _needs_translation(entry):
            state = "fuzzy" if entry.fuzzy else "untranslated"
            found.append(f"{path.name}: {state}: {entry.msgid!r}")
        elif not entry.obsolete and _placeholders_differ(entry):
            found.append(f"{path.name}: placeholders differ: {entry.msgid!r}")
    return found


def load_pending(files: Iterable[Path]) -> dict[str, str | list[str]]:
    translations: dict[str, str | list[str]] = {}
    for file in files:
        data = json.loads(Path(file).read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise SystemExit(f"{file}: expected a JSON object of msgid → translation")
        translations.update(data)
    return translations


def _set_translation(entry: polib.POEntry, text: str | list[str], count: int) -> None:
    """``count``: the language's number of plural forms (Chinese: 1)."""
    if entry.msgid_plural:
        forms = text if isinstance(text, list) else [text]
        entry.msgstr_plural = {i: forms[min(i, len(forms) - 1)] for i in range(count)}
    else:
        entry.msgstr = text[0] if isinstance(text, list) else text
    if entry.fuzzy:
        entry.flags.remove("fuzzy")
    entry.previous_msgid = entry.previous_msgid_plural = entry.previous_msgctxt = None


def _set_header(catalog: polib.POFile) -> None:
    """makemessages starts a catalog with a fuzzy template header, which msgfmt would skip."""
    catalog.header = f'Switchboard: the {LOCALE} catalog (README "Languages").'
    catalog.metadata_is_fuzzy = 0
    catalog.metadata.update(HEADER)
    if catalog.metadata.get("PO-Revision-Date", "").startswith("YEAR"):
        now = dt.datetime.now(dt.UTC)
        catalog.metadata["PO-Revision-Date"] = now.strftime("%Y-%m-%d %H:%M%z")


def fill(translations: dict[str, str | list[str]], root: Path = ROOT) -> list[str]:
    """Fill the catalogs' untranslated and fuzzy entries from ``translations``; return the
    problems left (``problems`` of each catalog)."""
    left: list[str] = []
    for domain in DOMAINS:
        path = catalog_path(domain, root)
        if not path.exists():
            continue
        catalog = polib.pofile(str(path), wrapwidth=0)
        _set_header(catalog)
        count = int(re.search(r"nplurals=(\d+)", HEADER["Plural-Forms"])[1])
        for entry in catalog:
            if entry.msgid_plural and len(entry.msgstr_plural) != count:
                # xgettext writes two forms whatever the language; Chinese has one.
                entry.msgstr_plural = {i: entry.msgstr_plural.get(i, "") for i in range(count)}
            if _needs_translation(entry) and entry.msgid in translations:
                _set_translation(entry, translations[entry.msgid], count)
        if str(catalog) != path.read_text(encoding="utf-8"):  # unchanged: keep its .mo current
            catalog.save(str(path))
        left += problems(path)
    return left


def _unmarked_anywhere() -> list[str]:
    """Strings the catalogs cannot have yet: unmarked template text, hidden script calls."""
    from devtools.template_strings import unmarked_in

    found = [f"unmarked in {name}: {text!r}" for name, texts in
             unmarked_in(ROOT / "templates").items() for text in texts]  # fmt: skip
    return found + [f"not extractable: {line}" for line in hidden_js_strings(ROOT / "static/js")]


def _unused(translations: dict[str, str | list[str]]) -> list[str]:
    """Pending translations no catalog asks for (not marked, or makemessages not run yet)."""
    msgids = set()
    for domain in DOMAINS:
        path = catalog_path(domain)
        if path.exists():
            for entry in polib.pofile(path):
                msgids.update({entry.msgid, entry.msgid_plural} - {""})
    return sorted(set(translations) - msgids)


def main(argv: list[str]) -> int:
    command, args = (argv[0], argv[1:]) if argv else ("check", [])
    if command == "extract":
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
        import django

        django.setup()
        extract()
        command = "check"
    if command == "fill":
        translations = load_pending(Path(arg) for arg in args)
        left = fill(translations)
        for msgid in _unused(translations):
            print(f"in no catalog (run `make makemessages`?): {msgid!r}", file=sys.stderr)
    elif command == "check":
        paths = [catalog_path(domain) for domain in DOMAINS]
        left = [line for path in paths if path.exists() for line in problems(path)]
        left += _unmarked_anywhere()
    else:
        print(__doc__)
        return 2
    for line in left:
        print(line)
    print(f"{len(left)} problem(s) left", file=sys.stderr)
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
