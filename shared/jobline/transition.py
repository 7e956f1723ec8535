"""The typed language of state changes: what can happen to a job (`Event`), what a write sets
(`JobUpdate`), the condition it is written under (`Precondition`), both together (`Transition`),
and how an update changes a job (`apply`).

Only `jobline.lifecycle` builds updates and preconditions; the repository translates them into one
conditional write, and the in-memory fake evaluates them with `Precondition.admits` and `apply`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from jobline.models import (
    Attempt,
    Checkpoint,
    DataRef,
    Job,
    JobError,
    JobStatus,
    Progress,
)


class Event(enum.StrEnum):
    """What can happen to a stored job (the arrows of `jobline.lifecycle`'s diagram)."""

    CLAIM = "claim"
    RECLAIM = "reclaim"
    SUCCEED = "succeed"
    REQUEUE = "requeue"
    FAIL = "fail"
    CANCEL_AT_CHECKPOINT = "cancel_at_checkpoint"
    FAIL_EXHAUSTED = "fail_exhausted"
    REPORT_PROGRESS = "report_progress"
    CANCEL_QUEUED = "cancel_queued"
    REQUEST_CANCEL = "request_cancel"
    DEAD_LETTER = "dead_letter"
    RESET_FOR_RETRY = "reset_for_retry"
    SAVE_CHECKPOINT = "save_checkpoint"
    CONTINUE = "continue"
    RESUME = "resume"


class Keep(enum.Enum):
    """Marks a field a `JobUpdate` leaves as it is (None, by contrast, removes the field)."""

    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass(frozen=True, kw_only=True)
class JobUpdate:
    """What a transition writes: each field is set to a value, removed (None) or kept (`KEEP`).
    A field name that is not a Job field is a type error, not a silent write."""

    status: JobStatus | Keep = KEEP
    result: Any = KEEP
    result_ref: DataRef | Keep | None = KEEP
    error: JobError | Keep | None = KEEP
    attempts: int | Keep = KEEP
    run: int | Keep = KEEP
    progress: Progress | Keep | None = KEEP
    started_at: datetime | Keep | None = KEEP
    updated_at: datetime | Keep = KEEP
    finished_at: datetime | Keep | None = KEEP
    run_after: datetime | Keep | None = KEEP
    cancel_requested_at: datetime | Keep | None = KEEP
    lease_until: datetime | Keep | None = KEEP
    attempt_request_id: str | Keep | None = KEEP
    lease_id: str | Keep | None = KEEP
    control_tokens: tuple[str, ...] | Keep = KEEP
    checkpoint: Checkpoint | Keep | None = KEEP
    continue_at: datetime | Keep | None = KEEP
    expires_at: int | Keep | None = KEEP
    dispatch: int | Keep | None = KEEP
    """Set: a message must be sent for the job (the outbox); None: it has been, or never will."""
    increment_attempts: bool = False
    """Add one to `attempts` (atomically, in the write)."""
    append_history: tuple[Attempt, ...] = ()
    """Entries added at the end of `history`."""

    def assignments(self) -> dict[str, Any]:
        """Field -> new value (None removes it), for every field the update does not keep."""
        return {
            field.name: value
            for field in fields(self)
            if field.name not in ("increment_attempts", "append_history")
            and (value := getattr(self, field.name)) is not KEEP
        }


NO_LEASE = ""
"""`Precondition.lease_id` of a running job read without a lease id (written before claims
carried one): the write requires the attribute to be absent."""


@dataclass(frozen=True)
class Precondition:
    """What the stored job must be for an update to apply: it exists, belongs to `owner`, and is in
    one of `status_in` (or, with `lease_ended_before`, is running under a lease that ended before
    then); with `attempts`, has made exactly that many; with `below_max_attempts`, has some left;
    with `due_by`, its `run_after` (if any) is not later than then; with `run`, is in that run
    (its incarnation: a retry or redrive starts the next); with `lease_id`, is held by that claim
    (`NO_LEASE`: by a claim that recorded none); with `progress_before`, holds no report of its
    attempt from that place in its order of reports or later; with `checkpoint_before`, no saved
    state from that place or later; with `continuing`, is (True) or is not (False) between two
    invocations of a continuing attempt."""

    owner: str
    status_in: frozenset[JobStatus]
    attempts: int | None = None
    lease_ended_before: datetime | None = None
    below_max_attempts: bool = False
    due_by: datetime | None = None
    run: int | None = None
    lease_id: str | None = None
    progress_before: int | None = None
    checkpoint_before: int | None = None
    continuing: bool | None = None

    def admits(self, job: Job | None) -> bool:
        """Whether the write would apply to `job` (the repository's condition, evaluated here)."""
        if job is None or job.owner != self.owner:
            return False
        lease_ended = (
            self.lease_ended_before is not None
            and job.status is JobStatus.RUNNING
            and (job.lease_until is None or job.lease_until < self.lease_ended_before)
        )
        if job.status not in self.status_in and not lease_ended:
            return False
        if self.below_max_attempts and job.attempts >= job.max_attempts:
            return False
        due_by, run_after = self.due_by, job.run_after
        if due_by is not None and run_after is not None and run_after > due_by:
            return False
        if self.run is not None and job.run != self.run:
            return False
        if self.lease_id is not None and (job.lease_id or NO_LEASE) != self.lease_id:
            return False
        if self.progress_before is not None:
            seq = job.progress.seq if job.progress is not None else None
            if seq is not None and seq >= self.progress_before:
                return False
        if self.checkpoint_before is not None:
            saved = job.checkpoint.seq if job.checkpoint is not None else None
            if saved is not None and saved >= self.checkpoint_before:
                return False
        if (
            self.continuing is not None
            and (job.continue_at is not None) != self.continuing
        ):
            return False
        return self.attempts is None or job.attempts == self.attempts


@dataclass(frozen=True)
class Transition:
    """One arrow of the diagram, ready for the repository: the update and its precondition."""

    event: Event
    update: JobUpdate
    precondition: Precondition


class TransitionRefused(ValueError):
    """The job's state does not allow the event (a caller bug: callers check the state first)."""

    def __init__(self, event: Event, job: Job) -> None:
        super().__init__(f"{event.value} is not allowed from {job.status.value}")
        self.event = event
        self.status = job.status


def apply(job: Job, update: JobUpdate) -> Job:
    """The job after `update` (what the repository stores when the precondition holds)."""
    data = job.model_dump()
    data.update(update.assignments())
    if update.increment_attempts:
        data["attempts"] = job.attempts + 1
    data["history"] = (*job.history, *update.append_history)
    return Job.model_validate(data)


@dataclass(frozen=True)
class Lease:
    """Who runs an attempt and until when: the claim's unique id, the claiming invocation and its
    Lambda deadline."""

    id: str
    until: datetime
    request_id: str | None


@dataclass(frozen=True)
class Ending:
    """How an attempt ended: when, its history entry, and the handler's latest progress."""

    now: datetime
    attempt: Attempt
    progress: Progress | None


def expiry(now: datetime, retention: timedelta) -> int:
    """When a job finished at `now` expires (epoch seconds, the table's TTL attribute)."""
    return int((now + retention).timestamp())


def lost_attempt(job: Job) -> Attempt:
    """The history entry of an attempt whose worker died before recording an outcome."""
    return Attempt(
        attempt=job.attempts,
        run=job.run,
        started_at=job.started_at or job.updated_at,
        error=JobError(
            type="WorkerLost",
            message="the worker stopped (crash, timeout or out of memory) before recording "
            "an outcome",
        ),
        request_id=job.attempt_request_id,
    )


def finished_attempt(
    job: Job, now: datetime, error: JobError | None, request_id: str | None, ms: int
) -> Attempt:
    """The history entry of `job`'s current attempt, ending at `now` after `ms` milliseconds;
    its token is the claim's lease id (one outcome per claim)."""
    started = job.started_at or now
    return Attempt(
        attempt=job.attempts,
        run=job.run,
        started_at=started,
        finished_at=now,
        error=error,
        request_id=request_id,
        duration_ms=ms,
        token=job.lease_id,
    )
