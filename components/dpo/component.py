"""KFP component: DPO preference tuning with TRL (LoRA via PEFT, or full fine-tuning)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.images import TRAIN_IMAGE


@dsl.component(base_image=TRAIN_IMAGE, install_kfp_package=False)
def dpo(
    base_model: Input[Model],
    pairs: Input[Dataset],
    training: dict,
    tuned: Output[Model],
    metrics: Output[Metrics],
):
    """Train and write the adapter (LoRA) or the full model into ``tuned``."""
    from components.dpo.train_dpo import train_dpo
    from xdetox.config import TrainingConfig, validate_section

    config = validate_section(TrainingConfig, training, "pipeline parameter 'training'")
    summary = train_dpo(base_model.path, pairs.path, tuned.path, config)
    for key, value in summary.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            metrics.log_metric(key, float(value))
    tuned.metadata.update({"method": config.method, "mode": config.mode})
