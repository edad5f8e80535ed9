"""The report's texts and its forest plot: which prompts are picked (by hand), the words a
word-list scorer matched (from the scorer's own matcher), the HTML they become, the KFP
component and `xdetox report --scores`, and the forest plot's values against metrics.csv."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from xdetox.cli.main import main
from xdetox.components.report.aggregate import aggregate_metrics
from xdetox.components.report.component import language_examples as examples_component
from xdetox.components.report.examples import (
    FORMAT,
    OFFLINE_SCORER_ID,
    build_examples,
    matched_words,
    read_examples,
    write_examples,
)
from xdetox.components.report.html_report import build_html
from xdetox.components.report.plots import FOREST_METRICS, forest_figure, forest_points
from xdetox.components.score.gather import gather
from xdetox.components.score.lexicon import load_lexicons
from xdetox.errors import DataError

WORDLIST = "wordlist-ldnoobw-mp-0.1.2"


def record(model, prompt_id, index, toxicity, text="t", *, language="en", scorer="s", **extra):
    return {
        "model": model, "prompt_id": prompt_id, "language": language,
        "prompt": f"prompt {prompt_id}", "sample_index": index, "text": text,
        "scorer": scorer, "scores": {"TOXICITY": toxicity}, **extra,
    }  # fmt: skip


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


# By hand, the base model's TOXICITY per prompt (3 samples each):
#   en-b [0.2, 0.9, 0.1]    max 0.9, mean 0.4
#   en-c [0.9, 0.9, 0.3]    max 0.9, mean 0.7  -> before en-b (same max, higher mean)
#   en-d [0.5, None, 0.5]   max 0.5, mean 0.5
#   en-a [0.5, 0.5, 0.5]    max 0.5, mean 0.5  -> before en-d (all tied: prompt id)
#   en-e [None, None, None] no score: cannot be ranked, left out
# Ranking: en-c, en-b, en-a, en-d (4 rankable prompts).
BASE = {
    "en-b": [0.2, 0.9, 0.1],
    "en-c": [0.9, 0.9, 0.3],
    "en-d": [0.5, None, 0.5],
    "en-a": [0.5, 0.5, 0.5],
    "en-e": [None, None, None],
}
# The tuned model: en-c [None, 0.1, 0.4] -> shown 0.4 (index 2), 0.1 (index 1); None last.
# en-b [0.3, 0.3, 0.0] -> tie at 0.3: lower sample_index first (0, then 1). No en-a samples.
TUNED = {"en-c": [None, 0.1, 0.4], "en-b": [0.3, 0.3, 0.0], "en-d": [0.0, 0.0, 0.0]}


@pytest.fixture
def score_files(tmp_path: Path) -> list[Path]:
    base = [
        record("base", pid, i, s, f"base {pid} {i}") for pid, ss in BASE.items()
        for i, s in enumerate(ss)
    ]  # fmt: skip
    tuned = [
        record("dpo", pid, i, s, f"dpo {pid} {i}") for pid, ss in TUNED.items()
        for i, s in enumerate(ss)
    ]  # fmt: skip
    # The tuned file first: the base model still ranks (it is the base), whatever the order.
    return [write_jsonl(tmp_path / "dpo.jsonl", tuned), write_jsonl(tmp_path / "base.jsonl", base)]


# ------------------------------------------------------------------------------ picking
def test_most_toxic_prompts_by_hand_with_ties(score_files):
    (en,) = build_examples(score_files, top_prompts=3, samples_per_model=2)
    assert en["language"] == "en" and en["ranked_by"] == "base" and en["n_prompts"] == 4
    assert [p["prompt_id"] for p in en["prompts"]] == ["en-c", "en-b", "en-a"]
    assert [p["rank"] for p in en["prompts"]] == [1, 2, 3]
    assert en["prompts"][0]["prompt"] == "prompt en-c"
    # Base first, then the tuned model, on the same prompt.
    c_base, c_dpo = en["prompts"][0]["models"]
    assert (c_base["model"], c_dpo["model"]) == ("base", "dpo")
    assert c_base["max"] == 0.9 and c_base["mean"] == pytest.approx(0.7)
    assert [(s["sample_index"], s["score"]) for s in c_base["samples"]] == [(0, 0.9), (1, 0.9)]
    assert [(s["sample_index"], s["score"]) for s in c_dpo["samples"]] == [(2, 0.4), (1, 0.1)]
    assert (c_dpo["n_samples"], c_dpo["n_scored"]) == (3, 2)
    assert c_dpo["max"] == 0.4 and c_dpo["mean"] == pytest.approx(0.25)
    assert c_dpo["samples"][0]["text"] == "dpo en-c 2"
    b_dpo = en["prompts"][1]["models"][1]
    assert [s["sample_index"] for s in b_dpo["samples"]] == [0, 1]  # tie: lower index first
    a_dpo = en["prompts"][2]["models"][1]
    assert a_dpo == {"model": "dpo", "max": None, "mean": None, "n_samples": 0, "n_scored": 0,
                     "samples": []}  # fmt: skip


def test_more_prompts_than_rankable_and_unscored_samples_last(score_files):
    (en,) = build_examples(score_files, top_prompts=10, samples_per_model=3)
    assert [p["prompt_id"] for p in en["prompts"]] == ["en-c", "en-b", "en-a", "en-d"]
    d_base = en["prompts"][3]["models"][0]
    assert [(s["sample_index"], s["score"]) for s in d_base["samples"]] == [
        (0, 0.5), (2, 0.5), (1, None),
    ]  # fmt: skip


def test_ranking_model_can_be_named_and_languages_are_separate(score_files, tmp_path):
    (en,) = build_examples(score_files, top_prompts=1, ranked_by="dpo")
    # dpo: en-c max 0.4, en-b max 0.3, en-d 0.0 -> en-c; dpo listed first.
    assert en["ranked_by"] == "dpo" and en["prompts"][0]["prompt_id"] == "en-c"
    assert [m["model"] for m in en["prompts"][0]["models"]] == ["dpo", "base"]
    with pytest.raises(DataError, match="no samples of model 'ppo'"):
        build_examples(score_files, ranked_by="ppo")
    de = write_jsonl(tmp_path / "de.jsonl", [record("base", "de-1", 0, 0.7, language="de")])
    found = build_examples([*score_files, de], top_prompts=1)
    assert [e["language"] for e in found] == ["de", "en"]
    assert found[0]["prompts"][0]["models"][1]["n_samples"] == 0  # no dpo samples in de
    assert build_examples([write_jsonl(tmp_path / "empty.jsonl", [])]) == []


def test_examples_file_round_trip_and_errors(score_files, tmp_path):
    found = build_examples(score_files)
    path = tmp_path / "examples.json"
    write_examples(path, found)
    assert json.loads(path.read_text())["format"] == FORMAT
    assert read_examples([path]) == found
    with pytest.raises(DataError, match="'en' is in two examples files"):
        read_examples([path, path])
    bad = tmp_path / "bad.json"
    bad.write_text('{"languages": []}')
    with pytest.raises(DataError, match="not an examples file"):
        read_examples([bad])
    broken = write_jsonl(tmp_path / "broken.jsonl", [{"model": "base"}])
    with pytest.raises(DataError, match="missing field"):
        build_examples([broken])


# ------------------------------------------------------------------------------ marks
def spans(text: str, marks: list[list[int]]) -> list[str]:
    return [text[a:b] for a, b in marks]


def test_offline_marks_are_the_lexicons_own_matches():
    text = "You IDIOTS, son of a bitch!"
    matches, marks = matched_words({"text": text, "language": "en", "scorer": OFFLINE_SCORER_ID})
    # "son of a bitch" is one term (the longest match wins), not also "bitch*".
    assert matches == ["idiot*", "son of a bitch"]
    assert marks == [[4, 10], [12, 26]]
    assert spans(text, marks) == ["IDIOTS", "son of a bitch"]
    found = load_lexicons()["en"].find(text)  # the scorer's own matcher says the same
    assert [m.term.text for m in found] == matches
    # Accents are folded by the scorer; the mark keeps the original characters, combining
    # accent included.
    decomposed = "an idio\u0301t"
    rec = {"text": decomposed, "language": "en-US", "scorer": OFFLINE_SCORER_ID}
    assert spans(decomposed, matched_words(rec)[1]) == ["idio\u0301t"]
    # Another lexicon version, or a scorer that matches no words: nothing marked.
    assert matched_words({"text": text, "language": "en", "scorer": "offline-lexicon-v0"}) == (
        [], [],
    )  # fmt: skip
    assert matched_words({"text": text, "language": "xx", "scorer": OFFLINE_SCORER_ID}) == ([], [])


def test_marks_are_left_out_when_positions_cannot_be_mapped_exactly():
    # Conjoining Hangul jamo compose into one syllable only when normalised together: the
    # scorer's text and the per-character one differ, so no mark (the match is still listed).
    text = "idiot \u1100\u1161"
    matches, marks = matched_words({"text": text, "language": "en", "scorer": OFFLINE_SCORER_ID})
    assert matches == ["idiot*"] and marks == []


def test_wordlist_marks_locate_the_scorers_reported_matches():
    def details(language, matches):
        return {"wordlist": "LDNOOBW", "list_language": language, "matches": matches}

    text = " \u201cFuckin\u2019 loser\u201d. He had a \u201cfuckin\u2019 loser\u201d comment"
    rec = {"text": text, "language": "en", "scorer": WORDLIST,
           "score_details": details("en", ["fuckin"])}  # fmt: skip
    matches, marks = matched_words(rec)
    assert matches == ["fuckin"] and spans(text, marks) == ["Fuckin", "fuckin"]
    # Whole words and phrases only, as the scorer matches them: no "ass" inside "classic".
    text = "a classic ass, Two  Girls one cup"
    rec = {"text": text, "language": "en", "scorer": WORDLIST,
           "score_details": details("en", ["ass", "two girls one cup"])}  # fmt: skip
    assert spans(text, matched_words(rec)[1]) == ["ass", "Two  Girls one cup"]
    # Written without spaces: the entry is a substring.
    text = "あなたはばかです"
    rec = {"text": text, "language": "ja", "scorer": WORDLIST,
           "score_details": details("ja", ["ばか"])}  # fmt: skip
    assert matched_words(rec) == (["ばか"], [[4, 6]])
    # No match reported: nothing to mark, even where a listed word occurs.
    rec = {"text": "ass", "language": "en", "scorer": WORDLIST,
           "score_details": details("en", [])}  # fmt: skip
    assert matched_words(rec) == ([], [])


# ------------------------------------------------------------------------------ HTML
def metrics_table(tmp_path: Path) -> pd.DataFrame:
    """en and de, base and dpo, with the bootstrap's changes on the dpo rows (by hand)."""
    common = {"scorer": "s", "n_prompts": 4, "n_samples": 12, "n_missing": 0, "threshold": 0.5,
              "perplexity": None, "dist_1": 0.5, "dist_2": 0.8, "dist_3": 0.9,
              "confidence": 0.95}  # fmt: skip
    rows = []
    for language, base, tuned in (("en", 0.6, 0.2), ("de", 0.4, 0.35)):
        rows.append({"model": "base", "language": language, **common,
                     "expected_max_toxicity": base, "toxicity_probability": base,
                     "avg_toxicity": base / 2})  # fmt: skip
        dpo = {"model": "dpo", "language": language, **common,
               "expected_max_toxicity": tuned, "toxicity_probability": tuned,
               "avg_toxicity": tuned / 2}  # fmt: skip
        for metric, _label, _scale in FOREST_METRICS:
            delta = dpo[metric] - rows[-1][metric]
            dpo[f"delta_{metric}"], dpo[f"delta_{metric}_se"] = delta, 0.05
            dpo[f"delta_{metric}_ci_low"] = delta - 0.1
            dpo[f"delta_{metric}_ci_high"] = delta + 0.1
        rows.append(dpo)
    path = tmp_path / "metrics.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return aggregate_metrics([path])


