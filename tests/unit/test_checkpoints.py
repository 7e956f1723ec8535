"""One attempt of a handler: the throttled channel to the job item, the deadline runner, and the
context a handler sees (over the in-memory repository, no service)."""

from __future__ import annotations

import math
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from jobline.errors import StorageUnavailable
from jobline.models import Job, JobStatus, Progress
from jobline.registry import DeadlineExceeded, JobCancelled, JobContext
from jobline.transition import JobUpdate, Precondition
from jobline.usecases.checkpoints import AttemptChannel, run_until_deadline

from tests.support.fakes import START, FakeClock, InMemoryJobRepository

WAIT_S = 10.0
"""Upper bound of every wait on a thread in this file; a healthy run never comes near it."""
HOUR = 3600.0
"""A throttle interval no test outlives: only the first write or read of a channel happens."""


def _running_job(repo: InMemoryJobRepository, **fields: Any) -> Job:
    job = Job.model_validate(
        {
            "id": "a" * 32,
            "owner": "ann",
            "type": "t",
            "status": JobStatus.RUNNING,
            "payload": {},
            "attempts": 1,
            "created_at": START,
            "updated_at": START,
            "started_at": START,
            "lease_until": START + timedelta(minutes=5),
            **fields,
        }
    )
    repo.put(job)
    return job


def _channel(
    interval_s: float, **fields: Any
) -> tuple[AttemptChannel, InMemoryJobRepository]:
    repo = InMemoryJobRepository()
    job = _running_job(repo, **fields)
    return AttemptChannel(repo, job, FakeClock(), interval_s), repo


def _context(
    channel: AttemptChannel | None = None, seconds_left: float = 30.0
) -> JobContext:
    if channel is None:
        return JobContext(
            job_id="a" * 32,
            job_type="t",
            attempt=1,
            max_attempts=3,
            deadline=time.monotonic() + seconds_left,
        )
    return JobContext(
        job_id=channel.job.id,
        job_type="t",
        attempt=channel.job.attempts,
        max_attempts=3,
        deadline=time.monotonic() + seconds_left,
        progress_sink=channel.report,
        cancel_probe=channel.cancelled,
    )


def _progress_writes(repo: InMemoryJobRepository) -> list[Progress]:
    return [
        change.values["progress"]
        for _, change in repo.writes
        if set(change.values) == {"progress"}
    ]


def _request_cancel(repo: InMemoryJobRepository, job: Job) -> None:
    repo.update(
        job.id,
        JobUpdate(cancel_requested_at=START),
        Precondition(owner="ann", status_in=frozenset({JobStatus.RUNNING})),
    )


# ------------------------------------------------------------------------ progress


def test_the_first_report_is_written_and_later_ones_wait_for_the_interval() -> None:
    # Given a channel allowing one write per hour
    channel, repo = _channel(HOUR)

    # When the handler reports three times
    for percent in (10, 20, 30):
        channel.report(percent, f"at {percent}")

    # Then only the first was written; the latest is kept for the outcome write
    assert _progress_writes(repo) == [
        Progress(percent=10, message="at 10", updated_at=START, seq=1)
    ]
    assert channel.latest == Progress(
        percent=30, message="at 30", updated_at=START, seq=3
    )
    stored = repo.get(channel.job.id)
    assert stored is not None
    assert stored.progress == Progress(
        percent=10, message="at 10", updated_at=START, seq=1
    )


def test_without_an_interval_every_report_is_written() -> None:
    channel, repo = _channel(0)

    for percent in (10, 20, 30):
        channel.report(percent, None)

    assert [p.percent for p in _progress_writes(repo)] == [10, 20, 30]


def test_a_report_on_a_job_that_moved_on_marks_the_attempt_lost() -> None:
    # Given a running attempt whose job was reclaimed by another invocation (attempt 2)
    channel, repo = _channel(0)
    repo.put(channel.job.model_copy(update={"attempts": 2}))

    # When it reports progress
    channel.report(50, "half")

    # Then nothing was written, the attempt knows it is lost, and it counts as cancelled
    assert _progress_writes(repo) == []
    assert channel.lost is True
    reads = repo.reads
    assert channel.cancelled() is True
    assert repo.reads == reads
    # And later reports write nothing
    channel.report(60, "more")
    assert _progress_writes(repo) == []


def test_a_storage_outage_during_a_report_is_not_a_lost_attempt() -> None:
    channel, repo = _channel(0)
    repo.broken[channel.job.id] = StorageUnavailable("ThrottlingException")

    channel.report(50, "half")

    assert (channel.lost, channel.latest is not None) == (False, True)
    assert channel.cancelled() is False


# ------------------------------------------------------------------- cancellation


def test_cancellation_is_read_at_most_once_per_interval() -> None:
    # Given a channel allowing one read per hour, and a job whose cancel is requested
    channel, repo = _channel(HOUR)
    reads = repo.reads
    assert channel.cancelled() is False
    _request_cancel(repo, channel.job)

    # When the handler checks again and again within the interval
    answers = [channel.cancelled() for _ in range(100)]

    # Then the job was read once, so the request is not seen yet
    assert answers == [False] * 100
    assert repo.reads - reads == 1


def test_a_requested_cancel_is_seen_and_stays_seen() -> None:
    channel, repo = _channel(0)
    assert channel.cancelled() is False
    _request_cancel(repo, channel.job)

    assert channel.cancelled() is True
    reads = repo.reads
    assert channel.cancelled() is True
    assert repo.reads == reads


