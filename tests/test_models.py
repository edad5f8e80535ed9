"""Model sources and loading (xdetox.models): toy, providers, folders, gs://, Hub ids, the CLI.

gs:// runs against the real fake-gcs-server binary; models are tiny random GPT-2s built here.
Objects are put into the server with our upload code only where a download is being checked
against what the client library itself reads back, so a download never vouches for itself.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from fakes.gcs_server import FakeGcsServer
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import WhitespaceSplit
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from xdetox.cli.main import main
from xdetox.components.prepare_data.preference_data import prepare_pairs
from xdetox.config import DataConfig
from xdetox.errors import DataError, XdetoxError
from xdetox.files import read_jsonl
from xdetox.models import (
    CACHE_ENV,
    TOY_MODEL,
    context_limit,
    describe_model_dir,
    eos_token_ids,
    is_tokenizer_file,
    load_causal_lm,
    load_generation_tokenizer,
    load_model_and_tokenizer,
    load_tokenizer,
    materialize_model,
    model_eos_ids,
    optional_model,
    provider_names,
    register_provider,
    resolve_model,
    unregister_provider,
)
from xdetox.models.gcs_cache import STAMP, gcs_cache_folder
from xdetox.storage import upload_gcs_prefix
from xdetox.toy import ensure_toy_model, toy_pairs_dir, toy_prompts_path
from xdetox.toy.data_sources import is_toy, local_data, toy_data

WORDS = ["the", "cat", "sat", "on", "a", "mat", "my", "brother", "told", "me", "that", "he"]
EOS_ID = 0
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")

# ------------------------------------------------------------------------------------ fixtures


def _save_tiny_model(folder: Path, seed: int = 0) -> Path:
    """A random 1-layer GPT-2 with a word-level tokenizer (eos, no pad: like GPT-2)."""
    vocab = {"[EOS]": EOS_ID, "<unk>": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    backend = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="[EOS]").save_pretrained(folder)
    torch.manual_seed(seed)
    config = GPT2Config(
        n_layer=1, n_head=2, n_embd=16, n_positions=32, vocab_size=len(vocab),
        bos_token_id=EOS_ID, eos_token_id=EOS_ID,
    )  # fmt: skip
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _save_tiny_model(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh model cache per test, so no test sees another's downloads.

    The toy model lives in the same cache: tests that need it take ``toy_model`` (a module
    fixture, so built or reused in the user's cache before this one changes the environment).
    """
    folder = tmp_path / "xdetox-cache"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder


@pytest.fixture(scope="module")
def toy_model() -> Path:
    return ensure_toy_model(progress=False)


@pytest.fixture
def bucket(gcs_server: FakeGcsServer) -> storage.Bucket:
    """A fresh bucket per test, so tests do not see each other's objects."""
    client = storage.Client(project="xdetox-test", credentials=AnonymousCredentials())
    return client.create_bucket(f"xdetox-{uuid.uuid4().hex[:12]}")


def _put_folder(bucket: storage.Bucket, folder: Path, prefix: str) -> str:
    """Upload ``folder`` with the client library itself; return its gs:// URI."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            name = f"{prefix}/{path.relative_to(folder).as_posix()}"
            bucket.blob(name).upload_from_filename(str(path))
    return f"gs://{bucket.name}/{prefix}"


def files_under(root: Path) -> dict[str, bytes]:
    """Relative path → content of every non-hidden file below ``root``."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }


def _same_weights(a: Path, b: Path) -> bool:
    first, second = (AutoModelForCausalLM.from_pretrained(p).state_dict() for p in (a, b))
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


# ------------------------------------------------------------------------------ local sources


def test_local_folder_resolves_to_itself(tiny_model: Path) -> None:
    assert resolve_model(str(tiny_model)) == tiny_model
    assert resolve_model(tiny_model) == tiny_model
    assert resolve_model(f"  {tiny_model}  ") == tiny_model
    assert resolve_model(tiny_model, tokenizer_only=True) == tiny_model


def test_bad_local_sources_are_one_line_errors(tiny_model: Path, tmp_path: Path) -> None:
    weights = tiny_model / "model.safetensors"
    with pytest.raises(DataError, match=rf"^{weights}: expected a model folder, got a file$"):
        resolve_model(str(weights))
    missing = tmp_path / "no" / "such" / "model"
    with pytest.raises(
        DataError, match=rf"^{missing}: model folder not found, and not a Hugging Face model id$"
    ):
        resolve_model(str(missing))
    with pytest.raises(DataError, match=rf"^{missing}: model folder not found$"):
        resolve_model(missing)  # a Path is never a Hub id
    with pytest.raises(XdetoxError, match=r"^empty model source"):
        resolve_model("  ")
    assert optional_model("") is None and optional_model(None) is None


