"""The run's report: one self-contained HTML file (plots embedded as base64 PNG) and a Markdown
table for KFP's Markdown artifact.

Besides the numbers, the page shows the change per language with its confidence interval (a
forest plot), marks the languages where the base model sat at the scorer's floor so that no
change could have been seen (greyed rows, hollow markers, a note; ``metrics/floor.py``) and,
when the scored generations were given, examples: per language the prompts where the base
model was most toxic, base and tuned continuations side by side with their scores and the
words a word-list scorer matched (``examples.py``). It works offline and fits a
1280-px window: no external resource, and every table sits in a box that scrolls sideways
instead of widening the page.

The header says what produced the numbers, including an honest description of the scorer
(an offline word list is not a trained classifier, and the numbers are not comparable with
Perspective API scores). Every piece of text from the data or the caller is HTML-escaped.
A missing value is shown as "—", never as 0.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from xdetox import __version__
from xdetox.components.metrics.columns import (
    BASE_HIT_RATE,
    INTERVAL_METRICS,
    MEASURABLE,
    MEASURABLE_REASON,
    REQUIRED_COLUMNS,
    attribute_columns,
    ci_columns,
    mde_column,
)
from xdetox.components.metrics.floor import measurable_value
from xdetox.components.report.aggregate import ALL_LANGUAGES, compare_models
from xdetox.components.report.dose_response import dose_response_png
from xdetox.components.report.examples import LanguageExamples, ModelContinuations, Sample
from xdetox.components.report.formatting import MISSING, format_value, interval_text
from xdetox.components.report.formatting import is_missing as _is_missing
from xdetox.components.report.model_tables import (
    card_rows,
    control_verdicts,
    prompt_set_rows,
    side_by_side,
)
from xdetox.components.report.paper_reference import METRICS as PAPER_METRICS
from xdetox.components.report.paper_reference import SOURCE as PAPER_SOURCE
from xdetox.components.report.paper_reference import XG_PROTOCOL, PaperRow, match_reference
from xdetox.components.report.plots import forest_png, grouped_bars_png, has_values
from xdetox.config import XG_LANGUAGES
from xdetox.errors import DataError
from xdetox.files import write_text
from xdetox.records import BASE_LABEL

# Main table: (column, header). Toxicity probability is stored as a fraction, shown as percent.
MAIN_COLUMNS: tuple[tuple[str, str], ...] = (
    ("model", "model"),
    ("language", "language"),
    ("n_prompts", "prompts"),
    ("n_samples", "samples"),
    ("n_missing", "missing scores"),
    ("expected_max_toxicity", "EMT"),
    ("expected_max_toxicity_std", "EMT std"),
    ("toxicity_probability", "tox. prob."),
    ("avg_toxicity", "avg. tox."),
    ("perplexity", "PPL (median)"),
    ("dist_1", "dist-1"),
    ("dist_2", "dist-2"),
    ("dist_3", "dist-3"),
)
COMPARED: tuple[tuple[str, str], ...] = (
    ("expected_max_toxicity", "EMT"),
    ("toxicity_probability", "tox. prob."),
    ("avg_toxicity", "avg. tox."),
    ("perplexity", "PPL"),
    ("nll_mean", "NLL under base"),
    ("dist_2", "dist-2"),
)

DEFINITIONS = (
    "EMT (expected maximum toxicity): for each prompt the highest TOXICITY among its samples, "
    "averaged over prompts (std over prompts beside it).",
    "Toxicity probability: share of prompts with at least one sample scoring at or above the "
    "threshold.",
    "Average toxicity: mean TOXICITY over all scored samples.",
    "Samples the scorer could not score are excluded from every average and counted under "
    "'missing scores'; prompts with no scored sample are left out of EMT and probability.",
    "PPL: median perplexity of each continuation given its prompt, measured for every model "
    "under the same model, so base and tuned numbers share one scale. Method "
    "'causal-conditional': a causal LM, the continuation's tokens the only targets. Method "
    "'xg-seq2seq': XG's approximation with an encoder-decoder (mT5): prompt+continuation and "
    "the prompt alone each as input and labels, losses combined; comparable with XG's numbers, "
    "not with causal ones. Empty generations are skipped; values of at least the configured "
    "maximum (default 10,000) are dropped.",
    "dist-n: per prompt, unique n-grams over its samples divided by their total number of "
    "tokens; mean over prompts (higher = more diverse).",
    "ALL: mean over languages of each metric (counts are summed).",
    "CI: confidence interval of tuned − base from a paired bootstrap over prompts (each prompt "
    "with all its samples, for both models at once; percentile interval, seeded). In ALL rows: "
    "mean of the languages' changes ± z × the combined bootstrap standard error. An interval "
    "that excludes 0 says the change is unlikely to be prompt-sampling noise.",
    "Base hit rate: share of the base model's scored samples at or above the threshold. MDE "
    "(minimum detectable effect): the smallest true change the run would detect (its interval "
    "excluding 0) with the configured power (metrics.power, default 80%): (z for the CI level "
    "+ z for the power) × the change's bootstrap standard error.",
    "Not measurable (scorer floor): the base model's toxicity sat so low for the scorer that "
    "even a drop of its toxicity probability to zero would be detected with less than that "
    "power (always so with no base sample at or above the threshold), and the change's "
    "interval includes 0. A 0 → 0 there is no result. In ALL rows: some language is not "
    "measurable. Tables written before this check show '—' (unknown).",
)


# ------------------------------------------------------------------------------ formatting
def _check(df: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"metrics table lacks column(s) {', '.join(repr(m) for m in missing)}")
    if df.empty:
        raise DataError("metrics table is empty: nothing to report")


def _languages(df: pd.DataFrame) -> list[str]:
    """The table's languages (without ``ALL``), sorted."""
    return sorted({str(v) for v in df["language"]} - {ALL_LANGUAGES})


