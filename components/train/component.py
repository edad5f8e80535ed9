"""KFP component: the training stage, whatever ``training.method`` (dpo, sft_dpo, ppo, rloo,
grpo), on every GPU of its node, resumable after preemption, with curves."""

from typing import Optional

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from xdetox.components.images import stage_image
from xdetox.config import RLConfig, ScoringConfig, TrainingConfig
from xdetox.config.interface import documented


@dsl.component(base_image=stage_image("train"), install_kfp_package=False)
@documented(
    base_model="the model trained (a Hugging Face folder)",
    training=TrainingConfig,
    rl=(RLConfig, "Read by ppo, rloo and grpo."),
    tuned="the adapter (lora, qlora) or the whole model (full)",
    metrics="final training metrics (losses, rewards, steps)",
    curves="training curves as an HTML page",
    pairs="prepared preference pairs (dpo, sft_dpo)",
    prompts="prompts JSON lines (ppo, rloo, grpo); when not connected, rl.prompts is read",
    scoring=(ScoringConfig, "Needed for rl.reward.kind: scorer only."),
    num_gpus="GPUs to train on; -1: every GPU the pod sees (accelerate launch when more than one)",
    zero_stage="DeepSpeed ZeRO stage of the config used with several GPUs: 2 or 3",
    method="the method this task trains, instead of training.method (a pipeline runs sft_dpo's "
    "stages, several methods and a control arm as separate tasks); empty: training.method",
    label="the trained model's label in the run (its metrics rows, its run folder); empty: the "
    "method",
    save_snapshots="save the model after each fraction of training.dose_response (the run's "
    "first method only)",
    snapshots="the models saved part-way through (at25/, at50/, ...; snapshots.json lists "
    "them): an Artifact, not a Model, because without training.dose_response it holds the "
    "index alone and moves no model",
)
def train(
    base_model: Input[Model],
    training: dict,
    rl: dict,
    tuned: Output[Model],
    metrics: Output[Metrics],
    curves: Output[HTML],
    snapshots: Output[Artifact],
    pairs: Input[Dataset] = None,
    prompts: Input[Dataset] = None,
    scoring: Optional[dict] = None,  # noqa: UP045 (KFP reads Optional, not X | None)
    num_gpus: int = -1,
    zero_stage: int = 2,
    method: str = "",
    label: str = "",
    save_snapshots: bool = False,
):
    """Train and write the adapter (LoRA/QLoRA) or the full model into ``tuned``.

    Checkpoints go to ``<tuned.path>.checkpoints``, a sibling of the output under this task's
    folder of the pipeline root: a retry of the task (``set_retry``) in the same run gets the
    same path and resumes from the newest checkpoint where that path outlives the pod (GCS FUSE
    on Vertex AI; see ``components/train/checkpointing.py`` for standalone clusters). They are
    removed once the model is saved.
    """
    import contextlib

    from xdetox.components.train.curves import stage_metrics, write_curves
    from xdetox.components.train.dispatch import prompts_file
    from xdetox.components.train.launch import train_stage
    from xdetox.config import RLConfig, ScoringConfig, TrainingConfig, validate_section

    config = validate_section(TrainingConfig, training, "pipeline parameter 'training'")
    if method:
        config = validate_section(
            TrainingConfig, {**training, "method": method}, "the train task's method"
        )
    rl_config = validate_section(RLConfig, rl, "pipeline parameter 'rl'")
    scoring_config = (
        validate_section(ScoringConfig, scoring, "pipeline parameter 'scoring'")
        if scoring
        else None
    )
    online = config.method in ("ppo", "rloo", "grpo")
    # Online RL reads rl.prompts itself when no prompts artifact is connected.
    source = (
        prompts_file(rl_config.prompts)
        if online and prompts is None
        else contextlib.nullcontext(prompts.path if prompts is not None else None)
    )
    with source as prompts_path:
        summary = train_stage(
            base_model.path,
            tuned.path,
            config,
            rl_config,
            pairs_dir=pairs.path if pairs is not None else None,
            prompts_path=prompts_path,
            scoring=scoring_config,
            checkpoint_dir=tuned.path + ".checkpoints",
            num_gpus=None if num_gpus < 0 else num_gpus,
            zero_stage=zero_stage,
            progress=False,
            snapshot_dir=snapshots.path if save_snapshots else None,
        )
    from xdetox.components.train.snapshot_files import write_index

    taken = write_index(snapshots.path)
    snapshots.metadata.update({"xdetox_kind": "snapshots", "snapshots": taken})
    finals = write_curves(tuned.path, config.method, curves.path)
    for key, value in stage_metrics(summary, finals).items():
        metrics.log_metric(key, value)
    tuned.metadata.update(
        {
            "method": config.method,
            "mode": config.mode,
            "model": label or config.method,
            "xdetox_kind": "trained",
        }
    )


@dsl.component(base_image=stage_image("load_model"), install_kfp_package=False)
@documented(
    snapshots="a train task's snapshots folder",
    name="the snapshot to take out, e.g. at25 (training.dose_response: 0.25)",
    label="its label in the run, e.g. dpo_at25",
    mode="training.mode: lora and qlora snapshots are adapters (merged next), full ones models",
    model="the snapshot alone: an adapter or a whole model",
)
def pick_snapshot(
    snapshots: Input[Artifact], name: str, label: str, mode: str, model: Output[Model]
):
    """One snapshot of a training run as a model artifact of its own (to merge and evaluate)."""
    from xdetox.components.train.snapshot_files import copy_snapshot

    info = copy_snapshot(snapshots.path, name, model.path)
    model.metadata.update(
        {"xdetox_kind": "trained", "model": label, "method": label, "mode": mode, **info}
    )
