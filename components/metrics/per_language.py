"""The metrics stage: score files in, one row per (model, language) out (``metrics.csv``).

Columns: ``model, language, scorer``; toxicity (``n_prompts, n_samples, n_missing,
n_prompts_unscored, expected_max_toxicity(_std), toxicity_probability`` (fraction),
``avg_toxicity, threshold``, and per attribute ``n_scored_<A>, count_<A>_ge_thr,
pct_<A>_ge_thr`` (percent)); fluency (``perplexity`` = median, ``perplexity_q1/_q3/_mean,
n_ppl_scored, n_ppl_dropped, n_ppl_empty, perplexity_method, perplexity_model``); diversity
(``dist_1..3, n_prompts_no_tokens, diversity_tokenizer``); the protocol (``group_by,
empty_text, distinct_tokens, quartile_method``: where XG's evaluation and our defaults differ,
which one produced the row; ``n_prompt_groups``: the prompt units under ``group_by``); and, on
each tuned model's rows when the base model's scores are in the same call, the paired
bootstrap of tuned − base (``delta_<m>``, ``delta_<m>_se``, ``delta_<m>_ci_low``,
``delta_<m>_ci_high`` for EMT, toxicity probability and average toxicity; ``n_prompts_paired,
n_prompts_unpaired, bootstrap_samples, bootstrap_seed, confidence, delta_ci_method``; see
``bootstrap.py``), and the scorer floor (``base_hit_rate``, ``mde_<m>``, ``power``,
``power_drop_to_zero``, ``measurable``, ``measurable_reason``: whether the change could have
been seen at all; see ``floor.py``).

Perplexity of *all* models' generations is measured under one model: ``perplexity_model`` when
the config names one (e.g. ``google/mt5-xl`` for ``xg-seq2seq``), else ``model_dir`` — the base
model — so base and tuned numbers share one scale. Without either, or with ``perplexity:
false``, the perplexity columns are empty (NaN), not 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from xdetox.components.metrics.bootstrap import bootstrap_table, comparison_table
from xdetox.components.metrics.columns import MODEL_ORDER, REQUIRED_COLUMNS
from xdetox.components.metrics.diversity import diversity_metrics, load_tokenizer, ngram_joiner
from xdetox.components.metrics.floor import floor_table
from xdetox.components.metrics.fluency_cost import (
    fluency_cost_table,
    nll_of_perplexities,
    nll_table,
)
from xdetox.components.metrics.perplexity import perplexity_metrics
from xdetox.components.metrics.prompt_sets import prompt_set_table
from xdetox.components.metrics.read_scores import read_scores
from xdetox.components.metrics.toxicity import toxicity_metrics
from xdetox.config import MetricsConfig
from xdetox.errors import DataError
from xdetox.files import atomic_path
from xdetox.records import BASE_LABEL

_PERPLEXITY_COLUMNS = (
    "perplexity",
    "perplexity_q1",
    "perplexity_q3",
    "perplexity_mean",
    "n_ppl_scored",
    "n_ppl_dropped",
    "n_ppl_empty",
    "perplexity_method",
    "perplexity_model",
)


def sort_rows(df: pd.DataFrame, baseline: str = BASE_LABEL) -> pd.DataFrame:
    """Baseline model first, then the other models in ``model_order`` (the order they were
    evaluated: base, sft, sft_dpo, control) or, without it, by name; languages by name within
    each."""
    if MODEL_ORDER in df:
        ranks = pd.to_numeric(df[MODEL_ORDER], errors="coerce").fillna(math.inf)
        order = [(m != baseline, r, m) for m, r in zip(df["model"], ranks, strict=True)]
    else:
        order = [(m != baseline, 0, m) for m in df["model"]]
    return (
        df.assign(_order=pd.Series(order, index=df.index, dtype=object))
        .sort_values(["_order", "language"], kind="stable")
        .drop(columns="_order")
        .reset_index(drop=True)
    )


def _empty_text_policy(table: pd.DataFrame) -> str:
    """The one ``scoring.empty_text`` policy of every score record: base and tuned rows (and
    the bootstrap between them) only compare when their empty continuations were treated alike.
    """
    policies = sorted(set(table["empty_text"]))
    if len(policies) != 1:
        raise DataError(
            f"score files scored with different scoring.empty_text values ({', '.join(policies)}); "
            "score them all with one"
        )
    return policies[0]


def _with_fluency_cost(
    metrics: pd.DataFrame, table: pd.DataFrame, perplexities: pd.Series, config: MetricsConfig
) -> pd.DataFrame:
    """``nll_mean`` on every row and, with the bootstrap on, the fluency cost (model − base)
    with its interval on the other models' rows (``fluency_cost.py``)."""
    nll = nll_of_perplexities(perplexities, config.max_perplexity)
    key = ["model", "language"]
    metrics = metrics.merge(nll_table(table, nll, config.group_by), on=key, how="left",
                            validate="1:1")  # fmt: skip
    if config.bootstrap_samples > 0:
        cost = fluency_cost_table(
            table, nll, BASE_LABEL, samples=config.bootstrap_samples, seed=config.bootstrap_seed,
            confidence=config.confidence, group_by=config.group_by,
        )  # fmt: skip
        if not cost.empty:
            metrics = metrics.merge(cost, on=key, how="left", validate="1:1")
    return metrics