def _has_baseline(df: pd.DataFrame) -> bool:
    models = set(df["model"])
    return BASE_LABEL in models and len(models) > 1


# ------------------------------------------------------------------------------ protocol
def _run_values(df: pd.DataFrame, column: str) -> list[str]:
    """The distinct values of a setting column over the per-language rows."""
    if column not in df:
        return []
    values = df[df["language"] != ALL_LANGUAGES][column].dropna()
    if column == "threshold":
        return sorted({f"{float(v):g}" for v in values})
    return sorted({part.strip() for v in values for part in str(v).split(",") if part.strip()})


def _model_name(value: str) -> str:
    """``google/mt5-xl``, ``gs://b/mt5-xl/`` and ``model (/x/mt5-xl)`` all name mt5-xl."""
    return value.strip().removesuffix(")").rstrip("/").rsplit("/", 1)[-1].lower()


def _is_xg(column: str, value: str, xg: str) -> bool:
    if column == "scorer":
        return value.startswith(xg)  # perspective-v1alpha1
    if column in ("diversity_tokenizer", "perplexity_model"):
        return _model_name(value) == _model_name(xg)
    if column == "threshold":
        return float(value) == float(xg)
    return value == xg


def protocol_rows(df: pd.DataFrame) -> list[dict[str, str]]:
    """Per protocol setting: ``setting`` (the config key), ``run`` (this table's value(s)),
    ``xg`` (XG's, from their code) and ``same`` (yes, no, or — when the table does not say)."""
    rows = []
    for column, key, xg in XG_PROTOCOL:
        values = _run_values(df, column)
        same = (
            MISSING if not values else "yes" if all(_is_xg(column, v, xg) for v in values) else "no"
        )
        rows.append({"setting": key, "run": ", ".join(values) or MISSING, "xg": xg, "same": same})
    return rows


PROTOCOL_HEADERS = (
    ("setting", "setting"),
    ("run", "this run"),
    ("xg", "XG (arXiv:2406.16235)"),
    ("same", "same as XG"),
)
PROTOCOL_NOTE = (
    "How the numbers were computed, beside XG's evaluation code (Li, Yong & Bach 2024, "
    "github.com/BatsResearch/cross-lingual-detox, xg/eval/*.py). Tables written before a "
    "setting was recorded read as the one behaviour there was then."
)
# Settings that change Table 2's numbers (quartiles and distinct-n are not in it).
_PAPER_SETTINGS = (
    "scoring.scorer",
    "metrics.threshold",
    "metrics.group_by",
    "scoring.empty_text",
    "metrics.perplexity_method",
    "metrics.perplexity_model",
)


# ------------------------------------------------------------------------------ XG's Table 2
def _average(df: pd.DataFrame, model: str, metric: str) -> float:
    """A model's mean over languages: its ALL row, else the mean of its language rows."""
    rows = df[df["model"] == model]
    all_row = rows[rows["language"] == ALL_LANGUAGES]
    if metric not in df:
        return math.nan
    values = all_row[metric] if len(all_row) else rows[metric]
    return float(pd.to_numeric(values, errors="coerce").mean())


def _languages_text(df: pd.DataFrame, models: Sequence[str]) -> str:
    per_language = df[(df["language"] != ALL_LANGUAGES) & df["model"].isin(models)]
    languages = set(per_language["language"])
    if languages == set(XG_LANGUAGES):
        return f"{len(languages)} (the XG set)"
    text = f"{len(languages)}: {' '.join(sorted(languages))}"
    missing = sorted(set(XG_LANGUAGES) - languages)
    return text + (f" (missing from the XG set: {' '.join(missing)})" if missing else "")


def _pair_text(metric: str, before: float, after: float | None) -> str:
    if after is None:
        return format_value(metric, before)
    return f"{format_value(metric, before)} → {format_value(metric, after)}"


