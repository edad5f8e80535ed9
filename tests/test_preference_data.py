"""Preference pairs: formats, prompt-repeat stripping, length filters, seeded split, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace
from transformers import PreTrainedTokenizerFast

from xdetox.components.prepare_data.pair_sources import strip_repeated_prompt
from xdetox.components.prepare_data.preference_data import prepare_pairs
from xdetox.config import DataConfig
from xdetox.errors import ConfigError, DataError
from xdetox.toy import toy_pairs_dir

WORDS = [
    "the",
    "cat",
    "sat",
    "on",
    "a",
    "mat",
    "dog",
    "ran",
    "far",
    "away",
    "extraordinarily",
    "long",
]


def _write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _config(**kwargs) -> DataConfig:
    data = {"eval_fraction": 0.0, "length_filter": {"unit": "chars", "max_length": 1000}}
    data.update(kwargs)
    return DataConfig.model_validate(data)


@pytest.fixture(scope="module")
def word_tokenizer(tmp_path_factory) -> Path:
    """One token per whitespace-separated word: token counts are easy to do by hand."""
    vocab = {"[UNK]": 0, "[PAD]": 1, "[EOS]": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token="[EOS]"
    )
    path = tmp_path_factory.mktemp("tok")
    fast.save_pretrained(path)
    return path


def _pairwise(prompt: str, chosen: str, rejected: str) -> dict:
    # Token-id fields like the real toxicity_pairwise files: they must be ignored.
    return {
        "prompt_text": prompt,
        "unpert_gen_text": chosen,
        "pert_gen_text": rejected,
        "prompt_input_ids": [1, 2, 3],
        "pert_gen_toks": [[4, 5]],
        "unpert_gen_token_ids": [6],
    }


def test_toxicity_pairwise_folder_reads_every_jsonl_sorted(tmp_path):
    src = tmp_path / "toxicity_pairwise"
    _write_jsonl(src / "split_1.jsonl", [_pairwise("p3", " c3", " r3")])
    _write_jsonl(
        src / "split_0.jsonl", [_pairwise("p1", " c1", " r1"), _pairwise("p2", " c2", " r2")]
    )
    (src / "README.txt").write_text("not data")
    out = tmp_path / "out"

    stats = prepare_pairs(src, out, _config(), progress=False)

    train = _read_jsonl(out / "train.jsonl")
    assert [r["pair_id"] for r in train] == [
        "split_0.jsonl:1",
        "split_0.jsonl:2",
        "split_1.jsonl:1",
    ]
    assert train[0] == {
        "pair_id": "split_0.jsonl:1",
        "prompt": "p1",
        "chosen": " c1",
        "rejected": " r1",
    }
    assert (out / "eval.jsonl").read_text() == ""
    assert stats["files"] == ["split_0.jsonl", "split_1.jsonl"]
    assert (stats["n_read"], stats["n_kept"], stats["n_train"], stats["n_eval"]) == (3, 3, 3, 0)
    assert json.loads((out / "stats.json").read_text())["n_read"] == 3


def test_generic_prompt_chosen_rejected_file(tmp_path):
    src = _write_jsonl(
        tmp_path / "pairs.jsonl",
        [{"prompt": "Hi", "chosen": " there", "rejected": " you fool", "extra": 1}],
    )
    stats = prepare_pairs(src, tmp_path / "out", _config(), progress=False)
    (record,) = _read_jsonl(tmp_path / "out" / "train.jsonl")
    assert record == {
        "pair_id": "pairs.jsonl:1",
        "prompt": "Hi",
        "chosen": " there",
        "rejected": " you fool",
    }
    assert stats["prompt_repeated_in_continuation"] is False


def test_repeated_prompt_is_detected_and_stripped_per_pair(tmp_path):
    src = _write_jsonl(
        tmp_path / "p.jsonl",
        [
            _pairwise("The cat", "The cat sat.", "The cat swore."),  # both repeat
            _pairwise("A dog", " ran.", " bit."),  # neither
            _pairwise("My day", "My day was fine.", " was awful."),  # chosen only
            _pairwise("Hello", "<|endoftext|>Hello world", "<|endoftext|>Hello idiot"),  # GPT-2 BOS
        ],
    )
    stats = prepare_pairs(src, tmp_path / "out", _config(), progress=False)
    rows = _read_jsonl(tmp_path / "out" / "train.jsonl")
    assert [(r["chosen"], r["rejected"]) for r in rows] == [
        (" sat.", " swore."),
        (" ran.", " bit."),
        (" was fine.", " was awful."),
        (" world", " idiot"),
    ]
    assert stats["n_chosen_repeated_prompt"] == 3
    assert stats["n_rejected_repeated_prompt"] == 2
    assert stats["prompt_repeated_in_continuation"] is True
    assert "removed" in stats["prompt_repeat_handling"]


def test_strip_repeated_prompt_edge_cases():
    assert strip_repeated_prompt("", "anything") == ("anything", False)
    assert strip_repeated_prompt("ab", "abc") == ("c", True)
    assert strip_repeated_prompt("ab", "xab") == ("xab", False)


def test_answer_empty_after_stripping_is_dropped(tmp_path):
    src = _write_jsonl(
        tmp_path / "p.jsonl",
        [_pairwise("Same", "Same", " bad"), _pairwise("Ok", " good", " bad")],
    )
    stats = prepare_pairs(src, tmp_path / "out", _config(), progress=False)
    assert stats["n_filtered_empty"] == 1
    assert [r["prompt"] for r in _read_jsonl(tmp_path / "out" / "train.jsonl")] == ["Ok"]


def _length_pairs() -> list[dict]:
    # Word tokenizer: one token per word. Counts are prompt + answer, for both answers.
    return [
        # chars: 7 + 10 = 17 and 7 + 4 = 11; tokens: 2 + 3 = 5 and 2 + 1 = 3
        {"prompt": "the cat", "chosen": " sat a mat", "rejected": " ran"},
        # chars: 7 + 21 = 28 and 7 + 4 = 11; tokens: 2 + 2 = 4 and 2 + 1 = 3
        {"prompt": "the dog", "chosen": " extraordinarily long", "rejected": " ran"},
        # chars: 7 + 4 = 11 and 7 + 26 = 33; tokens: 2 + 1 = 3 and 2 + 6 = 8
        {"prompt": "the mat", "chosen": " sat", "rejected": " ran far far far away away"},
    ]


@pytest.mark.parametrize(
    ("unit", "max_length", "kept_prompts"),
    [
        ("chars", 16, []),
        ("chars", 17, ["the cat"]),
        ("chars", 28, ["the cat", "the dog"]),
        ("chars", 33, ["the cat", "the dog", "the mat"]),
        ("tokens", 3, []),
        ("tokens", 4, ["the dog"]),
        ("tokens", 5, ["the cat", "the dog"]),
        ("tokens", 8, ["the cat", "the dog", "the mat"]),
    ],
)
def test_length_filter_counts_match_hand_counts(
    tmp_path, word_tokenizer, unit, max_length, kept_prompts
):
    src = _write_jsonl(tmp_path / "p.jsonl", _length_pairs())
    config = _config(length_filter={"unit": unit, "max_length": max_length})
    out = tmp_path / "out"
    if not kept_prompts:
        with pytest.raises(DataError, match="no pair left"):
            prepare_pairs(src, out, config, tokenizer_source=word_tokenizer, progress=False)
        assert not out.exists()
        return
    stats = prepare_pairs(src, out, config, tokenizer_source=word_tokenizer, progress=False)
    assert [r["prompt"] for r in _read_jsonl(out / "train.jsonl")] == kept_prompts
    assert stats["n_filtered_length"] == 3 - len(kept_prompts)
    assert stats["length_unit"] == unit


def test_token_filter_needs_a_tokenizer(tmp_path):
    src = _write_jsonl(tmp_path / "p.jsonl", _length_pairs())
    config = _config(length_filter={"unit": "tokens", "max_length": 10})
    with pytest.raises(ConfigError, match=r"data\.length_filter\.unit"):
        prepare_pairs(src, tmp_path / "out", config, progress=False)
    assert not (tmp_path / "out").exists()


def test_component_takes_a_tokenizer_source_string(tmp_path, word_tokenizer):
    """The KFP component reads the model source as a string ("" = none), not a Model artifact."""
    from kfp import dsl

    from xdetox.components.prepare_data.component import prepare_data

    src = _write_jsonl(tmp_path / "p.jsonl", _length_pairs())

    def run(unit: str, max_length: int, tokenizer_source: str, name: str) -> Path:
        out = tmp_path / name
        prepare_data.python_func(
            source=str(src), data={"eval_fraction": 0.0,
                                   "length_filter": {"unit": unit, "max_length": max_length}},
            tokenizer_source=tokenizer_source, pairs=dsl.Dataset(uri=str(out)),
            stats=dsl.Metrics(uri=str(tmp_path / f"{name}.metrics")),
        )  # fmt: skip
        return out

    tokens = run("tokens", 4, str(word_tokenizer), "tokens")
    assert [r["prompt"] for r in _read_jsonl(tokens / "train.jsonl")] == ["the dog"]
    chars = run("chars", 28, "", "chars")  # no tokenizer needed to count characters
    assert [r["prompt"] for r in _read_jsonl(chars / "train.jsonl")] == ["the cat", "the dog"]
    with pytest.raises(ConfigError, match=r"data\.length_filter\.unit: 'tokens' needs"):
        run("tokens", 4, "", "none")
    assert not (tmp_path / "none").exists()


def _many_pairs(tmp_path: Path, n: int) -> Path:
    return _write_jsonl(
        tmp_path / "many.jsonl",
        [{"prompt": f"p{i}", "chosen": f" c{i}", "rejected": f" r{i}"} for i in range(n)],
    )


def test_seeded_split_is_deterministic_and_partitions(tmp_path):
    src = _many_pairs(tmp_path, 40)
    a = prepare_pairs(src, tmp_path / "a", _config(eval_fraction=0.1, seed=3), progress=False)
    prepare_pairs(src, tmp_path / "b", _config(eval_fraction=0.1, seed=3), progress=False)
    prepare_pairs(src, tmp_path / "c", _config(eval_fraction=0.1, seed=4), progress=False)
    for name in ("train.jsonl", "eval.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    eval_a = {r["pair_id"] for r in _read_jsonl(tmp_path / "a" / "eval.jsonl")}
    train_a = {r["pair_id"] for r in _read_jsonl(tmp_path / "a" / "train.jsonl")}
    eval_c = {r["pair_id"] for r in _read_jsonl(tmp_path / "c" / "eval.jsonl")}
    assert (a["n_train"], a["n_eval"]) == (36, 4)
    assert len(eval_a) == 4 and not eval_a & train_a and len(eval_a | train_a) == 40
    assert eval_a != eval_c


@pytest.mark.parametrize(("n", "fraction", "n_eval"), [(3, 0.05, 1), (2, 0.9, 1), (1, 0.5, 0)])
def test_eval_split_keeps_one_eval_and_one_train_pair(tmp_path, n, fraction, n_eval):
    stats = prepare_pairs(
        _many_pairs(tmp_path, n), tmp_path / "out", _config(eval_fraction=fraction), progress=False
    )
    assert (stats["n_train"], stats["n_eval"]) == (n - n_eval, n_eval)


def test_max_pairs_subsamples_with_the_seed(tmp_path):
    src = _many_pairs(tmp_path, 40)
    s1 = prepare_pairs(src, tmp_path / "a", _config(max_pairs=10, seed=1), progress=False)
    prepare_pairs(src, tmp_path / "b", _config(max_pairs=10, seed=1), progress=False)
    ids = [r["pair_id"] for r in _read_jsonl(tmp_path / "a" / "train.jsonl")]
    assert len(ids) == 10 and ids == sorted(ids, key=lambda x: int(x.split(":")[1]))
    assert (tmp_path / "a" / "train.jsonl").read_bytes() == (
        tmp_path / "b" / "train.jsonl"
    ).read_bytes()
    assert (s1["n_after_filter"], s1["n_subsampled_out"], s1["n_kept"]) == (40, 30, 10)


def test_toy_source_uses_the_package_toy_pairs(tmp_path):
    toy_dir = toy_pairs_dir()
    lines = sum(len(_read_jsonl(p)) for p in sorted(toy_dir.glob("*.jsonl")))
    stats = prepare_pairs("toy", tmp_path / "out", _config(), progress=False)
    assert stats["source"] == str(toy_dir) and stats["n_read"] == lines > 0
    # A folder that happens to be called "toy" is a folder, not the toy data.
    _write_jsonl(tmp_path / "toy" / "split_0.jsonl", [_pairwise("x", " good", " bad")])
    local = prepare_pairs(tmp_path / "toy", tmp_path / "local", _config(), progress=False)
    assert local["n_read"] == 1


def _assert_no_output(out: Path) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def test_malformed_line_names_file_and_line_and_leaves_no_output(tmp_path):
    src = tmp_path / "toxicity_pairwise"
    _write_jsonl(src / "split_0.jsonl", [_pairwise("a", " b", " c")])
    path = src / "split_1.jsonl"
    path.write_text(json.dumps(_pairwise("a", " b", " c")) + "\n\n{not json\n")
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"split_1\.jsonl:3: not valid JSON"):
        prepare_pairs(src, out, _config(), progress=False)
    _assert_no_output(out)


def test_missing_field_names_file_line_and_field(tmp_path):
    src = _write_jsonl(
        tmp_path / "p.jsonl",
        [_pairwise("a", " b", " c"), {"prompt_text": "a", "unpert_gen_text": " b"}],
    )
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"p\.jsonl:2: missing field\(s\) 'pert_gen_text'"):
        prepare_pairs(src, out, _config(), progress=False)
    _assert_no_output(out)


def test_non_string_field_and_unknown_format_are_errors(tmp_path):
    src = _write_jsonl(tmp_path / "p.jsonl", [{"prompt": "a", "chosen": 3, "rejected": "c"}])
    with pytest.raises(DataError, match=r"p\.jsonl:1: field 'chosen' must be a string"):
        prepare_pairs(src, tmp_path / "out", _config(), progress=False)
    src = _write_jsonl(tmp_path / "q.jsonl", [{"text": "a"}])
    with pytest.raises(DataError, match=r"q\.jsonl:1: unknown preference format"):
        prepare_pairs(src, tmp_path / "out", _config(), progress=False)
    _assert_no_output(tmp_path / "out")


def test_missing_source_and_empty_folder_are_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        prepare_pairs(tmp_path / "nope", tmp_path / "out", _config(), progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no \*\.jsonl"):
        prepare_pairs(tmp_path / "empty", tmp_path / "out", _config(), progress=False)
