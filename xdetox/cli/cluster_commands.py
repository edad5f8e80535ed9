"""``xdetox submit``, ``xdetox schedule`` and ``xdetox runs``: a Kubeflow Pipelines server.

stdout carries the summary (names, ids, links); progress and kfp's chatter go to stderr.
Tokens are read from flags or the environment and are never printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable

from xdetox.config import load_config
from xdetox.pipelines.kfp_auth import HOST_ENV, TOKEN_ENV, Connection, resolve_connection

_STATE_STYLES = {"SUCCEEDED": "green", "FAILED": "red", "CANCELED": "red", "RUNNING": "yellow"}


def _connection_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("cluster connection")
    group.add_argument(
        "--host",
        metavar="URL",
        help=f"KFP API or UI address, e.g. http://localhost:8080 (default: ${HOST_ENV})",
    )
    group.add_argument(
        "--namespace",
        metavar="NS",
        help="your profile namespace on a multi-user KFP (Kubeflow platform)",
    )
    auth = group.add_mutually_exclusive_group()
    auth.add_argument(
        "--token",
        metavar="TOKEN",
        help=f"bearer token (default: ${TOKEN_ENV}; prefer the variable: flags show in `ps`)",
    )
    auth.add_argument(
        "--iap-client-id",
        metavar="ID",
        help="OAuth client id of the Identity-Aware Proxy in front of KFP (GCP)",
    )
    auth.add_argument(
        "--in-cluster",
        action="store_true",
        help="use the pod's projected service-account token (automatic inside a pod)",
    )


def _pipeline_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pipeline", default="detox", help="registered pipeline to send (default: detox)"
    )
    parser.add_argument(
        "--experiment", metavar="NAME", help="KFP experiment, created if absent (default: the "
        "config's name)"
    )  # fmt: skip
    parser.add_argument(
        "--param",
        dest="params",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="runtime parameter of this run only, e.g. --param training.beta=0.2 "
        "(dict parameters are merged over the recipe's values); settings that change the "
        "graph (training.method, training.mode, scoring.agreement_with, ...) need --set",
    )


def _caching_args(parser: argparse.ArgumentParser, default_text: str) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--no-cache",
        dest="caching",
        action="store_const",
        const=False,
        help="turn KFP's result caching off for every task",
    )
    group.add_argument(
        "--cache",
        dest="caching",
        action="store_const",
        const=True,
        help=f"turn caching on for every task (default: {default_text})",
    )


def register(sub, common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser(
        "submit",
        help="upload the pipeline for this config and start a run on a KFP server",
        description=(
            "Compile the pipeline from the config, upload it as pipeline xdetox-<pipeline> with "
            "version <package version>-<config hash> (reused when it exists), and create a run."
        ),
    )
    common(p)
    _connection_args(p)
    _pipeline_args(p)
    p.add_argument("--run-name", metavar="NAME", help="default: <config name>-<timestamp>")
    _caching_args(p, "as compiled: on, except scoring")
    p.add_argument("--wait", action="store_true", help="wait for the run to finish")
    p.add_argument(
        "--timeout",
        type=float,
        default=24 * 3600,
        metavar="S",
        help="with --wait: seconds to wait (default: 86400)",
    )
    p.add_argument(
        "--poll", type=float, default=10.0, metavar="S", help=argparse.SUPPRESS
    )  # seconds between status checks; tests make it short
    p.set_defaults(handler=cmd_submit)

    p = sub.add_parser(
        "schedule",
        help="create a recurring run (cron) of the pipeline on a KFP server",
        description=(
            "Like submit, but creates a recurring run. The cron has 6 fields, seconds first "
            '("0 0 6 * * *" is 06:00 daily). Missed runs are not caught up unless --catchup.'
        ),
    )
    common(p)
    _connection_args(p)
    _pipeline_args(p)
    p.add_argument("--cron", required=True, help='e.g. "0 0 6 * * *" (sec min hour dom mon dow)')
    p.add_argument("--name", metavar="NAME", help="default: <config name>-<pipeline>-schedule")
    p.add_argument(
        "--max-concurrency", type=int, default=1, metavar="N", help="runs at once (default: 1)"
    )
    p.add_argument(
        "--catchup",
        action="store_true",
        help="after a pause, run every missed interval (default: only the latest)",
    )
    _caching_args(p, "off: every scheduled run has the same inputs")
    p.set_defaults(handler=cmd_schedule)

    p = sub.add_parser(
        "runs",
        help="list recent runs on a KFP server with state and link",
        description="The most recent runs, newest first, with state, creation time and UI link.",
    )
    _connection_args(p)
    p.add_argument("--experiment", metavar="NAME", help="only this experiment")
    p.add_argument("--limit", type=int, default=20, metavar="N", help="how many (default: 20)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(handler=cmd_runs)


def _connection(args: argparse.Namespace) -> Connection:
    return resolve_connection(
        host=args.host,
        token=args.token,
        iap_client_id=args.iap_client_id,
        in_cluster=args.in_cluster,
        namespace=args.namespace,
    )


def _print_upload(conn: Connection, up) -> None:
    action = "uploaded" if up.version.created else "reused"
    print(f"pipeline    {up.package.cluster_name}  version {up.package.version_name} ({action})")
    print(f"            {conn.version_link(up.version.pipeline_id, up.version.version_id)}")
    print(f"experiment  {up.experiment}")
    if up.runtime_params:
        print(f"parameters  {', '.join(sorted(up.runtime_params))}")


def cmd_submit(args: argparse.Namespace) -> None:
    from xdetox.errors import ConfigError, XdetoxError
    from xdetox.pipelines.submit import submit, wait_for_run

    if args.timeout <= 0 or args.poll <= 0:
        raise ConfigError("--timeout and --poll must be positive")
    config = load_config(args.config, args.overrides)
    conn = _connection(args)
    client, result = submit(
        conn,
        config,
        pipeline=args.pipeline,
        experiment=args.experiment,
        run_name=args.run_name,
        params=args.params,
        caching=args.caching,
    )
    _print_upload(conn, result.uploaded)
    print(f"run         {result.run_name}  id {result.run_id}")
    print(f"            {result.link}")
    sys.stdout.flush()
    if args.wait:
        state = wait_for_run(client, conn, result.run_id, args.timeout, args.poll)
        if state != "SUCCEEDED":
            raise XdetoxError(f"run {result.run_id} finished {state}: {result.link}")
        print(f"state       {state}")


def cmd_schedule(args: argparse.Namespace) -> None:
    from xdetox.pipelines.cron import validate_cron
    from xdetox.pipelines.submit import schedule

    config = load_config(args.config, args.overrides)
    validate_cron(args.cron)  # before any compile or network call
    conn = _connection(args)
    result = schedule(
        conn,
        config,
        args.cron,
        pipeline=args.pipeline,
        experiment=args.experiment,
        name=args.name,
        max_concurrency=args.max_concurrency,
        catchup=args.catchup,
        params=args.params,
        caching=False if args.caching is None else args.caching,
    )
    _print_upload(conn, result.uploaded)
    catchup = "catch-up on" if args.catchup else "no catch-up"
    print(f"schedule    {result.name}  id {result.recurring_run_id}")
    print(f"            cron {result.cron!r}, max concurrency {args.max_concurrency}, {catchup}")


def _created(value: dt.datetime | None) -> str:
    if value is None:
        return "-"
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def cmd_runs(args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from xdetox.pipelines.kfp_connect import connect
    from xdetox.pipelines.submit import list_runs

    conn = _connection(args)
    rows = list_runs(connect(conn), conn, experiment=args.experiment, limit=args.limit)
    # Piped output keeps whole lines (links must stay clickable and greppable).
    console = Console(width=None if sys.stdout.isatty() else 10_000)
    if not rows:
        console.print("no runs" + (f" in experiment {args.experiment}" if args.experiment else ""))
        return
    table = Table(title=f"runs on {conn.host}", title_justify="left")
    table.add_column("created")
    table.add_column("state")
    table.add_column("name")
    table.add_column("link", overflow="fold")
    for row in rows:
        style = _STATE_STYLES.get(row.state.upper(), "")
        state = f"[{style}]{row.state}[/]" if style else row.state
        table.add_row(_created(row.created_at), state, escape(row.name), row.link)
    console.print(table)
