"""Which toxicity scorer runs, on which attributes, and how it talks to its model or API.

Three scorers share one interface (``components/score/scorers.py``), swapped with one line,
``scoring.scorer``:

* ``offline``: the shipped word lists (deterministic, no weights, no network).
* ``perspective``: Google's Perspective API (``commentanalyzer v1alpha1``). The key comes from the
  ``PERSPECTIVE_API_KEY`` environment variable only (a Kubernetes secret on a cluster): secrets
  never live in a config, a pipeline parameter or a compiled pipeline.
* ``classifier``: a Hugging Face sequence classifier (local folder or Hub id), see
  :class:`ClassifierConfig`.

Every optional field defaults to ``None`` (or to a value that survives ``to_params``, which
drops ``None``), so a section passed through a KFP Struct parameter comes back unchanged.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from xdetox.config.base import _Strict

DEFAULT_DISCOVERY_URL = "https://commentanalyzer.googleapis.com/$discovery/rest?version=v1alpha1"


class ClassifierConfig(_Strict):
    """A Hugging Face sequence classifier as a scorer.

    Which output means "toxic" is set by a ``preset`` (``textdetox-xlmr``,
    ``roberta-hate-dynabench``, ``toxic-bert``), by ``toxic_label`` (a label name or index:
    its softmax probability is TOXICITY), or by ``label_map`` (model label → attribute, e.g.
    ``{obscene: PROFANITY}``). With none of them the model's own labels decide (a binary model
    with a label called toxic/toxicity/hate/offensive, or toxic-bert's six labels).
    """

    model: str | None = None  # local folder or Hub id; None: the preset's model
    preset: Literal["textdetox-xlmr", "roberta-hate-dynabench", "toxic-bert"] | None = None
    toxic_label: str | None = None
    label_map: dict[str, str] | None = None
    # softmax: one label wins (binary classifiers); sigmoid: independent labels (multi-label).
    # None: the preset's, else the model config's problem_type, else softmax.
    activation: Literal["softmax", "sigmoid"] | None = None
    batch_size: int = Field(32, gt=0)
    max_length: int = Field(512, gt=0)  # tokens; longer texts are truncated
    device: str | None = None  # None: cuda when present, else cpu
    # Languages the classifier is trusted on; others get null scores with a reason.
    # None: every language is scored.
    languages: list[str] | None = None


class ScoringConfig(_Strict):
    scorer: Literal["offline", "perspective", "classifier"] = "offline"
    attributes: list[str] = Field(
        default_factory=lambda: [
            "TOXICITY",
            "SEVERE_TOXICITY",
            "IDENTITY_ATTACK",
            "INSULT",
            "PROFANITY",
            "THREAT",
        ]
    )
    # ---- perspective
    # Items per second the client allows itself (each item of a batch HTTP request counts);
    # the API's default quota is about 1.
    qps: float = Field(1.0, gt=0.0)
    # None: env PERSPECTIVE_DISCOVERY_URL, else Google's (DEFAULT_DISCOVERY_URL).
    discovery_url: str | None = None
    # Folder of the persistent score cache (sqlite). None: env XDETOX_CACHE_DIR/perspective,
    # else ~/.cache/xdetox/perspective.
    cache_dir: str | None = None
    max_retries: int = Field(6, ge=0)  # per item, after its first attempt
    retry_initial_delay: float = Field(1.0, ge=0.0)  # seconds; doubles per retry, with jitter
    retry_max_delay: float = Field(60.0, ge=0.0)
    timeout: float = Field(30.0, gt=0.0)  # seconds per HTTP request
    # Items per batch HTTP request; None: about one second of quota (round(qps), 1..50).
    # 1 sends plain requests (for proxies without the batch endpoint).
    api_batch_size: int | None = Field(None, gt=0, le=1000)
    # ---- classifier
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    # ---- agreement: also score every generation with this second scorer (same settings
    # otherwise) and report per language how the two agree (components/agreement). None: off.
    agreement_with: Literal["offline", "perspective", "classifier"] | None = None

    def second_scorer(self) -> ScoringConfig | None:
        """This section with ``scorer`` set to ``agreement_with`` (None when off)."""
        if self.agreement_with is None:
            return None
        return self.model_copy(update={"scorer": self.agreement_with, "agreement_with": None})
