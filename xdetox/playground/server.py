"""The HTTP side of ``xdetox compare``: the page, its two JSON endpoints, nothing else.

* ``GET /``: ``page.html`` (package data), one self-contained page: inline CSS and plain
  JavaScript, no CDN, no font, no request that leaves the server.
* ``GET /api/info``: models, languages, example prompts, scorer and sampling settings.
* ``POST /api/generate``: ``{language, prompt, k}`` → k scored continuations per model;
  a request the comparison refuses is a 400 ``{"error": ...}`` the page shows.

The standard library's ``ThreadingHTTPServer`` rather than Gradio: why is in the package's
docstring (:mod:`xdetox.playground`). Generation itself is serialised by the comparison's lock.

Bound to 127.0.0.1 by default, the page is for the person at this machine. Two cheap guards keep
other web pages that person has open from using it: on a loopback address a request must name
the server itself in its ``Host`` header (a DNS-rebinding page names its own domain), and
``POST`` takes only ``application/json``, which a page of another origin cannot send without a
CORS preflight this server never approves.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import signal
import socket
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, TextIO

from xdetox.errors import XdetoxError
from xdetox.playground.session import Comparison, RequestError

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
# The page loads nothing from elsewhere; the policy makes the browser hold it to that.
CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


def page_html() -> bytes:
    return resources.files("xdetox.playground").joinpath("page.html").read_bytes()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class CompareServer(ThreadingHTTPServer):
    """A threading HTTP server that answers from one :class:`Comparison`."""

    daemon_threads = True  # a slow request does not keep Ctrl-C from ending the process

    def __init__(self, comparison: Comparison, host: str = "127.0.0.1", port: int = 0):
        self.comparison = comparison
        self.page = page_html()
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            super().__init__((host, port), CompareHandler)
        except OSError as exc:
            raise XdetoxError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self.host = host
        self.port = int(self.server_address[1])
        self.loopback = is_loopback(host)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def allowed_hosts(self) -> set[str]:
        names = {self.host, "localhost", "127.0.0.1", "[::1]"}
        if ":" in self.host:
            names.add(f"[{self.host}]")
        return {f"{name}:{self.port}" for name in names}


class CompareHandler(BaseHTTPRequestHandler):
    server: CompareServer
    server_version = "xdetox-compare"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    # -- responses ---------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", CSP)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self._send(status, body, "application/json; charset=utf-8")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def _host_ok(self) -> bool:
        if not self.server.loopback:
            return True
        if self.headers.get("Host", "") in self.server.allowed_hosts():
            return True
        self._error(HTTPStatus.FORBIDDEN, "unexpected Host header")
        return False

    # -- routes ------------------------------------------------------------------------------
    def do_GET(self) -> None:
        if not self._host_ok():
            return
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, self.server.page, "text/html; charset=utf-8")
        elif path == "/api/info":
            self._json(HTTPStatus.OK, self.server.comparison.info())
        else:
            self._error(HTTPStatus.NOT_FOUND, f"no such page: {path}")

    do_HEAD = do_GET

    def do_POST(self) -> None:
        if not self._host_ok():
            return
        if self.path.split("?", 1)[0] != "/api/generate":
            self._error(HTTPStatus.NOT_FOUND, f"no such endpoint: {self.path}")
            return
        payload = self._read_json()
        if payload is None:
            return
        try:
            answer = self.server.comparison.generate(payload)
        except RequestError as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
        except Exception as exc:  # a bug or the machine (out of memory): say so, keep serving
            log.exception("xdetox compare: generation failed")
            first = (str(exc).strip().splitlines() or [""])[0]
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {first}")
        else:
            self._json(HTTPStatus.OK, answer)

    def _read_json(self) -> Any | None:
        """The request's JSON body, or None once an error has been sent."""
        content_type = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if content_type != "application/json":
            self.close_connection = True
            self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send the request as application/json")
            return None
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True  # the body, if any, is not read: drop the connection
            self._error(HTTPStatus.BAD_REQUEST, f"a JSON body of at most {MAX_BODY} bytes")
            return None
        try:
            return json.loads(self.rfile.read(length).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self._error(HTTPStatus.BAD_REQUEST, f"the body is not JSON: {exc}")
            return None


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop_on_signals() -> None:
    """Ctrl-C (SIGINT) and SIGTERM stop the server, whatever the parent left: a process started
    in the background by a non-interactive shell (or by a parent that ignores SIGINT) inherits
    SIGINT ignored, and Python then installs no KeyboardInterrupt for it."""
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread (tests serve in threads)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)


def serve(
    comparison: Comparison, host: str = "127.0.0.1", port: int = 0, out: TextIO | None = None
) -> None:
    """Serve until Ctrl-C, then close the socket and return (the command exits 0).

    The address line goes to ``out`` (stdout) only once the socket listens, so a script or a
    test that waits for it can connect at once.
    """
    out = out or sys.stdout
    server = CompareServer(comparison, host, port)
    count = len(comparison.models)
    if not server.loopback:
        print(
            f"xdetox compare: warning: listening on {host}, not a loopback address: anyone who "
            "can reach this machine can use the page (it has no login)",
            file=sys.stderr,
        )
    print(
        f"xdetox compare: serving {count} model{'s' if count != 1 else ''} at {server.url} "
        "(Ctrl-C stops)",
        file=out,
        flush=True,
    )
    _stop_on_signals()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("xdetox compare: stopped", file=sys.stderr)
    finally:
        server.server_close()
