"""XG's interpretability protocol where it is a setting (issue 12), with values worked out by hand.

XG: Li, Yong & Bach 2024 (arXiv:2406.16235), code github.com/BatsResearch/cross-lingual-detox.
- BOS in front of each prompt exactly once (TransformerLens' ``to_tokens``), whether or not the
  tokenizer adds one itself.
- Greedy steps that run past end-of-sequence (``xg/collect_neuron_activations.py``).
- ``probe.max_length: null``: the tokenizer's limit, capped by the model's positions.
- The XG interpret recipe's values (``scripts/run_train_probe.py``: Adam at 1e-6, seed 99).
Tiny random models built here; nothing is downloaded.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from tiny_models import tiny_causal_lm, word_tokenizer
from tokenizers import processors
from transformers import PreTrainedTokenizerFast

from xdetox.components.generate.decoding import encode_prompts
from xdetox.components.generate.prompt_file import read_prompts
from xdetox.components.interpret.activations import run_activations
from xdetox.components.interpret.architectures import resolve_architecture
from xdetox.components.interpret.bos import BosTokenizer, bos_token_id, with_bos
from xdetox.components.interpret.greedy import greedy_step_activations
from xdetox.components.interpret.hooks import ActivationRecorder
from xdetox.components.interpret.intervention import run_intervention
from xdetox.components.interpret.neurons import Neuron
from xdetox.components.interpret.pooling import encode_texts, load_frozen, token_limit
from xdetox.components.interpret.probe import load_probe, run_probe, save_probe
from xdetox.components.interpret.settings import (
    ActivationConfig,
    AlignmentConfig,
    InterventionConfig,
    ProbeConfig,
    ValueVectorConfig,
)
from xdetox.components.interpret.value_vectors import run_value_vectors
from xdetox.config import GenerationConfig, load_config, to_params, validate_section
from xdetox.errors import ConfigError
from xdetox.files import read_jsonl, write_jsonl

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "pipelines" / "configs" / "xg-mgpt-interpret.yaml"

EOS, UNK, BOS = "[EOS]", "[UNK]", "[BOS]"
WORDS = [f"w{i}" for i in range(30)]
VOCAB = [EOS, UNK, BOS, *WORDS]
EOS_ID, BOS_ID = 0, 2
W = {w: VOCAB.index(w) for w in WORDS}  # w1 → 4, w2 → 5, ...


def plain_tokenizer() -> PreTrainedTokenizerFast:
    """GPT-2 style: has a BOS token but does not add it."""
    return word_tokenizer(VOCAB, eos_token=EOS, bos_token=BOS, unk_token=UNK)


def bos_adding_tokenizer() -> PreTrainedTokenizerFast:
    """Llama/Gemma style: puts BOS in front of every text itself."""
    tokenizer = plain_tokenizer()
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", special_tokens=[(BOS, BOS_ID)]
    )
    return tokenizer


def tiny_gpt2(seed: int = 0, **config) -> torch.nn.Module:
    ids = {"bos_token_id": BOS_ID, "eos_token_id": EOS_ID, "pad_token_id": EOS_ID}
    return tiny_causal_lm("gpt2", vocab_size=len(VOCAB), seed=seed, n_inner=64, **ids, **config)


def prompts_file(path: Path, texts: list[str], language: str = "en") -> Path:
    write_jsonl(
        path,
        [
            {"prompt_id": f"{language}-{i}", "language": language, "prompt": t}
            for i, t in enumerate(texts)
        ],
    )
    return path


def read_csv_rows(folder: Path) -> list[dict[str, str]]:
    with (folder / "activations.csv").open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def direct_activations(model, arch, ids: list[int], neurons) -> torch.Tensor:
    """Every position's activations of one unpadded sequence, all of it attended: ``[seq, n]``."""
    with torch.no_grad(), ActivationRecorder(arch, neurons, position="all") as recorder:
        model(torch.tensor([ids]))
    return recorder.stacked()[0]


