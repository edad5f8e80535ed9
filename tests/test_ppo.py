"""Online RL: PPO pieces against hand-computed values, PPO and TRL RLOO/GRPO on a task whose
reward is known (count of one target word), and PPO resume after a crash.

The task: a tiny random GPT-2 over a 26-word vocabulary, reward = number of completion tokens
equal to the word "nice". Uniform sampling gives ~1/26 of the tokens, so a policy that learns
shows a clear rise within a few dozen steps. ``initializer_range=0.2`` (not GPT-2's 0.02) gives
the frozen output embedding enough norm that LoRA adapters alone can make one token dominant.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tiny_models import gpt2_word_tokenizer, save_tiny_lm

from xdetox.components.train.ppo.gae import compute_gae, masked_mean, whiten
from xdetox.components.train.ppo.kl_control import AdaptiveKLController, FixedKLController
from xdetox.components.train.ppo.losses import clipped_policy_loss, clipped_value_loss
from xdetox.components.train.ppo.ppo_config import RLConfig, check_rl_config
from xdetox.components.train.ppo.ppo_trainer import prompt_batch, train_ppo
from xdetox.components.train.ppo.prompt_data import build_queries
from xdetox.components.train.ppo.rewards import ScorerReward
from xdetox.components.train.ppo.trl_online import train_online
from xdetox.components.train.ppo.value_head import VALUE_HEAD_FILE
from xdetox.config import TrainingConfig
from xdetox.errors import ConfigError, DataError

WORDS = [
    "the", "a", "cat", "dog", "sat", "ran", "on", "under", "mat", "tree", "big", "small",
    "red", "blue", "happy", "sad", "nice", "kind", "rude", "bad", "very", "quite", "and", "then",
]  # fmt: skip
TARGET_WORD = "nice"


@pytest.fixture(scope="module")
def task(tmp_path_factory) -> dict:
    """Base model folder, prompts file and the target token id."""
    root = tmp_path_factory.mktemp("ppo_task")
    tokenizer = gpt2_word_tokenizer(WORDS)
    base = save_tiny_lm(
        root / "base", tokenizer, initializer_range=0.2, bos_token_id=0, eos_token_id=0
    )
    rng = random.Random(0)
    prompts = root / "prompts.jsonl"
    with prompts.open("w", encoding="utf-8") as fh:
        for i in range(32):
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 6)))
            fh.write(json.dumps({"prompt_id": i, "language": "en", "prompt": words}) + "\n")
    target = tokenizer.convert_tokens_to_ids(TARGET_WORD)
    return {"base": base, "prompts": prompts, "target": target, "root": root}


def count_target(target: int):
    def count_nice(prompts, completions, completion_ids, **kwargs):
        return [float(sum(t == target for t in ids)) for ids in completion_ids]

    return count_nice


def rl_config(**overrides) -> RLConfig:
    data = {
        "max_steps": 24,
        "save_steps": 1000,
        "query_min_tokens": 2,
        "query_max_tokens": 4,
        "min_new_tokens": 6,
        "max_new_tokens": 10,
        "ppo": {"learning_rate": 3e-3},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return RLConfig.model_validate(data)


def training_config(method: str = "ppo", **overrides) -> TrainingConfig:
    """The ``training`` keys RL reads: method, adaptation (small LoRA), seed."""
    data = {
        "method": method,
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
        "gradient_checkpointing": False,
        **overrides,
    }
    return TrainingConfig.model_validate(data)


def read_log(folder: Path) -> list[dict]:
    lines = (folder / "training_log.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


# -- pieces against hand-computed values ------------------------------------------------------


def test_adaptive_kl_controller_follows_ziegler_update():
    ctl = AdaptiveKLController(0.2, target=6.0, horizon=10000)
    ctl.update(12.0, 16)  # KL twice the target: error clipped to +0.2
    assert ctl.value == pytest.approx(0.2 * (1 + 0.2 * 16 / 10000), rel=1e-12)
    before = ctl.value
    ctl.update(3.0, 16)  # half the target: error clipped to -0.2, the coefficient falls
    assert ctl.value == pytest.approx(before * (1 - 0.2 * 16 / 10000), rel=1e-12)
    before = ctl.value
    ctl.update(6.6, 100)  # 10% above the target: unclipped error 0.1
    assert ctl.value == pytest.approx(before * (1 + 0.1 * 100 / 10000), rel=1e-12)
    before = ctl.value
    ctl.update(6.0, 100)  # on target: unchanged
    assert ctl.value == pytest.approx(before, rel=1e-12)

    restored = AdaptiveKLController(0.2, target=6.0, horizon=10000)
    restored.load_state_dict(ctl.state_dict())
    assert restored.value == ctl.value

    fixed = FixedKLController(0.3)
    fixed.update(100.0, 16)
    assert fixed.value == 0.3


def test_gae_matches_hand_computation():
    # gamma 1, lambda 0.95, reward 1 at the last of three tokens, values 0.5 0.4 0.3:
    # A2 = 1 - 0.3 = 0.7; A1 = (0 + 0.3 - 0.4) + 0.95 * 0.7 = 0.565;
    # A0 = (0 + 0.4 - 0.5) + 0.95 * 0.565 = 0.43675; returns = A + V.
    advantages, returns = compute_gae(
        torch.tensor([[0.0, 0.0, 1.0]]),
        torch.tensor([[0.5, 0.4, 0.3]]),
        torch.ones(1, 3),
        gamma=1.0,
        lam=0.95,
    )
    assert advantages.tolist()[0] == pytest.approx([0.43675, 0.565, 0.7])
    assert returns.tolist()[0] == pytest.approx([0.93675, 0.965, 1.0])

    # A response that ended after two tokens: the third position (garbage) is ignored and the
    # second bootstraps from 0. gamma 0.9, lambda 0.5:
    # A1 = 1.0 - 0.2 = 0.8; A0 = (0.2 + 0.9 * 0.2 - 0.1) + 0.9 * 0.5 * 0.8 = 0.64.
    advantages, returns = compute_gae(
        torch.tensor([[0.2, 1.0, 5.0]]),
        torch.tensor([[0.1, 0.2, 9.0]]),
        torch.tensor([[1.0, 1.0, 0.0]]),
        gamma=0.9,
        lam=0.5,
    )
    assert advantages.tolist()[0] == pytest.approx([0.64, 0.8, 0.0])
    assert returns.tolist()[0] == pytest.approx([0.74, 1.0, 0.0])


def test_whiten_over_mask_only():
    values = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    out = whiten(values, mask)
    # mean 2, unbiased variance 1 over the three real tokens: (x - 2) / 1; padding stays 0.
    assert out.tolist()[0] == pytest.approx([-1.0, 0.0, 1.0, 0.0], abs=1e-6)
    assert float(masked_mean(out, mask)) == pytest.approx(0.0, abs=1e-7)


def test_clipped_policy_loss_matches_hand_computation():
    old = torch.zeros(1, 4)
    # ratios 1.5, 0.5, 1.1 and a masked-out token with a wild ratio
    logprobs = torch.log(torch.tensor([[1.5, 0.5, 1.1, 50.0]]))
    advantages = torch.tensor([[1.0, 1.0, -2.0, 3.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    loss, clip_fraction, approx_kl = clipped_policy_loss(logprobs, old, advantages, mask, 0.2)
    # token 1: max(-1.5, -1.2) = -1.2 (clipped); token 2: max(-0.5, -0.8) = -0.5;
    # token 3: max(2.2, 2.2) = 2.2. Mean (-1.2 - 0.5 + 2.2) / 3; one token of three clipped.
    assert float(loss) == pytest.approx(0.5 / 3, abs=1e-6)
    assert float(clip_fraction) == pytest.approx(1 / 3)
    expected_kl = 0.5 * (math.log(1.5) ** 2 + math.log(0.5) ** 2 + math.log(1.1) ** 2) / 3
    assert float(approx_kl) == pytest.approx(expected_kl, rel=1e-5)


def test_clipped_value_loss_matches_hand_computation():
    values = torch.tensor([[1.0, 0.0, 7.0]])
    old = torch.tensor([[0.5, 0.1, 0.0]])
    returns = torch.tensor([[2.0, -1.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    loss, clip_fraction = clipped_value_loss(values, old, returns, mask, 0.2)
    # token 1: V clipped to 0.7: max((1 - 2)^2, (0.7 - 2)^2) = 1.69 (clipped);
    # token 2: V = 0 inside [-0.1, 0.3]: 1.0. Loss 0.5 * (1.69 + 1) / 2.
    assert float(loss) == pytest.approx(0.5 * (1.69 + 1.0) / 2, abs=1e-6)
    assert float(clip_fraction) == pytest.approx(0.5)


def test_prompt_batches_cover_every_prompt_once_per_pass():
    n, batch = 10, 4
    stream = [i for step in range(1, 6) for i in prompt_batch(n, batch, seed=3, step=step)]
    assert sorted(stream[:10]) == list(range(10))  # first pass
    assert sorted(stream[10:20]) == list(range(10))  # second pass, reshuffled
    assert stream[:10] != stream[10:20]
    assert prompt_batch(n, batch, seed=3, step=2) == stream[4:8]  # a function of the step


def test_queries_are_prefixes_of_sampled_token_length(task):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(task["base"])
    queries = build_queries(task["prompts"], tokenizer, 2, 4, seed=0)
    lines = [json.loads(line) for line in task["prompts"].read_text().splitlines()]
    assert len(queries) == len(lines)
    lengths = set()
    for query, line in zip(queries, lines, strict=True):
        full = tokenizer(line["prompt"])["input_ids"]
        assert 2 <= len(query.ids) <= 4 or query.ids == full  # short prompts stay whole
        assert query.ids == full[: len(query.ids)]
        assert line["prompt"].startswith(query.text)
        assert tokenizer(query.text)["input_ids"] == query.ids
        assert query.columns == {"prompt_id": line["prompt_id"], "language": "en"}
        lengths.add(len(query.ids))
    assert lengths == {2, 3, 4}  # the draw covers the range
    again = build_queries(task["prompts"], tokenizer, 2, 4, seed=0)
    assert [q.ids for q in again] == [q.ids for q in queries]  # same seed, same queries


# -- PPO on the known-reward task -------------------------------------------------------------


def test_toxicity_filter_reads_raw_rtp_lines_and_drops_unscored(task, tmp_path):
    """TRL recipe: keep prompts with prompt.toxicity > 0.3; a missing score is not a 0."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(task["base"])
    lines = [
        {"filename": "a", "prompt": {"text": "the cat sat on", "toxicity": 0.9},
         "continuation": {"text": " the mat", "toxicity": 0.1}},
        {"filename": "b", "prompt": {"text": "the dog ran", "toxicity": 0.3}},  # not above
        {"filename": "c", "prompt": {"text": "a big red tree", "toxicity": None}},  # unscored
        {"prompt": "very rude and bad", "prompt_toxicity": 0.5,
         "prompt_toxicity_scale": "perspective 0-1"},  # a prepared line
    ]  # fmt: skip
    path = tmp_path / "rtp.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    kept = build_queries(path, tokenizer, 8, 8, seed=0, toxicity_above=0.3)
    assert [q.text for q in kept] == ["the cat sat on", "very rude and bad"]
    assert kept[0].columns["prompt_toxicity"] == 0.9 and "continuation" not in kept[0].columns
    assert len(build_queries(path, tokenizer, 8, 8, seed=0)) == 4  # no filter: every prompt
    with pytest.raises(DataError, match=r"rtp\.jsonl: no prompt has a toxicity above .*0\.95 "
                                        r"\(4 read, 1 without a score\)"):  # fmt: skip
        build_queries(path, tokenizer, 8, 8, seed=0, toxicity_above=0.95)
    rtp_lx = tmp_path / "lx.jsonl"
    rtp_lx.write_text(json.dumps({"prompt": "the cat", "prompt_toxicity": 3.0,
                                  "prompt_toxicity_scale": "rtp-lx 1-5"}) + "\n")  # fmt: skip
    with pytest.raises(DataError, match=r"lx\.jsonl:1: prompt_toxicity is on the 'rtp-lx 1-5'"):
        build_queries(rtp_lx, tokenizer, 8, 8, seed=0, toxicity_above=0.3)


