"""What ``xdetox run`` shows while a local pipeline runs, and after.

On a terminal: a rich ``Live`` table of the pipeline's tasks (pending · , running spinner,
done ✓, failed ✗, with elapsed time) and each ``ParallelFor`` as a progress bar over its items
(the languages). Elsewhere (CI, a pipe, ``make run | tee``), where a redrawn table would be
printed only once at the end, one line per finished task and per finished loop item instead.
Then the headline numbers per language (base → tuned) from ``metrics.csv``, or, when the run
failed, the failing task's last log lines. The states come from
:class:`xdetox.pipelines.run_monitor.RunMonitor`; KFP's own logs are in the run's ``logs/``.
"""

from __future__ import annotations

import contextlib
import csv
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from rich.console import Console, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from xdetox.config import Config
from xdetox.pipelines.local_run import LocalRun, LocalRunFailed, run_local
from xdetox.pipelines.run_monitor import (
    LoopPlan,
    RunMonitor,
    Status,
    TaskState,
    kfp_version_note,
    loop_progress,
)

_MARKS = {
    Status.PENDING: Text("·", style="dim"),
    Status.DONE: Text("✓", style="green"),
    Status.FAILED: Text("✗", style="bold red"),
}
_SKIPPED = Text("–", style="dim")
# metrics.csv columns the summary shows: (column, heading)
HEADLINE = (("expected_max_toxicity", "EMT"), ("toxicity_probability", "tox. prob."))


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    whole = round(seconds)
    return f"{whole // 60}m {whole % 60:02d}s" if whole >= 60 else f"{whole}s"


def _mark(
    status: Status, finished: bool, key: str = "", spinners: dict[str, Spinner] | None = None
) -> RenderableType:
    if status is Status.RUNNING:
        # One spinner per row for the whole run: a spinner turns from its first rendering on.
        spinners = {} if spinners is None else spinners
        return spinners.setdefault(key, Spinner("dots", style="cyan"))
    if status is Status.PENDING and finished:
        return _SKIPPED  # the run is over and the task never ran: a condition skipped it
    return _MARKS[status]


def _loop_status(states: list[Status]) -> Status:
    if Status.FAILED in states:
        return Status.FAILED
    if states and all(s is Status.DONE for s in states):
        return Status.DONE
    if any(s is not Status.PENDING for s in states):
        return Status.RUNNING
    return Status.PENDING


def _in_loop(task: TaskState, loop: LoopPlan, index: int | None = None) -> bool:
    where = task.iteration
    return (
        where is not None
        and where[0] == loop.name
        and task.name in loop.tasks
        and (index is None or where[1] == index)
    )


def _loop_span(loop: LoopPlan, tasks: Mapping[str, TaskState], now: float) -> float | None:
    """From the loop's first task start to its last end (or now)."""
    members = [t for t in tasks.values() if _in_loop(t, loop)]
    starts = [t.started for t in members if t.started is not None]
    if not starts:
        return None
    running = any(t.ended is None for t in members)
    end = now if running else max(t.ended or now for t in members)
    return end - min(starts)


def render(monitor: RunMonitor, spinners: dict[str, Spinner] | None = None) -> Table:
    """The table of tasks and loops, as it stands now (``spinners``: kept between calls)."""
    plan, tasks, now = monitor.plan, monitor.snapshot(), monitor.now()
    finished = monitor.ended is not None

    def mark(status: Status, key: str) -> RenderableType:
        return _mark(status, finished, key, spinners)

    table = Table.grid(padding=(0, 1))
    table.add_column(width=1)
    table.add_column()
    table.add_column()
    table.add_column(justify="right")
    for step in plan.steps:
        if isinstance(step, str):
            task = tasks.get(step)
            if task is not None:
                table.add_row(
                    mark(task.status, task.key), task.name, "", duration(task.elapsed(now))
                )
            continue
        states = loop_progress(step, tasks)
        done = sum(s is Status.DONE for s in states)
        running = [step.label(i) for i, s in enumerate(states) if s is Status.RUNNING]
        bar = Table.grid(padding=(0, 1))
        bar.add_row(
            ProgressBar(total=max(len(states), 1), completed=done, width=24),
            f"{done}/{len(states)}",
            Text(" ".join(running), style="cyan"),
        )
        status = _loop_status(states)
        table.add_row(
            mark(status, f"loop {id(step)}"),
            step.title,
            bar,
            duration(_loop_span(step, tasks, now)),
        )
    # Tasks the plan did not name (e.g. one that failed before KFP printed its folder).
    for task in tasks.values():
        if task.key not in plan.tasks and task.iteration is None:
            table.add_row(mark(task.status, task.key), task.name, "", duration(task.elapsed(now)))
    return table