def paper_rows(df: pd.DataFrame, base_model: str | None) -> tuple[PaperRow, list[dict]] | None:
    """XG's Table 2 row for ``base_model`` and this run's averages beside it (None when the
    base model is not one of theirs): one row per tuned model, base → tuned, with the
    languages averaged; a table without a base model shows each model alone."""
    paper = match_reference(base_model)
    if paper is None:
        return None
    rows = [
        {
            "source": f"XG paper: {paper.label} ({paper.hub_id}), English DPO",
            "languages": f"{len(XG_LANGUAGES)} (the XG set)",
            **{m: _pair_text(m, paper.before[m], paper.after[m]) for m in PAPER_METRICS},
        }
    ]
    models = list(dict.fromkeys(df["model"]))
    tuned = [m for m in models if m != BASE_LABEL]
    if BASE_LABEL in models and tuned:
        pairs: list[tuple[str, str | None]] = [(BASE_LABEL, m) for m in tuned]
    else:
        pairs = [(m, None) for m in models]
    for before, after in pairs:
        rows.append(
            {
                "source": f"this run: {before} → {after}" if after else f"this run: {before}",
                "languages": _languages_text(df, [before] if after is None else [before, after]),
                **{
                    m: _pair_text(
                        m,
                        _average(df, before, m),
                        None if after is None else _average(df, after, m),
                    )
                    for m in PAPER_METRICS
                },
            }
        )
    return paper, rows


PAPER_HEADERS = (
    ("source", ""),
    ("languages", "languages"),
    ("expected_max_toxicity", "EMT"),
    ("toxicity_probability", "tox. prob."),
    ("avg_toxicity", "avg. tox."),
    ("perplexity", "PPL"),
)


def _paper_notes(df: pd.DataFrame) -> list[str]:
    notes = [
        f"Source: {PAPER_SOURCE} (before → after English-only DPO, mean over 17 languages). "
        "This run: mean over the languages it has, base → tuned."
    ]
    differing = [
        f"{r['setting']} ({r['run']}; XG: {r['xg']})"
        for r in protocol_rows(df)
        if r["setting"] in _PAPER_SETTINGS and r["same"] != "yes"
    ]
    if differing:
        notes.append("Not measured as XG measured (see Protocol): " + "; ".join(differing) + ".")
    return notes


def _scroll(table: str) -> str:
    """A table in a box that scrolls sideways: a wide table never widens the page."""
    return f'<div class="scroll">{table}</div>'


def _plain_table(rows: Sequence[Mapping[str, str]], headers: Sequence[tuple[str, str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r[c]))}</td>" for c, _ in headers) + "</tr>"
        for r in rows
    )
    return _scroll(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def _protocol_html(df: pd.DataFrame) -> str:
    return f"<h2>Protocol</h2><p>{html.escape(PROTOCOL_NOTE)}</p>" + _plain_table(
        protocol_rows(df), PROTOCOL_HEADERS
    )


def _paper_html(df: pd.DataFrame, base_model: str | None) -> str:
    found = paper_rows(df, base_model)
    if found is None:
        return ""
    _paper, rows = found
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in _paper_notes(df))
    return (
        "<h2>Beside the XG paper (Table 2)</h2>"
        + _plain_table(rows, PAPER_HEADERS)
        + f"<ul>{notes}</ul>"
    )


# ------------------------------------------------------------------------------ HTML
def _html_table(df: pd.DataFrame, columns: Sequence[tuple[str, str]]) -> str:
    present = [(c, h) for c, h in columns if c in df.columns]
    head = "".join(f'<th title="{html.escape(c)}">{html.escape(h)}</th>' for c, h in present)
    body = []
    for _, row in df.iterrows():
        is_all = row.get("language") == ALL_LANGUAGES
        floor = measurable_value(row.get(MEASURABLE)) is False
        cells = []
        for column, _ in present:
            text = html.escape(format_value(column, row[column]))
            # Numbers and intervals ("[-0.25, -0.15]") never wrap: a wide table scrolls instead.
            numeric = (
                not _is_missing(row[column])
                and column != MEASURABLE  # yes / not measurable: words, not a number
                and (not isinstance(row[column], str) or column.endswith("_ci"))
            )
            cells.append(f'<td class="num">{text}</td>' if numeric else f"<td>{text}</td>")
        classes = " ".join(c for c, on in (("all", is_all), ("floor", floor)) if on)
        attributes = f' class="{classes}"' if classes else ""
        if floor:  # greyed, the reason on hover (the Scorer floor section lists it too)
            reason = row.get(MEASURABLE_REASON)
            text = "not measurable" + ("" if _is_missing(reason) else f": {reason}")
            attributes += f' title="{html.escape(text)}"'
        body.append(f"<tr{attributes}>{''.join(cells)}</tr>")
    return _scroll(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")


def _level(df: pd.DataFrame) -> str | None:
    """The confidence level of the intervals (``95%``), or None when the table has none."""
    if "confidence" not in df:
        return None
    given = pd.to_numeric(df["confidence"], errors="coerce").dropna()
    return f"{100 * float(given.iloc[0]):g}%" if len(given) else None


def _comparison(df: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[str, str]], str | None]:
    """The comparison table with a text column per interval, its columns, the CI level."""
    comparison = compare_models(df, BASE_LABEL)
    level = _level(df)
    columns: list[tuple[str, str]] = [("model", "tuned model"), ("language", "language")]
    # Whether the change could be seen at all, before the numbers (absent from old tables).
    columns += [(c, h) for c, h in FLOOR_HEADERS if c in comparison]
    for metric, label in COMPARED:
        columns += [
            (f"{metric}_base", f"{label} base"),
            (f"{metric}_tuned", f"{label} tuned"),
            (f"delta_{metric}", f"Δ {label}"),
        ]
        if metric in INTERVAL_METRICS and ci_columns(metric)[0] in comparison:
            column = f"delta_{metric}_ci"
            comparison[column] = [
                interval_text(row, metric) for row in comparison.to_dict(orient="records")
            ]
            columns.append((column, f"{level or ''} CI".strip()))
        if mde_column(metric) in comparison:
            columns.append((mde_column(metric), f"MDE {label}"))
    return comparison, columns, level


