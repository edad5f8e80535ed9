"""Watch a pipeline on KFP's local runner: each task's state, and its log in its own file.

kfp 2.17's ``SubprocessRunner`` has no hook for either. What it does (``kfp/local``):

* ``task_dispatcher.run_single_task_implementation`` logs through the **root** logger, inside
  ``logging_utils.local_logger_context()``, which swaps the root logger's handlers for a fresh
  ``StreamHandler(sys.stdout)`` and restores the old ones afterwards: ``Executing task 'x'``,
  ``Streamed logs:``, ``Task 'x' finished with status SUCCESS`` (or ``FAILURE``), the task's
  outputs, then a horizontal rule of dashes. Names and statuses are wrapped in ANSI colours.
* ``subprocess_task_handler.run_local_subprocess`` runs the component with stdout and stderr
  piped together and ``print``s every line it reads, from the thread that runs the task
  (``ParallelFor`` iterations run on a two-thread pool, so two tasks interleave).
* The component's executor (``kfp/dsl/executor_main.py``) first logs ``Got executor_input:``
  with the JSON whose ``outputFile`` names the task's folder
  (``<pipeline root>/<pipeline run>/[<loop>-iteration-<i>/]<task>/executor_output.json``):
  the only place that tells two iterations' ``generate`` apart.
* ``warnings.warn`` (a task's unsupported settings, the image) goes to ``sys.stderr``.

So, without touching KFP's files: a :class:`logging.Filter` on the root logger sees every
record KFP logs (filters stay where they are when KFP swaps the handlers, so a record is seen
even when two threads' swaps race and it reaches no handler), and ``sys.stdout``/``sys.stderr``
are replaced in-process, for the run only, by a writer that routes each line by the thread that
wrote it: to the log of the task that thread is running (``logs/<task>.log``,
``logs/<language>/<task>.log`` inside a ParallelFor over languages) or to ``logs/pipeline.log``.
KFP's own handlers write to whatever ``sys.stdout`` is when they are made, i.e. the router.
``echo`` (``--verbose``) also gets everything as it was written, as KFP prints it without us.

The strings above are kfp 2.17's; :data:`KFP_TESTED` names that version and the tests check
the installed kfp's sources still produce them (tests/test_live_view.py), so a kfp that changed
them fails a test instead of leaving every task "pending".
"""

from __future__ import annotations

import builtins
import contextlib
import io
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO

# The kfp release whose local runner's messages the patterns below match.
KFP_TESTED = "2.17"

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EXECUTING = re.compile(r"Executing task '(?P<task>[^']+)'")
_FINISHED = re.compile(r"Task '(?P<task>[^']+)' finished with status (?P<status>[A-Z]+)")
_OUTPUT_FILE = re.compile(r'"outputFile": "(?P<folder>.+)/executor_output\.json"')
_RULE = re.compile(r"-{20,}")  # logging_utils.print_horizontal_line: the end of a task's block
_ITERATION = re.compile(r"(?P<loop>.+)-iteration-(?P<index>\d+)")
_SAFE_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# logging_utils.indented_print writes these before each line of a task's output, as a write of
# its own. Its save and restore of ``builtins.print`` race when two tasks run at once, so the
# indentation nests (8, 12 spaces) as a run goes on, and ``print`` can stay wrapped after it.
_KFP_INDENT = " " * 4
PIPELINE_LOG = "pipeline.log"
_RECORD_FORMAT = "%(asctime)s - %(levelname)s - %(message)s"  # as kfp.local formats them


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


