"""Training throughput: DPO and PPO, each against a naive baseline measured in the same run.

    python benchmarks/bench_train.py                         # toy model, toy data, CPU
    python benchmarks/bench_train.py --random-arch qwen2-0.5b --dpo-steps 30 --ppo-steps 5
                                                             # on a GPU machine
    python benchmarks/bench_train.py --model gemma3-270m --pairs RUN/pairs --cases dpo-lora \
        dpo-lora-precompute --dpo-steps 6 --batch-size 4      # a real model on its own pairs

Cases (each in its own child process, so that peak memory is that case's alone):

* ``dpo-lora``: TRL's default, the baseline: the reference log-probabilities are computed at every
  step by a second forward pass (the policy with its adapters disabled).
* ``dpo-lora-precompute``: ``training.precompute_ref_log_probs``: the reference pass over the
  whole training set once, up front; each step then does the policy's forward/backward only.
* ``dpo-full``: full fine-tuning (every weight trained, a frozen copy as the reference).
* ``ppo-lora`` / ``ppo-full``: the compact PPO (rollout, scoring, 4 PPO epochs per batch) with
  LoRA (reference = adapters disabled) and with full fine-tuning (reference = a frozen copy).

Measured: samples/s and tokens/s over the training loop (TRL's ``train_runtime``; PPO's steps),
and end to end (model load, tokenisation and any precomputation included), the median over
``--repeat`` runs taken in rounds over the cases; peak memory
(``ru_maxrss`` of the child on CPU, ``torch.cuda.max_memory_allocated`` on GPU). DPO samples are
preference pairs; DPO tokens are those of prompt+chosen and prompt+rejected (after truncation to
``max_length``), the data set's mean per pair times the pairs seen. PPO samples are rollouts;
PPO tokens are generated tokens. Ratios: each case's loop samples/s over its baseline's
(``dpo-lora`` for DPO cases, ``ppo-lora`` for PPO cases).

No download: ``--random-arch`` builds a randomly initialised model of a real architecture from
its config (with a word-level tokenizer), otherwise the toy model (``xdetox.toy``) is used.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from a checkout without an editable install
    sys.path.insert(0, str(REPO))

DPO_CASES = ("dpo-lora", "dpo-lora-precompute", "dpo-full")
PPO_CASES = ("ppo-lora", "ppo-full")
CASES = DPO_CASES + PPO_CASES
BASELINE = {"dpo": "dpo-lora", "ppo": "ppo-lora"}
RANDOM_ARCHS: dict[str, dict[str, Any]] = {
    "qwen2-0.5b": {
        "model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864,
        "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
        "max_position_embeddings": 4096, "vocab_size": 151936, "tie_word_embeddings": True,
        "rope_theta": 1000000.0, "rms_norm_eps": 1e-6,
    },
    "gpt2-small": {
        "model_type": "gpt2", "n_layer": 12, "n_head": 12, "n_embd": 768, "n_positions": 1024,
        "vocab_size": 50257,
    },
}  # fmt: skip


# --------------------------------------------------------------------------- inputs


def build_random_model(arch: str, folder: Path) -> Path:
    """Random weights of ``arch`` and a word-level tokenizer of its vocabulary size."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

    from xdetox.toy import toy_corpus_path

    spec = dict(RANDOM_ARCHS[arch])
    model_type = spec.pop("model_type")
    words: set[str] = set()
    for line in toy_corpus_path().read_text(encoding="utf-8").splitlines():
        words.update(json.loads(line)["text"].split())
    tokens = ["<eos>", "<unk>", *sorted(words)]
    tokens += [f"<w{i}>" for i in range(spec["vocab_size"] - len(tokens))]
    backend = Tokenizer(models.WordLevel({t: i for i, t in enumerate(tokens)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>").save_pretrained(folder)
    config = AutoConfig.for_model(model_type, bos_token_id=0, eos_token_id=0, **spec)
    torch.manual_seed(0)
    # fp32 weights, as the training recipes load them (bf16 autocast is a recipe setting).
    AutoModelForCausalLM.from_config(config, dtype=torch.float32).save_pretrained(folder)
    return folder


def prepare_inputs(args: argparse.Namespace, workdir: Path) -> dict[str, str]:
    """Model folder, prepared toy pairs and the toy prompts (built once, shared by the cases)."""
    from xdetox.components.prepare_data.preference_data import prepare_pairs
    from xdetox.config import DataConfig
    from xdetox.models import TOY_MODEL, resolve_model
    from xdetox.toy import toy_prompts_path

    if args.random_arch:
        model_dir = build_random_model(args.random_arch, workdir / args.random_arch)
        model_name = f"random {args.random_arch}"
    elif args.model:  # any model source: a packaged real model, a folder, gs://, a Hub id
        model_dir, model_name = resolve_model(args.model), args.model
    else:
        model_dir, model_name = resolve_model(TOY_MODEL), "toy GPT-2 (xdetox.toy)"
    if args.pairs:  # a prepared pairs folder (train.jsonl), e.g. what make-pairs wrote
        pairs = Path(args.pairs)
        if not (pairs / "train.jsonl").is_file():
            raise SystemExit(f"--pairs {pairs}: no train.jsonl (a prepared pairs folder)")
    else:
        pairs = workdir / "pairs"
        prepare_pairs("toy", pairs, DataConfig(eval_fraction=0.0), tokenizer_source=model_dir,
                      progress=False)  # fmt: skip
    return {"model": str(model_dir), "model_name": model_name, "pairs": str(pairs),
            "prompts": str(toy_prompts_path())}  # fmt: skip


# --------------------------------------------------------------------------- one case (child)


def peak_memory_mib() -> tuple[float, str]:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20, "cuda max_memory_allocated"
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "ru_maxrss (CPU RSS)"


def dpo_tokens_per_pair(model_dir: str, pairs: str, max_length: int) -> float:
    """Mean tokens a DPO step processes per pair: prompt+chosen and prompt+rejected, truncated."""
    from transformers import AutoTokenizer

    from xdetox.files import read_jsonl

    tok = AutoTokenizer.from_pretrained(model_dir)
    rows = read_jsonl(Path(pairs) / "train.jsonl")
    total = 0
    for row in rows:
        prompt = len(tok(row["prompt"])["input_ids"])
        for answer in (row["chosen"], row["rejected"]):
            answer_len = len(tok(answer, add_special_tokens=False)["input_ids"]) + 1  # + EOS
            total += min(prompt + answer_len, max_length)
    return total / len(rows)


def run_dpo_case(case: str, inputs: dict[str, str], args: argparse.Namespace, out: Path) -> dict:
    from xdetox.components.train.dpo.train_dpo import train_dpo
    from xdetox.config import TrainingConfig

    config = TrainingConfig(
        mode="full" if case == "dpo-full" else "lora",
        precompute_ref_log_probs=case == "dpo-lora-precompute",
        learning_rate=1e-5, warmup_steps=0, optim="adamw_torch", max_steps=args.dpo_steps,
        per_device_train_batch_size=args.batch_size, logging_steps=max(1, args.dpo_steps),
        save_steps=10**6, early_stopping_patience=0, gradient_checkpointing=False,
        max_prompt_length=64, max_length=128, bf16=args.bf16,
        lora={"r": 16, "alpha": 32, "dropout": 0.0},
    )  # fmt: skip
    summary = train_dpo(inputs["model"], inputs["pairs"], out, config, progress=False)
    log = [json.loads(x) for x in (out / "training_log.jsonl").read_text().splitlines()]
    loop_s = next(e["train_runtime"] for e in log if "train_runtime" in e)
    pairs = summary["steps"] * args.batch_size
    per_pair = dpo_tokens_per_pair(inputs["model"], inputs["pairs"], config.max_length)
    return {"samples": pairs, "tokens": pairs * per_pair, "loop_s": loop_s,
            "total_s": summary["wall_time_s"], "steps": summary["steps"]}  # fmt: skip


def run_ppo_case(case: str, inputs: dict[str, str], args: argparse.Namespace, out: Path) -> dict:
    from xdetox.components.train.ppo import ppo_trainer
    from xdetox.config import RLConfig, TrainingConfig

    training = TrainingConfig(method="ppo", mode="full" if case == "ppo-full" else "lora",
                              lora={"r": 16, "alpha": 32, "dropout": 0.0})  # fmt: skip
    rl = RLConfig.model_validate({
        "max_steps": args.ppo_steps, "save_steps": 10**6,
        "reward": {"kind": "scorer"},  # the offline lexicon scorer: no download
        "ppo": {"batch_size": args.ppo_batch_size, "mini_batch_size": args.ppo_batch_size // 4},
    })  # fmt: skip
    # Time each PPO step (rollout, scoring, reference/value passes, the updates) and nothing
    # else: this child process exits afterwards, so wrapping the method here is harmless.
    durations: list[float] = []
    original = ppo_trainer.PPOTrainer.step

    def timed_step(self, step: int) -> dict:
        began = time.perf_counter()
        record = original(self, step)
        durations.append(time.perf_counter() - began)
        return record

    ppo_trainer.PPOTrainer.step = timed_step
    records: list[dict] = []
    summary = ppo_trainer.train_ppo(inputs["model"], inputs["prompts"], out, rl,
                                    training=training, progress=False,
                                    on_step=records.append)  # fmt: skip
    rollouts = len(records) * args.ppo_batch_size
    tokens = sum(r["response_length"] * args.ppo_batch_size for r in records)
    return {"samples": rollouts, "tokens": tokens, "loop_s": sum(durations),
            "total_s": summary["wall_time_s"], "steps": summary["steps"]}  # fmt: skip


def child(case: str, inputs_json: str, args: argparse.Namespace) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    inputs = json.loads(inputs_json)
    with tempfile.TemporaryDirectory(prefix=f"xdetox-bench-{case}-") as tmp:
        out = Path(tmp) / "out"
        runner = run_dpo_case if case.startswith("dpo") else run_ppo_case
        result = runner(case, inputs, args, out)
    peak, how = peak_memory_mib()
    result.update({"case": case, "peak_memory_mib": round(peak, 1), "memory_measure": how,
                   "torch_threads": torch.get_num_threads()})  # fmt: skip
    print("RESULT " + json.dumps(result))
    return 0


# --------------------------------------------------------------------------- parent


def run_case_process(case: str, inputs: dict[str, str], argv: Sequence[str]) -> dict:
    command = [sys.executable, __file__, "--child", case, "--inputs", json.dumps(inputs), *argv]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if result.returncode != 0:
        raise SystemExit(f"case {case} failed:\n{result.stderr[-4000:]}")
    line = next(x for x in reversed(result.stdout.splitlines()) if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def combine(runs: list[dict]) -> dict:
    """One case's repeated runs: the median loop and end-to-end times (other work on a shared
    machine slows some runs a lot), their spread, the largest peak memory."""
    loops = sorted(r["loop_s"] for r in runs)
    totals = sorted(r["total_s"] for r in runs)
    out = dict(runs[0])
    out.update({
        "repeats": len(runs),
        "loop_s": statistics.median(loops), "loop_s_runs": loops,
        "total_s": statistics.median(totals), "total_s_runs": totals,
        "peak_memory_mib": max(r["peak_memory_mib"] for r in runs),
    })  # fmt: skip
    return out


def finish(results: list[dict]) -> list[dict]:
    by_case = {r["case"]: r for r in results}
    for r in results:
        r["samples_per_s"] = r["samples"] / r["loop_s"]
        r["tokens_per_s"] = r["tokens"] / r["loop_s"]
        r["samples_per_s_end_to_end"] = r["samples"] / r["total_s"]
    for r in results:
        base = by_case.get(BASELINE[r["case"].split("-")[0]])
        r["ratio_vs_baseline"] = (
            round(r["samples_per_s"] / base["samples_per_s"], 3) if base else None
        )
        r["ratio_vs_baseline_end_to_end"] = (
            round(r["samples_per_s_end_to_end"] / base["samples_per_s_end_to_end"], 3)
            if base
            else None
        )
    return results


def table(results: Sequence[dict]) -> str:
    head = ("| case | steps | samples | loop s | samples/s | tokens/s | x baseline | "
            "end-to-end s | x baseline (e2e) | peak MiB |")  # fmt: skip
    lines = [head, "|" + "---|" * 10]
    for r in results:
        lines.append(
            f"| {r['case']} | {r['steps']:.0f} | {r['samples']:.0f} | {r['loop_s']:.2f} | "
            f"{r['samples_per_s']:.2f} | {r['tokens_per_s']:.0f} | {r['ratio_vs_baseline']} | "
            f"{r['total_s']:.1f} | {r['ratio_vs_baseline_end_to_end']} | "
            f"{r['peak_memory_mib']:.0f} |"
        )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    import torch
    import transformers
    import trl

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--random-arch", choices=sorted(RANDOM_ARCHS), help="random model from config")
    p.add_argument("--model", help="model source instead of the toy model (e.g. gemma3-270m)")
    p.add_argument("--pairs", help="prepared pairs folder (train.jsonl) instead of the toy pairs")
    p.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    p.add_argument("--dpo-steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=8, help="DPO pairs per step")
    p.add_argument("--ppo-steps", type=int, default=4)
    p.add_argument("--ppo-batch-size", type=int, default=16, help="PPO rollouts per step")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast for DPO (GPU)")
    p.add_argument("--repeat", type=int, default=1, help="runs per case (median reported)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own)")
    p.add_argument("--workdir", type=Path, help="where inputs are built (default: a temp dir)")
    p.add_argument("--output", type=Path, help="results JSON (default benchmarks/results/...)")
    p.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    p.add_argument("--inputs", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _child_argv(args: argparse.Namespace) -> list[str]:
    argv = [
        "--dpo-steps", str(args.dpo_steps), "--batch-size", str(args.batch_size),
        "--ppo-steps", str(args.ppo_steps), "--ppo-batch-size", str(args.ppo_batch_size),
    ]  # fmt: skip
    if args.bf16:
        argv.append("--bf16")
    if args.threads:
        argv += ["--threads", str(args.threads)]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(args.child, args.inputs, args)
    if args.ppo_batch_size % 4:
        raise SystemExit("--ppo-batch-size must be a multiple of 4 (mini-batches of a quarter)")
    with tempfile.TemporaryDirectory(prefix="xdetox-bench-train-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        inputs = prepare_inputs(args, workdir)
        print(f"model: {inputs['model_name']}")
        cases = [c for c in CASES if c in args.cases]
        runs: dict[str, list[dict]] = {c: [] for c in cases}
        # Rounds over all cases rather than one case repeated: a burst of load from other work
        # then falls on different cases instead of on all repeats of one.
        for round_ in range(args.repeat):
            for case in cases:
                print(f"round {round_ + 1}/{args.repeat}: {case} ...", flush=True)
                runs[case].append(run_case_process(case, inputs, _child_argv(args)))
    results = finish([combine(runs[c]) for c in cases])
    print(table(results))
    report = {
        "model": inputs["model_name"],
        "settings": {k: v for k, v in vars(args).items() if k not in ("child", "inputs")},
        "machine": machine(),
        "results": results,
    }
    name = args.random_arch or (Path(args.model).name if args.model else "toy-cpu")
    default = f"train-{name}.json"
    output = args.output or REPO / "benchmarks" / "results" / default
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"results → {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
