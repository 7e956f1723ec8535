"""Control a caller's job: cancel it (queued: at once; running: at its next checkpoint) or retry
it once it failed, was dead-lettered or was cancelled."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from jobline import lifecycle, metrics
from jobline.errors import (
    ConditionFailed,
    InvalidJobState,
    JobNotFound,
)
from jobline.limits import MAX_HISTORY
from jobline.logging import get_logger
from jobline.models import Job, JobStatus, is_visible
from jobline.ports import JobRepository
from jobline.transition import Event
from jobline.usecases.lookup import JOB_ID, find_job

log = get_logger(__name__)


def _state_of(current: Job | None) -> str:
    return current.status.value if current is not None else "gone"


@dataclass(frozen=True)
class Control:
    """The cancel and retry use cases."""

    repository: JobRepository
    clock: Callable[[], datetime]
    retention: timedelta

    def cancel(self, owner: str, job_id: str) -> Job:
        """Cancel a job. A queued job becomes `cancelled` at once and never runs; for a running job
        the request is recorded (`cancel_requested_at`). A finished job is `InvalidJobState`."""
        if not JOB_ID.match(job_id):
            raise JobNotFound(job_id)
        now = self.clock()
        cancel = lifecycle.cancel_queued(owner, now, self.retention)
        try:
            job = self.repository.update(job_id, cancel.update, cancel.precondition)
        except ConditionFailed as lost:
            current = lost.current
            if current is None or not is_visible(current, owner, now):
                raise JobNotFound(job_id) from None
            if current.status is JobStatus.RUNNING:
                return self._request_cancel(current, now)
            raise InvalidJobState(job_id, current.status.value, "cancel") from None
        log.info("job.cancelled", job_id=job.id, job_type=job.type)
        metrics.count("JobsCancelled", job.type, job_id=job.id)
        return job

    def _request_cancel(self, job: Job, now: datetime) -> Job:
        """A running job can't be stopped from outside: record the request; the handler sees it
        at its next checkpoint and the job ends `cancelled`."""
        request = lifecycle.request_cancel(job, now)
        try:
            requested = self.repository.update(
                job.id, request.update, request.precondition
            )
        except ConditionFailed as lost:
            raise InvalidJobState(job.id, _state_of(lost.current), "cancel") from None
        log.info("job.cancel_requested", job_id=job.id, job_type=job.type)
        return requested

    def retry(self, owner: str, job_id: str) -> Job:
        """Re-queue a failed, dead-lettered or cancelled job with a fresh attempts budget, keeping
        its history; one write, and the outbox sends its new message. Any other state is
        `InvalidJobState`."""
        job = find_job(self.repository, owner, job_id, self.clock())
        if not lifecycle.can_retry(job):
            state = job.status.value
            if job.status in lifecycle.ALLOWED[Event.RESET_FOR_RETRY]:
                state = f"{state} after {MAX_HISTORY} attempts"
            raise InvalidJobState(job_id, state, "retry")
        now = self.clock()
        reset = lifecycle.reset_for_retry(job, now)
        try:
            queued = self.repository.update(job_id, reset.update, reset.precondition)
        except ConditionFailed as lost:
            raise InvalidJobState(job_id, _state_of(lost.current), "retry") from None
        log.info(
            "job.retried", job_id=job_id, job_type=job.type, previous=job.status.value
        )
        metrics.count("JobsRetried", job.type, job_id=job_id)
        return queued
