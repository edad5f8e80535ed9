"""DPO with TRL on a tiny random GPT-2: LoRA and full fine-tuning, presets, config mapping."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from tiny_dpo import CHOSEN, PROMPTS, REJECTED, fast_dpo_config, save_dpo_base
from tiny_models import tiny_causal_lm
from transformers import AutoModelForCausalLM, AutoTokenizer

from xdetox.components.train.dpo.dpo_arguments import build_dpo_config
from xdetox.components.train.dpo.dpo_dataset import truncate_prompt_left
from xdetox.components.train.dpo.lora_targets import resolve_lora_targets
from xdetox.components.train.dpo.train_dpo import _check_finite, build_peft_config, train_dpo
from xdetox.config import TrainingConfig
from xdetox.errors import ConfigError, DataError, XdetoxError


def _training(**kwargs) -> TrainingConfig:
    return fast_dpo_config(**{"max_steps": 20, "eval_steps": 5, "save_steps": 5, **kwargs})


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory) -> Path:
    return save_dpo_base(tmp_path_factory.mktemp("base"))


def _write_pairs(path: Path, n_train: int = 16, n_eval: int = 4) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    rows = [
        {"pair_id": f"x:{i}", "prompt": PROMPTS[i % 4], "chosen": CHOSEN, "rejected": REJECTED}
        for i in range(n_train + n_eval)
    ]
    (path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:n_train]))
    if n_eval:
        (path / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[n_train:]))
    return path


@pytest.fixture(scope="module")
def lora_run(base_dir, tmp_path_factory):
    """One LoRA DPO run with eval, early stopping and gradient checkpointing switched on."""
    root = tmp_path_factory.mktemp("lora")
    data = _write_pairs(root / "pairs")
    config = _training(early_stopping_patience=50, gradient_checkpointing=True)
    out = root / "tuned"
    summary = train_dpo(base_dir, data, out, config, progress=False)
    return out, summary


def _completion_logp(model, tokenizer, prompt: str, completion: str) -> float:
    prompt_ids = tokenizer(prompt)["input_ids"]
    ids = tokenizer(prompt + completion)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
    logp = torch.log_softmax(logits[:-1], dim=-1)
    return sum(logp[i - 1, ids[i]].item() for i in range(len(prompt_ids), len(ids)))


def _margin(model, tokenizer) -> float:
    return sum(
        _completion_logp(model, tokenizer, p, CHOSEN)
        - _completion_logp(model, tokenizer, p, REJECTED)
        for p in PROMPTS
    )


def test_lora_run_writes_adapter_tokenizer_log_and_summary(lora_run):
    out, summary = lora_run
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer_config.json",
                 "training_log.jsonl", "train_summary.json", "base_config.json"):  # fmt: skip
        assert (out / name).is_file(), name
    assert not (out / "checkpoints").exists()
    assert not (out / "model.safetensors").exists()
    assert json.loads((out / "train_summary.json").read_text()) == summary
    assert all(isinstance(v, float) for v in summary.values())
    assert summary["steps"] == 20.0 and summary["n_train_pairs"] == 16.0
    assert summary["n_params_trainable"] < summary["n_params_total"]
    # best_step is one of the evaluation steps and eval_loss is that step's loss.
    assert summary["best_step"] in {5.0, 10.0, 15.0, 20.0}
    assert summary["eval_loss"] == pytest.approx(summary["best_eval_loss"], abs=1e-6)


def test_lora_changes_only_adapter_weights(lora_run, base_dir):
    out, _ = lora_run
    adapter = load_file(out / "adapter_model.safetensors")
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and all(v.abs().max() > 0 for v in lora_b)  # B starts at zero
    assert not any("lora" not in k for k in adapter)  # no base weight in the adapter
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    original = {k: v.clone() for k, v in base.state_dict().items()}
    peft_model = PeftModel.from_pretrained(base, out)
    for name, param in peft_model.get_base_model().named_parameters():
        if "lora_" in name:
            continue
        key = name.replace(".base_layer", "")
        assert torch.equal(param, original[key]), name


def test_lora_reward_margin_rises(lora_run, base_dir):
    out, summary = lora_run
    log = [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines()]
    train_margins = [e["rewards/margins"] for e in log if "rewards/margins" in e]
    assert train_margins[0] == pytest.approx(0.0, abs=1e-4)  # policy == reference at step 1
    assert train_margins[-1] > 0.1 and summary["final_reward_margin"] > 0.1
    assert any("eval_loss" in e for e in log) and all(math.isfinite(e.get("loss", 0)) for e in log)
    # The policy prefers the chosen answers more than the reference does.
    tok = AutoTokenizer.from_pretrained(out)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), out).eval()
    with model.disable_adapter():
        reference = _margin(model, tok)
    assert _margin(model, tok) > reference + 0.5


def test_full_finetuning_changes_base_weights_and_has_no_eval(base_dir, tmp_path):
    data = _write_pairs(tmp_path / "pairs", n_eval=0)
    out = tmp_path / "full"
    summary = train_dpo(base_dir, data, out, _training(mode="full", max_steps=5), progress=False)
    assert (out / "model.safetensors").is_file() and not (out / "adapter_config.json").exists()
    assert summary["n_params_trainable"] == summary["n_params_total"]
    # No eval pairs: no eval metric at all (never a 0 standing in for it).
    assert not any(key.startswith(("eval_", "best_")) for key in summary)
    before = AutoModelForCausalLM.from_pretrained(base_dir).state_dict()
    after = AutoModelForCausalLM.from_pretrained(out).state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_bad_pairs_file_names_file_and_line_and_leaves_no_output(base_dir, tmp_path):
    data = _write_pairs(tmp_path / "pairs")
    with (data / "train.jsonl").open("a") as fh:
        fh.write('{"prompt": "x", "chosen": " y"}\n')
    out = tmp_path / "tuned"
    with pytest.raises(DataError, match=r"train\.jsonl:17: missing field\(s\) 'rejected'"):
        train_dpo(base_dir, data, out, _training(), progress=False)
    assert not out.exists()
    with pytest.raises(DataError, match="file not found"):
        train_dpo(base_dir, tmp_path / "nothing", out, _training(), progress=False)


def test_prompts_are_cut_from_the_left(base_dir):
    tok = AutoTokenizer.from_pretrained(base_dir)
    prompt = "the weather today is nice kind words my neighbour said"
    n = len(tok(prompt)["input_ids"])
    cut, was_cut = truncate_prompt_left(tok, prompt, 4)
    assert was_cut and prompt.endswith(cut) and len(tok(cut)["input_ids"]) <= 4
    assert truncate_prompt_left(tok, prompt, n) == (prompt, False)


def test_config_maps_onto_dpo_config(tmp_path):
    config = TrainingConfig(optim="rmsprop", beta=0.2, max_grad_norm=10.0, warmup_steps=150)
    args = build_dpo_config(config, tmp_path / "ckpt", has_eval=True, progress=False)
    assert (args.beta, args.optim, args.lr_scheduler_type) == (
        0.2,
        "rmsprop",
        "constant_with_warmup",
    )
    assert (args.max_length, args.warmup_steps, args.max_grad_norm) == (256, 150, 10.0)
    assert args.eval_strategy == "steps" and args.eval_steps == 25 and args.save_total_limit == 2
    assert args.load_best_model_at_end and args.metric_for_best_model == "eval_loss"
    assert args.gradient_checkpointing_kwargs == {"use_reentrant": True}
    assert not args.bf16 and not args.fp16 and args.report_to == []
    no_eval = build_dpo_config(config, tmp_path / "ckpt", has_eval=False, progress=False)
    assert no_eval.eval_strategy == "no" and not no_eval.load_best_model_at_end


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"optim": "nadam_magic"}, "training.optim"),
        ({"lr_scheduler_type": "zigzag"}, "training.lr_scheduler_type"),
        ({"max_prompt_length": 256, "max_length": 256}, "training.max_prompt_length"),
        ({"save_steps": 30, "eval_steps": 20}, "training.save_steps"),
    ],
)
def test_bad_training_values_are_config_errors(tmp_path, kwargs, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        build_dpo_config(TrainingConfig(**kwargs), tmp_path, has_eval=True, progress=False)


def test_lora_presets_pick_module_names():
    gpt2, llama, bloom = (
        tiny_causal_lm(kind, vocab_size=50, layers=1, hidden=16)
        for kind in ("gpt2", "llama", "bloom")
    )
    assert resolve_lora_targets(gpt2, "auto") == ["c_attn", "c_proj", "c_fc"]
    assert resolve_lora_targets(llama, "auto") == [
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
    ]  # fmt: skip
    assert resolve_lora_targets(bloom, "auto") == [
        "query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h",
    ]  # fmt: skip
    assert resolve_lora_targets(llama, ["q_proj", "v_proj"]) == ["q_proj", "v_proj"]
    # Gemma 3 (gemma3_text, the packaged gemma3-270m): Llama's names on a gated MLP
    import transformers

    gemma3 = transformers.AutoModelForCausalLM.from_config(
        transformers.Gemma3TextConfig(
            hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
            num_key_value_heads=1, head_dim=8, vocab_size=50,
        )
    )  # fmt: skip
    assert resolve_lora_targets(gemma3, "auto") == resolve_lora_targets(llama, "auto")
    peft_config = build_peft_config(gpt2, _training())
    assert peft_config.fan_in_fan_out and set(peft_config.target_modules) == {
        "c_attn",
        "c_proj",
        "c_fc",
    }
    assert not build_peft_config(llama, _training()).fan_in_fan_out
    assert build_peft_config(llama, _training(mode="full")) is None


def test_unknown_architecture_lists_its_module_names():
    opt = tiny_causal_lm("opt", vocab_size=50, layers=1, hidden=16)
    with pytest.raises(ConfigError, match="'opt'") as err:
        resolve_lora_targets(opt, "auto")
    for name in ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"):
        assert name in str(err.value)
    with pytest.raises(ConfigError, match="c_attn not found"):
        resolve_lora_targets(opt, ["c_attn"])


def test_nan_loss_is_an_error():
    with pytest.raises(XdetoxError, match="loss is nan at step 3"):
        _check_finite([{"loss": 0.5, "step": 1}, {"loss": float("nan"), "step": 3}])


def test_precompute_and_precision_map_onto_dpo_config(tmp_path):
    args = build_dpo_config(
        TrainingConfig(precompute_ref_log_probs=True, bf16=True), tmp_path, has_eval=False,
        progress=False,
    )  # fmt: skip
    assert args.precompute_ref_log_probs is True
    assert not args.bf16  # bf16 is a GPU setting: off on CPU (tests/test_qlora.py: on GPU)
    assert not build_dpo_config(TrainingConfig(), tmp_path, has_eval=False).precompute_ref_log_probs


@pytest.mark.slow
def test_precomputed_reference_gives_the_same_first_margins(base_dir, tmp_path):
    """The reference log-probs computed once up front are the ones computed at each step."""
    data = _write_pairs(tmp_path / "pairs", n_eval=0)
    logs = {}
    for flag in (False, True):
        out = tmp_path / f"pre-{flag}"
        train_dpo(base_dir, data, out, _training(max_steps=3, precompute_ref_log_probs=flag),
                  progress=False)  # fmt: skip
        lines = (out / "training_log.jsonl").read_text().splitlines()
        logs[flag] = [json.loads(x) for x in lines if '"loss"' in x and "train_loss" not in x]
    for plain, pre in zip(logs[False], logs[True], strict=True):
        assert pre["loss"] == pytest.approx(plain["loss"], rel=1e-4)
        assert pre["rewards/margins"] == pytest.approx(plain["rewards/margins"], abs=1e-4)
