"""Toxicity probe: ROC/AUC by hand, CSV readers, training on a separable toy set, bad input."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
import torch
from test_interpret_models import CLEAN, TOXIC, random_sentence, save_model

from xdetox.components.interpret.probe import load_probe, run_probe, split_indices, train_probe
from xdetox.components.interpret.probe_data import read_labelled_csv, read_probe_data
from xdetox.components.interpret.settings import ProbeConfig
from xdetox.components.interpret.stats import roc_auc, roc_curve
from xdetox.config import validate_section
from xdetox.errors import ConfigError, DataError

JIGSAW_HEADER = [
    "id",
    "comment_text",
    "toxic",
    "severe_toxic",
    "obscene",
    "threat",
    "insult",
    "identity_hate",
]


# --------------------------------------------------------------------------- statistics
def test_auc_and_roc_match_a_hand_computed_example():
    labels, scores = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    # Positive 0.35 beats negative 0.1 only; positive 0.8 beats both: 3 of 4 pairs.
    assert roc_auc(labels, scores) == pytest.approx(0.75)
    curve = roc_curve(labels, scores)
    assert curve.fpr == [0.0, 0.0, 0.5, 0.5, 1.0]
    assert curve.tpr == [0.0, 0.5, 0.5, 1.0, 1.0]
    assert curve.thresholds[1:] == [0.8, 0.4, 0.35, 0.1]
    assert curve.thresholds[0] > 0.8


def test_auc_counts_ties_as_half():
    # Pairs (pos, neg): (0.5, 0.5) tie = 1/2, (0.5, 0.2) = 1, (0.9, *) = 2  →  3.5 / 4.
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9]) == pytest.approx(0.875)
    assert roc_auc([1, 0], [0.3, 0.3]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="both classes"):
        roc_auc([1, 1], [0.2, 0.3])


def test_roc_thinning_keeps_the_ends():
    rng = random.Random(0)
    labels = [rng.randint(0, 1) for _ in range(500)]
    curve = roc_curve(labels, [rng.random() for _ in labels])
    thin = curve.thinned(21)
    assert len(thin.fpr) == 21
    assert (thin.fpr[0], thin.tpr[0], thin.fpr[-1], thin.tpr[-1]) == (0.0, 0.0, 1.0, 1.0)


# --------------------------------------------------------------------------- data files
def _write_jigsaw(path: Path, rows: list[list[object]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(JIGSAW_HEADER)
        writer.writerows(rows)
    return path


def test_jigsaw_labels_toxic_column_or_any(tmp_path):
    path = _write_jigsaw(
        tmp_path / "train.csv",
        [
            ["a", "first\nline two", 1, 0, 0, 0, 0, 0],
            ["b", "insult only", 0, 0, 0, 0, 1, 0],
            ["c", "clean", 0, 0, 0, 0, 0, 0],
            ["d", "unscored", -1, -1, -1, -1, -1, -1],
        ],
    )
    toxic = read_labelled_csv(path, "toxic")
    assert [e.label for e in toxic.examples] == [1, 0, 0]
    assert [e.line for e in toxic.examples] == [2, 4, 5]  # a quoted newline spans two lines
    assert toxic.unlabelled == 1 and toxic.format == "jigsaw"
    assert [e.label for e in read_labelled_csv(path, "any").examples] == [1, 1, 0]


def test_text_label_format(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("text,label\nhello there,0\nyou tox1,1\n", encoding="utf-8")
    data = read_labelled_csv(path)
    assert data.format == "text_label"
    assert [(e.text, e.label) for e in data.examples] == [("hello there", 0), ("you tox1", 1)]


@pytest.mark.parametrize(
    ("content", "where", "what"),
    [
        ('id,comment_text,toxic\na,"multi\nline",1\nb,bad,2\n', ":4:", "expected 0 or 1"),
        ("id,comment_text,toxic\na,fine,0\nb,   ,1\n", ":3:", "empty 'comment_text'"),
        ("id,comment_text,toxic\na,fine,0,extra\n", ":2:", "more fields"),
        ("id,comment_text,toxic\na,fine\n", ":2:", "fewer fields"),
        ("id,comment_text\na,fine\n", ":1:", "'toxic'"),
        ("sentence,y\nx,1\n", ":1:", "expected Jigsaw columns"),
        ("text,label\nx,yes\n", ":2:", "field 'label'"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, content, where, what):
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_labelled_csv(path)
    assert f"{path}{where}" in str(err.value)
    assert what in str(err.value)


def test_split_is_seeded_and_disjoint():
    train, val = split_indices(50, 0.1, seed=3)
    assert len(val) == 5 and len(train) == 45
    assert set(train.tolist()).isdisjoint(val.tolist())
    again = split_indices(50, 0.1, seed=3)
    assert again[1].tolist() == val.tolist()
    assert split_indices(50, 0.1, seed=4)[1].tolist() != val.tolist()
    with pytest.raises(ValueError):
        split_indices(3, 0.1, seed=0)


def test_training_picks_the_epoch_with_the_lowest_validation_loss():
    g = torch.Generator().manual_seed(0)
    features = torch.randn(200, 8, generator=g)
    labels = (features[:, 0] > 0).long()
    result = train_probe(
        features, labels, ProbeConfig(epochs=6, learning_rate=0.05), progress=False
    )
    losses = [h["val_loss"] for h in result.history]
    assert result.best_epoch == 1 + losses.index(min(losses))
    assert len(result.history) == 6
    # The learned direction is mostly the first coordinate.
    assert abs(float(result.weight[0])) == float(result.weight.abs().max())


def test_bad_probe_config_names_the_key():
    with pytest.raises(ConfigError, match=r"interpret.probe: epochs"):
        validate_section(ProbeConfig, {"epochs": 0}, "interpret.probe")
    with pytest.raises(ConfigError, match=r"interpret.probe: label"):
        validate_section(ProbeConfig, {"label": "severe"}, "interpret.probe")


# --------------------------------------------------------------------------- whole stage
@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory) -> Path:
    return save_model("gpt2", tmp_path_factory.mktemp("probe") / "gpt2")


def _separable_csv(path: Path, n: int = 240, seed: int = 0) -> Path:
    """Neutral words plus three words from the first four of TOXIC (toxic) or CLEAN (not)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        toxic = i % 2
        words = [rng.choice((TOXIC if toxic else CLEAN)[:4]) for _ in range(3)]
        rows.append([f"r{i}", random_sentence(rng, rng.randint(3, 8), words), toxic, 0, 0, 0, 0, 0])
    return _write_jigsaw(path, rows)


