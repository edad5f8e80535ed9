"""Cross-lingual alignment: retrieval accuracy, mean cosine, correlation with the toxicity drop."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pandas as pd
import pytest
import torch
from test_interpret_models import random_sentence, save_model

from xdetox.components.interpret.alignment import (
    correlate_with_drop,
    mean_pair_cosine,
    read_metric_drop,
    read_parallel,
    retrieval_accuracy,
    run_alignment,
)
from xdetox.components.interpret.settings import AlignmentConfig
from xdetox.errors import ConfigError, DataError
from xdetox.files import write_jsonl
from xdetox.stats import pearson


def test_retrieval_of_identical_sets_is_perfect():
    x = torch.randn(50, 16, generator=torch.Generator().manual_seed(0))
    assert retrieval_accuracy(x, x.clone()) == 1.0
    assert mean_pair_cosine(x, x.clone()) == pytest.approx(1.0)
    # A rescaled copy is the same direction.
    assert retrieval_accuracy(x, 3 * x) == 1.0


def test_retrieval_of_shuffled_random_sets_is_near_chance():
    g = torch.Generator().manual_seed(1)
    n = 200
    en, x = torch.randn(n, 16, generator=g), torch.randn(n, 16, generator=g)
    accuracy = retrieval_accuracy(en, x[torch.randperm(n, generator=g)])
    assert accuracy <= 5 / n  # chance is 1/n: about 1 hit expected
    # A permuted copy: only fixed points of the permutation are hits.
    perm = torch.randperm(n, generator=g)
    fixed = int((perm == torch.arange(n)).sum())
    assert retrieval_accuracy(en, en[perm]) == pytest.approx(fixed / n)


def test_retrieval_accuracy_by_hand():
    en = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    x = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]])
    # e0 → x0 (cos 1): hit. e1 → x2 (cos 1, own x1 only 0.0995): miss. e2 → x2 (cos 0 beats
    # the negative cosines with x0 and x1): hit.
    assert retrieval_accuracy(en, x) == pytest.approx(2 / 3)


def _pairs(path: Path, n: int = 40) -> Path:
    """de: identical to English; fr: unrelated random sentences; es and it in between."""
    rng = random.Random(0)
    english = [random_sentence(rng, rng.randint(4, 9)) for _ in range(n)]
    records = []
    for lang, same in (("de", n), ("es", n * 3 // 4), ("it", n // 4), ("fr", 0)):
        for i, en in enumerate(english):
            text = en if i < same else random_sentence(rng, rng.randint(4, 9))
            records.append({"en": en, "text": text, "language": lang})
    write_jsonl(path, records)
    return path


def _metrics(path: Path, rows: list[tuple[str, str, float | None]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["model", "language", "expected_max_toxicity", "avg_toxicity"])
        for model, lang, value in rows:
            writer.writerow([model, lang, "" if value is None else value, 0.1])
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_model("gpt2", tmp_path_factory.mktemp("align") / "gpt2")


def test_run_alignment_measures_and_correlates(model_dir, tmp_path):
    pairs = _pairs(tmp_path / "pairs.jsonl")
    metrics = _metrics(
        tmp_path / "metrics.csv",
        [
            ("base", "de", 0.50),
            ("dpo", "de", 0.10),
            ("base", "es", 0.50),
            ("dpo", "es", 0.25),
            ("base", "it", 0.40),
            ("dpo", "it", 0.30),
            ("base", "fr", 0.45),
            ("dpo", "fr", 0.40),
            ("base", "ALL", 0.47),
            ("dpo", "ALL", 0.26),
        ],
    )
    out = tmp_path / "alignment"
    summary = run_alignment(
        model_dir,
        pairs,
        out,
        AlignmentConfig(layer="mean"),
        metrics_path=metrics,
        progress=False,
        device="cpu",
    )
    table = pd.read_csv(out / "alignment.csv")
    assert list(table.columns) == [
        "language",
        "layer",
        "mean_cosine",
        "retrieval_accuracy",
        "n_pairs",
    ]
    assert summary["n_hidden_states"] == 3  # embeddings + 2 blocks
    assert len(table) == 4 * 3
    de, fr = table[table["language"] == "de"], table[table["language"] == "fr"]
    assert (de["retrieval_accuracy"] == 1.0).all()
    assert de["mean_cosine"].min() == pytest.approx(1.0, abs=1e-5)
    assert fr["retrieval_accuracy"].mean() <= 0.15  # chance is 1/40
    assert (fr["mean_cosine"] < de["mean_cosine"].to_numpy()).all()

    drop = pd.read_csv(out / "alignment_vs_drop.csv").set_index("language")
    assert drop.loc["de", "drop"] == pytest.approx(0.40)
    assert drop.loc["fr", "drop"] == pytest.approx(0.05)
    means = table.groupby("language")["retrieval_accuracy"].mean()
    assert drop.loc["es", "retrieval_accuracy"] == pytest.approx(means["es"])
    corr = summary["correlation"]
    assert corr["tuned"] == "dpo" and corr["n_languages"] == 4
    langs = ["de", "es", "it", "fr"]
    assert corr["pearson_retrieval_accuracy"] == pytest.approx(
        pearson([means[lang] for lang in langs], [drop.loc[lang, "drop"] for lang in langs])
    )
    assert corr["pearson_retrieval_accuracy"] > 0.8  # more aligned, bigger drop (by design)
    assert (out / "alignment.png").is_file()


def test_correlation_at_one_layer_skips_english_and_missing_values():
    alignment = {
        "de": [(0.9, 1.0), (0.8, 0.9)],
        "fr": [(0.5, 0.4), (0.6, 0.5)],
        "es": [(0.7, 0.7), (0.7, 0.6)],
        "it": [(0.2, 0.1), (0.3, 0.2)],
        "en": [(1.0, 1.0), (1.0, 1.0)],
        "ru": [(0.4, 0.3), (0.4, 0.3)],
    }
    drops = {
        "de": (0.5, 0.1),
        "fr": (0.5, 0.3),
        "es": (0.5, 0.2),
        "it": (0.5, 0.45),
        "en": (0.6, 0.1),
        "ru": (0.5, None),
    }
    rows, stats = correlate_with_drop(alignment, drops, layer=-1)
    assert stats["languages_skipped"] == ["en", "ru"]
    assert stats["n_languages"] == 4
    by_lang = {r["language"]: r for r in rows}
    assert by_lang["fr"]["retrieval_accuracy"] == 0.5  # last layer
    assert by_lang["ru"]["drop"] is None  # missing stays missing
    expected = pearson([0.9, 0.5, 0.6, 0.2], [0.4, 0.2, 0.3, 0.05])
    assert stats["pearson_retrieval_accuracy"] == pytest.approx(expected)
    with pytest.raises(ConfigError, match=r"interpret\.alignment\.layer: 2 is out of range"):
        correlate_with_drop(alignment, drops, layer=2)


def test_alignment_reads_csv_pairs(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text('en,text,language\n"a, b",x,DE\nc,"multi\nline",zh_Hans\n', encoding="utf-8")
    pairs = read_parallel(path)
    assert list(pairs) == ["de", "zh-hans"]
    assert (pairs["de"][0].en, pairs["zh-hans"][0].text) == ("a, b", "multi\nline")
    assert pairs["zh-hans"][0].line == 3


@pytest.mark.parametrize(
    ("name", "content", "where", "what"),
    [
        (
            "p.jsonl",
            '{"en": "a", "text": "b", "language": "de"}\n{"en": "a", "text": "b"}\n',
            ":2:",
            "'language'",
        ),
        ("p.jsonl", '{"en": "a", "text": "", "language": "de"}\n', ":1:", "'text'"),
        ("p.jsonl", '{"en": "a", "text": "b", "language": "d e"}\n', ":1:", "language"),
        ("p.jsonl", '{"en": "a", "text": "b", "language": "de"}\nnot json\n', ":2:", "JSON"),
        ("p.csv", "en,text,language\na,b\n", ":2:", "expected 3 fields"),
    ],
)
def test_bad_pairs_name_file_and_line(tmp_path, name, content, where, what):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_parallel(path)
    assert f"{path}{where}" in str(err.value) and what in str(err.value)


def test_bad_metrics_tables(tmp_path):
    no_column = tmp_path / "m1.csv"
    no_column.write_text("model,language,avg_toxicity\nbase,de,0.1\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"{no_column}: missing column.*expected_max_toxicity"):
        read_metric_drop(no_column, "expected_max_toxicity", "base", None)
    many = _metrics(tmp_path / "m2.csv", [("base", "de", 0.5), ("a", "de", 0.2), ("b", "de", 0.1)])
    with pytest.raises(ConfigError, match=r"interpret\.alignment\.tuned_label: .*2 models"):
        read_metric_drop(many, "expected_max_toxicity", "base", None)
    with pytest.raises(ConfigError, match=r"interpret\.alignment\.base_label: no model 'orig'"):
        read_metric_drop(many, "expected_max_toxicity", "orig", "a")
    twice = _metrics(
        tmp_path / "m3.csv", [("base", "de", 0.5), ("a", "de", 0.2), ("base", "DE", 0.4)]
    )
    with pytest.raises(DataError, match=rf"{twice}:4: second row"):
        read_metric_drop(twice, "expected_max_toxicity", "base", None)
    label, drops = read_metric_drop(many, "expected_max_toxicity", "base", "b")
    assert label == "b" and drops == {"de": (0.5, 0.1)}


def test_bad_layer_leaves_no_output(model_dir, tmp_path):
    pairs = _pairs(tmp_path / "pairs.jsonl", n=4)
    out = tmp_path / "alignment"
    with pytest.raises(ConfigError, match=r"interpret\.alignment\.layer: -9"):
        run_alignment(
            model_dir, pairs, out, AlignmentConfig(layer=-9), progress=False, device="cpu"
        )
    assert not out.exists()
