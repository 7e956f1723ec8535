"""Every rule of Jobline: submit, read, list, cancel, retry, ingest, and run a job (claim with a
lease, handler until the deadline, outcome, backoff), dead letters.

The state machine (every arrow is a conditional write; nothing moves backwards):
    queued --claim--> running --success--> succeeded
    queued --cancel-> cancelled          running --failure, attempts left--> queued (+ backoff)
    running --cancel requested, seen by the handler--> cancelled
    running --failure, no attempts left / permanent--> failed
    running --lease ended (worker died)--> running again (reclaimed, attempts + 1)
    queued|running --message dead-lettered--> dead_lettered
    failed|dead_lettered|cancelled --retry--> queued (fresh attempts, history kept)
    (ingest) invalid submission --> rejected
"""

from __future__ import annotations

import enum
import hashlib
import json
import random
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import ValidationError

from jobline.attempt import AttemptChannel, run_until_deadline
from jobline.backoff import Backoff
from jobline.clock import utcnow
from jobline.cursor import CursorCodec
from jobline.errors import (
    ConditionFailed,
    IdempotencyConflict,
    InvalidJobState,
    InvalidPayload,
    JobNotFound,
    PayloadTooLarge,
    QueueUnavailable,
    StorageUnavailable,
    UnknownJobType,
)
from jobline.logging import bind, get_logger, unbind
from jobline.models import (
    MAX_HISTORY,
    RETRYABLE_STATUSES,
    Attempt,
    Delivery,
    IngestSubmission,
    Job,
    JobError,
    JobFilter,
    JobMessage,
    JobPage,
    JobStatus,
    SubmitRequest,
)
from jobline.ports import Change, Expect, JobQueue, JobRepository
from jobline.registry import (
    JobCancelled,
    JobContext,
    JobHandlerError,
    JobType,
    JobTypeRegistry,
)

log = get_logger(__name__)

_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_LIST_LIMIT = 100


class RunOutcome(enum.StrEnum):
    """What the worker should do with the message after `run`."""

    DONE = "done"
    """The job reached a final state, or the message was a duplicate: acknowledge it."""
    RETRY = "retry"
    """Return the message for redelivery: the attempt failed and the job is queued again (its
    visibility already set to the backoff), or another worker's live lease holds the job."""


@dataclass(frozen=True)
class Submitted:
    """The job a submit produced; `created` is False for an idempotent replay."""

    job: Job
    created: bool


def _canonical_json(value: Any) -> str:
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        allow_nan=False,
        ensure_ascii=False,
    )


