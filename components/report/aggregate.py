"""Combine per-language metrics tables and compare tuned models with the base.

``aggregate_metrics`` concatenates the ``metrics.csv`` files the metrics stage wrote (one per
language, or any split), keeps one row per (model, language), and adds per model an ``ALL`` row:
the mean over languages of each metric (as XG's Table 2 averages over its 17 languages), with
counts (``n_*``, ``count_*``) summed. Where a metric is missing for some languages, the ``ALL``
value is the mean over the languages that have it and the ``languages_missing`` column names the
others, so a partial average is never mistaken for a full one.

The scorer floor (``xdetox.components.metrics.floor``): an ``ALL`` row's ``measurable`` is True
when every language's is, False when any language's is False (its reason names them: a mean over
languages that includes changes nobody could have seen is no clean measurement either), and
unknown otherwise; ``power_drop_to_zero`` is not defined for a mean and stays empty; ``mde_<m>`` is
``(z_{1−α/2} + z_{power}) × SE`` with the combined SE below. Tables written before these columns
existed read as unknown, never as measurable.

Confidence intervals of tuned − base (``delta_<m>_ci_low/_high``, from the metrics stage's paired
bootstrap) cannot be averaged: the ``ALL`` row's interval is the normal approximation
``mean Δ ± z·SE`` with ``SE = sqrt(Σ SE_l²) / L`` from the per-language bootstrap standard errors
(languages are independent samples of prompts), and ``delta_ci_method`` says so.
"""

from __future__ import annotations

import math
from pathlib import Path
from statistics import NormalDist

import pandas as pd

from xdetox.components.metrics.columns import (
    BASE_HIT_RATE,
    BOOTSTRAP_METRICS,
    DIVERSITY_METRICS,
    FLUENCY_METRICS,
    INTERVAL_METRICS,
    KEY_COLUMNS,
    LEGACY_PROTOCOL,
    MEASURABLE,
    MEASURABLE_REASON,
    MODEL_ORDER,
    POWER_DROP_TO_ZERO,
    REQUIRED_COLUMNS,
    SETTING_COLUMNS,
    TEXT_COLUMNS,
    TOXICITY_METRICS,
    VS_PREFIX,
    attribute_columns,
    ci_columns,
    delta_column,
    is_count_column,
    mde_column,
    pct_column,
    se_column,
)
from xdetox.components.metrics.floor import DEFAULT_POWER, mde_factor, measurable_value
from xdetox.components.metrics.per_language import sort_rows
from xdetox.errors import DataError
from xdetox.records import BASE_LABEL

ALL_LANGUAGES = "ALL"
"""The ``language`` of each model's mean-over-languages row."""

_SOURCE = "_source"
_DERIVED = ("n_languages", "languages_missing")
_REL_TOL = 1e-9  # CSV round trips may change the last digit of a float
ALL_CI_METHOD = "normal approximation from per-language bootstrap SEs"
# Columns that are missing exactly when their delta is: not worth a note of their own.
_DERIVED_SUFFIXES = ("_se", "_ci_low", "_ci_high")
# The scorer floor's columns whose ALL value is not a mean (see the module docstring).
_FLOOR_COLUMNS = (MEASURABLE, MEASURABLE_REASON, POWER_DROP_TO_ZERO)


