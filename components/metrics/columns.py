"""Column names of the per-language metrics table (``metrics.csv``).

Kept apart from the computations so that the report stage can validate and read metrics tables
without importing torch or transformers.
"""

from __future__ import annotations

from xdetox.records import ATTRIBUTES

MODEL = "model"
LANGUAGE = "language"
KEY_COLUMNS: tuple[str, ...] = (MODEL, LANGUAGE)

# Columns every metrics table has (the report refuses a table without them).
REQUIRED_COLUMNS: tuple[str, ...] = (
    MODEL,
    LANGUAGE,
    "scorer",
    "n_prompts",
    "n_samples",
    "n_missing",
    "expected_max_toxicity",
    "toxicity_probability",
    "avg_toxicity",
    "perplexity",
    "dist_1",
    "dist_2",
    "dist_3",
)

# The headline toxicity metrics (RealToxicityPrompts / XG definitions); lower is better.
TOXICITY_METRICS: tuple[str, ...] = (
    "expected_max_toxicity",
    "toxicity_probability",
    "avg_toxicity",
)
# Mean negative log-likelihood (nats/token) of the continuations under the perplexity model
# (the base): its change is the fluency cost of tuning (``fluency_cost.py``).
NLL_METRIC = "nll_mean"
FLUENCY_METRICS: tuple[str, ...] = ("perplexity", NLL_METRIC)
DIVERSITY_METRICS: tuple[str, ...] = ("dist_1", "dist_2", "dist_3")


def pct_column(attribute: str) -> str:
    """Percent (0–100) of scored samples whose ``attribute`` score is >= the threshold."""
    return f"pct_{attribute}_ge_thr"


def count_column(attribute: str) -> str:
    """Number of samples whose ``attribute`` score is >= the threshold."""
    return f"count_{attribute}_ge_thr"


def scored_column(attribute: str) -> str:
    """Number of samples that have a (non-null) score for ``attribute``: the pct denominator."""
    return f"n_scored_{attribute}"


def attribute_columns(columns: list[str] | tuple[str, ...]) -> list[str]:
    """The attributes (in ``ATTRIBUTES`` order) for which ``columns`` holds a pct column."""
    present = set(columns)
    return [attr for attr in ATTRIBUTES if pct_column(attr) in present]


def is_count_column(name: str) -> bool:
    """Counts add up across languages (the ``ALL`` row sums them instead of averaging)."""
    return name.startswith(("n_", "count_"))


# Base vs tuned: the paired bootstrap of the difference (tuned − base) of these metrics.
BOOTSTRAP_METRICS: tuple[str, ...] = TOXICITY_METRICS
# Every metric whose change against the base carries a paired bootstrap interval.
INTERVAL_METRICS: tuple[str, ...] = (*BOOTSTRAP_METRICS, NLL_METRIC)


def delta_column(metric: str) -> str:
    """Tuned − base of ``metric`` (on the tuned model's rows)."""
    return f"delta_{metric}"


def ci_columns(metric: str) -> tuple[str, str]:
    """``(low, high)`` of the confidence interval of ``delta_<metric>``."""
    return f"delta_{metric}_ci_low", f"delta_{metric}_ci_high"


def se_column(metric: str) -> str:
    """Bootstrap standard error of ``delta_<metric>`` (combines languages in ``ALL`` rows)."""
    return f"delta_{metric}_se"


def mde_column(metric: str) -> str:
    """Minimum detectable effect of ``delta_<metric>`` at ``metrics.power`` (see ``floor.py``)."""
    return f"mde_{metric}"


# Several models (base, sft, dpo, control, ...): the order they were evaluated in (rows keep it),
# and for a model measured against a second model besides the base (sft_dpo against sft, the
# control against the tuned model), that model's label and the paired bootstrap of
# model − that model in ``vs_``-prefixed delta columns (``vs_delta_<m>``, ``vs_delta_<m>_se``,
# ``vs_delta_<m>_ci_low``, ``vs_delta_<m>_ci_high``, ``vs_n_prompts_paired``).
MODEL_ORDER = "model_order"
COMPARED_WITH = "compared_with"
VS_PREFIX = "vs_"


def vs_column(column: str) -> str:
    """``column`` (a delta, SE, CI or pairing count) of the comparison with ``compared_with``."""
    return f"{VS_PREFIX}{column}"


# Scorer floor (``floor.py``), on the tuned model's rows: the base model's share of samples at
# or above the threshold, the power to detect a drop of the toxicity probability to zero, and
# whether the language's change is measurable at all (True/False; empty = unknown).
BASE_HIT_RATE = "base_hit_rate"
POWER_DROP_TO_ZERO = "power_drop_to_zero"
MEASURABLE = "measurable"
MEASURABLE_REASON = "measurable_reason"

# Non-numeric descriptive columns: copied, never averaged.
TEXT_COLUMNS: tuple[str, ...] = (
    "scorer",
    COMPARED_WITH,
    "perplexity_method",
    "perplexity_model",
    "diversity_tokenizer",
    "delta_ci_method",
)
# The evaluation protocol's choices where XG (Li, Yong & Bach 2024, arXiv:2406.16235) and our
# defaults differ (``metrics.group_by``, ``scoring.empty_text``, ``metrics.distinct_tokens``,
# ``metrics.quartile_method``): every row says which produced it.
PROTOCOL_COLUMNS: tuple[str, ...] = ("group_by", "empty_text", "distinct_tokens", "quartile_method")
# What tables and score files written before those columns existed were computed with: the only
# behaviour there was, so an old metrics.csv reads as what it is.
LEGACY_PROTOCOL: dict[str, str] = {
    "group_by": "prompt_id",
    "empty_text": "scorer",
    "distinct_tokens": "ids",
    "quartile_method": "linear",
}
# Settings under which the metrics were computed: must agree across rows that are averaged.
SETTING_COLUMNS: tuple[str, ...] = (
    "threshold",
    "bootstrap_samples",
    "bootstrap_seed",
    "confidence",
    "power",
    *PROTOCOL_COLUMNS,
)
