"""A compact PPO for causal language models (TRL removed its ``PPOTrainer`` in 1.13).

One PPO step (Ziegler et al., 2019; the TRL detoxification example's recipe):

1. take ``batch_size`` queries (prompt openings, see ``prompt_data``) and sample one completion
   each (``rollout``: top-k 0, top-p 1, a new-token count drawn per completion);
2. score the completions with a reward function (``rewards``: TRL's ``reward_funcs`` signature);
   a completion scored ``None`` is left out of this step's update;
3. with the policy, the reference and the value head frozen, compute per-token log-probabilities
   and values; the per-token reward is ``-beta * (logp - logp_ref)`` plus the score on the last
   response token (``beta`` from the KL controller, ``kl_control``);
4. advantages by GAE (``gae``), whitened over the batch;
5. ``ppo_epochs`` passes over shuffled mini-batches of ``mini_batch_size``: clipped policy loss
   plus ``vf_coef`` × clipped value loss (``losses``), one Adam step per mini-batch;
6. update ``beta`` from the batch's mean KL (sum over each response's tokens).

Policy: the model with a scalar value head on its last hidden state (``value_head``). With LoRA
the reference is the same network with its adapters disabled (no second copy in memory); in full
fine-tuning it is a frozen copy of the base. Dropout is switched off in both: PPO's ratio
``pi/pi_old`` must be 1 before the first update, not noise.

Reproducibility and resume: every step reseeds torch from ``(seed, step)`` and draws its prompt
batch and lengths from generators keyed the same way, so step N does the same thing whether the
run got there directly or resumed from a checkpoint. Checkpoints (``checkpoints``) hold the
policy/adapter, value head, optimizer, KL controller, generator states and the log; with
``resume=True`` the newest one is continued. On CPU a resumed run ends with exactly the
parameters of an uninterrupted one (``tests/test_ppo.py`` checks bitwise equality).

This trainer runs on one device (the GPU when there is one). Multi-GPU/DeepSpeed runs use the
TRL RLOO/GRPO wrappers (``trl_online``), launched with ``components/train/deepspeed``.

Output folder (written whole and atomically): the final policy (adapter or full model), the
tokenizer, ``value_head.safetensors``, ``base_config.json``, ``training_log.jsonl`` (one line per
step) and ``train_summary.json``.
"""

from __future__ import annotations

import contextlib
import math
import random
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM
from trl.trainer.utils import disable_dropout_in_model

from xdetox.components.train.checkpointing import default_checkpoint_dir, files_digest
from xdetox.components.train.dpo.train_dpo import BASE_CONFIG, TRAIN_SUMMARY, TRAINING_LOG
from xdetox.components.train.policy import (
    build_peft_config,
    check_mode_supported,
    is_quantized,
    load_policy,
    load_tokenizer,
)
from xdetox.components.train.ppo.checkpoints import (
    POLICY_DIR,
    check_resumable,
    latest_checkpoint,
    list_checkpoints,
    load_training_state,
    read_checkpoint,
    save_checkpoint,
)
from xdetox.components.train.ppo.gae import compute_gae, masked_mean, whiten
from xdetox.components.train.ppo.kl_control import build_kl_controller
from xdetox.components.train.ppo.losses import clipped_policy_loss, clipped_value_loss
from xdetox.components.train.ppo.ppo_config import RLConfig, check_rl_config
from xdetox.components.train.ppo.prompt_data import Query, build_queries
from xdetox.components.train.ppo.rewards import RewardFunc, build_reward_function
from xdetox.components.train.ppo.rollout import (
    Rollout,
    forward_response,
    generate_rollout,
    sample_lengths,
)
from xdetox.components.train.ppo.value_head import ValueHead, hidden_size, save_value_head
from xdetox.config import TrainingConfig
from xdetox.errors import ConfigError, XdetoxError
from xdetox.files import atomic_dir, write_json, write_jsonl

StepCallback = Callable[[dict[str, Any]], None]


def step_seed(seed: int, step: int) -> int:
    """The torch seed of PPO step ``step`` (1-based)."""
    return (seed * 1_000_003 + step) % (2**63)


