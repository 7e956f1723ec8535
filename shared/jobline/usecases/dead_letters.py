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
        """Record that SQS dead-lettered the job's message: a queued job, or a running one whose
        lease has ended (its worker died and nothing will run it again), becomes `dead_lettered`
        with its last error. Nothing else changes (returns None): a finished job; a message of
        another run (a retry or redrive started a new one, which has a message of its own); a
        copy of the message of a job running under a live lease (its claim's own message carries
        it on). The write is fenced by what was read (run, state, attempts, claim)."""
        current = self.repository.get(message.job_id)
        if current is None or current.owner != message.owner:
            raise JobNotFound(message.job_id)
        now = self.clock()
        ignored = self._ignored(current, message, now)
        if ignored is not None:
            log.info(
                "job.dead_letter_ignored",
                job_id=current.id,
                status=current.status.value,
                reason=ignored,
                message_run=message.run,
                run=current.run,
                **metrics.emf(current.type, counts=["DeadLettersIgnored"]),
            )
            return None
        write = lifecycle.dead_letter(current, now, receive_count, self.retention)
        try:
            job = self.repository.update(current.id, write.update, write.precondition)
        except ConditionFailed:
            log.info("job.dead_letter_raced", job_id=current.id)
            return None
        lost = ["JobsClaimed"] if current.status is JobStatus.RUNNING else []
        log.error(
            "job.dead_lettered",
            job_id=job.id,
            error_type=job.error.type if job.error is not None else None,
            receive_count=receive_count,
            run=job.run,
            **metrics.emf(job.type, counts=[*lost, "JobsDeadLettered"]),
        )
        return job

    @staticmethod
    def _ignored(job: Job, message: JobMessage, now: datetime) -> str | None:
        """Why the dead letter changes nothing, or None when it ends the job."""
        if job.status not in lifecycle.ALLOWED[Event.DEAD_LETTER]:
            return "finished"
        if message.run is not None and message.run != job.run:
            return "another_run"
        lease = job.lease_until
        if job.status is JobStatus.RUNNING and lease is not None and lease >= now:
            return "running_under_a_live_lease"
        return None

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
