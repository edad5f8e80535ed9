"""Cross-lingual alignment per layer, and its correlation with the drop in toxicity (as in XG).

For parallel sentences (English ``en`` and its translation ``text`` in ``language``), each layer's
hidden states are mean-pooled over the tokens, and two measures are reported per language:

- ``mean_cosine``: the mean cosine of each English sentence with its own translation (what XG's
  public code computed);
- ``retrieval_accuracy``: the share of English sentences whose nearest translation by cosine,
  among all of that language's translations, is their own (what XG's paper calls "retrieval
  accuracy"). Chance is 1 / n_pairs. Duplicated translations make retrieval ambiguous.

Given a metrics table, each language's drop (base − tuned) in a metric (default expected
maximum toxicity) is correlated (Pearson) across languages with the alignment at one layer or
averaged over layers. English rows, if any, are left out of the correlation: English was the
tuning language and its "alignment" with itself is not cross-lingual.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F

from xdetox.components.interpret.plots import panels_png
from xdetox.components.interpret.pooling import (
    encode_texts,
    load_frozen,
    mean_pooled_states,
    token_limit,
)
from xdetox.components.interpret.settings import AlignmentConfig
from xdetox.components.interpret.tables import write_csv
from xdetox.components.prepare_prompts.languages import normalise_language
from xdetox.errors import ConfigError, DataError
from xdetox.files import atomic_dir, iter_jsonl, require_fields, write_json
from xdetox.stats import nan_to_none, pearson

log = logging.getLogger(__name__)

PAIR_FIELDS = ("en", "text", "language")
TABLE_FILE = "alignment.csv"
DROP_FILE = "alignment_vs_drop.csv"
PLOT_FILE = "alignment.png"
SUMMARY_FILE = "alignment_summary.json"
COLUMNS = ("language", "layer", "mean_cosine", "retrieval_accuracy", "n_pairs")
DROP_COLUMNS = ("language", "mean_cosine", "retrieval_accuracy", "base", "tuned", "drop")
ENGLISH = "en"


@dataclass(frozen=True)
class Pair:
    en: str
    text: str
    language: str
    line: int


def _rows(path: Path):
    """``(line, record)`` from JSON lines, or from a CSV (line where the record starts)."""
    if path.suffix.lower() != ".csv":
        yield from iter_jsonl(path)
        return
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        end = reader.line_num
        for row in reader:
            line, end = end + 1, reader.line_num
            if None in row or None in row.values():
                raise DataError(f"expected {len(header)} fields", path, line)
            yield line, row


def read_parallel(path: str | Path, max_per_language: int | None = None) -> dict[str, list[Pair]]:
    """Pairs per language (file order; the first ``max_per_language`` of each)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path)
    pairs: dict[str, list[Pair]] = {}
    try:
        for line, rec in _rows(path):
            require_fields(rec, PAIR_FIELDS, path, line)
            for field in ("en", "text"):
                if not isinstance(rec[field], str) or not rec[field].strip():
                    raise DataError(f"empty or non-string {field!r}", path, line)
            try:
                lang = normalise_language(rec["language"])
            except ValueError as exc:
                raise DataError(f"field 'language': {exc}", path, line) from None
            group = pairs.setdefault(lang, [])
            if max_per_language is None or len(group) < max_per_language:
                group.append(Pair(rec["en"], rec["text"], lang, line))
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 ({exc.reason})", path) from None
    except csv.Error as exc:
        raise DataError(f"malformed CSV ({exc})", path) from None
    if not pairs:
        raise DataError("no sentence pairs", path)
    return pairs


def mean_pair_cosine(en: torch.Tensor, x: torch.Tensor) -> float:
    """Mean cosine of row i of ``en`` with row i of ``x`` (both ``[n, d]``)."""
    return float(F.cosine_similarity(en.float(), x.float(), dim=-1).mean())


def retrieval_accuracy(en: torch.Tensor, x: torch.Tensor) -> float:
    """Share of rows i of ``en`` whose most cosine-similar row of ``x`` is row i."""
    sims = F.normalize(en.float(), dim=-1) @ F.normalize(x.float(), dim=-1).T
    hits = sims.argmax(dim=1) == torch.arange(len(en))
    return float(hits.float().mean())


