"""The toy base model: a tiny GPT-2 trained in seconds on the shipped toy corpus.

Why train at all: a randomly initialised model emits noise, so "the tuned model is less toxic
than the base" would mean nothing. A short causal-LM training on the template corpus gives a
base model that continues the toy prompts like the corpus does, toxic about as often as the
corpus is, so DPO on the toy preference pairs has a real behaviour to change.

Each corpus sentence is one training sequence (sentence + end-of-text token, no packing), so
positions start at 0 at the opening exactly as at generation time and the model learns to stop
after a continuation instead of running on into the next sentence.

The build is deterministic for a given seed on a given machine (seeded init, seeded batch order)
and cached under ``~/.cache/xdetox`` (or ``$XDETOX_CACHE_DIR``) keyed by a hash of this file,
the data and the seed, so the pipeline and the tests build it once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from xdetox.files import atomic_dir, write_json
from xdetox.models.cache import CACHE_ENV as CACHE_ENV  # re-exported: where the cache is
from xdetox.models.cache import cache_root, file_lock

DATA_DIR = Path(__file__).resolve().parent / "data"
CORPUS_PATH = DATA_DIR / "corpus.jsonl"
TOKENIZER_PATH = DATA_DIR / "tokenizer.json"
EOS_TOKEN = "<|endoftext|>"

# Sized for ≤ ~30 s on 2 CPU cores; see xdetox/toy/data/README.md for what it learns.
MODEL_CONFIG = {
    "n_layer": 2,
    "n_head": 4,
    "n_embd": 128,
    "n_inner": 256,
    "n_positions": 128,
    "resid_pdrop": 0.0,
    "embd_pdrop": 0.0,
    "attn_pdrop": 0.0,
}
TRAINING = {
    "steps": 450,
    "batch_size": 32,
    "learning_rate": 5e-3,
    "warmup_steps": 30,
    "weight_decay": 0.01,
    # One thread: the matrices are tiny, and on a busy 2-core machine two torch threads were
    # measured 3-25x slower than one (OpenMP threads spin-waiting on each other).
    "threads": 1,
}
_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def load_toy_tokenizer():
    """The shipped byte-level BPE as a transformers fast tokenizer (eos = pad = bos)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_file(str(TOKENIZER_PATH)),
        eos_token=EOS_TOKEN,
        bos_token=EOS_TOKEN,
        unk_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
        padding_side="right",
        model_max_length=MODEL_CONFIG["n_positions"],
    )


def read_corpus(path: str | Path = CORPUS_PATH) -> list[str]:
    """The corpus sentences, in file order."""
    from xdetox.files import iter_jsonl, require_fields

    texts = []
    for line, record in iter_jsonl(path):
        require_fields(record, ("text",), path, line)
        texts.append(record["text"])
    return texts


