"""A small in-memory server speaking the KFP v2beta1 REST API, for tests of ``xdetox submit``.

It answers the paths, methods, query parameters and JSON shapes that the installed kfp 2.17.0
client (``kfp_server_api``) uses, behaves like the real API server where a client can tell
(uploading a pipeline also creates a first version named after it; duplicate names are 409;
empty lists are left out of responses, as protojson does), and records every request so tests
can assert what arrived: method, path, query, headers, body, parsed JSON and uploaded files.

Switches:
    token         require ``Authorization: Bearer <token>`` (401 otherwise, like Istio/IAP)
    finish_state  state a run reports once fetched by id (e.g. SUCCEEDED, FAILED); None keeps
                  runs PENDING, so ``--wait`` runs into its timeout
    multi_user    what healthz reports
    login_page    answer everything with a 200 HTML page, as an auth proxy's login does

Only ever binds 127.0.0.1 on an ephemeral port.
"""

from __future__ import annotations

import datetime as dt
import email.parser
import email.policy
import itertools
import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

API = "/apis/v2beta1"
# Filter operations as kfp's client sends them (numbers) and as the proto names them (strings).
_OPS = {1: "EQUALS", 2: "NOT_EQUALS", 9: "IS_SUBSTRING"}


@dataclass
class Recorded:
    """One request as it arrived."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    json: Any = None
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    status: int = 0

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


class _ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class FakeKFP:
    """The server's state and its HTTP front. Use as a context manager or start()/stop()."""

    def __init__(
        self,
        token: str | None = None,
        finish_state: str | None = None,
        multi_user: bool = False,
        login_page: bool = False,
    ):
        self.token = token
        self.finish_state = finish_state
        self.multi_user = multi_user
        self.login_page = login_page
        self.requests: list[Recorded] = []
        self.experiments: dict[str, dict] = {}
        self.pipelines: dict[str, dict] = {}
        self.versions: dict[str, dict] = {}  # version id -> version (with pipeline_id)
        self.specs: dict[str, str] = {}  # version id -> uploaded YAML text
        self.runs: dict[str, dict] = {}
        self.recurring_runs: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._clock = itertools.count()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle ---------------------------------------------------------------------------
    def start(self) -> FakeKFP:
        server = self

        class Handler(_Handler):
            fake = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeKFP:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # helpers for tests -------------------------------------------------------------------
    def calls(self, method: str, path: str) -> list[Recorded]:
        """Recorded requests with this method and path (path relative to /apis/v2beta1)."""
        return [r for r in self.requests if r.method == method and r.path == API + path]

    def versions_of(self, pipeline_name: str) -> list[dict]:
        ids = [p["pipeline_id"] for p in self.pipelines.values() if p["name"] == pipeline_name]
        return [v for v in self.versions.values() if v["pipeline_id"] in ids]

    def add_run(self, experiment_id: str, display_name: str, state: str) -> dict:
        """Put a run in the store directly (e.g. an old run for ``xdetox runs`` to list)."""
        with self._lock:
            run = {
                "run_id": str(uuid.uuid4()),
                "experiment_id": experiment_id,
                "display_name": display_name,
                "state": state,
                "created_at": self._now(),
                "storage_state": "AVAILABLE",
            }
            self.runs[run["run_id"]] = run
        return run

    # internals ---------------------------------------------------------------------------
    def _now(self) -> str:
        # A clock that moves one second per object keeps "newest first" deterministic.
        start = dt.datetime(2026, 10, 1, 12, 0, 0, tzinfo=dt.UTC)
        return (start + dt.timedelta(seconds=next(self._clock))).strftime("%Y-%m-%dT%H:%M:%SZ")

    def handle(self, req: Recorded) -> tuple[int, Any]:
        if self.token is not None and req.headers.get("authorization") != f"Bearer {self.token}":
            return 401, {"error": "Unauthenticated", "code": 16, "message": "invalid token"}
        if not req.path.startswith(API + "/"):
            raise _ApiError(404, f"Not Found: {req.path}")
        route = req.path[len(API) :]
        parts = [unquote(p) for p in route.strip("/").split("/")]
        with self._lock:
            return 200, self._route(req, parts)

    def _route(self, req: Recorded, parts: list[str]) -> Any:
        m = req.method
        match parts:
            case ["healthz"] if m == "GET":
                return {"multi_user": self.multi_user, "pipeline_store": "database"}
            case ["experiments"] if m == "POST":
                return self._create_experiment(req.json or {})
            case ["experiments"] if m == "GET":
                return self._list(req, self.experiments.values(), "experiments")
            case ["experiments", exp_id] if m == "GET":
                return self._get(self.experiments, exp_id, "experiment")
            case ["pipelines", "upload"] if m == "POST":
                return self._upload_pipeline(req)
            case ["pipelines", "upload_version"] if m == "POST":
                return self._upload_version(req)
            case ["pipelines"] if m == "GET":
                items = [
                    p
                    for p in self.pipelines.values()
                    if p.get("namespace", "") == (req.param("namespace") or "")
                ]
                return self._list(req, items, "pipelines")
            case ["pipelines", "names", name] if m == "GET":
                for p in self.pipelines.values():
                    if p["name"] == name:
                        return p
                raise _ApiError(404, f"pipeline {name} not found")
            case ["pipelines", pipeline_id] if m == "GET":
                return self._get(self.pipelines, pipeline_id, "pipeline")
            case ["pipelines", pipeline_id, "versions"] if m == "GET":
                self._get(self.pipelines, pipeline_id, "pipeline")
                items = [v for v in self.versions.values() if v["pipeline_id"] == pipeline_id]
                return self._list(req, items, "pipeline_versions")
            case ["pipelines", pipeline_id, "versions", version_id] if m == "GET":
                version = self._get(self.versions, version_id, "pipeline version")
                if version["pipeline_id"] != pipeline_id:
                    raise _ApiError(404, f"pipeline version {version_id} not found")
                return version
            case ["runs"] if m == "POST":
                return self._create_run(req.json or {})
            case ["runs"] if m == "GET":
                items = list(self.runs.values())
                if req.param("experiment_id"):
                    items = [r for r in items if r["experiment_id"] == req.param("experiment_id")]
                return self._list(req, items, "runs")
            case ["runs", run_id] if m == "GET":
                run = self._get(self.runs, run_id, "run")
                if self.finish_state and run.get("recurring_run_id") is None:
                    run["state"] = self.finish_state
                    run.setdefault("finished_at", self._now())
                return run
            case ["recurringruns"] if m == "POST":
                return self._create_recurring_run(req.json or {})
            case ["recurringruns"] if m == "GET":
                items = list(self.recurring_runs.values())
                if req.param("experiment_id"):
                    items = [r for r in items if r["experiment_id"] == req.param("experiment_id")]
                return self._list(req, items, "recurringRuns")
            case ["recurringruns", job_id] if m == "GET":
                return self._get(self.recurring_runs, job_id, "recurring run")
        raise _ApiError(404, f"Not Found: {m} {req.path}")

    def _get(self, store: dict[str, dict], key: str, what: str) -> dict:
        if key not in store:
            raise _ApiError(404, f"{what} {key} not found")
        return store[key]

    def _list(self, req: Recorded, items, key: str) -> dict:
        items = [i for i in items if _matches(i, req.param("filter"))]
        sort_by = (req.param("sort_by") or "").split()
        if sort_by:
            items.sort(key=lambda i: str(i.get(sort_by[0], "")), reverse="desc" in sort_by[1:])
        start = int(req.param("page_token") or 0)
        size = int(req.param("page_size") or 10) or 10
        page = items[start : start + size]
        out: dict[str, Any] = {"total_size": len(items)}
        if page:  # protojson leaves empty repeated fields out
            out[key] = page
        if start + size < len(items):
            out["next_page_token"] = str(start + size)
        return out

    def _create_experiment(self, body: dict) -> dict:
        name = body.get("display_name")
        if not name:
            raise _ApiError(400, "experiment display_name is required")
        if any(e["display_name"] == name for e in self.experiments.values()):
            raise _ApiError(409, f"experiment {name} already exists")
        exp = {
            "experiment_id": str(uuid.uuid4()),
            "display_name": name,
            "description": body.get("description") or "",
            "namespace": body.get("namespace") or "",
            "created_at": self._now(),
            "storage_state": "AVAILABLE",
        }
        self.experiments[exp["experiment_id"]] = exp
        return exp

    def _uploaded(self, req: Recorded) -> tuple[str, str]:
        if "uploadfile" not in req.files:
            raise _ApiError(400, "Failed to read pipeline from file")
        filename, data = req.files["uploadfile"]
        return filename, data.decode("utf-8")

    def _new_version(self, pipeline_id: str, name: str, description: str, spec: str) -> dict:
        if any(
            v["pipeline_id"] == pipeline_id and v["name"] == name for v in self.versions.values()
        ):
            raise _ApiError(409, "Failed to create a pipeline version")
        version = {
            "pipeline_id": pipeline_id,
            "pipeline_version_id": str(uuid.uuid4()),
            "name": name,
            "display_name": name,
            "description": description,
            "created_at": self._now(),
            "pipeline_spec": _spec_struct(spec),
        }
        self.versions[version["pipeline_version_id"]] = version
        self.specs[version["pipeline_version_id"]] = spec
        return version

    def _upload_pipeline(self, req: Recorded) -> dict:
        filename, spec = self._uploaded(req)
        name = req.param("display_name") or req.param("name") or filename
        namespace = req.param("namespace") or ""
        if any(
            p["name"] == name and p.get("namespace", "") == namespace
            for p in self.pipelines.values()
        ):
            raise _ApiError(409, "Failed to create a pipeline and a pipeline version")
        pipeline = {
            "pipeline_id": str(uuid.uuid4()),
            "name": name,
            "display_name": name,
            "description": req.param("description") or "",
            "created_at": self._now(),
        }
        if namespace:
            pipeline["namespace"] = namespace
        self.pipelines[pipeline["pipeline_id"]] = pipeline
        # The real server also creates a first version, named after the pipeline.
        self._new_version(pipeline["pipeline_id"], name, pipeline["description"], spec)
        return pipeline

    def _upload_version(self, req: Recorded) -> dict:
        filename, spec = self._uploaded(req)
        pipeline_id = req.param("pipelineid")
        if not pipeline_id or pipeline_id not in self.pipelines:
            raise _ApiError(400, "Failed to create a pipeline version")
        name = req.param("display_name") or req.param("name") or filename
        return self._new_version(pipeline_id, name, req.param("description") or "", spec)

    def _check_version_ref(self, body: dict) -> None:
        if body.get("experiment_id") and body["experiment_id"] not in self.experiments:
            raise _ApiError(404, f"experiment {body['experiment_id']} not found")
        ref = body.get("pipeline_version_reference") or {}
        if not body.get("pipeline_spec"):
            version = self.versions.get(ref.get("pipeline_version_id", ""))
            if version is None or version["pipeline_id"] != ref.get("pipeline_id"):
                raise _ApiError(400, "pipeline version reference not found")

    def _create_run(self, body: dict) -> dict:
        self._check_version_ref(body)
        run = dict(body)
        run.update(
            run_id=str(uuid.uuid4()),
            state="PENDING",
            created_at=self._now(),
            storage_state="AVAILABLE",
            pipeline_version_id=(body.get("pipeline_version_reference") or {}).get(
                "pipeline_version_id"
            ),
        )
        self.runs[run["run_id"]] = run
        return run

    def _create_recurring_run(self, body: dict) -> dict:
        self._check_version_ref(body)
        trigger = body.get("trigger") or {}
        if not (trigger.get("cron_schedule") or trigger.get("periodic_schedule")):
            raise _ApiError(400, "a trigger is required")
        job = dict(body)
        job.update(
            recurring_run_id=str(uuid.uuid4()),
            created_at=self._now(),
            updated_at=self._now(),
            status="ENABLED" if body.get("mode") == "ENABLE" else "DISABLED",
        )
        self.recurring_runs[job["recurring_run_id"]] = job
        return job


