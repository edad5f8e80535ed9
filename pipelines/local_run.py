"""Run a pipeline on KFP's local runner and lay its outputs out as one readable run folder.

KFP's SubprocessRunner ("Execute KFP pipelines locally",
https://www.kubeflow.org/docs/components/pipelines/user-guides/core-functions/execute-kfp-pipelines-locally/)
writes each task's artifacts under ``<run>/kfp/<pipeline-run>/[<loop>-iteration-<i>/]<task>/``,
named after KFP-generated task names that change whenever the graph does. The run folder is
instead laid out from what each artifact says it is: the ``xdetox_kind`` the components write
into ``artifact.metadata`` (with ``model``, ``language``, ``format``), read back from each
task's ``executor_output.json``. Files are hard-linked and folders symlinked (relative), so
nothing is copied twice and the folder can be moved as a whole:

    report.html  report.md  metrics.csv          (detox, eval)
    comparison.html  comparison.csv               (eval)
    generations/<model>_<language>.jsonl
    scores/<model>_<language>.jsonl               (second scorer: <model>_<language>.<scorer>.jsonl)
    examples/<language>.json                      (the report's example texts)
    models/<label>  models/<label>-adapter        (every trained model: base, sft, dpo, ...)
    pairs/                                         (detox: the preference pairs trained on;
                                                    self-made pairs keep scored_samples.jsonl)
    pairs-control/                                 (training.control: the pairs reversed)
    probe/ value_vectors/ intervention/ activations/ alignment/ report.html report.md
                                                   (interpret; under interpret/ in a detox run)
    kfp/                                           (KFP's own task folders)
    logs/<task>.log  logs/<language>/<task>.log    (each task's full log: KFP's executor lines
    logs/pipeline.log                               and the component's output; run_monitor.py)

KFP's local runner prints every task's executor input and output to the console; here they go
to the task's log file instead, and a caller-supplied ``watch`` shows the tasks' states
(``xdetox run``'s live view) or ``verbose`` streams the logs as KFP would.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfp import local

from xdetox.config import Config
from xdetox.errors import XdetoxError
from xdetox.pipelines.run_monitor import RunMonitor, TaskState, log_tail, plan_from_spec

# kfp.local's SubprocessRunner runs at most this many ParallelFor iterations at once (its
# ParallelExecutor caps every loop at 2 threads).
_LOCAL_PARALLEL_TASKS = 2
REPORT_FILES = {"html": "report.html", "markdown": "report.md"}
COMPARISON_FILES = {"html": "comparison.html", "csv": "comparison.csv"}
# xdetox_kind of an interpret stage's results folder → its folder in the run folder.
INTERPRET_FOLDERS = {
    "probe": "probe",
    "value_vectors": "value_vectors",
    "intervention": "intervention",  # the joined sweep (per-language parts stay in kfp/)
    "activations": "activations",
    "alignment": "alignment",
}
ADAPTER_MODES = ("lora", "qlora")


@dataclass
class LocalRun:
    run_dir: Path
    report: Path
    markdown: Path
    metrics_csv: Path | None  # None for the interpret pipeline
    seconds: float
    files: dict[str, Path] = field(default_factory=dict)
    logs: Path | None = None  # logs/: one file per task


class LocalRunFailed(XdetoxError):
    """A task failed: which one, its log and the log's last lines (for the user to see)."""

    def __init__(self, message: str, task: str | None, log: Path, tail: list[str]) -> None:
        super().__init__(message)
        self.task = task
        self.log = log
        self.tail = tail


# What run_local calls around the run with the monitor, e.g. the live view.
Watch = Callable[[RunMonitor], AbstractContextManager[object]]


@dataclass(frozen=True)
class Layout:
    """What the run folder needs to know beyond the artifacts' own metadata."""

    # a loaded model's source → its folder under models/ (load_model records the source only)
    model_labels: dict[str, str]
    primary_scorer: str  # scores by another scorer (agreement_with) get the scorer's name
    interpret_dir: str  # "" for the interpret pipeline, "interpret" inside a detox run


def layout_for(config: Config, pipeline: str) -> Layout:
    if pipeline == "eval":
        labels = {config.evaluation.model: config.evaluation.label}
    else:
        labels = {config.model.base: "base"}
        if pipeline == "interpret" and config.interpret.tuned_model:
            labels[config.interpret.tuned_model] = "tuned"
    return Layout(labels, config.scoring.scorer, "" if pipeline == "interpret" else "interpret")


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


