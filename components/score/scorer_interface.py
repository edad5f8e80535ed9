"""The interface every scorer implements: texts with their languages in, scores (or reasons) out.

Kept apart from the factory (``scorers.py``) so that each scorer imports only this interface and
the factory imports every scorer: the dependencies run one way. Any item may come back without a
score for some attribute, with the reason, because an API can refuse a language or rate-limit a
request and a classifier may not cover a language. A missing score is ``None`` and never 0: a 0
would silently make a model look less toxic than it is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ScoreResult:
    """The scores of one text: ``None`` for an attribute that could not be scored, and why.

    ``details``, when a scorer gives it, says what produced the scores (a word list's matched
    words, its name and version); it is written to the record as ``score_details``.
    """

    scores: dict[str, float | None]
    errors: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] | None = None


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
