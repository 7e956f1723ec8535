"""Control a caller's job: cancel it (queued: at once; running: at its next checkpoint) or retry
it once it failed, was dead-lettered or was cancelled.

Each decides on the state it finds: it reads the job, writes the arrow that state allows under
the fence of what it read (the job's run, its state), and when the write finds the job changed
under it (a claim, a requeue, an outcome landed in between), decides again on the state the
failed condition returned, a few times at most (`limits.MAX_CONTROL_DECISIONS`). It answers
`InvalidJobState` only for a state that refuses, and names it. Each write carries a control token
the job keeps, so a write whose answer was lost recognises itself whatever happened since."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from jobline import lifecycle, metrics
from jobline.errors import (
    ConditionFailed,
    InvalidJobState,
    JobNotFound,
    StorageUnavailable,
)
from jobline.limits import MAX_CONTROL_DECISIONS, MAX_HISTORY
from jobline.logging import get_logger
from jobline.models import Job, JobStatus, is_visible
from jobline.ports import JobRepository
from jobline.transition import Event, Transition
from jobline.usecases.claim_check import ClaimCheck
from jobline.usecases.lookup import find_job

log = get_logger(__name__)


@dataclass(frozen=True)
class Control:
    """The cancel and retry use cases."""

    repository: JobRepository
    clock: Callable[[], datetime]
    retention: timedelta
    claim_check: ClaimCheck

    def cancel(self, owner: str, job_id: str) -> Job:
        """Cancel a job. A queued job becomes `cancelled` at once and never runs; for a running job
        the request is recorded (`cancel_requested_at`, once: asking again changes nothing). A
        finished job is `InvalidJobState`."""
        token = uuid.uuid4().hex
        now = self.clock()
        job = find_job(self.repository, owner, job_id, now)
        for decision in range(MAX_CONTROL_DECISIONS):
            now = now if decision == 0 else self.clock()
            if job.status is JobStatus.QUEUED:
                write = lifecycle.cancel_queued(job, now, self.retention, token)
            elif job.status is JobStatus.RUNNING:
                if job.cancel_requested_at is not None:
                    return job
                write = lifecycle.request_cancel(job, now, token)
            else:
                raise InvalidJobState(job_id, job.status.value, "cancel")
            changed = self._write(owner, job_id, write, token)
            if isinstance(changed, Job):
                self._cancelled(changed)
                return changed
            job = changed.current
        raise StorageUnavailable(f"cancel: job {job_id} kept changing; try again")

    def retry(self, owner: str, job_id: str) -> Job:
        """Re-queue a failed, dead-lettered or cancelled job as its next run, with a fresh attempts
        budget, keeping its history; one write, and the outbox sends its new message. Any other
        state is `InvalidJobState`."""
        token = uuid.uuid4().hex
        job = find_job(self.repository, owner, job_id, self.clock())
        previous = job.status
        if lifecycle.can_retry(job):  # its payload in the bucket outlives the new run
            self.claim_check.keep_alive(job)
        for _ in range(MAX_CONTROL_DECISIONS):
            if not lifecycle.can_retry(job):
                state = job.status.value
                if job.status in lifecycle.ALLOWED[Event.RESET_FOR_RETRY]:
                    state = f"{state} after {MAX_HISTORY} attempts"
                raise InvalidJobState(job_id, state, "retry")
            reset = lifecycle.reset_for_retry(job, self.clock(), token)
            changed = self._write(owner, job_id, reset, token)
            if isinstance(changed, Job):
                log.info(
                    "job.retried",
                    job_id=job_id,
                    previous=previous.value,
                    run=changed.run,
                    **metrics.emf(changed.type, counts=["JobsRetried"]),
                )
                return changed
            job = changed.current
            previous = job.status
        raise StorageUnavailable(f"retry: job {job_id} kept changing; try again")

    def _write(
        self, owner: str, job_id: str, write: Transition, token: str
    ) -> Job | _Changed:
        """The job after `write`, or the job as the failed condition found it (visible to
        `owner`, else `JobNotFound`)."""
        try:
            return self.repository.update(
                job_id, write.update, write.precondition, token=token
            )
        except ConditionFailed as lost:
            current = lost.current
            if current is None or not is_visible(current, owner, self.clock()):
                raise JobNotFound(job_id) from None
            log.info(
                "job.control_decided_again",
                job_id=job_id,
                transition=write.event.value,
                status=current.status.value,
            )
            return _Changed(current)

    def _cancelled(self, job: Job) -> None:
        if job.status is JobStatus.CANCELLED:
            log.info(
                "job.cancelled",
                job_id=job.id,
                **metrics.emf(job.type, counts=["JobsCancelled"]),
            )
        else:
            log.info("job.cancel_requested", job_id=job.id, job_type=job.type)


@dataclass(frozen=True)
class _Changed:
    """The job was not as read: here it is as the failed condition found it."""

    current: Job
