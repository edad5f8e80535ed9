"""XG's evaluation protocol as settings: each option against values computed by hand.

XG is Li, Yong & Bach 2024, "Preference Tuning For Toxicity Mitigation Generalizes Across
Languages" (arXiv:2406.16235); their evaluation code is xg/eval/*.py of
github.com/BatsResearch/cross-lingual-detox. Settings: ``scoring.empty_text``,
``metrics.group_by``, ``metrics.distinct_tokens``, ``metrics.quartile_method``.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pytest
from tokenizers import decoders

from xdetox.components.metrics import per_language
from xdetox.components.metrics.bootstrap import bootstrap_table, prompt_statistics
from xdetox.components.metrics.diversity import distinct_n, load_tokenizer
from xdetox.components.metrics.per_language import compute_metrics
from xdetox.components.metrics.perplexity import Fluency, summarize_perplexities
from xdetox.components.metrics.read_scores import read_scores
from xdetox.components.score.perspective import PerspectiveScorer
from xdetox.components.score.score_file import SKIPPED_REASON, score_generations
from xdetox.components.score.scorer_interface import Scorer, ScoreResult
from xdetox.config import MetricsConfig, ScoringConfig, load_config
from xdetox.errors import ConfigError, DataError

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent / "fakes"))

from perspective_server import Behaviour, PerspectiveServer
from tiny_models import word_tokenizer

# No model anywhere: toxicity and distinct-n only.
NO_MODEL = {"perplexity": False, "diversity_tokenizer": "whitespace", "bootstrap_samples": 0}


def generation(model: str, prompt_id: str, index: int, text: str, prompt: str = "P") -> dict:
    return {
        "model": model,
        "prompt_id": prompt_id,
        "language": "en",
        "prompt": prompt,
        "sample_index": index,
        "text": text,
        "n_tokens": 1,
        "finish_reason": "stop",
    }


def write_lines(path: Path, records: Sequence[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")
    return path


def scored(model: str, prompt_id: str, index: int, toxicity: float | None, **fields) -> dict:
    record = generation(model, prompt_id, index, "a b", **fields)
    return {**record, "scorer": "fake", "scores": {"TOXICITY": toxicity}}


# ------------------------------------------------------------------ scoring.empty_text
class BlankRefusingScorer(Scorer):
    """Perspective's manners without the network: an empty text is refused (null), any other
    text, whitespace included, gets its score from a table."""

    id = "fake-v1"
    name = "fake scorer"
    attributes = ("TOXICITY",)
    SCORES: ClassVar[dict[str, float]] = {" ": 0.2, "  ": 0.3, "bad": 0.8, "ok": 0.1}

    def __init__(self) -> None:
        self.seen: list[str] = []

    def score_items(self, texts, languages):
        self.seen += list(texts)
        return [
            ScoreResult({"TOXICITY": None}, {"TOXICITY": "COMMENT_EMPTY"})
            if t == ""
            else ScoreResult({"TOXICITY": self.SCORES[t]})
            for t in texts
        ]


# Prompt p1: "bad", "" ; prompt p2: "ok", "  " (blank but not empty).
EMPTY_CASES = [("p1", 0, "bad"), ("p1", 1, ""), ("p2", 0, "ok"), ("p2", 1, "  ")]


@pytest.mark.parametrize(
    ("policy", "sent", "scores", "avg", "emt", "n_missing"),
    [
        # The scorer's own answer: "" refused (null), "  " scored 0.3.
        # avg (0.8 + 0.1 + 0.3) / 3 = 0.4; EMT (0.8 + 0.3) / 2 = 0.55.
        ("scorer", ["bad", "", "ok", "  "], [0.8, None, 0.1, 0.3], 0.4, 0.55, 1),
        # Blank texts never reach the scorer: avg (0.8 + 0.1) / 2 = 0.45; EMT (0.8 + 0.1) / 2.
        ("skip", ["bad", "ok"], [0.8, None, 0.1, None], 0.45, 0.45, 2),
        # XG: "" is scored as " " (0.2), "  " as it is (0.3); all four averaged:
        # avg (0.8 + 0.2 + 0.1 + 0.3) / 4 = 0.35; EMT (0.8 + 0.3) / 2 = 0.55.
        ("space", ["bad", " ", "ok", "  "], [0.8, 0.2, 0.1, 0.3], 0.35, 0.55, 0),
    ],
)
def test_empty_text_policies_by_hand(tmp_path, policy, sent, scores, avg, emt, n_missing):
    source = write_lines(
        tmp_path / "gen.jsonl", [generation("base", p, i, t) for p, i, t in EMPTY_CASES]
    )
    out = tmp_path / "scores.jsonl"
    scorer = BlankRefusingScorer()
    summary = score_generations(
        source, out, ScoringConfig(empty_text=policy), progress=False, scorer=scorer
    )
    assert scorer.seen == sent
    records = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert [r["scores"]["TOXICITY"] for r in records] == scores
    assert [r["text"] for r in records] == [t for _, _, t in EMPTY_CASES]  # text kept as it was
    assert {r["empty_text"] for r in records} == {policy}
    assert (summary["empty_text"], summary["n_blank"], summary["n_missing"]) == (
        policy,
        2,
        n_missing,
    )
    if policy == "skip":
        assert records[1]["score_errors"] == {"TOXICITY": SKIPPED_REASON}

    row = compute_metrics([out], MetricsConfig(**NO_MODEL)).iloc[0]
    assert row["avg_toxicity"] == pytest.approx(avg)
    assert row["expected_max_toxicity"] == pytest.approx(emt)
    assert row["n_missing"] == n_missing
    assert row["empty_text"] == policy


def test_perspective_sends_blank_texts_only_under_space(monkeypatch, tmp_path):
    key = "AIzaTESTKEY-empty-text"
    monkeypatch.setenv("PERSPECTIVE_API_KEY", key)
    source = write_lines(
        tmp_path / "gen.jsonl", [generation("base", "p", 0, ""), generation("base", "p", 1, "hi")]
    )
    for policy in ("scorer", "space"):
        with PerspectiveServer(Behaviour(key=key)) as server:
            config = ScoringConfig(
                scorer="perspective", qps=50, attributes=["TOXICITY"], empty_text=policy,
                discovery_url=server.discovery_url, cache_dir=str(tmp_path / policy),
            )  # fmt: skip
            out = tmp_path / f"{policy}.jsonl"
            score_generations(source, out, config, progress=False)
            sent = [item.text for item in server.state.items]
        blank = json.loads(out.read_text("utf-8").splitlines()[0])
        if policy == "scorer":
            assert sent == ["hi"]
            assert "not sent to the API" in blank["score_errors"]["TOXICITY"]
        else:
            # " " went out, as XG sent it; this fake answers COMMENT_EMPTY for blank text,
            # and the API's answer, whatever it is, is what gets recorded.
            assert sorted(sent) == [" ", "hi"]
            assert "COMMENT_EMPTY" in blank["score_errors"]["TOXICITY"]
    assert PerspectiveScorer(["TOXICITY"]).send_blank is False


def test_score_files_without_the_policy_read_as_scorer_and_mixed_policies_are_refused(tmp_path):
    old = write_lines(tmp_path / "old.jsonl", [scored("base", "p", 0, 0.5)])
    assert set(read_scores([old])["empty_text"]) == {"scorer"}
    new = write_lines(
        tmp_path / "new.jsonl", [{**scored("dpo", "p", 0, 0.1), "empty_text": "space"}]
    )
    with pytest.raises(DataError, match=r"different scoring\.empty_text values"):
        compute_metrics([old, new], MetricsConfig(**NO_MODEL))
    bad = write_lines(tmp_path / "bad.jsonl", [{**scored("base", "p", 0, 0.5), "empty_text": "x"}])
    with pytest.raises(DataError, match=r"bad.jsonl:1: field 'empty_text' must be one of"):
        read_scores([bad])


# ------------------------------------------------------------------ metrics.group_by
def grouping_records() -> list[dict]:
    """Prompts a and b share one text; c has its own. Whitespace tokens for distinct-n:
    a: "x y" twice, b: "x y" twice, c: "p q", "r s"."""
    base = [("a", 0.2, "x y"), ("a", 0.6, "x y"), ("b", 0.7, "x y"), ("b", 0.1, "x y"),
            ("c", 0.3, "p q"), ("c", 0.4, "r s")]  # fmt: skip
    tuned = [0.1, 0.2, 0.05, 0.3, 0.1, 0.0]
    records = []
    for index, ((pid, value, text), tuned_value) in enumerate(zip(base, tuned, strict=True)):
        prompt = "Same prompt" if pid in "ab" else "Other prompt"
        for model, toxicity in (("base", value), ("dpo", tuned_value)):
            record = scored(model, pid, index, toxicity, prompt=prompt)
            records.append({**record, "text": text})
    return records


def test_group_by_prompt_text_merges_duplicate_texts_by_hand(tmp_path):
    path = write_lines(tmp_path / "scores.jsonl", grouping_records())
    by_id = compute_metrics([path], MetricsConfig(**NO_MODEL))
    by_text = compute_metrics([path], MetricsConfig(**{**NO_MODEL, "group_by": "prompt_text"}))
    base_id, base_text = by_id.iloc[0], by_text.iloc[0]
    assert base_id["model"] == base_text["model"] == "base"
    # By id: maxima a 0.6, b 0.7, c 0.4 -> EMT 1.7 / 3; a and b reach 0.5 -> probability 2/3.
    assert base_id["expected_max_toxicity"] == pytest.approx(1.7 / 3)
    assert base_id["toxicity_probability"] == pytest.approx(2 / 3)
    assert (base_id["n_prompts"], base_id["n_prompt_groups"]) == (3, 3)
    # By text: "Same prompt" (a + b) max 0.7, "Other prompt" 0.4 -> EMT 0.55, probability 1/2.
    assert base_text["expected_max_toxicity"] == pytest.approx(0.55)
    assert base_text["toxicity_probability"] == pytest.approx(0.5)
    assert base_text["expected_max_toxicity_std"] == pytest.approx(0.15)  # |0.7 - 0.4| / 2
    assert (base_text["n_prompts"], base_text["n_prompt_groups"]) == (3, 2)
    # Average toxicity does not group: 2.3 / 6 either way.
    assert base_id["avg_toxicity"] == base_text["avg_toxicity"] == pytest.approx(2.3 / 6)
    # distinct-n stays per prompt id (XG's blocks of one prompt's samples): a 2/4, b 2/4, c 4/4
    # -> 2/3 (merging a and b would give (2/8 + 1) / 2 = 0.625).
    assert base_id["dist_1"] == base_text["dist_1"] == pytest.approx(2 / 3)
    assert list(by_text["group_by"]) == ["prompt_text", "prompt_text"]
    assert list(by_id["group_by"]) == ["prompt_id", "prompt_id"]


def test_bootstrap_pairs_the_same_prompt_units_as_the_table(tmp_path):
    path = write_lines(tmp_path / "scores.jsonl", grouping_records())
    table = read_scores([path])
    stats = prompt_statistics(table[table["model"] == "base"], group_by="prompt_text")
    assert stats.loc["Same prompt", "max"] == 0.7 and stats.loc["Same prompt", "n_scored"] == 4
    for group_by, delta in (("prompt_id", 0.2 - 1.7 / 3), ("prompt_text", 0.2 - 0.55)):
        # dpo by id: maxima a 0.2, b 0.3, c 0.1 -> 0.2; by text: 0.3 and 0.1 -> 0.2.
        row = bootstrap_table(table, "base", samples=50, group_by=group_by).iloc[0]
        assert row["delta_expected_max_toxicity"] == pytest.approx(delta)
        assert row["n_prompts_paired"] == (3 if group_by == "prompt_id" else 2)
        metrics = compute_metrics(
            [path], MetricsConfig(**{**NO_MODEL, "bootstrap_samples": 50, "group_by": group_by})
        )
        tuned = metrics[metrics["model"] == "dpo"].iloc[0]
        base = metrics[metrics["model"] == "base"].iloc[0]
        # The paired point estimate is the difference of the table's own rows.
        assert tuned["delta_expected_max_toxicity"] == pytest.approx(
            tuned["expected_max_toxicity"] - base["expected_max_toxicity"]
        )


# ------------------------------------------------------------------ metrics.distinct_tokens
@pytest.fixture
def sentencepiece_like_dir(tmp_path) -> Path:
    """A word-level tokenizer that wraps texts in <s> … </s> and decodes like SentencePiece
    (Metaspace): "▁cat" and "cat" both decode to "cat", "▁" alone to ""."""
    words = ["<s>", "</s>", "[UNK]", "▁", "▁cat", "cat", "sat", "▁sat"]
    tokenizer = word_tokenizer(
        words, wrap=("<s>", "</s>"), bos_token="<s>", eos_token="</s>", unk_token="[UNK]"
    )
    tokenizer.backend_tokenizer.decoder = decoders.Metaspace()
    folder = tmp_path / "tokenizer"
    tokenizer.save_pretrained(folder)
    return folder


SAMPLES = ["▁cat cat sat", "▁ ▁sat cat"]


def test_decoded_tokens_by_hand(sentencepiece_like_dir):
    decoded = load_tokenizer(str(sentencepiece_like_dir), None, "decoded")
    # <s> and </s> decode to "" (special, skipped), "▁" to "": all dropped.
    assert decoded(SAMPLES[0]) == ["cat", "cat", "sat"]
    assert decoded(SAMPLES[1]) == ["sat", "cat"]  # neighbours across the dropped "▁"
    # 5 tokens; unigrams {cat, sat}; bigrams cat_cat, cat_sat, sat_cat; trigram cat_cat_sat.
    ratios = distinct_n([decoded(t) for t in SAMPLES], joiner="_")
    assert ratios == {1: pytest.approx(2 / 5), 2: pytest.approx(3 / 5), 3: pytest.approx(1 / 5)}
    ids = load_tokenizer(str(sentencepiece_like_dir), None, "ids")
    assert ids(SAMPLES[0]) == [4, 5, 6]  # no special tokens
    # Ids: 6 tokens, 5 distinct (▁cat, cat, sat, ▁, ▁sat); 4 bigrams; 2 trigrams.
    ratios = distinct_n([ids(t) for t in SAMPLES])
    assert ratios == {1: pytest.approx(5 / 6), 2: pytest.approx(4 / 6), 3: pytest.approx(2 / 6)}


def test_decoded_ngrams_are_keyed_by_joined_strings_as_xg():
    samples = [["a_", "b"], ["a", "_b"]]
    assert distinct_n(samples, ns=(2,)) == {2: 0.5}  # two bigrams as tuples
    assert distinct_n(samples, ns=(2,), joiner="_") == {2: 0.25}  # one: both are "a__b"


def test_distinct_tokens_reach_the_table(tmp_path, sentencepiece_like_dir):
    records = [{**scored("base", "p", i, 0.1), "text": t} for i, t in enumerate(SAMPLES)]
    path = write_lines(tmp_path / "scores.jsonl", records)
    config = {**NO_MODEL, "diversity_tokenizer": str(sentencepiece_like_dir)}
    decoded = compute_metrics([path], MetricsConfig(**config, distinct_tokens="decoded")).iloc[0]
    ids = compute_metrics([path], MetricsConfig(**config)).iloc[0]
    assert (decoded["dist_1"], decoded["dist_2"]) == (pytest.approx(0.4), pytest.approx(0.6))
    assert (ids["dist_1"], ids["dist_2"]) == (pytest.approx(5 / 6), pytest.approx(4 / 6))
    assert (decoded["distinct_tokens"], ids["distinct_tokens"]) == ("decoded", "ids")


# ------------------------------------------------------------------ metrics.quartile_method
def test_midpoint_and_linear_quartiles_by_hand():
    # Kept: 1, 2, 3, 4 (NaN = empty continuation, skipped; 2e4 >= 1e4 dropped).
    values = [3.0, 1.0, math.nan, 4.0, 2e4, 2.0]
    linear = summarize_perplexities(values, 1e4, "linear")
    midpoint = summarize_perplexities(values, 1e4, "midpoint")
    # Q1 at position 0.75 of (1, 2, 3, 4): linear 1 + 0.75 = 1.75, midpoint (1 + 2) / 2 = 1.5;
    # Q3 at 2.25: linear 3.25, midpoint 3.5. The median 2.5 is the same either way.
    assert (linear["perplexity_q1"], linear["perplexity_q3"]) == (1.75, 3.25)
    assert (midpoint["perplexity_q1"], midpoint["perplexity_q3"]) == (1.5, 3.5)
    assert linear["perplexity"] == midpoint["perplexity"] == 2.5
    assert (midpoint["n_ppl_scored"], midpoint["n_ppl_dropped"], midpoint["n_ppl_empty"]) == (
        4,
        1,
        1,
    )
    with pytest.raises(ValueError, match=r"metrics\.quartile_method"):
        summarize_perplexities(values, 1e4, "nearest")


def test_quartile_method_reaches_the_perplexity_stage(tmp_path, monkeypatch):
    seen = {}

    def fake_perplexity(table, source, **kwargs):
        seen.update(kwargs)
        summary = summarize_perplexities([1.0, 2.0, 3.0, 4.0], 1e4, kwargs["quartile_method"])
        samples = pd.Series([2.0], index=table.index)
        return Fluency(pd.DataFrame([{"model": "base", "language": "en", **summary}]), samples)

    monkeypatch.setattr(per_language, "perplexity_metrics", fake_perplexity)
    path = write_lines(tmp_path / "scores.jsonl", [scored("base", "p", 0, 0.1)])
    config = MetricsConfig(
        **{**NO_MODEL, "perplexity": True}, perplexity_model="m", quartile_method="midpoint"
    )
    row = compute_metrics([path], config).iloc[0]
    assert seen["quartile_method"] == "midpoint"
    assert (row["perplexity_q1"], row["quartile_method"]) == (1.5, "midpoint")


# ------------------------------------------------------------------ defaults and errors
def test_defaults_are_ours_and_the_table_says_so(tmp_path):
    assert ScoringConfig().empty_text == "scorer"
    config = MetricsConfig()
    assert (config.group_by, config.distinct_tokens, config.quartile_method) == (
        "prompt_id", "ids", "linear",
    )  # fmt: skip
    path = write_lines(tmp_path / "scores.jsonl", [scored("base", "p", 0, 0.1)])
    row = compute_metrics([path], MetricsConfig(**NO_MODEL)).iloc[0]
    protocol = ("group_by", "empty_text", "distinct_tokens", "quartile_method")
    assert {k: row[k] for k in protocol} == {
        "group_by": "prompt_id", "empty_text": "scorer", "distinct_tokens": "ids",
        "quartile_method": "linear",
    }  # fmt: skip


@pytest.mark.parametrize(
    "setting",
    [
        "metrics.group_by=prompt",
        "metrics.distinct_tokens=strings",
        "metrics.quartile_method=nearest",
        "scoring.empty_text=blank",
    ],
)
def test_a_bad_value_is_one_line_naming_the_key(setting):
    with pytest.raises(ConfigError) as error:
        load_config([], [setting])
    message = str(error.value)
    assert setting.split("=")[0] + ":" in message and "\n" not in message
