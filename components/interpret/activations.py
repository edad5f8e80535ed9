"""The toxic neurons' activation per language, before and after preference tuning (as in XG).

For each model (base, tuned, ...) and language: the chosen neurons' activation at the last
position over ``steps`` greedy steps from each prompt, averaged over positions, prompts and
neurons. XG saw the 17-language mean fall from 0.052 to -0.011 for mGPT after English DPO.

XG's loop (``xg/collect_neuron_activations.py``, run by
``scripts/run_collect_neuron_activations.py``) feeds TransformerLens' BOS-led prompts in batches
of 10 and takes 20 argmax steps without stopping at end-of-sequence; ``prepend_bos: true``,
``stop_at_eos: false`` and ``batch_size: 10`` do the same (see :mod:`.greedy`).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from xdetox.components.generate.prompt_file import read_prompts
from xdetox.components.interpret.greedy import greedy_step_activations
from xdetox.components.interpret.neurons import read_neurons
from xdetox.components.interpret.plots import grouped_bars_png
from xdetox.components.interpret.pooling import load_frozen
from xdetox.components.interpret.prompt_selection import ALL_LANGUAGES, select_prompts
from xdetox.components.interpret.settings import ActivationConfig
from xdetox.components.interpret.tables import mean_or_none, write_csv
from xdetox.errors import ConfigError
from xdetox.files import atomic_dir, write_json

log = logging.getLogger(__name__)

TABLE_FILE = "activations.csv"
NEURON_TABLE_FILE = "neuron_activations.csv"
PLOT_FILE = "activations.png"
SUMMARY_FILE = "activations_summary.json"
COLUMNS = ("model", "language", "mean_activation", "n_prompts", "n_positions")
NEURON_COLUMNS = ("model", "language", "layer", "index", "mean_activation")


def run_activations(
    models: Mapping[str, str | Path],
    neurons_path: str | Path,
    prompts_path: str | Path,
    output_dir: str | Path,
    config: ActivationConfig | None = None,
    *,
    progress: bool = True,
    device: str | None = None,
) -> dict[str, Any]:
    """Measure every model in ``models`` (label → folder, e.g. ``{"base": ..., "dpo": ...}``)
    and write ``activations.csv`` (with an ``ALL`` row per model: mean over languages),
    ``neuron_activations.csv``, ``activations.png`` and a summary; return the summary."""
    config = config or ActivationConfig()
    if not models:
        raise ConfigError("activations: no models given")
    prompts_path = Path(prompts_path)
    neurons = read_neurons(neurons_path)
    prompts = select_prompts(
        read_prompts(prompts_path),
        config.languages,
        config.max_prompts_per_language,
        prompts_path,
        "interpret.activations.languages",
    )
    flat = [p for group in prompts.values() for p in group]
    positions: dict[str, list[int]] = {}
    for i, p in enumerate(flat):
        positions.setdefault(p.language, []).append(i)

    rows: list[dict[str, Any]] = []
    neuron_rows: list[dict[str, Any]] = []
    for label, model_dir in models.items():
        model, tokenizer, arch = load_frozen(model_dir, device)
        for n in neurons:
            arch.check_neuron(n.layer, n.index, f"{neurons_path} (model {label!r})")
        acts = greedy_step_activations(
            model,
            tokenizer,
            arch,
            flat,
            neurons,
            steps=config.steps,
            batch_size=config.batch_size,
            source=prompts_path,
            prepend_bos=config.prepend_bos,
            stop_at_eos=config.stop_at_eos,
            settings_key="interpret.activations",
            desc=f"activations {label}",
            progress=progress,
        )
        model_rows = []
        for lang, idx in positions.items():
            per_neuron = acts.mean_per_neuron(idx)
            n_positions = int(acts.valid[idx].sum())
            model_rows.append(
                {
                    "model": label,
                    "language": lang,
                    "n_prompts": len(idx),
                    "mean_activation": float(per_neuron.mean()) if n_positions else None,
                    "n_positions": n_positions,
                }
            )
            for n, value in zip(neurons, per_neuron.tolist(), strict=True):
                neuron_rows.append(
                    {
                        "model": label,
                        "language": lang,
                        "layer": n.layer,
                        "index": n.index,
                        "mean_activation": value if n_positions else None,
                    }
                )
        rows.extend(model_rows)
        rows.append(
            {
                "model": label,
                "language": ALL_LANGUAGES,
                "mean_activation": mean_or_none(r["mean_activation"] for r in model_rows),
                "n_prompts": sum(r["n_prompts"] for r in model_rows),
                "n_positions": sum(r["n_positions"] for r in model_rows),
            }
        )
        del model, acts
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    languages = [*prompts, ALL_LANGUAGES]
    table = {(r["model"], r["language"]): r["mean_activation"] for r in rows}
    groups = {label: [table[(label, lang)] for lang in languages] for label in models}
    summary: dict[str, Any] = {
        "models": list(models),
        "n_neurons": len(neurons),
        "languages": list(prompts),
        "mean_over_languages": {label: table[(label, ALL_LANGUAGES)] for label in models},
        "config": config.model_dump(),
        "files": {
            "table": TABLE_FILE,
            "neurons": NEURON_TABLE_FILE,
            "plot": PLOT_FILE,
            "summary": SUMMARY_FILE,
        },
    }
    with atomic_dir(output_dir) as tmp:
        write_csv(tmp / TABLE_FILE, rows, COLUMNS)
        write_csv(tmp / NEURON_TABLE_FILE, neuron_rows, NEURON_COLUMNS)
        grouped_bars_png(
            tmp / PLOT_FILE,
            languages,
            groups,
            ylabel=f"mean activation of {len(neurons)} neurons",
            title=f"Toxic neurons, last position over {config.steps} greedy steps",
        )
        write_json(tmp / SUMMARY_FILE, summary)
    log.info("activations: %s", summary["mean_over_languages"])
    return summary