# --------------------------------------------------------------------------- BOS exactly once
def test_bos_is_prepended_when_the_tokenizer_does_not_add_it():
    tokenizer = BosTokenizer(plain_tokenizer(), "interpret.activations.prepend_bos")
    encoding = tokenizer("w1 w2")
    assert encoding["input_ids"] == [BOS_ID, W["w1"], W["w2"]] == [2, 4, 5]
    assert encoding["attention_mask"] == [1, 1, 1]
    # A text that already starts with BOS keeps the one it has.
    assert tokenizer(f"{BOS} w1")["input_ids"] == [2, 4]
    assert tokenizer(["w3", "w1 w2"])["input_ids"] == [[2, 6], [2, 4, 5]]
    # Everything else is the wrapped tokenizer's.
    assert tokenizer.eos_token_id == EOS_ID and tokenizer.decode([2, 4]) == f"{BOS} w1"


def test_bos_is_not_doubled_when_the_tokenizer_adds_it():
    plain = bos_adding_tokenizer()
    assert plain("w1 w2")["input_ids"] == [2, 4, 5]  # the tokenizer's own BOS
    assert BosTokenizer(plain, "k")("w1 w2")["input_ids"] == [2, 4, 5]
    assert with_bos([2, 4, 5], BOS_ID) == [2, 4, 5] and with_bos([4, 5], BOS_ID) == [2, 4, 5]


def test_eos_stands_in_for_a_missing_bos_and_neither_is_a_one_line_error():
    # TransformerLens' set_tokenizer: bos_token = eos_token when a tokenizer has none.
    no_bos = word_tokenizer(VOCAB, eos_token=EOS, unk_token=UNK)
    assert bos_token_id(no_bos, "k") == EOS_ID
    assert BosTokenizer(no_bos, "k")("w1")["input_ids"] == [0, 4]
    neither = word_tokenizer(VOCAB, unk_token=UNK)
    with pytest.raises(ConfigError) as err:
        BosTokenizer(neither, "interpret.value_vectors.prepend_bos")
    message = str(err.value)
    assert message.startswith("interpret.value_vectors.prepend_bos: ") and "\n" not in message


def test_a_cut_prompt_keeps_the_prepended_bos_in_front(tmp_path):
    path = prompts_file(tmp_path / "p.jsonl", ["w1 w2 w3 w4 w5 w6"])
    encoded, cut = encode_prompts(BosTokenizer(plain_tokenizer(), "k"), read_prompts(path), 4, path)
    assert encoded == [[2, 7, 8, 9]] and cut == 1  # BOS, then the last three words (w4 w5 w6)


def _three_steps(model, tokenizer, arch, prompts, neurons, path, **flags):
    """Three greedy steps past any EOS, two prompts per batch (``flags``: ``prepend_bos``)."""
    return greedy_step_activations(
        model,
        tokenizer,
        arch,
        prompts,
        neurons,
        steps=3,
        batch_size=2,
        source=path,
        stop_at_eos=False,
        progress=False,
        **flags,
    )


def test_greedy_steps_start_from_one_bos(tmp_path):
    model = tiny_gpt2().eval()
    arch = resolve_architecture(model)
    neurons = [Neuron(0, 3), Neuron(1, 5)]
    path = prompts_file(tmp_path / "p.jsonl", ["w1 w2 w3", "w7"])
    prompts = read_prompts(path)
    tokenizer = plain_tokenizer()
    acts = _three_steps(model, tokenizer, arch, prompts, neurons, path, prepend_bos=True)
    for p, prompt in enumerate(prompts):
        ids = [BOS_ID, *tokenizer(prompt.prompt)["input_ids"]]
        with torch.no_grad():
            full = model.generate(
                torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=3,
                do_sample=False,
                pad_token_id=EOS_ID,
                eos_token_id=[],
            )[0].tolist()
        direct = direct_activations(model, arch, full, neurons)
        # Step s is read where token s is predicted: the prompt's last position, then each new
        # token's (the third new token is never fed back).
        start = len(ids) - 1
        torch.testing.assert_close(acts.values[p], direct[start : start + 3], rtol=1e-4, atol=1e-4)

    # Without the flag the plain tokenizer's prompts start at w1: other activations.
    no_bos = _three_steps(model, tokenizer, arch, prompts, neurons, path)
    assert not torch.allclose(no_bos.values, acts.values, atol=1e-3)

    # A tokenizer that adds BOS itself: prepend_bos changes nothing.
    adds = bos_adding_tokenizer()
    with_flag, without = (
        _three_steps(model, adds, arch, prompts, neurons, path, prepend_bos=flag)
        for flag in (True, False)
    )
    assert torch.equal(with_flag.values, without.values)
    torch.testing.assert_close(with_flag.values, acts.values)  # the same tokens as above