# --------------------------------------------------------------------------- toy and providers


def test_toy_source_is_the_toy_model(toy_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(toy_model.parent))  # where the toy model was built
    assert TOY_MODEL in provider_names()
    folder = resolve_model("toy")
    assert folder == toy_model
    assert describe_model_dir(folder)["model_type"] == "gpt2"


def test_registered_provider_is_a_model_source(tiny_model: Path, tmp_path: Path) -> None:
    calls: list[int] = []

    def provide() -> Path:
        calls.append(1)
        return tiny_model

    register_provider("unit-test-model", provide)
    try:
        assert "unit-test-model" in provider_names()
        assert resolve_model("unit-test-model") == tiny_model
        meta = materialize_model("unit-test-model", tmp_path / "artifact")
        assert meta["source"] == "unit-test-model" and meta["model_type"] == "gpt2"
        assert files_under(tmp_path / "artifact") == files_under(tiny_model)
        assert len(calls) == 2
        with pytest.raises(ValueError, match="already registered"):
            register_provider("unit-test-model", provide)
        register_provider("unit-test-model", lambda: tmp_path / "nothing", replace=True)
        with pytest.raises(DataError, match=r"^unit-test-model: model provider returned .*"):
            resolve_model("unit-test-model")
    finally:
        unregister_provider("unit-test-model")
    assert "unit-test-model" not in provider_names()


@pytest.mark.parametrize("name", ["", "org/model", "gs://b", " padded", "a\\b"])
def test_provider_names_cannot_look_like_other_sources(name: str) -> None:
    with pytest.raises(ValueError, match="model provider name"):
        register_provider(name, lambda: Path("."))


def test_toy_data_sources_resolve_in_one_place(tmp_path: Path) -> None:
    assert is_toy("toy") and is_toy(" toy ") and not is_toy(Path("toy")) and not is_toy("toys")
    assert toy_data("toy", "prompts") == toy_prompts_path()
    assert toy_data("toy", "pairs") == toy_pairs_dir()
    assert toy_data(str(tmp_path), "prompts") is None
    with local_data("toy", "parallel") as path:
        assert path.is_file() and path.suffix == ".jsonl"
    absent = local_data(str(tmp_path / "absent.jsonl"), "prompts")
    with pytest.raises(DataError, match=r"absent.jsonl: no such file or folder"), absent:
        pass


# -------------------------------------------------------------------------------------- gs://


def test_gcs_model_is_downloaded_once_into_the_cache(
    bucket: storage.Bucket, tiny_model: Path, cache: Path
) -> None:
    uri = _put_folder(bucket, tiny_model, "models/tiny")

    folder = resolve_model(uri)

    assert folder == gcs_cache_folder(uri) and folder.is_relative_to(cache)
    assert files_under(folder) == files_under(tiny_model)
    assert _same_weights(folder, tiny_model)
    assert [p.name for p in folder.parent.iterdir() if p.name.endswith(".tmp")] == []
    # Unchanged objects: the cached copy is used as it is (a file added to it survives).
    (folder / "marker.txt").write_text("still here")
    assert resolve_model(uri + "/") == folder
    assert (folder / "marker.txt").is_file()


def test_changed_gcs_model_is_downloaded_again(
    bucket: storage.Bucket, tiny_model: Path, tmp_path: Path
) -> None:
    uri = _put_folder(bucket, tiny_model, "models/tiny")
    folder = resolve_model(uri)
    (folder / "marker.txt").write_text("stale copy")
    other = _save_tiny_model(tmp_path / "retrained", seed=1)
    _put_folder(bucket, other, "models/tiny")  # a new upload under the same name

    assert resolve_model(uri) == folder
    assert not (folder / "marker.txt").exists()
    assert _same_weights(folder, other) and not _same_weights(folder, tiny_model)


def test_tokenizer_only_download_fetches_no_weights(
    bucket: storage.Bucket, tiny_model: Path
) -> None:
    uri = _put_folder(bucket, tiny_model, "models/tiny")

    folder = resolve_model(uri, tokenizer_only=True)

    names = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    assert names and all(is_tokenizer_file(n) for n in names)
    assert not [n for n in names if n.endswith(WEIGHT_SUFFIXES)]
    assert "generation_config.json" not in names and "config.json" in names
    assert not gcs_cache_folder(uri).exists()  # the full model was not downloaded
    text = "my brother told me that he sat"
    assert load_tokenizer(folder)(text)["input_ids"] == load_tokenizer(tiny_model)(text)[
        "input_ids"
    ]