def prompt_batch(n_prompts: int, batch_size: int, seed: int, step: int) -> list[int]:
    """Prompt indices of step ``step``: consecutive slices of one shuffled pass over the prompts
    after another (a fresh shuffle per pass), computed from the step alone."""
    start = (step - 1) * batch_size
    orders: dict[int, list[int]] = {}
    picked = []
    for position in range(start, start + batch_size):
        epoch, offset = divmod(position, n_prompts)
        if epoch not in orders:
            order = list(range(n_prompts))
            random.Random(f"xdetox-ppo-order-{seed}-{epoch}").shuffle(order)
            orders[epoch] = order
        picked.append(orders[epoch][offset])
    return picked


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


class PPOTrainer:
    """Owns the models, optimizer and KL controller; :meth:`step` runs one PPO step."""

    def __init__(
        self,
        policy,
        value_head: ValueHead,
        tokenizer,
        config: RLConfig,
        reward_fn: RewardFunc,
        queries: list[Query],
        *,
        ref_model=None,
        seed: int = 0,
    ):
        self.seed = seed
        self.policy = policy
        self.value_head = value_head
        self.ref_model = ref_model  # None: the policy with adapters disabled (LoRA)
        self.tokenizer = tokenizer
        self.config = config
        self.reward_fn = reward_fn
        self.queries = queries
        ppo = config.ppo
        trainable = [p for p in policy.parameters() if p.requires_grad]
        self.parameters = trainable + list(value_head.parameters())
        self.optimizer = torch.optim.Adam(self.parameters, lr=ppo.learning_rate)
        self.kl_controller = build_kl_controller(
            ppo.init_kl_coef, adaptive=ppo.adaptive_kl, target=ppo.target_kl, horizon=ppo.kl_horizon
        )

    # -- rollout -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _reference(self) -> Iterator[Any]:
        if self.ref_model is not None:
            yield self.ref_model
        else:
            with self.policy.disable_adapter():
                yield self.policy

    @torch.no_grad()
    def _score_tokens(self, rollout: Rollout) -> dict[str, torch.Tensor]:
        """Frozen log-probabilities (policy and reference), values and entropy, in chunks."""
        chunk = self.config.ppo.mini_batch_size
        temperature = self.config.temperature
        parts: dict[str, list[torch.Tensor]] = {"logprobs": [], "values": [], "entropy": []}
        ref_parts: list[torch.Tensor] = []
        self.policy.eval()
        for start in range(0, rollout.input_ids.shape[0], chunk):
            ids = rollout.input_ids[start : start + chunk]
            mask = rollout.attention_mask[start : start + chunk]
            logprobs, values, entropy = forward_response(
                self.policy,
                ids,
                mask,
                rollout.query_width,
                value_head=self.value_head,
                temperature=temperature,
                with_entropy=True,
            )
            parts["logprobs"].append(logprobs)
            parts["values"].append(values)
            parts["entropy"].append(entropy)
            with self._reference() as reference:
                ref_logprobs, _, _ = forward_response(
                    reference, ids, mask, rollout.query_width, temperature=temperature
                )
            ref_parts.append(ref_logprobs)
        out = {name: torch.cat(tensors) for name, tensors in parts.items()}
        out["ref_logprobs"] = torch.cat(ref_parts)
        return out

    def _rewards(self, queries: list[Query], rollout: Rollout) -> list[float | None]:
        completions = [
            self.tokenizer.decode(tokens, skip_special_tokens=True) for tokens in rollout.responses
        ]
        names = sorted({key for q in queries for key in q.columns})
        columns = {name: [q.columns.get(name) for q in queries] for name in names}
        scores = self.reward_fn(
            prompts=[q.text for q in queries],
            completions=completions,
            completion_ids=[list(tokens) for tokens in rollout.responses],
            **columns,
        )
        if len(scores) != len(queries):
            raise XdetoxError(
                f"the reward function returned {len(scores)} rewards for {len(queries)} completions"
            )
        cleaned = []
        for score in scores:
            value = None if score is None else float(score)
            cleaned.append(value if value is not None and math.isfinite(value) else None)
        return cleaned

    # -- one step ------------------------------------------------------------------------

    def step(self, step: int) -> dict[str, Any]:
        """Run PPO step ``step`` (1-based) and return its log record."""
        config, ppo = self.config, self.config.ppo
        torch.manual_seed(step_seed(self.seed, step))
        rng = random.Random(f"xdetox-ppo-lengths-{self.seed}-{step}")
        indices = prompt_batch(len(self.queries), ppo.batch_size, self.seed, step)
        queries = [self.queries[i] for i in indices]
        new_tokens = sample_lengths(rng, len(queries), config.min_new_tokens, config.max_new_tokens)
        rollout = generate_rollout(
            self.policy,
            [q.ids for q in queries],
            new_tokens,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
            temperature=config.temperature,
            top_k=config.top_k,
            top_p=config.top_p,
        )
        scores = self._rewards(queries, rollout)
        device = rollout.input_ids.device
        scored = torch.tensor([s is not None for s in scores], device=device)
        record: dict[str, Any] = {
            "step": step,
            "n_scored": int(scored.sum()),
            "n_unscored": int((~scored).sum()),
            "kl_coef": self.kl_controller.value,
            "response_length": _mean([len(r) for r in rollout.responses]),
        }
        if not scored.any():
            # Nothing to learn from; no update, and the KL coefficient stays where it was.
            record.update({"reward_mean": None, "reward_std": None})
            return record

        frozen = self._score_tokens(rollout)
        mask = rollout.response_mask * scored[:, None].float()
        kl = (frozen["logprobs"] - frozen["ref_logprobs"]) * mask
        rewards = -self.kl_controller.value * kl
        last = (rollout.response_mask.sum(1).long() - 1).clamp(min=0)
        # 0.0 is only a placeholder for unscored rows: their mask is 0 and they are never read.
        score_tensor = torch.tensor([s if s is not None else 0.0 for s in scores], device=device)
        rows = torch.arange(len(scores), device=device)
        rewards[rows, last] += torch.where(scored, score_tensor, torch.zeros_like(score_tensor))
        values = frozen["values"] * mask
        advantages, returns = compute_gae(rewards, values, mask, ppo.gamma, ppo.lam)
        if ppo.whiten_advantages:
            advantages = whiten(advantages, mask)

        stats = self._optimize(rollout, mask, frozen["logprobs"], values, advantages, returns, step)
        sequence_kl = kl.sum(1)[scored]
        mean_kl = float(sequence_kl.mean())
        scored_values = score_tensor[scored]
        record.update(
            {
                "reward_mean": float(scored_values.mean()),
                "reward_std": float(scored_values.std()) if len(scored_values) > 1 else None,
                "kl": mean_kl,
                "non_score_reward": float((-self.kl_controller.value * kl).sum(1)[scored].mean()),
                "entropy": float(masked_mean(frozen["entropy"], mask)),
                **stats,
            }
        )
        self.kl_controller.update(mean_kl, int(scored.sum()))
        record["kl_coef_next"] = self.kl_controller.value
        return record

    def _optimize(
        self,
        rollout: Rollout,
        mask: torch.Tensor,
        old_logprobs: torch.Tensor,
        old_values: torch.Tensor,
        advantages: torch.Tensor,
        returns: torch.Tensor,
        step: int,
    ) -> dict[str, float | None]:
        ppo = self.config.ppo
        generator = torch.Generator().manual_seed(step_seed(self.seed, step))
        collected: dict[str, list[float]] = {
            "policy_loss": [],
            "value_loss": [],
            "clip_fraction": [],
            "value_clip_fraction": [],
            "approx_kl": [],
        }
        self.policy.train()
        batch = rollout.input_ids.shape[0]
        for _ in range(ppo.ppo_epochs):
            order = torch.randperm(batch, generator=generator).to(mask.device)
            for rows in order.split(ppo.mini_batch_size):
                mb_mask = mask[rows]
                if mb_mask.sum() == 0:
                    continue  # only unscored rows: an Adam step on zero gradients still moves
                logprobs, values, _ = forward_response(
                    self.policy,
                    rollout.input_ids[rows],
                    rollout.attention_mask[rows],
                    rollout.query_width,
                    value_head=self.value_head,
                    temperature=self.config.temperature,
                )
                pg_loss, clip_fraction, approx_kl = clipped_policy_loss(
                    logprobs, old_logprobs[rows], advantages[rows], mb_mask, ppo.cliprange
                )
                vf_loss, vf_clip_fraction = clipped_value_loss(
                    values, old_values[rows], returns[rows], mb_mask, ppo.cliprange_value
                )
                loss = pg_loss + ppo.vf_coef * vf_loss
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if ppo.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(self.parameters, ppo.max_grad_norm)
                self.optimizer.step()
                collected["policy_loss"].append(pg_loss.item())
                collected["value_loss"].append(vf_loss.item())
                collected["clip_fraction"].append(float(clip_fraction))
                collected["value_clip_fraction"].append(float(vf_clip_fraction))
                collected["approx_kl"].append(float(approx_kl))
        for value in collected["policy_loss"] + collected["value_loss"]:
            if not math.isfinite(value):
                raise XdetoxError(
                    f"PPO diverged at step {step} (loss {value}); lower rl.ppo.learning_rate"
                )
        return {name: _mean(values) for name, values in collected.items()}


