"""The XG reference's pair protocol where xdetox reproduces it: the character length filter
(``data.length_filter.unit: chars``) and the train/eval split of Hugging Face ``datasets``
(``data.split_method: datasets``).

Reference: Li, Yong & Bach 2024 (arXiv:2406.16235), BatsResearch/cross-lingual-detox
``xg/training/dpo.py``: keep a pair when ``len(prompt) + len(chosen) <= 256 and len(prompt) +
len(rejected) <= 256`` (characters, fields as read), then ``train_test_split(test_size=0.05,
seed=0)`` and evaluate on its ``"test"`` split. Expected values below are counted by hand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset

from xdetox.components.prepare_data.preference_data import datasets_split, prepare_pairs
from xdetox.config import DataConfig, load_config
from xdetox.errors import ConfigError
from xdetox.files import read_jsonl as _read_jsonl
from xdetox.files import write_jsonl


def _write_jsonl(path: Path, records: list[dict]) -> Path:
    write_jsonl(path, records)
    return path


def _pairwise(prompt: str, chosen: str, rejected: str) -> dict:
    """A toxicity_pairwise line: prompt_text, unpert_gen_text (chosen), pert_gen_text."""
    return {"prompt_text": prompt, "unpert_gen_text": chosen, "pert_gen_text": rejected}


def _config(**kwargs) -> DataConfig:
    data = {"eval_fraction": 0.0, "length_filter": {"unit": "chars", "max_length": 256}}
    data.update(kwargs)
    return DataConfig.model_validate(data)


# -- character filter ----------------------------------------------------------------------------

P100 = "p" * 99 + "?"  # a 100-character prompt


def _filter_pairs() -> list[dict]:
    return [
        # line 1: 100 + 156 = 256 and 100 + 100 = 200: kept (<= 256, the exact boundary)
        _pairwise(P100, " " + "c" * 155, " " + "r" * 99),
        # line 2: 100 + 157 = 257 and 100 + 10 = 110: dropped by the chosen answer alone
        _pairwise(P100, " " + "c" * 156, " " + "r" * 9),
        # line 3: 100 + 10 = 110 and 100 + 157 = 257: dropped by the rejected answer alone
        _pairwise(P100, " " + "c" * 9, " " + "r" * 156),
        # line 4: the chosen answer repeats the prompt: counted as read, 100 + (100 + 60) = 260:
        # dropped (it would be 160 with the prompt cut off, which the reference did not do)
        _pairwise(P100, P100 + " " + "c" * 59, " " + "r" * 9),
        # line 5: 100 + 156 = 256 characters (code points) but 356 UTF-8 bytes: kept
        _pairwise("ü" * 100, " " + "c" * 155, " " + "r" * 9),
        # line 6: 100 + 155 = 255 and 100 + 156 = 256: kept
        _pairwise(P100, " " + "c" * 154, " " + "r" * 155),
    ]


def test_char_filter_is_the_reference_rule_on_both_answers(tmp_path):
    src = _write_jsonl(tmp_path / "split_0.jsonl", _filter_pairs())
    stats = prepare_pairs(src, tmp_path / "out", _config(), progress=False)
    rows = _read_jsonl(tmp_path / "out" / "train.jsonl")
    assert [r["pair_id"] for r in rows] == ["split_0.jsonl:1", "split_0.jsonl:5", "split_0.jsonl:6"]
    assert (stats["n_filtered_length"], stats["n_after_filter"]) == (3, 3)
    # unpert_gen_text is the chosen answer, pert_gen_text the rejected one
    assert rows[0]["chosen"] == " " + "c" * 155 and rows[0]["rejected"] == " " + "r" * 99


@pytest.mark.parametrize(("max_length", "kept"), [(256, ["p.jsonl:1", "p.jsonl:2"]),
                                               (255, ["p.jsonl:2"])])  # fmt: skip
def test_char_filter_keeps_exactly_max_length(tmp_path, max_length, kept):
    pairs = [
        _pairwise(P100, " " + "c" * 155, " " + "r" * 155),  # 256 and 256
        _pairwise(P100, " " + "c" * 154, " " + "r" * 9),  # 255 and 110
    ]
    src = _write_jsonl(tmp_path / "p.jsonl", pairs)
    config = _config(length_filter={"unit": "chars", "max_length": max_length})
    prepare_pairs(src, tmp_path / "out", config, progress=False)
    assert [r["pair_id"] for r in _read_jsonl(tmp_path / "out" / "train.jsonl")] == kept


# -- the datasets split --------------------------------------------------------------------------

# np.random.default_rng(0).permutation(10), PCG64's stream (pinned here; asserted below).
PERMUTATION_10_SEED_0 = [4, 6, 2, 7, 3, 5, 9, 0, 8, 1]


def _numbered(n: int) -> list[dict]:
    return [{"prompt": f"p{i}", "chosen": f" c{i}", "rejected": f" r{i}"} for i in range(n)]


def test_hand_checked_tiny_split(tmp_path):
    """10 pairs, test_size 0.05: ceil(0.5) = 1 eval pair, the permutation's first (position 4);
    the 9 others train, in the permutation's order."""
    assert np.random.default_rng(0).permutation(10).tolist() == PERMUTATION_10_SEED_0
    src = _write_jsonl(tmp_path / "p.jsonl", _numbered(10))
    config = _config(eval_fraction=0.05, seed=0, split_method="datasets")
    stats = prepare_pairs(src, tmp_path / "out", config, progress=False)
    evals = _read_jsonl(tmp_path / "out" / "eval.jsonl")
    train = _read_jsonl(tmp_path / "out" / "train.jsonl")
    assert [r["prompt"] for r in evals] == ["p4"]
    assert [r["prompt"] for r in train] == [f"p{i}" for i in [6, 2, 7, 3, 5, 9, 0, 8, 1]]
    assert (stats["n_train"], stats["n_eval"], stats["split_method"]) == (9, 1, "datasets")


