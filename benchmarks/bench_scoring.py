"""Scoring throughput: the classifier scorer's texts/s, the Perspective scorer's achieved rate.

    python benchmarks/bench_scoring.py                          # CPU: tiny classifier, qps 5, 20
    python benchmarks/bench_scoring.py --only classifier --random-arch xlmr-large \\
        --n-texts 8192 --batch-sizes 64 256                      # on a GPU machine

Classifier (``components/score/classifier.py``): a randomly initialised XLM-R-shaped sequence
classifier (``--random-arch tiny``, or ``xlmr-large``: the shape of
``textdetox/xlmr-large-toxicity-classifier``, 560M parameters) with a word-level tokenizer of
the same vocabulary size, scoring synthetic 20-word continuations (XG's generations are 20
tokens). Texts/s: median of ``--repeats`` timed passes over all texts after one untimed pass
(the first calls of each tensor shape are slow on CPU); load time is reported apart.
Random weights cost what trained ones cost: throughput depends on shape and length only.

Perspective (``components/score/perspective.py``) against the local server of the tests
(``tests/fakes/perspective_server.py``), which enforces a quota of exactly the configured qps
(429 above it): for each ``--qps``, ``qps × --seconds`` distinct texts. Reported: the achieved
rate as the quota sees it (server arrival times: items after the first batch ÷ time from the
first to the last arrival), its ratio to the configured qps (goal ≥ 0.95), 429s received, and
loss (texts without every score, or with a score that is not the server's for that text:
goal 0). ``--hostile`` adds a run with injected 5xx (10% of first attempts) and slow replies.

Results go to ``--output`` as JSON with a description of the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
for path in (REPO, REPO / "tests" / "fakes"):
    if str(path) not in sys.path:  # run as a script from a checkout
        sys.path.insert(0, str(path))

ARCHS: dict[str, dict[str, Any]] = {
    "tiny": {
        "vocab_size": 8002, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 128, "max_position_embeddings": 514,
    },
    # textdetox/xlmr-large-toxicity-classifier's shape (XLM-R large).
    "xlmr-large": {
        "vocab_size": 250002, "hidden_size": 1024, "num_hidden_layers": 24,
        "num_attention_heads": 16, "intermediate_size": 4096, "max_position_embeddings": 514,
    },
}  # fmt: skip
KEY = "bench-key"


# --------------------------------------------------------------------------- classifier
def words() -> list[str]:
    from xdetox.toy import toy_corpus_path

    found: set[str] = set()
    for line in toy_corpus_path().read_text(encoding="utf-8").splitlines():
        found.update(json.loads(line)["text"].split())
    return sorted(found)


def build_classifier(arch: str, folder: Path) -> int:
    """A random XLM-R sequence classifier of ``arch``'s shape; returns its parameter count."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import (
        PreTrainedTokenizerFast,
        XLMRobertaConfig,
        XLMRobertaForSequenceClassification,
    )

    spec = ARCHS[arch]
    tokens = ["<s>", "<pad>", "</s>", "<unk>", *words()]
    tokens += [f"<w{i}>" for i in range(spec["vocab_size"] - len(tokens))]
    backend = Tokenizer(models.WordLevel({t: i for i, t in enumerate(tokens)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        pad_token="<pad>", model_max_length=512,
    ).save_pretrained(folder)  # fmt: skip
    config = XLMRobertaConfig(
        **spec, pad_token_id=1, bos_token_id=0, eos_token_id=2,
        id2label={0: "neutral", 1: "toxic"}, label2id={"neutral": 0, "toxic": 1},
    )  # fmt: skip
    torch.manual_seed(0)
    model = XLMRobertaForSequenceClassification(config)
    model.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def synthetic_texts(n: int, seed: int = 0, length: int = 20) -> list[str]:
    rng = random.Random(seed)
    vocabulary = words()
    return [" ".join(rng.choices(vocabulary, k=length)) for _ in range(n)]


def bench_classifier(args: argparse.Namespace) -> list[dict[str, Any]]:
    import torch

    from xdetox.components.score.classifier import ClassifierScorer
    from xdetox.config.scoring import ClassifierConfig

    results = []
    with tempfile.TemporaryDirectory(prefix="xdetox-bench-clf-") as tmp:
        folder = Path(tmp) / args.random_arch
        n_params = build_classifier(args.random_arch, folder)
        texts = synthetic_texts(args.n_texts)
        for batch_size in args.batch_sizes:
            config = ClassifierConfig(model=str(folder), batch_size=batch_size)
            scorer = ClassifierScorer(config)
            start = time.perf_counter()
            scorer.score_batch(texts[:batch_size], ["en"] * batch_size)  # load
            load_s = time.perf_counter() - start
            # One untimed pass: the first calls of each tensor shape are slow on CPU.
            scorer.score_batch(texts, ["en"] * len(texts))
            timings = []
            for _ in range(args.repeats):
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                start = time.perf_counter()
                scores = scorer.score_batch(texts, ["en"] * len(texts))
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                timings.append(time.perf_counter() - start)
            seconds = statistics.median(timings)
            assert all(s["TOXICITY"] is not None for s in scores)
            results.append({
                "arch": args.random_arch, "parameters_m": round(n_params / 1e6, 1),
                "device": scorer.device, "batch_size": batch_size, "n_texts": len(texts),
                "words_per_text": 20, "load_s": round(load_s, 2), "repeats": args.repeats,
                "median_seconds": round(seconds, 3), "texts_per_s": round(len(texts) / seconds, 1),
                "best_texts_per_s": round(len(texts) / min(timings), 1),
            })  # fmt: skip
            print(f"classifier {args.random_arch} batch {batch_size} on {scorer.device}: "
                  f"{results[-1]['texts_per_s']} texts/s")  # fmt: skip
            scorer.close()
    return results


# --------------------------------------------------------------------------- perspective
def bench_perspective(qps: float, seconds: float, hostile: bool) -> dict[str, Any]:
    from perspective_server import Behaviour, PerspectiveServer, expected_score, text_hash

    from xdetox.components.score.perspective import PerspectiveScorer
    from xdetox.records import ATTRIBUTES

    n = round(qps * seconds)
    texts = [f"benchmark text {i} at {qps} qps" for i in range(n)]
    batch = min(50, max(1, round(qps)))
    behaviour = Behaviour(key=KEY, quota_qps=qps, quota_burst=batch)
    if hostile:
        behaviour.inject_5xx = lambda text, attempt: text_hash(text) % 10 == 0 and attempt == 1
        behaviour.slow = lambda text, attempt: text_hash(text) % 50 == 1 and attempt == 1
        behaviour.slow_seconds = 3.0
    os.environ["PERSPECTIVE_API_KEY"] = KEY
    with (
        tempfile.TemporaryDirectory(prefix="xdetox-bench-persp-") as cache,
        PerspectiveServer(behaviour) as server,
    ):
        scorer = PerspectiveScorer(ATTRIBUTES, qps=qps, discovery_url=server.discovery_url,
                                   cache_dir=cache, timeout=2.0, retry_initial_delay=0.5,
                                   retry_max_delay=5.0)  # fmt: skip
        scorer._client()  # discovery is not part of the rate
        start = time.perf_counter()
        results = scorer.score_items(texts, ["en"] * n)
        wall = time.perf_counter() - start
        stats = dict(scorer.stats)
        scorer.close()
        arrivals = sorted(i.time for i in server.state.items)
        statuses = [i.status for i in server.state.items]
    lost = sum(
        any(r.scores[a] != expected_score(t, a) for a in ATTRIBUTES)
        for t, r in zip(texts, results, strict=True)
    )
    steady = (len(arrivals) - batch) / (arrivals[-1] - arrivals[0])
    row = {
        "qps": qps, "hostile": hostile, "n_texts": n, "api_batch_size": batch,
        "wall_s": round(wall, 2), "throughput_per_s": round(n / wall, 3),
        "items_sent": len(arrivals), "achieved_rate": round(steady, 3),
        "achieved_over_qps": round(steady / qps, 3), "http_429": statuses.count(429),
        "http_5xx": sum(s >= 500 for s in statuses), "timeouts": stats.get("timeouts", 0),
        "lost_or_wrong": lost,
    }  # fmt: skip
    print(f"perspective qps {qps}{' hostile' if hostile else ''}: achieved {row['achieved_rate']}"
          f"/s (×{row['achieved_over_qps']}), 429s {row['http_429']}, lost {lost}")  # fmt: skip
    return row


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
    return {
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("classifier", "perspective"))
    parser.add_argument("--random-arch", choices=sorted(ARCHS), default="tiny")
    parser.add_argument("--n-texts", type=int, default=2048)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--repeats", type=int, default=3, help="timed passes (median reported)")
    parser.add_argument("--qps", type=float, nargs="+", default=[5.0, 20.0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per perspective run")
    parser.add_argument("--hostile", action="store_true", help="add a run with 5xx and slow")
    parser.add_argument("--output", type=Path, help="JSON results (default: print only)")
    args = parser.parse_args(argv)

    report: dict[str, Any] = {"classifier": [], "perspective": []}
    if args.only in (None, "classifier"):
        report["classifier"] = bench_classifier(args)
    if args.only in (None, "perspective"):
        for qps in args.qps:
            report["perspective"].append(bench_perspective(qps, args.seconds, hostile=False))
        if args.hostile:
            report["perspective"].append(bench_perspective(args.qps[-1], args.seconds, True))
    report["machine"] = machine()
    text = json.dumps(report, indent=2)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n", encoding="utf-8")
        print(f"→ {args.output}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
