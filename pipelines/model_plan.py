"""Which models a detox run trains and evaluates, decided from the recipe at compile time.

Every model is evaluated beside the base on the same prompts with the same seeds, so the
report can compare any two of them paired per prompt:

- ``training.method`` (or each of ``training.methods``) gives one trained model labelled by the
  method, trained from the base;
- ``sft_dpo`` gives two, as the model card reports them: ``sft`` (SFT from the base) and
  ``sft_dpo`` (DPO from the SFT model), each measured against the base and ``sft_dpo`` also
  against ``sft`` (the DPO stage's own effect);
- ``training.control`` gives ``control``: the first pair-trained method's last stage trained
  again exactly alike, from the same start, on the reversed pairs, and measured against the
  tuned model as well as the base (does tuning beat the control?);
- ``training.dose_response`` adds the first method's model part-way through its training
  (``dpo_at25``, ...), evaluated like the others (the dose-response plot reads them).

Labels are the metrics rows' ``model`` and the evaluation sub-pipeline's input names, so they
are identifiers and unique.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdetox.config import Config
from xdetox.config.training import ONLINE_METHODS
from xdetox.errors import ConfigError
from xdetox.records import BASE_LABEL, CONTROL_LABEL, snapshot_label

SFT_LABEL = "sft"


@dataclass(frozen=True)
class PlannedModel:
    label: str  # the model's name in metrics.csv, the report and the run folder
    method: str  # what its train task runs (sft, dpo, ppo, rloo, grpo)
    start: str  # the label of the model it is trained from
    pairs: str  # "pairs", "control" (the reversed pairs) or "" (online: prompts and a reward)
    compare_with: str = ""  # a second model its change is measured against, besides the base


def _stages(method: str) -> list[PlannedModel]:
    if method == "sft_dpo":
        return [
            PlannedModel(SFT_LABEL, "sft", BASE_LABEL, "pairs"),
            PlannedModel("sft_dpo", "dpo", SFT_LABEL, "pairs", compare_with=SFT_LABEL),
        ]
    pairs = "" if method in ONLINE_METHODS else "pairs"
    return [PlannedModel(method, method, BASE_LABEL, pairs)]


def model_plan(config: Config) -> list[PlannedModel]:
    """The trained models of ``config``'s detox run, in training order (see module docstring)."""
    plan: list[PlannedModel] = []
    for method in config.training.planned_methods():
        for step in _stages(method):
            if any(planned.label == step.label for planned in plan):
                continue  # methods [sft, sft_dpo]: one sft model serves both
            plan.append(step)
    if config.training.control != "none":
        # The method the control mirrors: the first one that trains on pairs (the config
        # refuses a control when none does).
        first = next(m for m in config.training.planned_methods() if m not in ONLINE_METHODS)
        mirrored = next(s for s in plan if s.label == first)
        plan.append(
            PlannedModel(
                CONTROL_LABEL, mirrored.method, mirrored.start, "control", compare_with=first
            )
        )
    labels = [BASE_LABEL, *(step.label for step in plan)]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"training.methods: the run's model labels repeat ({', '.join(labels)})")
    return plan


def primary_label(config: Config) -> str:
    """The tuned model the rest of the run is about (the interpret graph's ``tuned``): the first
    method's final model."""
    return config.training.planned_methods()[0]


def snapshot_fractions(config: Config, step: PlannedModel) -> list[float]:
    """The fractions of training at which ``step``'s model is also evaluated
    (``training.dose_response``: the first method's final model only)."""
    return sorted(config.training.dose_response) if step.label == primary_label(config) else []


def evaluated_labels(config: Config, plan: list[PlannedModel]) -> tuple[str, ...]:
    """Every model evaluated, in order: the base, then each trained model, its snapshots
    (``<label>_at<pct>``) just before it."""
    labels = [BASE_LABEL]
    for step in plan:
        labels += [snapshot_label(step.label, f) for f in snapshot_fractions(config, step)]
        labels.append(step.label)
    return tuple(labels)


def comparisons(plan: list[PlannedModel]) -> dict[str, str]:
    """``{label: compared_with}`` of the models measured against a second model."""
    return {step.label: step.compare_with for step in plan if step.compare_with}
