"""Send pipelines to a Kubeflow Pipelines server: runs, recurring runs, and a look at recent runs.

The flow of ``submit`` and ``schedule``: compile the registered pipeline from the config (local,
so config and ``--param`` mistakes show before any network call), connect, upload it by name as
the version for this recipe (reused when it exists: see
:mod:`xdetox.pipelines.upload`), find or create the experiment, then create the run or the recurring
run from that pipeline version.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any

import kfp

from xdetox.config import Config
from xdetox.errors import ConfigError, XdetoxError
from xdetox.pipelines.cron import validate_cron
from xdetox.pipelines.kfp_auth import Connection
from xdetox.pipelines.kfp_connect import connect, kfp_call
from xdetox.pipelines.registry import PARAMETER_SECTIONS, SHAPE_KEYS
from xdetox.pipelines.run_params import parse_params
from xdetox.pipelines.upload import (
    PipelinePackage,
    VersionRef,
    compiled_package,
    ensure_pipeline_version,
)

log = logging.getLogger(__name__)

# kfp's wait_for_run_completion stops only on succeeded/failed/skipped/error and would wait out
# its whole timeout on a run cancelled in the UI; this list ends the wait on every final state.
FINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "SKIPPED", "CANCELED", "ERROR"})
PAGE_SIZE = 100


@dataclass(frozen=True)
class Uploaded:
    """What ``submit`` and ``schedule`` share: the pipeline version and the experiment."""

    package: PipelinePackage
    version: VersionRef
    experiment: str
    experiment_id: str
    runtime_params: dict[str, Any]


@dataclass(frozen=True)
class SubmitResult:
    uploaded: Uploaded
    run_id: str
    run_name: str
    link: str


@dataclass(frozen=True)
class ScheduleResult:
    uploaded: Uploaded
    recurring_run_id: str
    name: str
    cron: str


@dataclass(frozen=True)
class RunRow:
    """One line of ``xdetox runs``."""

    run_id: str
    name: str
    state: str
    created_at: dt.datetime | None
    link: str


def default_run_name(config: Config) -> str:
    return f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def ensure_experiment(client: kfp.Client, conn: Connection, name: str) -> str:
    """The id of experiment ``name``, created if absent (in ``conn.namespace`` when given)."""
    with kfp_call(conn, f"finding or creating experiment {name!r}"):
        return client.create_experiment(name, namespace=conn.namespace).experiment_id


def upload_for_run(
    conn: Connection,
    config: Config,
    pipeline: str,
    experiment: str | None,
    params: list[str],
    caching: bool | None,
    client: kfp.Client | None = None,
) -> tuple[kfp.Client, Uploaded]:
    """Compile, check ``--param``s, connect, upload the version, ensure the experiment."""
    with compiled_package(config, pipeline, caching) as package:
        runtime = parse_params(
            params, package.spec, PARAMETER_SECTIONS.get(pipeline), SHAPE_KEYS.get(pipeline, ())
        )
        client = client or connect(conn)
        version = ensure_pipeline_version(client, conn, package)
    experiment = experiment or config.name
    experiment_id = ensure_experiment(client, conn, experiment)
    return client, Uploaded(package, version, experiment, experiment_id, runtime)


def submit(
    conn: Connection,
    config: Config,
    pipeline: str = "detox",
    experiment: str | None = None,
    run_name: str | None = None,
    params: list[str] | None = None,
    caching: bool | None = None,
    client: kfp.Client | None = None,
) -> tuple[kfp.Client, SubmitResult]:
    """Create one run of ``pipeline`` built from ``config``; return the client for waiting."""
    client, up = upload_for_run(conn, config, pipeline, experiment, params or [], caching, client)
    run_name = run_name or default_run_name(config)
    with kfp_call(conn, f"creating run {run_name!r}"):
        run = client.run_pipeline(
            up.experiment_id,
            run_name,
            params=up.runtime_params,
            pipeline_id=up.version.pipeline_id,
            version_id=up.version.version_id,
        )
    return client, SubmitResult(up, run.run_id, run_name, conn.run_link(run.run_id))


def _recurring_names(client: kfp.Client, experiment_id: str) -> dict[str, str]:
    names: dict[str, str] = {}
    token = ""
    while True:
        response = client.list_recurring_runs(
            page_token=token, page_size=PAGE_SIZE, experiment_id=experiment_id
        )
        for job in response.recurring_runs or []:
            names[job.display_name] = job.recurring_run_id
        token = response.next_page_token or ""
        if not token:
            return names


def schedule(
    conn: Connection,
    config: Config,
    cron: str,
    pipeline: str = "detox",
    experiment: str | None = None,
    name: str | None = None,
    max_concurrency: int = 1,
    catchup: bool = False,
    params: list[str] | None = None,
    caching: bool | None = False,
    client: kfp.Client | None = None,
) -> ScheduleResult:
    """Create a recurring run; no catch-up unless asked (a paused schedule must not backfill).

    Caching defaults to off: every scheduled run has the same inputs, so with caching on the
    cluster would answer each one from the first run's cache instead of running it again.
    """
    cron = validate_cron(cron)
    if max_concurrency < 1:
        raise ConfigError(f"--max-concurrency {max_concurrency}: must be at least 1")
    name = name or f"{config.name}-{pipeline}-schedule"
    client, up = upload_for_run(conn, config, pipeline, experiment, params or [], caching, client)
    with kfp_call(conn, f"listing recurring runs of experiment {up.experiment!r}"):
        existing = _recurring_names(client, up.experiment_id)
    if name in existing:
        # A second schedule of the same name would run everything twice: refuse.
        raise XdetoxError(
            f"a recurring run named {name!r} already exists in experiment {up.experiment!r} "
            f"(id {existing[name]}): disable or delete it first, or choose another --name"
        )
    with kfp_call(conn, f"creating recurring run {name!r}"):
        job = client.create_recurring_run(
            up.experiment_id,
            name,
            description=up.package.description,
            cron_expression=cron,
            max_concurrency=max_concurrency,
            no_catchup=not catchup,
            params=up.runtime_params,
            pipeline_id=up.version.pipeline_id,
            version_id=up.version.version_id,
        )
    return ScheduleResult(up, job.recurring_run_id, name, cron)


def wait_for_run(
    client: kfp.Client, conn: Connection, run_id: str, timeout: float, poll: float = 10.0
) -> str:
    """Poll the run until it reaches a final state; return that state (upper case)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        with kfp_call(conn, f"checking run {run_id}"):
            state = str(client.get_run(run_id).state or "UNKNOWN").upper()
        if state != last:
            log.info("run %s: %s", run_id, state)
            last = state
        if state in FINAL_STATES:
            return state
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise XdetoxError(
                f"run {run_id} still {state} after {timeout:g} s; it goes on running on the "
                f"cluster: {conn.run_link(run_id)}"
            )
        time.sleep(min(poll, remaining))


