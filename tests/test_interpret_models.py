"""Architecture presets, neuron hooks and pooling on tiny random GPT-2, Llama and BLOOM models.

Also holds the vocabulary and model builders the other ``test_interpret_*`` files import, on
top of ``tiny_models`` (nothing is downloaded: models are built from configs).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from tiny_models import tiny_causal_lm, word_tokenizer
from transformers import PreTrainedTokenizerFast

from xdetox.components.interpret.architectures import PRESETS, resolve_architecture
from xdetox.components.interpret.hooks import ActivationRecorder, neuron_offset
from xdetox.components.interpret.neurons import Neuron
from xdetox.components.interpret.pooling import encode_texts, load_frozen, mean_pooled_states
from xdetox.errors import ConfigError

EOS = "[EOS]"
NEUTRAL = [f"w{i}" for i in range(30)]
TOXIC = [f"tox{i}" for i in range(8)]
CLEAN = [f"ok{i}" for i in range(8)]
VOCAB = [EOS, "[UNK]", *NEUTRAL, *TOXIC, *CLEAN]
KINDS = ("gpt2", "llama", "bloom")


# The feed-forward widths the interpretability tests' expectations were worked out with.
_MLP_WIDTH = {"gpt2": {"n_inner": 64}, "llama": {"intermediate_size": 48}, "bloom": {}}


def make_tokenizer() -> PreTrainedTokenizerFast:
    return word_tokenizer(VOCAB, eos_token=EOS, unk_token="[UNK]")


def make_model(kind: str, seed: int = 0) -> torch.nn.Module:
    """A tiny random causal LM whose eos/bos/pad ids are the tokenizer's."""
    if kind not in KINDS:
        raise ValueError(kind)
    ids = {"bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 0}
    model = tiny_causal_lm(kind, vocab_size=len(VOCAB), seed=seed, **_MLP_WIDTH[kind], **ids)
    return model.eval()


def save_model(
    kind: str, folder: Path, seed: int = 0, model: torch.nn.Module | None = None
) -> Path:
    (model or make_model(kind, seed)).save_pretrained(folder)
    make_tokenizer().save_pretrained(folder)
    return folder


def random_sentence(rng: random.Random, n: int = 6, extra: list[str] | None = None) -> str:
    words = [rng.choice(NEUTRAL) for _ in range(n)] + (extra or [])
    rng.shuffle(words)
    return " ".join(words)


def _ids(n: int = 7, batch: int = 2, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(2, len(VOCAB), (batch, n), generator=g)


# --------------------------------------------------------------------------- presets
@pytest.mark.parametrize("kind", KINDS)
def test_value_vectors_are_what_a_neuron_adds(kind):
    """Rows for GPT-2's Conv1D, columns for Linear: checked against the module's own forward."""
    model = make_model(kind)
    arch = resolve_architecture(model)
    assert arch.preset.layout == ("rows" if kind == "gpt2" else "columns")
    for layer in range(arch.n_layers):
        proj = arch.projection(layer)
        vectors = arch.value_vectors(layer)
        assert vectors.shape == (arch.d_mlp, arch.d_model)
        with torch.no_grad():
            base = proj(torch.zeros(1, arch.d_mlp))
            for index in (0, 5, arch.d_mlp - 1):
                one_hot = torch.zeros(1, arch.d_mlp)
                one_hot[0, index] = 1.0
                added = proj(one_hot) - base
                torch.testing.assert_close(added[0], vectors[index], rtol=1e-5, atol=1e-6)


def test_gpt2_rows_and_llama_columns_of_the_raw_weight():
    gpt2 = resolve_architecture(make_model("gpt2"))
    torch.testing.assert_close(gpt2.value_vectors(1)[3], gpt2.projection(1).weight[3].detach())
    llama = resolve_architecture(make_model("llama"))
    torch.testing.assert_close(llama.value_vectors(1)[3], llama.projection(1).weight[:, 3].detach())
    assert (gpt2.d_mlp, llama.d_mlp) == (64, 48)


@pytest.mark.parametrize(
    "config",
    [
        "MistralConfig",
        "Qwen2Config",
        "CohereConfig",
        "GPTNeoXConfig",
        "GPTNeoConfig",
        "GemmaConfig",
        "Gemma2Config",
        "Gemma3TextConfig",  # Gemma 3 270M (the packaged gemma3-270m model)
    ],
)
def test_other_presets_resolve(config):
    import transformers

    cls = getattr(transformers, config)
    kwargs = dict(hidden_size=32, vocab_size=50)
    if config == "GPTNeoConfig":
        kwargs.update(num_layers=2, num_heads=2, attention_types=[[["global"], 2]])
    else:
        kwargs.update(num_hidden_layers=2, num_attention_heads=2, intermediate_size=48)
        if config != "GPTNeoXConfig":
            kwargs.update(num_key_value_heads=2, head_dim=16)
    model = transformers.AutoModelForCausalLM.from_config(cls(**kwargs))
    arch = resolve_architecture(model)
    assert arch.model_type in PRESETS
    assert arch.n_layers == 2 and arch.d_model == 32


def test_unknown_architecture_names_model_type_and_candidates():
    model = tiny_causal_lm("opt", vocab_size=50, layers=1, hidden=16)
    with pytest.raises(ConfigError) as err:
        resolve_architecture(model)
    message = str(err.value)
    assert "'opt'" in message
    assert "model.decoder.layers.*.fc2" in message
    assert "model.decoder.final_layer_norm" in message


def test_bloom_slow_but_exact_is_refused():
    model = make_model("bloom")
    model.config.slow_but_exact = True
    model.config.pretraining_tp = 2
    with pytest.raises(ConfigError, match="slow_but_exact"):
        resolve_architecture(model)


def test_neuron_outside_the_model_is_a_config_error():
    arch = resolve_architecture(make_model("gpt2"))
    with (
        pytest.raises(ConfigError, match=r"layer 2, index 0"),
        neuron_offset(arch, [Neuron(2, 0)], -1),
    ):
        pass
    with pytest.raises(ConfigError, match=r"layer 0, index 64"):
        ActivationRecorder(arch, [Neuron(0, 64)])


# --------------------------------------------------------------------------- hooks
@pytest.mark.parametrize("kind", KINDS)
def test_zero_offset_leaves_logits_unchanged(kind):
    model = make_model(kind)
    arch = resolve_architecture(model)
    ids = _ids()
    with torch.no_grad():
        before = model(ids).logits
        with neuron_offset(arch, [Neuron(0, 3), Neuron(1, 7)], 0.0):
            during = model(ids).logits
    assert torch.equal(before, during)


@pytest.mark.parametrize("kind", KINDS)
def test_offset_shifts_exactly_the_hooked_neuron_and_is_removed_after(kind):
    model = make_model(kind)
    arch = resolve_architecture(model)
    ids = _ids()
    target = Neuron(1, 7)
    watched = [target, Neuron(1, 8), Neuron(0, 7)]
    with torch.no_grad():
        before = model(ids).logits
        with ActivationRecorder(arch, watched, position="all") as rec:
            model(ids)
        baseline = rec.stacked()
        with neuron_offset(arch, [target], -2.5):
            with ActivationRecorder(arch, watched, position="all") as rec:
                during = model(ids).logits
            shifted = rec.stacked()
        after = model(ids).logits
    torch.testing.assert_close(shifted[..., 0], baseline[..., 0] - 2.5, rtol=0, atol=1e-5)
    torch.testing.assert_close(shifted[..., 1:], baseline[..., 1:], rtol=0, atol=0)
    assert not torch.allclose(before, during)
    assert torch.equal(before, after)
    assert all(len(p._forward_pre_hooks) == 0 for p in arch.projections)


def test_hooks_are_removed_when_the_block_raises():
    model = make_model("gpt2")
    arch = resolve_architecture(model)
    offset = neuron_offset(arch, [Neuron(0, 1)], 3.0)
    recorder = ActivationRecorder(arch, [Neuron(1, 2)])
    with pytest.raises(RuntimeError, match="boom"), offset, recorder:
        raise RuntimeError("boom")
    assert all(len(p._forward_pre_hooks) == 0 for p in arch.projections)


def test_offset_on_several_neurons_of_one_layer():
    model = make_model("llama")
    arch = resolve_architecture(model)
    neurons = [Neuron(0, 1), Neuron(0, 4), Neuron(0, 4)]  # a repeat is shifted once
    with torch.no_grad():
        with ActivationRecorder(arch, [Neuron(0, 1), Neuron(0, 4), Neuron(0, 5)], "all") as rec:
            model(_ids())
        base = rec.stacked()
        with (
            neuron_offset(arch, neurons, 1.5),
            ActivationRecorder(arch, [Neuron(0, 1), Neuron(0, 4), Neuron(0, 5)], "all") as rec,
        ):
            model(_ids())
        moved = rec.stacked()
    torch.testing.assert_close(
        moved - base, torch.tensor([1.5, 1.5, 0.0]).expand_as(base), rtol=0, atol=1e-5
    )


# --------------------------------------------------------------------------- pooling
@pytest.mark.parametrize("kind", KINDS)
def test_pooled_final_state_is_post_norm_and_independent_of_the_batch(kind, tmp_path):
    model, tokenizer, arch = load_frozen(save_model(kind, tmp_path / kind), "cpu")
    rng = random.Random(0)
    texts = [random_sentence(rng, n) for n in (3, 9, 5, 12)]
    encoded = encode_texts(tokenizer, texts, max_length=64)
    batched = mean_pooled_states(model, arch, encoded, batch_size=4, pad_id=0, progress=False)
    alone = torch.stack(
        [
            mean_pooled_states(model, arch, [e], batch_size=1, pad_id=0, progress=False)[0]
            for e in encoded
        ]
    )
    torch.testing.assert_close(batched, alone, rtol=1e-4, atol=1e-5)
    # The final-norm hook gives the last of transformers' hidden states (post final norm).
    every = mean_pooled_states(model, arch, encoded, layers="all", pad_id=0, progress=False)
    assert every.shape == (arch.n_layers + 1, len(texts), arch.d_model)
    torch.testing.assert_close(every[-1], batched, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        direct = model(torch.tensor([encoded[1]]), output_hidden_states=True).hidden_states
    torch.testing.assert_close(every[1, 1], direct[1][0].mean(dim=0), rtol=1e-4, atol=1e-5)
    assert not any(p.requires_grad for p in model.parameters())


def test_max_length_keeps_the_first_tokens():
    tokenizer = make_tokenizer()
    assert encode_texts(tokenizer, ["w1 w2 w3 w4"], 2) == [[VOCAB.index("w1"), VOCAB.index("w2")]]
