"""SFT with TRL's SFTTrainer on a tiny random GPT-2 (prompt/completion, text, messages, pairs),
one-line data errors, and the SFT → DPO recipe: SFT merged, DPO referenced on the SFT model,
a full model out, resumable stage by stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedTokenizerFast,
    TrainerCallback,
)

from xdetox.components.train.sft.sft_data import load_sft_splits, read_sft_file
from xdetox.components.train.sft.sft_then_dpo import SFT_LOG, train_sft_then_dpo
from xdetox.components.train.sft.train_sft import build_sft_config, train_sft
from xdetox.config import TrainingConfig
from xdetox.errors import ConfigError, DataError

WORDS = ["the", "cat", "dog", "sat", "ran", "on", "mat", "nice", "kind", "rude", "bad", "words",
         "user", "assistant", "said", ":"]  # fmt: skip
EOS = "<|endoftext|>"
PROMPTS = ["the cat sat on", "the dog ran on", "the cat said", "the dog said"]
CHOSEN, REJECTED = " nice kind words", " rude bad words"
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}assistant : {% endif %}"
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _tokenizer(chat_template: str | None = None) -> PreTrainedTokenizerFast:
    vocab = {EOS: 0, **{w: i + 1 for i, w in enumerate(WORDS)}, "[UNK]": len(WORDS) + 1}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token=EOS, pad_token=EOS, unk_token="[UNK]"
    )
    if chat_template:
        tok.chat_template = chat_template
    return tok


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sft")
    torch.manual_seed(0)
    for name, template in (("base", None), ("chat", CHAT_TEMPLATE)):
        tok = _tokenizer(template)
        tok.save_pretrained(root / name)
        config = GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=64,
                            vocab_size=len(tok), initializer_range=0.2)  # fmt: skip
        GPT2LMHeadModel(config).save_pretrained(root / name)
    pairs = root / "pairs"
    pairs.mkdir()
    rows = [{"prompt": PROMPTS[i % 4], "chosen": CHOSEN, "rejected": REJECTED} for i in range(16)]
    (pairs / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:12]))
    (pairs / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[12:]))
    return root


def _config(**kwargs) -> TrainingConfig:
    sft = {"learning_rate": 5e-3, "max_steps": 12, "logging_steps": 1, "save_steps": 6,
           "eval_steps": 6, "per_device_train_batch_size": 4, "max_length": 32}  # fmt: skip
    sft.update(kwargs.pop("sft", {}))
    data = {
        "method": "sft_dpo",
        "learning_rate": 5e-3,
        "warmup_steps": 0,
        "optim": "adamw_torch",
        "per_device_train_batch_size": 4,
        "max_steps": 6,
        "save_steps": 3,
        "eval_steps": 3,
        "logging_steps": 1,
        "early_stopping_patience": 0,
        "gradient_checkpointing": False,
        "max_prompt_length": 8,
        "max_length": 32,
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
        "sft": sft,
        **kwargs,
    }
    return TrainingConfig.model_validate(data)


def _completion_logp(model, tokenizer, prompt: str, completion: str) -> float:
    prompt_ids = tokenizer(prompt)["input_ids"]
    ids = tokenizer(prompt + completion)["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0, :-1], dim=-1)
    return sum(logp[i - 1, ids[i]].item() for i in range(len(prompt_ids), len(ids)))


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# -- data ---------------------------------------------------------------------------------------


def test_formats_are_read_and_pairs_give_their_chosen_side(root, tmp_path):
    train, evals, fmt = load_sft_splits(root / "pairs")
    assert fmt == "pairs" and len(train) == 12 and len(evals) == 4
    assert train[0] == {"prompt": PROMPTS[0], "completion": CHOSEN}
    text = _write(tmp_path / "t.jsonl", [{"text": "the cat sat", "id": 1}])
    assert read_sft_file(text) == ([{"text": "the cat sat"}], "text")
    chat = _write(tmp_path / "c.jsonl", [{"messages": [{"role": "user", "content": "hi"}]}])
    assert read_sft_file(chat)[1] == "messages"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"prompt": "a", "completion": "b"}, {"text": "c"}],
         r"bad\.jsonl:2: line is in the 'text' format, earlier lines in 'prompt_completion'"),
        ([{"prompt": "a"}], r"bad\.jsonl:1: expected 'prompt'\+'completion', 'text'"),
        ([{"prompt": "a", "completion": 3}], r"bad\.jsonl:1: field 'completion' must be a string"),
        ([{"text": "  "}], r"bad\.jsonl:1: field 'text' is empty"),
        ([{"messages": [{"role": "user"}]}],
         r"bad\.jsonl:1: messages\[0\] must be an object with string 'role' and 'content'"),
    ],
)  # fmt: skip
def test_bad_lines_name_file_and_line_and_leave_no_output(root, tmp_path, rows, message):
    bad = _write(tmp_path / "bad.jsonl", rows)
    out = tmp_path / "out"
    with pytest.raises(DataError, match=message):
        train_sft(root / "base", bad, out, _config(), progress=False)
    assert not out.exists() and not (tmp_path / "out.checkpoints").exists()


def test_messages_need_a_chat_template(root, tmp_path):
    chat = _write(tmp_path / "c.jsonl", [{"messages": [{"role": "user", "content": "the cat"}]}])
    with pytest.raises(DataError, match=r"base: messages data needs a tokenizer with a chat"):
        train_sft(root / "base", chat, tmp_path / "out", _config(), progress=False)
    assert not (tmp_path / "out").exists()


def test_sft_config_maps_the_section(tmp_path):
    config = _config(sft={"learning_rate": 1e-4, "max_length": 48, "optim": "rmsprop"})
    args = build_sft_config(config, tmp_path, has_eval=True, data_format="pairs", progress=False)
    assert (args.learning_rate, args.max_length, args.optim) == (1e-4, 48, "rmsprop")
    assert args.completion_only_loss is True and args.eval_strategy == "steps"
    text_args = build_sft_config(config, tmp_path, has_eval=False, data_format="text")
    assert text_args.completion_only_loss is None and text_args.eval_strategy == "no"
    with pytest.raises(ConfigError, match=r"training\.sft\.optim: unknown optimizer"):
        build_sft_config(_config(sft={"optim": "nope"}), tmp_path, has_eval=False,
                         data_format="text")  # fmt: skip


# -- training -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_sft_on_pairs_learns_the_chosen_completion(root, tmp_path):
    out = tmp_path / "sft"
    summary = train_sft(root / "base", root / "pairs", out, _config(), progress=False)
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json",
                 "training_log.jsonl", "train_summary.json", "base_config.json"):  # fmt: skip
        assert (out / name).is_file(), name
    assert not (tmp_path / "sft.checkpoints").exists()
    assert summary["steps"] == 12 and summary["n_train_examples"] == 12
    assert summary["n_eval_examples"] == 4 and "eval_loss" in summary
    log = [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines()]
    losses = [e["loss"] for e in log if "loss" in e]
    assert losses[-1] < losses[0]
    tok = AutoTokenizer.from_pretrained(out)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(root / "base"), out)
    with model.disable_adapter():
        before = _completion_logp(model, tok, PROMPTS[0], CHOSEN)
    after = _completion_logp(model, tok, PROMPTS[0], CHOSEN)
    assert after > before + 1.0


@pytest.mark.slow
def test_text_and_messages_formats_train(root, tmp_path):
    text = _write(tmp_path / "t.jsonl", [{"text": p + CHOSEN} for p in PROMPTS])
    summary = train_sft(root / "base", text, tmp_path / "text", _config(sft={"max_steps": 2}),
                        progress=False)  # fmt: skip
    assert summary["steps"] == 2
    chat = _write(tmp_path / "c.jsonl", [
        {"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": CHOSEN}]}
        for p in PROMPTS
    ])  # fmt: skip
    summary = train_sft(root / "chat", chat, tmp_path / "chat", _config(sft={"max_steps": 2}),
                        progress=False)  # fmt: skip
    assert summary["steps"] == 2 and "final_train_loss" in summary


# -- SFT → DPO ----------------------------------------------------------------------------------


class _Preempted(RuntimeError):
    pass


class Steps(TrainerCallback):
    """Records ``(stage, step)`` (the stage read from the checkpoint folder); may crash."""

    def __init__(self, crash_at: tuple[str, int] | None = None):
        self.seen: list[tuple[str, int]] = []
        self.crash_at = crash_at

    def on_step_end(self, args, state, control, **kwargs):
        stage = "sft" if Path(args.output_dir).name.startswith("sft") else "dpo"
        self.seen.append((stage, state.global_step))
        if (stage, state.global_step) == self.crash_at:
            raise _Preempted("preempted")


@pytest.mark.slow
def test_sft_then_dpo_gives_a_full_model_referenced_on_the_sft_model(root, tmp_path):
    out = tmp_path / "tuned"
    work = tmp_path / "work"
    steps = Steps()
    summary = train_sft_then_dpo(root / "base", root / "pairs", out, _config(),
                                 checkpoint_dir=work, keep_checkpoints=True, progress=False,
                                 callbacks=[steps])  # fmt: skip
    assert [s for s, _ in steps.seen] == ["sft"] * 12 + ["dpo"] * 6
    # A full model (the merge stage passes it through), with both logs and both summaries.
    assert (out / "model.safetensors").is_file() and not (out / "adapter_config.json").exists()
    for name in ("training_log.jsonl", SFT_LOG, "sft_summary.json", "tokenizer.json"):
        assert (out / name).is_file(), name
    assert summary["steps"] == 6 and summary["sft_steps"] == 12
    assert json.loads((out / "train_summary.json").read_text()) == summary
    # DPO's reference is the SFT model: at the first step policy and reference agree exactly.
    dpo_log = [json.loads(x) for x in (out / "training_log.jsonl").read_text().splitlines()]
    assert dpo_log[0]["rewards/margins"] == pytest.approx(0.0, abs=1e-5)
    # The output is the SFT model (itself base + SFT adapter) plus the DPO adapter.
    sft_model = AutoModelForCausalLM.from_pretrained(work / "sft-model").eval()
    base = AutoModelForCausalLM.from_pretrained(root / "base").eval()
    expected = PeftModel.from_pretrained(sft_model, work / "dpo").eval()
    final = AutoModelForCausalLM.from_pretrained(out).eval()
    ids = torch.tensor([[1, 2, 4, 6, 8, 9]])
    with torch.no_grad():
        torch.testing.assert_close(final(ids).logits, expected(ids).logits, rtol=1e-4, atol=1e-4)
        assert (final(ids).logits - base(ids).logits).abs().max() > 0.1
    tok = AutoTokenizer.from_pretrained(out)
    assert _completion_logp(final, tok, PROMPTS[1], CHOSEN) > _completion_logp(
        base, tok, PROMPTS[1], CHOSEN
    )


@pytest.mark.slow
def test_sft_then_dpo_resumes_where_it_was_stopped(root, tmp_path):
    out = tmp_path / "tuned"
    work = Path(str(out) + ".checkpoints")
    with pytest.raises(_Preempted):
        train_sft_then_dpo(root / "base", root / "pairs", out, _config(), progress=False,
                           callbacks=[Steps(crash_at=("dpo", 4))])  # fmt: skip
    assert (work / "sft-model" / "config.json").is_file()  # SFT done and merged
    assert (work / "dpo.checkpoints" / "checkpoint-3").is_dir()
    # The finished SFT stage is not reused for other SFT settings.
    with pytest.raises(ConfigError, match=r"training\.sft\.learning_rate: differs from the stag"):
        train_sft_then_dpo(root / "base", root / "pairs", out,
                           _config(sft={"learning_rate": 1e-3}), progress=False)  # fmt: skip
    steps = Steps()
    summary = train_sft_then_dpo(root / "base", root / "pairs", out, _config(), progress=False,
                                 callbacks=[steps])  # fmt: skip
    assert steps.seen == [("dpo", 4), ("dpo", 5), ("dpo", 6)]  # no SFT again, DPO from step 3
    assert summary["resumed_from_step"] == 3 and summary["sft_steps"] == 12
    assert not work.exists() and (out / "model.safetensors").is_file()