class JobService:
    """Jobline's use cases over a repository, a queue and the job type registry."""

    def __init__(
        self,
        repository: JobRepository,
        queue: JobQueue,
        registry: JobTypeRegistry,
        cursor_codec: CursorCodec,
        *,
        retention: timedelta = timedelta(days=30),
        max_payload_bytes: int = 64 * 1024,
        max_result_bytes: int = 128 * 1024,
        backoff: Backoff | None = None,
        progress_interval_s: float = 1.0,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self._repo = repository
        self._queue = queue
        self.registry = registry
        self._cursors = cursor_codec
        self._retention = retention
        self._max_payload = max_payload_bytes
        self._max_result = max_result_bytes
        self._backoff = backoff or Backoff()
        self._progress_interval = progress_interval_s
        self._clock = clock
        self._rng = rng or random.Random()

    # ----------------------------------------------------------------- submit
    def submit(
        self, owner: str, request: SubmitRequest, idempotency_key: str | None = None
    ) -> Submitted:
        """Validate, store and enqueue a job. With an idempotency key, a replay of the same request
        returns the original job and enqueues nothing; the same key with another request conflicts."""
        job_type = self.registry.get(request.type)
        job_type.parse(request.payload)
        try:
            payload_text = _canonical_json(request.payload)
        except ValueError as exc:
            raise InvalidPayload(
                request.type,
                [
                    {
                        "loc": ["payload"],
                        "msg": "NaN and Infinity are not JSON",
                        "type": "json",
                    }
                ],
            ) from exc
        size = len(payload_text.encode())
        if size > self._max_payload:
            raise PayloadTooLarge(size, self._max_payload)

        request_hash = hashlib.sha256(
            _canonical_json(request.model_dump(mode="json")).encode()
        ).hexdigest()
        if idempotency_key is None:
            job_id = uuid.uuid4().hex
        else:
            job_id = _derived_id(owner, idempotency_key)
        now = self._clock()
        job = Job(
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
        )
        try:
            self._repo.create(job, now)
        except ConditionFailed as lost:
            return self._replay(lost.current, owner, request_hash, idempotency_key)

        try:
            self._queue.send(
                JobMessage(job_id=job.id, owner=owner, job_type=job.type),
                request.delay_seconds,
            )
        except QueueUnavailable:
            log.error("job.enqueue_failed", job_id=job.id, job_type=job.type)
            self._repo.delete(
                job.id, Expect(owner=owner, status_in=frozenset({JobStatus.QUEUED}))
            )
            raise
        log.info(
            "job.submitted",
            job_id=job.id,
            job_type=job.type,
            delay_seconds=request.delay_seconds,
        )
        return Submitted(job=job, created=True)

    def _replay(
        self,
        current: object,
        owner: str,
        request_hash: str,
        idempotency_key: str | None,
    ) -> Submitted:
        if idempotency_key is None or not isinstance(current, Job):
            raise StorageUnavailable("job id collision")
        if current.owner != owner or current.request_hash != request_hash:
            log.info("job.idempotency_conflict", job_id=current.id)
            raise IdempotencyConflict(idempotency_key)
        log.info("job.idempotent_replay", job_id=current.id, job_type=current.type)
        return Submitted(job=current, created=False)

    # ------------------------------------------------------------------ reads
    def get(self, owner: str, job_id: str) -> Job:
        """The caller's job; unknown, malformed, foreign and expired ids are all `JobNotFound`."""
        if not _JOB_ID.match(job_id):
            raise JobNotFound(job_id)
        job = self._repo.get(job_id)
        if (
            job is None
            or job.owner != owner
            or job.is_expired(self._clock().timestamp())
        ):
            raise JobNotFound(job_id)
        return job

    def list_jobs(
        self,
        owner: str,
        job_filter: JobFilter,
        limit: int = 20,
        cursor: str | None = None,
    ) -> JobPage:
        """The caller's jobs, newest first, one page at a time."""
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise ValueError(f"limit must be within 1..{MAX_LIST_LIMIT}")
        start = self._cursors.decode(cursor, owner, job_filter) if cursor else None
        jobs, next_key = self._repo.query(
            owner, job_filter, limit, start, self._clock()
        )
        next_cursor = (
            self._cursors.encode(next_key, owner, job_filter) if next_key else None
        )
        return JobPage(items=jobs, next_cursor=next_cursor)

    def job_types(self) -> list[JobType[Any]]:
        """Registered job types, sorted by name."""
        return list(self.registry)

    # ----------------------------------------------------------------- cancel
    def cancel(self, owner: str, job_id: str) -> Job:
        """Cancel a job. A queued job becomes `cancelled` at once and never runs; for a running job
        the request is recorded (`cancel_requested_at`). A finished job is `InvalidJobState`."""
        if not _JOB_ID.match(job_id):
            raise JobNotFound(job_id)
        now = self._clock()
        change = Change(
            values={
                "status": JobStatus.CANCELLED,
                "updated_at": now,
                "finished_at": now,
                "expires_at": self._expiry(now),
            }
        )
        try:
            job = self._repo.update(
                job_id,
                change,
                Expect(owner=owner, status_in=frozenset({JobStatus.QUEUED})),
            )
        except ConditionFailed as lost:
            current = lost.current
            if (
                not isinstance(current, Job)
                or current.owner != owner
                or current.is_expired(now.timestamp())
            ):
                raise JobNotFound(job_id) from None
            if current.status is JobStatus.RUNNING:
                return self._request_cancel(current, now)
            raise InvalidJobState(job_id, current.status.value, "cancel") from None
        log.info("job.cancelled", job_id=job.id, job_type=job.type)
        return job

    def _request_cancel(self, job: Job, now: datetime) -> Job:
        """A running job can't be stopped from outside: record the request; the handler sees it
        at its next checkpoint and the job ends `cancelled`."""
        expect = Expect(owner=job.owner, status_in=frozenset({JobStatus.RUNNING}))
        change = Change(values={"cancel_requested_at": now, "updated_at": now})
        try:
            requested = self._repo.update(job.id, change, expect)
        except ConditionFailed as lost:
            current = lost.current
            status = current.status.value if isinstance(current, Job) else "gone"
            raise InvalidJobState(job.id, status, "cancel") from None
        log.info("job.cancel_requested", job_id=job.id, job_type=job.type)
        return requested

    # ------------------------------------------------------------------ retry
    def retry(self, owner: str, job_id: str) -> Job:
        """Re-queue a failed, dead-lettered or cancelled job with a fresh attempts budget, keeping
        its history. Any other state is `InvalidJobState`."""
        job = self.get(owner, job_id)
        if job.status not in RETRYABLE_STATUSES:
            raise InvalidJobState(job_id, job.status.value, "retry")
        if len(job.history) >= MAX_HISTORY:
            raise InvalidJobState(
                job_id, f"{job.status.value} after {MAX_HISTORY} attempts", "retry"
            )
        now = self._clock()
        change = Change(
            values={
                "status": JobStatus.QUEUED,
                "attempts": 0,
                "result": None,
                "error": None,
                "progress": None,
                "finished_at": None,
                "expires_at": None,
                "cancel_requested_at": None,
                "lease_until": None,
                "run_after": now,
                "updated_at": now,
            }
        )
        expect = Expect(
            owner=owner, status_in=frozenset({job.status}), attempts=job.attempts
        )
        try:
            queued = self._repo.update(job_id, change, expect)
        except ConditionFailed as lost:
            current = lost.current
            status = current.status.value if isinstance(current, Job) else "gone"
            raise InvalidJobState(job_id, status, "retry") from None
        try:
            self._queue.send(
                JobMessage(job_id=job_id, owner=owner, job_type=job.type), 0
            )
        except QueueUnavailable:
            log.error("job.retry_enqueue_failed", job_id=job_id, job_type=job.type)
            self._restore(job, now)
            raise
        log.info(
            "job.retried", job_id=job_id, job_type=job.type, previous=job.status.value
        )
        return queued

    def _restore(self, job: Job, now: datetime) -> None:
        """Undo a retry whose message could not be sent, so the job is not left queued forever."""
        values: dict[str, Any] = {
            name: getattr(job, name)
            for name in (
                "status",
                "attempts",
                "result",
                "error",
                "progress",
                "finished_at",
                "cancel_requested_at",
            )
        }
        values.update(
            expires_at=job.expires_at, run_after=job.run_after, updated_at=now
        )
        expect = Expect(
            owner=job.owner, status_in=frozenset({JobStatus.QUEUED}), attempts=0
        )
        try:
            self._repo.update(job.id, Change(values=values), expect)
        except ConditionFailed:
            log.warning(
                "job.retry_restore_skipped", job_id=job.id, reason="job changed"
            )

    # ----------------------------------------------------------------- ingest
    def ingest(
        self, submission: Any, *, message_id: str, default_owner: str
    ) -> Submitted:
        """A submission from another system (ingest queue): validated and submitted exactly like
        `POST /jobs`; idempotent per SQS message id (or the given key). An invalid submission is
        stored as a `rejected` job with the reason, visible to its owner, so it is never lost."""
        owner = default_owner
        if isinstance(submission, dict) and isinstance(submission.get("owner"), str):
            owner = submission["owner"] or default_owner
        try:
            parsed = IngestSubmission.model_validate(submission)
            owner = parsed.owner or default_owner
            key = parsed.idempotency_key or f"sqs-message:{message_id}"
            return self.submit(owner, parsed.to_request(), key)
        except ValidationError as exc:
            reason = "; ".join(
                f"{'.'.join(str(part) for part in err['loc']) or 'submission'}: {err['msg']}"
                for err in exc.errors(include_url=False, include_input=False)
            )
            return self._reject(
                submission, owner, message_id, "InvalidSubmission", reason
            )
        except (
            UnknownJobType,
            InvalidPayload,
            PayloadTooLarge,
            IdempotencyConflict,
        ) as exc:
            reason = exc.message
            if isinstance(exc, InvalidPayload):
                reason += ": " + "; ".join(
                    f"{'.'.join(str(part) for part in err['loc'])}: {err['msg']}"
                    for err in exc.errors
                )
            return self._reject(
                submission, owner, message_id, type(exc).__name__, reason
            )

    def _reject(
        self, submission: Any, owner: str, message_id: str, error_type: str, reason: str
    ) -> Submitted:
        now = self._clock()
        raw = submission if isinstance(submission, dict) else {"body": submission}
        payload = raw.get("payload", raw) if isinstance(raw, dict) else raw
        try:
            if len(_canonical_json(payload).encode()) > self._max_payload:
                payload = None
                reason += f" (payload not kept: over {self._max_payload} bytes)"
        except (TypeError, ValueError):
            payload = None
        job_type = raw.get("type") if isinstance(raw, dict) else None
        job = Job(
            id=_derived_id(owner, f"rejected:{message_id}"),
            owner=owner,
            type=job_type
            if isinstance(job_type, str) and 0 < len(job_type) <= 128
            else "unknown",
            status=JobStatus.REJECTED,
            payload=payload,
            error=JobError(type=error_type, message=reason[:4096]),
            max_attempts=1,
            created_at=now,
            updated_at=now,
            finished_at=now,
            expires_at=self._expiry(now),
        )
        try:
            self._repo.create(job, now)
        except ConditionFailed as lost:
            if isinstance(lost.current, Job):
                log.info("job.rejection_replayed", job_id=job.id)
                return Submitted(job=lost.current, created=False)
            raise
        log.warning(
            "job.rejected",
            job_id=job.id,
            job_type=job.type,
            error_type=error_type,
            reason=reason,
        )
        return Submitted(job=job, created=True)

    # -------------------------------------------------------------------- run
    def run(self, delivery: Delivery) -> RunOutcome:
        """Claim the job named by the delivery's message (a lease until the invocation's deadline),
        run its handler until `delivery.deadline` and record the outcome. A message for a finished
        or cancelled job is a no-op (`DONE`); one for a job another live invocation holds comes
        back later (`RETRY`)."""
        message = delivery.message
        bind(job_id=message.job_id, job_type=message.job_type)
        try:
            claimed = self._claim(delivery)
            if isinstance(claimed, RunOutcome):
                return claimed
            job, lost_attempt = claimed
            return self._attempt(job, lost_attempt, delivery)
        finally:
            unbind("job_id", "job_type")

    def _claim(self, delivery: Delivery) -> tuple[Job, Attempt | None] | RunOutcome:
        message = delivery.message
        now = self._clock()
        change = Change(
            values={
                "status": JobStatus.RUNNING,
                "started_at": now,
                "updated_at": now,
                "lease_until": delivery.lease_until,
                "attempt_request_id": delivery.request_id,
                "progress": None,
                "run_after": None,
            },
            increment_attempts=True,
        )
        expect = Expect(
            owner=message.owner,
            status_in=frozenset({JobStatus.QUEUED}),
            lease_expired_before=now,
            below_max_attempts=True,
        )
        try:
            before = self._repo.update(message.job_id, change, expect, return_old=True)
        except ConditionFailed as lost:
            return self._not_claimed(lost.current, delivery, now)
        job = before.model_copy(
            update={
                **change.values,
                "attempts": before.attempts + 1,
                "progress": None,
                "run_after": None,
            }
        )
        lost_attempt = None
        if before.status is JobStatus.RUNNING:
            log.warning(
                "job.reclaimed",
                previous_attempt=before.attempts,
                previous_request_id=before.attempt_request_id,
            )
            lost_attempt = self._record_lost(job, _lost_attempt(before))
        bind(job_type=job.type)
        log.info(
            "job.claimed",
            attempt=job.attempts,
            max_attempts=job.max_attempts,
            lease_until=delivery.lease_until.isoformat(),
        )
        return job, lost_attempt

    def _record_lost(self, job: Job, lost: Attempt) -> Attempt | None:
        """Write the history entry of the attempt a reclaim replaced at once, so it survives this
        attempt dying too. Returns it when storage is unavailable (the outcome write carries it)."""
        expect = Expect(
            owner=job.owner,
            status_in=frozenset({JobStatus.RUNNING}),
            attempts=job.attempts,
        )
        try:
            self._repo.update(job.id, Change(append_history=(lost,)), expect)
        except ConditionFailed:
            return None  # the job moved on: this attempt's outcome is discarded too
        except StorageUnavailable as exc:
            log.warning("job.lost_attempt_not_recorded", error=exc.message)
            return lost
        return None

    def _not_claimed(
        self, current: object, delivery: Delivery, now: datetime
    ) -> RunOutcome:
        message = delivery.message
        if not isinstance(current, Job) or current.owner != message.owner:
            raise JobNotFound(message.job_id)
        lease = current.lease_until
        if current.status is JobStatus.RUNNING and lease is not None and lease >= now:
            # Another invocation holds the job: never run it twice, never fail it; look again
            # once its lease has ended.
            wait = int((lease - now).total_seconds()) + 1
            self._delay_redelivery(delivery, wait)
            log.info(
                "job.held_by_other_worker",
                lease_until=lease.isoformat(),
                retry_in_s=wait,
            )
            return RunOutcome.RETRY
        if (
            current.status in (JobStatus.RUNNING, JobStatus.QUEUED)
            and current.attempts >= current.max_attempts
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
        error = JobError(
            type="WorkerLost",
            message=f"attempt {job.attempts} of {job.max_attempts} ended without an outcome "
            "(crash, timeout or out of memory) and no attempts are left",
        )
        change = Change(
            values={
                "status": JobStatus.FAILED,
                "error": error,
                "updated_at": now,
                "finished_at": now,
                "expires_at": self._expiry(now),
                "lease_until": None,
            },
            append_history=(
                (_lost_attempt(job),) if job.status is JobStatus.RUNNING else ()
            ),
        )
        expect = Expect(
            owner=job.owner, status_in=frozenset({job.status}), attempts=job.attempts
        )
        try:
            self._repo.update(job.id, change, expect)
        except ConditionFailed:
            log.info("job.exhausted_already_handled")
            return
        log.error(
            "job.failed",
            attempt=job.attempts,
            error_type=error.type,
            error=error.message,
        )

    def _attempt(
        self, job: Job, lost_attempt: Attempt | None, delivery: Delivery
    ) -> RunOutcome:
        started = time.monotonic()
        channel = AttemptChannel(self._repo, job, self._clock, self._progress_interval)
        finished = self._finisher(job, lost_attempt, delivery, started, channel)
        if job.cancel_requested_at is not None:
            return finished(
                JobStatus.CANCELLED,
                None,
                JobError(
                    type="JobCancelled",
                    message="cancellation was requested before the attempt started",
                ),
            )
        context = JobContext(
            job_id=job.id,
            job_type=job.type,
            attempt=job.attempts,
            max_attempts=job.max_attempts,
            deadline=delivery.deadline,
            progress_sink=channel.report,
            cancel_probe=channel.cancelled,
        )
        try:
            job_type = self.registry.get(job.type)
        except UnknownJobType as exc:
            return finished(
                None, None, JobError(type="UnknownJobType", message=exc.message)
            )
        outcome = run_until_deadline(
            lambda: job_type.run(job.payload, context), context, delivery.deadline
        )
        if outcome.timed_out:
            log.warning("job.deadline_reached", attempt=job.attempts)
            error = JobError(
                type="DeadlineExceeded",
                message="the attempt was stopped before the Lambda deadline",
            )
            return finished(None, None, error, retryable=True)
        if outcome.error is None:
            return self._succeed(finished, outcome.result)
        failure = outcome.error
        if isinstance(failure, JobCancelled):
            return finished(
                JobStatus.CANCELLED,
                None,
                JobError(type="JobCancelled", message=str(failure)),
            )
        if isinstance(failure, JobHandlerError):
            return finished(
                None,
                None,
                JobError(type=type(failure).__name__, message=str(failure)),
                retryable=failure.retryable,
            )
        if isinstance(failure, InvalidPayload):
            # The stored payload no longer fits the handler's model: retrying won't help.
            return finished(
                None, None, JobError(type="InvalidPayload", message=failure.message)
            )
        if not isinstance(failure, Exception):
            raise failure  # KeyboardInterrupt, SystemExit: not ours to swallow
        log.error(
            "job.handler_crashed",
            error_type=type(failure).__name__,
            error=str(failure),
            failure_info=failure,
        )
        return finished(
            None,
            None,
            JobError(type=type(failure).__name__, message=str(failure)),
            retryable=True,
        )

    def _succeed(self, finished: _Finisher, result: Any) -> RunOutcome:
        try:
            size = len(_canonical_json(result).encode())
        except (TypeError, ValueError) as exc:
            return finished(
                None,
                None,
                JobError(
                    type="InvalidResult", message=f"the result is not JSON: {exc}"
                ),
            )
        if size > self._max_result:
            return finished(
                None,
                None,
                JobError(
                    type="ResultTooLarge",
                    message=f"result is {size} bytes; the limit is {self._max_result}",
                ),
            )
        return finished(JobStatus.SUCCEEDED, result, None)

    def _finisher(
        self,
        job: Job,
        lost_attempt: Attempt | None,
        delivery: Delivery,
        started: float,
        channel: AttemptChannel,
    ) -> _Finisher:
        def finish(
            status: JobStatus | None,
            result: Any,
            error: JobError | None,
            retryable: bool = False,
        ) -> RunOutcome:
            now = self._clock()
            duration_ms = round((time.monotonic() - started) * 1000)
            entry = Attempt(
                attempt=job.attempts,
                started_at=job.started_at or now,
                finished_at=now,
                error=error,
                request_id=delivery.request_id,
                duration_ms=duration_ms,
            )
            values: dict[str, Any] = {
                "updated_at": now,
                "lease_until": None,
                "attempt_request_id": None,
            }
            if channel.latest is not None:
                values["progress"] = channel.latest
            outcome = RunOutcome.DONE
            delay = 0
            if status is None and retryable and job.attempts < job.max_attempts:
                delay = self._retry_delay(job)
                values.update(
                    status=JobStatus.QUEUED,
                    error=error,
                    run_after=now + timedelta(seconds=delay),
                )
                outcome = RunOutcome.RETRY
            else:
                values.update(
                    status=status or JobStatus.FAILED,
                    result=result,
                    error=error,
                    finished_at=now,
                    expires_at=self._expiry(now),
                )
            history = [entry] if lost_attempt is None else [lost_attempt, entry]
            if not self._write_outcome(job, values, history):
                return RunOutcome.DONE
            final = values["status"]
            fields: dict[str, Any] = {
                "attempt": job.attempts,
                "duration_ms": duration_ms,
            }
            if error is not None:
                fields.update(error_type=error.type, error=error.message)
            if outcome is RunOutcome.RETRY:
                self._delay_redelivery(delivery, delay)
                log.warning("job.attempt_failed", retry_in_s=delay, **fields)
            elif final is JobStatus.FAILED:
                log.error("job.failed", retryable=retryable, **fields)
            else:
                log.info(f"job.{final.value}", **fields)
            return outcome

        return finish

    def _write_outcome(
        self, job: Job, values: dict[str, Any], history: list[Attempt]
    ) -> bool:
        """One conditional write: the attempt's outcome and its history entries. False when the job
        changed under the attempt (cancelled, reclaimed): the outcome is discarded."""
        expect = Expect(
            owner=job.owner,
            status_in=frozenset({JobStatus.RUNNING}),
            attempts=job.attempts,
        )
        try:
            self._repo.update(
                job.id, Change(values=values, append_history=tuple(history)), expect
            )
        except ConditionFailed as lost:
            state = lost.current.status.value if isinstance(lost.current, Job) else None
            log.warning(
                "job.outcome_discarded",
                reason="job changed while running",
                status=state,
            )
            return False
        return True

    def _retry_delay(self, job: Job) -> int:
        try:
            backoff = self.registry.get(job.type).backoff or self._backoff
        except UnknownJobType:
            backoff = self._backoff
        return backoff.delay(job.attempts, self._rng)

    def _delay_redelivery(self, delivery: Delivery, seconds: int) -> None:
        if delivery.receipt_handle is None:
            return
        try:
            self._queue.change_visibility(delivery.receipt_handle, seconds)
        except QueueUnavailable as exc:
            log.warning(
                "job.backoff_not_applied", error=exc.message, retry_in_s=seconds
            )

    # ----------------------------------------------------------- dead letters
    def dead_letter(self, message: JobMessage, receive_count: int) -> Job | None:
        """Record that SQS dead-lettered the job's message: a queued or running job becomes
        `dead_lettered` with its last error. A finished job is left alone (returns None)."""
        current = self._repo.get(message.job_id)
        if current is None or current.owner != message.owner:
            raise JobNotFound(message.job_id)
        if current.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
            log.info(
                "job.dead_letter_ignored",
                job_id=current.id,
                status=current.status.value,
            )
            return None
        now = self._clock()
        error = current.error or JobError(
            type="DeadLettered",
            message=f"the message was dead-lettered after {receive_count} receives",
        )
        lost = (_lost_attempt(current),) if current.status is JobStatus.RUNNING else ()
        change = Change(
            values={
                "status": JobStatus.DEAD_LETTERED,
                "error": error,
                "updated_at": now,
                "finished_at": now,
                "expires_at": self._expiry(now),
                "lease_until": None,
            },
            append_history=lost,
        )
        expect = Expect(
            owner=current.owner,
            status_in=frozenset({current.status}),
            attempts=current.attempts,
        )
        try:
            job = self._repo.update(current.id, change, expect)
        except ConditionFailed:
            log.info("job.dead_letter_raced", job_id=current.id)
            return None
        log.error(
            "job.dead_lettered",
            job_id=job.id,
            job_type=job.type,
            error_type=error.type,
            receive_count=receive_count,
        )
        return job

    def _expiry(self, now: datetime) -> int:
        return int((now + self._retention).timestamp())


class _Finisher(Protocol):
    """Records an attempt's outcome: (status or None for a failure, result, error, retryable)."""

    def __call__(
        self,
        status: JobStatus | None,
        result: Any,
        error: JobError | None,
        retryable: bool = False,
    ) -> RunOutcome: ...


def _derived_id(owner: str, key: str) -> str:
    """A job id derived from its owner and a key: the same key gives the same job."""
    return hashlib.sha256(f"{owner}\x00{key}".encode()).hexdigest()[:32]


def _lost_attempt(job: Job) -> Attempt:
    """The history entry of an attempt whose worker died before recording an outcome."""
    return Attempt(
        attempt=job.attempts,
        started_at=job.started_at or job.updated_at,
        finished_at=None,
        error=JobError(
            type="WorkerLost",
            message="the worker stopped (crash, timeout or out of memory) before recording "
            "an outcome",
        ),
        request_id=job.attempt_request_id,
    )