def _mean(values):
    return sum(values) / len(values)


# e2e: a training run long enough to learn the task (the slowest tests here).
@pytest.mark.e2e
def test_ppo_raises_known_reward_with_bounded_kl(task, tmp_path):
    config = rl_config(max_steps=24)
    out = tmp_path / "ppo"
    summary = train_ppo(
        task["base"], task["prompts"], out, config,
        training=training_config(), reward_fn=count_target(task["target"]), resume=False,
        progress=False,
    )  # fmt: skip
    log = read_log(out)
    assert [r["step"] for r in log] == list(range(1, 25))
    first = _mean([r["reward_mean"] for r in log[:5]])
    last = _mean([r["reward_mean"] for r in log[-5:]])
    # Uniform sampling gives ~0.3 target tokens per 6–10-token completion; the policy learns
    # to emit several.
    assert first < 1.5
    assert last > first + 2.0
    # Stated bound: the KL penalty (beta 0.2) keeps the per-sequence KL under 25 nats
    # (the reward is at most 10, so the KL-regularised optimum has KL <= 10 / 0.2 = 50).
    assert max(r["kl"] for r in log) < 25.0
    for record in log:
        for key in ("policy_loss", "value_loss", "entropy", "clip_fraction", "kl_coef"):
            assert math.isfinite(record[key]), key
        # Adaptive control: the coefficient rises when the KL is above target, falls below.
        if record["kl"] > 6.0:
            assert record["kl_coef_next"] > record["kl_coef"]
        elif record["kl"] < 6.0:
            assert record["kl_coef_next"] < record["kl_coef"]
    assert summary["steps"] == 24
    assert summary["reward_mean_last"] > summary["reward_mean_first"]
    for name in ("adapter_config.json", "adapter_model.safetensors", VALUE_HEAD_FILE,
                 "tokenizer.json", "base_config.json", "train_summary.json"):  # fmt: skip
        assert (out / name).is_file(), name
    assert not (out / "checkpoints").exists()

    # A stronger KL penalty keeps the policy closer to the reference.
    strong = rl_config(max_steps=24, ppo={"init_kl_coef": 2.0, "adaptive_kl": False})
    out_strong = tmp_path / "ppo_strong_kl"
    train_ppo(
        task["base"], task["prompts"], out_strong, strong, training=training_config(),
        reward_fn=count_target(task["target"]), resume=False, progress=False,
    )  # fmt: skip
    strong_log = read_log(out_strong)
    assert all(r["kl_coef"] == 2.0 for r in strong_log)
    assert _mean([r["kl"] for r in strong_log[-8:]]) < _mean([r["kl"] for r in log[-8:]])