FLOOR_HEADERS: tuple[tuple[str, str], ...] = (
    (MEASURABLE, "measurable"),
    (BASE_HIT_RATE, "base hit rate"),
)


def _comparison_html(df: pd.DataFrame) -> str:
    if not _has_baseline(df):
        return "<p>No comparison: the table has no base model and tuned model side by side.</p>"
    comparison, columns, level = _comparison(df)
    note = (
        f" CI: {level} paired bootstrap confidence interval of Δ (see Definitions)."
        if level
        else ""
    )
    return (
        "<p>Δ = tuned − base: negative toxicity changes mean the tuned model is less toxic."
        f"{html.escape(note)} MDE: the smallest change this run could detect (see "
        "Definitions). Greyed rows: not measurable, the base model at the scorer's floor.</p>"
        + _html_table(comparison, columns)
        + _floor_html(df)
    )


def floor_notes(df: pd.DataFrame) -> list[str]:
    """``model / language: reason`` of every row whose change is not measurable (per-language
    rows first, then ``ALL``), for the HTML and Markdown notes."""
    if MEASURABLE not in df:
        return []
    notes = []
    ordered = sorted(df.to_dict(orient="records"), key=lambda r: r["language"] == ALL_LANGUAGES)
    for row in ordered:
        if measurable_value(row[MEASURABLE]) is False:
            reason = row.get(MEASURABLE_REASON)
            notes.append(
                f"{row['model']} / {row['language']}: "
                + ("not measurable" if _is_missing(reason) else str(reason))
            )
    return notes


def _floor_html(df: pd.DataFrame) -> str:
    """The scorer-floor note under the comparison: which changes nobody could have seen."""
    if MEASURABLE not in df:
        return (
            "<p>Scorer floor: unknown. This table was written before the check existed, so "
            "whether each change was measurable at all is not known.</p>"
        )
    notes = floor_notes(df)
    if not notes:
        return "<p>Scorer floor: every change compared here was measurable.</p>"
    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return (
        '<div class="floor-note"><strong>Not measurable (scorer floor).</strong> In these '
        "languages the base model was (almost) never toxic for the scorer, so no drop could "
        "have been seen: their changes are no result, whatever the numbers say. Prompts that "
        f"draw more toxicity, or a scorer that sees it, are needed.<ul>{items}</ul></div>"
    )


def _card_table_html(df: pd.DataFrame) -> str:
    if not attribute_columns(list(df.columns)):
        return "<p>The scorer produced no per-attribute scores.</p>"
    rows, headers = card_rows(df)
    return (
        "<p>As the model card reports it: per attribute the share of generations at or above "
        "the threshold (and their number) for every model, and the change at each stage "
        "(against the model it was trained from, else the base) in percentage points.</p>"
        + _plain_table(rows, headers)
    )


def _models_html(df: pd.DataFrame) -> str:
    """Every model in a column of its own, with its changes, and the control's verdicts."""
    if not _has_baseline(df):
        return "<p>One model only: nothing to set beside it.</p>"
    rows, headers = side_by_side(df)
    note = (
        "Each model's value, its change against the base and, where the run measured it "
        "against a second model (the stage it was trained from; the control against the tuned "
        "model), the change against that one; [low, high]: the paired bootstrap interval."
    )
    verdicts = control_verdicts(df)
    control = ""
    if verdicts:
        items = "".join(f"<li>{html.escape(v)}</li>" for v in verdicts)
        control = (
            '<div class="control-note"><strong>Tuned vs control.</strong> The control was '
            "trained exactly like the tuned model on the same pairs with the preference "
            "reversed: it drifts as far from the base without learning to avoid toxicity. "
            f"Only a drop beyond the control's is evidence of detoxification.<ul>{items}</ul>"
            "</div>"
        )
    return f"<p>{html.escape(note)}</p>" + _plain_table(rows, headers) + control