def test_probe_learns_a_separable_toy_set(gpt2_dir, tmp_path):
    data = _separable_csv(tmp_path / "train.csv")
    test = _separable_csv(tmp_path / "test.csv", n=60, seed=1)
    out = tmp_path / "probe"
    config = ProbeConfig(epochs=20, learning_rate=0.01, validation_fraction=0.25)
    summary = run_probe(gpt2_dir, data, out, config, test_path=test, progress=False, device="cpu")
    assert summary["n_examples"] == 240 and summary["n_toxic"] == 120
    assert summary["n_validation"] == 60
    assert summary["validation_accuracy"] >= 0.85
    assert summary["validation_roc_auc"] > 0.9
    assert summary["test_roc_auc"] > 0.9
    assert 1 <= summary["best_epoch"] <= 20
    roc = summary["roc_curve"]
    assert roc["fpr"][0] == 0.0 and roc["tpr"][-1] == 1.0
    written = json.loads((out / "probe_summary.json").read_text())
    assert written["validation_roc_auc"] == summary["validation_roc_auc"]
    assert {p.name for p in out.iterdir()} == {
        "probe.safetensors",
        "probe_summary.json",
        "roc_curve.csv",
        "roc_curve.png",
    }
    weight = load_probe(out)
    assert weight.shape == (32,)
    # The saved direction is the one that scored: positives project higher.
    assert summary["history"][summary["best_epoch"] - 1]["val_loss"] == pytest.approx(
        summary["validation_loss"]
    )


def test_max_examples_takes_a_seeded_subset(gpt2_dir, tmp_path):
    data = _separable_csv(tmp_path / "train.csv", n=60)
    config = ProbeConfig(epochs=1, max_examples=30, validation_fraction=0.2)
    summary = run_probe(gpt2_dir, data, tmp_path / "p", config, progress=False, device="cpu")
    assert summary["n_examples"] == 30 and summary["n_validation"] == 6


