"""HTTP shapes: what the API returns. Requests use `jobline.models.SubmitRequest` directly."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jobline.models import Attempt, Job, JobError, JobPage, JobStatus, Progress
from jobline.registry import JobType
from pydantic import BaseModel


class JobOut(BaseModel):
    """A job as a caller sees it."""

    id: str
    type: str
    status: JobStatus
    payload: Any
    result: Any
    error: JobError | None
    attempts: int
    max_attempts: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    run_after: datetime | None
    progress: Progress | None
    cancel_requested_at: datetime | None
    history: list[Attempt]
    correlation_id: str | None

    @classmethod
    def of(cls, job: Job) -> JobOut:
        """The public view of a stored job."""
        return cls.model_validate(job.model_dump(include=set(cls.model_fields)))


class JobPageOut(BaseModel):
    """One page of jobs."""

    items: list[JobOut]
    next_cursor: str | None

    @classmethod
    def of(cls, page: JobPage) -> JobPageOut:
        """The public view of a page."""
        return cls(
            items=[JobOut.of(job) for job in page.items], next_cursor=page.next_cursor
        )


class JobTypeOut(BaseModel):
    """A registered job type."""

    name: str
    description: str
    input_schema: dict[str, Any]

    @classmethod
    def of(cls, job_type: JobType[Any]) -> JobTypeOut:
        """The public view of a job type."""
        return cls(
            name=job_type.name,
            description=job_type.description,
            input_schema=job_type.input_schema(),
        )


class Health(BaseModel):
    """Liveness answer."""

    status: str = "ok"
