"""The control arm's pairs: the run's own preference pairs with the preference reversed.

Why: preference tuning can lower a scorer's toxicity by moving the model away from what its
prompts ask for (drift: shorter, blander, off-topic text) as well as by detoxifying it. A model
trained exactly alike on the same texts but with ``chosen`` and ``rejected`` exchanged moves as
far from the base; if it also gets less toxic, the tuned model's drop is no evidence of
detoxification (``training.control``).

- ``swapped``: every pair reversed (the control prefers the toxic answer);
- ``shuffled``: each pair reversed with probability 1/2, decided by ``seed`` and the pair's id
  alone (not by its position), so the same pair gets the same coin in every run and split.

Both splits (``train.jsonl``, ``eval.jsonl``) are reversed alike, so the control's early stopping
follows its own objective. Other fields of a pair are copied; ``control`` records what was done.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Literal

from xdetox.components.prepare_data.preference_data import EVAL_FILE, TRAIN_FILE
from xdetox.errors import DataError
from xdetox.files import atomic_dir, iter_jsonl, require_fields, write_json, write_jsonl

ControlMode = Literal["swapped", "shuffled"]
STATS_FILE = "stats.json"


def reverses(mode: ControlMode, pair_id: str, seed: int) -> bool:
    """Whether the pair ``pair_id`` is reversed under ``mode``."""
    if mode == "swapped":
        return True
    if mode == "shuffled":
        # A string seed is hashed by SHA-512 (random.seed): stable across runs and platforms.
        return random.Random(f"{seed}:{pair_id}").random() < 0.5
    raise ValueError(f"unknown control mode {mode!r} (swapped or shuffled)")


def _reverse(path: Path, mode: ControlMode, seed: int) -> tuple[list[dict[str, Any]], int]:
    out, reversed_count = [], 0
    for line, record in iter_jsonl(path):
        require_fields(record, ("prompt", "chosen", "rejected"), path, line)
        pair_id = str(record.get("pair_id", f"{path.name}:{line}"))
        flip = reverses(mode, pair_id, seed)
        reversed_count += flip
        if flip:
            record = {**record, "chosen": record["rejected"], "rejected": record["chosen"]}
        out.append({**record, "control": mode if flip else "kept"})
    return out, reversed_count


def write_control_pairs(
    pairs_dir: str | Path, output_dir: str | Path, mode: ControlMode, seed: int = 0
) -> dict[str, Any]:
    """Write ``pairs_dir``'s splits, reversed by ``mode``, into ``output_dir`` (all or nothing);
    return the counts also written to ``stats.json``."""
    pairs_dir = Path(pairs_dir)
    if not (pairs_dir / TRAIN_FILE).is_file():
        raise DataError(f"no {TRAIN_FILE}: not a prepared pairs folder", pairs_dir)
    stats: dict[str, Any] = {"control": mode, "seed": seed}
    with atomic_dir(output_dir) as tmp:
        for name in (TRAIN_FILE, EVAL_FILE):
            source = pairs_dir / name
            if not source.is_file():
                continue
            records, reversed_count = _reverse(source, mode, seed)
            write_jsonl(tmp / name, records)
            split = name.removesuffix(".jsonl")
            stats[f"n_{split}"] = len(records)
            stats[f"n_{split}_reversed"] = reversed_count
        write_json(tmp / STATS_FILE, stats)
    return stats
