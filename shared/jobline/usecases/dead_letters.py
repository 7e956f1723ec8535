"""Dead letters and redrive: record that SQS gave up on a job's message, and re-queue a
dead-lettered job when its message is redriven (a worker would only acknowledge the old one)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from jobline import lifecycle, metrics
from jobline.errors import ConditionFailed, InvalidJobState, JobNotFound
from jobline.logging import get_logger
from jobline.models import Job, JobMessage, JobStatus
from jobline.ports import JobRepository
from jobline.transition import Event
from jobline.usecases.control import Control
from jobline.usecases.lookup import find_job

log = get_logger(__name__)


@dataclass(frozen=True)
class DeadLetters:
    """The dead-letter and redrive use cases."""

    repository: JobRepository
    control: Control
    clock: Callable[[], datetime]
    retention: timedelta

    def dead_letter(self, message: JobMessage, receive_count: int) -> Job | None:
        """Record that SQS dead-lettered the job's message: a queued or running job becomes
        `dead_lettered` with its last error. A finished job is left alone (returns None)."""
        current = self.repository.get(message.job_id)
        if current is None or current.owner != message.owner:
            raise JobNotFound(message.job_id)
        if current.status not in lifecycle.ALLOWED[Event.DEAD_LETTER]:
            log.info(
                "job.dead_letter_ignored",
                job_id=current.id,
                status=current.status.value,
            )
            return None
        now = self.clock()
        write = lifecycle.dead_letter(current, now, receive_count, self.retention)
        try:
            job = self.repository.update(current.id, write.update, write.precondition)
        except ConditionFailed:
            log.info("job.dead_letter_raced", job_id=current.id)
            return None
        metrics.count("JobsDeadLettered", job.type, job_id=job.id)
        log.error(
            "job.dead_lettered",
            job_id=job.id,
            job_type=job.type,
            error_type=job.error.type if job.error is not None else None,
            receive_count=receive_count,
        )
        return job

    def requeue_dead_lettered(self, message: JobMessage) -> Job | None:
        """The job re-queued (`Control.retry`: fresh attempts, a new message) when `message`
        names a `dead_lettered` job; None when its message should be moved as it is instead
        (the job is unknown, or not dead-lettered: a worker claims a queued job as usual)."""
        try:
            job = find_job(self.repository, message.owner, message.job_id, self.clock())
            if job.status is not JobStatus.DEAD_LETTERED:
                return None
            return self.control.retry(job.owner, job.id)
        except (JobNotFound, InvalidJobState):
            return None
