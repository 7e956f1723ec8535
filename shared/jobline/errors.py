"""Domain errors. The service raises these; the API maps each to HTTP in one place."""

from __future__ import annotations

from typing import Any


class JoblineError(Exception):
    """Base class of every error Jobline raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class JobNotFound(JoblineError):
    """No job with this id is visible to the caller (unknown, malformed, another owner's, or expired)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id!r} not found")
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
    """The request carries no caller identity."""

    def __init__(self) -> None:
        super().__init__("authentication required")


class QueueUnavailable(JoblineError):
    """The job could not be enqueued; nothing was stored."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the job queue is unavailable: {reason}")


class StorageUnavailable(JoblineError):
    """The job store refused or failed the request (throttling, outage)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the job store is unavailable: {reason}")


class ConditionFailed(JoblineError):
    """A conditional write lost: the item was not in the expected state.

    Raised by repositories only; the service turns it into a specific domain outcome.
    `current` holds the item as it was (None when it does not exist).
    """

    def __init__(self, current: object | None) -> None:
        super().__init__("conditional write failed")
        self.current = current


class MalformedMessage(JoblineError):
    """A queue message cannot be parsed into a job reference."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"malformed message: {reason}")
