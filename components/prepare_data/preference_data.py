"""Preference pairs for DPO: read, clean, length-filter, subsample and split into train/eval.

Output folder (written whole, atomically, so a failed run leaves nothing a later stage could
trust): ``train.jsonl`` and ``eval.jsonl`` with ``pair_id`` ("file:line"), ``prompt``, ``chosen``
and ``rejected`` (TRL's standard preference format; ``chosen``/``rejected`` hold only the
continuation, TRL concatenates the prompt itself), plus ``stats.json`` (what :func:`prepare_pairs`
returns).

Why the length filter counts **tokens** by default: the XG reference kept a pair when
``len(prompt) + len(answer) <= 256`` in *characters*. The training limit (``max_length``) is in
tokens, and characters per token differ a lot between scripts and tokenizers, so a character
limit keeps too little text for some data and lets pairs through that the trainer then truncates
for other data. Counting with the model's own tokenizer filters exactly what the trainer would
cut. ``unit: chars`` reproduces the reference's quirk, for comparison with its numbers; it is
applied to the texts as written (the prompt removed from the answers when it was repeated).
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


def _strip_prompts(pairs: list[RawPair]) -> tuple[list[RawPair], dict]:
    """Cut repeated prompts off the answers, pair by pair; count what was found."""
    n_chosen = n_rejected = 0
    out: list[RawPair] = []
    for pair in pairs:
        chosen, chosen_rep = strip_repeated_prompt(pair.prompt, pair.chosen)
        rejected, rejected_rep = strip_repeated_prompt(pair.prompt, pair.rejected)
        n_chosen += chosen_rep
        n_rejected += rejected_rep
        out.append(RawPair(pair.pair_id, pair.prompt, chosen, rejected))
    repeated = bool(n_chosen or n_rejected)
    stats = {
        "n_chosen_repeated_prompt": n_chosen,
        "n_rejected_repeated_prompt": n_rejected,
        "prompt_repeated_in_continuation": repeated,
        "prompt_repeat_handling": (
            "prompt removed from the start of each answer that repeated it"
            if repeated
            else "no answer repeated its prompt; answers kept as they are"
        ),
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
    """Length of ``prompt + chosen`` and ``prompt + rejected`` per pair, in ``unit``."""
    if unit == "chars":
        # The reference's rule: len(prompt) + len(answer), in characters.
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
    pairs, repeat_stats = _strip_prompts(raw)

    # An answer that is empty (often: it was only the repeated prompt) carries no preference.
    non_empty = [p for p in pairs if p.chosen.strip() and p.rejected.strip()]
    n_empty = len(pairs) - len(non_empty)

    lengths = pair_lengths(non_empty, limit.unit, tokenizer, progress)
    kept = [
        p
        for p, (len_c, len_r) in zip(non_empty, lengths, strict=True)
        if len_c <= limit.max_length and len_r <= limit.max_length
    ]
    n_filtered_length = len(non_empty) - len(kept)
    if not kept:
        raise DataError(
            f"no pair left after filtering ({len(raw)} read, {n_empty} with an empty answer, "
            f"{n_filtered_length} longer than {limit.max_length} {limit.unit}); "
            "raise data.length_filter.max_length",
            path,
        )

    rng = random.Random(config.seed)
    n_after_filter = len(kept)
    if config.max_pairs is not None and len(kept) > config.max_pairs:
        # Sorted indices keep the source order, so pair_ids stay easy to follow.
        kept = [kept[i] for i in sorted(rng.sample(range(len(kept)), config.max_pairs))]
    eval_idx = split_indices(len(kept), config.eval_fraction, rng)
    train = [_record(p) for i, p in enumerate(kept) if i not in eval_idx]
    evals = [_record(p) for i, p in enumerate(kept) if i in eval_idx]

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
        "n_subsampled_out": n_after_filter - len(kept),
        "n_kept": len(kept),
        "n_train": len(train),
        "n_eval": len(evals),
        "eval_fraction": config.eval_fraction,
        "seed": config.seed,
    }
    with atomic_dir(output_dir) as tmp:
        write_jsonl(tmp / TRAIN_FILE, train)
        write_jsonl(tmp / EVAL_FILE, evals)
        write_json(tmp / STATS_FILE, stats)
    return stats
