"""Run a pipeline on KFP's local runner and lay its outputs out as one readable run folder.

KFP writes each task's artifacts under ``<run>/kfp/<pipeline-run>/<task>/<output>``. After the
run we link the ones people open (models, generations, scores, metrics.csv, report.html) into
``<run>/`` by name; hard links for files, relative symlinks for model folders, so nothing is
copied twice and the folder can be moved as a whole.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from kfp import local

from pipelines.detox import build_detox_pipeline
from xdetox.config import Config

# kfp.local's SubprocessRunner runs at most this many ParallelFor iterations at once.
_LOCAL_PARALLEL_TASKS = 2
# Task folder name (KFP's task name) → name of the model folder in the run folder.
_MODEL_TASKS = {"load-model": "base", "dpo": "{method}-adapter", "merge": "{method}"}


@dataclass
class LocalRun:
    run_dir: Path
    report: Path
    metrics_csv: Path
    seconds: float
    files: dict[str, Path] = field(default_factory=dict)


def _link_file(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.unlink(missing_ok=True)
    try:
        os.link(src, dest)
    except OSError:  # another filesystem: fall back to a copy
        import shutil

        shutil.copy2(src, dest)


def _link_dir(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_symlink() or dest.exists():
        dest.unlink()
    dest.symlink_to(os.path.relpath(src, dest.parent), target_is_directory=True)


def _executor_outputs(kfp_root: Path):
    for path in sorted(kfp_root.rglob("executor_output.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        for name, entry in (data.get("artifacts") or {}).items():
            for artifact in entry.get("artifacts", []):
                yield path.parent.name, name, artifact


def organise_run_folder(run_dir: Path, kfp_root: Path, method: str) -> dict[str, Path]:
    """Link models, generations and scores from KFP's task folders into ``run_dir``."""
    files: dict[str, Path] = {}
    for task, _output, artifact in _executor_outputs(kfp_root):
        uri = Path(artifact.get("uri", ""))
        meta = artifact.get("metadata") or {}
        kind = meta.get("xdetox_kind")
        if kind in ("generations", "scores") and uri.is_file():
            dest = run_dir / kind / f"{meta.get('model')}_{meta.get('language')}.jsonl"
            _link_file(uri, dest)
            files[f"{kind}/{dest.name}"] = dest
        elif task in _MODEL_TASKS and uri.is_dir():
            dest = run_dir / "models" / _MODEL_TASKS[task].format(method=method)
            _link_dir(uri, dest)
            files[f"models/{dest.name}"] = dest
    return files


def run_local(config: Config, run_dir: str | Path) -> LocalRun:
    """Run the detox pipeline with KFP's SubprocessRunner in this interpreter."""
    run_dir = Path(run_dir).resolve()
    kfp_root = run_dir / "kfp"
    kfp_root.mkdir(parents=True, exist_ok=True)
    # Components run as subprocesses of this one, two at a time inside ParallelFor. Torch's
    # default of one thread per core then oversubscribes the machine: on 2 cores DPO on the
    # toy model ran at 2 s/step with 2 threads per task and 0.1 s/step with 1.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    threads = max(1, (os.cpu_count() or 2) // _LOCAL_PARALLEL_TASKS)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    os.environ.setdefault("MKL_NUM_THREADS", str(threads))
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(kfp_root),
        raise_on_error=True,
    )
    start = time.monotonic()
    task = build_detox_pipeline(config)()
    seconds = time.monotonic() - start
    report_src = Path(task.outputs["report"].path)
    metrics_src = Path(task.outputs["metrics"].path)
    files = organise_run_folder(run_dir, kfp_root, config.training.method)
    report, metrics_csv = run_dir / "report.html", run_dir / "metrics.csv"
    _link_file(report_src, report)
    _link_file(metrics_src, metrics_csv)
    return LocalRun(run_dir, report, metrics_csv, seconds, files)
