"""The XG reference's training protocol where xdetox reproduces it: pairs tokenized as TRL 0.8.6's
``DPOTrainer.tokenize_row`` did (``training.tokenization: trl-0.8.6``) and fp16 mixed precision
on fp32 weights (``training.fp16``).

TRL 0.8.6 (tag v0.8.6, ``trl/trainer/dpo_trainer.py``), decoder-only: BOS before the prompt,
EOS after each answer; only when prompt + longer answer exceed ``max_length`` is the prompt cut
to its last ``max_prompt_length`` tokens (``truncation_mode`` ``keep_end``, its default), and if
still too long the answers to ``max_length - max_prompt_length``. Expected ids are worked out by
hand on a word-level tokenizer (one id per word).
"""

from __future__ import annotations

import logging
import math
import re

import pytest
import torch
from tiny_dpo import CHOSEN, PROMPTS, REJECTED, fast_dpo_config, save_dpo_base
from tiny_models import word_tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer

from xdetox.components.train.dpo.dpo_arguments import build_dpo_config, mixed_precision
from xdetox.components.train.dpo.dpo_dataset import (
    build_pair_dataset,
    is_tokenized,
    tokenize_pair_trl_0_8_6,
)
from xdetox.config import TrainingConfig, load_config
from xdetox.errors import ConfigError, DataError

BOS, EOS = 0, 1  # ids of <s> and </s>; word wN has id N + 3 (see _tokenizer)


def _tokenizer(**special):
    words = ["<s>", "</s>", "[UNK]"] + [f"w{i}" for i in range(20)]
    tokens = {"unk_token": "[UNK]", "bos_token": "<s>", "eos_token": "</s>", **special}
    return word_tokenizer(words, **{k: v for k, v in tokens.items() if v is not None})


def _w(*numbers: int) -> list[int]:
    return [n + 3 for n in numbers]


def _text(*numbers: int) -> str:
    return " ".join(f"w{n}" for n in numbers)


def _trl_086(**overrides) -> TrainingConfig:
    return TrainingConfig(
        **{"tokenization": "trl-0.8.6", "max_length": 10, "max_prompt_length": 4, **overrides}
    )


def test_short_pair_gets_bos_and_eos_and_is_not_cut():
    # prompt 3 words + BOS = 4; answers 2 + EOS = 3 and 3 + EOS = 4: 4 + 4 = 8 <= 10
    record = {
        "prompt": _text(1, 2, 3),
        "chosen": " " + _text(4, 5),
        "rejected": " " + _text(6, 7, 8),
    }
    dataset, counts = build_pair_dataset([record], _tokenizer(), _trl_086())
    assert dataset.to_list() == [
        {
            "prompt_ids": [BOS, *_w(1, 2, 3)],
            "chosen_ids": [*_w(4, 5), EOS],
            "rejected_ids": [*_w(6, 7, 8), EOS],
        }
    ]
    assert counts == {
        "n_prompts_truncated": 0,
        "n_answers_truncated": 0,
        "n_prompt_split_differs": 0,
    }


def test_long_pair_keeps_the_prompt_end_and_cuts_the_answers():
    # prompt 6 words + BOS = 7, longer answer 7 + EOS = 8: 15 > 10, so the prompt keeps its last
    # 4 ids (w3..w6; BOS is gone); 4 + 8 = 12 > 10, so each answer keeps its first 10 - 4 = 6 ids
    # (the chosen one loses w13 and EOS; the rejected one, 3 ids, is whole)
    record = {
        "prompt": _text(1, 2, 3, 4, 5, 6),
        "chosen": " " + _text(7, 8, 9, 10, 11, 12, 13),
        "rejected": " " + _text(14, 15),
    }
    dataset, counts = build_pair_dataset([record], _tokenizer(), _trl_086())
    (row,) = dataset.to_list()
    assert row["prompt_ids"] == _w(3, 4, 5, 6)
    assert row["chosen_ids"] == _w(7, 8, 9, 10, 11, 12)
    assert row["rejected_ids"] == [*_w(14, 15), EOS]
    assert counts == {
        "n_prompts_truncated": 1,
        "n_answers_truncated": 1,
        "n_prompt_split_differs": 0,
    }


