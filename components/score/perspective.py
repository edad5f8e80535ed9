"""The Perspective API scorer: Google's toxicity classifiers behind a metered HTTP API.

What it guarantees, because evaluation scripts around this API often do not (errors recorded as
toxicity 0, retries that never fire, a request rate far above the quota). API facts: the
Perspective API developer documentation (developers.perspectiveapi.com: "Methods", "Attributes
& Languages", "Limits").

* **Nothing is recorded that the API did not say.** A text the API could not score (empty,
  too long, a language an attribute does not support, still failing after every retry) gets
  ``None`` for the attribute, with the reason; never 0. Blank texts are not even sent, unless
  ``send_blank`` (``scoring.empty_text: space``, as XG sent " "): then the API's answer counts.
* **It holds the quota.** A client-side :class:`RateLimiter` paces items at ``qps`` (each item of
  a batch HTTP request counts); 429s, 5xx and timeouts are retried per item with exponential
  backoff and jitter, up to ``max_retries`` times, honouring ``Retry-After``. 429s also slow
  the pace in proportion to their share of the batch (a batch refused whole halves it, down to
  ``qps / 64``), which grows back by 10% per batch without one, so a ``qps`` set above the
  project's real quota converges to the quota instead of spending it on refusals.
* **Unsupported languages cost one refusal.** On ``LANGUAGE_NOT_SUPPORTED_BY_ATTRIBUTE`` the
  text is asked again without that attribute, and the attribute is not requested again for
  that language during the run.
* **No text is paid for twice.** Answers go to a persistent sqlite cache (``score_cache.py``)
  batch by batch, before the next request; a rerun, a retried task or another model with the same
  continuation reads them back, and identical texts in one call are asked once.
* **The key stays secret.** It is read from ``PERSPECTIVE_API_KEY`` only when a request must be
  made (cache-only runs need none) and is removed from every error message and from the log
  records of the Google client libraries.

The client is ``google-api-python-client``'s discovery client for ``commentanalyzer v1alpha1``
(``static_discovery=False``), so the same code runs against Google, a proxy, or a local server
that speaks the protocol (``discovery_url`` / ``PERSPECTIVE_DISCOVERY_URL``).
"""

from __future__ import annotations

import http.client
import logging
import math
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xdetox.components.score.perspective_protocol import (
    ApiError,
    api_language,
    classify_error,
    parse_scores,
    redact,
    request_body,
)
from xdetox.components.score.rate_limit import RateLimiter, backoff_delay
from xdetox.components.score.score_cache import ScoreCache, cache_key
from xdetox.components.score.scorer_interface import Scorer, ScoreResult
from xdetox.config.scoring import DEFAULT_DISCOVERY_URL
from xdetox.errors import ConfigError, XdetoxError

logger = logging.getLogger(__name__)

API_KEY_ENV = "PERSPECTIVE_API_KEY"
DISCOVERY_URL_ENV = "PERSPECTIVE_DISCOVERY_URL"
CACHE_DIR_ENV = "XDETOX_CACHE_DIR"
SERVICE, VERSION = "commentanalyzer", "v1alpha1"

# Loggers of the client libraries that write request URLs (``?key=…``) into log records.
_CLIENT_LOGGERS = (
    "googleapiclient",
    "googleapiclient.discovery",
    "googleapiclient.http",
    "googleapiclient.model",
    "googleapiclient._helpers",
    "googleapiclient.discovery_cache",
    "httplib2",
)


class PerspectiveError(XdetoxError):
    """The API refused the key or the endpoint: nothing can be scored (message redacted)."""