def executor_outputs(kfp_root: Path) -> Iterator[tuple[str, str, dict]]:
    """(task folder, output name, artifact) for every artifact a task wrote."""
    for path in sorted(kfp_root.rglob("executor_output.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        for name, entry in (data.get("artifacts") or {}).items():
            for artifact in entry.get("artifacts", []):
                yield path.parent.name, name, artifact


def _scores_name(meta: dict[str, Any], primary_scorer: str) -> str:
    name = f"{meta.get('model')}_{meta.get('language')}"
    # Scorer ids start with the scorer's kind ("classifier-…", "perspective-…").
    scorer = str(meta.get("scorer", ""))
    if scorer and not scorer.startswith(primary_scorer):
        name += f".{scorer.split('-')[0]}"
    return f"{name}.jsonl"


def run_folder_path(meta: dict[str, Any], is_dir: bool, layout: Layout) -> str | None:
    """Where an artifact with ``meta`` goes in the run folder (relative), or None."""
    kind, fmt = meta.get("xdetox_kind"), meta.get("format")
    if is_dir:
        if kind == "model":
            label = meta.get("model") or layout.model_labels.get(meta.get("source", ""))
            return f"models/{label}" if label else None
        if kind == "trained":
            adapter = meta.get("mode") in ADAPTER_MODES
            label = meta.get("model") or meta.get("method")
            return f"models/{label}" + ("-adapter" if adapter else "")
        if kind == "pairs":
            return "pairs"
        if kind == "control_pairs":  # training.control: the same pairs, preference reversed
            return "pairs-control"
        if kind in INTERPRET_FOLDERS:
            return os.path.join(layout.interpret_dir, INTERPRET_FOLDERS[kind])
        return None
    if kind == "generations":
        return f"generations/{meta.get('model')}_{meta.get('language')}.jsonl"
    if kind == "scores":
        return f"scores/{_scores_name(meta, layout.primary_scorer)}"
    if kind == "examples":  # the report's example texts, one small file per language
        return f"examples/{meta.get('language')}.json"
    if kind == "metrics_all":
        return "metrics.csv"
    if kind == "report" and fmt in REPORT_FILES:
        return REPORT_FILES[fmt]
    if kind == "comparison" and fmt in COMPARISON_FILES:
        return COMPARISON_FILES[fmt]
    if kind == "interpret_report" and fmt in REPORT_FILES:
        return os.path.join(layout.interpret_dir, REPORT_FILES[fmt])
    return None


def organise_run_folder(run_dir: Path, kfp_root: Path, layout: Layout) -> dict[str, Path]:
    """Link every artifact the run folder shows from KFP's task folders into ``run_dir``."""
    files: dict[str, Path] = {}
    for _task, _output, artifact in executor_outputs(kfp_root):
        uri = Path(artifact.get("uri", ""))
        if not uri.exists():
            continue
        relative = run_folder_path(artifact.get("metadata") or {}, uri.is_dir(), layout)
        if relative is None:
            continue
        dest = run_dir / relative
        (link_dir if uri.is_dir() else link_file)(uri, dest)
        files[relative] = dest
    return files


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


def _failure(pipeline: str, monitor: RunMonitor, exc: BaseException) -> LocalRunFailed:
    """The error for a failed run: the first task that failed, with its log's tail."""
    failed: list[TaskState] = [t for t in monitor.failures() if t.log is not None]
    if failed:
        name, log = failed[0].label(monitor.plan), failed[0].log or monitor.pipeline_log
        message = f"local {pipeline} run failed in task {name}; its log: {log}"
        return LocalRunFailed(message, name, log, log_tail(log))
    # No task failed as far as the logs show (KFP itself failed): its own log then.
    log = monitor.pipeline_log
    message = f"local {pipeline} run failed: {first_line(exc)}; log: {log}"
    return LocalRunFailed(message, None, log, log_tail(log))


def run_local(
    config: Config,
    run_dir: str | Path,
    pipeline: str,
    factory: Callable[..., Any],
    *,
    watch: Watch | None = None,
    verbose: bool = False,
) -> LocalRun:
    """Run pipeline ``pipeline`` (``detox``, ``eval`` or ``interpret``; ``factory`` builds it,
    see :mod:`xdetox.pipelines.registry`) with KFP's SubprocessRunner in this interpreter and
    lay out ``run_dir`` (see the module docstring).

    KFP's logs go to ``run_dir/logs`` (and to stdout as well with ``verbose``); ``watch`` is
    entered with the run's :class:`RunMonitor` for as long as the pipeline runs. A failed task
    raises :class:`LocalRunFailed`.
    """
    # Build first: a config error leaves nothing behind.
    built = factory(config, local=True)
    layout = layout_for(config, pipeline)
    plan = plan_from_spec(built.pipeline_spec)
    run_dir = Path(run_dir).resolve()
    kfp_root = init_local_runner(run_dir)
    monitor = RunMonitor(kfp_root, run_dir / "logs", plan, echo=sys.stdout if verbose else None)
    start = time.monotonic()
    try:
        with monitor.capture(), watch(monitor) if watch else contextlib.nullcontext():
            built()
    except RuntimeError as exc:  # kfp.local: a task failed; its log is in logs/
        # Keep what the finished tasks produced (e.g. the regression report of a failed eval).
        organise_run_folder(run_dir, kfp_root, layout)
        regressed = _regressions(run_dir)
        if regressed:
            raise XdetoxError(
                f"toxicity regressed beyond the margin in: {regressed}; "
                f"see {run_dir / 'comparison.html'}"
            ) from None
        raise _failure(pipeline, monitor, exc) from None
    seconds = time.monotonic() - start
    files = organise_run_folder(run_dir, kfp_root, layout)
    metrics_csv = None if pipeline == "interpret" else run_dir / "metrics.csv"
    return LocalRun(
        run_dir,
        run_dir / "report.html",
        run_dir / "report.md",
        metrics_csv,
        seconds,
        files,
        monitor.logs_dir,
    )