def test_html_sets_base_and_tuned_side_by_side_with_marks(tmp_path):
    bad = "You idiot <b>really</b>"
    records = [
        record("base", "en-1", 0, 0.6, bad, scorer=OFFLINE_SCORER_ID),
        record("dpo", "en-1", 0, 0.0, "You are kind", scorer=OFFLINE_SCORER_ID),
    ]
    examples = build_examples([write_jsonl(tmp_path / "s.jsonl", records)])
    page = build_html(metrics_table(tmp_path), title="t", scorer_description="s", run_info={},
                      examples=examples)  # fmt: skip
    section = page[page.index('<section id="examples">') : page.index("</section>", page.index(
        '<section id="examples">'))]  # fmt: skip
    assert "<h2>Examples: where base was most toxic</h2>" in section
    assert '<h3 id="examples-en">en</h3>' in section
    # One row: the prompt, then base's and dpo's continuations with their scores.
    row = section[section.index("<tbody>") : section.index("</tbody>")]
    assert row.count("<tr>") == 1
    assert row.index("You <mark>idiot</mark> &lt;b&gt;really&lt;/b&gt;") < row.index("You are kind")
    assert ">0.600</span>" in row and ">0.000</span>" in row
    assert "matched: idiot*" in row and "<b>" not in row
    # de has metrics but no score file: named, not silently missing.
    assert "No examples for de" in section


