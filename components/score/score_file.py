"""Score a generations file: one score record per generation, same order, written atomically."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from tqdm.auto import tqdm

from xdetox.components.score.scorer_interface import Scorer, ScoreResult
from xdetox.components.score.scorers import get_scorer
from xdetox.config import ScoringConfig
from xdetox.errors import DataError
from xdetox.files import atomic_path, iter_jsonl, require_fields
from xdetox.records import GENERATION_FIELDS


def _validated(path: Path) -> int:
    """Check every line before scoring anything; return the number of records.

    Scoring can be slow or metered (an API at 1 query per second), so a malformed line at the
    end of the file must fail the stage before the first request, not after.
    """
    count = 0
    for line, record in iter_jsonl(path):
        require_fields(record, GENERATION_FIELDS, path, line)
        for name in ("text", "language"):
            if not isinstance(record[name], str):
                raise DataError(
                    f"field {name!r} must be a string, got {type(record[name]).__name__}",
                    path,
                    line,
                )
        count += 1
    return count


def _batches(path: Path, size: int) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for _, record in iter_jsonl(path):
        batch.append(record)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


SKIPPED_REASON = "empty text: not scored (scoring.empty_text: skip)"


def is_blank(text: str) -> bool:
    """No visible character: what ``scoring.empty_text`` is about."""
    return not text.strip()


def score_batch(scorer: Scorer, batch: list[dict], policy: str) -> list[ScoreResult]:
    """Score one batch under ``scoring.empty_text`` (see :class:`ScoringConfig`).

    ``space`` hands the scorer " " for an empty text, as XG (Li, Yong & Bach 2024,
    arXiv:2406.16235; ``xg/eval/perspective_api_eval.py``) did because Perspective refuses an
    empty comment; a whitespace-only text goes as it is, as there. ``skip`` never asks the
    scorer about a blank text. ``scorer`` hands over every text unchanged.
    """
    texts = [r["text"] for r in batch]
    languages = [r["language"] for r in batch]
    if policy == "space":
        return scorer.score_items([" " if t == "" else t for t in texts], languages)
    if policy != "skip":
        return scorer.score_items(texts, languages)
    asked = [i for i, t in enumerate(texts) if not is_blank(t)]
    answers = (
        scorer.score_items([texts[i] for i in asked], [languages[i] for i in asked])
        if asked
        else []
    )
    results = [
        ScoreResult(
            dict.fromkeys(scorer.attributes), dict.fromkeys(scorer.attributes, SKIPPED_REASON)
        )
        for _ in texts
    ]
    for index, answer in zip(asked, answers, strict=True):
        results[index] = answer
    return results


def score_generations(
    generations_path: str | Path,
    output_path: str | Path,
    config: ScoringConfig,
    *,
    progress: bool = True,
    scorer: Scorer | None = None,
) -> dict:
    """Write ``output_path``: each generation record plus ``scorer``, ``scores`` and, only when
    some score is missing, ``score_errors`` ({attribute: reason}) and, for scorers that give
    them, ``score_details`` (what produced the scores, e.g. a word list's matches).

    Every record also gets ``empty_text``: the ``scoring.empty_text`` policy it was scored
    under (the metrics table reports it).

    Returns a summary: ``n`` records, ``n_missing`` records with at least one missing score,
    ``missing_by_language``, ``scorer`` (short id), ``scorer_name`` (description),
    ``empty_text`` and ``n_blank`` (texts without a visible character) and, for
    scorers that keep them (the Perspective API's requests, retries, cache hits),
    ``scorer_stats``. ``scorer`` may be passed in to reuse one across files (it is then not
    closed here).
    """
    generations_path = Path(generations_path)
    total = _validated(generations_path)
    own = scorer is None
    scorer = scorer or get_scorer(config)
    n_missing = n_blank = 0
    missing_by_language: Counter[str] = Counter()
    try:
        with (
            atomic_path(output_path) as tmp,
            tmp.open("w", encoding="utf-8") as out,
            tqdm(total=total, desc="score", unit="text", disable=None if progress else True) as bar,
        ):
            for batch in _batches(generations_path, scorer.batch_size):
                results = score_batch(scorer, batch, config.empty_text)
                for record, result in zip(batch, results, strict=True):
                    n_blank += is_blank(record["text"])
                    # The policy travels with the scores: the metrics table says which was used.
                    scored = {
                        **record, "scorer": scorer.id, "scores": result.scores,
                        "empty_text": config.empty_text,
                    }  # fmt: skip
                    scored.pop("score_errors", None)  # never carry stale reasons forward
                    scored.pop("score_details", None)
                    if result.details is not None:
                        scored["score_details"] = result.details
                    if any(v is None for v in result.scores.values()):
                        n_missing += 1
                        missing_by_language[record["language"]] += 1
                        scored["score_errors"] = result.errors or {
                            k: "no score returned" for k, v in result.scores.items() if v is None
                        }
                    out.write(json.dumps(scored, ensure_ascii=False) + "\n")
                bar.update(len(batch))
    finally:
        if own:
            scorer.close()
    summary = {
        "n": total,
        "n_missing": n_missing,
        "missing_by_language": dict(sorted(missing_by_language.items())),
        "scorer": scorer.id,
        "scorer_name": scorer.name,
        "empty_text": config.empty_text,
        "n_blank": n_blank,
    }
    stats = getattr(scorer, "stats", None)
    if stats:
        summary["scorer_stats"] = dict(sorted(stats.items()))
    return summary
