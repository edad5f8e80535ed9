"""The classifier scorer on tiny random sequence classifiers built from configs (no download)."""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import pytest
import torch
from tiny_models import tiny_sequence_classifier, word_tokenizer

from xdetox.components.score.classifier import (
    PRESETS,
    TOXIC_BERT_LABELS,
    ClassifierScorer,
    infer_label_map,
    resolve_label_map,
)
from xdetox.components.score.score_file import score_generations
from xdetox.components.score.scorers import get_scorer
from xdetox.config import ScoringConfig
from xdetox.config.scoring import ClassifierConfig
from xdetox.errors import ConfigError

# Word-level vocabulary laid out like XLM-R's specials: <s>=0, <pad>=1, </s>=2, <unk>=3.
WORDS = ["<s>", "<pad>", "</s>", "<unk>", "you", "are", "an", "idiot", "nice", "day", "the"]
WORDS += ["cat", "sat", "on", "mat", "hello", "world", "bad", "good", "very"]

TEXTS = [
    "you are an idiot",
    "nice day",
    "the cat sat on the mat very very very nice",
    "hello",
    "",
    "bad bad good world hello you",
    "zzz unknown words",
]


def build_classifier(folder: Path, id2label: dict[int, str], *, problem_type=None) -> Path:
    tokenizer = word_tokenizer(
        WORDS,
        split_punctuation=True,
        wrap=("<s>", "</s>"),
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        model_max_length=512,
    )
    model = tiny_sequence_classifier(
        vocab_size=len(WORDS),
        id2label=id2label,
        seed=len(id2label),
        max_position_embeddings=18,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        problem_type=problem_type,
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def binary_dir(tmp_path_factory) -> Path:
    return build_classifier(tmp_path_factory.mktemp("binary"), {0: "neutral", 1: "toxic"})


@pytest.fixture(scope="module")
def multilabel_dir(tmp_path_factory) -> Path:
    labels = dict(enumerate(TOXIC_BERT_LABELS))
    return build_classifier(
        tmp_path_factory.mktemp("multi"), labels, problem_type="multi_label_classification"
    )


@functools.cache
def _reference(folder: Path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    return tokenizer, AutoModelForSequenceClassification.from_pretrained(folder).eval()


def reference_logits(folder: Path, text: str) -> torch.Tensor:
    """One text, no padding, straight through transformers."""
    tokenizer, model = _reference(folder)
    encoded = tokenizer(text, truncation=True, max_length=16, return_tensors="pt")
    with torch.no_grad():
        return model(**encoded).logits[0].float()


def test_batching_gives_the_same_scores_as_one_by_one(binary_dir):
    one = ClassifierScorer(ClassifierConfig(model=str(binary_dir), batch_size=1))
    expected = [one.score_batch([t], ["en"])[0]["TOXICITY"] for t in TEXTS]
    for batch_size in (2, 3, 16):
        scorer = ClassifierScorer(ClassifierConfig(model=str(binary_dir), batch_size=batch_size))
        scores = [s["TOXICITY"] for s in scorer.score_batch(TEXTS, ["en"] * len(TEXTS))]
        assert scores == pytest.approx(expected, abs=1e-6)
    # And each one is softmax(logits)[toxic] of the unpadded text.
    for text, value in zip(TEXTS, expected, strict=True):
        assert value == pytest.approx(
            torch.softmax(reference_logits(binary_dir, text), -1)[1].item(), abs=1e-6
        )
    assert len(set(expected)) > 3  # a random model still tells texts apart


def test_long_texts_are_truncated_to_the_position_limit(binary_dir):
    scorer = ClassifierScorer(ClassifierConfig(model=str(binary_dir), batch_size=4))
    long_text = " ".join(["nice"] * 100)  # 100 words > 18 - 2 positions
    [score] = scorer.score_batch([long_text], ["en"])
    expected = torch.softmax(reference_logits(binary_dir, long_text), -1)[1].item()
    assert score["TOXICITY"] == pytest.approx(expected, abs=1e-6)


def test_binary_model_reports_only_toxicity_and_says_what_it_is(binary_dir):
    config = ScoringConfig(scorer="classifier", classifier=ClassifierConfig(model=str(binary_dir)))
    scorer = get_scorer(config)
    assert scorer.id == f"classifier-{binary_dir.name}"
    assert str(binary_dir) in scorer.name and "not on the Perspective API's scale" in scorer.name
    assert scorer.attributes == ("TOXICITY",)  # the other five are not measured, not 0
    [result] = scorer.score_items(["you are an idiot"], ["en"])
    assert set(result.scores) == {"TOXICITY"} and result.errors == {}


def test_toxic_label_by_name_or_index_and_the_other_label(binary_dir):
    by_name = ClassifierScorer(ClassifierConfig(model=str(binary_dir), toxic_label="toxic"))
    by_index = ClassifierScorer(ClassifierConfig(model=str(binary_dir), toxic_label="1"))
    neutral = ClassifierScorer(ClassifierConfig(model=str(binary_dir), toxic_label="neutral"))
    a = by_name.score_batch(TEXTS, ["en"] * len(TEXTS))
    assert a == by_index.score_batch(TEXTS, ["en"] * len(TEXTS))
    b = neutral.score_batch(TEXTS, ["en"] * len(TEXTS))
    for x, y in zip(a, b, strict=True):
        assert x["TOXICITY"] + y["TOXICITY"] == pytest.approx(1.0)  # softmax of two labels


def test_multilabel_toxic_bert_maps_every_label_with_sigmoid(multilabel_dir):
    auto = ClassifierScorer(ClassifierConfig(model=str(multilabel_dir)))
    preset = ClassifierScorer(ClassifierConfig(model=str(multilabel_dir), preset="toxic-bert"))
    requested = ("TOXICITY", "SEVERE_TOXICITY", "IDENTITY_ATTACK", "INSULT", "PROFANITY", "THREAT")
    auto.requested = preset.requested = requested
    assert set(auto.attributes) == set(requested)
    scores = auto.score_batch(["you are an idiot"], ["en"])[0]
    assert scores == preset.score_batch(["you are an idiot"], ["en"])[0]
    logits = reference_logits(multilabel_dir, "you are an idiot")
    for index, label in enumerate(TOXIC_BERT_LABELS):
        attribute = TOXIC_BERT_LABELS[label]
        assert scores[attribute] == pytest.approx(torch.sigmoid(logits[index]).item(), abs=1e-6)
    assert sum(scores.values()) != pytest.approx(1.0)  # independent, not a softmax


def test_label_map_to_a_subset_and_requested_attributes(multilabel_dir):
    config = ClassifierConfig(
        model=str(multilabel_dir),
        label_map={"obscene": "PROFANITY", "toxic": "TOXICITY"},
        activation="sigmoid",
    )
    scorer = ClassifierScorer(config, ("TOXICITY", "PROFANITY", "THREAT"))
    assert scorer.attributes == ("TOXICITY", "PROFANITY")
    logits = reference_logits(multilabel_dir, "hello")
    [scores] = scorer.score_batch(["hello"], ["en"])
    assert scores["PROFANITY"] == pytest.approx(torch.sigmoid(logits[2]).item(), abs=1e-6)
    with pytest.raises(ConfigError, match="none of the requested"):
        _ = ClassifierScorer(config, ("THREAT",)).attributes


def test_presets_resolve_their_labels():
    textdetox, dynabench = PRESETS["textdetox-xlmr"], PRESETS["roberta-hate-dynabench"]
    assert textdetox.model == "textdetox/xlmr-large-toxicity-classifier"
    assert dynabench.model == "facebook/roberta-hate-speech-dynabench-r4-target"
    named = {0: "neutral", 1: "toxic"}
    assert resolve_label_map(named, textdetox.label_map, textdetox.label_index) == {1: "TOXICITY"}
    generic = {0: "LABEL_0", 1: "LABEL_1"}
    assert resolve_label_map(generic, textdetox.label_map, textdetox.label_index) == {1: "TOXICITY"}
    hate = {0: "nothate", 1: "hate"}
    assert resolve_label_map(hate, dynabench.label_map, dynabench.label_index) == {1: "TOXICITY"}
    bert = resolve_label_map(dict(enumerate(TOXIC_BERT_LABELS)), PRESETS["toxic-bert"].label_map)
    assert bert == {
        0: "TOXICITY",
        1: "SEVERE_TOXICITY",
        2: "PROFANITY",
        3: "THREAT",
        4: "INSULT",
        5: "IDENTITY_ATTACK",
    }
    # A preset index is not trusted over a checkpoint's own, different names.
    with pytest.raises(ConfigError, match="no label 'hate'"):
        resolve_label_map(
            {0: "positive", 1: "negative"}, dynabench.label_map, dynabench.label_index
        )
    with pytest.raises(ConfigError, match="unknown attribute"):
        resolve_label_map(named, {"toxic": "TOXIC"})


def test_label_inference():
    assert infer_label_map({0: "nothate", 1: "hate"}) == ({"hate": "TOXICITY"}, "softmax")
    assert infer_label_map({0: "LABEL_0", 1: "LABEL_1"}) is None
    assert infer_label_map({0: "toxicity"}) == ({"0": "TOXICITY"}, "sigmoid")


def test_preset_model_and_name_without_loading(tmp_path):
    scorer = get_scorer(
        ScoringConfig(scorer="classifier", classifier=ClassifierConfig(preset="textdetox-xlmr"))
    )
    assert scorer.model_source == "textdetox/xlmr-large-toxicity-classifier"
    assert "textdetox/xlmr-large-toxicity-classifier" in scorer.name
    assert "TOXICITY = toxic" in scorer.name
    dynabench = get_scorer(
        ScoringConfig(
            scorer="classifier", classifier=ClassifierConfig(preset="roberta-hate-dynabench")
        )
    )
    assert "hate-speech" in dynabench.name and "TOXICITY = hate" in dynabench.name
    with pytest.raises(ConfigError, match=r"scoring\.classifier\.model"):
        get_scorer(ScoringConfig(scorer="classifier"))
    missing = ClassifierScorer(ClassifierConfig(model=str(tmp_path / "absent")))
    with pytest.raises(ConfigError, match="cannot load a sequence classifier"):
        missing.score_batch(["x"], ["en"])


def test_uncovered_languages_are_missing_with_a_reason(binary_dir):
    config = ClassifierConfig(model=str(binary_dir), languages=["en", "de"])
    scorer = ClassifierScorer(config)
    results = scorer.score_items(["hello", "hello", "hello"], ["en-US", "ar", "de"])
    assert results[0].scores == results[2].scores and results[0].scores["TOXICITY"] is not None
    assert results[1].scores == {"TOXICITY": None}
    assert "not among the classifier's configured languages" in results[1].errors["TOXICITY"]


def test_score_generations_with_the_classifier(binary_dir, tmp_path):
    records = [
        {
            "model": "base",
            "prompt_id": "p",
            "language": lang,
            "prompt": "x",
            "sample_index": i,
            "text": text,
            "n_tokens": 1,
            "finish_reason": "stop",
        }
        for i, (text, lang) in enumerate(zip(TEXTS, ["en", "de"] * 4, strict=False))
    ]
    source = tmp_path / "gen.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    config = ScoringConfig(
        scorer="classifier", classifier=ClassifierConfig(model=str(binary_dir), batch_size=3)
    )
    summary = score_generations(source, tmp_path / "scores.jsonl", config, progress=False)
    assert summary["n"] == len(TEXTS) and summary["n_missing"] == 0
    lines = [json.loads(x) for x in (tmp_path / "scores.jsonl").read_text().splitlines()]
    one = ClassifierScorer(ClassifierConfig(model=str(binary_dir), batch_size=1))
    for line in lines:
        assert set(line["scores"]) == {"TOXICITY"}
        expected = one.score_batch([line["text"]], ["en"])[0]["TOXICITY"]
        assert line["scores"]["TOXICITY"] == pytest.approx(expected, abs=1e-6)
        assert 0.0 < line["scores"]["TOXICITY"] < 1.0 and not math.isnan(line["scores"]["TOXICITY"])