# -- models ----------------------------------------------------------------------------------


def build_models(model_dir: Path, training: TrainingConfig, resume_from: Path | None):
    """``(policy, ref_model, tokenizer)``; ``ref_model`` is None with LoRA/QLoRA (the policy with
    its adapters disabled is the reference).

    A resumed run takes the policy's weights from the checkpoint: the adapter (over the base of
    ``model_dir``) or the whole model.
    """
    base, tokenizer = load_policy(model_dir, training)
    if training.mode == "full":
        ref_model = base
        ref_model.requires_grad_(False)
        source = resume_from / POLICY_DIR if resume_from else model_dir
        policy = AutoModelForCausalLM.from_pretrained(str(source), dtype=torch.float32)
    else:
        from peft import PeftModel, get_peft_model

        ref_model = None
        if resume_from:
            adapter = str(resume_from / POLICY_DIR)
            policy = PeftModel.from_pretrained(base, adapter, is_trainable=True)
        else:
            policy = get_peft_model(base, build_peft_config(base, training))
    for model in (policy, ref_model):
        if model is not None:
            disable_dropout_in_model(model)
    if ref_model is not None:
        ref_model.eval()
    return policy, ref_model, tokenizer


# The ``training`` keys PPO reads; recorded in checkpoints with the ``rl`` section.
PPO_TRAINING_KEYS = ("method", "mode", "lora", "qlora", "seed")


