"""One attempt of a claimed job, in named steps (as rq's worker names them): `perform` starts the
handler (in its own thread, or on the handler loop for an `async def` one) until the deadline, then ends the attempt with exactly one of `succeed`,
`fail`, `time_out` or `cancel`, each one conditional write of the job's outcome and history entry.
Each step returns what happened (`Ended`): the execution acts on it (deletes or returns the
message, postpones it by the backoff)."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from jobline import lifecycle, metrics
from jobline.backoff import Backoff
from jobline.errors import (
    ConditionFailed,
    DataUnavailable,
    InvalidCheckpoint,
    InvalidPayload,
    JobCancelled,
    JobHandlerError,
    StorageUnavailable,
    error_type_of,
)
from jobline.logging import get_logger
from jobline.models import Delivery, Job, JobError, JobStatus, RunOutcome
from jobline.ports import FunctionInvoker, JobRepository
from jobline.registry import Continue, JobContext, JobType
from jobline.transition import Ending, Transition, finished_attempt
from jobline.usecases.checkpoints import (
    AttemptChannel,
    HandlerOutcome,
    run_handler,
)
from jobline.usecases.claim_check import ClaimCheck
from jobline.usecases.functions import invoke_target
from jobline.validation import MAX_RESULT_DEPTH, canonical_json, json_problem

log = get_logger(__name__)

OUTCOME_COUNTS = {
    JobStatus.SUCCEEDED: "JobsSucceeded",
    JobStatus.FAILED: "JobsFailed",
    JobStatus.CANCELLED: "JobsCancelled",
}
OUTCOME_RETRY_PAUSES_S = (0.5, 1.0, 2.0)
"""Pauses before the outcome write is tried again (each try is itself retried by botocore)."""


@dataclass(frozen=True)
class Ended:
    """How an attempt ended, for the execution: the message's fate, and when the job is queued
    again after a retryable failure, the backoff to postpone its message by."""

    outcome: RunOutcome
    retry_in_s: int | None = None


@dataclass(frozen=True)
class AttemptPolicy:
    """The deployment's limits on an attempt."""

    retention: timedelta
    max_result_bytes: int
    progress_interval_s: float
    claim_check: ClaimCheck
    """Reads a payload kept in the data bucket, stores a result too large for the item."""


