"""The report's tables with a column per model: every model a run produced, side by side.

A run may evaluate more than base and tuned: the SFT stage and the final model of ``sft_dpo``
(the model card reports both), several methods trained from the same base, a control arm.
These tables put them next to each other, in the order they were evaluated:

- :func:`side_by_side`: per language and toxicity metric, each model's value, its change
  against the base and, where the run compared it with a second model (``compared_with``:
  sft_dpo with sft, the control with the tuned model), the change against that one, each with
  its paired bootstrap interval;
- :func:`card_rows`: the model card's table, per language and Perspective attribute the share
  (and count) of generations at or above the threshold for every model, with the change at each
  stage (against the model it was trained from, else the base) in percentage points;
- :func:`control_verdicts`: per language, in words, whether the tuned model moved toxicity
  beyond its control (then the drop is more than drift) or not;
- :func:`prompt_set_rows`: per language and prompt set (``kind``: insult, neutral, ...) each
  model's hit rate, so a reader sees which set lifts the base model above the scorer's floor.

Rows are plain strings so that the HTML and the Markdown report show the same cells.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from xdetox.components.metrics.columns import (
    BOOTSTRAP_METRICS,
    COMPARED_WITH,
    INTERVAL_METRICS,
    MEASURABLE,
    VS_PREFIX,
    attribute_columns,
    ci_columns,
    count_column,
    delta_column,
    pct_column,
)
from xdetox.components.metrics.floor import measurable_value
from xdetox.components.metrics.prompt_sets import HIT_RATE_PREFIX, SCORED_PREFIX, kinds_of
from xdetox.components.report.aggregate import ALL_LANGUAGES, model_sequence
from xdetox.components.report.formatting import MISSING, format_value, interval_text, is_missing
from xdetox.records import BASE_LABEL, CONTROL_LABEL

Rows = list[dict[str, str]]
Headers = list[tuple[str, str]]

# (column, label) of the metrics shown side by side; perplexity has no interval of its change.
SIDE_METRICS: tuple[tuple[str, str], ...] = (
    ("expected_max_toxicity", "EMT"),
    ("toxicity_probability", "tox. prob."),
    ("avg_toxicity", "avg. tox."),
    ("perplexity", "PPL (median)"),
    ("nll_mean", "NLL under base (nats/token)"),
)
# The metric that decides the control verdict: continuous (more power than the probability).
VERDICT_METRIC = "expected_max_toxicity"


def languages_of(df: pd.DataFrame) -> list[str]:
    """Per-language rows first (sorted), ``ALL`` last."""
    found = {str(v) for v in df["language"]}
    return sorted(found - {ALL_LANGUAGES}) + ([ALL_LANGUAGES] if ALL_LANGUAGES in found else [])


def rows_by_key(df: pd.DataFrame) -> dict[tuple[str, str], dict[str, object]]:
    return {(str(r["model"]), str(r["language"])): r for r in df.to_dict(orient="records")}


def second_models(df: pd.DataFrame) -> dict[str, str]:
    """``{model: compared_with}`` of the models the run also measured against a second one."""
    if COMPARED_WITH not in df:
        return {}
    pairs = df[["model", COMPARED_WITH]].dropna()
    return {str(m): str(o) for m, o in zip(pairs["model"], pairs[COMPARED_WITH], strict=True)}


def _change(
    row: Mapping[str, object] | None, base: Mapping[str, object] | None, metric: str, prefix: str
) -> str:
    """``Δ [low, high]`` of ``row``'s change (``prefix`` ``vs_``: against its second model)."""
    if row is None:
        return MISSING
    delta = prefix + delta_column(metric)
    value = row.get(delta)
    if is_missing(value) and not prefix and base is not None:
        # No paired estimate (perplexity, or a table without the bootstrap): the difference.
        mine, theirs = row.get(metric), base.get(metric)
        if not is_missing(mine) and not is_missing(theirs):
            value = float(mine) - float(theirs)  # type: ignore[arg-type]
    text = format_value(delta_column(metric), value)
    if metric in INTERVAL_METRICS:
        interval = interval_text(row, metric, prefix)
        if interval is not None:
            text += f" {interval}"
    return text


def side_by_side(df: pd.DataFrame) -> tuple[Rows, Headers]:
    """Per language and metric: every model's value and changes (see module docstring)."""
    models = model_sequence(df)
    seconds = second_models(df)
    by_key = rows_by_key(df)
    headers: Headers = [("language", "language"), ("metric", "metric")]
    for model in models:
        headers.append((model, model))
        if model != BASE_LABEL:
            headers.append((f"{model}|base", f"{model} − base"))
        if model in seconds:
            headers.append((f"{model}|vs", f"{model} − {seconds[model]}"))
    rows: Rows = []
    for language in languages_of(df):
        base = by_key.get((BASE_LABEL, language))
        for metric, label in SIDE_METRICS:
            if metric not in df:
                continue
            cells = {"language": language, "metric": label}
            for model in models:
                row = by_key.get((model, language))
                cells[model] = MISSING if row is None else format_value(metric, row.get(metric))
                if model != BASE_LABEL:
                    cells[f"{model}|base"] = _change(row, base, metric, "")
                if model in seconds:
                    cells[f"{model}|vs"] = (
                        _change(row, None, metric, VS_PREFIX)
                        if metric in BOOTSTRAP_METRICS
                        else _change(row, by_key.get((seconds[model], language)), metric, "")
                    )
            rows.append(cells)
    return rows, headers