def test_failed_gcs_download_leaves_nothing_and_leftovers_are_cleaned(
    bucket: storage.Bucket, tiny_model: Path, cache: Path
) -> None:
    bucket.blob("models/broken/model.safetensors").upload_from_string(b"not really weights")
    broken = f"gs://{bucket.name}/models/broken"
    with pytest.raises(DataError, match=rf"^{broken}: not a Hugging Face model folder"):
        resolve_model(broken)
    assert not gcs_cache_folder(broken).exists()
    assert [p for p in (cache / "models").iterdir() if p.name.endswith(".tmp")] == []

    # A download killed half-way leaves its temporary folder; the next download removes it.
    uri = _put_folder(bucket, tiny_model, "models/tiny")
    target = gcs_cache_folder(uri)
    leftover = target.parent / f".{target.name}.killed.tmp"
    leftover.mkdir(parents=True)
    (leftover / "config.json").write_text("{")
    assert resolve_model(uri) == target
    assert not leftover.exists()
    assert json.loads((target / STAMP).read_text())["source"] == uri


def test_gcs_errors_name_the_uri(bucket: storage.Bucket) -> None:
    with pytest.raises(DataError, match=rf"^gs://{bucket.name}/absent: no object or folder"):
        resolve_model(f"gs://{bucket.name}/absent")
    bucket.blob("models/readme.txt").upload_from_string(b"hello")
    with pytest.raises(DataError, match=r"readme.txt: expected a model folder, got a single"):
        resolve_model(f"gs://{bucket.name}/models/readme.txt")
    bucket.blob("models/weights-only/model.safetensors").upload_from_string(b"x")
    with pytest.raises(DataError, match=r"weights-only: no tokenizer files"):
        resolve_model(f"gs://{bucket.name}/models/weights-only", tokenizer_only=True)


def test_materialize_model_from_gcs(bucket: storage.Bucket, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=64))
    model.save_pretrained(tmp_path / "saved")
    uri = f"gs://{bucket.name}/models/tiny"
    upload_gcs_prefix(tmp_path / "saved", uri)

    out = tmp_path / "artifact" / "model"
    meta = materialize_model(uri, out)

    assert meta["source"] == uri
    assert meta["model_type"] == "gpt2"
    assert meta["weights_bytes"] == (tmp_path / "saved" / "model.safetensors").stat().st_size
    assert files_under(out) == files_under(tmp_path / "saved")
    assert [p.name for p in out.parent.iterdir()] == ["model"]  # no temporary folder left
    assert _same_weights(out, tmp_path / "saved")


