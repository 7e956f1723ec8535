"""The state machine of a job, pure: one function per transition, each returning the typed update
and the precondition the repository writes it under. No I/O, no clock: time comes in as `now`.

    (submit) ──> queued ──claim──> running ──succeed──> succeeded
                  │  ^               │ │ │ └──fail (permanent, or no attempts left)──> failed
                  │  └───requeue─────┘ │ └──cancel at checkpoint──> cancelled
                  │                    ├──reclaim (its lease ended: the worker died)──> running
                  │                    └──request cancel──> running (cancel_requested_at set)
                  ├──cancel queued──> cancelled
                  ├─┬─fail exhausted (every attempt lost to dead workers)──> failed
     running ─────┘ └─dead-letter (SQS gave up on the message)──> dead_lettered
    failed | dead_lettered | cancelled ──reset for retry──> queued
    (ingest) invalid submission ──reject──> rejected     (submit and reject: jobline.creation)
    running ──save checkpoint──> running;  running ──continue──> running (between invocations)
            ──resume──> running (the next invocation of the same attempt)

Every arrow is a conditional write: the precondition says what the stored job must be for the
write to apply, so a stale or duplicate writer loses instead of moving a job backwards. `ALLOWED`
names the states each event leaves from; tests/unit/test_lifecycle.py walks every (state, event).

The fences: every write is conditioned on the job's run (its incarnation: a retry or redrive
starts the next, so nothing written for an earlier run lands on a later one), and every write of
a running attempt on its claim's lease id (so a straggler of an earlier claim, or of a worker
thought dead, never lands on a later one's). Progress reports are ordered (`Progress.seq`). API
writes carry a control token (`Job.control_tokens`) that a write whose answer was lost finds.

The outbox: the two arrows into `queued` that need a new message (submit, reset for retry) set
`dispatch` in the same write; the table's stream hands that write to the dispatcher, which sends
the message. Every arrow out of `queued` removes it. Nothing else ever sends a job message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from jobline.limits import MAX_CONTROL_TOKENS, MAX_HISTORY
from jobline.models import (
    RETRYABLE_STATUSES,
    Checkpoint,
    DataRef,
    Job,
    JobError,
    JobStatus,
    Progress,
)
from jobline.transition import (
    KEEP,
    NO_LEASE,
    Ending,
    Event,
    JobUpdate,
    Lease,
    Precondition,
    Transition,
    TransitionRefused,
    expiry,
    lost_attempt,
)

ALLOWED: Mapping[Event, frozenset[JobStatus]] = {
    Event.CLAIM: frozenset({JobStatus.QUEUED}),
    Event.RECLAIM: frozenset({JobStatus.RUNNING}),
    Event.SUCCEED: frozenset({JobStatus.RUNNING}),
    Event.REQUEUE: frozenset({JobStatus.RUNNING}),
    Event.FAIL: frozenset({JobStatus.RUNNING}),
    Event.CANCEL_AT_CHECKPOINT: frozenset({JobStatus.RUNNING}),
    Event.FAIL_EXHAUSTED: frozenset({JobStatus.QUEUED, JobStatus.RUNNING}),
    Event.REPORT_PROGRESS: frozenset({JobStatus.RUNNING}),
    Event.CANCEL_QUEUED: frozenset({JobStatus.QUEUED}),
    Event.REQUEST_CANCEL: frozenset({JobStatus.RUNNING}),
    Event.DEAD_LETTER: frozenset({JobStatus.QUEUED, JobStatus.RUNNING}),
    Event.RESET_FOR_RETRY: RETRYABLE_STATUSES,
    Event.SAVE_CHECKPOINT: frozenset({JobStatus.RUNNING}),
    Event.CONTINUE: frozenset({JobStatus.RUNNING}),
    Event.RESUME: frozenset({JobStatus.RUNNING}),
}
"""The states each event leaves from."""


def _seen(event: Event, job: Job) -> Precondition:
    """The precondition of an event on a job the caller has read: still its state, run and
    attempts, and (running) still its claim's."""
    if job.status not in ALLOWED[event]:
        raise TransitionRefused(event, job)
    running = job.status is JobStatus.RUNNING
    return Precondition(
        owner=job.owner,
        status_in=frozenset({job.status}),
        attempts=job.attempts,
        run=job.run,
        lease_id=(job.lease_id or NO_LEASE) if running else None,
    )


