"""Run a job from its message: claim it under a lease (or reclaim it from a dead worker), perform
one attempt until the deadline, and record the outcome. A message for a finished job, or for
another run of the job (a retry started a new one), is a no-op; one for a job another live
invocation holds is parked until that lease has ended (it consumes no attempt)."""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jobline import lifecycle, metrics
from jobline.backoff import Backoff
from jobline.clock import format_ts
from jobline.errors import (
    ConditionFailed,
    JobNotFound,
    QueueUnavailable,
    StorageUnavailable,
    UnknownJobType,
)
from jobline.logging import bind, bound, get_logger
from jobline.models import Delivery, Job, JobError, JobStatus, RunOutcome
from jobline.ports import FunctionInvoker, JobQueue, JobRepository
from jobline.registry import JobType, JobTypeRegistry
from jobline.transition import Event, Lease
from jobline.usecases.attempt import AttemptPolicy, RunningAttempt

log = get_logger(__name__)

STORAGE_RETRY_S = 5
"""How soon a delivery whose claim met an unavailable store comes back."""


@dataclass(frozen=True)
class Execution:
    """The worker's use case: one delivery of a job message in, what to do with it out."""

    repository: JobRepository
    queue: JobQueue
    registry: JobTypeRegistry
    clock: Callable[[], datetime]
    policy: AttemptPolicy
    backoff: Backoff
    rng: random.Random
    invoker: FunctionInvoker | None = None
    """Invokes job types' target functions (`JobType.target`)."""

    def run(self, delivery: Delivery) -> RunOutcome:
        """Claim the job the delivery names, run one attempt and record its outcome."""
        message = delivery.message
        with bound(job_id=message.job_id, job_type=message.job_type):
            try:
                job = self._claim(delivery)
            except StorageUnavailable as exc:
                # Nothing changed (or a write token will recognise what did): look again soon,
                # not after the queue's whole visibility timeout.
                log.warning(
                    "job.claim_unavailable",
                    error=exc.message,
                    retry_in_s=STORAGE_RETRY_S,
                )
                self._postpone(delivery, STORAGE_RETRY_S)
                return RunOutcome.REDELIVER
            if isinstance(job, RunOutcome):
                return job
            job_type = self._job_type(job)
            backoff = job_type.backoff if job_type and job_type.backoff else None
            attempt = RunningAttempt(
                job,
                delivery,
                self.repository,
                self.clock,
                self.policy,
                backoff=backoff or self.backoff,
                rng=self.rng,
                invoker=self.invoker,
            )
            ended = attempt.perform(job_type)
            if ended.retry_in_s is not None:
                self._postpone(delivery, ended.retry_in_s)
            return ended.outcome

    # ---------------------------------------------------------------- claiming
    def _claim(self, delivery: Delivery) -> Job | RunOutcome:
        """The claimed job, or what to do with a message whose job cannot be claimed now."""
        message = delivery.message
        now = self.clock()
        lease = Lease(
            id=uuid.uuid4().hex,
            until=delivery.lease_until,
            request_id=delivery.request_id,
        )
        claim = lifecycle.claim(message.owner, now, lease, message.run)
        try:
            job = self.repository.update(
                message.job_id, claim.update, claim.precondition
            )
        except ConditionFailed as lost:
            current = lost.current
            if current is None or current.owner != message.owner:
                raise JobNotFound(message.job_id) from None
            if current.lease_id == lease.id:
                # Our own claim, applied although its answer was lost (and written over since).
                return self._claimed(current, delivery, now)
            if message.run is not None and current.run != message.run:
                log.info(
                    "job.stale_message",
                    message_run=message.run,
                    run=current.run,
                    **metrics.emf(current.type, counts=["StaleMessages"]),
                )
                return RunOutcome.DONE
            if current.status is not JobStatus.RUNNING:
                return self._not_claimed(current, delivery, now)
            if current.continue_at is not None:
                return self._resume(current, delivery, now, lease)
            reclaim = lifecycle.reclaim(current, now, lease)
            if not reclaim.precondition.admits(current):
                return self._not_claimed(current, delivery, now)
            try:
                job = self.repository.update(
                    current.id, reclaim.update, reclaim.precondition
                )
            except ConditionFailed as raced:
                if raced.current is None:
                    raise JobNotFound(message.job_id) from None
                if raced.current.lease_id != lease.id:
                    return self._not_claimed(raced.current, delivery, now)
                job = raced.current  # our reclaim, applied although its answer was lost
            log.warning(
                "job.reclaimed",
                previous_attempt=current.attempts,
                previous_request_id=current.attempt_request_id,
                # the lost attempt's claim, counted as it ends (as an outcome counts its own)
                **metrics.emf(current.type, counts=["JobsClaimed"]),
            )
        return self._claimed(job, delivery, now)

    def _resume(
        self, current: Job, delivery: Delivery, now: datetime, lease: Lease
    ) -> Job | RunOutcome:
        """Take over a continuing attempt (its previous invocation asked to go on)."""
        resume = lifecycle.resume(current, now, lease)
        try:
            job = self.repository.update(current.id, resume.update, resume.precondition)
        except ConditionFailed as raced:
            if raced.current is None:
                raise JobNotFound(current.id) from None
            if raced.current.lease_id != lease.id:
                return self._not_claimed(raced.current, delivery, now)
            job = raced.current  # our resume, applied although its answer was lost
        log.debug("job.resumed", continued_at=format_ts(current.continue_at or now))
        return self._claimed(job, delivery, now)

    def _claimed(self, job: Job, delivery: Delivery, now: datetime) -> Job:
        """`job`, claimed by this delivery (its claim and queue delay are counted in the attempt's
        end document: one line per job event)."""
        bind(job_type=job.type, correlation_id=job.correlation_id, run=job.run)
        log.debug(
            "job.claimed",
            attempt=job.attempts,
            max_attempts=job.max_attempts,
            lease_until=delivery.lease_until.isoformat(),
        )
        return job

    def _not_claimed(
        self, current: Job, delivery: Delivery, now: datetime
    ) -> RunOutcome:
        lease = current.lease_until
        if current.status is JobStatus.RUNNING and lease is not None and lease >= now:
            # Another invocation holds the job: never run it twice, never fail it; look again
            # once its lease has ended.
            wait = int((lease - now).total_seconds()) + 1
            self._postpone(delivery, wait)
            log.info(
                "job.held_by_other_worker",
                lease_until=lease.isoformat(),
                retry_in_s=wait,
            )
            return RunOutcome.REDELIVER
        due = current.run_after
        if (
            current.status is JobStatus.QUEUED
            and lifecycle.has_attempts_left(current)
            and due is not None
            and due > now
        ):
            # A delivery before the job is due (a duplicate racing a retry's backoff, or a clock
            # ahead of the queue's): hide it until then, never start the attempt early.
            wait = math.ceil((due - now).total_seconds())
            self._postpone(delivery, wait)
            log.info("job.not_due", run_after=due.isoformat(), retry_in_s=wait)
            return RunOutcome.REDELIVER
        if current.status in lifecycle.ALLOWED[Event.FAIL_EXHAUSTED] and (
            not lifecycle.has_attempts_left(current)
        ):
            # Every attempt was used by workers that died mid-job (the lease has ended).
            self._fail_exhausted(current, now)
            return RunOutcome.DONE
        log.info(
            "job.duplicate_delivery",
            status=current.status.value,
            attempts=current.attempts,
        )
        return RunOutcome.DONE

    def _fail_exhausted(self, job: Job, now: datetime) -> None:
        exhausted = lifecycle.fail_exhausted(job, now, self.policy.retention)
        try:
            self.repository.update(job.id, exhausted.update, exhausted.precondition)
        except ConditionFailed:
            log.info("job.exhausted_already_handled")
            return
        error = exhausted.update.error
        if isinstance(error, JobError):
            lost = ["JobsClaimed"] if job.status is JobStatus.RUNNING else []
            log.error(
                "job.failed",
                attempt=job.attempts,
                error_type=error.type,
                error=error.message,
                **metrics.emf(job.type, counts=[*lost, "JobsFailed"]),
            )

    # ------------------------------------------------------------------ helpers
    def _job_type(self, job: Job) -> JobType[Any] | None:
        """The job's type, looked up once per attempt (None: this deployment does not know it)."""
        try:
            return self.registry.get(job.type)
        except UnknownJobType:
            return None

    def _postpone(self, delivery: Delivery, seconds: int) -> None:
        if delivery.receipt_handle is None:
            return
        try:
            self.queue.postpone(delivery.receipt_handle, seconds, delivery.queue)
        except QueueUnavailable as exc:
            log.warning(
                "job.backoff_not_applied", error=exc.message, retry_in_s=seconds
            )
