"""A three-step pipeline on kfp.local, watched by RunMonitor and LiveView (lines mode).

Run as a script by tests/test_live_view.py, in its own process: KFP's local runner keeps global
state (``local.init``), swaps the root logger's handlers, and its ``import docker`` must not find
the repository's ``docker/`` folder (the working directory under ``python -m pytest``).

    python tests/kfp_tiny_run.py RUN_DIR BAD_WORD RESULT.json
"""

# No ``from __future__ import annotations``: KFP reads the components' annotations as types.

import io
import json
import sys
from pathlib import Path

from kfp import dsl
from rich.console import Console

from xdetox.cli.live_view import LiveView
from xdetox.pipelines.local_run import init_local_runner
from xdetox.pipelines.run_monitor import RunMonitor, loop_progress, plan_from_spec


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def say(word: str) -> str:
    print(f"saying {word}")
    return word


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def check(word: str, bad: str):
    print(f"checking {word}")
    if word == bad:
        raise ValueError(f"{word} is bad")


def tiny_pipeline(bad: str):
    @dsl.pipeline(name="tiny")
    def tiny(words: list = ["en", "de"], bad: str = bad):  # noqa: B006 (KFP's default value)
        first = say(word="start")
        with dsl.ParallelFor(words) as word:
            said = say(word=word).after(first)
            check(word=said.output, bad=bad)

    return tiny


def main(run_dir: Path, bad: str, result: Path) -> None:
    pipeline = tiny_pipeline(bad)
    plan = plan_from_spec(pipeline.pipeline_spec)
    monitor = RunMonitor(init_local_runner(run_dir), run_dir / "logs", plan)
    console = Console(file=io.StringIO(), width=100, color_system=None)
    error = ""
    try:
        with monitor.capture(), LiveView(console, live=False, interval=0.05)(monitor):
            pipeline()
    except RuntimeError as exc:
        error = str(exc)
    tasks = monitor.snapshot()
    summary = {
        "plan": {"tasks": plan.tasks, "loops": [[lp.title, lp.labels] for lp in plan.loops]},
        "states": {key: task.status.value for key, task in tasks.items()},
        "logs": {key: str(task.log) for key, task in tasks.items()},
        "loop": [s.value for s in loop_progress(plan.loops[0], tasks)],
        "shown": console.file.getvalue(),
        "error": error,
    }
    result.write_text(json.dumps(summary))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