class _Crash(RuntimeError):
    pass


def _tensors(folder: Path) -> dict[str, torch.Tensor]:
    files = sorted(folder.glob("*.safetensors"))
    assert files
    return {f"{f.name}:{k}": v for f in files for k, v in load_file(str(f)).items()}


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["lora", "full"])
def test_ppo_resume_continues_and_matches_uninterrupted_run(task, tmp_path, mode):
    config = rl_config(max_steps=6, save_steps=2)
    training = training_config(mode=mode)
    reward = count_target(task["target"])

    straight = tmp_path / "straight"
    train_ppo(task["base"], task["prompts"], straight, config, training=training, reward_fn=reward,
              progress=False)  # fmt: skip

    # Crash inside step 5 (its reward call): checkpoints of steps 2 and 4 exist, no output.
    calls = {"n": 0}

    def crashing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise _Crash("preempted")
        return reward(*args, **kwargs)

    out = tmp_path / "resumed"
    checkpoints = tmp_path / "resumed.checkpoints"  # beside the output: survives its rewrite
    with pytest.raises(_Crash):
        train_ppo(task["base"], task["prompts"], out, config, training=training,
                  reward_fn=crashing, progress=False)  # fmt: skip
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-2", "step-4"]
    assert not out.exists()

    steps_run: list[int] = []
    summary = train_ppo(
        task["base"], task["prompts"], out, config, training=training, reward_fn=reward,
        progress=False,
        on_step=lambda record: steps_run.append(record["step"]),
    )  # fmt: skip
    assert steps_run == [5, 6]  # continued after the newest checkpoint
    assert summary["resumed_from_step"] == 4
    log = read_log(out)
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]  # each step once
    assert log == read_log(straight)
    # Exact on CPU: every step reseeds from (seed, step); weights, Adam state, KL controller
    # and generator states come back bit for bit.
    expected, got = _tensors(straight), _tensors(out)
    assert expected.keys() == got.keys()
    for name, tensor in expected.items():
        assert torch.equal(tensor, got[name]), name
    assert not checkpoints.exists()


