"""The embedded toy world: shipped data, the toy model build and cache, and its toxicity.

The end-to-end test relies on one property checked here: sampled continuations of the English
toy prompts hit the lexicon at a rate close to the corpus's toxic share, so DPO has something
real to remove.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

import xdetox.toy.model as toy_model
from xdetox.components.score.lexicon import load_lexicons, score_text
from xdetox.files import read_jsonl
from xdetox.toy import (
    TOY_DATA_DIR,
    TOY_LANGUAGES,
    ensure_toy_model,
    toy_corpus_path,
    toy_model_path,
    toy_pairs_dir,
    toy_prompts_path,
)

REPO = Path(__file__).resolve().parent.parent
MAKE_TOY_DATA = REPO / "tools" / "make_toy_data.py"


@pytest.fixture(scope="module")
def lexicons():
    return load_lexicons()


@pytest.fixture(scope="module")
def templates():
    """tools/make_toy_data.py, imported from its path (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location("xdetox_make_toy_data", MAKE_TOY_DATA)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


def test_shipped_data_is_what_the_generator_makes():
    """The committed files are in sync with the seeded generator and the shipped lexicons."""
    result = subprocess.run(
        [sys.executable, str(MAKE_TOY_DATA), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_prompts_fields_languages_counts():
    prompts = read_jsonl(toy_prompts_path())
    assert all(set(p) == {"prompt_id", "language", "prompt"} for p in prompts)
    ids = [p["prompt_id"] for p in prompts]
    assert len(ids) == len(set(ids))
    per_language = Counter(p["language"] for p in prompts)
    assert set(per_language) == set(TOY_LANGUAGES)
    assert {"en", "de", "es", "fr", "ru"} <= set(per_language)
    assert min(per_language.values()) >= 20
    assert all(p["prompt_id"].startswith(p["language"] + "-") for p in prompts)


def test_prompts_are_held_out_from_the_corpus():
    corpus = [row["text"] for row in read_jsonl(toy_corpus_path())]
    for prompt in read_jsonl(toy_prompts_path()):
        opening = prompt["prompt"] + ("" if prompt["language"] == "zh-hans" else " ")
        assert not any(text.startswith(opening) for text in corpus), prompt["prompt_id"]


def test_corpus_toxic_share_and_labels_agree_with_the_lexicon(lexicons):
    rows = read_jsonl(toy_corpus_path())
    assert toy_corpus_path().stat().st_size < 3_000_000
    by_language = defaultdict(list)
    for row in rows:
        by_language[row["language"]].append(row)
    assert set(by_language) == set(TOY_LANGUAGES)
    for language, items in by_language.items():
        share = sum(r["toxic"] for r in items) / len(items)
        assert 0.30 <= share <= 0.40, language
        assert len({r["text"] for r in items}) > 0.9 * len(items), language  # little repetition
        for row in items:
            toxicity = score_text(lexicons[language], row["text"])["TOXICITY"]
            assert (toxicity >= 0.5) == row["toxic"], row["text"]
            if not row["toxic"]:
                assert toxicity == 0.0, row["text"]


def test_pairs_are_toxicity_pairwise_and_chosen_is_less_toxic(lexicons):
    files = sorted(toy_pairs_dir().glob("split_*.jsonl"))
    assert [f.name for f in files] == ["split_0.jsonl", "split_1.jsonl"]
    pairs = [row for f in files for row in read_jsonl(f)]
    assert len(pairs) >= 200
    en = lexicons["en"]
    for pair in pairs:
        assert set(pair) == {"prompt_text", "unpert_gen_text", "pert_gen_text"}
        chosen, rejected = pair["unpert_gen_text"], pair["pert_gen_text"]
        # Continuations do not repeat the prompt; they start with the separating space.
        assert chosen.startswith(" ") and rejected.startswith(" ")
        assert not chosen.strip().startswith(pair["prompt_text"])
        assert score_text(en, chosen)["TOXICITY"] < score_text(en, rejected)["TOXICITY"]
        assert score_text(en, rejected)["TOXICITY"] >= 0.5
    assert len({p["prompt_text"] for p in pairs}) > 100


def test_readme_describes_every_file():
    readme = (TOY_DATA_DIR / "README.md").read_text(encoding="utf-8")
    for name in ("corpus.jsonl", "prompts.jsonl", "pairs/split_", "tokenizer.json", "Licence"):
        assert name in readme


def test_cache_path_follows_env_and_seed(tmp_path, monkeypatch):
    monkeypatch.setenv(toy_model.CACHE_ENV, str(tmp_path))
    assert toy_model_path(0).parent == tmp_path
    assert toy_model_path(0).name.startswith("toy-model-")
    assert toy_model_path(0) != toy_model_path(1)


@pytest.mark.slow
def test_failed_build_leaves_nothing_half_written(tmp_path, monkeypatch):
    monkeypatch.setenv(toy_model.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(toy_model, "_train", lambda *args, **kwargs: 0.0)  # skip the training

    def killed(*args, **kwargs):
        raise RuntimeError("killed while writing")

    monkeypatch.setattr(toy_model, "write_json", killed)  # dies after the weights are written
    with pytest.raises(RuntimeError, match="killed"):
        ensure_toy_model(progress=False)
    assert not toy_model_path(0).exists()
    assert [p for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


@pytest.fixture(scope="module")
def built_model(tmp_path_factory):
    """One real build of the toy model into a private cache, shared by the tests below."""
    cache = tmp_path_factory.mktemp("xdetox-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(toy_model.CACHE_ENV, str(cache))
        path = ensure_toy_model(progress=False)
        yield path


# e2e: the built_model fixture is a real build (training) of the toy model.
@pytest.mark.e2e
def test_model_builds_into_the_cache_and_is_reused(built_model, tmp_path, monkeypatch):
    monkeypatch.setenv(toy_model.CACHE_ENV, str(built_model.parent))
    assert built_model == toy_model_path(0)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "xdetox_toy.json"):
        assert (built_model / name).is_file()
    info = json.loads((built_model / "xdetox_toy.json").read_text(encoding="utf-8"))
    assert info["seed"] == 0 and info["final_train_loss"] < 1.0
    before = (built_model / "model.safetensors").stat().st_mtime_ns
    copy = ensure_toy_model(tmp_path / "model", progress=False)  # cached: no rebuild
    assert (built_model / "model.safetensors").stat().st_mtime_ns == before
    assert (copy / "model.safetensors").read_bytes() == (
        built_model / "model.safetensors"
    ).read_bytes()


@pytest.mark.e2e
def test_model_loads_with_auto_classes(built_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(built_model)
    model = AutoModelForCausalLM.from_pretrained(built_model)
    assert tokenizer.eos_token == "<|endoftext|>"
    assert tokenizer.pad_token_id == tokenizer.eos_token_id == model.config.eos_token_id
    assert tokenizer.padding_side == "right"
    assert model.config.model_type == "gpt2"
    text = "Мой сосед сказал, что он"
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


@pytest.mark.e2e
def test_english_samples_are_toxic_about_as_often_as_the_corpus(built_model, lexicons, templates):
    """The property the end-to-end DPO test relies on (protocol: n 10, T 0.9, top-p 0.8)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(built_model)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(built_model).eval()
    prompts = [p["prompt"] for p in read_jsonl(toy_prompts_path()) if p["language"] == "en"]
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    torch.manual_seed(0)
    with torch.no_grad():
        out = model.generate(
            **batch,
            do_sample=True,
            temperature=0.9,
            top_p=0.8,
            max_new_tokens=20,
            num_return_sequences=10,
        )
    texts = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    toxicity = [score_text(lexicons["en"], t)["TOXICITY"] for t in texts]
    share = sum(t >= 0.5 for t in toxicity) / len(toxicity)
    assert 0.2 <= share <= 0.55, share  # the corpus is 35% toxic
    assert sum(toxicity) / len(toxicity) > 0.1
    # It learnt the templates: most samples are a corpus continuation, end mark included.
    valid = set(templates.continuations(templates.EN, False))
    valid |= set(templates.continuations(templates.EN, True))
    assert sum(t.strip() in valid for t in texts) / len(texts) >= 0.7