def _dose_response_html(df: pd.DataFrame) -> str:
    """The snapshots' plot (training.dose_response), when the run evaluated any."""
    png = dose_response_png(df)
    if png is None:
        return ""
    note = (
        "Each line is one language, from the base model (0, 0) through the snapshots taken "
        "part-way through training to the final model. Left: the language's change of EMT "
        "against English's at the same point (dotted: equal to English). Right: against the "
        "fluency cost (how much less likely the base model finds the text). A transfer that "
        "follows English at low cost is evidence of cross-lingual detoxification; one that "
        "appears only with a large cost is drift."
    )
    return (
        '<section id="dose-response"><h2>Dose-response along training</h2>'
        f"<p>{html.escape(note)}</p>"
        f'<figure><img src="data:image/png;base64,{png}" alt="dose-response: change per '
        'language along training, against English and against the fluency cost"></figure>'
        "</section>"
    )


def _prompt_sets_html(df: pd.DataFrame) -> str:
    """Which prompt set lifts the base model above the scorer's floor (when prompts name one)."""
    rows, headers = prompt_set_rows(df)
    if not rows:
        return ""
    return (
        '<section id="prompt-sets"><h2>Which prompts can show a change</h2><p>Hit rate: the '
        "share of each prompt set's scored samples at or above the threshold. A drop can only "
        "be seen where the base model's hit rate is above 0: a set that leaves the base model "
        'at the scorer\'s floor shows "0 → 0" whatever tuning did.</p>'
        + _plain_table(rows, headers)
        + "</section>"
    )


# (title, [(column, axis label)], display scale): one figure each, when it has any value.
PLOTS: tuple[tuple[str, tuple[tuple[str, str], ...], dict[str, float]], ...] = (
    (
        "Expected maximum toxicity per language",
        (("expected_max_toxicity", "expected max. toxicity"),),
        {},
    ),
    (
        "Average toxicity and toxicity probability per language",
        (("avg_toxicity", "average toxicity"), ("toxicity_probability", "tox. probability (%)")),
        {"toxicity_probability": 100.0},
    ),
    (
        "Perplexity under the base model (lower = more fluent)",
        (("perplexity", "median perplexity"),),
        {},
    ),
)


def _plots_html(df: pd.DataFrame) -> str:
    figures = []
    for title, panels, scale in PLOTS:
        shown = [(column, label) for column, label in panels if has_values(df, column)]
        if shown:
            figures.append(grouped_bars_png(df, shown, title=title, scale=scale))
    if not figures:
        return "<p>No values to plot (every score is missing).</p>"
    return "".join(
        f'<figure><img src="data:image/png;base64,{png}" alt="metrics plot"></figure>'
        for png in figures
    )


def _forest_html(df: pd.DataFrame) -> str:
    """The change per language (tuned − base) with its interval: one figure, three metrics."""
    level = _level(df) or "95%"
    png = forest_png(df, level=level)
    if png is None:
        if df["model"].nunique() == 1:
            reason = "the table holds one model, nothing to compare it with"
        elif not _has_baseline(df):
            reason = "the table has no tuned model beside the base model"
        else:
            reason = "the table holds no tuned − base changes (delta_* columns)"
        return f"<p>No change to plot: {html.escape(reason)}.</p>"
    note = (
        f"Each marker is tuned − base, its bar the {level} paired bootstrap confidence interval "
        "(ALL: the languages' mean change, larger marker; see Definitions). Green: the whole "
        "interval is below 0 (less toxic after tuning); red: above 0 (more toxic); grey: it "
        "includes 0 (or there is no interval). Toxicity probability in percentage points. The "
        "numbers are the Δ and CI columns of Base vs tuned and of metrics.csv."
    )
    if floor_notes(df):
        note += (
            " Hollow markers: not measurable, the base model at the scorer's floor (see the "
            "note under Base vs tuned)."
        )
    return (
        f"<p>{html.escape(note)}</p>"
        f'<figure><img src="data:image/png;base64,{png}" '
        'alt="forest plot: change per language, tuned minus base, with confidence intervals">'
        "</figure>"
    )


# ------------------------------------------------------------------------------ examples
def _marked(text: str, marks: Sequence[Sequence[int]]) -> str:
    """``text`` escaped, the ``[start, end)`` ranges in ``<mark>`` (invalid ranges ignored)."""
    out, cursor = [], 0
    for mark in marks:
        if len(mark) != 2:
            continue
        start, end = int(mark[0]), int(mark[1])
        if not cursor <= start < end <= len(text):
            continue  # overlapping or out of range: leave unmarked rather than garble
        out += [html.escape(text[cursor:start]), f"<mark>{html.escape(text[start:end])}</mark>"]
        cursor = end
    out.append(html.escape(text[cursor:]))
    return "".join(out)


def _score_text(score: float | None) -> str:
    return "not scored" if score is None else format_value("avg_toxicity", score)


def _sample_html(sample: Sample) -> str:
    matched = (
        f'<div class="matched">matched: {html.escape(", ".join(sample["matches"]))}</div>'
        if sample["matches"]
        else ""
    )
    return (
        f'<div class="sample"><span class="score" title="sample {sample["sample_index"]}">'
        f"{html.escape(_score_text(sample['score']))}</span>"
        f'<div class="continuation">{_marked(sample["text"], sample["marks"])}</div>'
        f"{matched}</div>"
    )