class _RedactKey(logging.Filter):
    """Rewrites log records of the client libraries without the API key."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own error handling
            return True
        record.msg, record.args = redact(message, self.key), None
        return True


def default_cache_dir() -> Path:
    """``$XDETOX_CACHE_DIR/perspective``, else ``~/.cache/xdetox/perspective``."""
    root = os.environ.get(CACHE_DIR_ENV)
    base = Path(root) if root else Path.home() / ".cache" / "xdetox"
    return base / "perspective"


@dataclass
class _Job:
    """One distinct (text, language) still to be answered."""

    key: str
    text: str
    language: str  # the API's tag
    attributes: list[str]  # still to request
    errors: dict[str, str] = field(default_factory=dict)  # attribute -> reason (final)
    scores: dict[str, float | None] = field(default_factory=dict)
    attempts: int = 0  # failed attempts that count towards max_retries
    not_before: float = 0.0
    cacheable: bool = True


class PerspectiveScorer(Scorer):
    """Scores texts with the Perspective API (see the module docstring)."""

    def __init__(
        self,
        attributes: Sequence[str],
        *,
        qps: float = 1.0,
        discovery_url: str | None = None,
        cache_dir: str | Path | None = None,
        max_retries: int = 6,
        retry_initial_delay: float = 1.0,
        retry_max_delay: float = 60.0,
        timeout: float = 30.0,
        api_batch_size: int | None = None,
        send_blank: bool = False,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if qps <= 0:
            raise ConfigError("scoring.qps: must be positive")
        self.attributes = tuple(attributes)
        self.qps = float(qps)
        self.discovery_url = (
            discovery_url or os.environ.get(DISCOVERY_URL_ENV) or DEFAULT_DISCOVERY_URL
        )
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.max_retries = int(max_retries)
        self.retry_initial_delay = float(retry_initial_delay)
        self.retry_max_delay = float(retry_max_delay)
        self.timeout = float(timeout)
        # scoring.empty_text: space (XG) asks the API about blank texts too (" " for an empty
        # one); whatever it answers, a score or a refusal, is recorded as for any text.
        self.send_blank = bool(send_blank)
        # About one second of quota per batch HTTP request (the API counts every item).
        self.api_batch_size = int(api_batch_size or min(50, max(1, round(self.qps))))
        # Texts per score_items call: ~10 s of quota, so progress bars move and a kill
        # between calls loses nothing (answers are cached per batch anyway).
        self.batch_size = max(self.api_batch_size, min(1000, math.ceil(10 * self.qps)))
        self.id = f"perspective-{VERSION}"
        self.name = (
            f"Perspective API ({SERVICE} {VERSION}; Google Jigsaw's trained toxicity "
            "classifiers; language support differs per attribute; Google ends the service "
            "after 2026)"
        )
        self._rng = random.Random(seed)
        # The pace and the retry delays run on ``clock``/``sleep``: injectable, so that tests
        # check the rate on a fake clock, exactly, instead of timing a loaded machine.
        self._clock, self._sleep = clock, sleep
        self._limiter = RateLimiter(self.qps, burst=self.api_batch_size, clock=clock, sleep=sleep)
        self._unsupported: dict[str, dict[str, str]] = {}  # language -> {attribute: reason}
        self._service: Any = None
        self._http: Any = None
        self._key: str | None = None
        self._cache: ScoreCache | None = None
        self.stats: Counter[str] = Counter()

    # ------------------------------------------------------------------ resources
    def _get_cache(self) -> ScoreCache:
        if self._cache is None:
            self._cache = ScoreCache(self.cache_dir, "perspective")
        return self._cache

    def _client(self) -> Any:
        """The discovery client, built on first need (cache-only runs never build it)."""
        if self._service is not None:
            return self._service
        key = os.environ.get(API_KEY_ENV, "").strip()
        if not key:
            raise ConfigError(
                f"{API_KEY_ENV} is not set: the perspective scorer reads its API key from this "
                "environment variable only (on a cluster: a Kubernetes secret)"
            )
        self._key = key
        redactor = _RedactKey(key)
        for name in _CLIENT_LOGGERS:
            log = logging.getLogger(name)
            if not any(isinstance(f, _RedactKey) and f.key == key for f in log.filters):
                log.addFilter(redactor)
        import httplib2
        from googleapiclient import discovery
        from googleapiclient.errors import HttpError

        self._http = httplib2.Http(timeout=self.timeout)
        try:
            self._service = discovery.build(
                SERVICE,
                VERSION,
                http=self._http,
                developerKey=key,
                discoveryServiceUrl=self.discovery_url,
                static_discovery=False,
                cache_discovery=False,
                num_retries=min(self.max_retries, 3),
            )
        except HttpError as exc:
            status = int(exc.resp.status)
            detail = classify_error(status, exc.content, key=key).message
            raise PerspectiveError(
                f"cannot read the Perspective discovery document from "
                f"{redact(self.discovery_url, key)} ({detail})"
            ) from None
        except Exception as exc:  # transport errors, bad JSON, unknown API
            raise PerspectiveError(
                f"cannot read the Perspective discovery document from "
                f"{redact(self.discovery_url, key)} ({type(exc).__name__}: "
                f"{redact(str(exc), key)})"
            ) from None
        return self._service

    def close(self) -> None:
        if self.stats:
            logger.info("perspective: %s", dict(sorted(self.stats.items())))
        if self._http is not None:
            self._http.close()
        if self._cache is not None:
            self._cache.close()
            self._cache = None
        self._service = self._http = None

    # ------------------------------------------------------------------ scoring
    def _result(self, scores: dict, errors: dict) -> ScoreResult:
        """Scores and reasons in the configured attribute order; absent means missing."""
        out = {name: scores.get(name) for name in self.attributes}
        reasons = {
            name: errors.get(name, "no score returned")
            for name, value in out.items()
            if value is None
        }
        return ScoreResult(out, reasons)

    def score_items(self, texts: Sequence[str], languages: Sequence[str]) -> list[ScoreResult]:
        if len(texts) != len(languages):
            raise ValueError(f"{len(texts)} texts but {len(languages)} languages")
        results: list[ScoreResult | None] = [None] * len(texts)
        jobs: dict[str, _Job] = {}
        positions: dict[str, list[int]] = {}
        for index, (text, language) in enumerate(zip(texts, languages, strict=True)):
            if not text.strip() and not self.send_blank:
                # The API would answer COMMENT_EMPTY: there is nothing to score.
                self.stats["empty"] += 1
                reason = "empty text: nothing to score (not sent to the API)"
                results[index] = self._result({}, dict.fromkeys(self.attributes, reason))
                continue
            lang = api_language(language)
            key = cache_key(text, lang, self.attributes)
            positions.setdefault(key, []).append(index)
            if key not in jobs:
                jobs[key] = _Job(key, text, lang, list(self.attributes))
        cached = self._get_cache().get_many(list(jobs)) if jobs else {}
        self.stats["cache_hits"] += sum(len(positions[k]) for k in cached)
        self.stats["duplicates"] += sum(len(p) - 1 for k, p in positions.items() if k not in cached)
        todo = [job for key, job in jobs.items() if key not in cached]
        try:
            self._run(todo)
        except XdetoxError as exc:
            raise type(exc)(redact(str(exc), self._key)) from None
        except Exception as exc:  # never let a URL with the key escape in a traceback
            raise RuntimeError(
                f"perspective scorer: {type(exc).__name__}: {redact(str(exc), self._key)}"
            ) from None
        for key, indices in positions.items():
            scores, errors = cached[key] if key in cached else (jobs[key].scores, jobs[key].errors)
            for index in indices:
                results[index] = self._result(scores, errors)
        return [r for r in results if r is not None]

    def _known_unsupported(self, job: _Job) -> None:
        """Drop attributes the API already refused for this language in this run."""
        refused = self._unsupported.get(job.language, {})
        for name in [a for a in job.attributes if a in refused]:
            job.attributes.remove(name)
            job.errors[name] = refused[name]

    def _run(self, jobs: list[_Job]) -> None:
        """Ask the API until every job has an answer or has used its retries."""
        active = list(jobs)
        while active:
            now = self._clock()
            batch: list[_Job] = []
            finished: list[_Job] = []
            for job in active:
                if job.not_before > now:
                    continue
                self._known_unsupported(job)
                if not job.attributes:
                    finished.append(job)  # every attribute refused for this language
                    continue
                batch.append(job)
                if len(batch) == self.api_batch_size:
                    break
            fatal: PerspectiveError | None = None
            if batch:
                self._limiter.acquire(len(batch))
                outcomes = self._send(batch)
                self._adapt_rate(outcomes)
                for job, outcome in zip(batch, outcomes, strict=True):
                    try:
                        if self._settle(job, outcome):
                            finished.append(job)
                    except PerspectiveError as exc:
                        fatal = fatal or exc
            elif not finished:
                self._sleep(max(0.0, min(j.not_before for j in active) - self._clock()))
            if finished:
                done = {id(j) for j in finished}
                active = [j for j in active if id(j) not in done]
                self._get_cache().put_many(
                    (j.key, j.language, self.attributes, j.scores, j.errors)
                    for j in finished
                    if j.cacheable
                )
            if fatal is not None:
                raise fatal  # after the answers of this batch are safe in the cache

    def _adapt_rate(self, outcomes: Sequence[dict[str, Any] | ApiError]) -> None:
        """Slow down in proportion to the batch's share of 429s (a batch refused whole halves
        the pace); win the pace back by 10% per batch without one."""
        limited = sum(isinstance(o, ApiError) and o.status == 429 for o in outcomes)
        share = limited / max(1, len(outcomes))
        rate = self._limiter.rate
        if limited:  # a batch refused whole halves the pace; a stray 429 barely slows it
            new = max(self.qps / 64.0, rate * (1.0 - share / 2.0))
        else:
            new = min(self.qps, rate * 1.1)
        if new != rate:
            self._limiter.set_rate(new)
            self.stats["lowest_rate"] = round(min(self.stats.get("lowest_rate", new), new), 3)

    def _settle(self, job: _Job, outcome: dict[str, Any] | ApiError) -> bool:
        """Apply one answer to its job; True when the job is finished."""
        if not isinstance(outcome, ApiError):
            scores, errors = parse_scores(outcome, job.attributes)
            job.scores.update(scores)
            job.errors.update(errors)
            # An answer without some requested score is not trusted to the cache.
            job.cacheable = job.cacheable and not errors
            self.stats["scored"] += 1
            return True
        if outcome.kind == "fatal":
            raise PerspectiveError(f"the Perspective API refused the request: {outcome.message}")
        if outcome.kind == "language" and outcome.attribute in job.attributes:
            self.stats["language_not_supported"] += 1
            reason = (
                f"the API does not support language {job.language!r} for {outcome.attribute} "
                "(LANGUAGE_NOT_SUPPORTED_BY_ATTRIBUTE)"
            )
            self._unsupported.setdefault(job.language, {})[outcome.attribute] = reason
            job.attributes.remove(outcome.attribute)
            job.errors[outcome.attribute] = reason
            job.not_before = 0.0  # ask again at once for the other attributes
            return False
        if outcome.kind in ("final", "language"):
            self.stats["refused"] += 1
            for name in job.attributes:
                job.errors[name] = f"the API refused this text: {outcome.message}"
            return True
        # retry
        self.stats["retries"] += 1
        if outcome.status == 429:
            self.stats["rate_limited"] += 1
        job.attempts += 1
        if job.attempts > self.max_retries:
            self.stats["failed"] += 1
            job.cacheable = False  # a transient failure: the next run asks again
            message = f"failed after {job.attempts} attempts; last error: {outcome.message}"
            logger.warning("perspective: a text got no score: %s", message)
            for name in job.attributes:
                job.errors[name] = message
            return True
        delay = backoff_delay(
            job.attempts, self.retry_initial_delay, self.retry_max_delay, rng=self._rng
        )
        if outcome.retry_after is not None:
            delay = max(delay, min(outcome.retry_after, self.retry_max_delay))
        job.not_before = self._clock() + delay
        return False

    # ------------------------------------------------------------------ transport
    def _send(self, batch: list[_Job]) -> list[dict[str, Any] | ApiError]:
        """One HTTP request (a batch request for several items); one outcome per item."""
        import httplib2
        from googleapiclient.errors import BatchError, HttpError

        service = self._client()
        requests = [
            service.comments().analyze(body=request_body(j.text, j.language, j.attributes))
            for j in batch
        ]
        self.stats["requests"] += 1
        self.stats["items_sent"] += len(batch)
        transport = (OSError, httplib2.HttpLib2Error, http.client.HTTPException, BatchError)
        try:
            if len(requests) == 1 and self.api_batch_size == 1:
                try:
                    return [requests[0].execute(num_retries=0)]
                except HttpError as exc:
                    return [self._http_error(exc)]
            answers: dict[str, dict[str, Any] | ApiError] = {}

            def collect(request_id: str, response: Any, exception: Exception | None) -> None:
                if exception is None:
                    answers[request_id] = response
                elif isinstance(exception, HttpError):
                    answers[request_id] = self._http_error(exception)
                else:
                    answers[request_id] = ApiError(
                        "retry", f"{type(exception).__name__}: {exception}"
                    )

            batch_request = service.new_batch_http_request(callback=collect)
            for index, request in enumerate(requests):
                batch_request.add(request, request_id=str(index))
            try:
                batch_request.execute()
            except HttpError as exc:  # the batch request itself failed
                error = self._http_error(exc)
                return [error] * len(batch)
            missing = ApiError("retry", "no answer for this item in the batch response")
            return [answers.get(str(i), missing) for i in range(len(batch))]
        except transport as exc:
            timeout = isinstance(exc, TimeoutError)
            self.stats["timeouts" if timeout else "transport_errors"] += 1
            message = redact(f"{type(exc).__name__}: {exc}", self._key)
            return [ApiError("retry", message)] * len(batch)
        except (KeyError, ValueError) as exc:  # a malformed batch answer (missing parts)
            self.stats["transport_errors"] += 1
            message = redact(f"malformed batch answer ({type(exc).__name__}: {exc})", self._key)
            return [ApiError("retry", message)] * len(batch)

    def _http_error(self, exc: Any) -> ApiError:
        status = int(exc.resp.status)
        if status >= 500:
            self.stats["server_errors"] += 1
        return classify_error(status, exc.content, dict(exc.resp), key=self._key)
