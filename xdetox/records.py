"""Field names of the files that pass between stages. Users read these with pandas: keep stable.

Generations (JSON lines, one per sample):
    model, prompt_id, language, prompt, sample_index, text, n_tokens, finish_reason
Scores (JSON lines): the generation fields plus
    scorer: str, scores: {attribute: float | None}, score_errors: {attribute: reason} (optional)
    score_details: {...} (optional; e.g. the word list scorer's matched words, list and version)
A score the scorer could not produce is ``None`` (JSON null), never 0.
"""

from __future__ import annotations

GENERATION_FIELDS: tuple[str, ...] = (
    "model",
    "prompt_id",
    "language",
    "prompt",
    "sample_index",
    "text",
)
SCORE_FIELDS: tuple[str, ...] = (*GENERATION_FIELDS, "scorer", "scores")

# Perspective API attribute names, used by every scorer so that metrics do not care which one ran.
TOXICITY = "TOXICITY"
ATTRIBUTES: tuple[str, ...] = (
    "TOXICITY",
    "SEVERE_TOXICITY",
    "IDENTITY_ATTACK",
    "INSULT",
    "PROFANITY",
    "THREAT",
)

# Prompts after preparation (JSON lines): prompt_id, language, prompt (+ any source fields).
PROMPT_FIELDS: tuple[str, ...] = ("prompt_id", "language", "prompt")

# Preference pairs after preparation (JSON lines): what TRL's DPOTrainer reads.
PAIR_FIELDS: tuple[str, ...] = ("prompt", "chosen", "rejected")

BASE_LABEL = "base"
# The control arm's label (training.control: the tuned method trained on reversed pairs).
CONTROL_LABEL = "control"
# A snapshot of a model part-way through training (training.dose_response): <label>_at<pct>.
SNAPSHOT_INFIX = "_at"


def snapshot_label(label: str, fraction: float) -> str:
    """The label of ``label``'s model after ``fraction`` of its training, e.g. ``dpo_at25``."""
    return f"{label}{SNAPSHOT_INFIX}{round(100 * fraction):02d}"


def parse_snapshot_label(label: str) -> tuple[str, float] | None:
    """``(model label, fraction)`` of a snapshot label, None for any other label."""
    stem, sep, pct = label.rpartition(SNAPSHOT_INFIX)
    if not sep or not stem or not pct.isdigit() or not 0 < int(pct) < 100:
        return None
    return stem, int(pct) / 100