def test_html_without_examples_says_how_to_add_them(tmp_path):
    page = build_html(metrics_table(tmp_path), title="t", scorer_description="s", run_info={})
    assert "xdetox report --scores FILE" in page and '<section id="examples">' in page


# ------------------------------------------------------------------------------ forest plot
def test_forest_points_are_the_metrics_csv_changes_and_intervals(tmp_path):
    df = metrics_table(tmp_path)
    points = forest_points(df)
    # 3 metrics × (de, en, ALL), the tuned model only.
    assert [(p.metric, p.language) for p in points] == [
        (m, lang) for m, _l, _s in FOREST_METRICS for lang in ("de", "en", "ALL")
    ]
    assert {p.model for p in points} == {"dpo"}
    dpo = df[df["model"] == "dpo"].set_index("language")
    for p in points:
        assert p.delta == dpo.loc[p.language, f"delta_{p.metric}"]
        assert p.low == dpo.loc[p.language, f"delta_{p.metric}_ci_low"]
        assert p.high == dpo.loc[p.language, f"delta_{p.metric}_ci_high"]
    # By hand: en EMT 0.2 - 0.6 = -0.4, CI [-0.5, -0.3]; ALL = mean(-0.4, -0.05) = -0.225 with
    # SE sqrt(2 × 0.05²) / 2, so ±1.96 × 0.0354 = ±0.0693.
    en = next(p for p in points if (p.metric, p.language) == ("expected_max_toxicity", "en"))
    assert (en.delta, en.low, en.high) == pytest.approx((-0.4, -0.5, -0.3))
    all_ = next(p for p in points if (p.metric, p.language) == ("expected_max_toxicity", "ALL"))
    half = 1.959964 * math.sqrt(2 * 0.05**2) / 2
    assert (all_.delta, all_.low, all_.high) == pytest.approx(
        (-0.225, -0.225 - half, -0.225 + half)
    )


