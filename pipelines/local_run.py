"""Run a pipeline on KFP's local runner and lay its outputs out as one readable run folder.

KFP writes each task's artifacts under ``<run>/kfp/<pipeline-run>/<task>/<output>``. After the
run we link the ones people open (models, generations, scores, metrics.csv, report.html) into
``<run>/`` by name; hard links for files, relative symlinks for model folders, so nothing is
copied twice and the folder can be moved as a whole.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from kfp import local

from xdetox.config import Config
from xdetox.errors import XdetoxError

# kfp.local's SubprocessRunner runs at most this many ParallelFor iterations at once.
_LOCAL_PARALLEL_TASKS = 2
# (KFP task name, output name) → file name in the run folder.
_REPORT_FILES = {
    ("report", "html"): "report.html",
    ("report", "metrics_csv"): "metrics.csv",
    ("report", "markdown"): "report.md",
    ("compare-with-baseline", "report"): "comparison.html",
    ("compare-with-baseline", "comparison"): "comparison.csv",
}


@dataclass
class LocalRun:
    run_dir: Path
    report: Path
    metrics_csv: Path
    seconds: float
    files: dict[str, Path] = field(default_factory=dict)


def link_file(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.unlink(missing_ok=True)
    try:
        os.link(src, dest)
    except OSError:  # another filesystem: fall back to a copy
        import shutil

        shutil.copy2(src, dest)


def link_dir(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_symlink() or dest.exists():
        dest.unlink()
    dest.symlink_to(os.path.relpath(src, dest.parent), target_is_directory=True)


def executor_outputs(kfp_root: Path):
    for path in sorted(kfp_root.rglob("executor_output.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        for name, entry in (data.get("artifacts") or {}).items():
            for artifact in entry.get("artifacts", []):
                yield path.parent.name, name, artifact


def organise_run_folder(
    run_dir: Path, kfp_root: Path, model_names: dict[str, str]
) -> dict[str, Path]:
    """Link models, generations, scores and reports from KFP's task folders into ``run_dir``.

    ``model_names`` maps a KFP task name (``load-model``, ``dpo``, ``merge``) to the folder name
    its model gets under ``models/``.
    """
    files: dict[str, Path] = {}
    for task, output, artifact in executor_outputs(kfp_root):
        uri = Path(artifact.get("uri", ""))
        meta = artifact.get("metadata") or {}
        kind = meta.get("xdetox_kind")
        if kind in ("generations", "scores") and uri.is_file():
            dest = run_dir / kind / f"{meta.get('model')}_{meta.get('language')}.jsonl"
        elif (task, output) in _REPORT_FILES and uri.is_file():
            dest = run_dir / _REPORT_FILES[(task, output)]
        elif task in model_names and uri.is_dir():
            dest = run_dir / "models" / model_names[task]
            link_dir(uri, dest)
            files[f"models/{dest.name}"] = dest
            continue
        else:
            continue
        link_file(uri, dest)
        files[str(dest.relative_to(run_dir))] = dest
    return files


def _model_names(config: Config, pipeline: str) -> dict[str, str]:
    if pipeline == "eval":
        return {"load-model": config.evaluation.label}
    method = config.training.method
    trained = f"{method}-adapter" if config.training.mode in ("lora", "qlora") else f"{method}-raw"
    return {"load-model": "base", "train": trained, "merge": method}


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def first_line(exc: BaseException) -> str:
    text = _ANSI.sub("", str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _regressions(run_dir: Path) -> str | None:
    """``de +0.2031, fr +0.0500`` from a failed eval's comparison table, if it regressed."""
    table = run_dir / "comparison.csv"
    if not table.exists():
        return None
    import pandas as pd

    rows = pd.read_csv(table)
    rows = rows[rows.get("status") == "regressed"] if "status" in rows else rows.iloc[0:0]
    return ", ".join(f"{r.language} {r.delta:+.4f}" for r in rows.itertuples()) or None


def init_local_runner(run_dir: Path) -> Path:
    """Point KFP's SubprocessRunner at ``<run_dir>/kfp`` in this interpreter; return that folder."""
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
    return kfp_root


def run_local(config: Config, run_dir: str | Path, pipeline: str = "detox") -> LocalRun:
    """Run a pipeline (``detox`` or ``eval``) with KFP's SubprocessRunner in this interpreter."""
    from xdetox.pipelines.registry import get_pipeline_factory

    factory = get_pipeline_factory(pipeline)
    run_dir = Path(run_dir).resolve()
    kfp_root = init_local_runner(run_dir)
    start = time.monotonic()
    try:
        factory(config)()
    except RuntimeError as exc:
        # Keep what the finished tasks produced (e.g. the regression report of a failed eval).
        organise_run_folder(run_dir, kfp_root, _model_names(config, pipeline))
        regressed = _regressions(run_dir)
        if regressed:
            raise XdetoxError(
                f"toxicity regressed beyond the margin in: {regressed}; "
                f"see {run_dir / 'comparison.html'}"
            ) from None
        raise XdetoxError(
            f"local {pipeline} run failed: {first_line(exc)}; task folders in {kfp_root}"
        ) from None
    seconds = time.monotonic() - start
    files = organise_run_folder(run_dir, kfp_root, _model_names(config, pipeline))
    return LocalRun(run_dir, run_dir / "report.html", run_dir / "metrics.csv", seconds, files)