def compute_metrics(
    score_files: list[str | Path],
    config: MetricsConfig,
    *,
    model_dir: str | Path | None = None,
    batch_size: int = 16,
    device: str | None = None,
    comparisons: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Per-(model, language) metrics of the samples in ``score_files`` (see module docstring).

    ``model_dir`` is the base model: it measures perplexity (unless ``perplexity_model`` names
    another) and, with ``diversity_tokenizer: model``, tokenizes for distinct-n.
    ``batch_size``/``device`` only affect the perplexity forward passes.
    ``comparisons`` (``{model: other}``) adds, on ``model``'s rows, the paired bootstrap of
    model − other (``compared_with``, ``vs_delta_*``), e.g. ``{"sft_dpo": "sft"}``. Rows keep the
    order in which models first appear in ``score_files`` (``model_order``).
    """
    table = read_scores(score_files)
    order = {model: rank for rank, model in enumerate(dict.fromkeys(table["model"]))}
    empty_text = _empty_text_policy(table)
    tokenizer_spec = config.diversity_tokenizer
    # Fail early, before the slow parts.
    tokenize = load_tokenizer(tokenizer_spec, model_dir, config.distinct_tokens)

    metrics = toxicity_metrics(table, config.threshold, config.group_by)
    joiner = ngram_joiner(tokenizer_spec, config.distinct_tokens)
    diversity = diversity_metrics(table, tokenize, joiner=joiner)
    diversity["diversity_tokenizer"] = (
        f"model ({model_dir})" if tokenizer_spec == "model" else tokenizer_spec
    )
    metrics = metrics.merge(diversity, on=["model", "language"], how="left", validate="1:1")
    sets = prompt_set_table(table, config.threshold)
    if not sets.empty:
        metrics = metrics.merge(sets, on=["model", "language"], how="left", validate="1:1")

    intervals = None
    if config.bootstrap_samples > 0:
        intervals = bootstrap_table(
            table, BASE_LABEL, threshold=config.threshold, samples=config.bootstrap_samples,
            seed=config.bootstrap_seed, confidence=config.confidence, group_by=config.group_by,
            power=config.power,
        )  # fmt: skip
    # Whether each tuned language's change is measurable at all (the scorer floor), before the
    # intervals join the table: the rule reads the base rows and the bootstrap's power.
    floor = floor_table(metrics, BASE_LABEL, intervals, power=config.power)
    if intervals is not None and not intervals.empty:
        metrics = metrics.merge(intervals, on=["model", "language"], how="left", validate="1:1")
    if not floor.empty:
        metrics = metrics.merge(floor, on=["model", "language"], how="left", validate="1:1")
    if comparisons and config.bootstrap_samples > 0:
        unknown = sorted({*comparisons, *comparisons.values()} - set(order))
        if unknown:
            raise DataError(f"compared model(s) without scores: {', '.join(unknown)}")
        second = comparison_table(
            table, comparisons, threshold=config.threshold, samples=config.bootstrap_samples,
            seed=config.bootstrap_seed, confidence=config.confidence, group_by=config.group_by,
        )  # fmt: skip
        if not second.empty:
            metrics = metrics.merge(second, on=["model", "language"], how="left", validate="1:1")

    perplexity_source = config.perplexity_model or model_dir
    if config.perplexity and perplexity_source is not None:
        fluency = perplexity_metrics(
            table, perplexity_source, max_perplexity=config.max_perplexity,
            batch_size=batch_size, device=device, method=config.perplexity_method,
            quartile_method=config.quartile_method,
        )  # fmt: skip
        metrics = metrics.merge(
            fluency.summary, on=["model", "language"], how="left", validate="1:1"
        )
        metrics = _with_fluency_cost(metrics, table, fluency.samples, config)
    else:
        for column in _PERPLEXITY_COLUMNS:
            text = column in ("perplexity_method", "perplexity_model")
            metrics[column] = None if text else math.nan
    metrics[MODEL_ORDER] = metrics["model"].map(order)
    metrics["group_by"] = config.group_by
    metrics["empty_text"] = empty_text
    metrics["distinct_tokens"] = config.distinct_tokens
    metrics["quartile_method"] = config.quartile_method
    missing = [c for c in REQUIRED_COLUMNS if c not in metrics.columns]
    assert not missing, f"metrics table lacks {missing}"  # a bug here, not a user error
    return sort_rows(metrics)


def write_metrics_csv(df: pd.DataFrame, path: str | Path) -> None:
    """Write the metrics table as CSV atomically (missing values as empty cells)."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def run_metrics(
    score_files: list[str | Path],
    config: MetricsConfig,
    output_csv: str | Path,
    *,
    model_dir: str | Path | None = None,
    batch_size: int = 16,
    device: str | None = None,
    comparisons: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Compute the metrics and write them to ``output_csv``; nothing is written on error."""
    df = compute_metrics(
        score_files, config, model_dir=model_dir, batch_size=batch_size, device=device,
        comparisons=comparisons,
    )  # fmt: skip
    write_metrics_csv(df, output_csv)
    return df
