"""Self-generated preference pairs: the toy model's samples, scored by the offline lexicon, the
least toxic paired with the most toxic per prompt (``data.preference: self``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from xdetox.cli.main import main
from xdetox.components.prepare_data.make_self_pairs import (
    SAMPLES_FILE,
    make_self_pairs,
    work_dir_for,
)
from xdetox.components.prepare_data.self_pairs import pair_extremes, toxicity_gap
from xdetox.components.prepare_prompts.prompts import prepare_prompts
from xdetox.components.score.scorer_interface import Scorer
from xdetox.components.score.scorers import get_scorer
from xdetox.config import DataConfig, GenerationConfig, ScoringConfig
from xdetox.errors import DataError
from xdetox.files import read_jsonl, write_jsonl
from xdetox.records import TOXICITY
from xdetox.toy import ensure_toy_model

MARGIN = 0.1


@pytest.fixture(scope="module")
def toy_model() -> Path:
    return ensure_toy_model(progress=False)


@pytest.fixture(scope="module")
def toy_prompts(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    prepare_prompts("toy", path, languages=["en", "de"], max_per_language=None, seed=0)
    return path


def _data(**self_pairs) -> DataConfig:
    settings = {"n": 4, "max_prompts": 6, "margin": MARGIN, **self_pairs}
    return DataConfig(self_pairs=settings, eval_fraction=0.2)


# Small shards so that a run has several, and a kill can fall between two of them.
GENERATION = GenerationConfig(backend="hf", shard_size=2, batch_size=16)
SCORING = ScoringConfig(scorer="offline")


def _run(model: Path, prompts: Path, out: Path, **kwargs) -> dict:
    return make_self_pairs(
        model, prompts, out, data=_data(), generation=GENERATION, scoring=SCORING,
        progress=False, **kwargs,
    )  # fmt: skip


@pytest.fixture(scope="module")
def toy_run(toy_model, toy_prompts, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("run") / "pairs"
    return out, _run(toy_model, toy_prompts, out)


def test_pairs_beat_the_margin_when_scored_again(toy_run, toy_prompts):
    out, stats = toy_run
    prompts = {r["prompt_id"]: r["prompt"] for r in read_jsonl(toy_prompts)}
    pairs = read_jsonl(out / "train.jsonl") + read_jsonl(out / "eval.jsonl")
    assert pairs and len(pairs) == stats["n_pairs"] == stats["n_kept"]
    scorer = get_scorer(ScoringConfig(scorer="offline", attributes=[TOXICITY]))
    texts = [t for p in pairs for t in (p["chosen"], p["rejected"])]
    scores = [s[TOXICITY] for s in scorer.score_batch(texts, ["en"] * len(texts))]
    for pair, chosen, rejected in zip(pairs, scores[::2], scores[1::2], strict=True):
        assert chosen < rejected and toxicity_gap(chosen, rejected) >= MARGIN
        assert (chosen, rejected) == (pair["chosen_toxicity"], pair["rejected_toxicity"])
        assert pair["prompt"] == prompts[pair["pair_id"]]
    assert {p["language"] for p in pairs} == {"en"}  # the prepared prompts also hold de


def test_run_writes_stats_samples_and_cleans_up(toy_run):
    out, stats = toy_run
    assert json.loads((out / "stats.json").read_text()) == stats
    samples = read_jsonl(out / SAMPLES_FILE)
    assert len(samples) == stats["n_samples"] == 6 * 4 and stats["n_prompts"] == 6
    reasons = ("missing_score", "empty", "margin")
    dropped = sum(stats[f"n_prompts_dropped_{reason}"] for reason in reasons)
    assert stats["n_pairs"] + dropped == stats["n_prompts"]
    assert stats["n_train"] + stats["n_eval"] == stats["n_pairs"] and stats["n_eval"] >= 1
    assert stats["margin_min"] >= MARGIN and stats["margin_max"] <= 1.0
    assert not work_dir_for(out).exists()


def _record(prompt_id: str, index: int, toxicity: float | None, text: str = "words") -> dict:
    return {"model": "base", "prompt_id": prompt_id, "language": "en", "prompt": "P",
            "sample_index": index, "text": text, "scorer": "test",
            "scores": {TOXICITY: toxicity}}  # fmt: skip


SCORES_FIXTURE = [
    *(_record("p1", i, t) for i, t in enumerate([0.1, 0.9, 0.5])),  # pair, gap 0.8
    *(_record("p2", i, t) for i, t in enumerate([0.2, 0.25])),  # gap under the margin
    *(_record("p3", i, t) for i, t in enumerate([None, 0.7])),  # one scored sample
    *(_record("p4", i, t) for i, t in enumerate([None, 0.3, 0.6])),  # pair, gap 0.3
    _record("p5", 0, 0.0, text=""),  # empty: left out, or it would be "chosen"
    _record("p5", 1, 0.9),
    _record("p5", 2, 0.5),  # pair 0.5 vs 0.9, gap 0.4
    *(_record("p6", i, t) for i, t in enumerate([0.2, 0.3])),  # 0.3 - 0.2 < 0.1 in floats
    _record("p7", 0, 0.0, text=""),
    _record("p7", 1, 0.1, text="  "),  # only empty samples
    *(_record("p8", i, None) for i in range(2)),  # no score at all
]


def test_stats_match_hand_counts():
    pairs, stats = pair_extremes(SCORES_FIXTURE, MARGIN)
    assert [p["pair_id"] for p in pairs] == ["p1", "p4", "p5", "p6"]
    assert stats == {
        "n_prompts": 8,
        "n_samples": 19,
        "n_samples_missing_score": 4,
        "n_samples_empty": 3,
        "n_prompts_dropped_missing_score": 2,  # p3, p8
        "n_prompts_dropped_empty": 1,  # p7
        "n_prompts_dropped_margin": 1,  # p2
        "n_pairs": 4,
        "margin": MARGIN,
        "margin_mean": pytest.approx((0.8 + 0.3 + 0.4 + 0.1) / 4),
        "margin_min": 0.1,
        "margin_max": 0.8,
    }


def test_null_scores_are_dropped_not_zeroed():
    pairs, _ = pair_extremes(SCORES_FIXTURE, MARGIN)
    p4 = next(p for p in pairs if p["pair_id"] == "p4")
    # As a 0 the unscored sample 0 would be "chosen", with a gap of 0.6.
    assert (p4["chosen_sample_index"], p4["chosen_toxicity"], p4["toxicity_gap"]) == (1, 0.3, 0.3)
    _, alone = pair_extremes([_record("q", 0, None), _record("q", 1, 0.9)], MARGIN)
    assert alone["n_pairs"] == 0 and alone["n_prompts_dropped_missing_score"] == 1


def test_a_scorer_without_scores_leaves_no_pair_and_keeps_the_samples(toy_model, tmp_path):
    # The offline lexicon has no Japanese list: every score is null, with a reason.
    prompts = tmp_path / "ja.jsonl"
    write_jsonl(prompts, [{"prompt_id": f"ja-{i}", "language": "ja", "prompt": "The cook said"}
                          for i in range(2)])  # fmt: skip
    out = tmp_path / "pairs"
    with pytest.raises(DataError, match="no pair left: 2 prompts, 0 with a TOXICITY gap"):
        make_self_pairs(toy_model, prompts, out, data=_data(language="ja"),
                        generation=GENERATION, scoring=SCORING, progress=False)  # fmt: skip
    assert not out.exists()
    scores = read_jsonl(work_dir_for(out) / "scores.jsonl")
    assert len(scores) == 2 * 4 and all(s["scores"][TOXICITY] is None for s in scores)


class Interrupted(Exception):
    """Stands in for a kill: raised from the shard hook."""


def test_killed_run_resumes_without_duplicating(toy_model, toy_prompts, toy_run, tmp_path):
    out = tmp_path / "pairs"

    def kill_after_first(index: int, total: int) -> None:
        raise Interrupted(f"stopped after shard {index} of {total}")

    with pytest.raises(Interrupted):
        _run(toy_model, toy_prompts, out, on_shard=kill_after_first)
    assert not out.exists() and work_dir_for(out).is_dir()

    written: list[int] = []
    stats = _run(toy_model, toy_prompts, out, on_shard=lambda index, total: written.append(index))
    assert written == [1, 2]  # shard 0 (of 3) was reused
    samples = read_jsonl(out / SAMPLES_FILE)
    keys = [(s["prompt_id"], s["sample_index"]) for s in samples]
    assert len(keys) == len(set(keys)) == 6 * 4
    # The same bytes as the uninterrupted run of the same settings.
    whole, whole_stats = toy_run
    for name in ("train.jsonl", "eval.jsonl", SAMPLES_FILE):
        assert (out / name).read_bytes() == (whole / name).read_bytes(), name
    assert stats == whole_stats and not work_dir_for(out).exists()


class DyingScorer(Scorer):
    """A scorer killed before its first answer (a preempted pod at the Perspective quota)."""

    id = name = "dying"
    attributes = (TOXICITY,)

    def score_items(self, texts, languages):
        raise Interrupted("killed while scoring")


def test_run_killed_while_scoring_does_not_sample_again(toy_model, toy_prompts, toy_run, tmp_path):
    out = tmp_path / "pairs"
    with pytest.raises(Interrupted):
        _run(toy_model, toy_prompts, out, scorer=DyingScorer())
    written: list[int] = []
    stats = _run(toy_model, toy_prompts, out, on_shard=lambda index, total: written.append(index))
    assert written == []  # the finished samples were reused whole
    whole, whole_stats = toy_run
    assert (out / SAMPLES_FILE).read_bytes() == (whole / SAMPLES_FILE).read_bytes()
    assert stats == whole_stats and not work_dir_for(out).exists()


def test_samples_of_other_settings_are_not_reused(toy_model, toy_prompts, tmp_path):
    out = tmp_path / "pairs"
    with pytest.raises(Interrupted):
        _run(toy_model, toy_prompts, out, scorer=DyingScorer())
    written: list[int] = []
    make_self_pairs(toy_model, toy_prompts, out, data=_data(seed=1), generation=GENERATION,
                    scoring=SCORING, progress=False,
                    on_shard=lambda index, total: written.append(index))  # fmt: skip
    assert written == [0, 1, 2]  # another sampling seed: every shard sampled again


@pytest.mark.slow  # trains DPO, like the other DPO runs outside the fast loop
def test_make_pairs_output_trains_with_dpo(toy_model, tmp_path, capsys):
    pairs = tmp_path / "pairs"
    code = main(["make-pairs", "--model", str(toy_model), "--prompts", "toy", "--output",
                 str(pairs), "--n", "4", "--max-prompts", "8", "--margin", "0.2",
                 "--scorer", "offline", "--backend", "hf"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    stats = json.loads((pairs / "stats.json").read_text())
    assert stats["margin"] == 0.2 and stats["samples_per_prompt"] == 4
    assert stats["margin_min"] >= 0.2 and stats["n_prompts"] == 8

    tuned = tmp_path / "tuned"
    code = main(["dpo", "--data", str(pairs), "--model", str(toy_model), "--output", str(tuned),
                 "--set", "training.max_steps=2", "--set", "training.eval_steps=1",
                 "--set", "training.save_steps=2", "--set", "training.logging_steps=1",
                 "--set", "training.per_device_train_batch_size=2"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert (tuned / "adapter_config.json").is_file()
    summary = json.loads((tuned / "train_summary.json").read_text())
    assert summary["n_train_pairs"] == stats["n_train"]
    assert summary["n_eval_pairs"] == stats["n_eval"]


def _tasks(path: Path) -> dict:
    return next(yaml.safe_load_all(path.read_text()))["root"]["dag"]["tasks"]


def test_pipeline_makes_pairs_from_the_base_model_instead_of_preparing_them(tmp_path):
    out = tmp_path / "detox.yaml"
    assert main(["compile", "--set", "data.preference=self", "-o", str(out)]) == 0
    tasks = _tasks(out)
    assert "self-pairs" in tasks and "prepare-data" not in tasks
    inputs = tasks["self-pairs"]["inputs"]["artifacts"]
    assert inputs["base_model"]["taskOutputArtifact"]["producerTask"] == "load-model"
    assert inputs["prompts"]["taskOutputArtifact"]["producerTask"] == "prepare-prompts"
    pairs = tasks["train"]["inputs"]["artifacts"]["pairs"]["taskOutputArtifact"]
    assert pairs["producerTask"] == "self-pairs"

    assert main(["compile", "-o", str(tmp_path / "plain.yaml")]) == 0
    plain = _tasks(tmp_path / "plain.yaml")
    assert "prepare-data" in plain and "self-pairs" not in plain


def test_samples_scored_by_an_external_scorer_are_never_cached(tmp_path):
    out = tmp_path / "detox.yaml"
    recipe = ["--set", "data.preference=self"]
    assert main(["compile", *recipe, "-o", str(out)]) == 0
    assert _tasks(out)["self-pairs"]["cachingOptions"].get("enableCache")
    external = [*recipe, "--set", "data.self_pairs.scorer=perspective"]
    assert main(["compile", *external, "-o", str(out)]) == 0
    assert not _tasks(out)["self-pairs"]["cachingOptions"].get("enableCache")


def test_self_pairs_language_must_be_among_the_prompts(tmp_path, capsys):
    out = tmp_path / "detox.yaml"
    code = main(["compile", "--set", "data.preference=self", "--set", "data.languages=[de]",
                 "-o", str(out)])  # fmt: skip
    assert code == 2 and "data.self_pairs.language: 'en' is not in data.languages" in (
        capsys.readouterr().err
    )
    assert not out.exists()


SELF = ["--set", "data.preference=self"]


@pytest.mark.parametrize(
    ("recipe", "param", "key"),
    [
        ([], "preference_data=self", "data.preference"),
        (SELF, "preference_data=toy", "data.preference"),
        (SELF, "data.self_pairs.scorer=perspective", "data.self_pairs.scorer"),  # cache
    ],
)
def test_param_cannot_switch_self_pairs(recipe, param, key, capsys):
    # Refused while checking the parameters, before any connection is tried.
    argv = ["submit", "--host", "http://127.0.0.1:9", "--token", "t", *recipe, "--param", param]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{key} shapes the pipeline's graph" in err and err.count("\n") == 1
