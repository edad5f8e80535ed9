"""QLoRA: the 4-bit settings, the CPU error (raised before anything loads), bf16 resolution, and
merging a QLoRA adapter into the full-precision base. A real 4-bit run needs CUDA and
bitsandbytes and is skipped elsewhere."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from tiny_models import gpt2_word_tokenizer, save_tiny_lm
from transformers import AutoModelForCausalLM

from xdetox.components.merge.merge_lora import merge_adapter
from xdetox.components.train import policy
from xdetox.components.train.dispatch import run_training
from xdetox.components.train.dpo.train_dpo import train_dpo
from xdetox.components.train.launch import check_launch
from xdetox.components.train.policy import (
    QLORA_NEEDS_CUDA,
    check_mode_supported,
    quantization_config,
    uses_bf16,
)
from xdetox.config import RLConfig, TrainingConfig
from xdetox.config.training import QLoraConfig
from xdetox.errors import ConfigError, XdetoxError

WORDS = ["the", "cat", "sat", "on", "mat", "nice", "kind", "rude", "bad", "words"]
HAS_GPU_QLORA = torch.cuda.is_available() and importlib.util.find_spec("bitsandbytes") is not None


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("qlora")
    save_tiny_lm(root / "base", gpt2_word_tokenizer(WORDS))
    pairs = root / "pairs"
    pairs.mkdir()
    row = {"prompt": "the cat", "chosen": " nice kind words", "rejected": " rude bad words"}
    (pairs / "train.jsonl").write_text(json.dumps(row) + "\n")
    (root / "prompts.jsonl").write_text(json.dumps({"prompt": "the cat sat"}) + "\n")
    return root / "base"


def test_four_bit_settings_are_qloras():
    bnb = quantization_config(QLoraConfig())
    assert bnb.load_in_4bit and not bnb.load_in_8bit
    assert bnb.bnb_4bit_quant_type == "nf4"
    assert bnb.bnb_4bit_use_double_quant is True
    assert bnb.bnb_4bit_compute_dtype == torch.bfloat16
    other = quantization_config(QLoraConfig(quant_type="fp4", double_quant=False,
                                            compute_dtype="float16"))  # fmt: skip
    assert (other.bnb_4bit_quant_type, other.bnb_4bit_use_double_quant) == ("fp4", False)
    assert other.bnb_4bit_compute_dtype == torch.float16


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU error path")
@pytest.mark.parametrize("method", ["dpo", "sft_dpo", "ppo", "rloo", "grpo"])
def test_qlora_on_cpu_is_a_config_error_before_loading(base_dir, tmp_path, monkeypatch, method):
    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded before the QLoRA check")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", no_loading)
    root = base_dir.parent
    out = tmp_path / "out"
    config = TrainingConfig(method=method, mode="qlora")
    with pytest.raises(ConfigError, match=re.escape(QLORA_NEEDS_CUDA)) as info:
        run_training(base_dir, out, config, RLConfig(), pairs_dir=root / "pairs",
                     prompts_path=root / "prompts.jsonl", reward_funcs=[lambda **kw: []],
                     progress=False)  # fmt: skip
    assert str(info.value) == "training.mode=qlora needs a CUDA GPU (bitsandbytes 4-bit)"
    assert list(tmp_path.iterdir()) == []  # no output, no checkpoint folder


def test_qlora_without_bitsandbytes_names_the_package(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        policy.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "bitsandbytes" else real_find_spec(name, *a),
    )
    with pytest.raises(ConfigError, match="needs the bitsandbytes package"):
        check_mode_supported(TrainingConfig(mode="qlora"))
    check_mode_supported(TrainingConfig(mode="lora"))  # nothing to check


def test_bf16_follows_the_mode_on_gpu_and_is_off_on_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert uses_bf16(TrainingConfig(mode="qlora"))  # QLoRA's compute dtype
    assert not uses_bf16(TrainingConfig(mode="lora"))  # XG: fp32
    assert uses_bf16(TrainingConfig(mode="lora", bf16=True))
    assert not uses_bf16(TrainingConfig(mode="qlora", bf16=False))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert not uses_bf16(TrainingConfig(mode="qlora", bf16=True))


def test_qlora_and_zero3_are_refused_together():
    check_launch(TrainingConfig(mode="qlora"), 2)
    check_launch(TrainingConfig(mode="lora"), 3)
    with pytest.raises(ConfigError, match=r"mode=qlora cannot run under DeepSpeed ZeRO-3"):
        check_launch(TrainingConfig(mode="qlora"), 3)


def _qlora_style_adapter(base_dir: Path, out: Path) -> PeftModel:
    """An adapter saved as a QLoRA run saves it: LoRA weights in bf16 (TRL casts them), a plain
    adapter_config.json; its B matrices are non-zero so that the merge changes the weights."""
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    peft_model = get_peft_model(
        base,
        LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn", "c_fc"], fan_in_fan_out=True,
                   task_type="CAUSAL_LM"),
    )  # fmt: skip
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn_like(param) * 0.1)
    peft_model.save_pretrained(out)
    weights = out / "adapter_model.safetensors"
    save_file({k: v.to(torch.bfloat16) for k, v in load_file(weights).items()}, weights)
    return PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), out).eval()


def test_qlora_adapter_merges_into_the_full_precision_base(base_dir, tmp_path):
    adapter = tmp_path / "adapter"
    reference = _qlora_style_adapter(base_dir, adapter)
    assert all(
        v.dtype == torch.bfloat16 for v in load_file(adapter / "adapter_model.safetensors").values()
    )
    merged_dir = tmp_path / "merged"
    info = merge_adapter(base_dir, adapter, merged_dir)
    assert info["source"] == "lora"
    merged_config = json.loads((merged_dir / "config.json").read_text())
    assert "quantization_config" not in merged_config  # a plain folder vLLM loads
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    assert next(merged.parameters()).dtype == torch.float32
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    with torch.no_grad():
        expected = reference(ids).logits
        got = merged(ids).logits
        base_logits = AutoModelForCausalLM.from_pretrained(base_dir)(ids).logits
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert (got - base_logits).abs().max() > 1e-2  # the adapter did change the model


def test_quantised_base_is_refused_for_merging(base_dir, tmp_path):
    adapter = tmp_path / "adapter"
    _qlora_style_adapter(base_dir, adapter)
    quantised = tmp_path / "base-4bit"
    quantised.mkdir()
    for item in base_dir.iterdir():
        (quantised / item.name).write_bytes(item.read_bytes())
    config = json.loads((quantised / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_4bit": True}
    (quantised / "config.json").write_text(json.dumps(config))
    with pytest.raises(XdetoxError, match=r"bitsandbytes checkpoint .* full-precision base"):
        merge_adapter(quantised, adapter, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


@pytest.mark.skipif(not HAS_GPU_QLORA, reason="needs a CUDA GPU and bitsandbytes")
def test_qlora_dpo_trains_on_gpu(base_dir, tmp_path):  # pragma: no cover - GPU machines only
    config = TrainingConfig(mode="qlora", max_steps=3, logging_steps=1, warmup_steps=0,
                            optim="adamw_torch", early_stopping_patience=0,
                            max_prompt_length=8, max_length=32,
                            lora={"r": 4, "alpha": 8, "dropout": 0.0})  # fmt: skip
    summary = train_dpo(base_dir, base_dir.parent / "pairs", tmp_path / "out", config,
                        progress=False)  # fmt: skip
    assert summary["steps"] == 3
    assert (tmp_path / "out" / "adapter_config.json").is_file()
