"""Execution: claim, attempt and outcome, retries with backoff, history."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from typing import Any

import pytest
from jobline.backoff import Backoff
from jobline.errors import JobNotFound
from jobline.models import Attempt, Job, JobError, JobMessage, JobStatus, SubmitRequest
from jobline.registry import JobContext, JobHandlerError, PermanentJobError
from jobline.service import RunOutcome
from jobline.transition import JobUpdate, Precondition
from structlog.testing import capture_logs

from tests.support.builders import (
    ANN,
    BOB,
    SEED,
    UNKNOWN_ID,
    Fakes,
    after_backoff,
    delivery_of,
    echo_request,
    in_a_minute,
    with_handler,
    with_type,
)
from tests.support.fakes import (
    START,
    AnyInput,
    CountingHandler,
    FakeClock,
    InMemoryJobRepository,
    failing_handler,
    job_type_of,
)
from tests.support.services import build_fake_service, build_registry

pytestmark = pytest.mark.usefixtures("handler_kind")
"""Every test here runs with a plain handler and with an `async def` one (tests.support.handlers)."""

# ------------------------------------------------------------------------------- run


def test_run_claims_runs_and_records_success(clock: FakeClock) -> None:
    # Given a queued echo job
    service, repo, queue = build_fake_service(clock=clock, retention=timedelta(days=30))
    job = service.submit(ANN, echo_request({"x": 1})).job

    # When the worker runs its message
    outcome = service.run(delivery_of(job, request_id="req-1"))

    # Then it succeeded on the first attempt with the payload as result
    assert outcome is RunOutcome.DONE
    [done] = repo.jobs
    assert (done.status, done.result, done.error, done.attempts) == (
        JobStatus.SUCCEEDED,
        {"x": 1},
        None,
        1,
    )
    assert done.started_at == START + timedelta(seconds=1)
    assert done.finished_at == done.updated_at == START + timedelta(seconds=2)
    assert done.expires_at == int((done.finished_at + timedelta(days=30)).timestamp())
    # And the attempt is in the history, and nothing of the lease or the wait is left
    [entry] = done.history
    assert entry == Attempt(
        attempt=1,
        run=1,
        started_at=START + timedelta(seconds=1),
        finished_at=START + timedelta(seconds=2),
        error=None,
        request_id="req-1",
        duration_ms=entry.duration_ms,
        token=entry.token,
    )
    # (recorded by the write its claim's lease id names, which the job no longer holds)
    assert entry.token is not None and len(entry.token) == 32
    assert done.lease_id is None
    assert (done.lease_until, done.attempt_request_id, done.run_after) == (
        None,
        None,
        None,
    )
    assert (done.progress, done.cancel_requested_at) == (None, None)
    # And the message's visibility was left alone (the worker deletes it)
    assert queue.visibility == []


def test_a_claim_records_the_lease_and_the_request_of_the_invocation() -> None:
    # Given a queued job whose handler records the job as stored while it runs
    seen: list[Job | None] = []
    repo_box: list[InMemoryJobRepository] = []

    def handler(payload: AnyInput, context: JobContext) -> Any:
        seen.append(repo_box[0].get(context.job_id))
        return {}

    clock = FakeClock()
    service, repo, _ = with_type(handler, clock=clock)
    repo_box.append(repo)
    job = service.submit(ANN, SubmitRequest(type="t", delay_seconds=30)).job
    assert job.run_after == START + timedelta(seconds=30)
    lease = START + timedelta(minutes=5)

    # When an invocation with that deadline runs it once it is due
    clock.advance(timedelta(seconds=30))
    service.run(delivery_of(job, lease_until=lease, request_id="req-7"))

    # Then while running, the job carried the invocation's lease and request id, and the
    # time the attempt was due (its queue delay is measured from it)
    [running] = seen
    assert running is not None
    assert (running.status, running.attempts) == (JobStatus.RUNNING, 1)
    assert (running.lease_until, running.attempt_request_id) == (lease, "req-7")
    assert running.run_after == START + timedelta(seconds=30)


def test_run_passes_the_attempt_to_the_handler() -> None:
    # Given a job type that records its context
    seen: list[JobContext] = []

    class Recorder(CountingHandler):
        def __call__(self, payload: Any, context: JobContext) -> Any:
            seen.append(context)
            return super().__call__(payload, context)

    service, _, _ = with_handler(Recorder())
    job = service.submit(ANN, SubmitRequest(type="count", max_attempts=4)).job
    deadline = in_a_minute()

    # When it runs
    service.run(delivery_of(job, deadline=deadline))

    # Then the handler saw the job, the attempt and the deadline, and no stop yet
    [context] = seen
    assert (
        context.job_id,
        context.job_type,
        context.attempt,
        context.max_attempts,
        context.deadline,
    ) == (job.id, "count", 1, 4, deadline)
    assert context.stop_event.is_set() is False


@pytest.mark.parametrize(
    "status",
    [
        JobStatus.SUCCEEDED,
        JobStatus.FAILED,
        JobStatus.CANCELLED,
        JobStatus.DEAD_LETTERED,
        JobStatus.REJECTED,
    ],
)
def test_a_message_for_a_finished_job_runs_nothing(status: JobStatus) -> None:
    # Given a counting job that has finished
    handler = CountingHandler()
    service, repo, queue = with_handler(handler)
    job = service.submit(ANN, SubmitRequest(type="count")).job
    stored = job.model_copy(update={"status": status, "attempts": 1})
    repo.put(stored)

    # When a (duplicate) message for it arrives
    outcome = service.run(delivery_of(job))

    # Then it is acknowledged, the handler never ran and the job is unchanged
    assert outcome is RunOutcome.DONE
    assert handler.calls == 0
    assert repo.jobs == [stored]
    assert queue.visibility == []


def test_a_duplicate_message_after_success_runs_nothing() -> None:
    handler = CountingHandler(result={"v": 1})
    service, repo, _ = with_handler(handler)
    job = service.submit(ANN, SubmitRequest(type="count")).job
    assert service.run(delivery_of(job)) is RunOutcome.DONE
    done = repo.jobs

    # When the same message is delivered again
    outcome = service.run(delivery_of(job))

    # Then nothing runs twice
    assert outcome is RunOutcome.DONE
    assert handler.calls == 1
    assert repo.jobs == done


def test_a_cancelled_job_is_never_run() -> None:
    handler = CountingHandler()
    service, repo, queue = with_handler(handler)
    job = service.submit(ANN, SubmitRequest(type="count")).job
    service.cancel(ANN, job.id)

    # When its message is delivered
    outcome = service.run(delivery_of(queue.sent[0].message))

    # Then it stays cancelled and never ran
    assert outcome is RunOutcome.DONE
    assert handler.calls == 0
    assert [(j.status, j.attempts) for j in repo.jobs] == [(JobStatus.CANCELLED, 0)]


def test_a_message_with_another_owner_is_not_found() -> None:
    handler = CountingHandler()
    service, repo, _ = with_handler(handler)
    job = service.submit(ANN, SubmitRequest(type="count")).job

    with pytest.raises(JobNotFound):
        service.run(delivery_of(job, owner=BOB))
    assert handler.calls == 0
    assert [(j.status, j.attempts) for j in repo.jobs] == [(JobStatus.QUEUED, 0)]


def test_a_message_for_an_unknown_job_is_not_found(fakes: Fakes) -> None:
    service, _, _ = fakes
    with pytest.raises(JobNotFound):
        service.run(
            delivery_of(JobMessage(job_id=UNKNOWN_ID, owner=ANN, job_type="echo"))
        )


def test_a_failing_attempt_with_attempts_left_is_retried_after_a_backoff() -> None:
    # Given a job whose handler fails, with 3 attempts allowed, and the default backoff
    handler = failing_handler("boom")
    service, repo, queue = with_handler(handler)
    job = service.submit(ANN, SubmitRequest(type="count", max_attempts=3)).job

    # When its first attempt runs
    outcome = service.run(delivery_of(job, receipt_handle="handle-a"))

    # Then the message is returned, hidden for the backoff of attempt 1 ...
    delay = Backoff().delay(1, random.Random(SEED))
    assert outcome is RunOutcome.REDELIVER
    assert queue.visibility == [("handle-a", delay)]
    # ... and the job is queued again with the error, to run after the backoff
    [queued] = repo.jobs
    assert (queued.status, queued.attempts, queued.finished_at) == (
        JobStatus.QUEUED,
        1,
        None,
    )
    assert queued.error == JobError(type="JobHandlerError", message="boom")
    assert queued.run_after == START + timedelta(seconds=delay)
    assert (queued.lease_until, queued.attempt_request_id) == (None, None)


def test_the_last_failing_attempt_fails_the_job() -> None:
    # Given a job whose handler always fails, with 2 attempts allowed
    handler = failing_handler("still broken")
    clock = FakeClock()
    service, repo, queue = with_handler(handler, clock=clock)
    job = service.submit(ANN, SubmitRequest(type="count", max_attempts=2)).job

    # When both attempts run, the second after the first one's backoff
    outcomes = [service.run(delivery_of(job))]
    after_backoff(clock, queue)
    outcomes.append(service.run(delivery_of(job)))

    # Then the first is retried, the second fails the job for good and is acknowledged
    assert outcomes == [RunOutcome.REDELIVER, RunOutcome.DONE]
    [failed] = repo.jobs
    assert (failed.status, failed.attempts, handler.calls) == (JobStatus.FAILED, 2, 2)
    assert failed.error == JobError(type="JobHandlerError", message="still broken")
    assert failed.finished_at is not None
    assert failed.expires_at is not None
    assert failed.run_after is None
    # And only the retried attempt's message was hidden for a backoff
    assert [handle for handle, _ in queue.visibility] == ["handle-1"]

    # And a further delivery runs nothing
    assert service.run(delivery_of(job)) is RunOutcome.DONE
    assert handler.calls == 2


def test_a_retry_succeeds_and_clears_the_error() -> None:
    class FlakyOnce(CountingHandler):
        def __call__(self, payload: Any, context: JobContext) -> Any:
            if context.attempt == 1:
                raise JobHandlerError("transient")
            return {"attempt": context.attempt}

    clock = FakeClock()
    service, repo, queue = with_handler(FlakyOnce(), clock=clock)
    job = service.submit(ANN, SubmitRequest(type="count")).job

    outcomes = [service.run(delivery_of(job))]
    after_backoff(clock, queue)
    outcomes.append(service.run(delivery_of(job)))

    assert outcomes == [RunOutcome.REDELIVER, RunOutcome.DONE]
    [done] = repo.jobs
    assert (done.status, done.attempts, done.result, done.error) == (
        JobStatus.SUCCEEDED,
        2,
        {"attempt": 2},
        None,
    )


@pytest.mark.parametrize(
    ("error", "error_type"),
    [
        (JobHandlerError("bad input", retryable=False), "JobHandlerError"),
        (PermanentJobError("bad input"), "PermanentJobError"),
    ],
    ids=["not-retryable", "permanent"],
)
def test_a_permanent_error_fails_the_job_at_once(
    error: Exception, error_type: str
) -> None:
    # Given a job with 5 attempts whose handler raises a permanent error
    handler = CountingHandler(error=error)
    service, repo, queue = with_handler(handler)
    job = service.submit(ANN, SubmitRequest(type="count", max_attempts=5)).job

    # When it runs
    outcome = service.run(delivery_of(job))

    # Then the job failed after one attempt, and nothing waits for a retry
    assert outcome is RunOutcome.DONE
    [failed] = repo.jobs
    assert (failed.status, failed.attempts) == (JobStatus.FAILED, 1)
    assert failed.error == JobError(type=error_type, message="bad input")
    assert [entry.error for entry in failed.history] == [failed.error]
    assert queue.visibility == []
    assert handler.calls == 1


def test_a_crashing_handler_is_retried() -> None:
    handler = CountingHandler(error=RuntimeError("bug"))
    service, repo, _ = with_handler(handler)
    job = service.submit(ANN, SubmitRequest(type="count", max_attempts=2)).job

    outcome = service.run(delivery_of(job))

    assert outcome is RunOutcome.REDELIVER
    [queued] = repo.jobs
    assert (queued.status, queued.error) == (
        JobStatus.QUEUED,
        JobError(type="RuntimeError", message="bug"),
    )


def nested_lists(depth: int) -> list[Any]:
    """`[[[...]]]`, `depth` levels deep."""
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("result", "error_type"),
    [
        ({"when": object()}, "InvalidResult"),
        ({"x": float("nan")}, "InvalidResult"),
        ({"x": float("-inf")}, "InvalidResult"),
        ({"blob": "x" * 200}, "ResultTooLarge"),
        (nested_lists(129), "InvalidResult"),
        ({"x": "\ud800"}, "InvalidResult"),
    ],
    ids=["not-json", "nan", "infinity", "too-large", "too-deep", "lone-surrogate"],
)
def test_a_result_that_cannot_be_stored_fails_the_job_at_once(
    result: Any, error_type: str
) -> None:
    # Given a handler returning a result that is not JSON or over the 100-byte limit
    handler = CountingHandler(result=result)
    service, repo, _ = with_handler(handler, max_result_bytes=100)
    job = service.submit(ANN, SubmitRequest(type="count", max_attempts=5)).job

    # When it runs
    outcome = service.run(delivery_of(job))

    # Then the job failed for good without a result
    assert outcome is RunOutcome.DONE
    [failed] = repo.jobs
    assert (failed.status, failed.attempts, failed.result) == (
        JobStatus.FAILED,
        1,
        None,
    )
    assert failed.error is not None
    assert failed.error.type == error_type


def test_floats_and_big_numbers_survive_exactly(fakes: Fakes) -> None:
    service, _, _ = fakes
    payload = {
        "tenth": 0.1,
        "third": 1 / 3,
        "tiny": 5e-324,
        "huge": 1.7976931348623157e308,
        "one": 1.0,
        "big": 10**30,
        "nested": [{"f": -2.5e-10}],
    }
    job = service.submit(ANN, echo_request(payload)).job

    service.run(delivery_of(job))

    done = service.get(ANN, job.id)
    assert done.status is JobStatus.SUCCEEDED
    assert json.dumps(done.result) == json.dumps(payload)
    assert json.dumps(done.payload) == json.dumps(payload)


def test_an_outcome_is_discarded_when_the_job_changed_while_running() -> None:
    # Given a handler during whose run another writer moves the job on (a lost race)
    class Interloper(CountingHandler):
        repo: InMemoryJobRepository | None = None

        def __call__(self, payload: Any, context: JobContext) -> Any:
            assert self.repo is not None
            self.repo.update(
                context.job_id,
                JobUpdate(status=JobStatus.FAILED),
                Precondition(owner=ANN, status_in=frozenset({JobStatus.RUNNING})),
            )
            return {"late": True}

    handler = Interloper()
    service, repo, _ = with_handler(handler)
    handler.repo = repo
    job = service.submit(ANN, SubmitRequest(type="count")).job

    # When the attempt finishes
    outcome = service.run(delivery_of(job))

    # Then the other writer's state stands, without the attempt's history entry
    assert outcome is RunOutcome.DONE
    [stored] = repo.jobs
    assert (stored.status, stored.result, stored.history) == (
        JobStatus.FAILED,
        None,
        (),
    )


# -------------------------------------------------------------------------- backoff


def test_each_retry_waits_the_backoff_of_its_attempt() -> None:
    # Given a deployment backoff of base 10 s, cap 100 s, and a job failing 4 times of 5
    handler = failing_handler("flaky")
    backoff = Backoff(base_s=10, cap_s=100)
    clock = FakeClock()
    service, repo, queue = with_handler(handler, clock=clock, backoff=backoff)
    job = service.submit(ANN, SubmitRequest(type="count", max_attempts=5)).job

    # When four attempts run, each delivered once the previous backoff has passed
    outcomes = []
    for _ in range(4):
        outcomes.append(service.run(delivery_of(job)))
        after_backoff(clock, queue)

    # Then each message was hidden for exactly the seeded draw of its attempt's backoff
    rng = random.Random(SEED)
    expected = [backoff.delay(attempt, rng) for attempt in (1, 2, 3, 4)]
    assert outcomes == [RunOutcome.REDELIVER] * 4
    assert queue.visibility == [("handle-1", delay) for delay in expected]
    # And each is at least a second and within its ceiling (10, 20, 40, then capped at 100)
    assert all(
        1 <= delay <= ceiling
        for delay, ceiling in zip(expected, [10, 20, 40, 100], strict=True)
    )
    [queued] = repo.jobs
    assert queued.run_after == START + timedelta(seconds=sum(expected))


def test_a_job_type_can_override_the_backoff() -> None:
    # Given a deployment backoff of at most 1 s, and a job type that waits 4000..5000 s
    own = Backoff(base_s=5000, cap_s=5000, floor_s=4000)
    failing = job_type_of("slow-retry", failing_handler("later"), backoff=own)
    service, _, queue = build_fake_service(
        build_registry([failing]), backoff=Backoff(base_s=1, cap_s=1)
    )
    job = service.submit(ANN, SubmitRequest(type="slow-retry")).job

    # When its attempt fails
    assert service.run(delivery_of(job)) is RunOutcome.REDELIVER

    # Then the message is hidden for the job type's backoff
    delay = own.delay(1, random.Random(SEED))
    assert 4000 <= delay <= 5000
    assert queue.visibility == [("handle-1", delay)]


def test_a_queue_outage_while_hiding_the_message_still_queues_the_job() -> None:
    # Given a failing job and an SQS outage
    service, repo, queue = with_handler(failing_handler("boom"))
    job = service.submit(ANN, SubmitRequest(type="count")).job
    queue.fail_with = "ServiceUnavailable"

    # When its attempt fails
    with capture_logs() as logs:
        outcome = service.run(delivery_of(job))

    # Then the message still goes back (with the queue's own visibility timeout) and the job
    # is queued for the next attempt
    assert outcome is RunOutcome.REDELIVER
    assert [(j.status, j.attempts) for j in repo.jobs] == [(JobStatus.QUEUED, 1)]
    assert "job.backoff_not_applied" in [entry["event"] for entry in logs]


# -------------------------------------------------------------------------- history


def test_every_attempt_appends_one_history_entry(clock: FakeClock) -> None:
    # Given a job that fails its first attempt and succeeds on the second
    class FlakyOnce(CountingHandler):
        def __call__(self, payload: Any, context: JobContext) -> Any:
            if context.attempt == 1:
                raise JobHandlerError("transient")
            return {"ok": True}

    # (a backoff of one second: the second delivery is due at the fake clock's next tick)
    service, repo, _ = with_handler(
        FlakyOnce(), clock=clock, backoff=Backoff(base_s=1, cap_s=1)
    )
    job = service.submit(ANN, SubmitRequest(type="count")).job

    # When two invocations run it
    service.run(delivery_of(job, request_id="req-a"))
    service.run(delivery_of(job, request_id="req-b"))

    # Then the history has one entry per attempt: times, error, request id and duration
    [done] = repo.jobs
    at = [START + timedelta(seconds=s) for s in range(5)]
    first, second = done.history
    assert first == Attempt(
        attempt=1,
        run=1,
        started_at=at[1],
        finished_at=at[2],
        error=JobError(type="JobHandlerError", message="transient"),
        request_id="req-a",
        duration_ms=first.duration_ms,
        token=first.token,
    )
    assert second == Attempt(
        attempt=2,
        run=1,
        started_at=at[3],
        finished_at=at[4],
        error=None,
        request_id="req-b",
        duration_ms=second.duration_ms,
        token=second.token,
    )
    # Each entry names the claim whose outcome it is: one claim per attempt
    assert None not in (first.token, second.token) and first.token != second.token
    assert all(
        isinstance(entry.duration_ms, int) and entry.duration_ms >= 0
        for entry in done.history
    )