def run_settings(
    config: RLConfig, training: TrainingConfig, prompts_path: str | Path | None = None
) -> dict[str, Any]:
    """What a checkpoint must have been made with to be resumed (dotted keys as in recipes)."""
    return {
        "rl": config.model_dump(mode="json"),
        "training": training.model_dump(mode="json", include=set(PPO_TRAINING_KEYS)),
        "prompts_digest": files_digest(prompts_path),
    }


def _count(model) -> tuple[int, int]:
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def summarize(
    log: list[dict[str, Any]],
    *,
    resumed_from: int,
    wall_time_s: float,
    n_prompts: int,
    n_trainable: int,
    n_total: int,
) -> dict[str, float]:
    """Final metrics as floats; a metric that does not exist (no scored step) is left out."""
    rewards = [r["reward_mean"] for r in log if r.get("reward_mean") is not None]
    tail = max(1, len(rewards) // 10)
    last = log[-1] if log else {}
    summary: dict[str, float | None] = {
        "steps": len(log),
        "resumed_from_step": resumed_from,
        "reward_mean_first": _mean(rewards[:tail]),
        "reward_mean_last": _mean(rewards[-tail:]),
        "kl_last": last.get("kl"),
        "kl_coef_final": last.get("kl_coef_next", last.get("kl_coef")),
        "n_unscored": sum(r.get("n_unscored", 0) for r in log),
        "n_prompts": n_prompts,
        "n_params_trainable": n_trainable,
        "n_params_total": n_total,
        "wall_time_s": wall_time_s,
    }
    return {k: float(v) for k, v in summary.items() if v is not None}


def _clear_checkpoints(folder: Path) -> None:
    """Remove the ``step-N`` checkpoints; the folder too when nothing else is left in it."""
    for _, path in list_checkpoints(folder):
        shutil.rmtree(path, ignore_errors=True)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def train_ppo(
    model_dir: str | Path,
    prompts_path: str | Path,
    output_dir: str | Path,
    config: RLConfig,
    *,
    training: TrainingConfig | None = None,
    reward_fn: RewardFunc | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = True,
    keep_checkpoints: bool = False,
    progress: bool = True,
    on_step: StepCallback | None = None,
) -> dict[str, float]:
    """Train ``model_dir`` with PPO on the prompts of ``prompts_path``; write ``output_dir``.

    ``config`` is the ``rl`` section; ``training`` gives the adaptation (``mode``, ``lora``,
    ``qlora``) and the ``seed`` (default: ``TrainingConfig(method="ppo")``). ``reward_fn``
    defaults to the one ``config.reward`` describes. Checkpoints go to ``checkpoint_dir``
    (default ``<output_dir>.checkpoints``: put it on storage that outlives the pod for retries to
    resume) every ``config.save_steps`` steps; with ``resume`` the newest is continued, without it
    old checkpoints are removed first. They are removed after success unless
    ``keep_checkpoints``. ``on_step`` gets each step's log record (after the step).
    """
    started = time.monotonic()
    training = training if training is not None else TrainingConfig(method="ppo")
    if training.method != "ppo":
        raise ConfigError(f"training.method: train_ppo runs 'ppo', not {training.method!r}")
    check_rl_config(config, training.method)
    check_mode_supported(training)
    model_dir, output_dir = Path(model_dir), Path(output_dir)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else default_checkpoint_dir(output_dir)
    settings = run_settings(config, training, prompts_path)

    tokenizer = load_tokenizer(model_dir)  # prompts are checked before the (slow) model load
    queries = build_queries(
        prompts_path,
        tokenizer,
        config.query_min_tokens,
        config.query_max_tokens,
        training.seed,
        toxicity_above=config.prompt_toxicity_above,
    )
    latest = latest_checkpoint(checkpoint_dir) if resume else None
    if not resume:
        _clear_checkpoints(checkpoint_dir)
    state: dict[str, Any] = {"step": 0, "log": []}
    if latest is not None:
        state = read_checkpoint(latest)
        check_resumable(state["config"], settings, latest)
        if state["step"] > config.max_steps:
            raise ConfigError(
                f"rl.max_steps ({config.max_steps}) is below the step of the checkpoint "
                f"at {latest} ({state['step']})"
            )
    if reward_fn is None:
        reward_fn = build_reward_function(config.reward)

    torch.manual_seed(training.seed)  # LoRA and value-head initialisation
    policy, ref_model, tokenizer = build_models(model_dir, training, latest)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not is_quantized(policy):  # a 4-bit model was loaded onto its GPU and cannot move
        policy.to(device)
    if ref_model is not None:
        ref_model.to(device)
    value_head = ValueHead(hidden_size(policy)).to(device)
    trainer = PPOTrainer(
        policy,
        value_head,
        tokenizer,
        config,
        reward_fn,
        queries,
        ref_model=ref_model,
        seed=training.seed,
    )
    start = int(state["step"])
    log: list[dict[str, Any]] = list(state["log"])
    if latest is not None:
        load_training_state(latest, value_head=value_head, optimizer=trainer.optimizer)
        trainer.kl_controller.load_state_dict(state["kl_controller"])

    bar = tqdm(
        total=config.max_steps,
        initial=start,
        desc="ppo",
        disable=None if progress else True,
        leave=False,
    )
    for step in range(start + 1, config.max_steps + 1):
        record = trainer.step(step)
        log.append(record)
        bar.update(1)
        if record.get("reward_mean") is not None:
            bar.set_postfix(reward=f"{record['reward_mean']:.3f}", kl=f"{record['kl']:.2f}")
        if on_step is not None:
            on_step(record)
        if step % config.save_steps == 0 and step < config.max_steps:
            save_checkpoint(
                checkpoint_dir,
                step,
                policy=policy,
                value_head=value_head,
                optimizer=trainer.optimizer,
                kl_state=trainer.kl_controller.state_dict(),
                config=settings,
                log=log,
                keep=config.save_total_limit,
            )
    bar.close()

    n_trainable, n_total = _count(policy)
    summary = summarize(
        log,
        resumed_from=start,
        wall_time_s=time.monotonic() - started,
        n_prompts=len(queries),
        n_trainable=n_trainable + sum(p.numel() for p in value_head.parameters()),
        n_total=n_total + sum(p.numel() for p in value_head.parameters()),
    )
    with atomic_dir(output_dir) as tmp:
        policy.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        save_value_head(value_head, tmp)
        shutil.copyfile(model_dir / "config.json", tmp / BASE_CONFIG)
        write_jsonl(tmp / TRAINING_LOG, log)
        write_json(tmp / TRAIN_SUMMARY, summary)
    if not keep_checkpoints:
        _clear_checkpoints(checkpoint_dir)
    return summary
