"""Parameters of the interpretability stages (REFERENCE.md §5); XG's values where XG states them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from xdetox.config.base import _Strict


class ProbeConfig(_Strict):
    """Linear toxicity probe (XG: batch 10, 20 epochs, 90/10 split, best epoch by val. loss)."""

    # "toxic": the Jigsaw ``toxic`` column alone, which gives XG's 15,294 toxic comments;
    # "any": toxic if any of the six Jigsaw labels is 1.
    label: Literal["toxic", "any"] = "toxic"
    epochs: int = Field(20, gt=0)
    batch_size: int = Field(10, gt=0)
    learning_rate: float = Field(1e-3, gt=0.0)  # not stated by XG; Adam's usual default
    validation_fraction: float = Field(0.1, gt=0.0, lt=1.0)
    seed: int = 0
    # Tokens kept from the start of each text (ours: Jigsaw comments run to 5,000 characters).
    max_length: int = Field(128, gt=0)
    max_examples: int | None = Field(None, gt=0)  # seeded random subset; None = all rows
    embed_batch_size: int = Field(32, gt=0)  # texts per forward pass of the frozen model


class ValueVectorConfig(_Strict):
    """Toxic value vectors (XG: top 100 by cosine, kept if mean activation over 20 tokens > 0)."""

    top_k: int = Field(100, gt=0)
    steps: int = Field(20, gt=0)  # greedily generated tokens per prompt
    language: str = "en"  # prompts the activations are measured on
    max_prompts: int | None = Field(None, gt=0)  # first N prompts of that language
    top_tokens: int = Field(10, gt=0)  # vocabulary projection: tokens listed per vector
    batch_size: int = Field(16, gt=0)


class InterventionConfig(_Strict):
    """Offsets added to the chosen neurons' activations (XG: 0 to -5)."""

    offsets: list[float] = Field(
        default_factory=lambda: [0.0, -1.0, -2.0, -3.0, -4.0, -5.0], min_length=1
    )
    languages: list[str] | None = None  # None: every language in the prompts file
    max_prompts_per_language: int | None = Field(None, gt=0)
    attribute: str = "TOXICITY"
    score_batch_size: int = Field(64, gt=0)  # texts per call of the scorer


class ActivationConfig(_Strict):
    """Chosen neurons' mean activation per language (XG: last position, 20 greedy steps)."""

    steps: int = Field(20, gt=0)
    languages: list[str] | None = None
    max_prompts_per_language: int | None = Field(None, gt=0)
    batch_size: int = Field(16, gt=0)


class AlignmentConfig(_Strict):
    """Cross-lingual alignment of mean-pooled hidden states, and its link to the toxicity drop."""

    # Which layer's alignment is correlated with the drop: an index into the hidden states
    # (0 = embeddings, negative counts from the end) or "mean" (mean over all layers).
    layer: int | Literal["mean"] = "mean"
    max_pairs_per_language: int | None = Field(None, gt=0)  # XG used 200
    max_length: int = Field(128, gt=0)
    batch_size: int = Field(32, gt=0)
    metric: str = "expected_max_toxicity"  # metrics.csv column whose drop is correlated
    base_label: str = "base"
    tuned_label: str | None = None  # None: the one model in metrics.csv that is not the base


class InterpretConfig(_Strict):
    """Inputs of the ``interpret`` pipeline and each stage's parameters.

    Sources are ``toy`` (the shipped toy files), a local path or a ``gs://`` URI.
    """

    # Probe data: Jigsaw train.csv (comment_text, toxic, ...) or a text,label CSV.
    probe_data: str = "toy"
    probe_test_data: str | None = None  # optional held-out CSV, same formats
    # Parallel sentences for the alignment stage (JSON lines or CSV: en, text, language).
    parallel_data: str = "toy"
    # The preference-tuned model (same sources as model.base). Decides at compile time whether
    # the pipeline compares activations before/after tuning; without it only the base is measured.
    tuned_model: str | None = None
    tuned_label: str = "tuned"  # its name in the activation tables and plots
    # metrics.csv of a detox run (local or gs://): each language's drop in toxicity is
    # correlated with its alignment. None: alignment is measured without the correlation.
    metrics: str | None = None
    # Also run these stages as a branch of the detox pipeline (base model, merged tuned model,
    # and the run's own metrics.csv for the alignment correlation).
    run_in_detox: bool = False
    probe: ProbeConfig = Field(default_factory=ProbeConfig)
    value_vectors: ValueVectorConfig = Field(default_factory=ValueVectorConfig)
    intervention: InterventionConfig = Field(default_factory=InterventionConfig)
    activations: ActivationConfig = Field(default_factory=ActivationConfig)
    alignment: AlignmentConfig = Field(default_factory=AlignmentConfig)
