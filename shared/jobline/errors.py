"""Every error Jobline raises on purpose, in one hierarchy under `JoblineError`: the use cases raise
the domain errors (the API maps each to HTTP in one place), the adapters raise the storage and queue
ones, and job handlers raise the handler errors (also importable from `jobline.registry`).

    JoblineError
    ├── JobNotFound, InvalidJobState, UnknownJobType, InvalidPayload, PayloadTooLarge,
    │   IdempotencyConflict, InvalidCursor, Unauthenticated,
    │   UploadNotFound, RequestTooLarge                               domain: the API answers 4xx
    ├── StorageUnavailable ── SubmitOutcomeUnknown                    adapters: 503
    ├── QueueUnavailable, StreamRecordsGone, ConditionFailed,
    │   DataNotFound, DataTooLarge                                     adapters, used by use cases
    ├── DataUnavailable                                               an attempt's data: it fails
    ├── ConfigurationError ── InvalidJobTypeDeclaration                refused configuration
    ├── JobHandlerError (retryable unless told) ── PermanentJobError ── EgressRefused (egress.py)
    │                                            │                   └─ InvalidCheckpoint
    │                                            ├─ DeadlineExceeded
    │                                            ├─ CheckpointNotSaved
    │                                            ├─ FunctionFailed          a target function raised
    │                                            └─ FunctionInvokeFailed    Lambda did not run it
    └── JobCancelled                                                  raised at a checkpoint

`transition.TransitionRefused` is not one of them: it is a programming error (a use case asked the
state machine for an arrow its own check should have ruled out), a `ValueError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobline.models import Job


class JoblineError(Exception):
    """Base class of every error Jobline raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


MAX_ECHOED_CHARS = 64
"""An error message quotes at most this much of what the caller sent."""


def echoed(value: str) -> str:
    """`value` as an error message may quote it: cut to `MAX_ECHOED_CHARS`, marked when cut."""
    return value if len(value) <= MAX_ECHOED_CHARS else value[:MAX_ECHOED_CHARS] + "..."


class JobNotFound(JoblineError):
    """No job with this id is visible to the caller (unknown, malformed, another owner's, or expired)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {echoed(job_id)!r} not found")
        self.job_id = job_id


class InvalidJobState(JoblineError):
    """The job's current status does not allow the requested transition."""

    def __init__(self, job_id: str, status: str, action: str) -> None:
        super().__init__(f"cannot {action} job {job_id!r}: it is {status}")
        self.job_id = job_id
        self.status = status
        self.action = action


class UnknownJobType(JoblineError):
    """The submitted job type is not registered."""

    def __init__(self, job_type: str, known: list[str]) -> None:
        super().__init__(
            f"unknown job type {job_type!r}; known types: {', '.join(known)}"
        )
        self.job_type = job_type
        self.known = known


class InvalidPayload(JoblineError):
    """The payload does not validate against the job type's input model."""

    def __init__(self, job_type: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"invalid payload for job type {job_type!r}")
        self.job_type = job_type
        self.errors = errors


class PayloadTooLarge(JoblineError):
    """The payload would not fit in one job item."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"payload is {size} bytes; the limit is {limit} bytes")
        self.size = size
        self.limit = limit


class RequestTooLarge(JoblineError):
    """A submit's body is over what the API takes inline (`limits.MAX_REQUEST_BODY_BYTES`): its
    payload goes through an upload instead."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"the request body is {size} bytes; over {limit} bytes, upload the payload "
            "first (POST /uploads) and submit its upload_id as payload_upload"
        )
        self.size = size
        self.limit = limit


class UploadNotFound(JoblineError):
    """A submit names an upload the caller does not have: never made, not yet uploaded to, or
    deleted by the data bucket's lifecycle (a day after it was made)."""

    def __init__(self, upload_id: str) -> None:
        super().__init__(
            f"no payload was uploaded as {echoed(upload_id)!r} (an upload is kept a day)"
        )
        self.upload_id = upload_id


class IdempotencyConflict(JoblineError):
    """The idempotency key was already used by this caller with a different request body."""

    def __init__(self, key: str) -> None:
        super().__init__(
            f"idempotency key {key!r} was already used with a different request"
        )
        self.key = key


class InvalidCursor(JoblineError):
    """A list cursor was modified, truncated or belongs to another query."""

    def __init__(self) -> None:
        super().__init__("invalid cursor")


class Unauthenticated(JoblineError):
    """The request carries no caller identity, or one that is not a valid identity (`reason`)."""

    def __init__(self, reason: str | None = None) -> None:
        message = "authentication required"
        super().__init__(message if reason is None else f"{message}: {reason}")
        self.reason = reason