def test_bad_probe_data_leaves_no_output(gpt2_dir, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("id,comment_text,toxic\na,fine,0\nb,worse,x\n", encoding="utf-8")
    out = tmp_path / "probe"
    with pytest.raises(DataError, match=rf"{path}:3: field 'toxic'"):
        run_probe(gpt2_dir, path, out, progress=False, device="cpu")
    assert not out.exists()
    one_class = tmp_path / "one.csv"
    one_class.write_text("text,label\nw1 w2,0\nw3 w4,0\n", encoding="utf-8")
    with pytest.raises(DataError, match="both toxic and non-toxic"):
        run_probe(gpt2_dir, one_class, out, progress=False, device="cpu")
    assert not out.exists()


def test_load_probe_refuses_bad_files(tmp_path):
    with pytest.raises(DataError, match="probe file not found"):
        load_probe(tmp_path / "none.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a tensor file")
    with pytest.raises(DataError, match=str(junk)):
        load_probe(junk)


def _scored(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_scored_generations_are_labelled_at_the_threshold(tmp_path):
    records = [
        {"text": " you idiot", "scores": {"TOXICITY": 0.91, "INSULT": 0.8}},
        {"text": " have a nice day", "scores": {"TOXICITY": 0.02, "INSULT": 0.6}},
        {"text": " exactly half", "scores": {"TOXICITY": 0.5, "INSULT": 0.1}},
        {"text": " not covered", "scores": {"TOXICITY": None, "INSULT": None}},
        {"text": "", "scores": {"TOXICITY": 0.0, "INSULT": 0.0}},  # empty sample
        {"text": " no scores at all", "scores": None},
    ]
    path = _scored(tmp_path / "base_en.jigsaw.jsonl", records)
    data = read_probe_data(path)
    assert data.format == "scored" and data.unlabelled == 3
    assert [(e.text, e.label, e.line) for e in data.examples] == [
        (" you idiot", 1, 1),
        (" have a nice day", 0, 2),
        (" exactly half", 1, 3),  # ≥ threshold, as Perspective's 0.5 convention
    ]
    # "any": the second text's INSULT 0.6 makes it toxic; threshold moves the third.
    any_labels = [e.label for e in read_probe_data(path, "any", threshold=0.55).examples]
    assert any_labels == [1, 1, 0]


def test_scored_generations_errors_name_file_and_line(tmp_path):
    path = _scored(
        tmp_path / "s.jsonl", [{"text": "a", "scores": {"TOXICITY": 0.1}}, {"text": "b"}]
    )
    with pytest.raises(DataError, match=r"s\.jsonl.*2.*'scores'"):
        read_probe_data(path)
    path = _scored(tmp_path / "t.jsonl", [{"text": "a", "scores": {"INSULT": 0.1}}])
    with pytest.raises(DataError, match="no 'TOXICITY'"):
        read_probe_data(path)
    path = _scored(tmp_path / "u.jsonl", [{"text": "a", "scores": {"TOXICITY": None}}])
    with pytest.raises(DataError, match="no scored, non-empty texts"):
        read_probe_data(path)


def test_probe_trains_on_scored_generations(gpt2_dir, tmp_path):
    rng = random.Random(0)
    records = []
    for i in range(160):
        toxic = i % 2
        words = [rng.choice((TOXIC if toxic else CLEAN)[:4]) for _ in range(3)]
        score = 0.6 + 0.3 * rng.random() if toxic else 0.4 * rng.random()
        records.append(
            {"text": random_sentence(rng, rng.randint(3, 8), words), "scores": {"TOXICITY": score}}
        )
    data = _scored(tmp_path / "scored.jsonl", records)
    config = ProbeConfig(epochs=20, learning_rate=0.01, validation_fraction=0.25)
    summary = run_probe(gpt2_dir, data, tmp_path / "p", config, progress=False, device="cpu")
    assert summary["data_format"] == "scored" and summary["threshold"] == 0.5
    assert summary["n_toxic"] == 80 and summary["n_non_toxic"] == 80
    assert summary["validation_roc_auc"] > 0.85
