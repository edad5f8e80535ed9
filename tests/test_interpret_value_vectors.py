"""Toxic value vectors: ranking by cosine, greedy-step activations, vocabulary projection."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from test_interpret_models import KINDS, VOCAB, make_model, make_tokenizer, save_model

from xdetox.components.generate.prompt_file import read_prompts
from xdetox.components.interpret.architectures import resolve_architecture
from xdetox.components.interpret.greedy import StepActivations, greedy_step_activations
from xdetox.components.interpret.hooks import ActivationRecorder
from xdetox.components.interpret.neurons import Neuron, read_neurons
from xdetox.components.interpret.probe import save_probe
from xdetox.components.interpret.settings import ValueVectorConfig
from xdetox.components.interpret.value_vectors import (
    rank_value_vectors,
    run_value_vectors,
    vocab_projection,
)
from xdetox.errors import DataError
from xdetox.files import write_jsonl


def _plant(arch, layer: int, index: int, vector: torch.Tensor) -> None:
    """Overwrite one value vector (a row of a Conv1D weight, a column of a Linear weight)."""
    weight = arch.projection(layer).weight
    with torch.no_grad():
        if arch.preset.layout == "rows":
            weight[index] = vector
        else:
            weight[:, index] = vector


def _prompts(path: Path, by_language: dict[str, list[str]]) -> Path:
    write_jsonl(
        path,
        [
            {"prompt_id": f"{lang}-{i}", "language": lang, "prompt": text}
            for lang, texts in by_language.items()
            for i, text in enumerate(texts)
        ],
    )
    return path


@pytest.mark.parametrize("kind", KINDS)
def test_planted_vector_is_ranked_first(kind):
    arch = resolve_architecture(make_model(kind))
    probe = torch.randn(arch.d_model, generator=torch.Generator().manual_seed(5))
    _plant(arch, 1, 9, 3.0 * probe)  # same direction, another length
    _plant(arch, 0, 2, probe + 0.05 * torch.randn(arch.d_model))
    ranked = rank_value_vectors(arch, probe, top_k=5)
    assert [(c.rank, c.layer, c.index) for c in ranked[:2]] == [(1, 1, 9), (2, 0, 2)]
    assert ranked[0].cosine == pytest.approx(1.0, abs=1e-5)
    assert len(ranked) == 5
    assert all(a.cosine >= b.cosine for a, b in itertools.pairwise(ranked))


def test_ranking_cosines_match_a_direct_computation():
    arch = resolve_architecture(make_model("llama"))
    probe = torch.randn(arch.d_model, generator=torch.Generator().manual_seed(1))
    top = rank_value_vectors(arch, probe, top_k=3)
    weight = arch.projection(top[0].layer).weight.detach()  # Linear: [d, d_mlp]
    column = weight[:, top[0].index]
    assert top[0].cosine == pytest.approx(
        float(torch.nn.functional.cosine_similarity(column, probe, dim=0)), abs=1e-6
    )
    every = torch.cat(
        [
            torch.nn.functional.cosine_similarity(
                arch.value_vectors(layer), probe.unsqueeze(0), dim=1
            )
            for layer in range(arch.n_layers)
        ]
    )
    assert top[0].cosine == pytest.approx(float(every.max()), abs=1e-6)


def test_zero_vectors_are_never_candidates():
    arch = resolve_architecture(make_model("gpt2"))
    with torch.no_grad():
        for p in arch.projections:
            p.weight.zero_()
    _plant(arch, 0, 1, torch.ones(arch.d_model))
    ranked = rank_value_vectors(arch, torch.ones(arch.d_model), top_k=10)
    assert [(c.layer, c.index) for c in ranked] == [(0, 1)]


def test_vocab_projection_finds_the_token_a_vector_points_to():
    model, tokenizer = make_model("gpt2"), make_tokenizer()
    embedding = model.get_output_embeddings().weight.detach()
    vectors = torch.stack([embedding[VOCAB.index("tox1")], embedding[VOCAB.index("ok3")]])
    tokens = vocab_projection(model, tokenizer, vectors, top_tokens=4)
    assert [t[0] for t in tokens] == ["tox1", "ok3"]
    assert all(len(t) == 4 for t in tokens)


@pytest.mark.parametrize("kind", KINDS)
def test_greedy_step_activations_match_a_forward_over_the_generated_text(kind, tmp_path):
    model, tokenizer = make_model(kind), make_tokenizer()
    arch = resolve_architecture(model)
    path = _prompts(tmp_path / "p.jsonl", {"en": ["w1 w2 w3 w4 w5", "w7", "w3 w9 w11"]})
    prompts = read_prompts(path)
    neurons = [Neuron(0, 3), Neuron(1, 0), Neuron(1, 5)]
    acts = greedy_step_activations(
        model, tokenizer, arch, prompts, neurons, steps=6, batch_size=3, source=path, progress=False
    )
    assert acts.values.shape == (3, 6, 3)
    for p, prompt in enumerate(prompts):
        ids = tokenizer(prompt.prompt, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            full = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=6,
                do_sample=False,
                pad_token_id=0,
            )
            with ActivationRecorder(arch, neurons, position="all") as rec:
                model(full)
        direct = rec.stacked()[0]  # [seq, neurons]
        n_valid = int(acts.valid[p].sum())
        start = ids.shape[1] - 1  # the prompt's last position predicts the first new token
        torch.testing.assert_close(
            acts.values[p, :n_valid], direct[start : start + n_valid], rtol=1e-4, atol=1e-4
        )


def test_mean_ignores_steps_that_did_not_run():
    values = torch.tensor([[[1.0], [3.0], [float("nan")]], [[5.0], [float("nan")], [7.0]]])
    valid = torch.tensor([[True, True, False], [True, False, False]])
    acts = StepActivations(values, valid)
    assert acts.mean_per_neuron().tolist() == [3.0]  # (1 + 3 + 5) / 3
    assert acts.mean_per_neuron([1]).tolist() == [5.0]
    assert acts.n_positions == 3


def test_run_value_vectors_keeps_positive_candidates(tmp_path):
    model = make_model("gpt2")
    arch = resolve_architecture(model)
    probe = torch.randn(arch.d_model, generator=torch.Generator().manual_seed(2))
    _plant(arch, 1, 9, probe)  # rank 1, made to fire: c_fc bias +5 → gelu ≈ 5
    _plant(arch, 0, 4, probe + 0.01 * torch.randn(arch.d_model))  # rank 2, made silent
    with torch.no_grad():
        arch.blocks[1].mlp.c_fc.bias[9] = 5.0
        arch.blocks[0].mlp.c_fc.bias[4] = -2.0  # gelu(≈-2) ≈ -0.045
    model_dir = save_model("gpt2", tmp_path / "m", model=model)
    save_probe(tmp_path / "probe.safetensors", probe, {})
    prompts = _prompts(tmp_path / "p.jsonl", {"en": ["w1 w2 w3", "w4 w5", "w6"], "de": ["w7 w8"]})
    config = ValueVectorConfig(top_k=6, steps=4, top_tokens=3)
    summary = run_value_vectors(
        model_dir,
        tmp_path / "probe.safetensors",
        prompts,
        tmp_path / "vv",
        config,
        progress=False,
        device="cpu",
    )
    table = pd.read_csv(tmp_path / "vv" / "value_vectors.csv")
    assert list(table.columns) == [
        "rank",
        "layer",
        "index",
        "cosine",
        "mean_activation",
        "kept",
        "top_tokens",
    ]
    assert len(table) == 6 and summary["n_prompts"] == 3  # English prompts only
    assert (table.loc[0, "layer"], table.loc[0, "index"]) == (1, 9)
    assert (table.loc[1, "layer"], table.loc[1, "index"]) == (0, 4)
    assert table.loc[0, "mean_activation"] > 4.0 and bool(table.loc[0, "kept"])
    assert table.loc[1, "mean_activation"] < 0 and not bool(table.loc[1, "kept"])
    assert (table["kept"] == (table["mean_activation"] > 0)).all()
    assert summary["n_kept"] == int(table["kept"].sum())
    assert all(len(json.loads(t)) == 3 for t in table["top_tokens"])
    # The next stages read exactly the kept rows.
    kept = read_neurons(tmp_path / "vv" / "value_vectors.csv")
    assert Neuron(1, 9) in kept and Neuron(0, 4) not in kept
    assert len(kept) == summary["n_kept"]


def test_probe_of_another_size_is_refused_before_writing(tmp_path):
    model_dir = save_model("gpt2", tmp_path / "m")
    save_probe(tmp_path / "probe.safetensors", torch.ones(16), {})
    prompts = _prompts(tmp_path / "p.jsonl", {"en": ["w1"]})
    with pytest.raises(DataError, match=r"probe.safetensors: probe has 16 dimensions .* 32"):
        run_value_vectors(
            model_dir,
            tmp_path / "probe.safetensors",
            prompts,
            tmp_path / "vv",
            progress=False,
            device="cpu",
        )
    assert not (tmp_path / "vv").exists()


@pytest.mark.parametrize(
    ("content", "where", "what"),
    [
        ("layer,index\n0,1\nx,2\n", ":3:", "integers"),
        ("layer,index,kept\n0,1,maybe\n", ":2:", "true/false"),
        ("layer\n0\n", ":1:", "'index'"),
        ("layer,index\n0,1,5\n", ":2:", "expected 2 fields"),
        ("layer,index,kept\n0,1,false\n", "", "no neurons selected"),
    ],
)
def test_bad_neuron_files_name_file_and_line(tmp_path, content, where, what):
    path = tmp_path / "neurons.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_neurons(path)
    assert f"{path}{where}" in str(err.value) and what in str(err.value)