def layer_alignment(en: torch.Tensor, x: torch.Tensor) -> list[tuple[float, float]]:
    """``(mean_cosine, retrieval_accuracy)`` per layer of ``[layers, n, d]`` stacks."""
    return [(mean_pair_cosine(e, t), retrieval_accuracy(e, t)) for e, t in zip(en, x, strict=True)]


def read_metric_drop(
    path: str | Path, metric: str, base_label: str, tuned_label: str | None
) -> tuple[str, dict[str, tuple[float | None, float | None]]]:
    """``(tuned label, {language: (base value, tuned value)})`` from a metrics CSV.

    Needs columns ``model``, ``language`` and ``metric``; ``ALL`` rows are ignored. With no
    ``tuned_label``, the table must hold exactly one model besides the base.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path)
    try:
        df = pd.read_csv(
            path, keep_default_na=False, na_values=[""], dtype={"model": str, "language": str}
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "empty file"
        raise DataError(f"not a readable CSV ({reason})", path) from None
    missing = [c for c in ("model", "language", metric) if c not in df.columns]
    if missing:
        raise DataError(f"missing column(s) {', '.join(map(repr, missing))}", path)
    df = df[df["language"] != "ALL"]
    models = list(dict.fromkeys(str(m) for m in df["model"]))
    if base_label not in models:
        raise ConfigError(
            f"interpret.alignment.base_label: no model {base_label!r} in {path} "
            f"(found: {', '.join(models)})"
        )
    if tuned_label is None:
        others = [m for m in models if m != base_label]
        if len(others) != 1:
            raise ConfigError(
                f"interpret.alignment.tuned_label: {path} holds {len(others)} models besides "
                f"{base_label!r} ({', '.join(others) or 'none'}); name the one to compare"
            )
        tuned_label = others[0]
    elif tuned_label not in models:
        raise ConfigError(
            f"interpret.alignment.tuned_label: no model {tuned_label!r} in {path} "
            f"(found: {', '.join(models)})"
        )
    values: dict[str, dict[str, float | None]] = {}
    # Line = index + 2 (header on line 1; metrics tables hold no multi-line cells).
    for row_number, rec in zip(df.index, df.to_dict("records"), strict=True):
        row_number += 2
        if rec["model"] not in (base_label, tuned_label):
            continue
        try:
            lang = normalise_language(rec["language"])
        except ValueError as exc:
            raise DataError(f"column 'language': {exc}", path, row_number) from None
        value = pd.to_numeric(pd.Series([rec[metric]]), errors="coerce").iloc[0]
        cell = values.setdefault(lang, {})
        if rec["model"] in cell:
            raise DataError(
                f"second row for model {rec['model']!r}, language {lang!r}", path, row_number
            )
        cell[rec["model"]] = None if pd.isna(value) else float(value)
    return tuned_label, {
        lang: (cell.get(base_label), cell.get(tuned_label)) for lang, cell in values.items()
    }


def pick_layer(per_layer: Sequence[float], layer: int | str, n_states: int) -> float:
    if layer == "mean":
        return sum(per_layer) / len(per_layer)
    assert isinstance(layer, int)
    if not -n_states <= layer < n_states:
        raise ConfigError(
            f"interpret.alignment.layer: {layer} is out of range; this model has hidden states "
            f"0..{n_states - 1} (0 = embeddings)"
        )
    return per_layer[layer]


def correlate_with_drop(
    alignment: Mapping[str, list[tuple[float, float]]],
    drops: Mapping[str, tuple[float | None, float | None]],
    layer: int | str,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per-language rows (alignment at ``layer``, base, tuned, drop) and Pearson's r of each
    alignment measure with the drop, over non-English languages that have both."""
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    for lang, per_layer in alignment.items():
        n_states = len(per_layer)
        cos = pick_layer([c for c, _ in per_layer], layer, n_states)
        ret = pick_layer([r for _, r in per_layer], layer, n_states)
        base, tuned = drops.get(lang, (None, None))
        drop = base - tuned if base is not None and tuned is not None else None
        if drop is None or lang == ENGLISH:
            skipped.append(lang)
        rows.append(
            {
                "language": lang,
                "mean_cosine": cos,
                "retrieval_accuracy": ret,
                "base": base,
                "tuned": tuned,
                "drop": drop,
            }
        )
    used = [r for r in rows if r["language"] not in skipped]
    drop_values = [r["drop"] for r in used]

    def with_drop(measure: str) -> float | None:
        # Three languages at least: two points always lie on a line and would "correlate".
        return nan_to_none(pearson([r[measure] for r in used], drop_values, min_pairs=3))

    stats = {
        "layer": layer,
        "n_languages": len(used),
        "languages_skipped": skipped,
        "pearson_mean_cosine": with_drop("mean_cosine"),
        "pearson_retrieval_accuracy": with_drop("retrieval_accuracy"),
    }
    return rows, stats


