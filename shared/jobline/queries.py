"""Read a caller's jobs: one by id, a listing page by page, and the job types on offer."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jobline.cursor import CursorCodec
from jobline.errors import JobNotFound
from jobline.logging import get_logger
from jobline.models import Job, JobFilter, JobPage, is_visible, matches
from jobline.ports import JobRepository
from jobline.registry import JobType, JobTypeRegistry

log = get_logger(__name__)

JOB_ID = re.compile(r"^[0-9a-f]{32}$")
"""What every job id looks like; anything else is unknown without a read."""
MAX_LIST_LIMIT = 100


def find_job(repository: JobRepository, owner: str, job_id: str, now: datetime) -> Job:
    """The caller's job; unknown, malformed, foreign and expired ids are all `JobNotFound`."""
    if not JOB_ID.match(job_id):
        raise JobNotFound(job_id)
    job = repository.get(job_id)
    if job is None or not is_visible(job, owner, now):
        raise JobNotFound(job_id)
    return job


@dataclass(frozen=True)
class Queries:
    """The read use cases."""

    repository: JobRepository
    registry: JobTypeRegistry
    cursor_codec: CursorCodec
    clock: Callable[[], datetime]

    def get(self, owner: str, job_id: str) -> Job:
        """The caller's job (see `find_job`)."""
        return find_job(self.repository, owner, job_id, self.clock())

    def list_jobs(
        self,
        owner: str,
        job_filter: JobFilter,
        limit: int = 20,
        cursor: str | None = None,
    ) -> JobPage:
        """The caller's jobs, newest first, one page at a time. Every job the index returns is
        checked against the caller and the filter (`matches`); one that fails is dropped, never
        shown."""
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise ValueError(f"limit must be within 1..{MAX_LIST_LIMIT}")
        start = self.cursor_codec.decode(cursor, owner, job_filter) if cursor else None
        now = self.clock()
        jobs, next_key = self.repository.query(owner, job_filter, limit, start, now)
        owned = [job for job in jobs if matches(job, owner, job_filter, now)]
        if len(owned) != len(jobs):
            log.error("jobs.foreign_items_dropped", dropped=len(jobs) - len(owned))
        next_cursor = (
            self.cursor_codec.encode(next_key, owner, job_filter) if next_key else None
        )
        return JobPage(items=owned, next_cursor=next_cursor)

    def job_types(self) -> list[JobType[Any]]:
        """Registered job types, sorted by name."""
        return list(self.registry)
