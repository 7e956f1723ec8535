"""Jobs, their states and the messages that move them. Pure data: no I/O here."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MIN_ATTEMPTS = 1
MAX_ATTEMPTS = 20
DEFAULT_MAX_ATTEMPTS = 3
MAX_DELAY_SECONDS = 900


class JobStatus(enum.StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """True when the job will not run again on its own."""
        return self in _FINAL


_FINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


class JobError(BaseModel):
    """Why an attempt or a job failed."""

    model_config = ConfigDict(frozen=True)

    type: str
    message: str


class Job(BaseModel):
    """A job as stored. `owner`, `request_hash` and `expires_at` are internal."""

    model_config = ConfigDict(frozen=True)

    id: str
    owner: str
    type: str
    status: JobStatus
    payload: Any
    result: Any = None
    error: JobError | None = None
    attempts: int = 0
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    delay_seconds: int = 0
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    request_hash: str | None = None
    expires_at: int | None = None

    def is_expired(self, now_epoch: float) -> bool:
        """DynamoDB TTL deletes up to 48 h late: a job past `expires_at` is gone to readers."""
        return self.expires_at is not None and self.expires_at <= now_epoch


class SubmitRequest(BaseModel):
    """What a caller asks for when submitting a job."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=128)
    payload: Any = Field(default_factory=dict)
    max_attempts: int = Field(
        default=DEFAULT_MAX_ATTEMPTS, ge=MIN_ATTEMPTS, le=MAX_ATTEMPTS
    )
    delay_seconds: int = Field(default=0, ge=0, le=MAX_DELAY_SECONDS)


class JobMessage(BaseModel):
    """The body of a jobs-queue message: ids and metadata only, never the payload."""

    model_config = ConfigDict(extra="ignore")

    job_id: str = Field(min_length=1, max_length=64)
    owner: str = Field(min_length=1, max_length=256)
    job_type: str | None = None


class JobFilter(BaseModel):
    """Filters of a job listing."""

    model_config = ConfigDict(frozen=True)

    status: JobStatus | None = None
    type: str | None = None


class JobPage(BaseModel):
    """One page of a listing; `next_cursor` is opaque and signed."""

    items: list[Job]
    next_cursor: str | None = None