def test_a_progress_write_answers_the_next_cancellation_check() -> None:
    # Given a job whose cancel is requested, and a channel allowing one read per hour
    channel, repo = _channel(HOUR)
    _request_cancel(repo, channel.job)
    reads = repo.reads

    # When the handler reports progress, then checks
    channel.report(10, None)

    # Then the write's answer carried the request, without a read
    assert channel.cancelled() is True
    assert repo.reads == reads


@pytest.mark.parametrize(
    "change",
    [
        {"status": JobStatus.FAILED},
        {"status": JobStatus.QUEUED},
        {"attempts": 2},
    ],
    ids=["finished", "requeued", "reclaimed"],
)
def test_a_job_that_is_no_longer_this_attempts_counts_as_cancelled(
    change: dict[str, Any],
) -> None:
    channel, repo = _channel(0)
    repo.put(channel.job.model_copy(update=change))

    assert channel.cancelled() is True
    assert channel.lost is True


def test_a_vanished_job_counts_as_cancelled() -> None:
    # Given an attempt whose job is no longer stored (deleted, expired)
    job = _running_job(InMemoryJobRepository())
    channel = AttemptChannel(InMemoryJobRepository(), job, FakeClock(), 0)

    # Then it counts as cancelled
    assert channel.cancelled() is True


# ------------------------------------------------------------------------- runner


def test_the_runner_returns_the_handlers_result() -> None:
    context = _context()
    outcome = run_until_deadline(lambda: {"ok": 1}, context, context.deadline)
    assert (outcome.result, outcome.error, outcome.timed_out) == (
        {"ok": 1},
        None,
        False,
    )
    assert context.stop_event.is_set() is False


@pytest.mark.parametrize(
    "error", [ValueError("bad"), JobCancelled("stop"), KeyboardInterrupt()]
)
def test_the_runner_hands_back_what_the_handler_raised(error: BaseException) -> None:
    def raising() -> None:
        raise error

    context = _context()
    outcome = run_until_deadline(raising, context, context.deadline)
    assert (outcome.error, outcome.timed_out) == (error, False)


def test_at_the_deadline_the_runner_stops_waiting_and_tells_the_handler() -> None:
    # Given a handler that blocks until released, and a deadline 0.1 s away
    context = _context()
    release, returned = threading.Event(), threading.Event()

    def blocking() -> str:
        release.wait(WAIT_S)
        returned.set()
        return "late"

    try:
        # When the runner runs it
        outcome = run_until_deadline(blocking, context, time.monotonic() + 0.1)

        # Then it reports a timeout without a result, and sets the stop event
        assert (outcome.result, outcome.error, outcome.timed_out) == (None, None, True)
        assert context.stop_event.is_set()
        assert context.cancel_requested() is True
        assert returned.is_set() is False
    finally:
        release.set()
    # And the handler's late result goes nowhere
    assert returned.wait(WAIT_S)
    assert outcome.result is None


def test_a_cooperative_handler_stops_at_its_next_checkpoint_after_the_deadline() -> (
    None
):
    # Given a handler that checks in a loop, and a deadline 0.1 s away
    context = _context()
    stopped: list[BaseException] = []
    finished = threading.Event()

    def cooperative() -> None:
        try:
            while True:
                context.raise_if_cancelled()
                time.sleep(0.01)
        except DeadlineExceeded as exc:
            stopped.append(exc)
            raise
        finally:
            finished.set()

    # When the runner gives up on it
    outcome = run_until_deadline(cooperative, context, time.monotonic() + 0.1)

    # Then the handler stops by itself, as out of time
    assert outcome.timed_out is True
    assert finished.wait(WAIT_S)
    assert [type(exc) for exc in stopped] == [DeadlineExceeded]


# ------------------------------------------------------------------------ context


@pytest.mark.parametrize("percent", [-0.1, 100.1, math.nan, math.inf])
def test_report_progress_refuses_percentages_outside_0_to_100(percent: float) -> None:
    channel, repo = _channel(0)
    with pytest.raises(ValueError, match="percent"):
        _context(channel).report_progress(percent)
    assert _progress_writes(repo) == []


@pytest.mark.parametrize("percent", [0, 100, 33.3])
def test_report_progress_accepts_0_to_100(percent: float) -> None:
    channel, repo = _channel(0)
    _context(channel).report_progress(percent, "ok")
    assert [p.percent for p in _progress_writes(repo)] == [percent]


def test_raise_if_cancelled_raises_job_cancelled_once_requested() -> None:
    channel, repo = _channel(0)
    context = _context(channel)
    context.raise_if_cancelled()
    _request_cancel(repo, channel.job)

    with pytest.raises(JobCancelled, match=channel.job.id):
        context.raise_if_cancelled()


def test_raise_if_cancelled_raises_deadline_exceeded_when_out_of_time() -> None:
    context = _context(seconds_left=0)
    assert context.remaining_seconds() == 0.0
    with pytest.raises(DeadlineExceeded) as caught:
        context.raise_if_cancelled()
    assert caught.value.retryable is True


def test_a_context_built_by_hand_records_nothing_and_is_never_cancelled() -> None:
    context = _context()
    context.report_progress(50, "nowhere")
    assert context.cancel_requested() is False
    context.raise_if_cancelled()
    assert 0 < context.remaining_seconds() <= 30
