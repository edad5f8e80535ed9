"""Scorers: one interface for every way of putting toxicity numbers on generated text.

Three scorers, swapped with one config line (``scoring.scorer``): ``offline`` (the shipped word
lists, here), ``perspective`` (the Perspective API, ``perspective.py``) and ``classifier`` (a
Hugging Face sequence classifier, ``classifier.py``). Texts arrive in batches with their
languages, and any item may come back without a score for some attribute, with the reason,
because an API can refuse a language or rate-limit a request and a classifier may not cover a
language. A missing score is ``None`` and never 0: a 0 would silently make a model look less
toxic than it is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

from xdetox.components.score.lexicon import (
    LEXICON_DIR,
    LEXICON_VERSION,
    Lexicon,
    load_lexicons,
    resolve_language,
    score_text,
)
from xdetox.config import ScoringConfig
from xdetox.errors import ConfigError
from xdetox.records import ATTRIBUTES


@dataclass
class ScoreResult:
    """The scores of one text: ``None`` for an attribute that could not be scored, and why."""

    scores: dict[str, float | None]
    errors: dict[str, str] = field(default_factory=dict)


class Scorer(ABC):
    """Scores texts for the Perspective attributes in ``attributes``.

    ``id`` is the short, stable name written into every score record (e.g. "offline-lexicon-v1");
    ``name`` is an honest one-line description for reports, saying what kind of measurement it is.
    """

    id: str
    name: str
    attributes: tuple[str, ...]
    batch_size: int = 256  # how many texts callers should hand over at once

    @abstractmethod
    def score_items(self, texts: Sequence[str], languages: Sequence[str]) -> list[ScoreResult]:
        """One :class:`ScoreResult` per text, in order."""

    def score_batch(
        self, texts: Sequence[str], languages: Sequence[str]
    ) -> list[dict[str, float | None]]:
        """Scores per text, in order (``None`` where unavailable; see :meth:`score_items`)."""
        return [result.scores for result in self.score_items(texts, languages)]

    def close(self) -> None:  # noqa: B027 - optional hook: API clients, GPU memory
        """Release resources (network clients, models). Nothing to do for most scorers."""


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


def _check_attributes(attributes: Sequence[str]) -> tuple[str, ...]:
    if not attributes:
        raise ConfigError(
            "scoring.attributes: empty; name at least one of " + ", ".join(ATTRIBUTES)
        )
    for index, name in enumerate(attributes):
        if name not in ATTRIBUTES:
            raise ConfigError(
                f"scoring.attributes.{index}: unknown attribute {name!r} "
                f"(known: {', '.join(ATTRIBUTES)})"
            )
    return tuple(dict.fromkeys(attributes))  # drop repeats, keep order


SCORERS = ("offline", "perspective", "classifier")


def get_scorer(config: ScoringConfig) -> Scorer:
    """The scorer the ``scoring`` config section asks for.

    Building a scorer contacts nothing and loads no weights (the report stage builds one only
    for its ``name``): the API client and the classifier load on first use.
    """
    attributes = _check_attributes(config.attributes)
    if config.scorer == "offline":
        return LexiconScorer(attributes)
    if config.scorer == "perspective":
        from xdetox.components.score.perspective import PerspectiveScorer

        return PerspectiveScorer(
            attributes,
            qps=config.qps,
            discovery_url=config.discovery_url,
            cache_dir=config.cache_dir,
            max_retries=config.max_retries,
            retry_initial_delay=config.retry_initial_delay,
            retry_max_delay=config.retry_max_delay,
            timeout=config.timeout,
            api_batch_size=config.api_batch_size,
        )
    if config.scorer == "classifier":
        from xdetox.components.score.classifier import ClassifierScorer

        return ClassifierScorer(config.classifier, attributes)
    raise ConfigError(
        f"scoring.scorer: unknown scorer {config.scorer!r} (known: {', '.join(SCORERS)})"
    )
