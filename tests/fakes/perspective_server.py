"""A local server speaking the Perspective API's protocol, for tests and benchmarks.

What it serves, as Google's endpoint does (Perspective API developer documentation,
developers.perspectiveapi.com, and the ``commentanalyzer v1alpha1`` discovery document):

* ``GET /$discovery/rest?version=v1alpha1``: a minimal but faithful discovery document for
  ``commentanalyzer v1alpha1`` (``comments.analyze``, ``batchPath: batch``, ``rootUrl`` pointing
  back at this server);
* ``POST /v1alpha1/comments:analyze?key=…``: an ``AnalyzeCommentRequest`` → an
  ``AnalyzeCommentResponse`` with ``attributeScores.NAME.summaryScore.value``;
* ``POST /batch``: ``multipart/mixed`` of ``application/http`` parts, answered part by part with
  ``Content-ID: <response-…>``, as Google's batch endpoint does.

Its scores are deterministic functions of (attribute, text) (:func:`expected_score`), never 0,
so a test can tell a real score from a fabricated one and a score attached to the wrong text.

Misbehaviour, all switchable (:class:`Behaviour`): a quota (token bucket over items: each item
of a batch counts) answered with 429 ``RESOURCE_EXHAUSTED``; injected 429s, 5xx and slow replies
on chosen attempts of chosen texts; whole-batch 503s; languages that some attributes do not
support (400 ``LANGUAGE_NOT_SUPPORTED_BY_ATTRIBUTE`` naming one attribute, as the real API does);
``COMMENT_EMPTY`` / ``COMMENT_TOO_LONG``; ``API_KEY_INVALID`` for a wrong key; and a ``stall``
after N answered items (requests are then held, unanswered, until released), so a test can kill
a client while nothing is in flight on the client's side.

Everything received is recorded (arrival time, text, language, attributes, status) for the
tests' assertions. Binds 127.0.0.1 on an ephemeral port only.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

HOST = "127.0.0.1"
ANALYZE_PATH = "/v1alpha1/comments:analyze"
MAX_COMMENT_BYTES = 20480

# Languages the fake "knows"; anything else (e.g. "zh-hans", which the API calls "zh") is
# refused for every attribute.
KNOWN_LANGUAGES = frozenset(
    {"ar", "cs", "de", "en", "es", "fr", "hi", "id", "it", "ja", "ko", "nl", "pl", "pt", "ru"}
    | {"sv", "zh"}
)


def expected_score(text: str, attribute: str) -> float:
    """The score this server gives ``attribute`` of ``text``: in [0.001, 0.999], never 0."""
    digest = hashlib.sha256(f"{attribute}\x00{text}".encode()).hexdigest()
    return round(0.001 + 0.998 * int(digest[:8], 16) / 0xFFFFFFFF, 6)


def text_hash(text: str) -> int:
    """A stable small number per text, for choosing which texts misbehave."""
    return int(hashlib.md5(text.encode()).hexdigest()[:8], 16)


def discovery_document(root_url: str) -> dict[str, Any]:
    """A minimal discovery document for commentanalyzer v1alpha1 (the parts clients read)."""
    string = {"type": "string", "location": "query"}
    return {
        "kind": "discovery#restDescription",
        "discoveryVersion": "v1",
        "id": "commentanalyzer:v1alpha1",
        "name": "commentanalyzer",
        "version": "v1alpha1",
        "title": "Perspective Comment Analyzer API",
        "description": "The Perspective Comment Analyzer API provides information about the "
        "potential impact of a comment on a conversation.",
        "protocol": "rest",
        "rootUrl": root_url,
        "servicePath": "",
        "baseUrl": root_url,
        "batchPath": "batch",
        "parameters": {
            "key": {**string, "description": "API key."},
            "alt": {**string, "enum": ["json", "media", "proto"], "default": "json"},
            "fields": string,
            "prettyPrint": {"type": "boolean", "location": "query", "default": "true"},
            "quotaUser": string,
            "access_token": string,
            "oauth_token": string,
            "upload_protocol": string,
            "uploadType": string,
            "callback": string,
            "$.xgafv": {**string, "enum": ["1", "2"]},
        },
        "resources": {
            "comments": {
                "methods": {
                    "analyze": {
                        "id": "commentanalyzer.comments.analyze",
                        "path": "v1alpha1/comments:analyze",
                        "flatPath": "v1alpha1/comments:analyze",
                        "httpMethod": "POST",
                        "parameters": {},
                        "parameterOrder": [],
                        "request": {"$ref": "AnalyzeCommentRequest"},
                        "response": {"$ref": "AnalyzeCommentResponse"},
                        "scopes": ["https://www.googleapis.com/auth/userinfo.email"],
                        "description": "Analyzes the provided text and returns scores for "
                        "requested attributes.",
                    }
                }
            }
        },
        "schemas": {
            "AnalyzeCommentRequest": {
                "id": "AnalyzeCommentRequest",
                "type": "object",
                "properties": {
                    "comment": {"$ref": "TextEntry"},
                    "languages": {"type": "array", "items": {"type": "string"}},
                    "requestedAttributes": {
                        "type": "object",
                        "additionalProperties": {"$ref": "AttributeParameters"},
                    },
                    "doNotStore": {"type": "boolean"},
                    "spanAnnotations": {"type": "boolean"},
                    "clientToken": {"type": "string"},
                    "sessionId": {"type": "string"},
                },
            },
            "TextEntry": {
                "id": "TextEntry",
                "type": "object",
                "properties": {"text": {"type": "string"}, "type": {"type": "string"}},
            },
            "AttributeParameters": {
                "id": "AttributeParameters",
                "type": "object",
                "properties": {
                    "scoreType": {"type": "string"},
                    "scoreThreshold": {"type": "number", "format": "float"},
                },
            },
            "AnalyzeCommentResponse": {
                "id": "AnalyzeCommentResponse",
                "type": "object",
                "properties": {
                    "attributeScores": {
                        "type": "object",
                        "additionalProperties": {"$ref": "AttributeScores"},
                    },
                    "languages": {"type": "array", "items": {"type": "string"}},
                    "detectedLanguages": {"type": "array", "items": {"type": "string"}},
                    "clientToken": {"type": "string"},
                },
            },
            "AttributeScores": {
                "id": "AttributeScores",
                "type": "object",
                "properties": {
                    "summaryScore": {"$ref": "Score"},
                    "spanScores": {"type": "array", "items": {"$ref": "SpanScore"}},
                },
            },
            "Score": {
                "id": "Score",
                "type": "object",
                "properties": {
                    "value": {"type": "number", "format": "float"},
                    "type": {"type": "string"},
                },
            },
            "SpanScore": {
                "id": "SpanScore",
                "type": "object",
                "properties": {
                    "begin": {"type": "integer", "format": "int32"},
                    "end": {"type": "integer", "format": "int32"},
                    "score": {"$ref": "Score"},
                },
            },
        },
    }


# ------------------------------------------------------------------------------ error bodies
def _error(code: int, status: str, message: str, details: list | None = None) -> dict:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


def rate_limit_error() -> dict:
    return _error(
        429,
        "RESOURCE_EXHAUSTED",
        "Quota exceeded for quota metric 'Analysis requests (AnalyzeComment)' and limit "
        "'Analysis requests (AnalyzeComment) per minute' of service "
        "'commentanalyzer.googleapis.com' for consumer 'project_number:0'.",
        [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "RATE_LIMIT_EXCEEDED",
                "domain": "googleapis.com",
            }
        ],
    )


def language_error(attribute: str, language: str) -> dict:
    return _error(
        400,
        "INVALID_ARGUMENT",
        f"Attribute {attribute} does not support request languages: {language}",
        [
            {
                "@type": "type.googleapis.com/google.commentanalyzer.v1alpha1.Error",
                "errorType": "LANGUAGE_NOT_SUPPORTED_BY_ATTRIBUTE",
                "languageNotSupportedByAttributeError": {
                    "requestedLanguages": [language],
                    "attribute": attribute,
                },
            }
        ],
    )


def comment_error(error_type: str, message: str) -> dict:
    return _error(
        400,
        "INVALID_ARGUMENT",
        message,
        [
            {
                "@type": "type.googleapis.com/google.commentanalyzer.v1alpha1.Error",
                "errorType": error_type,
            }
        ],
    )


def key_error() -> dict:
    return _error(
        400,
        "INVALID_ARGUMENT",
        "API key not valid. Please pass a valid API key.",
        [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
            }
        ],
    )


# ------------------------------------------------------------------------------ behaviour
Rule = Callable[[str, int], bool]
"""``rule(text, attempt)``: whether this attempt (1, 2, …) at this text misbehaves."""


def never(text: str, attempt: int) -> bool:
    return False


@dataclass
class Behaviour:
    key: str = "test-key"
    quota_qps: float | None = None  # items per second; None: no quota
    quota_burst: float | None = None  # bucket size; None: max(1, quota_qps)
    inject_429: Rule = never
    inject_5xx: Rule = never
    slow: Rule = never  # the whole HTTP answer that holds such an item is delayed
    slow_seconds: float = 2.0
    batch_503_every: int = 0  # every Nth batch HTTP request fails whole with 503 (0: never)
    # language -> attributes without a model for it (the first one requested is reported)
    unsupported: dict[str, frozenset[str]] = field(default_factory=dict)
    stall_after: int | None = None  # hold requests once this many items were answered
    # Arrival times and the quota's refill read this clock: a test that drives the client on a
    # fake clock passes the same one, and the server then counts in the client's seconds.
    clock: Callable[[], float] = time.monotonic


@dataclass
class Item:
    """One analyze request as received (inside a batch or alone)."""

    time: float
    text: str
    language: str
    attributes: tuple[str, ...]
    key: str | None
    status: int = 0
    batch: int = 0  # serial number of the HTTP request that carried it


class FakePerspective:
    """State shared by the handler threads (see the module docstring)."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.lock = threading.Lock()
        self.items: list[Item] = []
        self.attempts: Counter[str] = Counter()  # text -> analyze requests received
        self.answered: Counter[str] = Counter()  # text -> 200 answers with scores
        self.http_requests: list[tuple[float, str, int]] = []  # (time, path, n items)
        self.discovery_requests = 0
        self.released = threading.Event()
        self.stalled = threading.Event()
        self._tokens = self._burst()
        self._stamp = behaviour.clock()
        self._batches = 0

    def _burst(self) -> float:
        b = self.behaviour
        if b.quota_qps is None:
            return 0.0
        return b.quota_burst if b.quota_burst is not None else max(1.0, b.quota_qps)

    def _take_quota(self, now: float) -> bool:
        rate = self.behaviour.quota_qps
        if rate is None:
            return True
        self._tokens = min(self._burst(), self._tokens + (now - self._stamp) * rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def count_answers(self, answers: list[tuple[int, str]]) -> None:
        """Count the scores of an HTTP answer that goes out in time (not a slow one)."""
        with self.lock:
            for status, text in answers:
                if status == 200:
                    self.answered[text] += 1

    def total_answered(self) -> int:
        with self.lock:
            return sum(self.answered.values())

    # -------------------------------------------------------------- one analyze request
    def analyze(self, body: bytes, key: str | None, batch: int) -> tuple[int, dict, bool]:
        """``(status, json body, slow)`` for one ``AnalyzeCommentRequest``."""
        b = self.behaviour
        now = b.clock()
        try:
            request = json.loads(body.decode("utf-8"))
            text = request["comment"]["text"]
            languages = request.get("languages") or ["en"]
            attributes = tuple(request["requestedAttributes"])
        except (ValueError, KeyError, TypeError):
            return 400, _error(400, "INVALID_ARGUMENT", "Invalid JSON payload received."), False
        language = languages[0]
        with self.lock:
            item = Item(now, text, language, attributes, key, batch=batch)
            self.items.append(item)
            self.attempts[text] += 1
            attempt = self.attempts[text]
            if key != b.key:
                item.status = 400
                return 400, key_error(), False
            if not self._take_quota(now) or b.inject_429(text, attempt):
                item.status = 429
                return 429, rate_limit_error(), False
            if b.inject_5xx(text, attempt):
                item.status = 503
                return (
                    503,
                    _error(503, "UNAVAILABLE", "The service is currently unavailable."),
                    False,
                )
            slow = b.slow(text, attempt)
            if not text.strip():
                item.status = 400
                return 400, comment_error("COMMENT_EMPTY", "Comment must be non-empty."), slow
            if len(text.encode("utf-8")) > MAX_COMMENT_BYTES:
                item.status = 400
                return (
                    400,
                    comment_error("COMMENT_TOO_LONG", "Comment text too long."),
                    slow,
                )
            refused = b.unsupported.get(language, frozenset())
            for attribute in attributes:
                if language not in KNOWN_LANGUAGES or attribute in refused:
                    item.status = 400
                    return 400, language_error(attribute, language), slow
            item.status = 200
            scores = {
                a: {"summaryScore": {"value": expected_score(text, a), "type": "PROBABILITY"}}
                for a in attributes
            }
            answer = {"attributeScores": scores, "languages": [language]}
            return 200, answer, slow


def _text_of(body: bytes) -> str:
    try:
        return str(json.loads(body.decode("utf-8"))["comment"]["text"])
    except (ValueError, KeyError, TypeError):
        return ""


def _split_http_message(raw: str) -> tuple[str, dict[str, str], str]:
    """``(request line, headers, body)`` of an ``application/http`` part."""
    raw = raw.replace("\r\n", "\n")
    head, _, body = raw.partition("\n\n")
    lines = head.split("\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return lines[0].strip(), headers, body


def _handler(state: FakePerspective) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout) or was killed

        def _json(self, status: int, data: dict) -> None:
            self._send(status, json.dumps(data).encode(), "application/json; charset=UTF-8")

        def _hold_if_stalled(self) -> bool:
            """True when this request must go unanswered (the server is stalled)."""
            limit = state.behaviour.stall_after
            if limit is None or state.total_answered() < limit:
                return False
            state.stalled.set()
            state.released.wait(timeout=60)
            return True

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/$discovery/rest":
                version = parse_qs(url.query).get("version", [""])[0]
                if version != "v1alpha1":
                    self._json(404, _error(404, "NOT_FOUND", "Requested entity was not found."))
                    return
                with state.lock:
                    state.discovery_requests += 1
                root = f"http://{HOST}:{self.server.server_address[1]}/"
                self._json(200, discovery_document(root))
                return
            self._json(404, _error(404, "NOT_FOUND", "Not found."))

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if url.path == ANALYZE_PATH:
                if self._hold_if_stalled():
                    return
                with state.lock:
                    state._batches += 1
                    serial = state._batches
                    state.http_requests.append((state.behaviour.clock(), url.path, 1))
                key = parse_qs(url.query).get("key", [None])[0]
                status, data, slow = state.analyze(body, key, serial)
                if slow:
                    time.sleep(state.behaviour.slow_seconds)
                else:
                    state.count_answers([(status, _text_of(body))])
                self._json(status, data)
                return
            if url.path == "/batch":
                self._batch(body)
                return
            self._json(404, _error(404, "NOT_FOUND", "Not found."))

        def _batch(self, body: bytes) -> None:
            content_type = self.headers.get("Content-Type", "")
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                f"Content-Type: {content_type}\r\n\r\n".encode() + body
            )
            if not message.is_multipart():
                self._json(400, _error(400, "INVALID_ARGUMENT", "Not a multipart request."))
                return
            parts = list(message.iter_parts())
            if self._hold_if_stalled():
                return
            with state.lock:
                state._batches += 1
                serial = state._batches
                state.http_requests.append((state.behaviour.clock(), "/batch", len(parts)))
                every = state.behaviour.batch_503_every
            if every and serial % every == 0:
                self._json(503, _error(503, "UNAVAILABLE", "The service is currently unavailable."))
                return
            boundary = f"batch_{uuid.uuid4().hex}"
            chunks = []
            answers = []
            delay = False
            for part in parts:
                raw = part.get_payload(decode=True).decode("utf-8")
                request_line, _headers, inner = _split_http_message(raw)
                method, target, _ = request_line.split(" ", 2)
                target_url = urlsplit(target)
                key = parse_qs(target_url.query).get("key", [None])[0]
                if method != "POST" or target_url.path != ANALYZE_PATH:
                    status, data, slow = 404, _error(404, "NOT_FOUND", "Not found."), False
                else:
                    status, data, slow = state.analyze(inner.encode("utf-8"), key, serial)
                delay = delay or slow
                answers.append((status, _text_of(inner.encode("utf-8"))))
                content_id = (part.get("Content-ID") or "").strip()
                reply_id = f"<response-{content_id[1:-1]}>" if content_id else ""
                payload = json.dumps(data)
                reason = {200: "OK", 400: "Bad Request", 429: "Too Many Requests"}.get(
                    status, "Service Unavailable"
                )
                chunks.append(
                    f"--{boundary}\r\n"
                    "Content-Type: application/http\r\n"
                    f"Content-ID: {reply_id}\r\n\r\n"
                    f"HTTP/1.1 {status} {reason}\r\n"
                    "Content-Type: application/json; charset=UTF-8\r\n"
                    "Vary: Origin\r\n\r\n"
                    f"{payload}\r\n"
                )
            text = "".join(chunks) + f"--{boundary}--\r\n"
            if delay:
                time.sleep(state.behaviour.slow_seconds)  # past the client's timeout
            else:
                state.count_answers(answers)
            self._send(200, text.encode("utf-8"), f"multipart/mixed; boundary={boundary}")

    return Handler


class PerspectiveServer:
    """``with PerspectiveServer(Behaviour(...)) as server:`` → ``server.discovery_url``."""

    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.state = FakePerspective(behaviour or Behaviour())
        self.httpd = ThreadingHTTPServer((HOST, 0), _handler(self.state))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def discovery_url(self) -> str:
        return f"http://{HOST}:{self.port}/$discovery/rest?version=v1alpha1"

    def __enter__(self) -> PerspectiveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.state.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()