# --------------------------------------------------------------------------- past end-of-sequence
def always_eos_model() -> torch.nn.Module:
    """GPT-2 whose final norm outputs a fixed vector along EOS's (tied) embedding, so the
    argmax is EOS at every step; the MLP neurons before it are untouched."""
    model = tiny_gpt2(seed=3).eval()
    with torch.no_grad():
        wte = model.transformer.wte.weight
        wte[EOS_ID] *= 5.0
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.copy_(wte[EOS_ID])
    return model


def test_steps_continue_past_eos_for_the_configured_number(tmp_path):
    model = always_eos_model()
    arch = resolve_architecture(model)
    tokenizer = plain_tokenizer()
    neurons = [Neuron(0, 1), Neuron(1, 2)]
    path = prompts_file(tmp_path / "p.jsonl", ["w1 w2 w3", "w5"])
    prompts = read_prompts(path)
    kwargs = {"steps": 5, "batch_size": 2, "source": path, "progress": False}

    stopping = greedy_step_activations(
        model, tokenizer, arch, prompts, neurons, stop_at_eos=True, **kwargs
    )
    # The first new token is EOS: one step each, the rest never ran.
    assert stopping.valid.sum(dim=1).tolist() == [1, 1]
    assert stopping.n_positions == 2

    running = greedy_step_activations(
        model, tokenizer, arch, prompts, neurons, stop_at_eos=False, **kwargs
    )
    assert running.valid.sum(dim=1).tolist() == [5, 5] and running.n_positions == 10
    for p, prompt in enumerate(prompts):
        ids = tokenizer(prompt.prompt)["input_ids"]
        # What XG's loop feeds: the prompt, then EOS after EOS, every token attended.
        direct = direct_activations(model, arch, ids + [EOS_ID] * 4, neurons)
        start = len(ids) - 1
        torch.testing.assert_close(running.values[p], direct[start:], rtol=1e-4, atol=1e-4)
        # The step both runs share is the same.
        torch.testing.assert_close(running.values[p, 0], stopping.values[p, 0])
    # The per-neuron mean is over all 2 × 5 positions.
    torch.testing.assert_close(running.mean_per_neuron(), running.values.mean(dim=(0, 1)))


def test_the_stages_pass_the_settings_on(tmp_path):
    """value-vectors and activations with XG's settings: 2 prompts × 4 steps each are measured,
    past the EOS the model always predicts; with the defaults, one step each."""
    folder = tmp_path / "m"
    always_eos_model().save_pretrained(folder)
    plain_tokenizer().save_pretrained(folder)
    prompts = prompts_file(tmp_path / "p.jsonl", ["w1 w2 w3", "w5"])
    probe = tmp_path / "probe.safetensors"
    save_probe(probe, torch.randn(32, generator=torch.Generator().manual_seed(0)), {})
    neurons = tmp_path / "neurons.csv"
    neurons.write_text("layer,index\n0,1\n1,2\n", encoding="utf-8")
    run = {"progress": False, "device": "cpu"}
    xg = {"steps": 4, "prepend_bos": True, "stop_at_eos": False}

    summary = run_value_vectors(
        folder, probe, prompts, tmp_path / "vv", ValueVectorConfig(top_k=3, **xg), **run
    )
    assert (summary["n_positions"], summary["bos_token_id"]) == (8, BOS_ID)
    default = run_value_vectors(
        folder, probe, prompts, tmp_path / "vv0", ValueVectorConfig(top_k=3, steps=4), **run
    )
    assert (default["n_positions"], default["bos_token_id"]) == (2, None)

    run_activations(
        {"base": folder}, neurons, prompts, tmp_path / "act", ActivationConfig(**xg), **run
    )
    table = {r["model"] + r["language"]: r for r in read_csv_rows(tmp_path / "act")}
    assert (table["baseen"]["n_prompts"], table["baseen"]["n_positions"]) == ("2", "8")


