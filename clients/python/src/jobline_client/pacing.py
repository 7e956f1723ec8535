"""When and how long to wait before trying a call again, and how `wait()` paces its polls."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from jobline_client.errors import JoblineClientError
from jobline_client.models import Job, Progress

MAX_RETRY_AFTER_S = 60.0
"""A `Retry-After` header is honoured up to this many seconds."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: retry n (from 0) waits a random time in
    `[0, min(max_backoff, backoff * 2**n)]`, or what a `Retry-After` header asks (bounded)."""

    retries: int = 3
    """Attempts after the first; 0 never retries."""
    backoff: float = 0.2
    max_backoff: float = 5.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff < 0 or self.max_backoff < 0:
            raise ValueError("retries, backoff and max_backoff must not be negative")

    def delay(self, retry: int, response: httpx.Response | None = None) -> float:
        """Seconds to wait before retry number `retry` (0 for the first)."""
        asked = _retry_after(response)
        if asked is not None:
            return asked
        return self.rng.uniform(0, min(self.max_backoff, self.backoff * 2**retry))


def _retry_after(response: httpx.Response | None) -> float | None:
    if response is None:
        return None
    try:
        seconds = float(response.headers.get("retry-after", ""))
    except ValueError:
        return None  # absent, or an HTTP date: use the backoff
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def is_retryable(exc: httpx.HTTPError) -> bool:
    """A transport failure worth another try: a timeout, a network error, a dropped answer."""
    return isinstance(
        exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError
    )


def may_have_arrived(exc: httpx.HTTPError) -> bool:
    """False only when the request surely never reached the server (no connection was made)."""
    return not isinstance(
        exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
    )


ProgressCallback = Callable[[Job], object]


class WaitTimeout(JoblineClientError):
    """`wait()` gave up before the job reached a final state; `job` is its last known state."""

    def __init__(self, job: Job, timeout: float) -> None:
        self.job = job
        self.timeout = timeout
        super().__init__(f"job {job.id} is still {job.status.value} after {timeout:g}s")


class Waiting:
    """The pacing of `wait()`: polls from `poll_interval` growing 1.5x to `max_poll_interval`,
    `on_progress` on every change of status, attempts or progress, and the deadline."""

    GROWTH = 1.5

    def __init__(
        self,
        timeout: float | None,
        on_progress: ProgressCallback | None,
        poll_interval: float,
        max_poll_interval: float,
    ) -> None:
        if poll_interval <= 0 or max_poll_interval < poll_interval:
            raise ValueError("need 0 < poll_interval <= max_poll_interval")
        self._timeout = timeout
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._on_progress = on_progress
        self._interval = poll_interval
        self._max_interval = max_poll_interval
        self._last: tuple[str, int, Progress | None] | None = None

    def observe(self, job: Job) -> None:
        """Note the job's latest state; call `on_progress` if it changed (and on the first)."""
        seen = (job.status.value, job.attempts, job.progress)
        if seen != self._last:
            self._last = seen
            if self._on_progress is not None:
                self._on_progress(job)

    def next_delay(self, job: Job) -> float:
        """Seconds until the next poll; `WaitTimeout` (with `job`) when the time is up."""
        delay = self._interval
        self._interval = min(self._interval * self.GROWTH, self._max_interval)
        if self._deadline is None:
            return delay
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise WaitTimeout(job, self._timeout or 0.0)
        return min(delay, left)