@pytest.mark.slow
def test_resume_refuses_changed_hyperparameters(task, tmp_path):
    config = rl_config(max_steps=4, save_steps=2)
    out = tmp_path / "run"
    reward = count_target(task["target"])
    calls = {"n": 0}

    def crashing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise _Crash("preempted")
        return reward(*args, **kwargs)

    with pytest.raises(_Crash):
        train_ppo(task["base"], task["prompts"], out, config, training=training_config(),
                  reward_fn=crashing, progress=False)  # fmt: skip
    changed = rl_config(max_steps=4, save_steps=2, ppo={"learning_rate": 1e-4})
    with pytest.raises(ConfigError, match=r"rl\.ppo\.learning_rate: differs .*step-2"):
        train_ppo(task["base"], task["prompts"], out, changed, training=training_config(),
                  reward_fn=reward, progress=False)  # fmt: skip
    # max_steps may change; resume=False starts over and clears the old checkpoints.
    summary = train_ppo(
        task["base"], task["prompts"], out, changed, training=training_config(),
        reward_fn=reward, resume=False, progress=False,
    )  # fmt: skip
    assert summary["resumed_from_step"] == 0
    assert [r["step"] for r in read_log(out)] == [1, 2, 3, 4]


def test_unscored_completions_are_left_out_not_zeroed(task, tmp_path):
    def half_unscored(prompts, completions, completion_ids, **kwargs):
        return [None if i % 2 else 1.0 for i in range(len(completions))]

    out = tmp_path / "half"
    train_ppo(task["base"], task["prompts"], out, rl_config(max_steps=2),
              training=training_config(), reward_fn=half_unscored, progress=False)  # fmt: skip
    log = read_log(out)
    assert all(r["n_scored"] == 8 and r["n_unscored"] == 8 for r in log)
    assert all(r["reward_mean"] == 1.0 for r in log)  # the mean of the scored ones only

    def none_scored(prompts, completions, **kwargs):
        return [None] * len(completions)

    out = tmp_path / "none"
    summary = train_ppo(task["base"], task["prompts"], out, rl_config(max_steps=2),
                        training=training_config(mode="full"), reward_fn=none_scored,
                        progress=False)  # fmt: skip
    log = read_log(out)
    assert all(r["reward_mean"] is None and "policy_loss" not in r for r in log)
    assert "reward_mean_last" not in summary  # missing, not 0
    # Nothing was learned: the saved policy equals the base.
    base = load_file(str(task["base"] / "model.safetensors"))
    saved = load_file(str(out / "model.safetensors"))
    for name, tensor in base.items():
        assert torch.equal(tensor, saved[name]), name


