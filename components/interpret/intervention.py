"""Intervention: shift the toxic neurons' activations and measure toxicity per language (as in XG).

For each offset (XG: 0, -1, ..., -5), the chosen neurons get that offset added at every
position while the model continues the prompts of every language; the continuations are scored
and averaged per language. Offset 0 runs through the same hooks and is the baseline.

XG's released intervention code is ``notebooks/Causal Intervention.ipynb``: TransformerLens'
``generate`` (greedy, 10 new tokens, stopping at end-of-sequence) with a hook that adds the
offset to ``mlp_post`` of the chosen neurons at every position; TransformerLens prepends BOS to
the prompt. The script behind the paper's sweep over languages is not released, so its decoding
is not known; here the sweep samples with the configured generation protocol, and
``prepend_bos`` puts a BOS token in front of each prompt as TransformerLens does (:mod:`.bos`).

Scoring is a callable, ``score_batch(texts, languages) -> [{attribute: float | None}, ...]``, the
project's scorer interface: the pipeline passes the configured scorer, tests a deterministic
one. A score the scorer could not produce is counted under ``n_missing``, never as 0.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from xdetox.components.generate.hf_backend import generate_samples
from xdetox.components.generate.prompt_file import Prompt, read_prompts
from xdetox.components.interpret.architectures import Architecture
from xdetox.components.interpret.bos import BosTokenizer
from xdetox.components.interpret.hooks import neuron_offset
from xdetox.components.interpret.intervention_table import (  # noqa: F401  re-exported
    COLUMNS,
    GENERATIONS_FILE,
    PLOT_FILE,
    SUMMARY_FILE,
    TABLE_FILE,
    write_intervention,
)
from xdetox.components.interpret.neurons import Neuron, read_neurons
from xdetox.components.interpret.pooling import load_frozen
from xdetox.components.interpret.prompt_selection import ALL_LANGUAGES, select_prompts
from xdetox.components.interpret.settings import InterventionConfig
from xdetox.components.interpret.tables import mean_or_none
from xdetox.config import GenerationConfig
from xdetox.errors import ConfigError, XdetoxError

log = logging.getLogger(__name__)

ScoreBatch = Callable[[Sequence[str], Sequence[str]], Sequence[Mapping[str, float | None]]]


def score_texts(
    score_batch: ScoreBatch,
    texts: Sequence[str],
    languages: Sequence[str],
    attribute: str,
    batch_size: int,
    *,
    progress: bool = True,
) -> list[float | None]:
    """``attribute`` per text, in chunks of ``batch_size``; None where the scorer gave none."""
    out: list[float | None] = []
    bar = tqdm(total=len(texts), desc="score", unit="text", disable=None if progress else True)
    with bar:
        for start in range(0, len(texts), batch_size):
            chunk_t = list(texts[start : start + batch_size])
            chunk_l = list(languages[start : start + batch_size])
            results = list(score_batch(chunk_t, chunk_l))
            if len(results) != len(chunk_t):
                raise XdetoxError(
                    f"scorer returned {len(results)} results for {len(chunk_t)} texts"
                )
            for result in results:
                value = result.get(attribute) if isinstance(result, Mapping) else None
                if value is not None and not isinstance(value, int | float):
                    raise XdetoxError(f"scorer returned a non-numeric {attribute}: {value!r}")
                ok = value is not None and math.isfinite(value)
                out.append(float(value) if ok else None)
            bar.update(len(chunk_t))
    return out


def intervention_sweep(
    model: Any,
    tokenizer: Any,
    arch: Architecture,
    neurons: Sequence[Neuron],
    prompts: Mapping[str, Sequence[Prompt]],
    *,
    offsets: Sequence[float],
    generation: GenerationConfig,
    score_batch: ScoreBatch,
    attribute: str = "TOXICITY",
    score_batch_size: int = 64,
    source: Path,
    progress: bool = True,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows ``(offset, language, avg_toxicity, n, n_missing)`` with an ``ALL`` row per offset
    (mean over the languages that have a value), and the scored generations."""
    flat = [p for group in prompts.values() for p in group]
    rows: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    for offset in offsets:
        with neuron_offset(arch, neurons, offset):
            generated, _ = generate_samples(
                model,
                tokenizer,
                flat,
                model_label=f"offset={offset:g}",
                config=generation,
                source=source,
                progress=progress,
            )
        scores = score_texts(
            score_batch,
            [r["text"] for r in generated],
            [r["language"] for r in generated],
            attribute,
            score_batch_size,
            progress=progress,
        )
        per_language: dict[str, list[float | None]] = {lang: [] for lang in prompts}
        for record, score in zip(generated, scores, strict=True):
            per_language[record["language"]].append(score)
            records.append({**record, "offset": offset, "scores": {attribute: score}})
        offset_rows = []
        for lang, values in per_language.items():
            present = [v for v in values if v is not None]
            offset_rows.append(
                {
                    "offset": offset,
                    "language": lang,
                    "avg_toxicity": mean_or_none(present),
                    "n": len(present),
                    "n_missing": len(values) - len(present),
                }
            )
        rows.extend(offset_rows)
        rows.append(
            {
                "offset": offset,
                "language": ALL_LANGUAGES,
                "avg_toxicity": mean_or_none(r["avg_toxicity"] for r in offset_rows),
                "n": sum(r["n"] for r in offset_rows),
                "n_missing": sum(r["n_missing"] for r in offset_rows),
            }
        )
        log.info("offset %g: mean %s %s", offset, attribute, rows[-1]["avg_toxicity"])
    return rows, records


def run_intervention(
    model_dir: str | Path,
    neurons_path: str | Path,
    prompts_path: str | Path,
    output_dir: str | Path,
    *,
    score_batch: ScoreBatch,
    generation: GenerationConfig | None = None,
    config: InterventionConfig | None = None,
    progress: bool = True,
    device: str | None = None,
) -> dict[str, Any]:
    """Sweep ``config.offsets`` × languages; write ``intervention.csv``, ``intervention.png``,
    the scored generations and a summary into ``output_dir``; return the summary.

    ``neurons_path``: ``value_vectors.csv`` (its kept rows) or any CSV with layer, index.
    ``generation``: the sampling protocol (default: the project's, XG's).
    """
    config = config or InterventionConfig()
    if len(set(config.offsets)) != len(config.offsets):
        raise ConfigError(f"interpret.intervention.offsets: repeated values in {config.offsets}")
    generation = generation or GenerationConfig()
    prompts_path = Path(prompts_path)
    neurons = read_neurons(neurons_path)
    prompts = select_prompts(
        read_prompts(prompts_path),
        config.languages,
        config.max_prompts_per_language,
        prompts_path,
        "interpret.intervention.languages",
    )
    model, tokenizer, arch = load_frozen(model_dir, device)
    for n in neurons:
        arch.check_neuron(n.layer, n.index, str(neurons_path))
    if config.prepend_bos:
        # The generation backend encodes the prompts itself: hand it BOS-led encodings.
        tokenizer = BosTokenizer(tokenizer, "interpret.intervention.prepend_bos")
    rows, records = intervention_sweep(
        model,
        tokenizer,
        arch,
        neurons,
        prompts,
        offsets=config.offsets,
        generation=generation,
        score_batch=score_batch,
        attribute=config.attribute,
        score_batch_size=config.score_batch_size,
        source=prompts_path,
        progress=progress,
    )
    return write_intervention(
        output_dir,
        rows,
        records,
        languages=list(prompts),
        offsets=config.offsets,
        n_neurons=len(neurons),
        model_type=arch.model_type,
        generation=generation.model_dump(),
        config=config.model_dump(),
    )