class _Lines:
    """Off a terminal: one line per task or loop item as it finishes."""

    def __init__(self, console: Console, monitor: RunMonitor) -> None:
        self.console = console
        self.monitor = monitor
        self.reported: set[str] = set()
        self.loop_done: dict[int, int] = {}  # loop number → items reported done

    def poll(self) -> None:
        plan, tasks, now = self.monitor.plan, self.monitor.snapshot(), self.monitor.now()
        # (ended, key, status, what, seconds, loop number) of every finished task or item
        news: list[tuple[float, str, Status, str, float | None, int | None]] = []
        for task in tasks.values():
            outside = task.iteration is None and task.status in (Status.DONE, Status.FAILED)
            if outside or (task.iteration is not None and task.status is Status.FAILED):
                what = task.label(plan)
                ended = task.ended or now
                news.append((ended, task.key, task.status, what, task.elapsed(now), None))
        totals = {}
        for number, loop in enumerate(plan.loops):
            states = loop_progress(loop, tasks)
            totals[number] = len(states)
            for index, state in enumerate(states):
                if state is Status.DONE:
                    members = [t for t in tasks.values() if _in_loop(t, loop, index)]
                    start = min(t.started or now for t in members)
                    end = max(t.ended or now for t in members)
                    what = f"{loop.title} {loop.label(index)}"
                    news.append((end, f"loop {number}#{index}", state, what, end - start, number))
        for _, key, status, what, seconds, loop in sorted(news, key=lambda n: n[0]):
            if key in self.reported:
                continue
            self.reported.add(key)
            if loop is not None:  # "languages en (3/6)": how far the loop is
                self.loop_done[loop] = self.loop_done.get(loop, 0) + 1
                what += f" ({self.loop_done[loop]}/{totals[loop]})"
            self._line(status, what, seconds)

    def _line(self, status: Status, what: str, seconds: float | None) -> None:
        line = Text("  ")
        line.append_text(_MARKS[status])
        line.append(f" {what}")
        if seconds is not None:
            line.append(f"  {duration(seconds)}", style="dim")
        self.console.print(line, highlight=False, soft_wrap=True)