def read_metrics_csv(path: str | Path) -> pd.DataFrame:
    """One metrics table; a file without the required columns is a :class:`DataError`.

    A table without the protocol columns (``LEGACY_PROTOCOL``: written before they existed)
    gets the values it was computed with.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path)
    try:
        # Only empty cells are missing: a model or language called "NA" stays a string.
        df = pd.read_csv(
            path, keep_default_na=False, na_values=[""], dtype={"model": str, "language": str}
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "empty file"
        raise DataError(f"not a readable CSV ({first_line})", path) from None
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"missing column(s) {', '.join(repr(m) for m in missing)}", path)
    if df[list(KEY_COLUMNS)].isna().any().any():
        raise DataError("empty 'model' or 'language' cell", path)
    for column, value in LEGACY_PROTOCOL.items():
        if column not in df.columns:
            # Written before the protocol was recorded: computed the one way there was then,
            # so mixing it with a table computed another way is refused like any setting.
            df[column] = value
    if MEASURABLE in df.columns:
        # CSV gives True/False/empty as bools, NaN or text: one dtype, empty = unknown. A table
        # without the column stays without it (unknown), never "measurable".
        df[MEASURABLE] = pd.array([measurable_value(v) for v in df[MEASURABLE]], dtype="boolean")
    return df


def _same(a: object, b: object) -> bool:
    if pd.isna(a) and pd.isna(b):  # type: ignore[arg-type]
        return True
    if pd.isna(a) or pd.isna(b):  # type: ignore[arg-type]
        return False
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(float(a), float(b), rel_tol=_REL_TOL, abs_tol=1e-12)
    return str(a) == str(b)


def _deduplicate(df: pd.DataFrame) -> pd.DataFrame:
    """Keep one row per (model, language); two files that disagree about it are an error."""
    columns = [c for c in df.columns if c != _SOURCE]
    keep = []
    first_of: dict[tuple[str, str], pd.Series] = {}
    for index, row in df.iterrows():
        key = (row["model"], row["language"])
        if key not in first_of:
            first_of[key] = row
            keep.append(index)
            continue
        first = first_of[key]
        for column in columns:
            if not _same(first[column], row[column]):
                raise DataError(
                    f"model {key[0]!r}, language {key[1]!r}: {column} = {row[column]} here but "
                    f"{first[column]} in {first[_SOURCE]}",
                    row[_SOURCE],
                )
    return df.loc[keep]


def _all_row(model: str, rows: pd.DataFrame) -> dict[str, object]:
    out: dict[str, object] = {"model": model, "language": ALL_LANGUAGES}
    languages = list(rows["language"])
    missing_notes = []
    for column in rows.columns:
        if column in (*KEY_COLUMNS, _SOURCE, "languages_missing", *_FLOOR_COLUMNS):
            continue
        values = rows[column]
        textual = not pd.api.types.is_numeric_dtype(values) and values.notna().any()
        if column in TEXT_COLUMNS or column in SETTING_COLUMNS or textual:
            distinct = sorted({str(v) for v in values.dropna()})
            if column in SETTING_COLUMNS:
                out[column] = values.dropna().iloc[0] if len(distinct) else math.nan
            else:
                out[column] = ", ".join(distinct) if distinct else None
            continue
        numeric = pd.to_numeric(values, errors="coerce")
        absent = [lang for lang, v in zip(languages, numeric, strict=True) if pd.isna(v)]
        derived = (
            column.startswith(("delta_", VS_PREFIX)) and column.endswith(_DERIVED_SUFFIXES)
        ) or column.startswith("mde_")
        if absent and len(absent) < len(languages) and not derived:
            missing_notes.append(f"{column}: {' '.join(absent)}")
        if is_count_column(column):
            out[column] = numeric.sum(min_count=1)  # all missing stays missing, not 0
        else:
            out[column] = numeric.mean()  # NaN-skipping; partial means are noted below
    _combine_intervals(rows, out)
    _combine_intervals(rows, out, prefix=VS_PREFIX)
    _combine_floor(rows, out)
    out["languages_missing"] = "; ".join(missing_notes) if missing_notes else None
    return out


def _combine_intervals(rows: pd.DataFrame, out: dict[str, object], prefix: str = "") -> None:
    """The ``ALL`` row's intervals of tuned − base from the per-language bootstrap SEs
    (``prefix`` ``vs_``: of the model against its second model, ``compared_with``)."""
    level = 0.95  # MetricsConfig's default, for tables written without the column
    if "confidence" in rows:
        given = pd.to_numeric(rows["confidence"], errors="coerce").dropna()
        level = float(given.iloc[0]) if len(given) else level
    z = NormalDist().inv_cdf((1.0 + level) / 2.0)
    power = DEFAULT_POWER
    if "power" in rows:
        given = pd.to_numeric(rows["power"], errors="coerce").dropna()
        power = float(given.iloc[0]) if len(given) else power
    combined = False
    for metric in INTERVAL_METRICS:
        delta, se = prefix + delta_column(metric), prefix + se_column(metric)
        if delta not in rows or se not in rows:
            continue
        d = pd.to_numeric(rows[delta], errors="coerce")
        s = pd.to_numeric(rows[se], errors="coerce")
        valid = d.notna() & s.notna()
        low, high = (prefix + c for c in ci_columns(metric))
        mde = prefix + mde_column(metric)
        if not valid.any():
            out[delta] = out[se] = out[low] = out[high] = math.nan
            if mde in rows:
                out[mde] = math.nan
            continue
        mean = float(d[valid].mean())
        error = math.sqrt(float((s[valid] ** 2).sum())) / int(valid.sum())
        out[delta], out[se] = mean, error
        out[low], out[high] = mean - z * error, mean + z * error
        if mde in rows:  # the smallest change the mean over languages could detect
            out[mde] = mde_factor(level, power) * error
        combined = True
    if combined and not prefix:
        out["delta_ci_method"] = ALL_CI_METHOD


def _combine_floor(rows: pd.DataFrame, out: dict[str, object]) -> None:
    """The ``ALL`` row's scorer-floor columns (see the module docstring)."""
    if POWER_DROP_TO_ZERO in rows:
        out[POWER_DROP_TO_ZERO] = math.nan  # a power of a mean over languages is not computed
    if MEASURABLE not in rows:
        return
    verdicts = {
        str(language): measurable_value(value)
        for language, value in zip(rows["language"], rows[MEASURABLE], strict=True)
    }
    known = [v for v in verdicts.values() if v is not None]
    not_measurable = [language for language, v in verdicts.items() if v is False]
    unknown = [language for language, v in verdicts.items() if v is None]
    reason: str | None = None
    if not known:
        verdict = None  # the base model, or tables written before the column existed
    elif not_measurable:
        verdict = False
        reason = (
            f"averages {len(not_measurable)} of {len(verdicts)} languages whose change is not "
            f"measurable (scorer floor): {' '.join(not_measurable)}"
        )
    elif unknown:
        verdict = None
        reason = f"unknown for {' '.join(unknown)} (no power estimate or no floor check)"
    else:
        verdict = True
    out[MEASURABLE] = pd.NA if verdict is None else verdict
    out[MEASURABLE_REASON] = reason


