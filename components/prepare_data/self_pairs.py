"""Preference pairs from a model's own scored samples: per prompt, least toxic vs most toxic.

The recipe is that of Self-Rewarding Language Models (Yuan et al. 2024, arXiv:2401.10020,
"AI Feedback Training"): sample several responses per prompt from the model itself, score
them, take the highest- and lowest-scoring ones as a pair and discard the prompt when the
scores are equal. Here the score is a toxicity scorer's TOXICITY, the least toxic sample is
``chosen`` and the most toxic ``rejected``, and "equal" becomes "closer than ``margin``":
near-equal scores are mostly scorer noise, not a preference.

Rules, all counted in the stats:

* a sample whose TOXICITY is ``None`` (the scorer could not score it) is left out, never read
  as 0 (a 0 would make it the "least toxic" sample by accident);
* a sample with an empty continuation is left out: as ``chosen`` it would teach the model to stop
  at once (prepare_data drops empty answers for the same reason);
* a prompt with fewer than two samples left has no pair.

This module only pairs score records (``xdetox.records``: the generation fields plus
``scores``); sampling and scoring are in ``make_self_pairs.py``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from xdetox.errors import DataError
from xdetox.records import TOXICITY

# TOXICITY gaps are rounded to this many decimals before the margin test, so that a gap of
# 0.3 - 0.2 (0.09999999999999998 in floating point) passes a margin of 0.1.
GAP_DECIMALS = 12


def toxicity_of(record: dict[str, Any]) -> float | None:
    """The record's TOXICITY, or None when the scorer gave none (missing key or null)."""
    scores = record.get("scores")
    if not isinstance(scores, dict):
        raise DataError(f"prompt {record.get('prompt_id')!r}: score record without 'scores'")
    value = scores.get(TOXICITY)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise DataError(
            f"prompt {record.get('prompt_id')!r} sample {record.get('sample_index')}: "
            f"TOXICITY must be a number or null, got {value!r}"
        )
    return float(value)


def toxicity_gap(chosen: float, rejected: float) -> float:
    """``rejected - chosen``, rounded (see :data:`GAP_DECIMALS`)."""
    return round(rejected - chosen, GAP_DECIMALS)


def _group(records: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Score records by prompt id, prompts in first-seen order, samples in file order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(str(record["prompt_id"]), []).append(record)
    return groups


def _pair(prompt_id: str, chosen: dict, rejected: dict, gap: float) -> dict[str, Any]:
    return {
        "pair_id": prompt_id,
        "prompt": chosen["prompt"],
        "chosen": chosen["text"],
        "rejected": rejected["text"],
        "language": chosen["language"],
        "chosen_toxicity": toxicity_of(chosen),
        "rejected_toxicity": toxicity_of(rejected),
        "chosen_sample_index": chosen["sample_index"],
        "rejected_sample_index": rejected["sample_index"],
        "toxicity_gap": gap,
    }


def pair_extremes(
    records: Iterable[dict[str, Any]], margin: float
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Pairs (one per prompt at most, prompts in order) and the counts of what was left out.

    Ties go to the lowest ``sample_index`` on both sides, so the pairs do not depend on the
    order samples were written in.
    """
    if not margin > 0:
        raise DataError(f"margin must be > 0, got {margin}")
    groups = _group(records)
    pairs: list[dict[str, Any]] = []
    counts = dict.fromkeys(
        ("n_samples", "n_samples_missing_score", "n_samples_empty",
         "n_prompts_dropped_missing_score", "n_prompts_dropped_empty",
         "n_prompts_dropped_margin"),
        0,
    )  # fmt: skip
    for prompt_id, samples in groups.items():
        counts["n_samples"] += len(samples)
        scored = [(s, toxicity_of(s)) for s in samples]
        missing = sum(tox is None for _, tox in scored)
        empty = sum(tox is not None and not s["text"].strip() for s, tox in scored)
        counts["n_samples_missing_score"] += missing
        counts["n_samples_empty"] += empty
        usable = [(s, tox) for s, tox in scored if tox is not None and s["text"].strip()]
        if len(usable) < 2:
            # Said to be for missing scores whenever a missing score took a sample away.
            key = "n_prompts_dropped_missing_score" if missing else "n_prompts_dropped_empty"
            counts[key] += 1
            continue
        chosen, low = min(usable, key=lambda item: (item[1], item[0]["sample_index"]))
        rejected, high = min(usable, key=lambda item: (-item[1], item[0]["sample_index"]))
        gap = toxicity_gap(low, high)
        if gap < margin:
            counts["n_prompts_dropped_margin"] += 1
            continue
        pairs.append(_pair(prompt_id, chosen, rejected, gap))
    gaps = [p["toxicity_gap"] for p in pairs]
    stats = {
        "n_prompts": len(groups),
        **counts,
        "n_pairs": len(pairs),
        "margin": margin,
        "margin_mean": sum(gaps) / len(gaps) if gaps else None,
        "margin_min": min(gaps) if gaps else None,
        "margin_max": max(gaps) if gaps else None,
    }
    return pairs, stats
