"""The live view of a local run: KFP's logs routed to one file per task, task states read from
them, and what ``xdetox run`` prints.

The fixtures under ``tests/fixtures/`` are what kfp 2.17.0's local runner logged and printed,
thread by thread, during a real toy run (``xdetox run --set data.languages=[en,de]``, trimmed:
load-model, the first two ParallelFor tasks as they interleaved on KFP's two worker threads, the
report) and a failing one (``--set model.base=/nonexistent/model``: load-model and prepare-data
fail), recorded from ``RunMonitor.on_record``/``write``. A real (tiny) pipeline on kfp.local
(kfp_tiny_run.py) checks the installed kfp still logs what they hold.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from xdetox.cli.live_view import _Lines, headline, render, summary_table
from xdetox.pipelines.run_monitor import (
    LoopPlan,
    RunMonitor,
    RunPlan,
    Status,
    kfp_version_note,
    log_tail,
    loop_progress,
)

FIXTURES = Path(__file__).parent / "fixtures"
_ANSI = re.compile(r"\x1b\[")


def _replay(name: str, logs: Path, plan: RunPlan) -> RunMonitor:
    """Feed a recorded run to a monitor, thread by thread, as capture() would."""
    header, *events = (json.loads(line) for line in (FIXTURES / name).read_text().splitlines())
    threads: dict[str, int] = {}
    monitor = RunMonitor(Path(header["kfp_root"]), logs, plan)
    for event in events:
        thread = threads.setdefault(event["thread"], len(threads) + 1)
        if "record" in event:
            monitor.on_record(thread, event["record"])
        else:
            monitor.write(thread, event["write"])
    monitor.close()
    return monitor


TOY_LOOP = LoopPlan(
    "for-loop-1",
    "languages",
    ("en", "de"),
    ("generate-2", "generate", "score-2", "score", "language-metrics", "language-examples"),
)
TOY_PLAN = RunPlan(
    ("prepare-prompts", "load-model", "prepare-data", "train", "merge", TOY_LOOP, "report")
)


def test_installed_kfp_is_the_one_the_fixtures_come_from():
    # A new kfp: rerun the capture (see the module docstring) and check the patterns in
    # run_monitor.py against its kfp/local sources before changing KFP_TESTED.
    assert kfp_version_note() is None


def test_toy_run_logs_go_to_one_file_per_task(tmp_path):
    logs = tmp_path / "logs"
    monitor = _replay("kfp_local_2.17.0_toy_run.jsonl", logs, TOY_PLAN)
    tasks = monitor.snapshot()
    assert tasks["load-model"].status is Status.DONE
    assert tasks["report"].status is Status.DONE
    assert tasks["train"].status is Status.PENDING  # not in the trimmed recording
    load = (logs / "load-model.log").read_text()
    assert "Executing task 'load-model'" in load
    assert "Looking for component `load_model`" in load
    assert "finished with status SUCCESS" in load
    assert "Executing task" not in load.split("finished with status SUCCESS")[1]

    # The two loop tasks ran at once on two threads; each file holds only its own task.
    loop_tasks = [t for t in tasks.values() if t.iteration]
    assert {t.iteration[1] for t in loop_tasks} == {0, 1}
    for task in loop_tasks:
        assert task.status is Status.DONE
        index = task.iteration[1]
        label = TOY_LOOP.labels[index]
        assert task.log == logs / label / f"{task.name}.log"
        text = task.log.read_text()
        assert f"for-loop-1-iteration-{index}/{task.name}/executor_output.json" in text
        assert f"for-loop-1-iteration-{1 - index}/" not in text
        assert text.count("Executing task") == 1
        # the component's lines as it wrote them, without KFP's (nesting) indentation
        assert "\n[KFP Executor" in text and " [KFP Executor" not in text
    # each language ran only its first task in the recording
    assert loop_progress(TOY_LOOP, tasks) == [Status.RUNNING, Status.RUNNING]
    pipeline = (logs / "pipeline.log").read_text()
    assert "Running pipeline: 'xdetox-detox'" in pipeline
    assert "Pipeline 'xdetox-detox' finished with status SUCCESS" in pipeline
    assert "Executing task" not in pipeline
    for path in logs.rglob("*.log"):
        assert not _ANSI.search(path.read_text()), path  # colours stripped


def test_the_recording_interleaves_two_tasks():
    """Otherwise the routing test above proves little."""
    lines = (FIXTURES / "kfp_local_2.17.0_toy_run.jsonl").read_text().splitlines()
    writers = [json.loads(line).get("thread") for line in lines[1:]]
    workers = [w for w in writers if w and w != "main"]
    switches = sum(a != b for a, b in itertools.pairwise(workers))
    assert len(set(workers)) == 2 and switches >= 3


def test_failed_run_names_the_task_and_its_log_tail(tmp_path):
    logs = tmp_path / "logs"
    plan = RunPlan(("prepare-prompts", "load-model", "prepare-data", "train", "merge", "report"))
    monitor = _replay("kfp_local_2.17.0_toy_failure.jsonl", logs, plan)
    (first, *_) = monitor.failures()
    assert first.name == "load-model"
    assert first.log == logs / "load-model.log"
    tail = log_tail(first.log)
    assert tail[-1].startswith("xdetox.errors.DataError: /nonexistent/model")
    assert not any("finished with status" in line or line.startswith("-----") for line in tail)
    assert monitor.snapshot()["train"].status is Status.PENDING  # skipped after the failure


def test_a_loop_task_failing_before_its_executor_input_still_counts(tmp_path):
    """No ``outputFile`` line (e.g. the component module failed to import): the task keeps its
    own name; a second one of the same name does not overwrite it."""
    monitor = RunMonitor(tmp_path / "kfp", tmp_path / "logs", RunPlan((TOY_LOOP,)))
    for thread in (1, 2):
        monitor.on_record(thread, "Executing task \x1b[96m'score'\x1b[0m")
        monitor.write(thread, f"    ImportError: no module {thread}\n")
        monitor.on_record(thread, "Task \x1b[96m'score'\x1b[0m finished with status FAILURE")
    monitor.close()
    failed = monitor.failures()
    assert [t.key for t in failed] == ["score", "score~2"]
    assert "no module 1" in failed[0].log.read_text()
    assert "no module 2" in failed[1].log.read_text()


def test_lines_split_across_writes_and_threads(tmp_path):
    plan = RunPlan(("a", "b"))
    monitor = RunMonitor(tmp_path / "kfp", tmp_path / "logs", plan, echo=io.StringIO())
    monitor.on_record(1, "Executing task 'a'")
    monitor.on_record(2, "Executing task 'b'")
    monitor.write(1, "from a, ")
    monitor.write(2, "from b\nb again\n")
    monitor.write(1, "still a\n" + "-" * 80 + "\n")
    monitor.write(1, "between tasks\n")
    monitor.on_record(2, "Task 'b' finished with status SUCCESS")
    monitor.write(2, "-" * 80 + "\nafter b\n")
    monitor.close()
    rule = "-" * 80 + "\n"
    # "a" has not finished: a rule alone does not end its block; "b" has, so what its thread
    # writes after the rule belongs to no task
    assert (tmp_path / "logs/a.log").read_text() == f"from a, still a\n{rule}between tasks\n"
    assert (tmp_path / "logs/b.log").read_text() == f"from b\nb again\n{rule}"
    assert (tmp_path / "logs/pipeline.log").read_text() == "after b\n"
    assert monitor.echo.getvalue().count("\n") == 7  # --verbose: every line, as KFP printed


# -- a real pipeline on kfp.local: the installed kfp still logs what the monitor reads ----------


@pytest.mark.slow
def test_real_local_run_is_watched_and_logged(tmp_path):
    result = tmp_path / "result.json"
    script = Path(__file__).parent / "kfp_tiny_run.py"
    run = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "run"), "de", str(result)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")  # nothing of KFP's shown
    summary = json.loads(result.read_text())
    assert summary["plan"] == {"tasks": ["say"], "loops": [["words", ["en", "de"]]]}
    assert "FAILURE" in summary["error"]
    assert summary["states"] == {
        "say": "done",
        "for-loop-1-iteration-0/say-2": "done",
        "for-loop-1-iteration-1/say-2": "done",
        "for-loop-1-iteration-0/check": "done",
        "for-loop-1-iteration-1/check": "failed",
    }
    assert summary["loop"] == ["done", "failed"]
    logs = tmp_path / "run" / "logs"
    assert summary["logs"]["for-loop-1-iteration-1/check"] == str(logs / "de" / "check.log")
    assert "saying start" in (logs / "say.log").read_text()
    assert "checking en" in (logs / "en" / "check.log").read_text()
    failed = (logs / "de" / "check.log").read_text()
    assert "Got executor_input" in failed and "checking de" in failed
    assert "ValueError: de is bad" in log_tail(logs / "de" / "check.log")[-1]
    shown = summary["shown"]
    assert "✓ say" in shown and "✓ words en (1/2)" in shown and "✗ check [de]" in shown


# -- what is shown ------------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _states(plan: RunPlan, tmp_path: Path, clock: _Clock) -> RunMonitor:
    """load-model ran from 0 s to 5 s; generate (en) from 10 s to 25 s; generate (de) from 10 s
    and still runs (at 30 s)."""
    monitor = RunMonitor(tmp_path / "kfp", tmp_path / "logs", plan, clock=clock)
    kfp_root = tmp_path / "kfp" / "run-1"
    monitor.on_record(1, "Executing task 'load-model'")
    clock.now = 5
    monitor.on_record(1, "Task 'load-model' finished with status SUCCESS")
    monitor.write(1, "-" * 40 + "\n")
    clock.now = 10
    for thread, index in ((2, 0), (3, 1)):
        monitor.on_record(thread, "Executing task 'generate'")
        folder = kfp_root / f"for-loop-1-iteration-{index}" / "generate"
        monitor.write(thread, f'    "outputFile": "{folder}/executor_output.json"\n')
    clock.now = 25
    monitor.on_record(2, "Task 'generate' finished with status SUCCESS")
    clock.now = 30
    return monitor


def test_live_table_shows_states_progress_and_times(tmp_path):
    loop = LoopPlan("for-loop-1", "languages", ("en", "de", "fr"), ("generate",))
    monitor = _states(RunPlan(("load-model", loop, "report")), tmp_path, _Clock())
    console = Console(file=io.StringIO(), width=100, color_system=None)
    console.print(render(monitor))
    lines = console.file.getvalue().splitlines()
    assert lines[0].split() == ["✓", "load-model", "5s"]
    assert "languages" in lines[1] and "1/3" in lines[1] and lines[1].split()[-2] == "de"
    assert lines[2].split() == ["·", "report"]
    monitor.ended = monitor.now()  # the run is over: never-run tasks read as skipped
    console.file = io.StringIO()
    console.print(render(monitor))
    assert console.file.getvalue().splitlines()[2].split() == ["–", "report"]


def test_lines_off_a_terminal_are_printed_once_in_order(tmp_path):
    loop = LoopPlan("for-loop-1", "languages", ("en", "de"), ("generate",))
    clock = _Clock()
    monitor = _states(RunPlan(("load-model", loop)), tmp_path, clock)
    console = Console(file=io.StringIO(), width=100, color_system=None)
    lines = _Lines(console, monitor)
    lines.poll()
    lines.poll()
    clock.now = 40
    monitor.on_record(3, "Task 'generate' finished with status FAILURE")
    lines.poll()
    assert console.file.getvalue().splitlines() == [
        "  ✓ load-model  5s",
        "  ✓ languages en (1/2)  15s",
        "  ✗ generate [de]  30s",
    ]


def _metrics(tmp_path: Path) -> Path:
    path = tmp_path / "metrics.csv"
    path.write_text(
        "model,language,scorer,expected_max_toxicity,toxicity_probability\n"
        "dpo,en,offline,0.25,0.125\n"
        "base,en,offline,0.5,0.375\n"
        "base,en,perspective,0.9,0.9\n"
        "base,de,offline,0.1,0.0\n"
        "dpo,de,offline,0.05,\n"
    )
    return path


def test_summary_is_base_to_tuned_per_language(tmp_path):
    models, languages = headline(_metrics(tmp_path))
    assert models == ["base", "dpo"] and [lang for lang, _ in languages] == ["en", "de"]
    console = Console(file=io.StringIO(), width=100, color_system=None)
    console.print(summary_table(_metrics(tmp_path)))
    text = console.file.getvalue()
    assert "EMT base → dpo" in text
    en, de = [line.split() for line in text.splitlines()[-2:]]
    assert en == ["en", "0.500", "→", "0.250", "0.375", "→", "0.125"]  # offline scorer only
    assert de == ["de", "0.100", "→", "0.050", "0.000", "→", "–"]


def test_summary_of_three_or_more_models_has_a_column_each(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(
        "model,language,scorer,expected_max_toxicity,toxicity_probability\n"
        "base,en,offline,0.5,0.375\n"
        "sft,en,offline,0.4,0.25\n"
        "sft_dpo,en,offline,0.25,0.125\n"
        "control,en,offline,0.6,0.5\n"
    )
    console = Console(file=io.StringIO(), width=100, color_system=None)
    console.print(summary_table(path))
    lines = console.file.getvalue().splitlines()
    assert lines[0].split() == ["language", "base", "sft", "sft_dpo", "control"]
    assert lines[1].split() == ["en", "0.500", "/", "0.375", "0.400", "/", "0.250", "0.250", "/",
                                "0.125", "0.600", "/", "0.500"]  # fmt: skip
    assert "each cell: EMT / tox. prob." in lines[-1]


# -- the toy run as a user runs it ----------------------------------------------------------------


@pytest.mark.e2e
def test_failing_run_shows_task_log_tail_and_path(tmp_path):
    """A run whose preference data is missing fails at run time, in prepare-data (~5 s)."""
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [str(Path(sys.executable).parent / "xdetox"), "run", "--output", str(run_dir),
         "--set", "data.preference=/nonexistent/pairs"],
        capture_output=True, text=True, timeout=600, env=dict(os.environ),
    )  # fmt: skip
    assert result.returncode == 2
    err = result.stderr.splitlines()
    assert len(err) + len(result.stdout.splitlines()) <= 60
    log = run_dir / "logs" / "prepare-data.log"
    assert err[-1] == f"xdetox: error: local detox run failed in task prepare-data; its log: {log}"
    assert any(line.strip() == "✗ prepare-data  1s" or "✗ prepare-data" in line for line in err)
    (header,) = [
        i for i, line in enumerate(err) if "task prepare-data failed; last lines of" in line
    ]
    tail = err[header + 1 : -1]
    assert 0 < len(tail) <= 15
    assert (
        tail[-1].strip() == "xdetox.errors.DataError: /nonexistent/pairs: preference data not found"
    )
    assert "Looking for component `prepare_data`" in log.read_text()
    assert "Looking for component" not in result.stdout + result.stderr
