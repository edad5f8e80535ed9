"""One entry point for every training method: ``training.method`` picks the trainer.

=========  ==============================================  ===================  ==============
method     trainer                                         needs                output
=========  ==============================================  ===================  ==============
dpo        ``components/train/dpo/train_dpo.py`` (TRL)           preference pairs     adapter/model
sft_dpo    ``components/train/sft/sft_then_dpo.py`` (TRL)        pairs (+ SFT data)   full model
sft        ``components/train/sft/train_sft.py`` (TRL)           pairs or SFT data    adapter/model
ppo        ``components/train/ppo/ppo_trainer.py`` (compact)     prompts + reward     adapter/model
rloo/grpo  ``components/train/ppo/trl_online.py`` (TRL)          prompts + reward     adapter/model
=========  ==============================================  ===================  ==============

Every output folder holds ``training_log.jsonl`` and ``train_summary.json`` (for the curves) and
the tokenizer; ``components/merge`` turns an adapter into a full model and passes a full model
through. The same function runs in-process (CPU, one GPU) and in each process of an ``accelerate
launch`` over several GPUs (``components/train/launch.py`` and ``run.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from xdetox.config import RLConfig, ScoringConfig, TrainingConfig
from xdetox.errors import ConfigError

# What each method trains on: preference pairs (a prepared folder) or prompts (JSON lines).
NEEDS: dict[str, str] = {
    "dpo": "pairs",
    "sft_dpo": "pairs",
    "sft": "pairs",  # the chosen answers, unless training.sft.data names other data
    "ppo": "prompts",
    "rloo": "prompts",
    "grpo": "prompts",
}


def check_inputs(method: str, pairs_dir: Any, prompts_path: Any) -> None:
    """Raise :class:`ConfigError` when the input ``method`` trains on was not given."""
    need = NEEDS.get(method)
    if need is None:
        raise ConfigError(f"training.method: unknown method {method!r} (one of {', '.join(NEEDS)})")
    if need == "pairs" and pairs_dir is None:
        raise ConfigError(f"training.method={method} trains on preference pairs: none were given")
    if need == "prompts" and prompts_path is None:
        raise ConfigError(f"training.method={method} trains on prompts: none were given")


@contextlib.contextmanager
def prompts_file(source: str) -> Iterator[Path]:
    """A local prompts file for ``rl.prompts``: ``toy``, a local path or a ``gs://`` URI (a
    downloaded copy lives as long as the block)."""
    from xdetox.toy.data_sources import local_data

    with local_data(source, "prompts") as path:
        yield path


def _reward_device():
    """This process's device (one GPU per process under ``accelerate launch``), for the reward
    classifier, which is not part of what accelerate places."""
    from xdetox.components.train.outputs import process_state

    return process_state().device


def run_training(
    model_dir: str | Path,
    output_dir: str | Path,
    training: TrainingConfig,
    rl: RLConfig | None = None,
    *,
    pairs_dir: str | Path | None = None,
    prompts_path: str | Path | None = None,
    scoring: ScoringConfig | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = True,
    keep_checkpoints: bool = False,
    progress: bool = True,
    reward_funcs: Sequence[Any] | None = None,
    callbacks: Sequence[Any] = (),
    snapshot_dir: str | Path | None = None,
) -> dict[str, float]:
    """Train with ``training.method`` and write ``output_dir``; return the run's summary.

    ``rl`` (default ``RLConfig()``) and ``scoring`` (for a ``rl.reward.kind: scorer`` reward)
    serve the online methods; ``reward_funcs`` replaces the reward ``rl.reward`` describes
    (tests, custom rewards). ``callbacks`` (transformers ``TrainerCallback``) reach the TRL
    trainers of dpo and sft_dpo. ``snapshot_dir``: where ``training.dose_response`` saves the
    model part-way through (dpo and sft; ``snapshots.py``); None: no snapshots.
    """
    method = training.method
    check_inputs(method, pairs_dir, prompts_path)
    if snapshot_dir is not None and training.dose_response:
        if method not in ("dpo", "sft"):
            raise ConfigError(
                f"training.dose_response: snapshots are taken of a dpo or sft stage, not {method} "
                "(a pipeline runs sft_dpo's stages as separate tasks and snapshots the DPO one)"
            )
        from xdetox.components.train.snapshots import SnapshotCallback

        callbacks = [*callbacks, SnapshotCallback(snapshot_dir, training.dose_response)]
    rl = rl if rl is not None else RLConfig()
    common = {
        "checkpoint_dir": checkpoint_dir,
        "resume": resume,
        "keep_checkpoints": keep_checkpoints,
        "progress": progress,
    }
    if method == "dpo":
        from xdetox.components.train.dpo.train_dpo import train_dpo

        return train_dpo(model_dir, pairs_dir, output_dir, training, callbacks=callbacks, **common)
    if method in ("sft_dpo", "sft"):
        from xdetox.components.train.sft.sft_then_dpo import train_sft_then_dpo
        from xdetox.components.train.sft.train_sft import train_sft
        from xdetox.storage import local_copy

        source = training.sft.data
        holder = local_copy(source) if source else contextlib.nullcontext(None)
        with holder as sft_data:
            if method == "sft":  # the first stage of sft_dpo alone (a pipeline runs the two
                # stages as two tasks, so that the SFT model is evaluated too)
                return train_sft(
                    model_dir,
                    sft_data if sft_data is not None else pairs_dir,
                    output_dir,
                    training,
                    callbacks=callbacks,
                    **common,
                )
            return train_sft_then_dpo(
                model_dir,
                pairs_dir,
                output_dir,
                training,
                sft_data=sft_data,
                callbacks=callbacks,
                **common,
            )

    if reward_funcs is None:
        from xdetox.components.train.ppo.rewards import build_reward_function

        reward_funcs = [build_reward_function(rl.reward, scoring=scoring, device=_reward_device())]
    if method == "ppo":
        from xdetox.components.train.ppo.ppo_trainer import train_ppo

        if len(reward_funcs) != 1:
            raise ConfigError("training.method=ppo takes one reward function")
        return train_ppo(
            model_dir,
            prompts_path,
            output_dir,
            rl,
            training=training,
            reward_fn=reward_funcs[0],
            **common,
        )
    from xdetox.components.train.ppo.trl_online import train_online

    return train_online(
        model_dir,
        prompts_path,
        output_dir,
        rl,
        training=training,
        reward_funcs=list(reward_funcs),
        **common,
    )
