"""Rate limits at submit (issue 18): each of a type's `RateLimit`s takes a start from its key's
token bucket (GCRA, `jobline.flow.RateBucket`) in the control table: `delay` gives the job the
start time it reserved (`run_after`: it waits exactly once, its message delayed until then),
`reject` refuses the submit (`RateLimited`: 429 with Retry-After; ingest: `rejected`). A type
without rate limits reads and writes nothing here.

A bucket is read, then written under its version (optimistic: a write that lost to another
submit reads again). A write whose answer was lost is tried as a new reservation: it may use
one token more, never one less, so a lost answer can delay starts but never exceed the limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jobline.errors import RateLimited, StorageUnavailable
from jobline.flow import RateBucket, RateLimit, render_key
from jobline.logging import get_logger
from jobline.models import SubmitRequest
from jobline.ports import FlowStore
from jobline.registry import JobType

log = get_logger(__name__)

BUCKET_TRIES = 8
"""Reads and writes of one bucket before the submit gives up (503): other submits kept winning."""


@dataclass(frozen=True)
class RateView:
    """A rate limit as a submit would meet it now (a dry run: nothing taken)."""

    limit: RateLimit
    key: str
    start: datetime


@dataclass(frozen=True)
class RateLimiter:
    """Takes starts from the rate limits' buckets."""

    store: FlowStore

    def keys(
        self, job_type: JobType[Any], owner: str, request: SubmitRequest
    ) -> list[tuple[RateLimit, str]]:
        """Each of the type's rate limits with its key rendered for this submit."""
        return [
            (
                limit,
                render_key(
                    limit.key,
                    name=limit.name,
                    owner=owner,
                    job_type=job_type.name,
                    payload=request.payload,
                    concurrency_key=request.concurrency_key,
                ),
            )
            for limit in job_type.rate_limits
        ]

    def reserve(
        self, job_type: JobType[Any], owner: str, request: SubmitRequest, now: datetime
    ) -> datetime | None:
        """Take a start from each of the type's rate limits; the latest (None: now). Raises
        `RateLimited` for a `reject` limit with no start free now (nothing taken from it)."""
        latest: datetime | None = None
        for limit, key in self.keys(job_type, owner, request):
            start = self._take(limit, key, now)
            latest = start if latest is None else max(latest, start)
        return latest if latest is not None and latest > now else None

    def _take(self, limit: RateLimit, key: str, now: datetime) -> datetime:
        for _ in range(BUCKET_TRIES):
            tat, version = self.store.rate_bucket(limit.name, key)
            start, after = RateBucket(tat).reserve(limit, now)
            if limit.on_limit == "reject" and start > now:
                retry_after = RateBucket.retry_after(start, now)
                log.info(
                    "flow.rate_limited", limit=limit.name, retry_after_s=retry_after
                )
                raise RateLimited(limit.name, retry_after)
            expires = int((after + timedelta(seconds=limit.period_s)).timestamp())
            if self.store.put_rate_bucket(limit.name, key, after, version, expires):
                if start > now:
                    log.info(
                        "flow.rate_delayed",
                        limit=limit.name,
                        delay_s=round((start - now).total_seconds(), 3),
                    )
                return start
        raise StorageUnavailable(f"rate limit {limit.name!r}: its bucket kept changing")

    def preview(
        self, job_type: JobType[Any], owner: str, request: SubmitRequest, now: datetime
    ) -> list[RateView]:
        """Each rate limit's next start for this submit, nothing taken (a dry run)."""
        views = []
        for limit, key in self.keys(job_type, owner, request):
            tat, _ = self.store.rate_bucket(limit.name, key)
            start, _ = RateBucket(tat).reserve(limit, now)
            views.append(RateView(limit, key, start))
        return views
