"""The offline scorer: the shipped multilingual word lists (``lexicon.py``) behind the interface."""

from __future__ import annotations

from collections.abc import Sequence

from xdetox.components.score.lexicon import (
    LEXICON_DIR,
    LEXICON_VERSION,
    Lexicon,
    load_lexicons,
    resolve_language,
    score_text,
)
from xdetox.components.score.scorer_interface import Scorer, ScoreResult
from xdetox.records import ATTRIBUTES


class LexiconScorer(Scorer):
    """The offline scorer: the shipped multilingual word lists (see ``lexicon.py``).

    A language without a lexicon gets ``None`` for every attribute with a reason; there is no
    fallback to another language's list, because an English word list run over, say, Arabic
    text would report 0.0 toxicity for everything, which is a wrong measurement, not a missing one.
    """

    def __init__(
        self,
        attributes: Sequence[str] = ATTRIBUTES,
        lexicons: dict[str, Lexicon] | None = None,
    ) -> None:
        self.attributes = tuple(attributes)
        self.lexicons = lexicons if lexicons is not None else load_lexicons(LEXICON_DIR)
        n_terms = sum(len(lex.terms) for lex in self.lexicons.values())
        languages = " ".join(sorted(self.lexicons))
        self.id = f"offline-lexicon-{LEXICON_VERSION}"
        self.name = (
            f"offline lexicon scorer (xdetox toy lexicon {LEXICON_VERSION}, {n_terms} terms; "
            f"{languages}) — a word list, not a trained classifier"
        )

    def score_items(self, texts: Sequence[str], languages: Sequence[str]) -> list[ScoreResult]:
        if len(texts) != len(languages):
            raise ValueError(f"{len(texts)} texts but {len(languages)} languages")
        results = []
        for text, language in zip(texts, languages, strict=True):
            tag = resolve_language(language, self.lexicons)
            if tag is None:
                reason = f"no lexicon for language {language!r}"
                results.append(
                    ScoreResult(
                        dict.fromkeys(self.attributes), dict.fromkeys(self.attributes, reason)
                    )
                )
            else:
                results.append(ScoreResult(score_text(self.lexicons[tag], text, self.attributes)))
        return results
