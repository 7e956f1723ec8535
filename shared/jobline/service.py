"""Every rule of Jobline: submit, read, list, cancel, and run a job (claim, handler, outcome).

The state machine (conditional writes enforce it; nothing moves backwards):
    queued --claim--> running --success--> succeeded
    queued --cancel-> cancelled          running --failure, attempts left--> queued
                                         running --failure, no attempts left--> failed
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

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
)
from jobline.logging import bind, get_logger, unbind
from jobline.models import (
    Job,
    JobError,
    JobFilter,
    JobMessage,
    JobPage,
    JobStatus,
    SubmitRequest,
)
from jobline.ports import Change, Expect, JobQueue, JobRepository
from jobline.registry import JobContext, JobHandlerError, JobType, JobTypeRegistry

log = get_logger(__name__)

_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_LIST_LIMIT = 100


class RunOutcome(enum.StrEnum):
    """What the worker should do with the message after `run`."""

    DONE = "done"
    """The job reached a final state, or the message was a duplicate: acknowledge it."""
    RETRY = "retry"
    """The attempt failed and the job is queued again: return the message for redelivery."""


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
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._repo = repository
        self._queue = queue
        self.registry = registry
        self._cursors = cursor_codec
        self._retention = retention
        self._max_payload = max_payload_bytes
        self._max_result = max_result_bytes
        self._clock = clock

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
            job_id = hashlib.sha256(
                f"{owner}\x00{idempotency_key}".encode()
            ).hexdigest()[:32]
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
        """Cancel a queued job: it will never run. Anything else is `InvalidJobState`."""
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
            raise InvalidJobState(job_id, current.status.value, "cancel") from None
        log.info("job.cancelled", job_id=job.id, job_type=job.type)
        return job

    # -------------------------------------------------------------------- run
    def run(self, message: JobMessage, deadline: float) -> RunOutcome:
        """Claim the job named by `message`, run its handler until `deadline` (a `time.monotonic()`
        value) and record the outcome. A duplicate or stale message is a no-op (`DONE`)."""
        bind(job_id=message.job_id, job_type=message.job_type)
        try:
            job = self._claim(message)
            if job is None:
                return RunOutcome.DONE
            return self._attempt(job, deadline)
        finally:
            unbind("job_id", "job_type")

    def _claim(self, message: JobMessage) -> Job | None:
        now = self._clock()
        change = Change(
            values={"status": JobStatus.RUNNING, "started_at": now, "updated_at": now},
            increment_attempts=True,
        )
        try:
            job = self._repo.update(
                message.job_id,
                change,
                Expect(owner=message.owner, status_in=frozenset({JobStatus.QUEUED})),
            )
        except ConditionFailed as lost:
            current = lost.current
            if not isinstance(current, Job) or current.owner != message.owner:
                raise JobNotFound(message.job_id) from None
            log.info(
                "job.duplicate_delivery",
                status=current.status.value,
                attempts=current.attempts,
            )
            return None
        bind(job_type=job.type)
        log.info("job.claimed", attempt=job.attempts, max_attempts=job.max_attempts)
        return job

    def _attempt(self, job: Job, deadline: float) -> RunOutcome:
        context = JobContext(
            job_id=job.id,
            job_type=job.type,
            attempt=job.attempts,
            max_attempts=job.max_attempts,
            deadline=deadline,
        )
        started = time.monotonic()
        try:
            job_type = self.registry.get(job.type)
            result = job_type.run(job.payload, context)
            result_text = _canonical_json(result)
        except JobHandlerError as exc:
            return self._record_failure(
                job, JobError(type=type(exc).__name__, message=str(exc)), exc.retryable
            )
        except (InvalidPayload, TypeError, ValueError) as exc:
            # Payload no longer valid for the handler, or a result that is not JSON: retrying won't help.
            log.warning(
                "job.permanent_error", error_type=type(exc).__name__, error=str(exc)
            )
            return self._record_failure(
                job, JobError(type=type(exc).__name__, message=str(exc)), False
            )
        except (
            Exception
        ) as exc:  # a handler bug or an unexpected failure: logged, retried
            log.exception("job.handler_crashed", error_type=type(exc).__name__)
            return self._record_failure(
                job, JobError(type=type(exc).__name__, message=str(exc)), True
            )
        if len(result_text.encode()) > self._max_result:
            error = JobError(
                type="ResultTooLarge",
                message=f"result exceeds {self._max_result} bytes",
            )
            return self._record_failure(job, error, False)
        now = self._clock()
        self._finish(
            job,
            {
                "status": JobStatus.SUCCEEDED,
                "result": result,
                "error": None,
                "updated_at": now,
                "finished_at": now,
                "expires_at": self._expiry(now),
            },
        )
        log.info(
            "job.succeeded",
            attempt=job.attempts,
            duration_ms=round((time.monotonic() - started) * 1000),
        )
        return RunOutcome.DONE

    def _record_failure(self, job: Job, error: JobError, retryable: bool) -> RunOutcome:
        now = self._clock()
        if retryable and job.attempts < job.max_attempts:
            self._finish(
                job, {"status": JobStatus.QUEUED, "error": error, "updated_at": now}
            )
            log.warning(
                "job.attempt_failed",
                attempt=job.attempts,
                error_type=error.type,
                error=error.message,
            )
            return RunOutcome.RETRY
        self._finish(
            job,
            {
                "status": JobStatus.FAILED,
                "error": error,
                "updated_at": now,
                "finished_at": now,
                "expires_at": self._expiry(now),
            },
        )
        log.error(
            "job.failed",
            attempt=job.attempts,
            error_type=error.type,
            error=error.message,
            retryable=retryable,
        )
        return RunOutcome.DONE

    def _finish(self, job: Job, values: dict[str, Any]) -> None:
        expect = Expect(
            owner=job.owner,
            status_in=frozenset({JobStatus.RUNNING}),
            attempts=job.attempts,
        )
        try:
            self._repo.update(job.id, Change(values=values), expect)
        except ConditionFailed as lost:
            current = lost.current
            status = current.status.value if isinstance(current, Job) else None
            log.warning(
                "job.outcome_discarded",
                reason="job changed while running",
                status=status,
            )

    def _expiry(self, now: datetime) -> int:
        return int((now + self._retention).timestamp())