# --------------------------------------------------------------------------- intervention
def test_intervention_prompts_get_one_bos(tmp_path):
    folder = tmp_path / "m"
    tiny_gpt2(seed=1).save_pretrained(folder)
    plain_tokenizer().save_pretrained(folder)
    prompts = prompts_file(tmp_path / "p.jsonl", ["w1 w2", "w9 w3 w4"])
    neurons = tmp_path / "neurons.csv"
    neurons.write_text("layer,index\n1,3\n", encoding="utf-8")
    greedy = GenerationConfig(n=1, temperature=0.0, top_p=1.0, max_new_tokens=4, seed=0)
    run_intervention(
        folder,
        neurons,
        prompts,
        tmp_path / "out",
        score_batch=lambda texts, _langs: [{"TOXICITY": 0.0} for _ in texts],
        generation=greedy,
        config=InterventionConfig(offsets=[0.0], prepend_bos=True),
        progress=False,
        device="cpu",
    )
    records = list(read_jsonl(tmp_path / "out" / "intervention_generations.jsonl"))
    model, tokenizer, _ = load_frozen(folder, "cpu")
    for record, text in zip(records, ["w1 w2", "w9 w3 w4"], strict=True):
        assert record["prompt"] == text  # the record keeps the prompt as written
        ids = [BOS_ID, *tokenizer(text)["input_ids"]]
        with torch.no_grad():
            out = model.generate(
                torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=4,
                do_sample=False,
                pad_token_id=EOS_ID,
            )[0].tolist()
        new = out[len(ids) :]
        kept = new[: new.index(EOS_ID)] if EOS_ID in new else new
        assert record["text"] == tokenizer.decode(ids + kept, skip_special_tokens=True)[len(text) :]


# --------------------------------------------------------------------------- max_length: null
@pytest.mark.parametrize(
    ("kind", "declared", "expected"),
    [
        ("gpt2", None, 64),  # no tokenizer limit: the 64 positions
        ("gpt2", 5, 5),  # the tokenizer's, as XG's truncation=True
        ("gpt2", 100, 64),  # a tokenizer that claims more than the model has
        ("bloom", None, None),  # ALiBi, no limit anywhere: nothing is cut
        ("bloom", 7, 7),
    ],
)
def test_token_limit_is_the_tokenizer_s_capped_by_the_positions(kind, declared, expected):
    model = tiny_causal_lm(kind, vocab_size=len(VOCAB))
    tokenizer = plain_tokenizer()
    if declared is not None:
        tokenizer.model_max_length = declared
    assert token_limit(model, tokenizer) == expected


def test_encode_texts_without_a_limit_keeps_every_token():
    tokenizer = plain_tokenizer()
    text = " ".join(WORDS)
    assert len(encode_texts(tokenizer, [text], None)[0]) == 30
    assert encode_texts(tokenizer, [text], 3)[0] == [W["w0"], W["w1"], W["w2"]]


def _probe_csv(path: Path, n: int = 40) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["text", "label"])
        for i in range(n):
            # Eight words each: the second half differs by label, past a 4-token cut.
            head = " ".join(WORDS[(i + k) % 10] for k in range(4))
            tail = " ".join(WORDS[20 + (i + k) % 5 + 5 * (i % 2)] for k in range(4))
            out.writerow([f"{head} {tail}", i % 2])
    return path


def test_probe_max_length_null_uses_the_tokenizer_s_limit(tmp_path):
    folder = tmp_path / "m"
    tiny_gpt2(seed=2).save_pretrained(folder)
    tokenizer = plain_tokenizer()
    tokenizer.model_max_length = 4
    tokenizer.save_pretrained(folder)
    data = _probe_csv(tmp_path / "train.csv")
    base = {"epochs": 2, "learning_rate": 0.01, "validation_fraction": 0.25}
    unset = run_probe(
        folder, data, tmp_path / "a", ProbeConfig(**base), progress=False, device="cpu"
    )
    four = run_probe(
        folder,
        data,
        tmp_path / "b",
        ProbeConfig(**base, max_length=4),
        progress=False,
        device="cpu",
    )
    eight = run_probe(
        folder,
        data,
        tmp_path / "c",
        ProbeConfig(**base, max_length=8),
        progress=False,
        device="cpu",
    )
    assert unset["max_length_used"] == 4 and four["max_length_used"] == 4
    assert eight["max_length_used"] == 8
    # The same four tokens per text give the same probe; eight give another.
    assert torch.equal(load_probe(tmp_path / "a"), load_probe(tmp_path / "b"))
    assert not torch.equal(load_probe(tmp_path / "a"), load_probe(tmp_path / "c"))


