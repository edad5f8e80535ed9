"""Sharded generation: a rerun leaves one copy of every sample, a killed run resumes exactly."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from xdetox.components.generate.hf_backend import generate_file
from xdetox.components.generate.prompt_file import Prompt
from xdetox.components.generate.shards import (
    generate_sharded,
    model_fingerprint,
    plan_shards,
    shard_dir_for,
)
from xdetox.config import GenerationConfig
from xdetox.errors import ConfigError, XdetoxError
from xdetox.files import read_jsonl

REPO = Path(__file__).resolve().parent.parent
SENTENCE = "the cat sat on mat a dog ran in park we like green apples le chat noir dort"
WORDS = SENTENCE.split(" ")
PROMPTS = [
    ("en-1", "en", "the cat"),
    ("en-2", "en", "a dog ran in the park"),
    ("en-3", "en", "we like"),
    ("fr-1", "fr", "le chat noir dort"),
    ("fr-2", "fr", "le"),
]
CONFIG = GenerationConfig(n=3, temperature=1.0, top_p=0.95, max_new_tokens=6, batch_size=4)


class Interrupted(Exception):
    """Stands in for a kill: raised from the shard hook."""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    vocab = {"[EOS]": 0, "<unk>": 1, **{w: i + 2 for i, w in enumerate(sorted(set(WORDS)))}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="[EOS]").save_pretrained(folder)
    torch.manual_seed(0)
    config = GPT2Config(
        n_layer=1, n_head=2, n_embd=32, n_positions=64, vocab_size=len(vocab),
        bos_token_id=0, eos_token_id=0, initializer_range=0.3,
    )  # fmt: skip
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


@pytest.fixture
def prompts_path(tmp_path) -> Path:
    return write_prompts(tmp_path / "prompts.jsonl", PROMPTS)


def write_prompts(path: Path, prompts: list[tuple[str, str, str]]) -> Path:
    lines = [json.dumps({"prompt_id": p, "language": lang, "prompt": t}) for p, lang, t in prompts]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def generate(model_dir, prompts_path, out, config=CONFIG, **kwargs) -> int:
    kwargs.setdefault("shard_size", 2)  # 5 prompts -> shards of 2, 2 and 1 prompts
    return generate_file(
        model_dir, prompts_path, out, model_label="base", config=config, progress=False, **kwargs
    )


def stop_after(index: int):
    def hook(done: int, total: int) -> None:
        if done == index:
            raise Interrupted(f"stopped after shard {done} of {total}")

    return hook


def recorder(into: list[int]):
    return lambda done, total: into.append(done)


def leftovers(folder: Path) -> list[str]:
    """Temporary files and shard folders: none may remain after a finished run."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or ".shards" in p.name)


@pytest.fixture
def reference(model_dir, prompts_path, tmp_path) -> bytes:
    """An uninterrupted run's bytes."""
    out = tmp_path / "reference" / "gen.jsonl"
    assert generate(model_dir, prompts_path, out) == 3 * len(PROMPTS)
    return out.read_bytes()


def test_plan_shards_keeps_file_order():
    prompts = [Prompt(f"p{i}", "en", "x", i + 1) for i in range(5)]
    shards = plan_shards(prompts, 2)
    assert [[p.prompt_id for p in s.prompts] for s in shards] == [
        ["p0", "p1"],
        ["p2", "p3"],
        ["p4"],
    ]
    assert [s.name for s in shards] == ["shard-00000", "shard-00001", "shard-00002"]
    with pytest.raises(ConfigError, match=r"generation\.shard_size: must be > 0"):
        plan_shards(prompts, 0)


def test_rerun_replaces_the_output_with_one_copy(model_dir, prompts_path, tmp_path, reference):
    out = tmp_path / "gen.jsonl"
    for _ in range(2):
        assert generate(model_dir, prompts_path, out) == 15
    assert out.read_bytes() == reference
    keys = [(r["prompt_id"], r["sample_index"]) for r in read_jsonl(out)]
    assert keys == [(p, i) for p, _, _ in PROMPTS for i in range(3)]  # each sample once, in order
    assert leftovers(tmp_path) == []


def test_interrupted_run_resumes_byte_identical(model_dir, prompts_path, tmp_path, reference):
    out = tmp_path / "gen.jsonl"
    with pytest.raises(Interrupted):
        generate(model_dir, prompts_path, out, on_shard=stop_after(1))
    assert not out.exists()
    shards = shard_dir_for(out)
    assert sorted(p.name for p in shards.glob("shard-*")) == [
        "shard-00000.json",
        "shard-00000.jsonl",
        "shard-00001.json",
        "shard-00001.jsonl",
    ]
    written: list[int] = []
    assert generate(model_dir, prompts_path, out, on_shard=recorder(written)) == 15
    assert written == [2]  # only the unfinished shard was generated again
    assert out.read_bytes() == reference
    assert leftovers(tmp_path) == []


