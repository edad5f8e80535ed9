"""Merging a LoRA adapter into its base; full models copied; mismatches caught."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from xdetox.components.merge.merge_lora import merge_adapter
from xdetox.errors import DataError, XdetoxError

VOCAB = 40


def _tokenizer() -> PreTrainedTokenizerFast:
    words = ["[UNK]", "[EOS]", *(f"w{i}" for i in range(VOCAB - 2))]
    tok = Tokenizer(WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", eos_token="[EOS]")


def _save_gpt2(path: Path, *, n_layer: int = 2, n_embd: int = 32, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    config = GPT2Config(
        n_layer=n_layer, n_head=2, n_embd=n_embd, n_positions=128, vocab_size=VOCAB,
        bos_token_id=1, eos_token_id=1,
    )  # fmt: skip
    GPT2LMHeadModel(config).save_pretrained(path)
    _tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory) -> Path:
    return _save_gpt2(tmp_path_factory.mktemp("base"))


def _save_adapter(base: Path, path: Path, *, with_tokenizer: bool = True) -> Path:
    """A LoRA adapter with random (non-zero) A and B, so merging visibly changes the weights."""
    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["c_attn", "c_proj", "c_fc"], fan_in_fan_out=True,
        init_lora_weights=False, task_type="CAUSAL_LM",
    )  # fmt: skip
    get_peft_model(model, config).save_pretrained(path)
    shutil.copyfile(base / "config.json", path / "base_config.json")
    if with_tokenizer:
        tok = _tokenizer()
        tok.add_special_tokens({"pad_token": "[UNK]"})  # tells adapter's tokenizer from base's
        tok.save_pretrained(path)
    return path


def _forget_base(adapter: Path) -> None:
    """Leave no record of the training base, as for an adapter trained elsewhere."""
    (adapter / "base_config.json").unlink()
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "org/not-here"
    (adapter / "adapter_config.json").write_text(json.dumps(config))


def _assert_no_output(out: Path) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def test_merged_logits_equal_peft_logits(base_dir, tmp_path):
    adapter = _save_adapter(base_dir, tmp_path / "adapter")
    out = tmp_path / "merged"
    info = merge_adapter(base_dir, adapter, out)
    assert info["source"] == "lora" and info["model_type"] == "gpt2"
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    assert not (out / "adapter_config.json").exists()
    # The adapter's tokenizer (with its pad token) is the one saved.
    assert json.loads((out / "tokenizer_config.json").read_text())["pad_token"] == "[UNK]"

    ids = torch.tensor([[3, 7, 11, 2, 30, 5]])
    base = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    with torch.no_grad():
        base_logits = base(ids).logits
        peft_logits = PeftModel.from_pretrained(base, adapter).eval()(ids).logits
        merged_logits = AutoModelForCausalLM.from_pretrained(out).eval()(ids).logits
    assert torch.allclose(merged_logits, peft_logits, atol=1e-5)
    assert not torch.allclose(merged_logits, base_logits, atol=1e-3)  # the merge did something


def test_tokenizer_comes_from_base_when_adapter_has_none(base_dir, tmp_path):
    adapter = _save_adapter(base_dir, tmp_path / "adapter", with_tokenizer=False)
    merge_adapter(base_dir, adapter, tmp_path / "merged")
    saved = json.loads((tmp_path / "merged" / "tokenizer_config.json").read_text())
    assert saved.get("pad_token") is None and saved["eos_token"] == "[EOS]"


def test_full_model_is_copied(base_dir, tmp_path):
    full = tmp_path / "full"
    shutil.copytree(base_dir, full)
    (full / "train_summary.json").write_text("{}")
    (full / "checkpoints" / "checkpoint-5").mkdir(parents=True)
    out = tmp_path / "out"
    info = merge_adapter(base_dir, full, out)
    assert info == {"source": "full", "model_type": "gpt2"}
    assert not (out / "checkpoints").exists()
    for item in full.iterdir():
        if item.is_file():
            assert (out / item.name).read_bytes() == item.read_bytes(), item.name
    assert (out / "tokenizer_config.json").is_file()


def test_other_architecture_is_rejected_before_loading(base_dir, tmp_path):
    adapter = _save_adapter(base_dir, tmp_path / "adapter")
    (adapter / "base_config.json").unlink()  # the recorded base path is checked as well
    wider = _save_gpt2(tmp_path / "wider", n_embd=64)
    out = tmp_path / "merged"
    with pytest.raises(XdetoxError, match=r"n_embd is 32 in the model it was trained on .* 64"):
        merge_adapter(wider, adapter, out)
    _assert_no_output(out)


def test_shape_mismatch_without_recorded_base_is_caught_while_loading(base_dir, tmp_path):
    adapter = _save_adapter(base_dir, tmp_path / "adapter")
    _forget_base(adapter)
    wider = _save_gpt2(tmp_path / "wider", n_embd=64)
    out = tmp_path / "merged"
    with pytest.raises(XdetoxError, match=r"adapter does not fit base.*size mismatch"):
        merge_adapter(wider, adapter, out)
    _assert_no_output(out)


def test_adapter_weights_without_a_place_in_the_base_are_caught(base_dir, tmp_path):
    adapter = _save_adapter(base_dir, tmp_path / "adapter")
    _forget_base(adapter)
    shallow = _save_gpt2(tmp_path / "shallow", n_layer=1)
    out = tmp_path / "merged"
    with pytest.raises(XdetoxError, match="have no place in the base"):
        merge_adapter(shallow, adapter, out)
    _assert_no_output(out)


def test_folder_that_is_neither_adapter_nor_model(base_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="neither a LoRA adapter"):
        merge_adapter(base_dir, tmp_path / "empty", tmp_path / "out")
    _assert_no_output(tmp_path / "out")
