"""Reward functions with TRL's ``reward_funcs`` signature: ``fn(prompts, completions, **kwargs)``
returning one ``float | None`` per completion. ``None`` means "could not be scored": TRL then
leaves the completion out of its statistics and gives it no advantage, and the compact PPO drops
it from the update. A missing score is never turned into 0.

* :class:`ClassifierReward`: the raw logit of one label of a sequence classifier, on the
  completion text only, with the classifier's own tokenizer (TRL-detox: label 0 ``nothate`` of
  ``facebook/roberta-hate-speech-dynabench-r4-target``). The logit, not a probability: it keeps
  a gradient of preference among already-safe completions where a softmax saturates.
* :class:`ScorerReward`: ``1 - TOXICITY`` (or ``-TOXICITY``) from the project's scorer interface
  (anything with ``score_batch(texts, languages) -> list[dict[str, float | None]]``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch

from xdetox.components.train.ppo.ppo_config import RewardConfig
from xdetox.errors import ConfigError, DataError

RewardFunc = Callable[..., list[float | None]]


class Scorer(Protocol):
    """What the reward needs of a scorer (``components/score``)."""

    def score_batch(
        self, texts: list[str], languages: list[str]
    ) -> list[dict[str, float | None]]: ...


def completion_text(completion: Any) -> str:
    """The text of a completion: a string, or (conversational data) the messages' contents."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(str(m.get("content", "")) for m in completion if isinstance(m, dict))
    raise TypeError(f"unsupported completion type {type(completion).__name__}")


def _finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class ClassifierReward:
    """Raw logit of label ``label_index`` of a HF sequence classifier, batched.

    Completions are scored in batches sorted by length (little padding), right-padded; results
    come back in the input order. An empty completion is scored when the tokenizer still gives it
    tokens (RoBERTa's ``<s></s>``); one with no tokens at all gets ``None``.
    """

    def __init__(
        self,
        model,
        tokenizer,
        *,
        label_index: int = 0,
        batch_size: int = 16,
        max_length: int = 512,
        name: str = "classifier_reward",
    ):
        num_labels = model.config.num_labels
        if not 0 <= label_index < num_labels:
            raise ConfigError(
                f"rl.reward.label_index: {label_index} is out of range for a classifier "
                f"with {num_labels} labels ({model.config.id2label})"
            )
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise ConfigError("rl.reward.classifier: tokenizer has no pad or eos token")
            tokenizer.pad_token = tokenizer.eos_token
        # GPT-2-style classifiers find each row's last token through pad_token_id.
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.label_index = label_index
        self.batch_size = batch_size
        self.max_length = max_length
        # TRL names the logged reward metric after __name__ (rewards/<name>/mean).
        self.__name__ = name

    @classmethod
    def from_pretrained(
        cls, model_path: str | Path, *, device: str | torch.device | None = None, **kwargs
    ) -> ClassifierReward:
        """Load a classifier folder (or a Hub id, where the network allows) and its tokenizer."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(model_path))
            model = AutoModelForSequenceClassification.from_pretrained(str(model_path))
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot load reward classifier ({exc})", model_path) from None
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        return cls(model.to(device), tokenizer, **kwargs)

    @torch.no_grad()
    def score_texts(self, texts: Sequence[str]) -> list[float | None]:
        """The chosen label's logit for each text (None for a text with no tokens)."""
        device = next(self.model.parameters()).device
        encoded = [
            self.tokenizer(t, truncation=True, max_length=self.max_length)["input_ids"]
            for t in texts
        ]
        out: list[float | None] = [None] * len(texts)
        order = sorted((i for i, ids in enumerate(encoded) if ids), key=lambda i: len(encoded[i]))
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            # Right padding passed per call: the tokenizer may be shared with a left-padding policy.
            batch = self.tokenizer.pad(
                {"input_ids": [encoded[i] for i in rows]},
                padding=True,
                padding_side="right",
                return_tensors="pt",
            ).to(device)
            logits = self.model(**batch).logits[:, self.label_index]
            for i, value in zip(rows, logits.float().tolist(), strict=True):
                out[i] = _finite_or_none(value)
        return out

    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any
    ) -> list[float | None]:
        return self.score_texts([completion_text(c) for c in completions])


class ScorerReward:
    """``1 - score`` (``one_minus``) or ``-score`` (``negate``) of one scorer attribute.

    Languages come from the ``language`` column TRL passes through (one per completion), else
    ``default_language``. A score the scorer could not produce (``None``, NaN) stays ``None``.
    """

    def __init__(
        self,
        scorer: Scorer,
        *,
        attribute: str = "TOXICITY",
        transform: str = "one_minus",
        default_language: str = "en",
        name: str = "scorer_reward",
    ):
        if transform not in ("one_minus", "negate"):
            raise ConfigError(f"rl.reward.transform: unknown transform {transform!r}")
        self.scorer = scorer
        self.attribute = attribute
        self.transform = transform
        self.default_language = default_language
        self.__name__ = name

    def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        language: Sequence[str | None] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        texts = [completion_text(c) for c in completions]
        languages = [
            (language[i] if language is not None and language[i] else self.default_language)
            for i in range(len(texts))
        ]
        results = self.scorer.score_batch(texts, languages)
        if len(results) != len(texts):
            raise ValueError(f"scorer returned {len(results)} results for {len(texts)} texts")
        rewards: list[float | None] = []
        for scores in results:
            value = _finite_or_none((scores or {}).get(self.attribute))
            if value is None:
                rewards.append(None)
            else:
                rewards.append(1.0 - value if self.transform == "one_minus" else -value)
        return rewards


def build_reward_function(
    config: RewardConfig,
    *,
    scorer: Scorer | None = None,
    scoring: Any = None,
    device: str | torch.device | None = None,
) -> RewardFunc:
    """The reward function ``config`` describes. For ``kind: scorer`` without a ``scorer``
    argument, the project's scorer is built with ``get_scorer(scoring)`` (``scoring``: an
    ``xdetox.config.ScoringConfig``, default one when None)."""
    if config.kind == "classifier":
        return ClassifierReward.from_pretrained(
            config.classifier,
            device=device,
            label_index=config.label_index,
            batch_size=config.batch_size,
            max_length=config.max_length,
        )
    if scorer is None:
        from xdetox.components.score.scorers import get_scorer  # written alongside; imported lazily
        from xdetox.config import ScoringConfig

        scorer = get_scorer(scoring if scoring is not None else ScoringConfig())
    return ScorerReward(
        scorer,
        attribute=config.attribute,
        transform=config.transform,
        default_language=config.default_language,
    )