def test_batch_size_change_keeps_finished_shards(model_dir, prompts_path, tmp_path):
    out = tmp_path / "gen.jsonl"
    with pytest.raises(Interrupted):
        generate(model_dir, prompts_path, out, on_shard=stop_after(0))
    written: list[int] = []
    smaller = CONFIG.model_copy(update={"batch_size": 1})
    generate(model_dir, prompts_path, out, config=smaller, on_shard=recorder(written))
    assert written == [1, 2]


KILLED_RUN = """
import sys, time
from xdetox.components.generate.hf_backend import generate_file
from xdetox.config import GenerationConfig

def slow(done, total):
    time.sleep(30 if done == 1 else 0)  # the parent kills us while we sit here

config = GenerationConfig.model_validate_json(sys.argv[4])
generate_file(sys.argv[1], sys.argv[2], sys.argv[3], model_label="base", config=config,
              progress=False, shard_size=2, on_shard=slow)
"""


@pytest.mark.e2e
def test_killed_process_resumes_byte_identical(model_dir, prompts_path, tmp_path, reference):
    out = tmp_path / "gen.jsonl"
    args = [str(model_dir), str(prompts_path), str(out), CONFIG.model_dump_json()]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, *args], env=env)
    marker = shard_dir_for(out) / "shard-00001.json"
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no shard was finished in time"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()
    # A killed writer can leave a temp file behind; the next run must not trust or keep it.
    (shard_dir_for(out) / ".shard-00002.jsonl.abcd.tmp").write_text("half a line", "utf-8")
    written: list[int] = []
    assert generate(model_dir, prompts_path, out, on_shard=recorder(written)) == 15
    assert written == [2]
    assert out.read_bytes() == reference
    assert leftovers(tmp_path) == []


def test_changed_config_discards_finished_shards(model_dir, prompts_path, tmp_path, caplog):
    out = tmp_path / "gen.jsonl"
    with pytest.raises(Interrupted):
        generate(model_dir, prompts_path, out, on_shard=stop_after(1))
    reseeded = CONFIG.model_copy(update={"seed": 1})
    written: list[int] = []
    with caplog.at_level(logging.WARNING, logger="xdetox.components.generate.shards"):
        generate(model_dir, prompts_path, out, config=reseeded, on_shard=recorder(written))
    assert written == [0, 1, 2]
    assert "discarding 2 finished shard(s)" in caplog.text
    assert "generation changed" in caplog.text
    fresh = tmp_path / "fresh.jsonl"
    generate(model_dir, prompts_path, fresh, config=reseeded)
    assert out.read_bytes() == fresh.read_bytes()


def test_changed_model_discards_finished_shards(model_dir, prompts_path, tmp_path, caplog):
    other = tmp_path / "other-model"
    shutil.copytree(model_dir, other)
    out = tmp_path / "gen.jsonl"
    with pytest.raises(Interrupted):
        generate(other, prompts_path, out, on_shard=stop_after(0))
    weights = load_file(other / "model.safetensors")
    name = next(k for k in weights if k.endswith("wte.weight"))
    weights[name] = weights[name] * 2.0
    save_file(weights, other / "model.safetensors", metadata={"format": "pt"})
    written: list[int] = []
    with caplog.at_level(logging.WARNING, logger="xdetox.components.generate.shards"):
        generate(other, prompts_path, out, on_shard=recorder(written))
    assert written == [0, 1, 2]
    assert "discarding 1 finished shard(s)" in caplog.text and "model_sha256" in caplog.text


def test_changed_prompts_redo_only_their_shards(model_dir, prompts_path, tmp_path, reference):
    out = tmp_path / "gen.jsonl"
    edited = [*PROMPTS[:3], ("fr-1", "fr", "le chat"), PROMPTS[4]]  # shard 1 changes
    with pytest.raises(Interrupted):
        generate(model_dir, write_prompts(tmp_path / "edited.jsonl", edited), out,
                 on_shard=stop_after(2))  # fmt: skip
    written: list[int] = []
    generate(model_dir, prompts_path, out, on_shard=recorder(written))
    assert written == [1]
    assert out.read_bytes() == reference


def test_tampered_shard_is_regenerated(model_dir, prompts_path, tmp_path, reference):
    out = tmp_path / "gen.jsonl"
    with pytest.raises(Interrupted):
        generate(model_dir, prompts_path, out, on_shard=stop_after(1))
    shard = shard_dir_for(out) / "shard-00000.jsonl"
    lines = shard.read_text("utf-8").splitlines(keepends=True)
    shard.write_text("".join(lines + lines[:1]), "utf-8")  # a duplicated line
    written: list[int] = []
    generate(model_dir, prompts_path, out, on_shard=recorder(written))
    assert written == [0, 2]
    assert out.read_bytes() == reference


