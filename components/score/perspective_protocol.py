"""The Perspective API's wire format: request bodies, scores, errors, and key redaction.

Facts (Perspective API developer documentation, developers.perspectiveapi.com: "Methods" and
"Attributes & Languages"): ``POST v1alpha1/comments:analyze`` with ``comment.text``,
``languages``, ``requestedAttributes`` ({NAME: {}}) and ``doNotStore``; the answer holds
``attributeScores.NAME.summaryScore.value``. Errors are JSON bodies
``{"error": {"code", "message", "status", "details": [...]}}``; the ones that matter here:

* 429 ``RESOURCE_EXHAUSTED`` / ``RATE_LIMIT_EXCEEDED``: over quota, retry later;
* 5xx and timeouts: the service's trouble, retry later;
* 400 with a detail ``errorType: LANGUAGE_NOT_SUPPORTED_BY_ATTRIBUTE`` and
  ``languageNotSupportedByAttributeError.attribute``: that attribute has no model for the
  language (one attribute per error; the message says "Attribute X does not support request
  languages: xx"): ask again without it;
* 400 ``COMMENT_EMPTY`` / ``COMMENT_TOO_LONG`` and other 400s: a final answer for that text;
* 400 ``API_KEY_INVALID``, 401, 403: the key or the project is wrong; nothing will succeed.

This module decides what each answer means; it never turns an error into a score.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

LANGUAGE_NOT_SUPPORTED = "LANGUAGE_NOT_SUPPORTED_BY_ATTRIBUTE"

# Language tags of the generations → the API's. XG mapped zh-hans to zh.
_API_LANGUAGE = {"zh-hans": "zh", "zh-cn": "zh", "zh-sg": "zh", "zh-hans-cn": "zh"}

_ATTRIBUTE_IN_MESSAGE = re.compile(r"Attribute (\w+) does not support request languages")
_KEY_IN_URL = re.compile(r"([?&](?:key|access_token)=)[^&\s\"'<>]+")
REDACTED = "<redacted>"


def api_language(language: str) -> str:
    """The ``languages`` entry for a generation's language tag (``zh-hans`` → ``zh``)."""
    tag = language.strip().replace("_", "-").lower()
    return _API_LANGUAGE.get(tag, tag)


def request_body(
    text: str, language: str, attributes: Sequence[str], *, do_not_store: bool = True
) -> dict[str, Any]:
    """An ``AnalyzeCommentRequest``. ``doNotStore``: generated text is not Google's to keep."""
    return {
        "comment": {"text": text},
        "languages": [language],
        "requestedAttributes": {name: {} for name in attributes},
        "doNotStore": do_not_store,
    }


def redact(text: str, key: str | None) -> str:
    """``text`` without the API key: every literal occurrence and any ``key=…`` URL value."""
    if key:
        text = text.replace(key, REDACTED)
    return _KEY_IN_URL.sub(lambda m: m.group(1) + REDACTED, text)


def parse_scores(
    response: Mapping[str, Any] | None, attributes: Sequence[str]
) -> tuple[dict[str, float | None], dict[str, str]]:
    """``(scores, errors)`` of an ``AnalyzeCommentResponse`` for the requested attributes.

    An attribute the answer lacks, or whose value is not a probability, is ``None`` with a
    reason: a missing score is never filled in.
    """
    scores: dict[str, float | None] = {}
    errors: dict[str, str] = {}
    answered = (response or {}).get("attributeScores") or {}
    for name in attributes:
        value = ((answered.get(name) or {}).get("summaryScore") or {}).get("value")
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if not is_number:
            scores[name] = None
            errors[name] = "the API answered without a score for this attribute"
        elif not (math.isfinite(value) and 0.0 <= value <= 1.0):
            scores[name] = None
            errors[name] = f"the API answered {value!r}, not a probability"
        else:
            scores[name] = float(value)
    return scores, errors


Kind = Literal["retry", "language", "final", "fatal"]


@dataclass(frozen=True)
class ApiError:
    """What an error answer means for the item: ``retry`` later, drop an unsupported
    ``attribute`` and ask again (``language``), give up on this text (``final``), or stop the
    run (``fatal``: nothing can succeed with this key or endpoint)."""

    kind: Kind
    message: str  # one line, without the key
    status: int | None = None
    attribute: str | None = None
    retry_after: float | None = None


def _error_body(content: bytes | str | None) -> dict[str, Any]:
    if isinstance(content, bytes):
        content = content.decode("utf-8", errors="replace")
    try:
        body = json.loads(content or "")
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _retry_after(headers: Mapping[str, Any] | None) -> float | None:
    if not headers:
        return None
    for name, value in headers.items():
        if str(name).lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                return None  # an HTTP date: the exponential backoff decides instead
    return None


def classify_error(
    status: int,
    content: bytes | str | None,
    headers: Mapping[str, Any] | None = None,
    *,
    key: str | None = None,
) -> ApiError:
    """Interpret one HTTP error answer (status, body, headers) of ``comments:analyze``."""
    error = _error_body(content)
    details = [d for d in error.get("details") or [] if isinstance(d, dict)]
    error_types = [str(d["errorType"]) for d in details if d.get("errorType")]
    reasons = [str(d["reason"]) for d in details if d.get("reason")]
    message = " ".join(str(error.get("message") or "").split())[:300]
    label = (error_types or reasons or [str(error.get("status") or "")])[0]
    text = redact(f"HTTP {status}{f' {label}' if label else ''}: {message or 'no message'}", key)
    retry_after = _retry_after(headers)

    if status == 429 or status == 408 or status >= 500:
        return ApiError("retry", text, status, retry_after=retry_after)
    if status == 400 and LANGUAGE_NOT_SUPPORTED in error_types:
        attribute = None
        for detail in details:
            payload = detail.get("languageNotSupportedByAttributeError") or {}
            if isinstance(payload, dict) and payload.get("attribute"):
                attribute = str(payload["attribute"])
                break
        if attribute is None:
            found = _ATTRIBUTE_IN_MESSAGE.search(message)
            attribute = found.group(1) if found else None
        return ApiError("language" if attribute else "final", text, status, attribute=attribute)
    key_invalid = "API_KEY_INVALID" in reasons or "API key not valid" in message
    if status in (401, 403) or key_invalid:
        return ApiError("fatal", text, status)
    if status == 404:
        return ApiError("fatal", text + " (wrong endpoint or discovery URL?)", status)
    return ApiError("final", text, status)