def _spec_struct(text: str) -> dict:
    """The spec as the real server returns it: one document, or spec and platform spec."""
    docs = [d for d in yaml.safe_load_all(text) if d]
    if len(docs) == 1:
        return docs[0]
    platform: dict = {}
    for doc in docs[1:]:
        platform.update(doc)
    return {"pipeline_spec": docs[0], "platform_spec": platform}


def _matches(item: dict, raw_filter: str | None) -> bool:
    if not raw_filter:
        return True
    predicates = json.loads(raw_filter).get("predicates", [])
    for pred in predicates:
        op = pred.get("operation")
        op = _OPS.get(op, op) if isinstance(op, int) else op
        value = pred.get("string_value", pred.get("stringValue"))
        actual = str(item.get(pred["key"], ""))
        if op == "EQUALS" and actual != value:
            return False
        if op == "NOT_EQUALS" and actual == value:
            return False
        if op == "IS_SUBSTRING" and value not in actual:
            return False
        if op not in {"EQUALS", "NOT_EQUALS", "IS_SUBSTRING"}:
            raise _ApiError(400, f"unsupported filter operation {op}")
    return True


def _parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str, bytes]]:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    files: dict[str, tuple[str, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            files[name] = (part.get_filename() or "", part.get_payload(decode=True) or b"")
    return files


class _Handler(BaseHTTPRequestHandler):
    fake: FakeKFP  # set on the subclass made by FakeKFP.start

    def log_message(self, format, *args):  # keep pytest output clean
        pass

    def _serve(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        req = Recorded(
            method=self.command,
            path=url.path,
            query=parse_qs(url.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        content_type = self.headers.get("Content-Type", "")
        try:
            if content_type.startswith("multipart/form-data"):
                req.files = _parse_multipart(content_type, body)
            elif body:
                req.json = json.loads(body)
            status, payload = self.fake.handle(req)
        except _ApiError as exc:
            status, payload = exc.status, {"error": exc.message, "message": exc.message}
        except Exception as exc:  # a bug in the fake: make it visible in the test
            status, payload = 500, {"error": f"fake server: {type(exc).__name__}: {exc}"}
        req.status = status
        with self.fake._lock:
            self.fake.requests.append(req)
        data, content_type = json.dumps(payload).encode(), "application/json"
        if self.fake.login_page:
            status, content_type = 200, "text/html; charset=utf-8"
            data = b"<html><body><form>Log in</form></body></html>"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = do_PATCH = _serve
