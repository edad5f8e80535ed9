"""Each stage run from sources and config sections: what the CLI commands and KFP components call.

The ``run_*`` functions of the stage modules take local paths; these resolve ``toy`` and
``gs://`` sources first, build the configured scorer for the intervention and restrict a sweep to
one language for a ParallelFor task, so a command or a component is one call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xdetox.components.interpret.alignment import run_alignment
from xdetox.components.interpret.intervention import run_intervention
from xdetox.components.interpret.probe import run_probe
from xdetox.components.interpret.settings import AlignmentConfig, InterventionConfig, ProbeConfig
from xdetox.components.interpret.sources import optional_source
from xdetox.config import GenerationConfig, ScoringConfig
from xdetox.storage import local_copy
from xdetox.toy.data_sources import local_data


def probe_from_sources(
    model_dir: str | Path,
    data_source: str | Path,
    output_dir: str | Path,
    config: ProbeConfig,
    *,
    test_source: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """:func:`~xdetox.components.interpret.probe.run_probe` on ``toy``, local or ``gs://`` CSVs."""
    test = optional_source(test_source)
    with local_data(data_source, "probe") as data:
        if test is None:
            return run_probe(model_dir, data, output_dir, config, progress=progress)
        with local_data(test, "probe") as test_path:
            return run_probe(
                model_dir, data, output_dir, config, test_path=test_path, progress=progress
            )


def alignment_from_sources(
    model_dir: str | Path,
    pairs_source: str | Path,
    output_dir: str | Path,
    config: AlignmentConfig,
    *,
    metrics_source: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """:func:`~xdetox.components.interpret.alignment.run_alignment` on ``toy``, local or ``gs://``
    pairs; ``metrics_source`` (``None`` or ``""``: no correlation) may be ``gs://`` too."""
    metrics = optional_source(metrics_source)
    with local_data(pairs_source, "parallel") as pairs:
        if metrics is None:
            return run_alignment(model_dir, pairs, output_dir, config, progress=progress)
        with local_copy(metrics) as metrics_path:
            return run_alignment(
                model_dir, pairs, output_dir, config, metrics_path=metrics_path, progress=progress
            )


def intervention_scored(
    model_dir: str | Path,
    neurons_path: str | Path,
    prompts_path: str | Path,
    output_dir: str | Path,
    config: InterventionConfig,
    generation: GenerationConfig,
    scoring: ScoringConfig,
    *,
    language: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The sweep, scored with the configured scorer; ``language`` restricts it to one language
    (one ParallelFor task), overriding ``config.languages``."""
    from xdetox.components.score.scorers import get_scorer

    if language:
        config = config.model_copy(update={"languages": [language]})
    scorer = get_scorer(scoring)
    try:
        return run_intervention(
            model_dir,
            neurons_path,
            prompts_path,
            output_dir,
            score_batch=scorer.score_batch,
            generation=generation,
            config=config,
            progress=progress,
        )
    finally:
        scorer.close()
