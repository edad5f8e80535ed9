"""Parameters of the interpretability stages; XG's values (Li, Yong & Bach 2024, "Preference
Tuning For Toxicity Mitigation Generalizes Across Languages") where XG states them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from xdetox.config.base import _Strict


class ProbeConfig(_Strict):
    """Linear toxicity probe (XG: batch 10, 20 epochs, 90/10 split, best epoch by val. loss)."""

    # "toxic" gives XG's 15,294 toxic Jigsaw comments.
    label: Literal["toxic", "any"] = Field(
        "toxic",
        description="toxic: the Jigsaw toxic column alone; any: toxic if any of the six Jigsaw "
        "labels is 1",
    )
    threshold: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="scored generations (JSON lines) as probe data: toxic when the score is at "
        "least this",
    )
    epochs: int = Field(20, gt=0, description="training epochs")
    batch_size: int = Field(10, gt=0, description="examples per optimizer step")
    learning_rate: float = Field(
        1e-3, gt=0.0, description="Adam's learning rate (not stated by XG; Adam's usual default)"
    )
    validation_fraction: float = Field(
        0.1, gt=0.0, lt=1.0, description="share held out to pick the best epoch"
    )
    seed: int = Field(0, description="seed of the split, the subset and the initialisation")
    # Jigsaw comments run to 5,000 characters.
    max_length: int = Field(128, gt=0, description="tokens kept from the start of each text")
    max_examples: int | None = Field(
        None, gt=0, description="seeded random subset of the rows; None: all rows"
    )
    embed_batch_size: int = Field(
        32, gt=0, description="texts per forward pass of the frozen model"
    )


class ValueVectorConfig(_Strict):
    """Toxic value vectors (XG: top 100 by cosine, kept if mean activation over 20 tokens > 0)."""

    top_k: int = Field(100, gt=0, description="value vectors kept by cosine with the probe")
    steps: int = Field(20, gt=0, description="greedily generated tokens per prompt")
    language: str = Field("en", description="language of the prompts activations are measured on")
    max_prompts: int | None = Field(
        None, gt=0, description="first N prompts of that language; None: all"
    )
    top_tokens: int = Field(10, gt=0, description="vocabulary projection: tokens listed per vector")
    batch_size: int = Field(16, gt=0, description="prompts per forward pass")


class InterventionConfig(_Strict):
    """Offsets added to the chosen neurons' activations (XG: 0 to -5)."""

    offsets: list[float] = Field(
        default_factory=lambda: [0.0, -1.0, -2.0, -3.0, -4.0, -5.0],
        min_length=1,
        description="values added to the neurons' activations, one sweep point each",
    )
    languages: list[str] | None = Field(
        None, description="languages swept; None: every language in the prompts file"
    )
    max_prompts_per_language: int | None = Field(
        None, gt=0, description="first N prompts per language; None: all"
    )
    attribute: str = Field("TOXICITY", description="scored attribute plotted against the offset")
    score_batch_size: int = Field(64, gt=0, description="texts per call of the scorer")


class ActivationConfig(_Strict):
    """Chosen neurons' mean activation per language (XG: last position, 20 greedy steps)."""

    steps: int = Field(20, gt=0, description="greedily generated tokens per prompt")
    languages: list[str] | None = Field(
        None, description="languages measured; None: every language in the prompts file"
    )
    max_prompts_per_language: int | None = Field(
        None, gt=0, description="first N prompts per language; None: all"
    )
    batch_size: int = Field(16, gt=0, description="prompts per forward pass")


class AlignmentConfig(_Strict):
    """Cross-lingual alignment of mean-pooled hidden states, and its link to the toxicity drop."""

    layer: int | Literal["mean"] = Field(
        "mean",
        description="the layer whose alignment is correlated with the drop: an index into the "
        "hidden states (0 = embeddings, negative counts from the end) or mean (over all layers)",
    )
    max_pairs_per_language: int | None = Field(
        None, gt=0, description="parallel pairs per language (XG used 200); None: all"
    )
    max_length: int = Field(128, gt=0, description="tokens kept per sentence")
    batch_size: int = Field(32, gt=0, description="sentences per forward pass")
    metric: str = Field(
        "expected_max_toxicity", description="metrics.csv column whose drop is correlated"
    )
    base_label: str = Field("base", description="the base model's label in metrics.csv")
    tuned_label: str | None = Field(
        None,
        description="the tuned model's label in metrics.csv; None: the one model that is not "
        "the base",
    )


class InterpretConfig(_Strict):
    """Inputs of the ``interpret`` pipeline and each stage's parameters.

    Sources are ``toy`` (the shipped toy files), a local path or a ``gs://`` URI.
    """

    probe_data: str = Field(
        "toy",
        description="probe data: Jigsaw train.csv (comment_text, toxic, ...), a text,label CSV, "
        "or scored generations (.jsonl, labelled by probe.threshold)",
    )
    probe_test_data: str | None = Field(None, description="optional held-out CSV, same formats")
    parallel_data: str = Field(
        "toy",
        description="parallel sentences of the alignment stage (JSON lines or CSV: en, text, "
        "language)",
    )
    tuned_model: str | None = Field(
        None,
        description="the preference-tuned model (same sources as model.base); decides at "
        "compile time whether activations are compared before/after tuning",
    )
    tuned_label: str = Field("tuned", description="its name in the activation tables and plots")
    metrics: str | None = Field(
        None,
        description="metrics.csv of a detox run (local or gs://) whose per-language toxicity "
        "drop is correlated with alignment; None: alignment alone",
    )
    run_in_detox: bool = Field(
        False,
        description="also run these stages as a branch of the detox pipeline (base model, "
        "merged tuned model, the run's own metrics.csv)",
    )
    probe: ProbeConfig = Field(default_factory=ProbeConfig)
    value_vectors: ValueVectorConfig = Field(default_factory=ValueVectorConfig)
    intervention: InterventionConfig = Field(default_factory=InterventionConfig)
    activations: ActivationConfig = Field(default_factory=ActivationConfig)
    alignment: AlignmentConfig = Field(default_factory=AlignmentConfig)
