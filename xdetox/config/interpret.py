"""Parameters of the interpretability stages.

XG is Li, Yong & Bach 2024, "Preference Tuning For Toxicity Mitigation Generalizes Across
Languages" (arXiv:2406.16235); its code is github.com/BatsResearch/cross-lingual-detox. Where the
paper and its code differ from our defaults, the code's value is named in the description and set
in ``pipelines/configs/xg-mgpt-interpret.yaml``; the defaults here are chosen for any model.

Optional fields default to ``None`` (``to_params`` drops ``None`` on the way into a KFP Struct).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from xdetox.config.base import _Strict

# The greedy-step settings of the value-vector and activation stages share their wording: XG
# measured both with one function, xg/collect_neuron_activations.py
# (collect_neuron_activation_gpt2), on prompts tokenized by TransformerLens' to_tokens.
_PREPEND_BOS = (
    "put the tokenizer's BOS token (its EOS when it has none, as TransformerLens does) in front "
    "of each prompt unless the tokenizer already put it there, so it is never doubled. XG: true "
    "(TransformerLens' to_tokens). false: the tokenizer's own special tokens, as generation uses"
)
_STOP_AT_EOS = (
    "true: a prompt's steps end with the one that produced end-of-sequence; false: every "
    "prompt runs all steps, past end-of-sequence (XG: false, a fixed argmax loop)"
)


class ProbeConfig(_Strict):
    """Linear toxicity probe (XG's scripts/run_train_probe.py and xg/training/probe_trainer.py:
    Adam at 1e-6, batch 10, 20 epochs, 90/10 random split, best epoch by validation loss)."""

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
    # XG's 1e-6 has ~287,000 steps to work with (Kaggle's 159,571 Jigsaw comments, 90% of them
    # in batches of 10, 20 epochs); on a few hundred rows it would barely move the probe, so the
    # default is Adam's usual 1e-3.
    learning_rate: float = Field(
        1e-3,
        gt=0.0,
        description="Adam's learning rate. XG: 1e-6, set in scripts/run_train_probe.py (the paper "
        "does not state it)",
    )
    validation_fraction: float = Field(
        0.1, gt=0.0, lt=1.0, description="share held out to pick the best epoch"
    )
    # XG's seed (99, TrainArgs' default) goes through torch's global generator into its
    # random_split and the DataLoader's shuffling; its probe is initialised before the seed is
    # set. Ours seeds its own generators, so the same number does not give XG's split.
    seed: int = Field(
        0,
        description="seed of the split, the subset, the initialisation and the batch order "
        "(XG: 99)",
    )
    # XG tokenizes with truncation=True and no max_length: the tokenizer's model_max_length.
    max_length: int | None = Field(
        None,
        gt=0,
        description="tokens kept from the start of each text; None: as many as the model takes "
        "(the tokenizer's model_max_length, capped by the model's positions), as XG",
    )
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
    batch_size: int = Field(16, gt=0, description="prompts per forward pass (XG: 10)")
    prepend_bos: bool = Field(False, description=_PREPEND_BOS)
    stop_at_eos: bool = Field(True, description=_STOP_AT_EOS)


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
    # XG's released intervention (notebooks/Causal Intervention.ipynb) generates with
    # TransformerLens' generate, whose to_tokens prepends BOS; its sweep script is not released.
    prepend_bos: bool = Field(
        False,
        description="put the tokenizer's BOS token (its EOS when it has none) in front of each "
        "prompt unless the tokenizer already did; false: the prompts are encoded as the detox "
        "pipeline's generation encodes them",
    )


class ActivationConfig(_Strict):
    """Chosen neurons' mean activation per language (XG: last position, 20 greedy steps)."""

    steps: int = Field(20, gt=0, description="greedily generated tokens per prompt")
    languages: list[str] | None = Field(
        None, description="languages measured; None: every language in the prompts file"
    )
    max_prompts_per_language: int | None = Field(
        None, gt=0, description="first N prompts per language; None: all"
    )
    batch_size: int = Field(16, gt=0, description="prompts per forward pass (XG: 10)")
    prepend_bos: bool = Field(False, description=_PREPEND_BOS)
    stop_at_eos: bool = Field(True, description=_STOP_AT_EOS)


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
    # XG's xg/retrieval/retrieval_acc_save.py pads and never truncates.
    max_length: int | None = Field(
        None,
        gt=0,
        description="tokens kept from the start of each sentence; None: as many as the model "
        "takes (the tokenizer's model_max_length, capped by the model's positions), as XG",
    )
    batch_size: int = Field(
        32, gt=0, description="sentences per forward pass (XG: 50, its --begin/--end slices)"
    )
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