class QueueUnavailable(JoblineError):
    """The jobs queue refused or failed the request (throttling, outage)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the job queue is unavailable: {reason}")


class StorageUnavailable(JoblineError):
    """The job store refused or failed the request (throttling, outage)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the job store is unavailable: {reason}")


class SubmitOutcomeUnknown(StorageUnavailable):
    """The job store did not answer a submit's write: the job may have been stored (and then it
    runs: the outbox sends its message) or not. A replay with the same idempotency key tells."""

    def __init__(self, job_id: str, reason: str) -> None:
        super().__init__(reason)
        self.message = (
            f"{self.message}; job {job_id} may have been stored, and then it runs: "
            "repeat the request with the same Idempotency-Key, or GET the job, to know"
        )
        self.job_id = job_id


class ConfigurationError(JoblineError):
    """The deployment's configuration cannot be used safely (e.g. a weak cursor key): what needs
    it is refused (the API answers 503 and logs the reason)."""


class InvalidJobTypeDeclaration(ConfigurationError):
    """A job type cannot be loaded: its module or handler cannot be imported, its handler is not
    a `(payload, context)` callable, or two declarations share a name. Raised while the types
    are discovered (every function) or their handlers resolved (the worker's init)."""

    def __init__(self, job_type: str | None, problem: str) -> None:
        super().__init__(f"job type {job_type!r}: {problem}" if job_type else problem)
        self.job_type = job_type
        self.problem = problem


class ConditionFailed(JoblineError):
    """A conditional write lost: the item was not in the expected state.

    Raised by repositories only; the use cases turn it into a specific domain outcome.
    `current` holds the item as it was (None when it does not exist).
    """

    def __init__(self, current: Job | None) -> None:
        super().__init__("conditional write failed")
        self.current = current


# ------------------------------------------------------------------ raised by job handlers
class JobHandlerError(JoblineError):
    """Raised by a handler for an expected failure. Retryable unless `retryable=False`."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class PermanentJobError(JobHandlerError):
    """A failure retrying cannot fix: the job fails at once, whatever attempts are left."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class DeadlineExceeded(JobHandlerError):
    """The attempt ran out of time before the Lambda deadline; it may be retried."""


class InvalidCheckpoint(PermanentJobError):
    """A handler saved (or continued with) a state that is not JSON or is too large."""


class CheckpointNotSaved(JobHandlerError):
    """The store did not answer a checkpoint; the attempt may be retried (from the state saved
    before)."""


class FunctionFailed(JobHandlerError):
    """A job type's target function raised (its answer carried `FunctionError`), or answered
    what is not JSON. `error_type` is its `errorType`, the job error's type; retryable unless the
    function marked it permanent (`jobline.targets.is_permanent`)."""

    def __init__(self, error_type: str, message: str, *, retryable: bool) -> None:
        super().__init__(message, retryable=retryable)
        self.error_type = error_type


class FunctionInvokeFailed(JobHandlerError):
    """Lambda did not run a job type's target function (throttled, a service error, a refusal),
    or its answer was lost on the way. `error_type` is Lambda's error code (e.g.
    `TooManyRequestsException`), the job error's type."""

    def __init__(self, error_type: str, message: str, *, retryable: bool) -> None:
        super().__init__(message, retryable=retryable)
        self.error_type = error_type


def error_type_of(failure: BaseException) -> str:
    """The type a job error records for `failure`: a target function's own `errorType` (or
    Lambda's error code), else the exception's class name."""
    error_type = getattr(failure, "error_type", None)
    return error_type if isinstance(error_type, str) else type(failure).__name__


class JobCancelled(JoblineError):
    """Raised by a handler (usually via `JobContext.raise_if_cancelled`) that stopped because its
    job's cancellation was requested: the job ends `cancelled`."""

    def __init__(self, message: str = "the job was cancelled") -> None:
        super().__init__(message)


class DataNotFound(JoblineError):
    """The data bucket holds no object under `key` (the claim check's store)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no object {key!r} in the data bucket")
        self.key = key


class DataTooLarge(JoblineError):
    """An object of the data bucket is larger than the reader takes."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the object is {size} bytes; the limit is {limit} bytes")
        self.size = size
        self.limit = limit


class DataUnavailable(JoblineError):
    """An attempt could not read its job's payload from the data bucket, or store its result
    there: the attempt fails with `error_type`, retryably when the bucket was unavailable, not
    when the object is gone or is not what the job's item says it is."""

    def __init__(self, error_type: str, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.retryable = retryable


class StreamRecordsGone(JoblineError):
    """The stream no longer holds the records (older than its 24 h retention, or disabled)."""

    def __init__(self, shard_id: str, start: str) -> None:
        super().__init__(f"stream records from {start} in shard {shard_id} are gone")
        self.shard_id = shard_id