def model_ranks(df: pd.DataFrame) -> dict[str, float]:
    """``{model: rank}`` from ``model_order`` (the order the models were evaluated: base, sft,
    sft_dpo, control), empty for tables written without it (then models sort by name)."""
    if MODEL_ORDER not in df:
        return {}
    ranks = pd.to_numeric(df[MODEL_ORDER], errors="coerce")
    return {str(m): float(r) for m, r in zip(df["model"], ranks, strict=True) if pd.notna(r)}


def model_sequence(df: pd.DataFrame) -> list[str]:
    """The table's models, base first, then in evaluation order (or by name)."""
    ranks = model_ranks(df)
    models = dict.fromkeys(str(m) for m in df["model"])
    return sorted(models, key=lambda m: (m != BASE_LABEL, ranks.get(m, math.inf), m))


def aggregate_metrics(csv_paths: list[str | Path]) -> pd.DataFrame:
    """All per-language rows of the given metrics CSVs, plus one ``ALL`` row per model.

    Columns are the union of the inputs' (a column a file lacks is empty for its rows), plus
    ``n_languages`` (1 per language row; the number of languages in an ``ALL`` row) and
    ``languages_missing``. ``ALL`` rows found in the inputs are recomputed, not trusted.
    Rows are sorted base model first, languages alphabetically, ``ALL`` last within a model.
    """
    paths = [Path(p) for p in csv_paths]
    if not paths:
        raise DataError("no metrics tables given")
    frames = []
    for path in paths:
        frame = read_metrics_csv(path)
        frame[_SOURCE] = str(path)
        # Columns this stage derives are recomputed below, never compared or trusted.
        frame = frame.drop(columns=[c for c in _DERIVED if c in frame])
        frames.append(frame[frame["language"] != ALL_LANGUAGES])
    df = _deduplicate(pd.concat(frames, ignore_index=True))
    if df.empty:
        raise DataError("no per-language rows in " + ", ".join(str(p) for p in paths))
    for column in SETTING_COLUMNS:
        if column in df and df[column].dropna().nunique() > 1:
            values = sorted(df[column].dropna().unique())
            raise DataError(
                f"tables computed with different {column} values {values}: "
                "their metrics cannot be compared or averaged",
                df.loc[df[column] == values[-1], _SOURCE].iloc[0],
            )
    df["n_languages"] = 1
    per_language = sort_rows(df)
    all_rows = pd.DataFrame(
        [_all_row(model, rows) for model, rows in per_language.groupby("model", sort=False)]
    )
    combined = pd.concat([per_language, all_rows], ignore_index=True).drop(columns=[_SOURCE])
    combined["_is_all"] = combined["language"] == ALL_LANGUAGES
    ranks = model_ranks(combined)
    order = combined["model"].map(lambda m: (m != BASE_LABEL, ranks.get(m, math.inf), m))
    combined = (
        combined.assign(_order=order)
        .sort_values(["_order", "_is_all", "language"], kind="stable")
        .drop(columns=["_order", "_is_all"])
        .reset_index(drop=True)
    )
    for column in combined.columns:
        if is_count_column(column) and column != "n_languages":
            # Counts may be unknown (empty): keep them integers that can be missing.
            numeric = pd.to_numeric(combined[column], errors="coerce")
            if numeric.dropna().eq(numeric.dropna().round()).all():
                combined[column] = numeric.round().astype("Int64")
    combined["n_languages"] = combined["n_languages"].astype(int)
    if MEASURABLE in combined:
        combined[MEASURABLE] = pd.array(
            [measurable_value(v) for v in combined[MEASURABLE]], dtype="boolean"
        )
    return combined