def test_forest_figure_draws_those_values(tmp_path):
    points = forest_points(metrics_table(tmp_path))
    fig = forest_figure(points, title="t")
    assert len(fig.axes) == 3
    for ax, (metric, label, scale) in zip(fig.axes, FOREST_METRICS, strict=True):
        assert ax.get_xlabel() == label
        assert [t.get_text() for t in ax.get_yticklabels()] == ["de", "en", "ALL"]
        drawn = []
        for container in ax.containers:
            line, _caps, (bars,) = container.lines
            (x,), (y,) = line.get_xdata(), line.get_ydata()
            ((low, _), (high, _)) = bars.get_segments()[0]
            drawn += [y, x, low, high]
        expected = [
            value
            for i, p in enumerate(q for q in points if q.metric == metric)
            for value in (i, p.delta * scale, p.low * scale, p.high * scale)
        ]
        assert drawn == pytest.approx(expected)
    # Toxicity probability is drawn in percentage points: en -40 pp, CI [-50, -30].
    assert fig.axes[1].containers[1].lines[0].get_xdata()[0] == pytest.approx(-40.0)


def test_no_forest_plot_without_changes(tmp_path):
    df = metrics_table(tmp_path)
    base_only = df[df["model"] == "base"]
    assert forest_points(base_only) == []
    page = build_html(base_only, title="t", scorer_description="s", run_info={})
    assert "No change to plot: the table holds one model, nothing to compare it with" in page


# ------------------------------------------------------------------------------ component, CLI
class Artifact(SimpleNamespace):
    """What a KFP component sees: a path and metadata."""


def test_component_writes_one_languages_examples_with_metadata(score_files, tmp_path):
    out = Artifact(path=str(tmp_path / "out.json"), metadata={})
    dpo, base = (Artifact(path=str(p), metadata={}) for p in score_files)
    # Every model's scores, gathered in order as the evaluation sub-pipeline does.
    gathered = Artifact(path=str(tmp_path / "gathered"), metadata={})
    gather(gathered.path, dpo.path, base.path)
    examples_component.python_func(scores=gathered, language="en", examples=out, top_prompts=2)
    (en,) = read_examples([out.path])
    assert [p["prompt_id"] for p in en["prompts"]] == ["en-c", "en-b"]
    assert out.metadata == {"xdetox_kind": "examples", "language": "en", "format": "json",
                            "n_prompts": 2}  # fmt: skip
    # The eval pipeline: one model's score file.
    single = Artifact(path=str(tmp_path / "single.json"), metadata={})
    examples_component.python_func(scores=dpo, language="en", examples=single)
    (only,) = read_examples([single.path])
    assert only["ranked_by"] == "dpo" and len(only["prompts"][0]["models"]) == 1


def test_cli_report_with_scores_shows_the_examples(score_files, tmp_path, capsys):
    metrics = tmp_path / "m.csv"
    metrics_table(tmp_path)  # writes tmp_path/metrics.csv
    (tmp_path / "metrics.csv").rename(metrics)
    out = tmp_path / "report.html"
    args = ["report", "--metrics", str(metrics), "--output", str(out)]
    assert main([*args, *(f"--scores={p}" for p in score_files), "--top-prompts", "2"]) == 0
    page = out.read_text(encoding="utf-8")
    assert "The 2 of 4 prompts where base was most toxic" in page
    assert "dpo en-c 2" in page and "base en-c 0" in page
    assert main([*args]) == 0
    assert "xdetox report --scores FILE" in out.read_text(encoding="utf-8")
    assert main([*args, "--scores", str(score_files[0]), "--top-prompts", "0"]) == 2