def with_token(job: Job, token: str) -> tuple[str, ...]:
    """`job`'s control tokens after an API write with `token` (the latest few are kept)."""
    return (*job.control_tokens, token)[-MAX_CONTROL_TOKENS:]


def dispatch_mark(now: datetime) -> int:
    """The `dispatch` of a write that needs a message: when it was asked for (epoch ms)."""
    return int(now.timestamp() * 1000)


def needs_message(job: Job) -> bool:
    """Whether a write that left the job like this must be followed by a message (the outbox):
    queued with a dispatch mark, or continuing (its next invocation needs one)."""
    if job.dispatch is None:
        return False
    return job.status is JobStatus.QUEUED or (
        job.status is JobStatus.RUNNING and job.continue_at is not None
    )


def has_attempts_left(job: Job) -> bool:
    """Whether a failed attempt of `job` may be followed by another one."""
    return job.attempts < job.max_attempts


def can_retry(job: Job) -> bool:
    """Whether `POST /jobs/{id}/retry` may re-queue `job` (its state, and room in `history`)."""
    return job.status in RETRYABLE_STATUSES and len(job.history) < MAX_HISTORY


# ------------------------------------------------------------------------- running an attempt
def _claimed(now: datetime, lease: Lease) -> JobUpdate:
    return JobUpdate(
        status=JobStatus.RUNNING,
        started_at=now,
        updated_at=now,
        lease_until=lease.until,
        lease_id=lease.id,
        attempt_request_id=lease.request_id,
        progress=None,
        dispatch=None,
        increment_attempts=True,
    )


def claim(owner: str, now: datetime, lease: Lease, run: int | None) -> Transition:
    """queued -> running: the next attempt starts under `lease`, once the job is due (its delay or
    backoff has passed), if the job is still in the message's `run` (None: a message sent before
    runs were numbered). Written blind (the worker knows only the message), so the precondition
    alone decides."""
    allowed = Precondition(
        owner=owner,
        status_in=ALLOWED[Event.CLAIM],
        below_max_attempts=True,
        due_by=now,
        run=run,
    )
    return Transition(Event.CLAIM, _claimed(now, lease), allowed)


def reclaim(job: Job, now: datetime, lease: Lease) -> Transition:
    """running -> running: the lease of `job`'s attempt ended without an outcome (its worker
    died); the next attempt starts, and the lost one goes into `history` in the same write."""
    seen = _seen(Event.RECLAIM, job)
    lease_ended = replace(
        seen,
        status_in=frozenset(),
        lease_ended_before=now,
        below_max_attempts=True,
        continuing=False,  # a continuing attempt is resumed, not lost
    )
    update = replace(_claimed(now, lease), append_history=(lost_attempt(job),))
    return Transition(Event.RECLAIM, update, lease_ended)


def _ended(end: Ending) -> JobUpdate:
    """What every attempt outcome writes: the lease released, the entry, the latest progress."""
    return JobUpdate(
        updated_at=end.now,
        lease_until=None,
        lease_id=None,
        attempt_request_id=None,
        continue_at=None,
        run_after=None,
        progress=KEEP if end.progress is None else end.progress,
        append_history=(end.attempt,),
    )


def _final(
    update: JobUpdate, status: JobStatus, now: datetime, retention: timedelta
) -> JobUpdate:
    """`update`, ending the job in `status`: it expires `retention` after `now`."""
    return replace(
        update, status=status, finished_at=now, expires_at=expiry(now, retention)
    )