def test_prompt_over_max_prompt_length_stays_whole_when_the_pair_fits():
    # prompt 6 words + BOS = 7 > max_prompt_length 4, answers 1 + EOS = 2: 9 <= 10, no cut.
    # xdetox's own tokenization cuts every prompt to 4 tokens and adds no BOS.
    record = {"prompt": _text(1, 2, 3, 4, 5, 6), "chosen": " w7", "rejected": " w8"}
    dataset, counts = build_pair_dataset([record], _tokenizer(), _trl_086())
    assert dataset[0]["prompt_ids"] == [BOS, *_w(1, 2, 3, 4, 5, 6)]
    assert counts["n_prompts_truncated"] == 0
    ours, ours_counts = build_pair_dataset(
        [record], _tokenizer(), TrainingConfig(max_length=10, max_prompt_length=4)
    )
    assert ours.to_list() == [{"prompt": " w3 w4 w5 w6", "chosen": " w7", "rejected": " w8"}]
    assert ours_counts == {"n_prompts_truncated": 1} and not is_tokenized(ours)


def test_merged_boundary_token_goes_with_the_answer():
    """build_tokenized_answer: when the prompt's ids are not a prefix of prompt + answer's, the
    prompt keeps one id fewer and the merged id starts the answer."""
    prompt = [10, 11, 12]
    both = tokenize_pair_trl_0_8_6(
        prompt, [10, 11, 99, 13], [10, 11, 98, 14],
        bos_token_id=BOS, eos_token_id=EOS, max_length=20, max_prompt_length=8,
    )  # fmt: skip
    assert (both.prompt_ids, both.chosen_ids, both.rejected_ids) == (
        [BOS, 10, 11],
        [99, 13, EOS],
        [98, 14, EOS],
    )
    assert not both.prompt_split_differs
    # Only the chosen answer merged: TRL 0.8.6 kept [BOS, 10, 11] and [BOS, 10, 11, 12] as the
    # two prompts; one prompt per pair in TRL 1.16 puts 12 at the start of the rejected answer.
    one = tokenize_pair_trl_0_8_6(
        prompt, [10, 11, 99, 13], [10, 11, 12, 14],
        bos_token_id=BOS, eos_token_id=EOS, max_length=20, max_prompt_length=8,
    )  # fmt: skip
    assert (one.prompt_ids, one.chosen_ids, one.rejected_ids) == (
        [BOS, 10, 11],
        [99, 13, EOS],
        [12, 14, EOS],
    )
    assert one.prompt_split_differs


def test_prompts_split_more_than_one_token_apart_are_refused_as_trl_did():
    # prompt + rejected re-tokenized the prompt's start too: its prompt part [95, 96] differs from
    # the chosen one's [10, 11, 12] in two ids, which TRL 0.8.6 refused ("might only differ on the
    # last token")
    with pytest.raises(DataError, match="pair 3: chosen and rejected split"):
        tokenize_pair_trl_0_8_6(
            [10, 11, 12], [10, 11, 12, 13], [95, 96, 97, 98],
            bos_token_id=BOS, eos_token_id=EOS, max_length=20, max_prompt_length=8, where="pair 3",
        )  # fmt: skip


def test_tokenizer_without_bos_is_one_line_naming_the_key():
    record = {"prompt": "w1", "chosen": " w2", "rejected": " w3"}
    with pytest.raises(ConfigError, match=r"^training\.tokenization: ") as info:
        build_pair_dataset([record], _tokenizer(bos_token=None), _trl_086())
    assert "\n" not in str(info.value)


def test_tokenization_is_checked_and_defaults_to_xdetox():
    assert TrainingConfig().tokenization == "xdetox"
    assert load_config(None, ["training.tokenization=trl-0.8.6"]).training.tokenization == (
        "trl-0.8.6"
    )
    with pytest.raises(ConfigError, match=r"training\.tokenization") as info:
        load_config(None, ["training.tokenization=trl-0.9"])
    assert "\n" not in str(info.value)


