"""Read a caller's jobs: one by id, a listing page by page, and the job types on offer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jobline.cursor import CursorCodec
from jobline.limits import DEFAULT_PAGE_SIZE, LIST_PAGE_MAX_BYTES, MAX_PAGE_SIZE
from jobline.models import Job, JobFilter, JobPage
from jobline.ports import JobRepository
from jobline.registry import JobType, JobTypeRegistry
from jobline.usecases.lookup import find_job


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
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> JobPage:
        """The caller's jobs, newest first, one page at a time, as summaries (`get` has a job
        whole). The repository returns only jobs the caller may see that match the filter, and
        stops a page before its summaries pass `LIST_PAGE_MAX_BYTES` (`JobRepository.query`):
        a page may hold fewer than `limit` jobs and still have a `next_cursor`. A cursor this
        version cannot resume from (changed, another query's, or from before an upgrade) is
        `InvalidCursor`: the caller starts again from the first page."""
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise ValueError(f"limit must be within 1..{MAX_PAGE_SIZE}")
        start = self.cursor_codec.decode(cursor, owner, job_filter) if cursor else None
        now = self.clock()
        jobs, next_key = self.repository.query(
            owner, job_filter, limit, start, now, max_bytes=LIST_PAGE_MAX_BYTES
        )
        next_cursor = (
            self.cursor_codec.encode(next_key, owner, job_filter) if next_key else None
        )
        return JobPage(items=jobs, next_cursor=next_cursor)

    def job_types(self) -> list[JobType[Any]]:
        """Registered job types, sorted by name."""
        return list(self.registry)