def _outcome(
    end: Ending,
    status: JobStatus,
    retention: timedelta,
    result: Any = None,
    error: JobError | None = None,
) -> JobUpdate:
    """An attempt's outcome that ends the job in `status`, with its result or error."""
    update = replace(_ended(end), result=result, error=error)
    return _final(update, status, end.now, retention)


def succeed(
    job: Job,
    end: Ending,
    result: Any,
    retention: timedelta,
    result_ref: DataRef | None = None,
) -> Transition:
    """running -> succeeded with the handler's result (or, with `result_ref`, where it is kept)."""
    update = _outcome(end, JobStatus.SUCCEEDED, retention, result=result)
    if result_ref is not None:
        update = replace(update, result_ref=result_ref)
    return Transition(Event.SUCCEED, update, _seen(Event.SUCCEED, job))


def fail(job: Job, end: Ending, error: JobError, retention: timedelta) -> Transition:
    """running -> failed: a permanent error, or a failure with no attempts left."""
    update = _outcome(end, JobStatus.FAILED, retention, error=error)
    return Transition(Event.FAIL, update, _seen(Event.FAIL, job))


def cancel_at_checkpoint(
    job: Job, end: Ending, error: JobError, retention: timedelta
) -> Transition:
    """running -> cancelled: the handler saw the cancel request at a checkpoint (or the request
    came before the attempt started)."""
    update = _outcome(end, JobStatus.CANCELLED, retention, error=error)
    event = Event.CANCEL_AT_CHECKPOINT
    return Transition(event, update, _seen(event, job))


def requeue(job: Job, end: Ending, error: JobError, run_after: datetime) -> Transition:
    """running -> queued: a retryable failure with attempts left; the next attempt is due at
    `run_after` (after the backoff)."""
    if not has_attempts_left(job):
        raise TransitionRefused(Event.REQUEUE, job)
    update = replace(
        _ended(end), status=JobStatus.QUEUED, error=error, run_after=run_after
    )
    return Transition(Event.REQUEUE, update, _seen(Event.REQUEUE, job))


def _lost(job: Job, now: datetime, error: JobError) -> JobUpdate:
    """A job the platform gave up on: the error, and a running attempt recorded as lost."""
    lost = (lost_attempt(job),) if job.status is JobStatus.RUNNING else ()
    return JobUpdate(
        error=error,
        updated_at=now,
        lease_until=None,
        lease_id=None,
        dispatch=None,
        append_history=lost,
    )


def fail_exhausted(job: Job, now: datetime, retention: timedelta) -> Transition:
    """queued|running -> failed: dead workers used up every attempt (the last lease ended)."""
    error = JobError(
        type="WorkerLost",
        message=f"attempt {job.attempts} of {job.max_attempts} ended without an outcome "
        "(crash, timeout or out of memory) and no attempts are left",
    )
    update = _final(_lost(job, now, error), JobStatus.FAILED, now, retention)
    return Transition(Event.FAIL_EXHAUSTED, update, _seen(Event.FAIL_EXHAUSTED, job))


def report_progress(job: Job, progress: Progress) -> Transition:
    """running -> running: the handler's latest progress, while the attempt is still the job's
    and no later report of it is stored (`progress.seq` orders them)."""
    update = JobUpdate(progress=progress)
    seen = _seen(Event.REPORT_PROGRESS, job)
    return Transition(
        Event.REPORT_PROGRESS, update, replace(seen, progress_before=progress.seq)
    )


# ----------------------------------------------------------------------------------- control
def cancel_queued(
    job: Job, now: datetime, retention: timedelta, token: str
) -> Transition:
    """queued -> cancelled: this run never runs (a run the job starts later is not cancelled)."""
    seen = _seen(Event.CANCEL_QUEUED, job)
    update = JobUpdate(
        updated_at=now, dispatch=None, control_tokens=with_token(job, token)
    )
    update = _final(update, JobStatus.CANCELLED, now, retention)
    return Transition(Event.CANCEL_QUEUED, update, replace(seen, attempts=None))


