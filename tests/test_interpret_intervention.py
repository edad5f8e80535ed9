"""Intervention sweep and before/after activations on a tiny random GPT-2."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest
import torch
from test_interpret_models import TOXIC, make_model, save_model

from xdetox.components.generate.hf_backend import generate_samples
from xdetox.components.generate.prompt_file import read_prompts
from xdetox.components.interpret.activations import run_activations
from xdetox.components.interpret.intervention import run_intervention, score_texts
from xdetox.components.interpret.pooling import load_frozen
from xdetox.components.interpret.settings import ActivationConfig, InterventionConfig
from xdetox.config import GenerationConfig
from xdetox.errors import ConfigError, DataError, XdetoxError
from xdetox.files import read_jsonl, write_jsonl

GENERATION = GenerationConfig(n=2, temperature=0.9, top_p=1.0, max_new_tokens=5, batch_size=8)


def share_of_toxic_words(texts: Sequence[str], languages: Sequence[str]) -> list[dict]:
    """A deterministic scorer: the share of words from TOXIC; language "xx" is unsupported."""
    out = []
    for text, lang in zip(texts, languages, strict=True):
        words = text.split()
        value = None if lang == "xx" else sum(w in TOXIC for w in words) / max(len(words), 1)
        out.append({"TOXICITY": value})
    return out


@pytest.fixture
def setup(tmp_path) -> dict[str, Path]:
    prompts = tmp_path / "prompts.jsonl"
    texts = {
        "en": ["w1 w2 tox1", "w3 w4", "tox2 w5 w6 w7"],
        "de": ["w8 w9", "ok1 w10"],
        "xx": ["w11", "w12 w13"],
    }
    write_jsonl(
        prompts,
        [
            {"prompt_id": f"{lang}-{i}", "language": lang, "prompt": t}
            for lang, group in texts.items()
            for i, t in enumerate(group)
        ],
    )
    neurons = tmp_path / "value_vectors.csv"
    neurons.write_text("layer,index,kept\n1,3,true\n0,5,true\n1,7,false\n", encoding="utf-8")
    return {"model": save_model("gpt2", tmp_path / "m"), "prompts": prompts, "neurons": neurons}


def test_sweep_writes_per_language_rows_and_never_zero_for_missing(setup, tmp_path):
    out = tmp_path / "intervention"
    config = InterventionConfig(offsets=[0.0, -40.0])
    summary = run_intervention(
        setup["model"],
        setup["neurons"],
        setup["prompts"],
        out,
        score_batch=share_of_toxic_words,
        generation=GENERATION,
        config=config,
        progress=False,
        device="cpu",
    )
    table = pd.read_csv(out / "intervention.csv", keep_default_na=False, na_values=[""])
    assert list(table.columns) == ["offset", "language", "avg_toxicity", "n", "n_missing"]
    assert len(table) == 2 * 4  # offsets × (en, de, xx, ALL)
    records = read_jsonl(out / "intervention_generations.jsonl")
    assert len(records) == 2 * 7 * 2  # offsets × prompts × samples
    for offset in (0.0, -40.0):
        rows = table[table["offset"] == offset].set_index("language")
        for lang, n in (("en", 6), ("de", 4)):
            scores = [
                r["scores"]["TOXICITY"]
                for r in records
                if r["offset"] == offset and r["language"] == lang
            ]
            assert rows.loc[lang, "n"] == n and rows.loc[lang, "n_missing"] == 0
            assert rows.loc[lang, "avg_toxicity"] == pytest.approx(sum(scores) / n)
        # The scorer had nothing for "xx": missing, not 0.
        assert math.isnan(rows.loc["xx", "avg_toxicity"])
        assert (rows.loc["xx", "n"], rows.loc["xx", "n_missing"]) == (0, 4)
        expected_all = (rows.loc["en", "avg_toxicity"] + rows.loc["de", "avg_toxicity"]) / 2
        assert rows.loc["ALL", "avg_toxicity"] == pytest.approx(expected_all)
        assert (rows.loc["ALL", "n"], rows.loc["ALL", "n_missing"]) == (10, 4)
    assert summary["n_neurons"] == 2 and summary["n_missing"] == 8
    assert (out / "intervention.png").read_bytes()[:4] == b"\x89PNG"
    # A large offset changes what the model writes.
    by_offset = {o: [r["text"] for r in records if r["offset"] == o] for o in (0.0, -40.0)}
    assert by_offset[0.0] != by_offset[-40.0]


def test_zero_offset_generates_what_the_unhooked_model_generates(setup, tmp_path):
    out = tmp_path / "intervention"
    run_intervention(
        setup["model"],
        setup["neurons"],
        setup["prompts"],
        out,
        score_batch=share_of_toxic_words,
        generation=GENERATION,
        config=InterventionConfig(offsets=[0.0], languages=["en"]),
        progress=False,
        device="cpu",
    )
    hooked = [r["text"] for r in read_jsonl(out / "intervention_generations.jsonl")]
    model, tokenizer, _ = load_frozen(setup["model"], "cpu")
    plain, _ = generate_samples(
        model,
        tokenizer,
        read_prompts(setup["prompts"], "en"),
        model_label="plain",
        config=GENERATION,
        source=setup["prompts"],
        progress=False,
    )
    assert hooked == [r["text"] for r in plain]


def test_scorer_contract_is_checked():
    with pytest.raises(XdetoxError, match="2 results for 3 texts"):
        score_texts(
            lambda _texts, _langs: [{"TOXICITY": 0.1}] * 2,
            ["a", "b", "c"],
            ["en"] * 3,
            "TOXICITY",
            10,
            progress=False,
        )
    with pytest.raises(XdetoxError, match="non-numeric"):
        score_texts(
            lambda _texts, _langs: [{"TOXICITY": "high"}],
            ["a"],
            ["en"],
            "TOXICITY",
            10,
            progress=False,
        )
    values = score_texts(
        lambda _texts, _langs: [{"TOXICITY": float("nan")}, {}],
        ["a", "b"],
        ["en"] * 2,
        "TOXICITY",
        2,
        progress=False,
    )
    assert values == [None, None]


def test_bad_intervention_inputs_leave_no_output(setup, tmp_path):
    out = tmp_path / "intervention"
    kwargs = dict(
        score_batch=share_of_toxic_words, generation=GENERATION, progress=False, device="cpu"
    )
    with pytest.raises(DataError, match=rf"{setup['prompts']}: no prompts for language\(s\) fr"):
        run_intervention(
            setup["model"],
            setup["neurons"],
            setup["prompts"],
            out,
            config=InterventionConfig(languages=["en", "fr"]),
            **kwargs,
        )
    with pytest.raises(ConfigError, match=r"interpret\.intervention\.offsets"):
        run_intervention(
            setup["model"],
            setup["neurons"],
            setup["prompts"],
            out,
            config=InterventionConfig(offsets=[0, -1, 0]),
            **kwargs,
        )
    too_far = tmp_path / "far.csv"
    too_far.write_text("layer,index\n0,64\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"{too_far}: neuron \(layer 0, index 64\)"):
        run_intervention(setup["model"], too_far, setup["prompts"], out, **kwargs)
    assert not out.exists()


def test_activations_before_and_after(setup, tmp_path):
    """The "tuned" model is the base with the two neurons' input biases turned from +4 to -4."""
    base, tuned = make_model("gpt2"), make_model("gpt2")
    with torch.no_grad():
        for model, bias in ((base, 4.0), (tuned, -4.0)):
            model.transformer.h[1].mlp.c_fc.bias[3] = bias
            model.transformer.h[0].mlp.c_fc.bias[5] = bias
    dirs = {
        "base": save_model("gpt2", tmp_path / "base", model=base),
        "dpo": save_model("gpt2", tmp_path / "dpo", model=tuned),
    }
    out = tmp_path / "activations"
    summary = run_activations(
        dirs,
        setup["neurons"],
        setup["prompts"],
        out,
        ActivationConfig(steps=4, languages=["en", "de"]),
        progress=False,
        device="cpu",
    )
    table = pd.read_csv(out / "activations.csv").set_index(["model", "language"])
    assert list(table.columns) == ["mean_activation", "n_prompts", "n_positions"]
    for lang, n_prompts in (("en", 3), ("de", 2)):
        assert table.loc[("base", lang), "mean_activation"] > 3.0
        assert table.loc[("dpo", lang), "mean_activation"] < 0.01
        assert table.loc[("base", lang), "n_prompts"] == n_prompts
        assert 1 <= table.loc[("base", lang), "n_positions"] <= 4 * n_prompts
    for label in dirs:
        langs = (
            table.loc[(label, "en"), "mean_activation"],
            table.loc[(label, "de"), "mean_activation"],
        )
        assert table.loc[(label, "ALL"), "mean_activation"] == pytest.approx(sum(langs) / 2)
        assert summary["mean_over_languages"][label] == pytest.approx(sum(langs) / 2)
    per_neuron = pd.read_csv(out / "neuron_activations.csv")
    assert len(per_neuron) == 2 * 2 * 2  # models × languages × kept neurons
    en_base = per_neuron[(per_neuron["model"] == "base") & (per_neuron["language"] == "en")]
    assert sorted(zip(en_base["layer"], en_base["index"], strict=True)) == [(0, 5), (1, 3)]
    assert en_base["mean_activation"].mean() == pytest.approx(
        table.loc[("base", "en"), "mean_activation"]
    )
    assert (out / "activations.png").is_file()
    assert json.loads((out / "activations_summary.json").read_text())["models"] == ["base", "dpo"]


def test_prompt_selection_keeps_order_and_the_first_n(setup):
    from xdetox.components.interpret.prompt_selection import select_prompts

    prompts = read_prompts(setup["prompts"])
    chosen = select_prompts(prompts, ["DE", "en"], 2, setup["prompts"], "key")
    assert list(chosen) == ["de", "en"]
    assert [p.prompt_id for p in chosen["en"]] == ["en-0", "en-1"]
    with pytest.raises(ConfigError, match="key: not a language code"):
        select_prompts(prompts, ["e n"], None, setup["prompts"], "key")