def run_alignment(
    model_dir: str | Path,
    pairs_path: str | Path,
    output_dir: str | Path,
    config: AlignmentConfig | None = None,
    *,
    metrics_path: str | Path | None = None,
    progress: bool = True,
    device: str | None = None,
) -> dict[str, Any]:
    """Write ``alignment.csv`` (language, layer, mean_cosine, retrieval_accuracy, n_pairs),
    ``alignment.png`` and a summary into ``output_dir``; with ``metrics_path`` also
    ``alignment_vs_drop.csv`` and the correlations in the summary. Returns the summary."""
    config = config or AlignmentConfig()
    pairs_path = Path(pairs_path)
    pairs = read_parallel(pairs_path, config.max_pairs_per_language)
    drop_info = None
    if metrics_path is not None:
        drop_info = read_metric_drop(
            metrics_path, config.metric, config.base_label, config.tuned_label
        )
    model, tokenizer, arch = load_frozen(model_dir, device)
    max_length = (
        config.max_length if config.max_length is not None else token_limit(model, tokenizer)
    )

    def embed(texts: list[str], lines: list[int], desc: str) -> torch.Tensor:
        encoded = encode_texts(tokenizer, texts, max_length)
        for ids, line in zip(encoded, lines, strict=True):
            if not ids:
                raise DataError("sentence encodes to no tokens", pairs_path, line)
        return mean_pooled_states(
            model,
            arch,
            encoded,
            layers="all",
            batch_size=config.batch_size,
            pad_id=tokenizer.pad_token_id,
            desc=desc,
            progress=progress,
        )

    alignment: dict[str, list[tuple[float, float]]] = {}
    rows: list[dict[str, Any]] = []
    for lang, group in pairs.items():
        lines = [p.line for p in group]
        en = embed([p.en for p in group], lines, f"align en ({lang})")
        x = embed([p.text for p in group], lines, f"align {lang}")
        alignment[lang] = layer_alignment(en, x)
        for layer, (cos, ret) in enumerate(alignment[lang]):
            rows.append(
                {
                    "language": lang,
                    "layer": layer,
                    "mean_cosine": cos,
                    "retrieval_accuracy": ret,
                    "n_pairs": len(group),
                }
            )
    n_states = len(next(iter(alignment.values())))
    pick_layer([0.0] * n_states, config.layer, n_states)  # a bad layer fails before writing

    summary: dict[str, Any] = {
        "model_type": arch.model_type,
        "n_hidden_states": n_states,
        "languages": list(pairs),
        "n_pairs": {lang: len(group) for lang, group in pairs.items()},
        "max_length_used": max_length,
        "chance_retrieval_accuracy": {lang: 1 / len(g) for lang, g in pairs.items()},
        "config": config.model_dump(),
        "files": {"table": TABLE_FILE, "plot": PLOT_FILE, "summary": SUMMARY_FILE},
    }
    drop_rows = None
    if drop_info is not None:
        tuned_label, drops = drop_info
        drop_rows, stats = correlate_with_drop(alignment, drops, config.layer)
        summary["correlation"] = {
            "metric": config.metric,
            "base": config.base_label,
            "tuned": tuned_label,
            **stats,
        }
        summary["files"]["drop_table"] = DROP_FILE
    layers = list(range(n_states))
    with atomic_dir(output_dir) as tmp:
        write_csv(tmp / TABLE_FILE, rows, COLUMNS)
        if drop_rows is not None:
            write_csv(tmp / DROP_FILE, drop_rows, DROP_COLUMNS)
        panels_png(
            tmp / PLOT_FILE,
            layers,
            [
                (
                    "mean cosine with own translation",
                    {k: [c for c, _ in v] for k, v in alignment.items()},
                ),
                ("top-1 retrieval accuracy", {k: [r for _, r in v] for k, v in alignment.items()}),
            ],
            xlabel="hidden state (0 = embeddings)",
            title=f"Cross-lingual alignment with English ({arch.model_type})",
        )
        write_json(tmp / SUMMARY_FILE, summary)
    return summary
