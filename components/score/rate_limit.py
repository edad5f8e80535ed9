"""Client-side pacing for metered APIs: a rate limiter and retry delays.

Why on the client: the Perspective API allows about one item per second by default and answers
anything above with HTTP 429. A client that sends as fast as it can spends most of its quota on
refusals and its retries on more refusals; one that paces itself at the quota gets (almost) every
request through the first time. Each item of a batch HTTP request counts against the quota, so
the limiter is asked for as many permits as the batch has items.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable


class RateLimiter:
    """At most ``rate`` permits per second on average, in bursts of at most ``burst``.

    A token bucket that starts full: over any interval of ``T`` seconds at most
    ``burst + rate · T`` permits are handed out, and a steady caller gets ``rate`` per second.
    ``acquire(n)`` blocks until ``n`` permits are available (``n`` may exceed ``burst``: the
    caller then waits for the bucket to refill far enough, and goes below zero, which delays
    the next caller by as much).
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.burst = float(burst) if burst is not None else max(1.0, self.rate)
        if self.burst <= 0:
            raise ValueError("burst must be positive")
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._stamp = clock()
        self._lock = threading.Lock()
        self.waited = 0.0  # total seconds spent waiting (for statistics)

    def set_rate(self, rate: float) -> None:
        """Change the rate from now on (tokens already earned are kept)."""
        if rate <= 0:
            raise ValueError("rate must be positive")
        with self._lock:
            self._refill(self._clock())
            self.rate = float(rate)

    def _refill(self, now: float) -> None:
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def acquire(self, n: int = 1) -> float:
        """Take ``n`` permits, sleeping as long as needed; return the seconds slept."""
        if n <= 0:
            return 0.0
        with self._lock:
            self._refill(self._clock())
            # Wait until the bucket holds min(n, burst) tokens; a request larger than the
            # bucket takes what there is and leaves a debt that later callers wait out.
            needed = min(float(n), self.burst)
            wait = max(0.0, (needed - self._tokens) / self.rate)
            if wait > 0:
                self._sleep(wait)
                self._refill(self._clock())
            self._tokens -= n
            self.waited += wait
            return wait


def backoff_delay(
    attempt: int,
    initial: float,
    maximum: float,
    *,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1, 2, …): exponential with jitter.

    The ceiling is ``min(maximum, initial · 2^(attempt−1))``; the delay is drawn uniformly from
    its upper half ("equal jitter"), so clients that failed together do not retry together and
    no retry comes sooner than half the nominal delay.
    """
    if attempt <= 0:
        return 0.0
    ceiling = min(maximum, initial * (2.0 ** (attempt - 1)))
    draw = (rng or random).random()
    return ceiling / 2.0 + draw * ceiling / 2.0