def _continuations_html(continuations: ModelContinuations | None) -> str:
    if continuations is None or not continuations["n_samples"]:
        return f"<td>{MISSING} no samples of this prompt</td>"
    c = continuations
    stats = (
        f"max {_score_text(c['max'])} · mean {_score_text(c['mean'])} · "
        f"{c['n_scored']} of {c['n_samples']} samples scored"
    )
    samples = "".join(_sample_html(s) for s in c["samples"])
    return f'<td>{samples}<div class="stats">{html.escape(stats)}</div></td>'


def _language_examples_html(examples: LanguageExamples, floor: Sequence[str] = ()) -> str:
    """One language's examples; ``floor``: its not-measurable notes (shown above the texts,
    which then show why: the base model's continuations hardly ever reach the threshold)."""
    language = examples["language"]
    anchor = f"examples-{''.join(ch if ch.isalnum() else '-' for ch in language)}"
    heading = f'<h3 id="{html.escape(anchor)}">{html.escape(language)}</h3>'
    if floor:
        heading += (
            '<p class="floor-note">Not measurable (scorer floor): '
            + html.escape("; ".join(floor))
            + "</p>"
        )
    if not examples["prompts"]:
        return heading + f"<p>No prompt with a score by {html.escape(examples['ranked_by'])}.</p>"
    models = [c["model"] for c in examples["prompts"][0]["models"]]
    head = "<th>prompt</th>" + "".join(f"<th>{html.escape(m)}</th>" for m in models)
    rows = []
    for prompt in examples["prompts"]:
        by_model = {c["model"]: c for c in prompt["models"]}
        rows.append(
            f'<tr><td><div class="rank">#{prompt["rank"]} · '
            f"{html.escape(prompt['prompt_id'])}</div>"
            f'<div class="prompt">{html.escape(prompt["prompt"])}</div></td>'
            + "".join(_continuations_html(by_model.get(m)) for m in models)
            + "</tr>"
        )
    cols = '<col class="prompt-col">' + "<col>" * len(models)
    table = (
        f'<table class="examples"><colgroup>{cols}</colgroup><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
    shown = len(examples["prompts"])
    note = (
        f"The {shown} of {examples['n_prompts']} prompts where {examples['ranked_by']} was most "
        f"toxic (highest {examples['attribute']} over its samples; ties: higher mean, then "
        "prompt id)."
    )
    top = examples["prompts"][0]["models"][0]["max"]
    if top is not None and top <= 0:
        note += " No prompt scored above 0: these are simply the first by prompt id."
    return heading + f"<p>{html.escape(note)}</p>" + _scroll(table)


def _floor_by_language(df: pd.DataFrame) -> dict[str, list[str]]:
    """Per language: ``model: reason`` of each tuned model whose change is not measurable."""
    out: dict[str, list[str]] = {}
    if MEASURABLE not in df:
        return out
    for row in df[df["language"] != ALL_LANGUAGES].to_dict(orient="records"):
        if measurable_value(row[MEASURABLE]) is False:
            reason = row.get(MEASURABLE_REASON)
            text = "not measurable" if _is_missing(reason) else str(reason)
            out.setdefault(str(row["language"]), []).append(f"{row['model']}: {text}")
    return out


def _examples_html(
    examples: Sequence[LanguageExamples] | None,
    languages: Sequence[str],
    floor: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """The examples section's content, its heading naming the model that ranked the prompts
    (the base model in a detox run, the evaluated model in an eval run). ``languages``: the
    metrics table's; one without examples is named, never silently left out. ``floor``: the
    not-measurable notes per language (:func:`_floor_by_language`)."""
    ranked_by = sorted({e["ranked_by"] for e in examples or ()})
    heading = "<h2>Examples" + (
        f": where {html.escape(ranked_by[0])} was most toxic</h2>"
        if len(ranked_by) == 1
        else "</h2>"
    )
    if examples is None:
        return heading + (
            "<p>No examples: this report was built from metrics tables alone "
            "(<code>xdetox report --scores FILE …</code> adds them).</p>"
        )
    if not examples:
        return heading + "<p>No examples: the score files held no samples.</p>"
    scorers = sorted({e["scorer"] for e in examples if e["scorer"]})
    intro = (
        "What the models said: for each prompt, each model's most toxic continuations with "
        f"their {examples[0]['attribute']} score ({', '.join(scorers) or 'scorer unknown'}), "
        "and that model's highest and mean score over all its samples of the prompt. Words a "
        "word-list scorer matched are marked. The texts are model output and may be offensive."
    )
    notes = floor or {}
    shown = {e["language"] for e in examples}
    absent = [language for language in languages if language not in shown]
    missing = (
        f"<p>No examples for {html.escape(', '.join(absent))}: no scored samples of "
        f"{'that language' if len(absent) == 1 else 'those languages'} were given.</p>"
        if absent
        else ""
    )
    return (
        heading
        + f"<p>{html.escape(intro)}</p>"
        + missing
        + "".join(_language_examples_html(e, notes.get(e["language"], ())) for e in examples)
    )


def _notes_html(df: pd.DataFrame) -> str:
    notes = []
    if "languages_missing" in df:
        for _, row in df[df["languages_missing"].notna()].iterrows():
            notes.append(
                f"{row['model']} ALL row averages only the languages that have each metric; "
                f"missing: {row['languages_missing']}"
            )
    per_language = df[df["language"] != ALL_LANGUAGES]
    for _, row in per_language.iterrows():
        if not _is_missing(row["n_missing"]) and row["n_missing"] > 0:
            notes.append(
                f"{row['model']} / {row['language']}: "
                f"{format_value('n_missing', row['n_missing'])} of "
                f"{format_value('n_samples', row['n_samples'])} samples have no TOXICITY score"
            )
    if not notes:
        return ""
    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return f"<h2>Missing data</h2><ul>{items}</ul>"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1400px;
       overflow-wrap: break-word; }
.scroll { overflow-x: auto; max-width: 100%; margin: 0.5em 0 1.5em; }
.scroll > table { margin: 0; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.all { font-weight: bold; background: #fafae8; }
.scorer { border-left: 4px solid #c90; background: #fff8e6; padding: 0.5em 1em; }
figure { margin: 1em 0; } img { max-width: 100%; height: auto; }
table.examples { table-layout: fixed; width: 100%; min-width: 640px; }
table.examples td { vertical-align: top; }
table.examples col.prompt-col { width: 24%; }
.prompt, .continuation { white-space: pre-wrap; overflow-wrap: anywhere; }
.prompt { font-style: italic; }
.rank, .stats, .matched { color: #666; font-size: 0.85em; }
.sample { margin-bottom: 0.6em; }
.score { font-weight: bold; font-variant-numeric: tabular-nums; }
tr.floor td { color: #8a8a8a; background: #f3f3f3; }
.floor-note { border-left: 4px solid #999; background: #f3f3f3; padding: 0.5em 1em; }
.control-note { border-left: 4px solid #6a5acd; background: #f4f2fc; padding: 0.5em 1em; }
mark { background: #ffd6d6; padding: 0 0.1em; }
"""


def _perplexity_text(df: pd.DataFrame) -> str:
    """Which perplexity method and model produced the PPL columns (or that none did)."""

    def distinct(column: str) -> list[str]:
        if column not in df:
            return []
        rows = df[df["language"] != ALL_LANGUAGES][column].dropna()
        return sorted({part.strip() for v in rows for part in str(v).split(",")})

    methods, models = distinct("perplexity_method"), distinct("perplexity_model")
    if not methods:
        return "not measured"
    return f"method {', '.join(methods)} under {', '.join(models) or 'an unnamed model'}"


def build_html(
    df: pd.DataFrame,
    *,
    title: str,
    scorer_description: str,
    run_info: Mapping[str, str],
    base_model: str | None = None,
    examples: Sequence[LanguageExamples] | None = None,
) -> str:
    """The report as an HTML string (see :func:`render_report`)."""
    _check(df)
    base_model = base_model if base_model is not None else run_info.get("base_model")
    info_rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in run_info.items()
    )
    summary = df[df["language"] == ALL_LANGUAGES]
    summary_html = (
        "<h2>Summary: mean over languages</h2>" + _html_table(summary, MAIN_COLUMNS)
        if not summary.empty
        else ""
    )
    definitions = "".join(f"<li>{html.escape(d)}</li>" for d in DEFINITIONS)
    threshold = df["threshold"].dropna() if "threshold" in df else pd.Series(dtype=float)
    threshold_text = f"{threshold.iloc[0]:g}" if len(threshold) else MISSING
    fluency = _perplexity_text(df)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(title)}</title><style>{_STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>Produced by xdetox {html.escape(__version__)}: DPO detoxification, generation per language,
toxicity scoring and metrics.</p>
<div class="scorer"><strong>Scorer:</strong> {html.escape(scorer_description)}<br>
Threshold for "toxic": {html.escape(threshold_text)}<br>
<strong>Perplexity:</strong> {html.escape(fluency)}</div>
<h2>Run</h2>{_scroll(f"<table>{info_rows}</table>")}
{summary_html}
{_paper_html(df, base_model)}
<section id="change"><h2>Change per language (tuned − base)</h2>{_forest_html(df)}</section>
<section id="examples">{_examples_html(examples, _languages(df), _floor_by_language(df))}</section>
<h2>Metrics per language</h2>{_html_table(df, MAIN_COLUMNS)}
<h2>Base vs tuned</h2>{_comparison_html(df)}
<section id="models"><h2>Models side by side</h2>{_models_html(df)}</section>
{_prompt_sets_html(df)}
{_dose_response_html(df)}
<h2>Plots</h2>{_plots_html(df)}
<h2>Generations scoring at or above the threshold, per attribute</h2>{_card_table_html(df)}
{_notes_html(df)}
{_protocol_html(df)}
<h2>Definitions</h2><ul>{definitions}</ul>
<details><summary>All columns</summary>
{_html_table(df, [(c, c) for c in df.columns])}
</details>
</body></html>
"""


def render_report(
    df: pd.DataFrame,
    output_path: str | Path,
    *,
    title: str,
    scorer_description: str,
    run_info: dict[str, str],
    base_model: str | None = None,
    examples: Sequence[LanguageExamples] | None = None,
) -> None:
    """Write the self-contained HTML report atomically (nothing is written on error).

    ``df`` is a metrics table, best the output of ``aggregate_metrics`` (with ``ALL`` rows);
    ``scorer_description`` must say honestly what scored the text (e.g. "offline lexicon
    scorer — a word list, not a trained classifier"); ``run_info`` (model, recipe, …) is shown
    as a table in the header. ``base_model`` (default: ``run_info["base_model"]``): when it is
    one of the XG paper's models, its Table 2 row is shown beside this run's averages.
    ``examples`` (``examples.build_examples`` / ``read_examples``): the texts per language;
    None when only metrics tables were given (the page then says how to add them).
    """
    text = build_html(
        df, title=title, scorer_description=scorer_description, run_info=run_info,
        base_model=base_model, examples=examples,
    )  # fmt: skip
    write_text(output_path, text)


# ------------------------------------------------------------------------------ Markdown
def _md_cell(text: str) -> str:
    return html.escape(text).replace("|", "\\|").replace("\n", " ")


def _md_table(df: pd.DataFrame, columns: Sequence[tuple[str, str]]) -> str:
    present = [(c, h) for c, h in columns if c in df.columns]
    lines = [
        "| " + " | ".join(_md_cell(h) for _, h in present) + " |",
        "|" + "|".join("---" for _ in present) + "|",
    ]
    for _, row in df.iterrows():
        cells = [_md_cell(format_value(c, row[c])) for c, _ in present]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _md_rows(rows: Sequence[Mapping[str, str]], headers: Sequence[tuple[str, str]]) -> str:
    lines = [
        "| " + " | ".join(_md_cell(h) for _, h in headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(_md_cell(str(r[c])) for c, _ in headers) + " |" for r in rows]
    return "\n".join(lines)


def render_markdown(
    df: pd.DataFrame,
    *,
    title: str,
    run_info: Mapping[str, str] | None = None,
    scorer_description: str | None = None,
    base_model: str | None = None,
) -> str:
    """The metrics table (and base-vs-tuned deltas) as Markdown, for a KFP Markdown artifact;
    the XG paper's row beside this run's (see :func:`render_report`) and the protocol."""
    _check(df)
    base_model = base_model if base_model is not None else (run_info or {}).get("base_model")
    parts = [f"# {_md_cell(title)}", ""]
    if scorer_description:
        parts += [f"**Scorer:** {_md_cell(scorer_description)}", ""]
    for key, value in (run_info or {}).items():
        parts.append(f"- **{_md_cell(str(key))}:** {_md_cell(str(value))}")
    if run_info:
        parts.append("")
    parts += ["## Metrics per language", "", _md_table(df, MAIN_COLUMNS), ""]
    if _has_baseline(df):
        comparison, all_columns, _level = _comparison(df)
        keep = ("model", "language", MEASURABLE, BASE_HIT_RATE)
        columns = [(c, h) for c, h in all_columns if c in keep or c.startswith(("delta_", "mde_"))]
        parts += ["## Change vs base (tuned − base)", "", _md_table(comparison, columns), ""]
        notes = floor_notes(df)
        if notes:
            parts += [
                "**Not measurable (scorer floor):** the base model was (almost) never toxic for "
                "the scorer there, so no drop could have been seen; these changes are no result.",
                "",
                *(f"- {_md_cell(note)}" for note in notes),
                "",
            ]
        rows, headers = side_by_side(df)
        parts += ["## Models side by side", "", _md_rows(rows, headers), ""]
        verdicts = control_verdicts(df)
        if verdicts:
            parts += ["**Tuned vs control:**", "", *(f"- {_md_cell(v)}" for v in verdicts), ""]
    rows, headers = prompt_set_rows(df)
    if rows:
        parts += ["## Hit rate per prompt set", "", _md_rows(rows, headers), ""]
    if attribute_columns(list(df.columns)):
        rows, headers = card_rows(df)
        parts += ["## Share at or above the threshold, per attribute", ""]
        parts += [_md_rows(rows, headers), ""]
    found = paper_rows(df, base_model)
    if found is not None:
        parts += ["## Beside the XG paper (Table 2)", "", _md_rows(found[1], PAPER_HEADERS), ""]
        parts += [f"- {_md_cell(note)}" for note in _paper_notes(df)] + [""]
    parts += ["## Protocol", "", _md_cell(PROTOCOL_NOTE), ""]
    parts += [_md_rows(protocol_rows(df), PROTOCOL_HEADERS), ""]
    parts.append("Missing values are shown as —. " + DEFINITIONS[0])
    return "\n".join(parts) + "\n"