def comparison_metrics(df: pd.DataFrame) -> list[str]:
    """The metrics ``compare_models`` reports: toxicity, the card's shares, fluency, diversity."""
    wanted = [
        *TOXICITY_METRICS,
        *(pct_column(a) for a in attribute_columns(list(df.columns))),
        *FLUENCY_METRICS,
        *DIVERSITY_METRICS,
    ]
    return [m for m in wanted if m in df.columns]


def compare_models(df: pd.DataFrame, baseline: str = BASE_LABEL) -> pd.DataFrame:
    """Per language and tuned model: ``<metric>_base``, ``<metric>_tuned`` and
    ``delta_<metric>`` = tuned − base (negative = less toxic), for each metric of
    :func:`comparison_metrics`. A language the baseline lacks gets empty deltas, not 0.

    The ``ALL`` row's delta is the mean of the per-language deltas: equal to tuned ALL − base
    ALL when both have every language, and still a like-for-like change when one of them lacks
    a metric for some language (its ALL mean then covers other languages).

    When the table holds the metrics stage's paired bootstrap (EMT, toxicity probability,
    average toxicity), its columns come along: ``delta_<m>`` is then the paired estimate (the
    one its interval belongs to; equal to tuned − base when every prompt is paired), with
    ``delta_<m>_se``, ``delta_<m>_ci_low``, ``delta_<m>_ci_high``, ``n_prompts_paired`` and
    ``delta_ci_method``; and the scorer floor's columns of the tuned rows (``base_hit_rate``,
    ``mde_<m>``, ``power_drop_to_zero``, ``measurable``, ``measurable_reason``) when it has them.
    """
    if baseline not in set(df["model"]):
        raise DataError(f"no rows for the baseline model {baseline!r} in the metrics table")
    metrics = comparison_metrics(df)
    base = df[df["model"] == baseline][["language", *metrics]]
    tuned = df[df["model"] != baseline][["model", "language", *metrics]]
    merged = tuned.merge(base, on="language", how="left", suffixes=("_tuned", "_base"))
    out = merged[["model", "language"]].copy()
    out.insert(1, "baseline", baseline)
    for metric in metrics:
        b = pd.to_numeric(merged[f"{metric}_base"], errors="coerce")
        t = pd.to_numeric(merged[f"{metric}_tuned"], errors="coerce")
        out[f"{metric}_base"] = b
        out[f"{metric}_tuned"] = t
        out[f"delta_{metric}"] = t - b
    out = _with_intervals(out, df, baseline)
    out = _with_floor(out, df, baseline)
    is_all = out["language"] == ALL_LANGUAGES
    for model in out.loc[is_all, "model"].unique():
        languages = (out["model"] == model) & ~is_all
        if not languages.any():
            continue  # only ALL rows were given: keep tuned ALL − base ALL
        target = (out["model"] == model) & is_all
        for metric in metrics:
            out.loc[target, f"delta_{metric}"] = out.loc[languages, f"delta_{metric}"].mean()
    return out.reset_index(drop=True)


def _with_intervals(out: pd.DataFrame, df: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Carry the bootstrap columns of the tuned rows into the comparison (see above)."""
    intervals = [
        c for m in INTERVAL_METRICS for c in (se_column(m), *ci_columns(m)) if c in df.columns
    ]
    if not intervals:
        return out
    paired = {delta_column(m): f"_paired_{m}" for m in INTERVAL_METRICS}
    extra = [c for c in ("n_prompts_paired", "delta_ci_method") if c in df.columns]
    keep = ["model", "language", *[c for c in paired if c in df.columns], *intervals, *extra]
    carried = df[df["model"] != baseline][keep].rename(columns=paired)
    out = out.merge(carried, on=["model", "language"], how="left", validate="1:1")
    for delta, column in paired.items():
        if column in out:
            estimate = pd.to_numeric(out.pop(column), errors="coerce")
            if delta in out:
                out[delta] = estimate.where(estimate.notna(), out[delta])
    for column in intervals:
        out[column] = pd.to_numeric(out[column], errors="coerce")
    return out


def _with_floor(out: pd.DataFrame, df: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Carry the scorer floor's columns of the tuned rows into the comparison (whether the
    bootstrap ran or not: a language without a base hit is not measurable either way)."""
    floor = [
        c
        for c in (BASE_HIT_RATE, *(mde_column(m) for m in BOOTSTRAP_METRICS), *_FLOOR_COLUMNS)
        if c in df.columns
    ]
    if not floor:
        return out
    carried = df[df["model"] != baseline][["model", "language", *floor]]
    out = out.merge(carried, on=["model", "language"], how="left", validate="1:1")
    if MEASURABLE in out:
        out[MEASURABLE] = pd.array([measurable_value(v) for v in out[MEASURABLE]], dtype="boolean")
    return out
