"""How a job comes into being: `submitted` (queued, with the dispatch mark that has the outbox
send its message) and `rejected` (an invalid ingest submission, kept as a finished job). Each is a
new item, stored under "no live job has this id" (`JobRepository.create`), not a transition of a
stored job: those are `jobline.lifecycle`'s. Pure: time comes in as `now`."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from jobline.lifecycle import dispatch_mark
from jobline.models import Job, JobError, JobStatus, SubmitRequest
from jobline.transition import expiry


def derived_id(owner: str, key: str) -> str:
    """A job id derived from its owner and a key: the same key gives the same job."""
    return hashlib.sha256(f"{owner}\x00{key}".encode()).hexdigest()[:32]


def submitted(
    job_id: str,
    owner: str,
    request: SubmitRequest,
    request_hash: str,
    now: datetime,
    correlation_id: str | None = None,
    token: str | None = None,
    lane: str = "default",
) -> Job:
    """A new job, queued in its first run, due `request.delay_seconds` after `now`; `token`
    (the submit's write) is kept among its control tokens, so a submit whose answer was lost
    recognises its job whatever happened to it since."""
    return Job(
        id=job_id,
        owner=owner,
        type=request.type,
        status=JobStatus.QUEUED,
        payload=request.payload,
        max_attempts=request.max_attempts,
        delay_seconds=request.delay_seconds,
        created_at=now,
        updated_at=now,
        run_after=now + timedelta(seconds=request.delay_seconds),
        request_hash=request_hash,
        dispatch=dispatch_mark(now),
        correlation_id=correlation_id,
        control_tokens=(token,) if token else (),
        lane=lane,
    )


def rejected(
    job_id: str,
    owner: str,
    job_type: str,
    payload: Any,
    error: JobError,
    now: datetime,
    retention: timedelta,
) -> Job:
    """reject: an invalid ingest submission, kept as a finished `rejected` job, not lost."""
    return Job(
        id=job_id,
        owner=owner,
        type=job_type,
        status=JobStatus.REJECTED,
        payload=payload,
        error=error,
        max_attempts=1,
        created_at=now,
        updated_at=now,
        finished_at=now,
        expires_at=expiry(now, retention),
    )