@pytest.mark.parametrize(
    ("n", "fraction", "n_eval_datasets", "n_eval_xdetox"),
    [
        (50, 0.05, 3, 2),  # ceil(2.5) = 3; round(2.5) = 2 (to even)
        (21, 0.05, 2, 1),  # ceil(1.05) = 2; round(1.05) = 1
        (40, 0.1, 4, 4),  # ceil(4.0) = 4 = round(4.0)
        (3, 0.05, 1, 1),  # ceil(0.15) = 1; xdetox's floor of one eval pair
    ],
)
def test_eval_count_is_ceil_for_datasets_and_round_for_xdetox(
    tmp_path, n, fraction, n_eval_datasets, n_eval_xdetox
):
    src = _write_jsonl(tmp_path / "p.jsonl", _numbered(n))
    for method, expected in (("datasets", n_eval_datasets), ("xdetox", n_eval_xdetox)):
        config = _config(eval_fraction=fraction, split_method=method)
        stats = prepare_pairs(src, tmp_path / method, config, progress=False)
        assert (stats["n_eval"], stats["n_train"]) == (expected, n - expected), method


def test_split_is_what_datasets_gives_on_the_filtered_pairs(tmp_path):
    """As the reference: its filtered pairs as a ``Dataset``, ``train_test_split(test_size=0.05,
    seed=0)``; "test" is our eval file, "train" our train file, each in that order."""
    pairs = [
        _pairwise(f"prompt {i}", " fine" * (1 + i % 7), " rude" * (i % 5) + " !")
        for i in range(1, 121)
    ]
    pairs[9] = _pairwise("x" * 200, " " + "c" * 60, " r")  # 261 characters: filtered out
    src = tmp_path / "toxicity_pairwise"
    _write_jsonl(src / "split_1.jsonl", pairs[60:])
    _write_jsonl(src / "split_0.jsonl", pairs[:60])  # files are read in name order
    config = _config(eval_fraction=0.05, seed=0, split_method="datasets")
    prepare_pairs(src, tmp_path / "out", config, progress=False)

    fields = {"prompt": "prompt_text", "chosen": "unpert_gen_text", "rejected": "pert_gen_text"}
    ordered = [{k: p[v] for k, v in fields.items()} for p in pairs if p["prompt_text"][0] != "x"]
    reference = Dataset.from_list(ordered).train_test_split(test_size=0.05, seed=0)
    for ours, theirs in (("eval.jsonl", "test"), ("train.jsonl", "train")):
        rows = _read_jsonl(tmp_path / "out" / ours)
        got = [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows]
        assert got == reference[theirs].to_list(), ours
    assert len(reference["test"]) == 6  # ceil(0.05 * 119) = ceil(5.95)


def test_seed_feeds_the_datasets_split():
    train, evals = datasets_split(10, 0.05, seed=0)
    assert (evals, train) == ([4], [6, 2, 7, 3, 5, 9, 0, 8, 1])
    other_train, other_eval = datasets_split(10, 0.3, seed=1)
    permutation = np.random.default_rng(1).permutation(10).tolist()
    assert (other_eval, other_train) == (permutation[:3], permutation[3:])
    assert datasets_split(4, 0.0, seed=0) == ([0, 1, 2, 3], [])  # no eval split asked