def test_concurrent_runs_on_one_output(model_dir, prompts_path, tmp_path, reference):
    """Two writers of the same output take turns; both succeed and one copy remains."""
    out = tmp_path / "gen.jsonl"
    errors: list[BaseException] = []

    def run() -> None:
        try:
            generate(model_dir, prompts_path, out)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert errors == []
    assert out.read_bytes() == reference
    assert leftovers(tmp_path) == []


def test_second_writer_waits_for_the_first(tmp_path):
    """While one writer holds a task's shards, another writer of that output does not touch them."""
    prompts = [Prompt(f"p{i}", "en", "x", i + 1) for i in range(2)]
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}", "utf-8")
    out = tmp_path / "gen.jsonl"
    calls: list[str] = []
    inside, release = threading.Event(), threading.Event()

    def writer(name: str):
        def records(chunk):
            calls.append(name)
            if name == "first" and not inside.is_set():
                inside.set()
                release.wait(timeout=60)
            return [{"prompt_id": p.prompt_id, "sample_index": 0} for p in chunk]

        return lambda: generate_sharded(
            prompts, out, records, model_dir=model, identity={"backend": "test"},
            samples_per_prompt=1, shard_size=1, progress=False,
        )  # fmt: skip

    first = threading.Thread(target=writer("first"))
    first.start()
    assert inside.wait(timeout=60)
    second = threading.Thread(target=writer("second"))
    second.start()
    second.join(timeout=1)
    assert second.is_alive() and calls == ["first"]  # blocked on the lock, generated nothing
    release.set()
    first.join(timeout=60)
    second.join(timeout=60)
    # The first finished and removed its shards; the second then did the whole task again.
    assert calls == ["first", "first", "second", "second"]
    assert [r["prompt_id"] for r in read_jsonl(out)] == ["p0", "p1"]
    assert leftovers(tmp_path) == []


def test_model_fingerprint_follows_content(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text('{"a": 1}', "utf-8")
    (model / "w.bin").write_bytes(b"\x00" * 10)
    (model / ".cache").mkdir()
    (model / ".cache" / "x.lock").write_text("ignored", "utf-8")
    first, table = model_fingerprint(model, progress=False)
    assert set(table) == {"config.json", "w.bin"}
    # A copy (new modification times) is the same model; changed bytes are another one.
    copy = tmp_path / "copy"
    shutil.copytree(model, copy)
    assert model_fingerprint(copy, progress=False)[0] == first
    (copy / "w.bin").write_bytes(b"\x00" * 9 + b"\x01")
    assert model_fingerprint(copy, progress=False)[0] != first
    # The cache is trusted only for files whose size and mtime are unchanged.
    assert model_fingerprint(model, table, progress=False)[0] == first


def test_own_shard_dir_keeps_other_files(model_dir, prompts_path, tmp_path, reference):
    """A caller's shard folder (e.g. on a persistent volume) loses only what the run wrote."""
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "notes.txt").write_text("keep me", "utf-8")
    out = tmp_path / "gen.jsonl"
    with pytest.raises(Interrupted):
        generate(model_dir, prompts_path, out, shard_dir=volume, on_shard=stop_after(0))
    assert (volume / "shard-00000.jsonl").is_file() and not shard_dir_for(out).exists()
    generate(model_dir, prompts_path, out, shard_dir=volume)
    assert out.read_bytes() == reference
    assert [p.name for p in volume.iterdir()] == ["notes.txt"]


def test_bad_input_leaves_nothing(model_dir, tmp_path):
    prompts = write_prompts(tmp_path / "p.jsonl", PROMPTS[:2])
    out = tmp_path / "out" / "gen.jsonl"
    with pytest.raises(ConfigError, match=r"generation\.shard_size: must be > 0, got 0"):
        generate(model_dir, prompts, out, shard_size=0)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt_id": "a", "language": "en", "prompt": ""}\n', "utf-8")
    with pytest.raises(XdetoxError, match=rf"{bad}:1: empty or non-string 'prompt'"):
        generate(model_dir, bad, out)
    with pytest.raises(XdetoxError, match="model folder not found"):
        generate(tmp_path / "missing", prompts, out)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_failure_before_any_shard_leaves_no_shard_folder(model_dir, tmp_path):
    prompts = write_prompts(tmp_path / "p.jsonl", PROMPTS[:2])
    out = tmp_path / "out" / "gen.jsonl"
    with pytest.raises(Interrupted):
        generate(model_dir, prompts, out, shard_size=1, on_shard=stop_after(0))
    assert shard_dir_for(out).is_dir()  # one finished shard is kept for the rerun

    def broken(chunk):
        raise RuntimeError("backend failed")

    fresh = tmp_path / "out" / "other.jsonl"
    with pytest.raises(RuntimeError, match="backend failed"):
        generate_sharded(
            [Prompt("a", "en", "x", 1)], fresh, broken, model_dir=model_dir,
            identity={"backend": "test"}, samples_per_prompt=1, progress=False,
        )  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["gen.jsonl.shards"]
