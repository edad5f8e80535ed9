"""Make preference pairs from a model's own samples (``data.preference: self``).

Sample ``data.self_pairs.n`` continuations per prompt with the generate stage's own code
(``generate/backends.py``, ``generate_file``: per-sample seeds, resumable shards), score them
with the configured scorer (``score/score_file.py``, ``score_generations``), pair the extremes
(``self_pairs.py``, ``pair_extremes``) and write the folder ``prepare_data`` writes:
``train.jsonl`` and ``eval.jsonl`` (``pair_id``, ``prompt``, ``chosen``, ``rejected``, plus the
two samples' TOXICITY), ``stats.json``, and ``scored_samples.jsonl`` (every sample with its
scores, to audit the pairs). ``xdetox dpo --data DIR`` reads it as it is.

Resuming: the samples, their shards and the scores are written to a work folder beside the
output (``<output>.samples``), not inside it, because the output folder is written whole at the
end. A run killed while sampling resumes from its finished shards (same bytes as an
uninterrupted run, see ``generate/shards.py``). Finished samples carry a marker with what made
them (model content hash, prompts, sampling settings, backend), so a run killed while scoring
(hours at the Perspective API's quota) does not sample again; scoring itself is redone, and the
Perspective scorer answers repeats from its persistent cache. The work folder is removed once
the pairs are written.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path
from typing import Any

from xdetox.components.generate.backends import choose_backend, generate_file
from xdetox.components.generate.prompt_file import read_prompts
from xdetox.components.generate.shards import THROUGHPUT_FIELDS, ShardHook, model_fingerprint
from xdetox.components.generate.vllm_backend import VLLMOptions
from xdetox.components.prepare_data.preference_data import (
    EVAL_FILE,
    STATS_FILE,
    TRAIN_FILE,
    split_indices,
)
from xdetox.components.prepare_data.self_pairs import pair_extremes
from xdetox.components.score.score_file import score_generations
from xdetox.components.score.scorer_interface import Scorer
from xdetox.config import DataConfig, GenerationConfig, ScoringConfig, SelfPairsConfig
from xdetox.errors import DataError
from xdetox.files import atomic_dir, read_jsonl, write_json, write_jsonl
from xdetox.records import BASE_LABEL, TOXICITY

SAMPLES_FILE = "scored_samples.jsonl"
_WORK_FILES = ("prompts.jsonl", "samples.jsonl", "samples.json", "scores.jsonl")
_SAMPLING_KEYS = ("n", "temperature", "top_p", "max_new_tokens", "seed")  # set from self_pairs


def work_dir_for(output_dir: str | Path) -> Path:
    """Where samples and scores wait while a run is unfinished (beside the output)."""
    output_dir = Path(output_dir)
    return output_dir.with_name(output_dir.name + ".samples")


def sampling_config(settings: SelfPairsConfig, generation: GenerationConfig) -> GenerationConfig:
    """The generation section with the self-pairs sampling values in place of its own.

    Backend, batch and shard sizes and vLLM settings stay the run's: they decide speed, not
    what is sampled.
    """
    values = generation.model_dump(exclude={"protocol"})
    values.update({key: getattr(settings, key) for key in _SAMPLING_KEYS})
    return GenerationConfig.model_validate(values)


def pair_scoring(settings: SelfPairsConfig, scoring: ScoringConfig) -> ScoringConfig:
    """The scoring section with ``self_pairs.scorer`` (when set), scoring TOXICITY only: the
    pairs need nothing else, and an API bills per attribute requested."""
    update: dict[str, Any] = {"attributes": [TOXICITY], "agreement_with": None}
    if settings.scorer is not None:
        update["scorer"] = settings.scorer
    return scoring.model_copy(update=update)


def _write_prompts(prompts_path: Path, path: Path, data: DataConfig) -> int:
    """The prompts of ``self_pairs.language`` (a seeded sample when ``max_prompts``)."""
    settings = data.self_pairs
    prompts = read_prompts(prompts_path, settings.language)
    if settings.max_prompts is not None and len(prompts) > settings.max_prompts:
        # Sorted indices keep the file order, so shards hold the same prompts on a rerun.
        keep = sorted(random.Random(data.seed).sample(range(len(prompts)), settings.max_prompts))
        prompts = [prompts[i] for i in keep]
    path.parent.mkdir(parents=True, exist_ok=True)  # only once the prompts were read
    records = [{"prompt_id": p.prompt_id, "language": p.language, "prompt": p.prompt}
               for p in prompts]  # fmt: skip
    write_jsonl(path, records)
    return len(records)


def _samples_key(model_dir: Path, prompts: Path, config: GenerationConfig, label: str) -> str:
    """What finished samples depend on, as one hash (the shards' run key, for the whole file)."""
    fingerprint, _ = model_fingerprint(model_dir, progress=False)
    identity = {
        "model_sha256": fingerprint,
        "prompts_sha256": hashlib.sha256(prompts.read_bytes()).hexdigest(),
        "generation": config.model_dump(exclude=set(THROUGHPUT_FIELDS)),
        "backend": choose_backend(config.backend),  # vLLM and transformers sample differently
        "model_label": label,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _sample(
    model_dir: Path,
    prompts: Path,
    samples: Path,
    config: GenerationConfig,
    label: str,
    *,
    progress: bool,
    on_shard: ShardHook | None,
) -> int:
    """Generate ``samples`` unless the marker beside it says they are already there."""
    marker = samples.with_suffix(".json")
    key = _samples_key(model_dir, prompts, config, label)
    try:
        done = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        done = None
    if isinstance(done, dict) and done.get("key") == key and samples.is_file():
        return int(done["lines"])
    marker.unlink(missing_ok=True)
    lines = generate_file(
        model_dir,
        prompts,
        samples,
        model_label=label,
        config=config,
        progress=progress,
        backend=config.backend,
        shard_size=config.shard_size,
        vllm_options=VLLMOptions.from_dict(config.vllm.model_dump()),
        on_shard=on_shard,
    )
    write_json(marker, {"key": key, "lines": lines})
    return lines


def _split(pairs: list[dict], data: DataConfig) -> tuple[list[dict], list[dict], int]:
    """Subsample to ``max_pairs`` and split, with prepare_data's rules and seed."""
    rng = random.Random(data.seed)
    n_before = len(pairs)
    if data.max_pairs is not None and len(pairs) > data.max_pairs:
        pairs = [pairs[i] for i in sorted(rng.sample(range(len(pairs)), data.max_pairs))]
    eval_idx = split_indices(len(pairs), data.eval_fraction, rng)
    train = [p for i, p in enumerate(pairs) if i not in eval_idx]
    evals = [p for i, p in enumerate(pairs) if i in eval_idx]
    return train, evals, n_before - len(pairs)


def _remove_work(work: Path) -> None:
    """Remove only this module's files, then the folder if that emptied it (it may be a
    caller's folder)."""
    for name in _WORK_FILES:
        (work / name).unlink(missing_ok=True)
    if work.is_dir() and not any(work.iterdir()):
        work.rmdir()


def make_self_pairs(
    model_dir: str | Path,
    prompts_path: str | Path,
    output_dir: str | Path,
    *,
    data: DataConfig,
    generation: GenerationConfig,
    scoring: ScoringConfig,
    model_label: str = BASE_LABEL,
    work_dir: str | Path | None = None,
    progress: bool = True,
    on_shard: ShardHook | None = None,
    scorer: Scorer | None = None,
) -> dict[str, Any]:
    """Write the pairs folder into ``output_dir``; return its stats.

    ``model_dir``: a local model folder (resolve other sources with
    :func:`xdetox.models.resolve_model`). ``prompts_path``: prepared prompts JSON lines
    (prompt_id, language, prompt); only ``data.self_pairs.language`` is sampled. ``on_shard``
    and ``scorer`` are passed to the generate and score code (tests interrupt a run with the
    first). Raises :class:`DataError` when no pair is left; the scored samples then stay in the
    work folder for a look.
    """
    settings = data.self_pairs
    work = Path(work_dir) if work_dir is not None else work_dir_for(output_dir)
    prompts = work / "prompts.jsonl"
    _write_prompts(Path(prompts_path), prompts, data)
    gen_config = sampling_config(settings, generation)
    samples, scores = work / "samples.jsonl", work / "scores.jsonl"
    n_samples = _sample(
        Path(model_dir), prompts, samples, gen_config, model_label,
        progress=progress, on_shard=on_shard,
    )  # fmt: skip
    summary = score_generations(
        samples, scores, pair_scoring(settings, scoring), progress=progress, scorer=scorer
    )
    scored = read_jsonl(scores)
    pairs, stats = pair_extremes(scored, settings.margin)
    if not pairs:
        raise DataError(
            f"no pair left: {stats['n_prompts']} prompts, {stats['n_prompts_dropped_margin']} "
            f"with a TOXICITY gap under {settings.margin}, "
            f"{stats['n_prompts_dropped_missing_score']} without two scored samples; lower "
            "data.self_pairs.margin or raise data.self_pairs.n (scores kept in the work folder)",
            scores,
        )
    train, evals, n_subsampled = _split(pairs, data)
    stats = {
        "source": "self",
        "model": model_label,
        "language": settings.language,
        "scorer": summary["scorer"],
        "scorer_name": summary["scorer_name"],
        **stats,
        "samples_per_prompt": settings.n,
        "n_samples_written": n_samples,
        "n_subsampled_out": n_subsampled,
        "n_kept": len(train) + len(evals),
        "n_train": len(train),
        "n_eval": len(evals),
        "eval_fraction": data.eval_fraction,
        "seed": data.seed,
        "sampling": gen_config.model_dump(include=set(_SAMPLING_KEYS)),
    }
    with atomic_dir(output_dir) as tmp:
        write_jsonl(tmp / TRAIN_FILE, train)
        write_jsonl(tmp / EVAL_FILE, evals)
        write_json(tmp / STATS_FILE, stats)
        shutil.copyfile(scores, tmp / SAMPLES_FILE)
    _remove_work(work)
    return stats