# -- bad input --------------------------------------------------------------------------------


def test_bad_prompt_line_names_file_and_line(task, tmp_path):
    prompts = tmp_path / "bad.jsonl"
    prompts.write_text('{"prompt": "the cat"}\n{"text": "no prompt"}\n', encoding="utf-8")
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"bad\.jsonl:2: missing field\(s\) 'prompt'"):
        train_ppo(task["base"], prompts, out, rl_config(), reward_fn=count_target(0))
    prompts.write_text('{"prompt": "the cat"}\n{"prompt": "   "}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.jsonl:2: field 'prompt' is empty"):
        train_ppo(task["base"], prompts, out, rl_config(), reward_fn=count_target(0))
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [prompts]


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"rl\.min_new_tokens \(30\)"):
        check_rl_config(rl_config(min_new_tokens=30, max_new_tokens=29))
    with pytest.raises(ConfigError, match=r"rl\.query_min_tokens"):
        check_rl_config(rl_config(query_min_tokens=5, query_max_tokens=4))
    with pytest.raises(ConfigError, match=r"rl\.ppo\.batch_size \(10\).*mini_batch_size"):
        check_rl_config(rl_config(ppo={"batch_size": 10, "mini_batch_size": 4}))
    with pytest.raises(ConfigError, match=r"rl\.online\.num_generations"):
        online = {"per_device_train_batch_size": 6, "num_generations": 4}
        check_rl_config(rl_config(online=online), "rloo")
    with pytest.raises(ConfigError, match=r"training\.method: online RL runs .*'dpo'"):
        check_rl_config(rl_config(), "dpo")


