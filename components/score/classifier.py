"""A Hugging Face sequence classifier as a toxicity scorer (the way off the Perspective API).

Any ``AutoModelForSequenceClassification`` checkpoint works (local folder or Hub id). What a
model's outputs mean differs from model to model, so the mapping is explicit:

* single-label models (``softmax``): the probability of the label that means "toxic" is the
  TOXICITY score (``textdetox/xlmr-large-toxicity-classifier``: ``toxic``;
  ``facebook/roberta-hate-speech-dynabench-r4-target``: ``hate``, label 1);
* multi-label models (``sigmoid``): one independent probability per label, each mapped to a
  Perspective attribute name (toxic-bert: toxic→TOXICITY, severe_toxic→SEVERE_TOXICITY,
  obscene→PROFANITY, threat→THREAT, insult→INSULT, identity_hate→IDENTITY_ATTACK).

The scorer only reports the attributes its model measures: a binary classifier yields TOXICITY
and nothing else (other attributes are absent, not 0). ``name`` says which model and which label
produced the numbers, because a hate-speech classifier's P(hate) is not the Perspective API's
TOXICITY and reports must not pretend it is.

Texts are scored in batches sorted by length (less padding); padding is masked, so a text's score
does not depend on its batch. GPU when present (``device``), fp32.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from xdetox.components.score.scorer_interface import Scorer, ScoreResult
from xdetox.config.scoring import ClassifierConfig
from xdetox.errors import ConfigError
from xdetox.records import ATTRIBUTES, TOXICITY

TOXIC_BERT_LABELS: dict[str, str] = {
    "toxic": "TOXICITY",
    "severe_toxic": "SEVERE_TOXICITY",
    "obscene": "PROFANITY",
    "threat": "THREAT",
    "insult": "INSULT",
    "identity_hate": "IDENTITY_ATTACK",
}
# Names a binary classifier may give its positive class (matched case-insensitively).
_TOXIC_NAMES = ("toxic", "toxicity", "hate", "hateful", "offensive", "abusive")
# Models whose position ids start after the padding index (max positions − 2 usable tokens).
_OFFSET_POSITIONS = ("roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "xmod")


@dataclass(frozen=True)
class Preset:
    model: str
    activation: str
    label_map: dict[str, str]
    # Index of each label for checkpoints whose config only says LABEL_0, LABEL_1, …
    label_index: dict[str, int] = field(default_factory=dict)
    description: str = ""


PRESETS: dict[str, Preset] = {
    "textdetox-xlmr": Preset(
        model="textdetox/xlmr-large-toxicity-classifier",
        activation="softmax",
        label_map={"toxic": TOXICITY},
        label_index={"toxic": 1},
        description="XLM-R large binary toxicity classifier (TextDetox; multilingual)",
    ),
    "roberta-hate-dynabench": Preset(
        model="facebook/roberta-hate-speech-dynabench-r4-target",
        activation="softmax",
        label_map={"hate": TOXICITY},
        label_index={"hate": 1},
        description="RoBERTa hate-speech classifier (Dynabench R4; English): P(hate), a "
        "hate-speech score rather than general toxicity",
    ),
    "toxic-bert": Preset(
        model="unitary/toxic-bert",
        activation="sigmoid",
        label_map=dict(TOXIC_BERT_LABELS),
        label_index={name: i for i, name in enumerate(TOXIC_BERT_LABELS)},
        description="multi-label toxic-bert-style classifier (Jigsaw labels; English)",
    ),
}


def _generic_labels(id2label: dict[int, str]) -> bool:
    return all(str(name).upper() == f"LABEL_{i}" for i, name in id2label.items())


def resolve_label_map(
    id2label: dict[int, str],
    label_map: dict[str, str],
    label_index: dict[str, int] | None = None,
) -> dict[int, str]:
    """``{output index: attribute}`` for a ``{label name or index: attribute}`` mapping.

    A label is found by name (case-insensitive), by ``LABEL_<i>``, or by a plain index; a
    preset's known index is used only when the checkpoint names its labels generically.
    """
    by_name = {str(name).lower(): int(i) for i, name in id2label.items()}
    out: dict[int, str] = {}
    for label, attribute in label_map.items():
        if attribute not in ATTRIBUTES:
            raise ConfigError(
                f"scoring.classifier.label_map.{label}: unknown attribute {attribute!r} "
                f"(known: {', '.join(ATTRIBUTES)})"
            )
        text = str(label).strip()
        index = by_name.get(text.lower())
        if index is None and text.isdigit() and int(text) in id2label:
            index = int(text)
        if index is None and label_index and text in label_index and _generic_labels(id2label):
            index = label_index[text]
        if index is None or index not in id2label:
            known = ", ".join(f"{i}={n}" for i, n in sorted(id2label.items()))
            raise ConfigError(
                f"scoring.classifier: the model has no label {text!r} (its labels: {known}); "
                "set scoring.classifier.toxic_label or label_map"
            )
        if index in out:
            raise ConfigError(f"scoring.classifier.label_map: label {text!r} mapped twice")
        out[index] = attribute
    if len(set(out.values())) != len(out):
        raise ConfigError("scoring.classifier.label_map: two labels map to the same attribute")
    return out


def infer_label_map(id2label: dict[int, str]) -> tuple[dict[str, str], str] | None:
    """A ``(label_map, activation)`` read off the model's own labels, or None if unclear."""
    names = {str(n).lower() for n in id2label.values()}
    if set(TOXIC_BERT_LABELS) <= names:
        return dict(TOXIC_BERT_LABELS), "sigmoid"
    if len(id2label) == 1:
        return {str(next(iter(id2label))): TOXICITY}, "sigmoid"
    if len(id2label) == 2:
        hits = [n for n in id2label.values() if str(n).lower() in _TOXIC_NAMES]
        if len(hits) == 1:
            return {str(hits[0]): TOXICITY}, "softmax"
    return None