def test_materialize_model_from_gcs_folder_without_config(
    bucket: storage.Bucket, tmp_path: Path
) -> None:
    bucket.blob("models/broken/model.safetensors").upload_from_string(b"not really weights")
    uri = f"gs://{bucket.name}/models/broken"
    out = tmp_path / "artifact" / "model"

    with pytest.raises(DataError, match=rf"^{uri}: not a Hugging Face model folder"):
        materialize_model(uri, out)

    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_materialize_model_from_a_local_folder(tiny_model: Path, tmp_path: Path) -> None:
    meta = materialize_model(str(tiny_model), tmp_path / "model")
    assert files_under(tmp_path / "model") == files_under(tiny_model)
    assert meta["weights_bytes"] == (tiny_model / "model.safetensors").stat().st_size
    tokenizer_only = tmp_path / "tokenizer"
    shutil.copytree(tiny_model, tokenizer_only, ignore=shutil.ignore_patterns("config.json"))
    with pytest.raises(DataError, match="not a Hugging Face model folder"):
        materialize_model(str(tokenizer_only), tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------- Hub ids


@pytest.fixture
def hub_cache(tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Hugging Face cache holding ``xdetox-test/tiny`` (the layout huggingface_hub writes:
    ``models--org--name/refs/main`` → ``snapshots/<commit>/``); the tests run offline."""
    root = tmp_path / "hf-hub"
    repo = root / "models--xdetox-test--tiny"
    commit = "0" * 40
    shutil.copytree(tiny_model, repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(root))
    return repo / "snapshots" / commit


def test_hub_id_resolves_from_the_hugging_face_cache(hub_cache: Path, tiny_model: Path) -> None:
    assert huggingface_hub.constants.HF_HUB_OFFLINE  # tests/conftest.py: never the network
    folder = resolve_model("xdetox-test/tiny")
    assert folder.resolve() == hub_cache.resolve()
    assert _same_weights(folder, tiny_model)
    assert resolve_model("xdetox-test/tiny", tokenizer_only=True).resolve() == hub_cache.resolve()


def test_unavailable_hub_id_is_a_one_line_error(hub_cache: Path) -> None:
    with pytest.raises(DataError) as info:
        resolve_model("xdetox-test/absent")
    message = str(info.value)
    assert message.startswith("xdetox-test/absent: not a local model folder, and the Hugging Face")
    assert "\n" not in message


# -------------------------------------------------------------------------------------- loading


def test_loading_helpers(tiny_model: Path, tmp_path: Path) -> None:
    tokenizer = load_generation_tokenizer(tiny_model)
    assert tokenizer.padding_side == "left" and tokenizer.pad_token == "[EOS]"
    model, tok = load_model_and_tokenizer(tiny_model, "cpu")
    assert not model.training and next(model.parameters()).dtype == torch.float32
    assert tok.pad_token_id == EOS_ID
    assert eos_token_ids(model, tok) == [EOS_ID] == model_eos_ids(tiny_model, tok)
    assert context_limit(model, 8) == 32 - 8
    with pytest.raises(DataError, match=rf"^{tmp_path / 'x'}: cannot load tokenizer: model folder"):
        load_tokenizer(tmp_path / "x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=rf"^{tmp_path / 'empty'}: cannot load a causal LM \("):
        load_causal_lm(tmp_path / "empty", "cpu")


# ------------------------------------------------------------------------ stages and the CLI


def test_prepare_pairs_counts_tokens_with_a_gcs_tokenizer(
    bucket: storage.Bucket, tiny_model: Path, tmp_path: Path
) -> None:
    uri = _put_folder(bucket, tiny_model, "models/tiny")
    config = DataConfig.model_validate(
        {"eval_fraction": 0.0, "length_filter": {"unit": "tokens", "max_length": 1000}}
    )
    stats = prepare_pairs("toy", tmp_path / "pairs", config, tokenizer_source=uri, progress=False)
    assert stats["length_unit"] == "tokens" and stats["n_train"] > 0
    assert gcs_cache_folder(uri, tokenizer_only=True).is_dir()
    assert not gcs_cache_folder(uri).exists()  # counting tokens fetched no weights


def test_generate_command_takes_a_gcs_model(
    bucket: storage.Bucket, tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    uri = _put_folder(bucket, tiny_model, "models/tiny")
    out = tmp_path / "generations.jsonl"
    code = main([
        "generate", "--model", uri, "--prompts", "toy", "--language", "en",
        "--output", str(out), "--n", "2", "--max-tokens", "4", "--backend", "hf",
        "--set", "data.max_prompts_per_language=3", "--label", "tiny",
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    records = read_jsonl(out)
    assert len(records) == 3 * 2
    assert {r["model"] for r in records} == {"tiny"} and {r["language"] for r in records} == {"en"}
    assert all(1 <= r["n_tokens"] <= 4 for r in records)
    assert f"6 generations → {out}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("/no/such/model", "/no/such/model: model folder not found, and not a Hugging Face"),
        ("gs://xdetox-no-such-bucket/m", "gs://xdetox-no-such-bucket/m: bucket 'xdetox-no-such"),
    ],
)
def test_bad_model_source_exits_2_with_one_line(
    gcs_server: FakeGcsServer, tmp_path: Path, capsys: pytest.CaptureFixture, model, message
) -> None:
    out = tmp_path / "g.jsonl"
    code = main(["generate", "--model", model, "--prompts", "toy", "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"xdetox: error: {message}") and err.count("\n") == 1
    assert not out.exists()


def test_merge_command_takes_gcs_base_and_adapter(
    bucket: storage.Bucket, tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    lora = LoraConfig(r=2, target_modules=["c_attn"], fan_in_fan_out=True,
                      init_lora_weights=False, task_type="CAUSAL_LM")  # fmt: skip
    adapter = tmp_path / "adapter"
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model), lora).save_pretrained(adapter)
    base_uri = _put_folder(bucket, tiny_model, "models/base")
    adapter_uri = _put_folder(bucket, adapter, "adapters/dpo")
    out = tmp_path / "merged"

    code = main(["merge", "--base", base_uri, "--adapter", adapter_uri, "--output", str(out)])

    assert code == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["source"] == "lora"
    merged = AutoModelForCausalLM.from_pretrained(out).state_dict()
    base = AutoModelForCausalLM.from_pretrained(tiny_model).state_dict()
    name = "transformer.h.0.attn.c_attn.weight"
    assert not torch.equal(merged[name], base[name])  # the adapter was folded in
    assert torch.equal(merged["transformer.wte.weight"], base["transformer.wte.weight"])