# --------------------------------------------------------------------------- the recipe
def test_recipe_holds_the_reference_values():
    interpret = load_config([RECIPE]).interpret
    probe = interpret.probe
    # scripts/run_train_probe.py and TrainArgs' defaults (xg/training/probe_trainer.py).
    assert (probe.learning_rate, probe.seed, probe.max_length) == (1e-6, 99, None)
    assert (probe.batch_size, probe.epochs, probe.validation_fraction) == (10, 20, 0.1)
    assert probe.label == "toxic"
    # xg/collect_neuron_activations.py, via TransformerLens' to_tokens.
    for section in (interpret.value_vectors, interpret.activations):
        assert (section.steps, section.batch_size) == (20, 10)
        assert (section.prepend_bos, section.stop_at_eos) == (True, False)
    assert (interpret.value_vectors.top_k, interpret.value_vectors.language) == (100, "en")
    assert interpret.intervention.prepend_bos is True
    assert interpret.intervention.offsets == [0.0, -1.0, -2.0, -3.0, -4.0, -5.0]
    # xg/retrieval: 200 translated prompts, padded 50 at a time, never truncated.
    alignment = interpret.alignment
    assert (alignment.max_pairs_per_language, alignment.max_length) == (200, None)
    assert (alignment.batch_size, alignment.layer) == (50, "mean")


def test_recipe_scores_with_perspective_and_names_the_fallback():
    config = load_config([RECIPE])
    assert config.scoring.scorer == "perspective"
    assert config.scoring.empty_text == "space"
    header = RECIPE.read_text(encoding="utf-8")
    assert "no longer served after 2026" in header
    assert "--set scoring.scorer=classifier" in header
    assert "Google Translate" in header and "RTP-LX" in header
    # The fallback is one line away.
    fallback = load_config([RECIPE], ["scoring.scorer=classifier"])
    assert fallback.scoring.classifier.preset == "textdetox-xlmr"


def test_defaults_elsewhere_keep_the_generation_pipeline_s_tokens():
    assert (ProbeConfig().learning_rate, ProbeConfig().seed, ProbeConfig().max_length) == (
        1e-3,
        0,
        None,
    )
    for section in (ValueVectorConfig(), ActivationConfig()):
        assert (section.prepend_bos, section.stop_at_eos) == (False, True)
    assert InterventionConfig().prepend_bos is False
    assert AlignmentConfig().max_length is None


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("interpret.probe.max_length=0", "interpret.probe.max_length"),
        ("interpret.activations.stop_at_eos=maybe", "interpret.activations.stop_at_eos"),
        ("interpret.value_vectors.prepend_bos=[1]", "interpret.value_vectors.prepend_bos"),
        ("interpret.alignment.max_length=-3", "interpret.alignment.max_length"),
    ],
)
def test_bad_settings_are_one_line_naming_the_key(override, key):
    with pytest.raises(ConfigError) as err:
        load_config([RECIPE], [override])
    message = str(err.value)
    assert key in message and "\n" not in message.strip()


@pytest.mark.parametrize(
    "recipe", ["xg-mgpt-interpret.yaml", "gemma3-270m-interpret.yaml", "toy-interpret.yaml"]
)
def test_interpret_sections_survive_kfp_struct_parameters(recipe):
    """Structs hold no nulls (max_length: null must come back as None) and make ints floats."""
    interpret = load_config([ROOT / "pipelines" / "configs" / recipe]).interpret
    for name in ("probe", "value_vectors", "intervention", "activations", "alignment"):
        section = getattr(interpret, name)
        struct = {
            k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v
            for k, v in to_params(section).items()
        }
        assert validate_section(type(section), struct, name) == section, f"{recipe}: {name}"