def list_runs(
    client: kfp.Client, conn: Connection, experiment: str | None = None, limit: int = 20
) -> list[RunRow]:
    """The ``limit`` most recent runs, newest first, of one experiment or of all."""
    if not 1 <= limit <= 200:
        raise ConfigError(f"--limit {limit}: must be between 1 and 200")
    experiment_id = None
    if experiment:
        with kfp_call(conn, f"looking up experiment {experiment!r}"):
            try:
                experiment_id = client.get_experiment(
                    experiment_name=experiment, namespace=conn.namespace
                ).experiment_id
            except ValueError as exc:  # kfp's way of saying "no such experiment"
                if not str(exc).startswith("No experiment is found"):
                    raise
        if experiment_id is None:
            with kfp_call(conn, "listing experiments"):
                recent = client.list_experiments(
                    page_size=10, sort_by="created_at desc", namespace=conn.namespace
                ).experiments
            known = ", ".join(e.display_name for e in recent or []) or "none"
            raise XdetoxError(
                f"unknown experiment {experiment!r} on {conn.host} (recent ones: {known})"
            )
    with kfp_call(conn, "listing runs"):
        response = client.list_runs(
            page_size=limit,
            sort_by="created_at desc",
            experiment_id=experiment_id,
            namespace=conn.namespace,
        )
    return [
        RunRow(
            run_id=run.run_id,
            name=run.display_name or "",
            state=str(run.state or "UNKNOWN"),
            created_at=run.created_at,
            link=conn.run_link(run.run_id),
        )
        for run in response.runs or []
    ]
