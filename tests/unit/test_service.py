"""JobService over in-memory fakes: submit, idempotency, reads, listing, cancel and run."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest
from jobline.errors import (
    ConditionFailed,
    IdempotencyConflict,
    InvalidCursor,
    InvalidJobState,
    InvalidPayload,
    JobNotFound,
    PayloadTooLarge,
    QueueUnavailable,
    UnknownJobType,
)
from jobline.models import (
    Job,
    JobError,
    JobFilter,
    JobMessage,
    JobStatus,
    SubmitRequest,
)
from jobline.ports import Change, Expect
from jobline.registry import JobContext, JobHandlerError
from jobline.service import JobService, RunOutcome

from tests.fakes import (
    START,
    CountingHandler,
    FakeClock,
    InMemoryJobQueue,
    InMemoryJobRepository,
    build_fake_service,
    build_registry,
    counting_job_type,
    failing_handler,
)

ANN = "ann"
BOB = "bob"
UNKNOWN_ID = "0" * 32


def _echo(payload: dict[str, Any] | None = None, **fields: Any) -> SubmitRequest:
    return SubmitRequest(type="echo", payload=payload or {"n": 1}, **fields)


def _message(job: Job, owner: str | None = None) -> JobMessage:
    return JobMessage(job_id=job.id, owner=owner or job.owner, job_type=job.type)


def _deadline() -> float:
    return time.monotonic() + 60


Fakes = tuple[JobService, InMemoryJobRepository, InMemoryJobQueue]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(step=timedelta(seconds=1))


@pytest.fixture
def fakes(clock: FakeClock) -> Fakes:
    return build_fake_service(clock=clock)


def _with_handler(
    handler: CountingHandler, clock: FakeClock | None = None, **kwargs: Any
) -> Fakes:
    registry = build_registry([counting_job_type("count", handler)])
    return build_fake_service(registry, clock=clock or FakeClock(), **kwargs)


# ---------------------------------------------------------------------------- submit


def test_submit_stores_a_queued_job_and_enqueues_one_message(fakes: Fakes) -> None:
    service, repo, queue = fakes
    # Given a valid echo request with a delay
    request = _echo({"x": 1}, max_attempts=5, delay_seconds=30)

    # When ann submits it
    submitted = service.submit(ANN, request)

    # Then one queued job is stored and one message for it is sent with the delay
    job = submitted.job
    assert submitted.created is True
    assert repo.jobs == [job]
    assert (job.owner, job.type, job.status, job.payload) == (
        ANN,
        "echo",
        JobStatus.QUEUED,
        {"x": 1},
    )
    assert (job.attempts, job.max_attempts, job.delay_seconds) == (0, 5, 30)
    assert job.created_at == job.updated_at == START
    assert [(s.message, s.delay_seconds) for s in queue.sent] == [
        (JobMessage(job_id=job.id, owner=ANN, job_type="echo"), 30)
    ]


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        (SubmitRequest(type="nope", payload={}), UnknownJobType),
        (SubmitRequest(type="sleep", payload={"seconds": -1}), InvalidPayload),
        (SubmitRequest(type="sleep", payload={"seconds": "soon"}), InvalidPayload),
        (SubmitRequest(type="echo", payload=[1, 2]), InvalidPayload),
        (SubmitRequest(type="echo", payload={"x": float("nan")}), InvalidPayload),
        (SubmitRequest(type="echo", payload={"x": float("inf")}), InvalidPayload),
        (SubmitRequest(type="echo", payload={"x": "a" * 2000}), PayloadTooLarge),
    ],
    ids=[
        "unknown-type",
        "out-of-range",
        "wrong-type",
        "not-an-object",
        "nan",
        "infinity",
        "too-large",
    ],
)
def test_submit_rejects_before_storing_or_enqueuing(
    request_: SubmitRequest, error: type[Exception]
) -> None:
    # Given a service that accepts payloads up to 1 KiB
    service, repo, queue = build_fake_service(max_payload_bytes=1024)

    # When an invalid request is submitted
    with pytest.raises(error):
        service.submit(ANN, request_)

    # Then nothing was stored or enqueued
    assert repo.jobs == []
    assert queue.sent == []


def test_invalid_payload_carries_field_level_errors(fakes: Fakes) -> None:
    service, _, _ = fakes
    # When a sleep job is submitted with a negative duration
    with pytest.raises(InvalidPayload) as caught:
        service.submit(ANN, SubmitRequest(type="sleep", payload={"seconds": -1}))

    # Then the error names the field inside the payload
    assert [(e["loc"], e["type"]) for e in caught.value.errors] == [
        (["payload", "seconds"], "greater_than_equal")
    ]


def test_same_idempotency_key_and_body_returns_the_original_job(fakes: Fakes) -> None:
    service, repo, queue = fakes
    # Given a job submitted with an idempotency key
    first = service.submit(ANN, _echo({"x": 1}), idempotency_key="k1")

    # When the same request is submitted again with the same key
    again = service.submit(ANN, _echo({"x": 1}), idempotency_key="k1")

    # Then the original job comes back, nothing new is stored and one message was sent in all
    assert (first.created, again.created) == (True, False)
    assert again.job == first.job
    assert repo.jobs == [first.job]
    assert len(queue.sent) == 1


def test_same_idempotency_key_with_another_body_conflicts(fakes: Fakes) -> None:
    service, repo, queue = fakes
    # Given a job submitted with an idempotency key
    first = service.submit(ANN, _echo({"x": 1}), idempotency_key="k1")

    # When another body is submitted with the same key
    with pytest.raises(IdempotencyConflict):
        service.submit(ANN, _echo({"x": 2}), idempotency_key="k1")

    # Then the original job is untouched and nothing more was enqueued
    assert repo.jobs == [first.job]
    assert len(queue.sent) == 1


def test_idempotency_keys_are_scoped_per_owner(fakes: Fakes) -> None:
    service, repo, queue = fakes
    # When ann and bob both use the same key for the same body
    ann_job = service.submit(ANN, _echo(), idempotency_key="shared").job
    bob_job = service.submit(BOB, _echo(), idempotency_key="shared").job

    # Then each gets a job of their own
    assert ann_job.id != bob_job.id
    assert {(job.id, job.owner) for job in repo.jobs} == {
        (ann_job.id, ANN),
        (bob_job.id, BOB),
    }
    assert len(queue.sent) == 2


def test_an_expired_job_frees_its_idempotency_key(clock: FakeClock) -> None:
    # Given a job submitted with a key, cancelled, and kept for one day
    service, repo, queue = build_fake_service(clock=clock, retention=timedelta(days=1))
    first = service.submit(ANN, _echo({"x": 1}), idempotency_key="k1").job
    service.cancel(ANN, first.id)

    # When the retention has passed and the key is used again with another body
    clock.advance(timedelta(days=2))
    second = service.submit(ANN, _echo({"x": 2}), idempotency_key="k1")

    # Then a fresh job is created under the same id
    assert second.created is True
    assert second.job.id == first.id
    assert repo.jobs == [second.job]
    assert second.job.status is JobStatus.QUEUED
    assert len(queue.sent) == 2


def test_enqueue_failure_deletes_the_job_and_raises(fakes: Fakes) -> None:
    service, repo, queue = fakes
    # Given a queue that is down
    queue.fail_with = "ServiceUnavailable"

    # When a job is submitted
    with pytest.raises(QueueUnavailable):
        service.submit(ANN, _echo(), idempotency_key="k1")

    # Then no job remains, so the same key can be used again once the queue is back
    assert repo.jobs == []
    queue.fail_with = None
    retried = service.submit(ANN, _echo(), idempotency_key="k1")
    assert retried.created is True
    assert repo.jobs == [retried.job]


# ------------------------------------------------------------------------------- get


def test_get_returns_the_callers_job(fakes: Fakes) -> None:
    service, _, _ = fakes
    job = service.submit(ANN, _echo()).job
    assert service.get(ANN, job.id) == job


@pytest.mark.parametrize(
    "job_id", [UNKNOWN_ID, "not-a-job-id", "", "../etc", "A" * 32, "0" * 33]
)
def test_get_unknown_or_malformed_id_is_not_found(fakes: Fakes, job_id: str) -> None:
    service, _, _ = fakes
    with pytest.raises(JobNotFound):
        service.get(ANN, job_id)


def test_get_another_owners_job_is_not_found(fakes: Fakes) -> None:
    service, _, _ = fakes
    # Given bob's job
    job = service.submit(BOB, _echo()).job
    # When ann asks for it, then it does not exist for her
    with pytest.raises(JobNotFound):
        service.get(ANN, job.id)


def test_get_expired_job_is_not_found(clock: FakeClock) -> None:
    # Given a cancelled job kept for one day
    service, repo, _ = build_fake_service(clock=clock, retention=timedelta(days=1))
    job = service.submit(ANN, _echo()).job
    service.cancel(ANN, job.id)
    assert service.get(ANN, job.id).status is JobStatus.CANCELLED

    # When the retention has passed (the item may still be in the table)
    clock.advance(timedelta(days=1, seconds=5))

    # Then readers treat it as gone
    assert [j.id for j in repo.jobs] == [job.id]
    with pytest.raises(JobNotFound):
        service.get(ANN, job.id)


# ------------------------------------------------------------------------------ list


def _submit_many(service: JobService, owner: str, count: int) -> list[Job]:
    return [service.submit(owner, _echo({"i": i})).job for i in range(count)]


def test_list_is_newest_first_and_per_owner(fakes: Fakes) -> None:
    service, _, _ = fakes
    # Given jobs of ann and bob, interleaved in time
    ann_jobs = []
    for i in range(3):
        ann_jobs.append(service.submit(ANN, _echo({"i": i})).job)
        service.submit(BOB, _echo({"i": i}))

    # When ann lists her jobs
    page = service.list_jobs(ANN, JobFilter())

    # Then she sees only hers, newest first, on one page
    assert [job.id for job in page.items] == [job.id for job in reversed(ann_jobs)]
    assert page.next_cursor is None


def test_list_of_an_owner_without_jobs_is_empty(fakes: Fakes) -> None:
    service, _, _ = fakes
    service.submit(BOB, _echo())
    page = service.list_jobs(ANN, JobFilter())
    assert (page.items, page.next_cursor) == ([], None)


def test_list_filters_by_status_type_and_both(fakes: Fakes) -> None:
    service, _, _ = fakes
    # Given a queued echo, a cancelled echo and a queued sleep
    queued_echo = service.submit(ANN, _echo()).job
    cancelled_echo = service.cancel(ANN, service.submit(ANN, _echo()).job.id)
    queued_sleep = service.submit(
        ANN, SubmitRequest(type="sleep", payload={"seconds": 1})
    ).job

    def ids(job_filter: JobFilter) -> list[str]:
        return [job.id for job in service.list_jobs(ANN, job_filter).items]

    # Then each filter selects exactly its jobs, newest first
    assert ids(JobFilter(status=JobStatus.QUEUED)) == [queued_sleep.id, queued_echo.id]
    assert ids(JobFilter(status=JobStatus.CANCELLED)) == [cancelled_echo.id]
    assert ids(JobFilter(type="echo")) == [cancelled_echo.id, queued_echo.id]
    assert ids(JobFilter(status=JobStatus.QUEUED, type="echo")) == [queued_echo.id]
    assert ids(JobFilter(status=JobStatus.SUCCEEDED)) == []
    assert ids(JobFilter(type="http.request")) == []


def test_list_hides_expired_jobs(clock: FakeClock) -> None:
    # Given an old cancelled job past its retention and a fresh job
    service, _, _ = build_fake_service(clock=clock, retention=timedelta(days=1))
    old = service.submit(ANN, _echo()).job
    service.cancel(ANN, old.id)
    clock.advance(timedelta(days=2))
    fresh = service.submit(ANN, _echo()).job

    # When ann lists her jobs, then only the fresh one shows
    assert [job.id for job in service.list_jobs(ANN, JobFilter()).items] == [fresh.id]


@pytest.mark.parametrize(("count", "limit"), [(7, 3), (6, 3), (1, 1), (5, 100)])
def test_pagination_covers_every_job_exactly_once(
    fakes: Fakes, count: int, limit: int
) -> None:
    service, _, _ = fakes
    # Given ann's jobs and some of bob's
    jobs = _submit_many(service, ANN, count)
    _submit_many(service, BOB, 2)

    # When ann follows the cursors to the end
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = service.list_jobs(ANN, JobFilter(), limit=limit, cursor=cursor)
        pages += 1
        assert len(page.items) <= limit
        seen.extend(job.id for job in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break

    # Then she saw each of her jobs once, newest first (a full last page may need one more read)
    assert seen == [job.id for job in reversed(jobs)]
    assert pages == count // limit + 1


def test_a_tampered_cursor_is_rejected(fakes: Fakes) -> None:
    service, _, _ = fakes
    _submit_many(service, ANN, 3)
    cursor = service.list_jobs(ANN, JobFilter(), limit=1).next_cursor
    assert cursor is not None
    tampered = cursor[:-1] + ("A" if cursor[-1] != "A" else "B")

    with pytest.raises(InvalidCursor):
        service.list_jobs(ANN, JobFilter(), limit=1, cursor=tampered)
    with pytest.raises(InvalidCursor):
        service.list_jobs(ANN, JobFilter(), limit=1, cursor="garbage")


def test_a_cursor_only_works_for_its_owner_and_filter(fakes: Fakes) -> None:
    service, _, _ = fakes
    # Given a cursor from ann's unfiltered listing
    _submit_many(service, ANN, 3)
    cursor = service.list_jobs(ANN, JobFilter(), limit=1).next_cursor
    assert cursor is not None

    # Then bob cannot use it, nor can ann with another filter
    with pytest.raises(InvalidCursor):
        service.list_jobs(BOB, JobFilter(), limit=1, cursor=cursor)
    with pytest.raises(InvalidCursor):
        service.list_jobs(ANN, JobFilter(type="echo"), limit=1, cursor=cursor)
    with pytest.raises(InvalidCursor):
        service.list_jobs(
            ANN, JobFilter(status=JobStatus.QUEUED), limit=1, cursor=cursor
        )


@pytest.mark.parametrize("limit", [0, -1, 101])
def test_list_limit_outside_bounds_is_refused(fakes: Fakes, limit: int) -> None:
    service, _, _ = fakes
    with pytest.raises(ValueError, match="limit"):
        service.list_jobs(ANN, JobFilter(), limit=limit)


@pytest.mark.parametrize("limit", [1, 100])
def test_list_limit_bounds_are_accepted(fakes: Fakes, limit: int) -> None:
    service, _, _ = fakes
    jobs = _submit_many(service, ANN, 2)
    page = service.list_jobs(ANN, JobFilter(), limit=limit)
    assert [job.id for job in page.items] == [job.id for job in reversed(jobs)][:limit]


# ---------------------------------------------------------------------------- cancel


def test_cancel_a_queued_job(clock: FakeClock) -> None:
    # Given a queued job kept 30 days after it finishes
    service, repo, _ = build_fake_service(clock=clock, retention=timedelta(days=30))
    job = service.submit(ANN, _echo()).job

    # When ann cancels it
    cancelled = service.cancel(ANN, job.id)

    # Then it is cancelled now, finished, and expires after the retention
    finished_at = START + timedelta(seconds=1)
    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.finished_at == cancelled.updated_at == finished_at
    assert cancelled.expires_at == int((finished_at + timedelta(days=30)).timestamp())
    assert repo.jobs == [cancelled]


def test_cancel_twice_is_an_invalid_state(fakes: Fakes) -> None:
    service, _, _ = fakes
    job = service.submit(ANN, _echo()).job
    service.cancel(ANN, job.id)

    with pytest.raises(InvalidJobState) as caught:
        service.cancel(ANN, job.id)
    assert (caught.value.status, caught.value.action) == ("cancelled", "cancel")


@pytest.mark.parametrize(
    "status", [JobStatus.RUNNING, JobStatus.SUCCEEDED, JobStatus.FAILED]
)
def test_cancel_a_started_or_finished_job_is_an_invalid_state(
    fakes: Fakes, status: JobStatus
) -> None:
    service, repo, _ = fakes
    # Given a job that has left the queue
    job = service.submit(ANN, _echo()).job
    repo.put(job.model_copy(update={"status": status, "attempts": 1}))

    # When ann cancels it, then it is refused and nothing changes
    with pytest.raises(InvalidJobState) as caught:
        service.cancel(ANN, job.id)
    assert caught.value.status == status.value
    assert [j.status for j in repo.jobs] == [status]


@pytest.mark.parametrize("job_id", [UNKNOWN_ID, "nope"])
def test_cancel_unknown_job_is_not_found(fakes: Fakes, job_id: str) -> None:
    service, _, _ = fakes
    with pytest.raises(JobNotFound):
        service.cancel(ANN, job_id)


def test_cancel_another_owners_job_is_not_found(fakes: Fakes) -> None:
    service, repo, _ = fakes
    job = service.submit(BOB, _echo()).job

    with pytest.raises(JobNotFound):
        service.cancel(ANN, job.id)
    assert [j.status for j in repo.jobs] == [JobStatus.QUEUED]


def test_cancel_an_expired_job_is_not_found(clock: FakeClock) -> None:
    service, _, _ = build_fake_service(clock=clock, retention=timedelta(days=1))
    job = service.submit(ANN, _echo()).job
    service.cancel(ANN, job.id)
    clock.advance(timedelta(days=2))

    with pytest.raises(JobNotFound):
        service.cancel(ANN, job.id)


# ------------------------------------------------------------------------------- run


def test_run_claims_runs_and_records_success(clock: FakeClock) -> None:
    # Given a queued echo job
    service, repo, _ = build_fake_service(clock=clock, retention=timedelta(days=30))
    job = service.submit(ANN, _echo({"x": 1})).job

    # When the worker runs its message
    outcome = service.run(_message(job), _deadline())

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


def test_run_passes_the_attempt_to_the_handler() -> None:
    # Given a job type that records its context
    seen: list[JobContext] = []

    class Recorder(CountingHandler):
        def __call__(self, payload: Any, context: JobContext) -> Any:
            seen.append(context)
            return super().__call__(payload, context)

    service, _, _ = _with_handler(Recorder())
    job = service.submit(ANN, SubmitRequest(type="count", max_attempts=4)).job
    deadline = _deadline()

    # When it runs
    service.run(_message(job), deadline)

    # Then the handler saw the job, the attempt and the deadline
    assert seen == [
        JobContext(
            job_id=job.id,
            job_type="count",
            attempt=1,
            max_attempts=4,
            deadline=deadline,
        )
    ]


@pytest.mark.parametrize(
    "status",
    [JobStatus.RUNNING, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED],
)
def test_a_message_for_a_job_out_of_the_queue_runs_nothing(status: JobStatus) -> None:
    # Given a counting job already running, finished or cancelled
    handler = CountingHandler()
    service, repo, _ = _with_handler(handler)
    job = service.submit(ANN, SubmitRequest(type="count")).job
    stored = job.model_copy(update={"status": status, "attempts": 1})
    repo.put(stored)

    # When a (duplicate) message for it arrives
    outcome = service.run(_message(job), _deadline())

    # Then it is acknowledged, the handler never ran and the job is unchanged
    assert outcome is RunOutcome.DONE
    assert handler.calls == 0
    assert repo.jobs == [stored]


def test_a_duplicate_message_after_success_runs_nothing() -> None:
    handler = CountingHandler(result={"v": 1})
    service, repo, _ = _with_handler(handler)
    job = service.submit(ANN, SubmitRequest(type="count")).job
    assert service.run(_message(job), _deadline()) is RunOutcome.DONE
    done = repo.jobs

    # When the same message is delivered again
    outcome = service.run(_message(job), _deadline())

    # Then nothing runs twice
    assert outcome is RunOutcome.DONE
    assert handler.calls == 1
    assert repo.jobs == done


def test_a_cancelled_job_is_never_run() -> None:
    handler = CountingHandler()
    service, repo, queue = _with_handler(handler)
    job = service.submit(ANN, SubmitRequest(type="count")).job
    service.cancel(ANN, job.id)

    # When its message is delivered
    outcome = service.run(queue.sent[0].message, _deadline())

    # Then it stays cancelled and never ran
    assert outcome is RunOutcome.DONE
    assert handler.calls == 0
    assert [(j.status, j.attempts) for j in repo.jobs] == [(JobStatus.CANCELLED, 0)]


def test_a_message_with_another_owner_is_not_found() -> None:
    handler = CountingHandler()
    service, repo, _ = _with_handler(handler)
    job = service.submit(ANN, SubmitRequest(type="count")).job

    with pytest.raises(JobNotFound):
        service.run(_message(job, owner=BOB), _deadline())
    assert handler.calls == 0
    assert [(j.status, j.attempts) for j in repo.jobs] == [(JobStatus.QUEUED, 0)]


def test_a_message_for_an_unknown_job_is_not_found(fakes: Fakes) -> None:
    service, _, _ = fakes
    with pytest.raises(JobNotFound):
        service.run(
            JobMessage(job_id=UNKNOWN_ID, owner=ANN, job_type="echo"), _deadline()
        )


def test_a_failing_attempt_with_attempts_left_is_retried() -> None:
    # Given a job whose handler fails, with 3 attempts allowed
    handler = failing_handler("boom")
    service, repo, _ = _with_handler(handler)
    job = service.submit(ANN, SubmitRequest(type="count", max_attempts=3)).job

    # When its first attempt runs
    outcome = service.run(_message(job), _deadline())

    # Then the message is returned and the job is queued again with the error
    assert outcome is RunOutcome.RETRY
    [queued] = repo.jobs
    assert (queued.status, queued.attempts, queued.finished_at) == (
        JobStatus.QUEUED,
        1,
        None,
    )
    assert queued.error == JobError(type="JobHandlerError", message="boom")


def test_the_last_failing_attempt_fails_the_job() -> None:
    # Given a job whose handler always fails, with 2 attempts allowed
    handler = failing_handler("still broken")
    service, repo, _ = _with_handler(handler)
    job = service.submit(ANN, SubmitRequest(type="count", max_attempts=2)).job

    # When both attempts run
    outcomes = [service.run(_message(job), _deadline()) for _ in range(2)]

    # Then the first is retried, the second fails the job for good and is acknowledged
    assert outcomes == [RunOutcome.RETRY, RunOutcome.DONE]
    [failed] = repo.jobs
    assert (failed.status, failed.attempts, handler.calls) == (JobStatus.FAILED, 2, 2)
    assert failed.error == JobError(type="JobHandlerError", message="still broken")
    assert failed.finished_at is not None
    assert failed.expires_at is not None

    # And a further delivery runs nothing
    assert service.run(_message(job), _deadline()) is RunOutcome.DONE
    assert handler.calls == 2


def test_a_retry_succeeds_and_clears_the_error() -> None:
    class FlakyOnce(CountingHandler):
        def __call__(self, payload: Any, context: JobContext) -> Any:
            if context.attempt == 1:
                raise JobHandlerError("transient")
            return {"attempt": context.attempt}

    service, repo, _ = _with_handler(FlakyOnce())
    job = service.submit(ANN, SubmitRequest(type="count")).job

    outcomes = [service.run(_message(job), _deadline()) for _ in range(2)]

    assert outcomes == [RunOutcome.RETRY, RunOutcome.DONE]
    [done] = repo.jobs
    assert (done.status, done.attempts, done.result, done.error) == (
        JobStatus.SUCCEEDED,
        2,
        {"attempt": 2},
        None,
    )


def test_a_non_retryable_error_fails_the_job_at_once() -> None:
    handler = failing_handler("bad input", retryable=False)
    service, repo, _ = _with_handler(handler)
    job = service.submit(ANN, SubmitRequest(type="count", max_attempts=5)).job

    outcome = service.run(_message(job), _deadline())

    assert outcome is RunOutcome.DONE
    [failed] = repo.jobs
    assert (failed.status, failed.attempts) == (JobStatus.FAILED, 1)
    assert failed.error == JobError(type="JobHandlerError", message="bad input")


def test_a_crashing_handler_is_retried() -> None:
    handler = CountingHandler(error=RuntimeError("bug"))
    service, repo, _ = _with_handler(handler)
    job = service.submit(ANN, SubmitRequest(type="count", max_attempts=2)).job

    outcome = service.run(_message(job), _deadline())

    assert outcome is RunOutcome.RETRY
    [queued] = repo.jobs
    assert (queued.status, queued.error) == (
        JobStatus.QUEUED,
        JobError(type="RuntimeError", message="bug"),
    )


@pytest.mark.parametrize(
    ("result", "error_type"),
    [
        ({"when": object()}, "TypeError"),
        ({"x": float("nan")}, "ValueError"),
        ({"x": float("-inf")}, "ValueError"),
        ({"blob": "x" * 200}, "ResultTooLarge"),
    ],
    ids=["not-json", "nan", "infinity", "too-large"],
)
def test_a_result_that_cannot_be_stored_fails_the_job_at_once(
    result: Any, error_type: str
) -> None:
    # Given a handler returning a result that is not JSON or over the 100-byte limit
    handler = CountingHandler(result=result)
    service, repo, _ = _with_handler(handler, max_result_bytes=100)
    job = service.submit(ANN, SubmitRequest(type="count", max_attempts=5)).job

    # When it runs
    outcome = service.run(_message(job), _deadline())

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
    job = service.submit(ANN, _echo(payload)).job

    service.run(_message(job), _deadline())

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
                Change(values={"status": JobStatus.FAILED}),
                Expect(owner=ANN, status_in=frozenset({JobStatus.RUNNING})),
            )
            return {"late": True}

    handler = Interloper()
    service, repo, _ = _with_handler(handler)
    handler.repo = repo
    job = service.submit(ANN, SubmitRequest(type="count")).job

    # When the attempt finishes
    outcome = service.run(_message(job), _deadline())

    # Then the other writer's state stands
    assert outcome is RunOutcome.DONE
    [stored] = repo.jobs
    assert (stored.status, stored.result) == (JobStatus.FAILED, None)


def test_the_fake_repository_refuses_writes_whose_expectation_fails(
    fakes: Fakes,
) -> None:
    # The fake keeps the adapter's contract: a lost condition reports the current item
    service, repo, _ = fakes
    job = service.submit(ANN, _echo()).job
    wrong_owner = Expect(owner=BOB, status_in=frozenset({JobStatus.QUEUED}))
    wrong_attempts = Expect(
        owner=ANN, status_in=frozenset({JobStatus.QUEUED}), attempts=3
    )

    for expect in (wrong_owner, wrong_attempts):
        with pytest.raises(ConditionFailed) as caught:
            repo.update(job.id, Change(values={"status": JobStatus.RUNNING}), expect)
        assert caught.value.current == job
    with pytest.raises(ConditionFailed) as missing:
        repo.delete(UNKNOWN_ID, wrong_owner)
    assert missing.value.current is None