def _language_set(languages: Sequence[str] | None) -> set[str] | None:
    if languages is None:
        return None
    return {lang.strip().replace("_", "-").lower() for lang in languages}


class ClassifierScorer(Scorer):
    """Scores texts with a sequence classifier (see the module docstring).

    The model loads on first use: building the scorer to print its ``name`` (the report stage
    does) needs neither the weights nor the network.
    """

    def __init__(self, config: ClassifierConfig, attributes: Sequence[str] = (TOXICITY,)) -> None:
        preset = PRESETS[config.preset] if config.preset else None
        model = config.model or (preset.model if preset else None)
        if not model:
            raise ConfigError(
                "scoring.classifier.model: required for scorer 'classifier' (a model folder or "
                f"Hub id), or choose scoring.classifier.preset ({', '.join(PRESETS)})"
            )
        if config.toxic_label is not None and config.label_map is not None:
            raise ConfigError("scoring.classifier: give toxic_label or label_map, not both")
        self.config = config
        self.model_source = model
        self.preset = preset
        self.requested = tuple(attributes)
        self.batch_size = config.batch_size * 8  # texts per call; the model sees batch_size
        self._languages = _language_set(config.languages)
        if config.label_map is not None:
            self._label_map: dict[str, str] | None = dict(config.label_map)
        elif config.toxic_label is not None:
            self._label_map = {config.toxic_label: TOXICITY}
        else:
            self._label_map = dict(preset.label_map) if preset else None  # None: from the model
        self._activation = config.activation or (preset.activation if preset else None)
        self._model: Any = None
        self._tokenizer: Any = None
        self._outputs: dict[int, str] | None = None  # output index -> attribute
        self.device: str | None = None
        self.id = f"classifier-{Path(model.rstrip('/')).name}"
        if self._label_map is not None:
            mapping = ", ".join(f"{a} = {label}" for label, a in self._label_map.items())
        else:
            mapping = "labels read from the model config"
        what = preset.description if preset else "Hugging Face sequence classifier"
        activation = self._activation or "activation from the model config"
        self.name = (
            f"classifier {model} ({what}; {mapping}; {activation}) — a trained classifier; "
            "its scores are not on the Perspective API's scale"
        )

    # ------------------------------------------------------------------ loading
    @property
    def attributes(self) -> tuple[str, ...]:  # type: ignore[override]
        """The requested attributes this model measures (loads the model if needed)."""
        self._load()
        assert self._outputs is not None
        return tuple(a for a in self.requested if a in self._outputs.values())

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        device = self.config.device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.model_source)
            model = AutoModelForSequenceClassification.from_pretrained(
                self.model_source, dtype=torch.float32
            )
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"scoring.classifier.model: cannot load a sequence classifier from "
                f"{self.model_source!r} ({first})"
            ) from None
        id2label = {int(i): str(n) for i, n in model.config.id2label.items()}
        label_map, activation = self._label_map, self._activation
        if label_map is None:
            inferred = infer_label_map(id2label)
            if inferred is None:
                known = ", ".join(f"{i}={n}" for i, n in sorted(id2label.items()))
                raise ConfigError(
                    f"scoring.classifier: cannot tell which label of {self.model_source!r} "
                    f"means toxic (labels: {known}); set scoring.classifier.toxic_label, "
                    "label_map or preset"
                )
            label_map, inferred_activation = inferred
            activation = activation or inferred_activation
        if activation is None:
            multi = getattr(model.config, "problem_type", None) == "multi_label_classification"
            activation = "sigmoid" if multi or len(id2label) == 1 else "softmax"
        outputs = resolve_label_map(
            id2label, label_map, self.preset.label_index if self.preset else None
        )
        if not any(a in outputs.values() for a in self.requested):
            raise ConfigError(
                f"scoring.attributes: the classifier measures {', '.join(outputs.values())}, "
                f"none of the requested {', '.join(self.requested)}"
            )
        if tokenizer.pad_token is None:
            # Decoder-style classifiers (GPT-2) have no pad token; padding is masked anyway.
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        model.to(device)
        model.eval()
        self._model, self._tokenizer, self.device = model, tokenizer, device
        self._outputs, self._activation = outputs, activation
        self._max_length = self._token_limit(model, tokenizer)

    def _token_limit(self, model: Any, tokenizer: Any) -> int:
        limit = self.config.max_length
        if 0 < getattr(tokenizer, "model_max_length", 0) < 1_000_000:
            limit = min(limit, tokenizer.model_max_length)
        positions = getattr(model.config, "max_position_embeddings", None)
        if isinstance(positions, int) and positions > 0:
            offset = 2 if model.config.model_type in _OFFSET_POSITIONS else 0
            limit = min(limit, positions - offset)
        return max(1, limit)

    def close(self) -> None:
        self._model = self._tokenizer = None
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover - torch is a dependency
            pass

    # ------------------------------------------------------------------ scoring
    def _covered(self, language: str) -> bool:
        if self._languages is None:
            return True
        tag = language.strip().replace("_", "-").lower()
        return tag in self._languages or tag.split("-")[0] in self._languages

    def probabilities(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """``{attribute: probability}`` per text, in order (every mapped attribute)."""
        import torch

        self._load()
        assert self._outputs is not None
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        out: list[dict[str, float] | None] = [None] * len(texts)
        size = self.config.batch_size
        chunks = [order[i : i + size] for i in range(0, len(order), size)]
        with torch.inference_mode():
            for chunk in tqdm(chunks, desc="classifier", unit=" batches", disable=None,
                              leave=False):  # fmt: skip
                encoded = self._tokenizer(
                    [texts[i] for i in chunk],
                    padding=True,
                    truncation=True,
                    max_length=self._max_length,
                    return_tensors="pt",
                ).to(self.device)
                logits = self._model(**encoded).logits.float()
                if self._activation == "sigmoid":
                    probs = torch.sigmoid(logits)
                else:
                    probs = torch.softmax(logits, dim=-1)
                probs = probs.cpu().tolist()
                for row, index in zip(probs, chunk, strict=True):
                    out[index] = {a: float(row[i]) for i, a in self._outputs.items()}
        return [o if o is not None else {} for o in out]

    def score_items(self, texts: Sequence[str], languages: Sequence[str]) -> list[ScoreResult]:
        if len(texts) != len(languages):
            raise ValueError(f"{len(texts)} texts but {len(languages)} languages")
        attributes = self.attributes
        covered = [i for i, lang in enumerate(languages) if self._covered(lang)]
        probs = self.probabilities([texts[i] for i in covered])
        results: list[ScoreResult] = []
        by_index = dict(zip(covered, probs, strict=True))
        for index, language in enumerate(languages):
            if index not in by_index:
                reason = (
                    f"language {language!r} is not among the classifier's configured "
                    "languages (scoring.classifier.languages)"
                )
                results.append(
                    ScoreResult(dict.fromkeys(attributes), dict.fromkeys(attributes, reason))
                )
                continue
            scores = {a: by_index[index][a] for a in attributes}
            bad = [a for a, v in scores.items() if not math.isfinite(v)]
            if bad:  # a broken checkpoint (NaN weights): missing, never a number
                results.append(
                    ScoreResult(
                        {a: (None if a in bad else v) for a, v in scores.items()},
                        dict.fromkeys(bad, "the classifier returned NaN"),
                    )
                )
            else:
                results.append(ScoreResult(dict(scores)))
        return results