def test_pair_with_an_empty_answer_is_drawn_then_dropped(tmp_path):
    """The reference split the pairs its filter kept, empty answers included: the pair at
    position 4 (the one eval pair for seed 0) only repeats its prompt, so it is drawn and then
    dropped; the other nine keep the reference's positions."""
    pairs = [_pairwise(f"p{i}", f" c{i}", f" r{i}") for i in range(10)]
    pairs[4] = _pairwise("p4", "p4", " r4")  # the answer is the prompt: empty once cut off
    src = _write_jsonl(tmp_path / "p.jsonl", pairs)
    config = _config(eval_fraction=0.05, split_method="datasets")
    stats = prepare_pairs(src, tmp_path / "out", config, progress=False)
    assert _read_jsonl(tmp_path / "out" / "eval.jsonl") == []
    train = [r["prompt"] for r in _read_jsonl(tmp_path / "out" / "train.jsonl")]
    assert train == [f"p{i}" for i in [6, 2, 7, 3, 5, 9, 0, 8, 1]]
    assert (stats["n_filtered_empty"], stats["n_kept"], stats["n_eval"]) == (1, 9, 0)
    # xdetox draws among the nine usable pairs only
    xdetox = prepare_pairs(src, tmp_path / "x", _config(eval_fraction=0.05), progress=False)
    assert (xdetox["n_train"], xdetox["n_eval"]) == (8, 1)


def test_datasets_split_that_leaves_no_training_pair_is_one_line_naming_the_key(tmp_path):
    src = _write_jsonl(tmp_path / "p.jsonl", _numbered(1))
    config = _config(eval_fraction=0.05, split_method="datasets")
    with pytest.raises(ConfigError, match=r"^data\.split_method: ") as info:
        prepare_pairs(src, tmp_path / "out", config, progress=False)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_split_method_is_checked_and_defaults_to_xdetox():
    assert DataConfig().split_method == "xdetox"
    assert load_config(None, ["data.split_method=datasets"]).data.split_method == "datasets"
    with pytest.raises(ConfigError, match=r"data\.split_method") as info:
        load_config(None, ["data.split_method=sklearn"])
    assert "\n" not in str(info.value)


# -- repeated prompt ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "chosen"),
    [("strip", " and then it rained."), ("keep", "It was late and then it rained.")],
)
def test_repeated_prompt_is_stripped_or_kept_as_read(tmp_path, mode, chosen):
    """``keep`` trains on the answer as read (the reference); ``strip`` on the continuation."""
    prompt = "It was late"
    src = _write_jsonl(
        tmp_path / "split_0.jsonl",
        [_pairwise(prompt, prompt + " and then it rained.", " you idiot.")],
    )
    stats = prepare_pairs(src, tmp_path / "out", _config(repeated_prompt=mode))
    record = _read_jsonl(tmp_path / "out" / "train.jsonl")[0]
    assert record["chosen"] == chosen
    assert record["rejected"] == " you idiot."
    assert stats["n_chosen_repeated_prompt"] == 1 and stats["n_rejected_repeated_prompt"] == 0
    assert ("kept as read" in stats["prompt_repeat_handling"]) == (mode == "keep")


def test_repeated_prompt_mode_is_checked():
    with pytest.raises(ConfigError, match=r"data\.repeated_prompt"):
        load_config(None, ["data.repeated_prompt=drop"])


def test_prepare_data_with_the_xg_recipe_keeps_the_reference_pairs_and_split(tmp_path):
    """``xdetox prepare-data --config xg-mgpt.yaml``: the reference's filter (characters, both
    answers, fields as read: an answer that repeats its prompt counts in full and is trained on
    as read) and its ``datasets`` split, computed here the reference's way with ``datasets``."""
    from xdetox.cli.main import main

    pairs = [
        _pairwise(f"prompt {i}", " fine" * (1 + i % 7), " rude" * (i % 5) + " !")
        for i in range(1, 81)
    ]
    pairs[3] = _pairwise("x" * 200, " " + "c" * 60, " r")  # 261 characters: dropped
    pairs[7] = _pairwise("P" * 100, "P" * 100 + " c" * 30, " r")  # 260 as read: dropped
    pairs[11] = _pairwise("Q" * 50, "Q" * 50 + " ok", " bad")  # repeats its prompt: kept as read
    src = tmp_path / "toxicity_pairwise"
    _write_jsonl(src / "split_0.jsonl", pairs[:40])
    _write_jsonl(src / "split_1.jsonl", pairs[40:])
    out = tmp_path / "out"
    argv = ["prepare-data", "--config", "xg-mgpt.yaml", "--data", str(src), "--output", str(out)]
    assert main(argv) == 0

    reference = Dataset.from_list(pairs).filter(
        lambda p: len(p["prompt_text"]) + len(p["unpert_gen_text"]) <= 256
        and len(p["prompt_text"]) + len(p["pert_gen_text"]) <= 256
    )
    assert len(reference) == 78
    split = reference.train_test_split(test_size=0.05, seed=0)
    for ours, theirs in (("eval.jsonl", "test"), ("train.jsonl", "train")):
        got = [(r["prompt"], r["chosen"], r["rejected"]) for r in _read_jsonl(out / ours)]
        expected = [
            (p["prompt_text"], p["unpert_gen_text"], p["pert_gen_text"]) for p in split[theirs]
        ]
        assert got == expected, ours
    assert len(split["test"]) == 4  # ceil(0.05 * 78) = ceil(3.9)