@contextlib.contextmanager
def _torch_threads(count: int) -> Iterator[None]:
    """Train with ``count`` torch threads and restore the caller's setting afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _shuffled_batches(count: int, batch_size: int, seed: int) -> Iterator[list[int]]:
    """Endless seeded epochs: every sentence once per epoch, in a fresh random order.

    (Grouping batches by length saved ~10% of the work but trained measurably worse.)
    """
    rng = random.Random(seed)
    while True:
        order = list(range(count))
        rng.shuffle(order)
        yield from (order[i : i + batch_size] for i in range(0, count - batch_size + 1, batch_size))


def _train(model, sequences: list[list[int]], pad_id: int, seed: int, progress: bool) -> float:
    """Causal-LM training with AdamW and linear warm-up/decay; returns the final mean loss."""
    import torch
    from tqdm.auto import tqdm

    steps, batch_size = TRAINING["steps"], TRAINING["batch_size"]
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=TRAINING["learning_rate"], weight_decay=TRAINING["weight_decay"]
    )
    warmup = TRAINING["warmup_steps"]
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup))),
    )
    batches = _shuffled_batches(len(sequences), batch_size, seed)
    recent: list[float] = []
    model.train()
    bar = tqdm(range(steps), desc="toy model", disable=None if progress else True, leave=False)
    for _ in bar:
        batch = [sequences[i] for i in next(batches)]
        width = max(len(s) for s in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, seq in enumerate(batch):
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
        labels = ids.masked_fill(mask == 0, -100)  # pad = eos: only the real eos is a target
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        recent = [*recent[-19:], loss.item()]
        bar.set_postfix(loss=f"{sum(recent) / len(recent):.3f}")
    model.eval()
    return sum(recent) / len(recent)


def build_toy_model(output_dir: str | Path, *, seed: int = 0, progress: bool = True) -> Path:
    """Train the toy GPT-2 and write a Hugging Face model folder to ``output_dir`` (atomically).

    The folder holds ``config.json``, ``model.safetensors``, ``generation_config.json``, the
    tokenizer files and ``xdetox_toy.json`` (how it was built), and loads with
    ``AutoModelForCausalLM.from_pretrained`` / ``AutoTokenizer.from_pretrained``.
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    output_dir = Path(output_dir)
    started = time.perf_counter()
    tokenizer = load_toy_tokenizer()
    eos = tokenizer.eos_token_id
    limit = MODEL_CONFIG["n_positions"]
    sequences = [[*ids[: limit - 1], eos] for ids in tokenizer(read_corpus())["input_ids"]]

    with _torch_threads(TRAINING["threads"]):
        torch.manual_seed(seed)
        config = GPT2Config(
            vocab_size=len(tokenizer),
            bos_token_id=eos,
            eos_token_id=eos,
            pad_token_id=eos,
            **MODEL_CONFIG,
        )
        model = GPT2LMHeadModel(config)
        final_loss = _train(model, sequences, eos, seed, progress)

    model.generation_config.pad_token_id = eos
    model.generation_config.eos_token_id = eos
    model.generation_config.bos_token_id = eos
    with atomic_dir(output_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(
            tmp / "xdetox_toy.json",
            {
                "what": "xdetox toy model: tiny GPT-2 trained on xdetox/toy/data/corpus.jsonl",
                "seed": seed,
                "key": toy_model_key(seed),
                "model_config": MODEL_CONFIG,
                "training": TRAINING,
                "n_sequences": len(sequences),
                "final_train_loss": round(final_loss, 4),
                "build_seconds": round(time.perf_counter() - started, 1),
            },
        )
    return output_dir


def toy_model_key(seed: int = 0) -> str:
    """Hash of everything the toy model depends on: this code, the data, the seed."""
    digest = hashlib.sha256()
    digest.update(Path(__file__).read_bytes())
    for path in (CORPUS_PATH, TOKENIZER_PATH):
        digest.update(path.read_bytes())
    digest.update(json.dumps({"seed": seed}).encode())
    return digest.hexdigest()[:16]


def cache_dir() -> Path:
    """``$XDETOX_CACHE_DIR`` if set, else ``~/.cache/xdetox`` (shared with the model cache)."""
    return cache_root()


def toy_model_path(seed: int = 0) -> Path:
    """Where the cached toy model for ``seed`` lives (whether or not it is built yet)."""
    return cache_dir() / f"toy-model-{toy_model_key(seed)}"


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in _FILES)


def ensure_toy_model(
    output_dir: str | Path | None = None, *, seed: int = 0, progress: bool = True
) -> Path:
    """Build the toy model into the cache once; copy it to ``output_dir`` when one is given.

    Returns the folder to load from (``output_dir`` if given, else the cache folder).
    """
    cached = toy_model_path(seed)
    if not _complete(cached):
        with file_lock(cached.parent / f".{cached.name}.lock"):
            if not _complete(cached):  # another process may have built it while we waited
                build_toy_model(cached, seed=seed, progress=progress)
    if output_dir is None:
        return cached
    output_dir = Path(output_dir)
    with atomic_dir(output_dir) as tmp:
        shutil.copytree(cached, tmp, dirs_exist_ok=True)
    return output_dir
