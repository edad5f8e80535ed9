"""Which models a detox run trains (sft_dpo's stages, several methods, a control arm), the
control's reversed pairs, and the compiled graph that trains and evaluates them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from xdetox.components.prepare_data.control_pairs import reverses, write_control_pairs
from xdetox.config import load_config
from xdetox.errors import ConfigError, DataError
from xdetox.pipelines.compile import compile_pipeline
from xdetox.pipelines.model_plan import PlannedModel, comparisons, model_plan


def plan_of(*overrides: str) -> list[PlannedModel]:
    return model_plan(load_config(None, list(overrides)))


def test_one_method_trains_one_model_from_the_base():
    assert plan_of() == [PlannedModel("dpo", "dpo", "base", "pairs")]
    assert plan_of("training.method=ppo") == [PlannedModel("ppo", "ppo", "base", "")]


def test_sft_dpo_is_two_stages_and_the_second_is_measured_against_the_first():
    plan = plan_of("training.method=sft_dpo")
    assert plan == [
        PlannedModel("sft", "sft", "base", "pairs"),
        PlannedModel("sft_dpo", "dpo", "sft", "pairs", compare_with="sft"),
    ]
    assert comparisons(plan) == {"sft_dpo": "sft"}
    # sft listed on its own as well: one sft model serves both
    assert [s.label for s in plan_of("training.methods=[sft, sft_dpo]")] == ["sft", "sft_dpo"]


def test_several_methods_train_from_the_same_base():
    plan = plan_of("training.methods=[dpo, ppo]")
    assert [(s.label, s.method, s.start, s.pairs) for s in plan] == [
        ("dpo", "dpo", "base", "pairs"),
        ("ppo", "ppo", "base", ""),
    ]


def test_the_control_mirrors_the_first_pair_method_on_reversed_pairs():
    plan = plan_of("training.methods=[ppo, sft_dpo]", "training.control=swapped")
    assert plan[-1] == PlannedModel("control", "dpo", "sft", "control", compare_with="sft_dpo")
    assert comparisons(plan) == {"sft_dpo": "sft", "control": "sft_dpo"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["training.methods=[dpo, dpo]"], "dpo listed twice"),
        (["training.method=ppo", "training.control=swapped"], "train on a reward, not pairs"),
        (["training.control=reversed"], "training.control"),
    ],
)
def test_bad_plans_are_refused_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


# --- the control's pairs ------------------------------------------------------------------


def write_pairs(folder: Path, n: int) -> Path:
    folder.mkdir()
    for split, count in (("train", n), ("eval", 2)):
        lines = [
            json.dumps({"pair_id": f"{split}:{i}", "prompt": f"p{i}", "chosen": f"nice {i}",
                        "rejected": f"rude {i}"}) + "\n"
            for i in range(count)
        ]  # fmt: skip
        (folder / f"{split}.jsonl").write_text("".join(lines), encoding="utf-8")
    return folder


def test_swapped_reverses_every_pair_of_both_splits(tmp_path):
    pairs = write_pairs(tmp_path / "pairs", 5)
    stats = write_control_pairs(pairs, tmp_path / "control", "swapped")
    assert stats == {"control": "swapped", "seed": 0, "n_train": 5, "n_train_reversed": 5,
                     "n_eval": 2, "n_eval_reversed": 2}  # fmt: skip
    for split in ("train", "eval"):
        before = [json.loads(x) for x in (pairs / f"{split}.jsonl").read_text().splitlines()]
        after = [json.loads(x) for x in (tmp_path / "control" / f"{split}.jsonl").read_text()
                 .splitlines()]  # fmt: skip
        assert [(a["chosen"], a["rejected"]) for a in after] == [
            (b["rejected"], b["chosen"]) for b in before
        ]
        assert {a["prompt"] for a in after} == {b["prompt"] for b in before}


def test_shuffled_flips_about_half_by_pair_id_and_seed(tmp_path):
    pairs = write_pairs(tmp_path / "pairs", 400)
    stats = write_control_pairs(pairs, tmp_path / "a", "shuffled", seed=7)
    assert 160 <= stats["n_train_reversed"] <= 240  # Binomial(400, 1/2): ±4 standard deviations
    again = write_control_pairs(pairs, tmp_path / "b", "shuffled", seed=7)
    assert (tmp_path / "a" / "train.jsonl").read_text() == (
        tmp_path / "b" / "train.jsonl"
    ).read_text()
    assert again == stats
    # The coin belongs to the pair, not to its position: the same pair id, the same coin.
    assert reverses("shuffled", "train:3", 7) == reverses("shuffled", "train:3", 7)
    other = [reverses("shuffled", f"train:{i}", 8) for i in range(400)]
    mine = [reverses("shuffled", f"train:{i}", 7) for i in range(400)]
    assert other != mine


def test_a_pair_without_a_field_names_file_and_line_and_writes_nothing(tmp_path):
    pairs = write_pairs(tmp_path / "pairs", 3)
    with (pairs / "train.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps({"prompt": "p", "chosen": "c"}) + "\n")
    with pytest.raises(DataError, match=r"train\.jsonl.*4.*'rejected'"):
        write_control_pairs(pairs, tmp_path / "control", "swapped")
    assert not (tmp_path / "control").exists()


# --- the compiled graph -------------------------------------------------------------------


def compiled(tmp_path: Path, *overrides: str) -> dict:
    out = compile_pipeline(load_config(None, list(overrides)), tmp_path / "detox.yaml")
    return next(yaml.safe_load_all(out.read_text()))


def constant(task: dict, name: str):
    return task["inputs"]["parameters"][name]["runtimeValue"]["constant"]


def producer(task: dict, name: str) -> str:
    return task["inputs"]["artifacts"][name]["taskOutputArtifact"]["producerTask"]


def test_sft_dpo_trains_dpo_from_the_merged_sft_model_and_evaluates_three_models(tmp_path):
    spec = compiled(tmp_path, "training.method=sft_dpo")
    root = spec["root"]["dag"]["tasks"]
    assert constant(root["train"], "method") == "sft"
    assert constant(root["train-2"], "method") == "dpo"
    assert constant(root["train-2"], "label") == "sft_dpo"
    assert producer(root["merge"], "adapter") == "train"
    assert producer(root["train-2"], "base_model") == "merge"  # DPO starts from the SFT model
    assert producer(root["merge-2"], "base_model") == "merge"  # and merges onto it
    call = spec["components"]["comp-for-loop-1"]["dag"]["tasks"]["evaluate-language"]
    assert {n for n in call["inputs"]["artifacts"] if n.endswith("_model")} == {
        "base_model", "sft_model", "sft_dpo_model",
    }  # fmt: skip
    loop = spec["components"]["comp-evaluate-language"]["dag"]["tasks"]
    assert {t for t in loop if t.startswith("generate")} == {
        "generate", "generate-2", "generate-3",
    }  # fmt: skip
    assert constant(loop["language-metrics"], "comparisons") == {"sft_dpo": "sft"}


def test_methods_and_control_each_get_a_train_task(tmp_path):
    spec = compiled(tmp_path, "training.methods=[dpo, ppo]", "training.control=shuffled")
    root = spec["root"]["dag"]["tasks"]
    trains = {constant(root[t], "label"): root[t] for t in root if t.startswith("train")}
    assert set(trains) == {"dpo", "ppo", "control"}
    assert "pairs" not in trains["ppo"]["inputs"].get("artifacts", {})
    assert producer(trains["dpo"], "pairs") == "prepare-data"
    assert producer(trains["control"], "pairs") == "control-pairs"
    assert constant(root["control-pairs"], "mode") == "shuffled"
    loop = spec["components"]["comp-evaluate-language"]["dag"]["tasks"]
    assert constant(loop["language-metrics"], "comparisons") == {"control": "dpo"}