def test_trainer_trains_on_the_ids_built_here(tmp_path):
    """TRL 1.16 gets the ids as they are (not tokenized again) and its collator lays out
    prompt + answer with the loss on the answer only."""
    from xdetox.components.train.dpo.train_dpo import PairDPOTrainer

    base = save_dpo_base(tmp_path / "base")
    tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.pad_token = tokenizer.eos_token
    config = fast_dpo_config(tokenization="trl-0.8.6", max_steps=1)
    records = [{"prompt": p, "chosen": CHOSEN, "rejected": REJECTED} for p in PROMPTS]
    dataset, _ = build_pair_dataset(records, tokenizer, config)
    first = dataset[0]
    bos = tokenizer.bos_token_id
    assert first["prompt_ids"] == [bos, *tokenizer(PROMPTS[0])["input_ids"]]
    assert first["chosen_ids"][-1] == tokenizer.eos_token_id

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    args = build_dpo_config(config, tmp_path / "ckpt", has_eval=False, progress=False)
    trainer = PairDPOTrainer(
        model=model, ref_model=None, args=args, train_dataset=dataset, processing_class=tokenizer
    )
    assert trainer.train_dataset[0] == first  # untouched by TRL's own tokenization
    batch = trainer.data_collator([first])
    chosen_row = [*first["prompt_ids"], *first["chosen_ids"]]
    assert batch["input_ids"][0, : len(chosen_row)].tolist() == chosen_row
    n_prompt = len(first["prompt_ids"])
    mask = batch["completion_mask"][0, : len(chosen_row)].tolist()
    assert mask == [0] * n_prompt + [1] * len(first["chosen_ids"])


@pytest.mark.slow
def test_dpo_run_with_trl_0_8_6_tokenization(tmp_path):
    import json

    from xdetox.components.train.dpo.train_dpo import train_dpo

    base = save_dpo_base(tmp_path / "base")
    data = tmp_path / "pairs"
    data.mkdir()
    records = [{"prompt": p, "chosen": CHOSEN, "rejected": REJECTED} for p in PROMPTS * 2]
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    config = fast_dpo_config(
        tokenization="trl-0.8.6", max_steps=2, max_length=8, max_prompt_length=4
    )
    summary = train_dpo(base, data, tmp_path / "out", config, progress=False)
    _, counts = build_pair_dataset(records, AutoTokenizer.from_pretrained(base), config)
    assert summary["steps"] == 2 and math.isfinite(summary["train_loss"])
    # max_length 8 is short for these pairs: the summary reports what was cut
    assert counts["n_answers_truncated"] > 0
    assert summary["n_prompts_truncated"] == counts["n_prompts_truncated"]
    assert summary["n_answers_truncated"] == counts["n_answers_truncated"]


# -- precision -----------------------------------------------------------------------------------


def test_fp16_reaches_trl_on_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert mixed_precision(TrainingConfig(fp16=True)) == (False, True)
    # set by name, fp16 also wins over the bf16 that qlora picks when bf16 is unset
    assert mixed_precision(TrainingConfig(fp16=True, mode="qlora")) == (False, True)
    assert mixed_precision(TrainingConfig(mode="qlora")) == (True, False)
    assert mixed_precision(TrainingConfig()) == (False, False)


def test_fp16_on_a_cpu_falls_back_to_fp32_with_a_warning(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.WARNING):
        args = build_dpo_config(TrainingConfig(fp16=True), tmp_path, has_eval=False, progress=False)
    assert not args.fp16 and not args.bf16
    assert any("training.fp16" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fp16": True, "bf16": True}, "training.fp16: fp16 and training.bf16 cannot both"),
        ({"trl": {"fp16": True}}, "training.trl.fp16: set training.fp16 instead"),
    ],
)
def test_precision_errors_are_one_line_naming_the_key(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        build_dpo_config(TrainingConfig(**kwargs), tmp_path, has_eval=False, progress=False)
    assert "\n" not in str(info.value)
