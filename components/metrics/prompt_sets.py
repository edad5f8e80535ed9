"""Hit rates per prompt set: which prompts can show a change at all.

A scorer can only show a drop where the base model writes something it scores as toxic. When
the prompts carry a ``kind`` (the shipped ``real`` set: ``insult`` openings that begin an insult
in the speaker's mouth, and ``neutral`` sentences), the share of each set's samples at or above
the threshold tells which set reaches the scorer's floor from above: typically the insult
openings draw hits in every language while neutral ones leave the base model at the floor.

Columns per set ``<k>``, on every model's row: ``hit_rate_kind_<k>`` (scored samples at or above
the threshold / scored samples) and ``n_scored_kind_<k>`` (the denominator; summed in ``ALL``).
"""

from __future__ import annotations

import math

import pandas as pd

from xdetox.components.metrics.read_scores import score_column
from xdetox.records import TOXICITY

HIT_RATE_PREFIX = "hit_rate_kind_"
SCORED_PREFIX = "n_scored_kind_"


def kinds_of(columns: list[str] | pd.Index) -> list[str]:
    """The prompt sets a metrics table has hit rates for, in column order."""
    return [c.removeprefix(HIT_RATE_PREFIX) for c in columns if c.startswith(HIT_RATE_PREFIX)]


def prompt_set_table(
    table: pd.DataFrame, threshold: float, attribute: str = TOXICITY
) -> pd.DataFrame:
    """Per (model, language), each prompt set's hit rate (see module docstring); empty when no
    prompt names its set."""
    if "kind" not in table or table["kind"].isna().all():
        return pd.DataFrame()
    column = score_column(attribute)
    kinds = sorted(table["kind"].dropna().unique())
    rows = []
    for (model, language), group in table.groupby(["model", "language"], sort=True):
        row: dict[str, object] = {"model": model, "language": language}
        for kind in kinds:
            scores = group.loc[group["kind"] == kind, column] if column in group else pd.Series()
            scored = scores.dropna()
            row[SCORED_PREFIX + kind] = len(scored)
            row[HIT_RATE_PREFIX + kind] = (
                float((scored >= threshold).mean()) if len(scored) else math.nan
            )
        rows.append(row)
    return pd.DataFrame(rows)