class LiveView:
    """``watch`` for :func:`xdetox.pipelines.local_run.run_local`: shows the run on
    ``console``, redrawn on a terminal, line by line elsewhere (``live`` forces either)."""

    def __init__(self, console: Console, *, live: bool | None = None, interval: float = 0.5):
        self.console = console
        self.live = console.is_terminal if live is None else live
        self.interval = interval

    @contextlib.contextmanager
    def __call__(self, monitor: RunMonitor) -> Iterator[None]:
        note = kfp_version_note()
        if note:
            self.console.print(f"[yellow]{note}[/]", soft_wrap=True)
        if self.live:
            spinners: dict[str, Spinner] = {}
            # KFP's output is already routed to the log files (RunMonitor.capture): Live must
            # not redirect the streams itself.
            with Live(
                console=self.console,
                get_renderable=lambda: render(monitor, spinners),
                refresh_per_second=4,
                redirect_stdout=False,
                redirect_stderr=False,
            ) as live:
                try:
                    yield
                finally:
                    monitor.ended = monitor.ended or monitor.now()
                    live.refresh()
            return
        lines = _Lines(self.console, monitor)
        stop = threading.Event()

        def poll() -> None:
            while not stop.wait(self.interval):
                lines.poll()

        thread = threading.Thread(target=poll, name="xdetox-live-view", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            lines.poll()


def headline(metrics_csv: Path) -> tuple[list[str], list[tuple[str, dict[str, dict[str, str]]]]]:
    """(models, [(language, {model: {column: value}})]) of the first scorer in ``metrics_csv``,
    ``base`` first."""
    with metrics_csv.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return [], []
    scorer = rows[0].get("scorer")
    rows = [r for r in rows if r.get("scorer") == scorer and r.get("language")]
    models = list(dict.fromkeys(r["model"] for r in rows))
    models.sort(key=lambda m: m != "base")  # stable: base first, the others as written
    by_language: dict[str, dict[str, dict[str, str]]] = {}
    for row in rows:
        by_language.setdefault(row["language"], {})[row["model"]] = row
    return models, list(by_language.items())


def _number(row: Mapping[str, str] | None, column: str) -> str:
    try:
        return f"{float(row[column]):.3f}" if row else "–"
    except (KeyError, TypeError, ValueError):
        return "–"


def summary_table(metrics_csv: Path) -> Table | None:
    """Per language, EMT and toxicity probability: ``base → tuned`` (one model: its values;
    three or more, e.g. sft_dpo's stages or a control: a column per model, ``EMT / prob.``)."""
    models, languages = headline(metrics_csv)
    if not models:
        return None
    table = Table(box=None, padding=(0, 2), show_edge=False, pad_edge=False)
    table.add_column("language")
    if len(models) > 2:
        for model in models:
            table.add_column(model)
        table.caption = "each cell: " + " / ".join(heading for _, heading in HEADLINE)
        for language, by_model in languages:
            cells = [
                " / ".join(_number(by_model.get(model), column) for column, _ in HEADLINE)
                for model in models
            ]
            table.add_row(language, *cells)
        return table
    base, tuned = models[0], (models[1] if len(models) > 1 else None)
    for _, heading in HEADLINE:
        table.add_column(f"{heading} {base} → {tuned}" if tuned else f"{heading} {base}")
    for language, by_model in languages:
        cells = []
        for column, _ in HEADLINE:
            before = _number(by_model.get(base), column)
            cells.append(f"{before} → {_number(by_model.get(tuned), column)}" if tuned else before)
        table.add_row(language, *cells)
    return table


def print_failure(console: Console, failure: LocalRunFailed) -> None:
    """The failing task's last log lines (the error line with the log's path comes after)."""
    what = f"task {failure.task}" if failure.task else "the pipeline"
    heading = Text(f"✗ {what} failed; last lines of {failure.log}:", style="bold red")
    console.print(heading, soft_wrap=True)
    for line in failure.tail:  # as written: the error's last line is the one that matters
        console.print(Text(f"    {line}", style="dim"), highlight=False, soft_wrap=True)


def run_and_show(
    config: Config,
    run_dir: Path,
    pipeline: str,
    factory: Callable[..., Any],
    *,
    verbose: bool = False,
    title: str,
) -> LocalRun:
    """``run_local`` with the view on stderr: a header line, the live view (``verbose``: KFP's
    logs instead), then the summary or the failing task's log tail (then re-raised)."""
    # The real stream, fixed now: during the run sys.stderr is RunMonitor's router.
    console = Console(file=sys.stderr)
    console.print(
        f"[bold]xdetox[/] {title} → {run_dir} [dim](task logs: {run_dir / 'logs'})[/]",
        soft_wrap=True,  # one line, on a terminal or not
    )
    try:
        result = run_local(
            config,
            run_dir,
            pipeline,
            factory,
            watch=None if verbose else LiveView(console),
            verbose=verbose,
        )
    except LocalRunFailed as failure:
        print_failure(console, failure)
        raise
    if result.metrics_csv is not None and result.metrics_csv.is_file():
        table = summary_table(result.metrics_csv)
        if table is not None:
            console.print(table)
    console.print(f"[green]done[/] in {duration(result.seconds)}")
    return result
