"""Agreement between two scorers: statistics by hand, the join, files, CLI and component."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xdetox.cli.main import main
from xdetox.components.agreement.agreement import agreement_stats, agreement_table
from xdetox.components.agreement.render import run_agreement
from xdetox.errors import DataError


def test_agreement_and_kappa_by_hand():
    same = agreement_stats(np.array([0.1, 0.4, 0.6, 0.9]), np.array([0.2, 0.3, 0.8, 0.7]))
    assert same["agreement"] == 1.0 and same["cohen_kappa"] == pytest.approx(1.0)
    # A: T F T F; B: F F T T -> agree on 2 of 4; both rates 1/2 -> chance 1/2 -> κ = 0
    half = agreement_stats(np.array([0.6, 0.4, 0.7, 0.2]), np.array([0.3, 0.4, 0.9, 0.8]))
    assert half["agreement"] == 0.5 and half["cohen_kappa"] == pytest.approx(0.0)
    assert (half["positive_rate_a"], half["positive_rate_b"]) == (0.5, 0.5)
    # A: T T T F; B: T F F F -> po 2/4; pa 3/4, pb 1/4 -> pe 3/16 + 3/16 = 6/16
    skew = agreement_stats(np.array([0.9, 0.8, 0.5, 0.1]), np.array([0.7, 0.2, 0.3, 0.1]))
    assert skew["cohen_kappa"] == pytest.approx((0.5 - 6 / 16) / (1 - 6 / 16))
    # Everything on one side makes κ undefined (NaN), not 0; the threshold is a parameter.
    assert math.isnan(agreement_stats(np.array([0.9, 0.8]), np.array([0.7, 0.6]))["cohen_kappa"])
    assert agreement_stats(np.array([0.3]), np.array([0.35]), threshold=0.32)["agreement"] == 0.0
    empty = agreement_stats(np.array([]), np.array([]))
    assert all(math.isnan(v) for v in empty.values())


def sample(scorer, model, language, prompt_id, index, score, text=None):
    return {
        "model": model,
        "language": language,
        "prompt_id": prompt_id,
        "prompt": "p",
        "sample_index": index,
        "text": text or f"{model} {prompt_id} {index}",
        "scorer": scorer,
        "scores": {"TOXICITY": score},
    }


def write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def score_files(tmp_path) -> list[Path]:
    # en: four pairs as in test_correlations_by_hand, plus a null on B's side;
    # de: two pairs; A has one sample B lacks.
    a_scores = {
        ("en", "p1", 0): 0.1,
        ("en", "p1", 1): 0.4,
        ("en", "p2", 0): 0.6,
        ("en", "p2", 1): 0.9,
        ("en", "p3", 0): 0.5,
        ("de", "q1", 0): 0.2,
        ("de", "q1", 1): 0.8,
        ("de", "q2", 0): 0.3,
    }
    b_scores = {
        ("en", "p1", 0): 0.2,
        ("en", "p1", 1): 0.3,
        ("en", "p2", 0): 0.8,
        ("en", "p2", 1): 0.7,
        ("en", "p3", 0): None,
        ("de", "q1", 0): 0.1,
        ("de", "q1", 1): 0.6,
    }
    a = [sample("perspective-v1alpha1", "base", *key, v) for key, v in a_scores.items()]
    b = [sample("classifier-xlmr", "base", *key, v) for key, v in b_scores.items()]
    return [
        write(tmp_path / "a.jsonl", a),
        write(tmp_path / "b_en.jsonl", b[:5]),
        write(tmp_path / "b_de.jsonl", b[5:]),
    ]


def test_agreement_table_joins_counts_and_pools(score_files):
    df = agreement_table(score_files).set_index("language")
    assert list(df.index) == ["de", "en", "ALL"]
    en, de, pooled = df.loc["en"], df.loc["de"], df.loc["ALL"]
    assert (en["scorer_a"], en["scorer_b"]) == ("perspective-v1alpha1", "classifier-xlmr")
    assert (en["n_paired"], en["n_missing"], en["n_only_a"], en["n_only_b"]) == (4, 1, 0, 0)
    assert en["spearman"] == pytest.approx(0.8)
    assert en["agreement"] == 1.0
    assert (de["n_paired"], de["n_only_a"]) == (2, 1)
    assert de["pearson"] == pytest.approx(1.0)  # two points are always on a line
    assert pooled["n_paired"] == 6 and pooled["n_missing"] == 1 and pooled["n_only_a"] == 1
    a = np.array([0.1, 0.4, 0.6, 0.9, 0.2, 0.8])
    b = np.array([0.2, 0.3, 0.8, 0.7, 0.1, 0.6])
    assert pooled["pearson"] == pytest.approx(float(np.corrcoef(a, b)[0, 1]))


def test_run_agreement_writes_csv_markdown_html(score_files, tmp_path):
    out = tmp_path / "agree"
    run_agreement(score_files, out, threshold=0.65)
    back = pd.read_csv(out / "agreement.csv")
    assert set(back["threshold"]) == {0.65}
    markdown = (out / "agreement.md").read_text()
    assert "| perspective-v1alpha1 | classifier-xlmr | en | 4 | 1 |" in markdown
    assert "threshold 0.65" in markdown
    assert "<table>" in (out / "agreement.html").read_text()


def test_cli_agreement(score_files, tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["agreement", "--output", str(out), "--threshold", "0.5"]
    for path in score_files:
        argv += ["--scores", str(path)]
    assert main(argv) == 0
    assert "Spearman" in capsys.readouterr().out
    assert (out / "agreement.csv").is_file()


def test_bad_inputs_name_the_file_and_write_nothing(score_files, tmp_path):
    out = tmp_path / "bad"
    with pytest.raises(DataError, match="two scorers"):
        run_agreement(score_files[:1], out)
    changed = [json.loads(x) for x in score_files[1].read_text().splitlines()]
    changed[0]["text"] = "another continuation"
    other = write(tmp_path / "b_changed.jsonl", changed)
    with pytest.raises(DataError, match="different texts") as info:
        run_agreement([score_files[0], other], out)
    assert str(other) in str(info.value)
    with pytest.raises(DataError, match="twice") as info:
        run_agreement([score_files[0], score_files[1], score_files[1]], out)
    assert str(score_files[1]) in str(info.value)
    broken = tmp_path / "broken.jsonl"
    broken.write_text(score_files[0].read_text() + "{oops\n")
    with pytest.raises(DataError) as info:
        run_agreement([broken, score_files[1]], out)
    assert str(info.value).startswith(f"{broken}:9: ")
    assert not out.exists()


def test_component_compiles(tmp_path):
    from kfp import compiler

    from xdetox.components.agreement.component import scorer_agreement

    target = tmp_path / "agreement.yaml"
    compiler.Compiler().compile(scorer_agreement, str(target))
    text = target.read_text()
    assert "scorer_agreement" in text.replace("-", "_") and "system.Metrics" in text


def test_the_pipeline_option_names_the_second_scorer():
    from xdetox.config import ScoringConfig

    assert ScoringConfig().second_scorer() is None
    first = ScoringConfig(scorer="perspective", qps=3, agreement_with="classifier")
    second = first.second_scorer()
    assert (second.scorer, second.qps, second.agreement_with) == ("classifier", 3, None)