# -- TRL RLOO / GRPO ----------------------------------------------------------------------------


def online_config(**overrides) -> RLConfig:
    online = {"learning_rate": 3e-3, "per_device_train_batch_size": 16, "num_generations": 4}
    return rl_config(online=online, **overrides)


@pytest.mark.e2e
def test_rloo_raises_known_reward(task, tmp_path):
    out = tmp_path / "rloo"
    summary = train_online(
        task["base"], task["prompts"], out, online_config(max_steps=12),
        training=training_config("rloo"), reward_funcs=count_target(task["target"]),
        progress=False,
    )  # fmt: skip
    rewards = [e["reward"] for e in read_log(out) if "reward" in e]
    assert len(rewards) == 12
    assert _mean(rewards[-3:]) > _mean(rewards[:3]) + 1.5
    assert summary["steps"] == 12 and summary["reward_last"] == rewards[-1]
    assert (out / "adapter_model.safetensors").is_file()
    assert (out / "base_config.json").is_file()
    assert not (tmp_path / "rloo.checkpoints").exists()


class _LengthScorer:
    """A stand-in scorer: TOXICITY = share of the word 'rude'; None for empty texts."""

    def __init__(self):
        self.languages: list[str] = []

    def score_batch(self, texts, languages):
        self.languages.extend(languages)
        out = []
        for text in texts:
            words = text.split()
            out.append({"TOXICITY": words.count("rude") / len(words) if words else None})
        return out


@pytest.mark.slow
def test_grpo_runs_with_scorer_reward_and_language_column(task, tmp_path):
    scorer = _LengthScorer()
    out = tmp_path / "grpo"
    summary = train_online(
        task["base"], task["prompts"], out, online_config(max_steps=2),
        training=training_config("grpo"), reward_funcs=ScorerReward(scorer), progress=False,
    )  # fmt: skip
    assert summary["steps"] == 2
    assert "reward_last" in summary
    assert scorer.languages and set(scorer.languages) == {"en"}  # the prompts' column
    assert (out / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_rloo_resumes_from_its_newest_checkpoint(task, tmp_path):
    config = online_config(max_steps=4, save_steps=2)
    training = training_config("rloo")
    reward = count_target(task["target"])
    calls = {"n": 0}

    def crashing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # one generation per step: inside step 4
            raise _Crash("preempted")
        return reward(*args, **kwargs)

    out = tmp_path / "rloo"
    with pytest.raises(_Crash):
        train_online(task["base"], task["prompts"], out, config, training=training,
                     reward_funcs=crashing, progress=False)  # fmt: skip
    assert (tmp_path / "rloo.checkpoints" / "checkpoint-2").is_dir()
    assert not out.exists()
    calls["n"] = 0
    summary = train_online(task["base"], task["prompts"], out, config, training=training,
                           reward_funcs=crashing, progress=False)  # fmt: skip
    assert calls["n"] == 2  # steps 3 and 4 only
    assert summary["steps"] == 4
    steps = [e["step"] for e in read_log(out) if "reward" in e]
    assert steps == [1, 2, 3, 4]