def request_cancel(job: Job, now: datetime, token: str) -> Transition:
    """running -> running with `cancel_requested_at`: the handler sees it at its next checkpoint
    (whichever attempt of this run is running when the request lands)."""
    seen = _seen(Event.REQUEST_CANCEL, job)
    running = Precondition(
        owner=job.owner, status_in=ALLOWED[Event.REQUEST_CANCEL], run=seen.run
    )
    update = JobUpdate(
        cancel_requested_at=now,
        updated_at=now,
        control_tokens=with_token(job, token),
    )
    return Transition(Event.REQUEST_CANCEL, update, running)


def reset_for_retry(job: Job, now: datetime, token: str) -> Transition:
    """failed|dead_lettered|cancelled -> queued: the next run, with a fresh attempts budget;
    history is kept."""
    update = JobUpdate(
        status=JobStatus.QUEUED,
        run=job.run + 1,
        control_tokens=with_token(job, token),
        attempts=0,
        result=None,
        error=None,
        progress=None,
        finished_at=None,
        expires_at=None,
        cancel_requested_at=None,
        lease_until=None,
        lease_id=None,
        checkpoint=None,
        continue_at=None,
        run_after=now,
        updated_at=now,
        dispatch=dispatch_mark(now),
    )
    return Transition(Event.RESET_FOR_RETRY, update, _seen(Event.RESET_FOR_RETRY, job))


def dead_letter(
    job: Job, now: datetime, receive_count: int, retention: timedelta
) -> Transition:
    """queued|running -> dead_lettered: SQS gave up on the job's message. The last error is kept
    (or one says so); a running attempt goes into `history` as lost, and only once its lease
    has ended (a job a live claim holds is never dead-lettered)."""
    error = job.error or JobError(
        type="DeadLettered",
        message=f"the message was dead-lettered after {receive_count} receives",
    )
    update = _final(_lost(job, now, error), JobStatus.DEAD_LETTERED, now, retention)
    seen = _seen(Event.DEAD_LETTER, job)
    if job.status is JobStatus.RUNNING:
        seen = replace(seen, status_in=frozenset(), lease_ended_before=now)
    return Transition(Event.DEAD_LETTER, update, seen)


# ------------------------------------------------------------------- long jobs (issue 16.5)
def save_checkpoint(job: Job, checkpoint: Checkpoint) -> Transition:
    """running -> running: the handler's saved state, while the attempt is still the job's and
    no later saved state of it is stored (`checkpoint.seq` orders them)."""
    seen = _seen(Event.SAVE_CHECKPOINT, job)
    return Transition(
        Event.SAVE_CHECKPOINT,
        JobUpdate(checkpoint=checkpoint),
        replace(seen, checkpoint_before=checkpoint.seq),
    )


def continue_(
    job: Job, now: datetime, checkpoint: Checkpoint, progress: Progress | None
) -> Transition:
    """running -> running between invocations: the attempt goes on in a new invocation (not a
    failed attempt): its state saved, this invocation's lease ended, a message asked for (the
    outbox sends it to the job's lane), the latest progress kept."""
    update = JobUpdate(
        checkpoint=checkpoint,
        continue_at=now,
        lease_until=now,
        attempt_request_id=None,
        updated_at=now,
        progress=KEEP if progress is None else progress,
        dispatch=dispatch_mark(now),
    )
    return Transition(Event.CONTINUE, update, _seen(Event.CONTINUE, job))


def resume(job: Job, now: datetime, lease: Lease) -> Transition:
    """running -> running: the next invocation of a continuing attempt takes it over under
    `lease` (no new attempt, no history entry; its start and progress kept)."""
    seen = replace(_seen(Event.RESUME, job), continuing=True)
    update = JobUpdate(
        lease_until=lease.until,
        lease_id=lease.id,
        attempt_request_id=lease.request_id,
        continue_at=None,
        dispatch=None,
        updated_at=now,
    )
    return Transition(Event.RESUME, update, seen)