class Status(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


# -- what the pipeline will run, from its compiled spec -----------------------------------------


@dataclass(frozen=True)
class LoopPlan:
    """One ``dsl.ParallelFor``: KFP names its iterations' folders ``<name>-iteration-<i>``."""

    name: str  # the loop task's name, e.g. for-loop-1
    title: str  # what it iterates over, e.g. languages
    labels: tuple[str, ...] | None  # one per iteration (the items), None when not known upfront
    tasks: tuple[str, ...]  # the tasks one iteration runs (KFP's names: its components')

    def label(self, index: int) -> str:
        if self.labels is not None and index < len(self.labels):
            return self.labels[index]
        return f"#{index}"


@dataclass(frozen=True)
class RunPlan:
    """The tasks outside loops and the loops, in an order the DAG allows."""

    steps: tuple[str | LoopPlan, ...]

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(s for s in self.steps if isinstance(s, str))

    @property
    def loops(self) -> tuple[LoopPlan, ...]:
        return tuple(s for s in self.steps if isinstance(s, LoopPlan))

    def loop(self, name: str, task: str | None = None) -> LoopPlan | None:
        """The loop ``name`` (that runs ``task``: a nested pipeline's loop can have the same
        name as its parent's, and KFP then runs both in ``<name>-iteration-<i>`` folders)."""
        named = [loop for loop in self.loops if loop.name == name]
        return next((loop for loop in named if task in loop.tasks), named[0] if named else None)


def _value(message: Any) -> Any:
    from google.protobuf import json_format

    return json_format.MessageToDict(message)


def _topological(dag: Any) -> list[str]:
    """The DAG's task names, each after the tasks it depends on (ties: the spec's order)."""
    names = list(dag.tasks)
    done: list[str] = []
    while len(done) < len(names):
        ready = [
            n
            for n in names
            if n not in done
            and all(d in done or d not in dag.tasks for d in dag.tasks[n].dependent_tasks)
        ]
        if not ready:  # a cycle cannot compile; keep the rest as they come
            ready = [n for n in names if n not in done]
        done.append(ready[0])
    return done


def _task_inputs(task: Any, component: Any, scope: Mapping[str, Any]) -> dict[str, Any]:
    """The parameter values a nested DAG task passes down, where they are known upfront."""
    values = {
        name: _value(spec.default_value)
        for name, spec in component.input_definitions.parameters.items()
        if spec.HasField("default_value")
    }
    for name, spec in task.inputs.parameters.items():
        if spec.HasField("runtime_value") and spec.runtime_value.HasField("constant"):
            values[name] = _value(spec.runtime_value.constant)
        elif spec.component_input_parameter in scope:
            values[name] = scope[spec.component_input_parameter]
    return values


def _leaves(spec: Any, dag: Any) -> list[str]:
    names = []
    for task_name in _topological(dag):
        ref = dag.tasks[task_name].component_ref.name
        component = spec.components[ref]
        if component.WhichOneof("implementation") == "dag":
            names.extend(_leaves(spec, component.dag))
        else:
            names.append(ref.removeprefix("comp-"))
    return names


def _loop(spec: Any, name: str, task: Any, scope: Mapping[str, Any]) -> LoopPlan:
    component = spec.components[task.component_ref.name]
    inputs = _task_inputs(task, component, scope)
    items: Any = None
    title = name
    if task.WhichOneof("iterator") == "parameter_iterator":
        source = task.parameter_iterator.items
        if source.HasField("raw"):
            items = json.loads(source.raw)
        else:
            items = inputs.get(source.input_parameter)
            title = source.input_parameter.removeprefix("pipelinechannel--")
            title = title.removesuffix("-loop-item")
    labels = tuple(str(i) for i in items) if isinstance(items, list) else None
    return LoopPlan(name, title, labels, tuple(_leaves(spec, component.dag)))


def _steps(spec: Any, dag: Any, scope: Mapping[str, Any]) -> list[str | LoopPlan]:
    steps: list[str | LoopPlan] = []
    for task_name in _topological(dag):
        task = dag.tasks[task_name]
        component = spec.components[task.component_ref.name]
        if task.WhichOneof("iterator"):
            steps.append(_loop(spec, task_name, task, scope))
        elif component.WhichOneof("implementation") == "dag":
            # A nested pipeline outside a loop runs in its parent's folder: its tasks are the
            # parent's as far as KFP's names and folders go.
            steps.extend(_steps(spec, component.dag, _task_inputs(task, component, scope)))
        else:
            steps.append(task.component_ref.name.removeprefix("comp-"))
    return steps


def plan_from_spec(spec: Any) -> RunPlan:
    """The plan of a compiled ``PipelineSpec`` run with its parameters' defaults (as
    ``run_local`` runs it)."""
    root = spec.root
    scope = {
        name: _value(p.default_value)
        for name, p in root.input_definitions.parameters.items()
        if p.HasField("default_value")
    }
    return RunPlan(tuple(_steps(spec, root.dag, scope)))


# -- task states from KFP's log -----------------------------------------------------------------


@dataclass
class TaskState:
    key: str  # the task's folder under the pipeline run: train, for-loop-1-iteration-0/generate
    name: str  # KFP's task name (its component's): generate
    status: Status = Status.PENDING
    started: float | None = None  # time.monotonic()
    ended: float | None = None
    log: Path | None = None
    attempts: int = 0

    @property
    def iteration(self) -> tuple[str, int] | None:
        """(loop, index) of a task inside a ParallelFor iteration."""
        first, _, rest = self.key.partition("/")
        match = _ITERATION.fullmatch(first)
        return (match["loop"], int(match["index"])) if match and rest else None

    def label(self, plan: RunPlan) -> str:
        """``generate [en]`` for a task of a loop's iteration, else its name."""
        where = self.iteration
        if where is None:
            return self.name
        loop = plan.loop(where[0], self.name)
        return f"{self.name} [{loop.label(where[1]) if loop else f'#{where[1]}'}]"

    def elapsed(self, now: float) -> float | None:
        if self.started is None:
            return None
        return (self.ended if self.ended is not None else now) - self.started


@dataclass
class _Binding:
    """What one thread is running: KFP logs a task's lines from the thread that runs it."""

    name: str
    started: float
    key: str | None = None
    finished: bool = False
    pending: list[str] = field(default_factory=list)  # lines before the task's folder is known


class RunMonitor:
    """Task states and per-task log files of one local run, from what KFP logs and prints.

    Use :meth:`capture` around the run; read :meth:`snapshot` from any thread.
    """

    def __init__(
        self,
        kfp_root: Path,
        logs_dir: Path,
        plan: RunPlan,
        *,
        echo: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kfp_root = Path(kfp_root)
        self.logs_dir = Path(logs_dir)
        self.plan = plan
        self.echo = echo
        self._clock = clock
        self._lock = threading.RLock()
        self._tasks: dict[str, TaskState] = {}
        for name in plan.tasks:
            self._tasks[name] = TaskState(name, name)
        self._in_loops = {name for loop in plan.loops for name in loop.tasks}
        self._threads: dict[int, _Binding] = {}
        self._partial: dict[int, str] = {}
        self._files: dict[Path, TextIO] = {}
        self._log_paths: dict[str, Path] = {}
        self.ended: float | None = None  # set when the run is over (its tasks stop changing)

    # -- inputs ---------------------------------------------------------------------------------

    def on_record(self, thread: int, message: str) -> None:
        """A record KFP logged through the root logger (seen before any handler writes it)."""
        text = strip_ansi(message).strip()
        with self._lock:
            if match := _EXECUTING.fullmatch(text):
                self._start(thread, match["task"])
            elif match := _FINISHED.fullmatch(text):
                self._finish(thread, match["task"], match["status"])

    def write(self, thread: int, text: str) -> None:
        """Text a thread wrote to ``sys.stdout``/``sys.stderr``; routed line by line."""
        with self._lock:
            if self.echo is not None:
                self.echo.write(text)  # --verbose: exactly what KFP printed, as it printed it
            if text == _KFP_INDENT:
                return  # the files hold the component's lines as it wrote them
            buffered = self._partial.pop(thread, "") + text
            *lines, rest = buffered.split("\n")
            if rest:
                self._partial[thread] = rest
            for line in lines:
                self._line(thread, line)

    # -- reading --------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, TaskState]:
        """A copy of every task's state, by key (planned tasks first, then as they started)."""
        with self._lock:
            return {key: replace(task) for key, task in self._tasks.items()}

    def now(self) -> float:
        return self._clock()

    def failures(self) -> list[TaskState]:
        """Failed tasks, the first to fail first."""
        failed = [t for t in self.snapshot().values() if t.status is Status.FAILED]
        return sorted(failed, key=lambda t: t.ended or 0.0)

    @property
    def pipeline_log(self) -> Path:
        return self.logs_dir / PIPELINE_LOG

    # -- the state machine ----------------------------------------------------------------------

    def _start(self, thread: int, name: str) -> None:
        binding = _Binding(name, self._clock())
        self._threads[thread] = binding
        if name in self._tasks and name not in self._in_loops:
            self._bind(binding, name)  # a task outside loops: its name is its folder

    def _finish(self, thread: int, name: str, status: str) -> None:
        binding = self._threads.get(thread)
        if binding is None or binding.name != name:  # its start was not seen: count it anyway
            binding = self._threads[thread] = _Binding(name, self._clock())
        if binding.key is None:  # failed before printing its executor input
            key, n = name, 1
            while key in self._tasks and self._tasks[key].status is not Status.PENDING:
                n += 1
                key = f"{name}~{n}"
            self._bind(binding, key)
        assert binding.key is not None
        task = self._tasks[binding.key]
        task.status = Status.DONE if status == "SUCCESS" else Status.FAILED
        task.ended = self._clock()
        binding.finished = True

    def _bind(self, binding: _Binding, key: str) -> None:
        binding.key = key
        task = self._tasks.setdefault(key, TaskState(key, binding.name))
        task.status = Status.RUNNING
        task.started = task.started if task.started is not None else binding.started
        task.ended = None
        task.attempts += 1  # a retry runs in the same folder and appends to the same log
        task.log = self._log_path(key)
        for line in binding.pending:
            self._emit(task.log, line)
        binding.pending.clear()

    def _key_from_output(self, folder: str) -> str | None:
        try:
            parts = Path(folder).relative_to(self.kfp_root).parts
        except ValueError:
            return None
        return "/".join(parts[1:]) or None  # parts[0]: the pipeline run's folder

    def _line(self, thread: int, line: str) -> None:
        binding = self._threads.get(thread)
        if binding is None:
            self._emit(self.pipeline_log, line)
            return
        if binding.key is None:
            binding.pending.append(line)
            match = _OUTPUT_FILE.search(line)
            key = self._key_from_output(match["folder"]) if match else None
            if key is not None:
                self._bind(binding, key)
            return
        self._emit(self._tasks[binding.key].log or self.pipeline_log, line)
        if binding.finished and _RULE.fullmatch(line.strip()):
            del self._threads[thread]  # what the thread writes next is no task's

    def _log_path(self, key: str) -> Path:
        """``logs/<task>.log``; inside a loop ``logs/<item>/<task>.log`` (e.g. the language),
        or KFP's own folder names where the item is not a plain name or is taken."""
        if key in self._log_paths:
            return self._log_paths[key]
        relative = f"{key}.log"
        first, _, rest = key.partition("/")
        match = _ITERATION.fullmatch(first)
        loop = self.plan.loop(match["loop"], rest.rpartition("/")[2]) if match and rest else None
        if match and loop is not None and loop.labels is not None:
            label = loop.label(int(match["index"]))
            candidate = f"{label}/{rest}.log"
            taken = {p.relative_to(self.logs_dir).as_posix() for p in self._log_paths.values()}
            if _SAFE_LABEL.fullmatch(label) and candidate not in taken:
                relative = candidate
        path = self._log_paths[key] = self.logs_dir / relative
        return path

    def _emit(self, path: Path, line: str) -> None:
        handle = self._files.get(path)
        if handle is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = self._files[path] = path.open("a", encoding="utf-8")
        handle.write(strip_ansi(line) + "\n")
        handle.flush()  # a failing run's tail must be on disk when we read it

    def close(self) -> None:
        with self._lock:
            for thread, rest in list(self._partial.items()):
                self._line(thread, rest)
            self._partial.clear()
            for handle in self._files.values():
                handle.close()
            self._files.clear()
            self.ended = self._clock()

    # -- capturing KFP's output -----------------------------------------------------------------

    @contextlib.contextmanager
    def capture(self) -> Iterator[None]:
        """Route KFP's logs and the tasks' output into the log files while the block runs."""
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        root = logging.getLogger()
        records = _RecordFilter(self)
        stdout, stderr = sys.stdout, sys.stderr
        saved_handlers, saved_level = root.handlers[:], root.level
        router = _Router(self)
        # Outside KFP's own logging context (between tasks, or when two threads' swaps race)
        # the root logger's handlers are these: they must not write to the terminal either.
        handler = logging.StreamHandler(router)
        handler.setFormatter(logging.Formatter(_RECORD_FORMAT, "%H:%M:%S"))
        root.handlers[:] = [handler]
        root.setLevel(logging.INFO)
        root.addFilter(records)
        sys.stdout = sys.stderr = router
        print_function = builtins.print
        try:
            yield
        finally:
            builtins.print = print_function  # see _KFP_INDENT
            sys.stdout, sys.stderr = stdout, stderr
            root.removeFilter(records)
            root.handlers[:] = saved_handlers
            root.setLevel(saved_level)
            self.close()


class _RecordFilter(logging.Filter):
    def __init__(self, monitor: RunMonitor) -> None:
        super().__init__()
        self.monitor = monitor

    def filter(self, record: logging.LogRecord) -> bool:
        self.monitor.on_record(record.thread or 0, record.getMessage())
        return True  # observe only: the record goes on to the handlers


class _Router(io.TextIOBase):
    """Stands in for ``sys.stdout``/``sys.stderr`` during the run."""

    def __init__(self, monitor: RunMonitor) -> None:
        super().__init__()
        self.monitor = monitor

    def write(self, text: str) -> int:
        self.monitor.write(threading.get_ident(), text)
        return len(text)

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:
        return "utf-8"


def kfp_version_note() -> str | None:
    """A line for the user when the installed kfp is not the one these patterns were read
    from (the run still works; the view may then not see the tasks)."""
    import kfp

    if kfp.__version__ == KFP_TESTED or kfp.__version__.startswith(KFP_TESTED + "."):
        return None
    return (
        f"kfp {kfp.__version__}: the live view reads kfp {KFP_TESTED}'s local-runner logs; "
        "if tasks stay pending, run with --verbose"
    )


def loop_progress(loop: LoopPlan, tasks: Mapping[str, TaskState]) -> list[Status]:
    """Each iteration's state: failed if a task failed, done when all its tasks are done."""
    count = len(loop.labels) if loop.labels is not None else 0
    by_index: dict[int, list[TaskState]] = {}
    for task in tasks.values():
        where = task.iteration
        if where and where[0] == loop.name and task.name in loop.tasks:
            by_index.setdefault(where[1], []).append(task)
            count = max(count, where[1] + 1)
    states = []
    for index in range(count):
        members = by_index.get(index, [])
        if any(t.status is Status.FAILED for t in members):
            states.append(Status.FAILED)
        elif (
            members
            and all(t.status is Status.DONE for t in members)
            and (len(members) >= len(loop.tasks))
        ):
            states.append(Status.DONE)
        elif members:
            states.append(Status.RUNNING)
        else:
            states.append(Status.PENDING)
    return states


def log_tail(path: Path, lines: int = 15) -> list[str]:
    """The last ``lines`` non-blank lines the task's component printed in its last attempt
    (KFP's framing around them left out)."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    starts = [i for i, line in enumerate(text) if line.endswith("Streamed logs:")]
    if starts:
        text = text[starts[-1] + 1 :]
        end = next((i for i, line in enumerate(text) if _FINISHED.search(line)), len(text))
        text = text[:end]
    return [line for line in text if line.strip()][-lines:]
