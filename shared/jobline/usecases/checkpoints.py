"""Where a running handler meets its job: a throttled progress sink and cancellation probe that talk
to the job store (`AttemptChannel`), and the handler run until the deadline: a plain handler in its
own thread, an `async def` one as a task on the handler loop (`run_handler`).

Every write is the attempt's: fenced by its claim's lease id, so nothing lands once the job is
another claim's. Reports are numbered in the order the handler made them (`Progress.seq`), and a
write of an older report (a resend held past the SDK's timeout) never replaces a newer one."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jobline import lifecycle
from jobline.errors import (
    CheckpointNotSaved,
    ConditionFailed,
    InvalidCheckpoint,
    InvalidJobTypeDeclaration,
    JobCancelled,
    JobHandlerError,
    StorageUnavailable,
)
from jobline.handler_loop import HandlerLoop, handler_loop
from jobline.limits import MAX_CHECKPOINT_BYTES
from jobline.logging import get_logger
from jobline.models import Checkpoint, Job, JobStatus, Progress
from jobline.ports import JobRepository
from jobline.registry import JobContext, JobType
from jobline.validation import canonical_json, json_problem

log = get_logger(__name__)


@dataclass
class AttemptChannel:
    """The link between a running handler and its job item: progress writes at most once per
    `interval_s` (the latest report is kept for the final write), cancellation read at most once
    per `interval_s` (a progress write also answers it)."""

    repo: JobRepository
    job: Job
    clock: Callable[[], datetime]
    interval_s: float = 1.0
    latest: Progress | None = None
    cancel_seen: bool = False
    lost: bool = False
    """The job stopped being this attempt's (reclaimed, or changed by another writer)."""
    _last_write: float = field(default=float("-inf"))
    _last_check: float = field(default=float("-inf"))
    _seq: int = 0
    _saved: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        # A resumed attempt goes on numbering where its previous invocation stopped.
        if self.job.progress is not None and self.job.progress.seq is not None:
            self._seq = self.job.progress.seq
        if self.job.checkpoint is not None:
            self._saved = self.job.checkpoint.seq

    def next_checkpoint(self, state: Any) -> Checkpoint:
        """`state` as the attempt's next saved state: JSON, at most `MAX_CHECKPOINT_BYTES`
        (`InvalidCheckpoint`, permanent, when it is not)."""
        problem = json_problem(state)
        if problem is None:
            try:
                size = len(canonical_json(state).encode())
            except (TypeError, ValueError) as exc:
                problem = f"is not JSON: {exc}"
            else:
                if size > MAX_CHECKPOINT_BYTES:
                    problem = f"is {size} bytes; the limit is {MAX_CHECKPOINT_BYTES}"
        if problem is not None:
            raise InvalidCheckpoint(f"the saved state {problem}")
        with self._lock:
            self._saved += 1
            return Checkpoint(state=state, seq=self._saved, saved_at=self.clock())

    def save(self, state: Any) -> None:
        """Write `state` on the job now (`context.checkpoint`), fenced by the claim and ordered:
        `CheckpointNotSaved` (retryable) when the store did not answer, `JobCancelled` when the
        job is no longer this attempt's."""
        write = lifecycle.save_checkpoint(self.job, self.next_checkpoint(state))
        try:
            self.repo.update(self.job.id, write.update, write.precondition)
        except ConditionFailed as refused:
            if self._still_ours(refused.current):
                return  # a later saved state is stored already
            self._mark_lost()
            raise JobCancelled("the attempt is no longer the job's") from None
        except StorageUnavailable as exc:
            raise CheckpointNotSaved(f"the state was not saved: {exc.message}") from exc

    def report(self, percent: float, message: str | None) -> None:
        """Keep the report; write it unless a write happened within the interval."""
        now = time.monotonic()
        with self._lock:
            self._seq += 1
            self.latest = Progress(
                percent=percent, message=message, updated_at=self.clock(), seq=self._seq
            )
            if now - self._last_write < self.interval_s or self.lost:
                return
            self._last_write = now
            progress = self.latest
        write = lifecycle.report_progress(self.job, progress)
        try:
            current = self.repo.update(self.job.id, write.update, write.precondition)
        except ConditionFailed as refused:
            if not self._still_ours(refused.current):
                self._mark_lost()
            # else: a later report of this attempt is stored already; this one is stale.
            return
        except StorageUnavailable as exc:
            log.warning("job.progress_not_written", error=exc.message)
            return
        with self._lock:
            self._last_check = now
            self.cancel_seen = (
                self.cancel_seen or current.cancel_requested_at is not None
            )

    def cancelled(self) -> bool:
        """True once cancellation was requested (or the job is no longer this attempt's)."""
        now = time.monotonic()
        with self._lock:
            if self.cancel_seen or self.lost:
                return True
            if now - self._last_check < self.interval_s:
                return False
            self._last_check = now
        try:
            current = self.repo.get(self.job.id)
        except StorageUnavailable as exc:
            log.warning("job.cancel_check_failed", error=exc.message)
            return False
        if current is None or not self._still_ours(current):
            self._mark_lost()
            return True
        if current.cancel_requested_at is not None:
            with self._lock:
                self.cancel_seen = True
            return True
        return False

    def _still_ours(self, current: Job | None) -> bool:
        """Whether `current` is still running this attempt (its claim's lease id)."""
        return (
            current is not None
            and current.status is JobStatus.RUNNING
            and current.lease_id == self.job.lease_id
            and current.attempts == self.job.attempts
        )

    def _mark_lost(self) -> None:
        with self._lock:
            self.lost = True
        log.warning(
            "job.attempt_lost", reason="the job changed under the running attempt"
        )


