"""A pickled Keras ``Tokenizer`` read without Keras and without running arbitrary pickle code.

The Jigsaw classifier of ``toxic-comment-classifier==0.3.0`` (PyPI, MIT) ships its vocabulary as
``toxic_classifier/model/tokenizer.pickle``: a ``keras.src.legacy.preprocessing.text.Tokenizer``
(Keras 3) pickled with protocol 5. ``pickle.load`` on such a file would run whatever callables
the file names, so it is read here by :class:`RestrictedUnpickler`, which resolves only the four
globals that file needs (found with ``pickletools.genops``, without unpickling it):

* ``keras.src.legacy.preprocessing.text.Tokenizer``: mapped to :class:`KerasTokenizerState`, a
  plain class of ours that only receives the attributes (``BUILD`` sets its ``__dict__``);
* ``collections.OrderedDict`` (``word_counts``), ``collections.defaultdict`` and
  ``builtins.int`` (``word_docs``/``index_docs`` are ``defaultdict(int)``).

Anything else (``os.system``, ``builtins.eval``, …) raises :class:`pickle.UnpicklingError`.

:func:`texts_to_sequences` and :func:`pad_sequences` restate Keras's own
``Tokenizer.texts_to_sequences`` / ``text_to_word_sequence`` (lower-case, replace the ``filters``
characters by ``split``, split on ``split``, drop empty pieces, drop unknown words unless there is
an ``oov_token``, words with index ≥ ``num_words`` dropped or mapped to the OOV index) and
``keras.utils.pad_sequences`` with its defaults (``padding="pre"``, ``truncating="pre"``: the
*last* ``maxlen`` tokens are kept, zeros go in front), which is what the package's
``ToxicCommentClassifier.classify`` calls. Its ``utils.clean_text`` is not used by ``classify``,
so it is not applied here either.
"""

from __future__ import annotations

import collections
import io
import pickle
from collections.abc import Sequence
from typing import Any

import numpy as np

KERAS_TOKENIZER = ("keras.src.legacy.preprocessing.text", "Tokenizer")


class KerasTokenizerState:
    """Stand-in for Keras's ``Tokenizer``: holds its pickled attributes and nothing else.

    ``NEWOBJ`` creates it with ``__new__`` (no ``__init__`` runs) and ``BUILD`` fills
    ``__dict__``, so the fields below are exactly the ones Keras pickled.
    """

    word_index: dict[str, int]
    num_words: int | None
    filters: str
    lower: bool
    split: str
    char_level: bool
    oov_token: str | None
    analyzer: Any


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals a pickled Keras ``Tokenizer`` needs (see the module docstring)."""

    ALLOWED: dict[tuple[str, str], Any] = {  # noqa: RUF012 - a constant table, never mutated
        KERAS_TOKENIZER: KerasTokenizerState,
        # Older pickles (TF 2 Keras, keras-preprocessing) name the same class elsewhere.
        ("keras.preprocessing.text", "Tokenizer"): KerasTokenizerState,
        ("keras_preprocessing.text", "Tokenizer"): KerasTokenizerState,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("collections", "defaultdict"): collections.defaultdict,
        ("builtins", "int"): int,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: not one of the classes a Keras Tokenizer "
                "pickle needs"
            ) from None


def load_tokenizer(data: bytes) -> KerasTokenizerState:
    """The tokenizer in ``data`` (the bytes of a pickled Keras ``Tokenizer``), loaded safely."""
    obj = RestrictedUnpickler(io.BytesIO(data)).load()
    if not isinstance(obj, KerasTokenizerState):
        raise pickle.UnpicklingError(
            f"expected a pickled Keras Tokenizer, got {type(obj).__name__}"
        )
    if obj.__dict__.get("char_level") or obj.__dict__.get("analyzer") is not None:
        # Neither is used by the Jigsaw tokenizer; reproducing them is not worth the code.
        raise pickle.UnpicklingError("char-level or custom-analyzer tokenizers are not supported")
    return obj


def text_to_word_sequence(text: str, filters: str, lower: bool, split: str) -> list[str]:
    """Keras's ``text_to_word_sequence``: the words of ``text``, as its Tokenizer sees them."""
    if lower:
        text = text.lower()
    text = text.translate(str.maketrans(dict.fromkeys(filters, split)))
    return [word for word in text.split(split) if word]


def texts_to_sequences(tokenizer: KerasTokenizerState, texts: Sequence[str]) -> list[list[int]]:
    """Keras's ``Tokenizer.texts_to_sequences`` for word-level tokenizers."""
    num_words = tokenizer.num_words
    oov_index = tokenizer.word_index.get(tokenizer.oov_token)  # type: ignore[arg-type]
    out: list[list[int]] = []
    for text in texts:
        ids: list[int] = []
        for word in text_to_word_sequence(
            text, tokenizer.filters, tokenizer.lower, tokenizer.split
        ):
            index = tokenizer.word_index.get(word)
            if index is not None:
                if num_words and index >= num_words:
                    if oov_index is not None:
                        ids.append(oov_index)
                else:
                    ids.append(index)
            elif tokenizer.oov_token is not None:
                ids.append(oov_index)  # type: ignore[arg-type]
        out.append(ids)
    return out


def pad_sequences(sequences: Sequence[Sequence[int]], maxlen: int) -> np.ndarray:
    """``keras.utils.pad_sequences(sequences, maxlen)`` with Keras's defaults: int32, zeros in
    front (``padding="pre"``), longer sequences keep their last ``maxlen`` ids
    (``truncating="pre"``)."""
    out = np.zeros((len(sequences), maxlen), dtype=np.int32)
    for row, ids in enumerate(sequences):
        kept = list(ids)[-maxlen:]
        if kept:
            out[row, -len(kept) :] = kept
    return out
