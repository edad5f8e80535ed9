"""Where the base model, the preference pairs and the evaluation prompts come from."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from xdetox.config.base import _Strict
from xdetox.config.scoring import ScorerName

XG_LANGUAGES = [
    "ar",
    "cs",
    "de",
    "en",
    "es",
    "fr",
    "hi",
    "id",
    "it",
    "ja",
    "ko",
    "nl",
    "pl",
    "pt",
    "ru",
    "sv",
    "zh-hans",
]


class ModelConfig(_Strict):
    base: str = Field(
        "toy",
        description="the base model: toy (built by the package), a local folder, "
        "gs://bucket/prefix, or a Hugging Face id",
    )


class LengthFilter(_Strict):
    """Pairs longer than ``max_length`` are dropped: a pair is kept when both
    ``prompt + chosen`` and ``prompt + rejected`` are at most ``max_length`` long."""

    # Tokens by default: the reference counted characters, which keeps different amounts of text
    # for scripts with different characters per token.
    unit: Literal["tokens", "chars"] = Field(
        "tokens",
        description="what max_length counts: tokens of the base model's tokenizer (of the texts "
        "trained on), or characters of the fields as read, before a repeated prompt is removed "
        "(exactly the XG reference's rule; it keeps less text for scripts with more characters "
        "per token)",
    )
    max_length: int = Field(256, gt=0, description="longest prompt + continuation kept")


# How the train/eval split is drawn (``data.split_method``).
SplitMethod = Literal["xdetox", "datasets"]


# ``data.preference`` value that makes the pairs from the base model's own samples.
SELF_PAIRS = "self"


class SelfPairsConfig(_Strict):
    """Preference pairs made from the base model's own samples (``data.preference: self``).

    For each prompt, ``n`` continuations are sampled and scored; the least toxic becomes
    ``chosen`` and the most toxic ``rejected`` when their TOXICITY differs by at least
    ``margin``. Sampling defaults follow RealToxicityPrompts (Gehman et al. 2020: temperature 1,
    top-p 0.9, 20 new tokens) with fewer samples (8, not 25): only the two extremes are kept.
    """

    # None reuses the evaluation prompts: the tuned model is then evaluated, in this language,
    # on the prompts it was trained on. A separate source keeps that evaluation held out.
    prompts: str | None = Field(
        None,
        description="prompts sampled from: file/folder (RTP-LX, JSONL, CSV), gs://, toy, or a "
        "shipped set (real-train: English training openings); "
        "None: the run's prepared evaluation prompts (then not held out in this language)",
    )
    language: str = Field("en", description="the language whose prompts are sampled")
    max_prompts: int | None = Field(
        None, gt=0, description="seeded sample of prompts (data.seed); None keeps all"
    )
    n: int = Field(8, ge=2, description="samples per prompt: the least and most toxic are paired")
    temperature: float = Field(1.0, gt=0.0, description="sampling temperature (not greedy)")
    top_p: float = Field(0.9, gt=0.0, le=1.0, description="nucleus sampling mass")
    max_new_tokens: int = Field(20, gt=0, description="new tokens per sample")
    seed: int = Field(0, description="sampling seed (each sample is seeded from it)")
    # A gap of 0 would pair equal scores, which carry no preference.
    margin: float = Field(
        0.1, gt=0.0, le=1.0, description="least TOXICITY gap between rejected and chosen"
    )
    scorer: ScorerName | None = Field(
        None, description="scorer of the samples; None: scoring.scorer (with its settings)"
    )


class DataConfig(_Strict):
    """Where the preference pairs and the evaluation prompts come from, and how they are cut."""

    preference: str = Field(
        "toy",
        description="preference pairs: toxicity_pairwise folder/file, gs:// prefix, toy, or "
        "self (made from the base model's samples, see data.self_pairs)",
    )
    prompts: str = Field(
        "toy",
        description="evaluation prompts: file/folder (RTP-LX, JSONL, CSV), gs://, toy, or real "
        "(the shipped openings in en, de, es, fr, ru)",
    )
    languages: list[str] = Field(
        default_factory=lambda: list(XG_LANGUAGES),
        min_length=1,
        description="languages evaluated (XG's 17 by default)",
    )
    max_prompts_per_language: int | None = Field(
        None, gt=0, description="seeded sample of prompts per language; None keeps all"
    )
    max_pairs: int | None = Field(
        None, gt=0, description="seeded sample of preference pairs; None keeps all"
    )
    eval_fraction: float = Field(
        0.05, ge=0.0, lt=1.0, description="share of the pairs held out for evaluation"
    )
    length_filter: LengthFilter = Field(default_factory=LengthFilter)
    # xdetox's draw is the default because it works for any number of pairs: at least one eval
    # pair from two pairs on, never an empty training split, eval_fraction 0 allowed, and both
    # files in source order (pair_ids easy to follow); make-pairs splits the same way. The XG
    # reference's draw (datasets) is there to reproduce its exact split; it refuses splits that
    # leave no training pair.
    split_method: SplitMethod = Field(
        "xdetox",
        description="how eval pairs are drawn: xdetox (random.Random(seed).sample of "
        "round(n * eval_fraction) pairs, at least 1 eval and 1 train pair, files in source "
        "order) or datasets (Hugging Face datasets' Dataset.train_test_split(test_size="
        "eval_fraction, seed=seed) over the length-filtered pairs, as the XG reference did: "
        "ceil(n * eval_fraction) eval pairs, files in its shuffled order)",
    )
    # The XG reference trained on toxicity_pairwise's answers as read; if they repeat their prompt
    # (PPLM's scripts decode prompt and continuation together), the model was then trained on
    # prompt + prompt + continuation. Stripping is what the data means; keep reproduces the run.
    repeated_prompt: Literal["strip", "keep"] = Field(
        "strip",
        description="an answer that begins with its own prompt: strip (cut the copy, train on the "
        "continuation) or keep (train on the answer as read, as the XG reference did)",
    )
    seed: int = Field(0, description="seed of the sampling and of the train/eval split")
    self_pairs: SelfPairsConfig = Field(default_factory=SelfPairsConfig)