def _share(row: Mapping[str, object] | None, attribute: str) -> str:
    if row is None:
        return MISSING
    pct, count = row.get(pct_column(attribute)), row.get(count_column(attribute))
    text = format_value(pct_column(attribute), pct)
    return text if is_missing(count) else f"{text} ({format_value(count_column(attribute), count)})"


def card_rows(df: pd.DataFrame) -> tuple[Rows, Headers]:
    """The model card's table: per language and attribute, each model's share ≥ threshold (and
    count), and the change at each stage in percentage points (see module docstring)."""
    attributes = attribute_columns(list(df.columns))
    models = model_sequence(df)
    seconds = second_models(df)
    by_key = rows_by_key(df)
    headers: Headers = [("language", "language"), ("attribute", "attribute")]
    for model in models:
        headers.append((model, f"{model} % (n)"))
        if model != BASE_LABEL:
            headers.append((f"{model}|stage", f"Δ {seconds.get(model, BASE_LABEL)} → {model}"))
    rows: Rows = []
    for language in languages_of(df):
        for attribute in attributes:
            cells = {"language": language, "attribute": attribute}
            for model in models:
                row = by_key.get((model, language))
                cells[model] = _share(row, attribute)
                if model == BASE_LABEL:
                    continue
                before = by_key.get((seconds.get(model, BASE_LABEL), language))
                column = pct_column(attribute)
                change = None
                if row is not None and before is not None:
                    mine, theirs = row.get(column), before.get(column)
                    if not is_missing(mine) and not is_missing(theirs):
                        change = float(mine) - float(theirs)  # type: ignore[arg-type]
                cells[f"{model}|stage"] = format_value(delta_column(column), change)
            rows.append(cells)
    return rows, headers


def control_verdicts(df: pd.DataFrame) -> list[str]:
    """Per language (``ALL`` last), whether the tuned model beat its control (module docstring).

    The rule reads the control's row: its change against the tuned model (control − tuned) of
    EMT, paired per prompt. Interval above 0: the tuned model is less toxic than a model trained
    as far from the base on reversed preferences, so its drop is more than drift. Otherwise the
    control moved toxicity as much: the drop is not evidence of detoxification. A language whose
    tuned change is not measurable (scorer floor), or shows no drop at all (its own interval
    reaches 0), says so instead.
    """
    seconds = second_models(df)
    tuned = seconds.get(CONTROL_LABEL)
    if tuned is None:
        return []
    by_key = rows_by_key(df)
    low_col, high_col = (VS_PREFIX + c for c in ci_columns(VERDICT_METRIC))
    out = []
    for language in languages_of(df):
        control, model = by_key.get((CONTROL_LABEL, language)), by_key.get((tuned, language))
        if control is None or model is None:
            continue
        versus = _change(control, None, VERDICT_METRIC, VS_PREFIX)
        own = _change(model, None, VERDICT_METRIC, "")
        ctrl = _change(control, None, VERDICT_METRIC, "")
        facts = f"EMT {tuned} − base {own}, control − base {ctrl}, control − {tuned} {versus}"
        if measurable_value(model.get(MEASURABLE)) is False:
            out.append(f"{language}: not measurable (the base model sits at the scorer's floor); "
                       f"{facts}.")  # fmt: skip
            continue
        own_high = model.get(ci_columns(VERDICT_METRIC)[1])
        if not is_missing(own_high) and float(own_high) >= 0:  # type: ignore[arg-type]
            out.append(f"{language}: {tuned} shows no drop to explain (its interval reaches 0 "
                       f"or above). {facts}.")  # fmt: skip
            continue
        low, high = control.get(low_col), control.get(high_col)
        if is_missing(low) or is_missing(high):
            out.append(f"{language}: no interval to decide with; {facts}.")
        elif float(low) > 0:  # type: ignore[arg-type]
            out.append(
                f"{language}: {tuned} is less toxic than its control (the interval of control − "
                f"{tuned} lies above 0): its drop is more than drift. {facts}."
            )
        else:
            out.append(
                f"{language}: the control moved toxicity as much as {tuned} (the interval of "
                f"control − {tuned} reaches 0 or below): the drop is not distinguishable from "
                f"drift. {facts}."
            )
    return out


def prompt_set_rows(df: pd.DataFrame) -> tuple[Rows, Headers]:
    """Per language and prompt set: each model's hit rate (share of scored samples at or above
    the threshold) and, for the base, how many samples it rests on. Empty without sets."""
    kinds = kinds_of(list(df.columns))
    if not kinds:
        return [], []
    models = model_sequence(df)
    by_key = rows_by_key(df)
    headers: Headers = [("language", "language"), ("set", "prompt set"), ("n", "base samples")]
    headers += [(model, f"{model} hit rate") for model in models]
    rows: Rows = []
    for language in languages_of(df):
        for kind in kinds:
            base = by_key.get((BASE_LABEL, language))
            n = None if base is None else base.get(SCORED_PREFIX + kind)
            cells = {"language": language, "set": kind, "n": format_value("n_scored", n)}
            for model in models:
                row = by_key.get((model, language))
                value = None if row is None else row.get(HIT_RATE_PREFIX + kind)
                cells[model] = format_value("base_hit_rate", value)
            rows.append(cells)
    return rows, headers