@dataclass
class HandlerOutcome:
    """How a handler thread ended: a result, an exception, or still running at the deadline."""

    result: Any = None
    error: BaseException | None = None
    timed_out: bool = False


def run_until_deadline(
    call: Callable[[], Any], context: JobContext, deadline: float
) -> HandlerOutcome:
    """Run `call` in a daemon thread; at `deadline` (monotonic) stop waiting, set the context's
    stop event so a cooperative handler returns, and report a timeout. A handler that ignores the
    stop keeps its thread, but its outcome is discarded: the attempt is already recorded and any
    later write of it fails its condition."""
    outcome = HandlerOutcome()
    done = threading.Event()

    def target() -> None:
        try:
            outcome.result = call()
        except BaseException as exc:  # noqa: BLE001 (handed to the caller, which logs and records it)
            outcome.error = exc
        finally:
            done.set()

    thread = threading.Thread(
        target=target, name=f"job-{context.job_id[:8]}", daemon=True
    )
    thread.start()
    if not done.wait(timeout=max(0.0, deadline - time.monotonic())):
        context.stop_event.set()
        return HandlerOutcome(timed_out=True)
    return outcome


async def _outcome_of(call: Callable[[], Awaitable[Any]]) -> HandlerOutcome:
    """Await the handler; what it raised is handed back, not raised on the loop (where a
    `KeyboardInterrupt` or `SystemExit` would stop the loop for every other handler)."""
    try:
        return HandlerOutcome(result=await call())
    except asyncio.CancelledError:
        raise  # the deadline's: the task ends cancelled
    except BaseException as exc:  # noqa: BLE001 (handed to the caller, which logs and records it)
        return HandlerOutcome(error=exc)


def await_until_deadline(
    call: Callable[[], Awaitable[Any]],
    context: JobContext,
    deadline: float,
    loop: HandlerLoop | None = None,
) -> HandlerOutcome:
    """Await `call()` as a task on the handler loop (default: this environment's); at `deadline`
    (monotonic) stop waiting, set the context's stop event, cancel the task (`CancelledError` at
    its next `await`) and report a timeout. As with a thread, a handler that swallows the
    cancellation keeps running, but its outcome is discarded."""
    future = (loop or handler_loop()).submit(_outcome_of(call))
    done, _ = concurrent.futures.wait(
        [future], timeout=max(0.0, deadline - time.monotonic())
    )
    if not done:
        context.stop_event.set()
        future.cancel()
        return HandlerOutcome(timed_out=True)
    if future.cancelled():  # the handler cancelled its own task
        return HandlerOutcome(error=JobHandlerError("the handler's task was cancelled"))
    return future.result()


def run_handler(
    job_type: JobType[Any], payload: Any, context: JobContext, deadline: float
) -> HandlerOutcome:
    """Run `job_type`'s handler on `payload` until `deadline`: an `async def` one on the handler
    loop, a plain one in a thread of its own; the same outcome either way."""
    try:
        is_async = job_type.is_async
    except (
        InvalidJobTypeDeclaration
    ) as exc:  # not resolved at the worker's init (a fake's)
        return HandlerOutcome(error=exc)
    if is_async:
        return await_until_deadline(
            lambda: job_type.run_async(payload, context), context, deadline
        )
    return run_until_deadline(lambda: job_type.run(payload, context), context, deadline)
