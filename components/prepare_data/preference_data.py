"""Preference pairs for DPO: read, clean, length-filter, subsample and split into train/eval.

Output folder (written whole, atomically, so a failed run leaves nothing a later stage could
trust): ``train.jsonl`` and ``eval.jsonl`` with ``pair_id`` ("file:line"), ``prompt``, ``chosen``
and ``rejected`` (TRL's standard preference format; ``chosen``/``rejected`` hold only the
continuation, TRL concatenates the prompt itself), plus ``stats.json`` (what :func:`prepare_pairs`
returns).

Why the length filter counts **tokens** by default: the XG reference (Li, Yong & Bach 2024,
arXiv:2406.16235; ``xg/training/dpo.py`` of BatsResearch/cross-lingual-detox) kept a pair when
``len(prompt) + len(chosen) <= 256 and len(prompt) + len(rejected) <= 256`` in *characters*. The
training limit (``max_length``) is in tokens, and characters per token differ a lot between
scripts and tokenizers, so a character limit keeps too little text for some data and lets pairs
through that the trainer then truncates for other data. Counting with the model's own tokenizer
filters exactly what the trainer would cut. ``unit: chars`` reproduces the reference's rule
exactly, for comparison with its numbers: it counts the fields **as read** (toxicity_pairwise:
``prompt_text``, ``unpert_gen_text`` = chosen, ``pert_gen_text`` = rejected), before a repeated
prompt is cut off the answers, because the reference counted (and trained on) them as they were.

The train/eval split (``data.split_method``): ``xdetox`` (the default) samples
``round(n * eval_fraction)`` pairs with Python's ``random``, at least one eval and one training
pair, and writes both files in source order; ``datasets`` is the reference's
``Dataset.train_test_split(test_size=0.05, seed=0)`` of Hugging Face ``datasets``, called here:
``ceil(n * eval_fraction)`` eval pairs, the first ones of ``np.random.default_rng(seed)
.permutation(n)`` (its ``"test"`` split, which the reference evaluated on), the rest for training,
both files in that permuted order. The algorithm is the same in datasets 2.20.0 (the reference's
pin) and the installed release. The reference split the pairs its length filter kept, pairs with
an empty answer included; so with ``datasets`` those pairs take part in the draw and are removed
from their split afterwards, and every other pair lands where the reference put it, given the
same files in the same order (the reference read them in ``pathlib`` glob order, which is
undefined; we read them in name order).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from xdetox.components.prepare_data.pair_sources import (
    RawPair,
    iter_file_pairs,
    resolve_source,
    source_files,
    strip_repeated_prompt,
)
from xdetox.config import DataConfig
from xdetox.config.data import SplitMethod
from xdetox.errors import ConfigError, DataError
from xdetox.files import atomic_dir, write_json, write_jsonl
from xdetox.models import load_tokenizer, resolve_model
from xdetox.storage import is_gcs, local_copy

TRAIN_FILE = "train.jsonl"
EVAL_FILE = "eval.jsonl"
STATS_FILE = "stats.json"

_TOKENIZE_CHUNK = 1024  # texts per tokenizer call: large enough to be fast, small for progress


def _read_pairs(files: Sequence[Path], progress: bool) -> list[RawPair]:
    pairs: list[RawPair] = []
    with tqdm(desc="reading pairs", unit="pair", disable=None if progress else True) as bar:
        for path in files:
            for pair in iter_file_pairs(path, path.name):
                pairs.append(pair)
                bar.update()
    return pairs


def _strip_prompts(pairs: list[RawPair], keep: bool = False) -> tuple[list[RawPair], dict]:
    """Cut repeated prompts off the answers, pair by pair; count what was found.

    ``keep`` (``data.repeated_prompt: keep``) only counts them and returns the pairs as read.
    """
    n_chosen = n_rejected = 0
    out: list[RawPair] = []
    for pair in pairs:
        chosen, chosen_rep = strip_repeated_prompt(pair.prompt, pair.chosen)
        rejected, rejected_rep = strip_repeated_prompt(pair.prompt, pair.rejected)
        n_chosen += chosen_rep
        n_rejected += rejected_rep
        out.append(pair if keep else RawPair(pair.pair_id, pair.prompt, chosen, rejected))
    repeated = bool(n_chosen or n_rejected)
    if not repeated:
        handling = "no answer repeated its prompt; answers kept as they are"
    elif keep:
        handling = "answers kept as read, repeated prompt included (data.repeated_prompt: keep)"
    else:
        handling = "prompt removed from the start of each answer that repeated it"
    stats = {
        "n_chosen_repeated_prompt": n_chosen,
        "n_rejected_repeated_prompt": n_rejected,
        "prompt_repeated_in_continuation": repeated,
        "prompt_repeat_handling": handling,
    }
    return out, stats


def _load_tokenizer(tokenizer_source: str | Path | None):
    """The tokenizer of a model source; only its tokenizer files are fetched (no weights)."""
    if tokenizer_source is None or str(tokenizer_source).strip() == "":
        raise ConfigError(
            "data.length_filter.unit: 'tokens' needs the model's tokenizer (tokenizer_source); "
            "pass one or set unit to 'chars'"
        )
    return load_tokenizer(resolve_model(tokenizer_source, tokenizer_only=True))


def _token_lengths(tokenizer, texts: list[str], progress: bool) -> list[int]:
    lengths: list[int] = []
    for start in tqdm(
        range(0, len(texts), _TOKENIZE_CHUNK),
        desc="counting tokens",
        unit="chunk",
        disable=None if progress else True,
    ):
        chunk = texts[start : start + _TOKENIZE_CHUNK]
        # Special tokens are left out: the limit is on the text the pair contributes.
        ids = tokenizer(chunk, add_special_tokens=False)["input_ids"]
        lengths.extend(len(x) for x in ids)
    return lengths


def pair_lengths(
    pairs: Sequence[RawPair], unit: str, tokenizer=None, progress: bool = False
) -> list[tuple[int, int]]:
    """Length of ``prompt + chosen`` and ``prompt + rejected`` per pair, in ``unit``.

    Characters are counted on the texts given (:func:`prepare_pairs` gives the fields as read);
    tokens on the concatenated text, special tokens left out.
    """
    if unit == "chars":
        # The reference's rule: len(prompt) + len(answer), in characters (Python str: code
        # points, as its lambda over the dataset's str columns counted them).
        return [(len(p.prompt) + len(p.chosen), len(p.prompt) + len(p.rejected)) for p in pairs]
    texts = [p.prompt + p.chosen for p in pairs] + [p.prompt + p.rejected for p in pairs]
    lengths = _token_lengths(tokenizer, texts, progress)
    n = len(pairs)
    return list(zip(lengths[:n], lengths[n:], strict=True))


def split_indices(n: int, eval_fraction: float, rng: random.Random) -> set[int]:
    """Indices (of ``n`` pairs) that go to the eval split.

    At least one eval pair when ``eval_fraction > 0`` and there are two pairs or more, and always
    at least one training pair.
    """
    if eval_fraction <= 0 or n < 2:
        return set()
    n_eval = min(max(1, round(n * eval_fraction)), n - 1)
    return set(rng.sample(range(n), n_eval))


def datasets_split(n: int, eval_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """``(train, eval)`` positions of ``n`` pairs as Hugging Face ``datasets`` splits them.

    Calls ``Dataset.train_test_split(test_size=eval_fraction, seed=seed)`` on a dataset of the
    positions, as the XG reference did on its pairs: ``ceil(n * eval_fraction)`` eval positions,
    the first of ``np.random.default_rng(seed).permutation(n)``; its ``"test"`` split is our eval
    split, ``"train"`` our training split, each in the permuted order. ``eval_fraction`` 0 gives
    no eval split (``train_test_split`` refuses it). A split that leaves no training pair is a
    :class:`ConfigError` naming ``data.split_method``.
    """
    if eval_fraction <= 0:
        return list(range(n)), []
    from datasets import Dataset  # only this split method needs it, and it is slow to import

    positions = Dataset.from_dict({"i": list(range(n))})  # in memory: no cache files written
    try:
        parts = positions.train_test_split(test_size=float(eval_fraction), seed=seed)
    except ValueError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ConfigError(
            f"data.split_method: datasets' train_test_split cannot split {n} pair(s) with "
            f"eval_fraction {eval_fraction} and seed {seed} ({first}); use split_method xdetox"
        ) from None
    return [int(i) for i in parts["train"]["i"]], [int(i) for i in parts["test"]["i"]]


def split_positions(
    n: int, eval_fraction: float, method: SplitMethod, seed: int, rng: random.Random
) -> tuple[list[int], list[int]]:
    """``(train, eval)`` positions of ``n`` pairs, in the order their files list them.

    ``xdetox``: :func:`split_indices` with ``rng`` (source order); ``datasets``:
    :func:`datasets_split` with ``seed`` (the reference's permuted order).
    """
    if method == "datasets":
        return datasets_split(n, eval_fraction, seed)
    eval_idx = split_indices(n, eval_fraction, rng)
    return [i for i in range(n) if i not in eval_idx], sorted(eval_idx)


def _record(pair: RawPair) -> dict:
    return {
        "pair_id": pair.pair_id,
        "prompt": pair.prompt,
        "chosen": pair.chosen,
        "rejected": pair.rejected,
    }


def prepare_pairs(
    source: str | Path,
    output_dir: str | Path,
    config: DataConfig,
    *,
    tokenizer_source: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Write ``train.jsonl``/``eval.jsonl``/``stats.json`` into ``output_dir``; return the stats.

    ``source``: a toxicity_pairwise folder (every ``*.jsonl``, sorted), one JSON-lines file, or
    ``"toy"``. ``tokenizer_source`` (a model source: ``toy``, a folder, ``gs://`` or a Hub id;
    only its tokenizer is fetched) is needed when ``config.length_filter.unit`` is ``"tokens"``.
    Raises :class:`DataError` (naming file and line) on malformed input and when no pair is left.
    A ``gs://`` file or folder is downloaded to a temporary folder first.
    """
    if is_gcs(source):
        with local_copy(source) as local:
            stats = prepare_pairs(
                local, output_dir, config, tokenizer_source=tokenizer_source, progress=progress
            )
        stats["source"] = str(source)
        return stats
    path = resolve_source(source)
    files = source_files(path)
    limit = config.length_filter
    tokenizer = _load_tokenizer(tokenizer_source) if limit.unit == "tokens" else None

    raw = _read_pairs(files, progress)
    if not raw:
        raise DataError("no preference pairs in the source", path)
    pairs, repeat_stats = _strip_prompts(raw, keep=config.repeated_prompt == "keep")

    # An answer that is empty (often: it was only the repeated prompt) carries no preference.
    usable = [bool(p.chosen.strip() and p.rejected.strip()) for p in pairs]
    n_empty = usable.count(False)

    # Characters: the fields as read, as the reference counted them; tokens: the texts trained on.
    lengths = pair_lengths(raw if limit.unit == "chars" else pairs, limit.unit, tokenizer, progress)
    fits = [c <= limit.max_length and r <= limit.max_length for c, r in lengths]
    n_filtered_length = sum(u and not f for u, f in zip(usable, fits, strict=True))
    n_after_filter = sum(u and f for u, f in zip(usable, fits, strict=True))
    if not n_after_filter:
        raise DataError(
            f"no pair left after filtering ({len(raw)} read, {n_empty} with an empty answer, "
            f"{n_filtered_length} longer than {limit.max_length} {limit.unit}); "
            "raise data.length_filter.max_length",
            path,
        )
    # The reference split every pair its length filter kept: for its split (datasets) the pairs
    # with an empty answer are drawn too and dropped afterwards, so that every other pair lands
    # where the reference put it.
    drawn_too = config.split_method == "datasets"
    pool = [i for i, (u, f) in enumerate(zip(usable, fits, strict=True)) if f and (u or drawn_too)]

    rng = random.Random(config.seed)
    if config.max_pairs is not None and len(pool) > config.max_pairs:
        # Sorted indices keep the source order, so pair_ids stay easy to follow.
        pool = [pool[i] for i in sorted(rng.sample(range(len(pool)), config.max_pairs))]
    train_pos, eval_pos = split_positions(
        len(pool), config.eval_fraction, config.split_method, config.seed, rng
    )
    train = [_record(pairs[pool[i]]) for i in train_pos if usable[pool[i]]]
    evals = [_record(pairs[pool[i]]) for i in eval_pos if usable[pool[i]]]
    if not train:  # only possible when pairs with an empty answer were drawn
        raise DataError(
            f"no training pair left: the {len(evals)} usable pair(s) all fell in the eval split; "
            "lower data.eval_fraction",
            path,
        )
    n_kept = len(train) + len(evals)

    stats = {
        "source": str(path),
        "files": [f.name for f in files],
        "n_read": len(raw),
        **repeat_stats,
        "n_filtered_empty": n_empty,
        "length_unit": limit.unit,
        "max_length": limit.max_length,
        "n_filtered_length": n_filtered_length,
        "n_after_filter": n_after_filter,
        "n_subsampled_out": n_after_filter - n_kept,
        "n_kept": n_kept,
        "n_train": len(train),
        "n_eval": len(evals),
        "split_method": config.split_method,
        "eval_fraction": config.eval_fraction,
        "seed": config.seed,
    }
    with atomic_dir(output_dir) as tmp:
        write_jsonl(tmp / TRAIN_FILE, train)
        write_jsonl(tmp / EVAL_FILE, evals)
        write_json(tmp / STATS_FILE, stats)
    return stats