@dataclass
class RunningAttempt:
    """The attempt `job` (just claimed) is making under `delivery`; `backoff` draws the delay
    before the next attempt after a retryable failure."""

    job: Job
    delivery: Delivery
    repository: JobRepository
    clock: Callable[[], datetime]
    policy: AttemptPolicy
    backoff: Backoff
    rng: random.Random
    invoker: FunctionInvoker | None = None
    """Invokes the target function of a type declared with one (`JobType.target`)."""
    channel: AttemptChannel = field(init=False)
    started: float = field(init=False, default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.channel = AttemptChannel(
            self.repository, self.job, self.clock, self.policy.progress_interval_s
        )

    # --------------------------------------------------------------------- steps
    def perform(self, job_type: JobType[Any] | None) -> Ended:
        """Run the job's handler (`job_type` None: the deployment knows no such type) and end
        the attempt with its outcome."""
        if self.job.cancel_requested_at is not None:
            return self.cancel("cancellation was requested before the attempt started")
        if job_type is None:
            message = f"job type {self.job.type!r} is not registered"
            return self.fail(JobError(type="UnknownJobType", message=message))
        try:
            payload = self.policy.claim_check.payload_of(self.job)
        except DataUnavailable as exc:
            error = JobError(type=exc.error_type, message=exc.message)
            return self.fail(error, retryable=exc.retryable)
        outcome = self.start(job_type, payload)
        if outcome.timed_out:
            return self.time_out()
        if outcome.error is not None:
            return self.handle_failure(outcome.error)
        if isinstance(outcome.result, Continue):
            return self.continue_(job_type, outcome.result.state)
        return self.succeed(outcome.result)

    def start(self, job_type: JobType[Any], payload: Any) -> HandlerOutcome:
        """Run the type's handler (or invoke its target) on `payload` with the attempt's context
        until the deadline (the invocation's, or the type's `timeout_s` after the start, whichever
        comes first): a plain one in a thread of its own, an `async def` one on the handler loop
        (`run_handler`)."""
        deadline = min(self.delivery.deadline, self.started + job_type.timeout_s)
        context = JobContext(
            job_id=self.job.id,
            job_type=self.job.type,
            attempt=self.job.attempts,
            max_attempts=self.job.max_attempts,
            run=self.job.run,
            deadline=deadline,
            progress_sink=self.channel.report,
            cancel_probe=self.channel.cancelled,
            state=self.job.checkpoint.state if self.job.checkpoint else None,
            checkpoint_sink=self.channel.save,
        )
        if job_type.target is not None:
            return invoke_target(
                self.invoker, job_type, self.job, payload, context, deadline
            )
        return run_handler(job_type, payload, context, deadline)

    def handle_failure(self, failure: BaseException) -> Ended:
        """End the attempt after the handler raised `failure`."""
        if isinstance(failure, JobCancelled):
            return self.cancel(str(failure))
        error = JobError(type=error_type_of(failure), message=str(failure))
        if isinstance(failure, JobHandlerError):
            return self.fail(error, retryable=failure.retryable)
        if isinstance(failure, InvalidPayload):
            # The stored payload no longer fits the handler's model: retrying won't help.
            return self.fail(JobError(type="InvalidPayload", message=failure.message))
        if not isinstance(failure, Exception):
            raise failure  # KeyboardInterrupt, SystemExit: not ours to swallow
        log.error(
            "job.handler_crashed",
            error_type=error.type,
            error=error.message,
            failure_info=failure,
        )
        return self.fail(error, retryable=True)

    def succeed(self, result: Any) -> Ended:
        """End the attempt with the handler's result, if it can be stored and served back (a
        result nested too deep, or holding text that is not valid Unicode, fails the job)."""
        problem = json_problem(result, MAX_RESULT_DEPTH)
        if problem is not None:
            error = JobError(type="InvalidResult", message=f"the result {problem}")
            return self.fail(error)
        try:
            data = canonical_json(result).encode()
        except (TypeError, ValueError) as exc:
            error = JobError(
                type="InvalidResult", message=f"the result is not JSON: {exc}"
            )
            return self.fail(error)
        limit = self.policy.max_result_bytes
        if len(data) > limit:
            message = f"result is {len(data)} bytes; the limit is {limit}"
            return self.fail(JobError(type="ResultTooLarge", message=message))
        try:  # a large result is written first, then the outcome write names it
            ref = self.policy.claim_check.keep_result(self.job, data)
        except DataUnavailable as exc:
            error = JobError(type=exc.error_type, message=exc.message)
            return self.fail(error, retryable=exc.retryable)
        end = self._ending(None)
        kept = None if ref is not None else result
        return self._record(
            lifecycle.succeed(self.job, end, kept, self._retention, ref), end
        )

    def fail(self, error: JobError, *, retryable: bool = False) -> Ended:
        """End the attempt with `error`: queued again after a backoff when it is retryable and
        attempts are left, else the job fails."""
        end = self._ending(error)
        if retryable and lifecycle.has_attempts_left(self.job):
            delay = self.backoff.delay(self.job.attempts, self.rng)
            run_after = end.now + timedelta(seconds=delay)
            requeue = lifecycle.requeue(self.job, end, error, run_after)
            return self._record(requeue, end, retry_in_s=delay)
        failed = lifecycle.fail(self.job, end, error, self._retention)
        return self._record(failed, end, retryable=retryable)

    def continue_(self, job_type: JobType[Any], state: Any) -> Ended:
        """The handler asked to go on in a new invocation (`Continue`): save its state and queue
        the next invocation at once, unless the type does not continue or its `max_runtime_s`
        has passed since the attempt started (then the job fails: retrying cannot help)."""
        now = self.clock()
        if job_type.max_runtime_s is None:
            message = f"the handler returned Continue, but {job_type.name!r} declares no max_runtime_s"
            return self.fail(JobError(type="InvalidResult", message=message))
        started = self.job.started_at or now
        elapsed = (now - started).total_seconds()
        if elapsed >= job_type.max_runtime_s:
            message = (
                f"the attempt has run {elapsed:.0f} s across its invocations; "
                f"the type allows {job_type.max_runtime_s} s (max_runtime_s)"
            )
            return self.fail(JobError(type="MaxRuntimeExceeded", message=message))
        try:
            checkpoint = self.channel.next_checkpoint(state)
        except InvalidCheckpoint as exc:
            return self.fail(JobError(type="InvalidCheckpoint", message=exc.message))
        write = lifecycle.continue_(self.job, now, checkpoint, self.channel.latest)
        try:
            self._write(write)
        except ConditionFailed:
            log.warning(
                "job.continuation_discarded", reason="job changed while running"
            )
            return Ended(RunOutcome.DONE)
        log.info(
            "job.continued",
            attempt=self.job.attempts,
            elapsed_s=round(elapsed, 1),
            **metrics.emf(self.job.type, counts=["JobsContinued"]),
        )
        return Ended(RunOutcome.DONE)

    def time_out(self) -> Ended:
        """End the attempt the deadline stopped (retryable)."""
        log.warning("job.deadline_reached", attempt=self.job.attempts)
        message = "the attempt was stopped before the Lambda deadline"
        return self.fail(
            JobError(type="DeadlineExceeded", message=message), retryable=True
        )

    def cancel(self, message: str) -> Ended:
        """End the attempt, and the job, `cancelled`."""
        error = JobError(type="JobCancelled", message=message)
        end = self._ending(error)
        write = lifecycle.cancel_at_checkpoint(self.job, end, error, self._retention)
        return self._record(write, end)

    # ------------------------------------------------------------------ recording
    def _ending(self, error: JobError | None) -> Ending:
        """The attempt's end now: its history entry and the handler's latest progress."""
        now = self.clock()
        duration_ms = round((time.monotonic() - self.started) * 1000)
        entry = finished_attempt(
            self.job, now, error, self.delivery.request_id, duration_ms
        )
        return Ending(now, entry, self.channel.latest)

    def _write(self, write: Transition) -> None:
        """The outcome write, tried again (as the same logical write: one token, the claim's
        lease id, which its history entry keeps) while the store is unavailable and time is left
        before the deadline: an outcome not recorded means the handler runs again once the lease
        ends."""
        token = self.job.lease_id or uuid.uuid4().hex
        for pause in OUTCOME_RETRY_PAUSES_S:
            try:
                self.repository.update(
                    self.job.id, write.update, write.precondition, token=token
                )
                return
            except StorageUnavailable as exc:
                if time.monotonic() + pause >= self.delivery.deadline:
                    raise
                log.warning(
                    "job.outcome_write_retried", error=exc.message, pause_s=pause
                )
                time.sleep(pause)
        self.repository.update(
            self.job.id, write.update, write.precondition, token=token
        )

    @property
    def _retention(self) -> timedelta:
        return self.policy.retention

    def _record(
        self,
        write: Transition,
        end: Ending,
        *,
        retry_in_s: int | None = None,
        retryable: bool = False,
    ) -> Ended:
        """Write the outcome and its history entry in one conditional write, then log and count
        it. The outcome is discarded when the job changed under the attempt (cancelled,
        reclaimed)."""
        try:
            self._write(write)
        except ConditionFailed as lost:
            state = lost.current.status.value if lost.current is not None else None
            log.warning(
                "job.outcome_discarded",
                reason="job changed while running",
                status=state,
            )
            return Ended(RunOutcome.DONE)
        error = end.attempt.error
        fields: dict[str, Any] = {
            "attempt": self.job.attempts,
            "duration_ms": end.attempt.duration_ms,
        }
        if error is not None:
            fields.update(error_type=error.type, error=error.message)
        status = write.update.status
        counts = ["JobsClaimed"]
        if retry_in_s is not None:
            counts.append("JobsRetried")
        elif isinstance(status, JobStatus) and status in OUTCOME_COUNTS:
            counts.append(OUTCOME_COUNTS[status])
        fields.update(
            metrics.emf(self.job.type, counts=counts, durations=self._durations(end))
        )
        if retry_in_s is not None:
            log.warning("job.attempt_failed", retry_in_s=retry_in_s, **fields)
            return Ended(RunOutcome.REDELIVER, retry_in_s)
        if status is JobStatus.FAILED:
            log.error("job.failed", retryable=retryable, **fields)
        elif isinstance(status, JobStatus):
            log.info(f"job.{status.value}", **fields)
        return Ended(RunOutcome.DONE)

    def _durations(self, end: Ending) -> dict[str, float]:
        """The attempt's duration and, from the job as claimed, how long it waited after it was
        due (its queue delay)."""
        durations = {"AttemptDuration": float(end.attempt.duration_ms or 0)}
        due, started = self.job.run_after, self.job.started_at
        if due is not None and started is not None:
            durations["QueueDelay"] = (started - due).total_seconds() * 1000
        return durations
