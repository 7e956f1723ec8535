"""JobService over in-memory fakes: submit, idempotency, reads, listing, cancel, retry and run
(claim and lease, backoff, history, deadline, progress, cancellation of running jobs)."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from jobline.backoff import Backoff
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
    MAX_HISTORY,
    Attempt,
    Delivery,
    Job,
    JobError,
    JobFilter,
    JobMessage,
    JobStatus,
    Progress,
    SubmitRequest,
)
from jobline.registry import (
    JobCancelled,
    JobContext,
    JobHandlerError,
    PermanentJobError,
)
from jobline.service import JobService, RunOutcome
from jobline.transition import JobUpdate, Precondition
from structlog.testing import capture_logs

from tests.fakes import (
    START,
    AnyInput,
    CountingHandler,
    FakeClock,
    InMemoryJobQueue,
    InMemoryJobRepository,
    build_fake_service,
    build_registry,
    counting_job_type,
    failing_handler,
    job_type_of,
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


LEASE = START + timedelta(hours=1)
"""The default lease of a delivery: an invocation's deadline well after the fake clock."""
SEED = 0
"""`build_fake_service` draws backoff delays from `random.Random(SEED)`."""
WAIT_S = 10.0
"""Upper bound of every wait on a thread in this file; a healthy run never comes near it."""


def _delivery(
    job: Job | JobMessage,
    *,
    owner: str | None = None,
    lease_until: datetime = LEASE,
    deadline: float | None = None,
    request_id: str = "req-1",
    receipt_handle: str = "handle-1",
) -> Delivery:
    """A delivery of the job's message to a worker invocation."""
    message = job if isinstance(job, JobMessage) else _message(job, owner)
    return Delivery(
        message=message,
        handle=receipt_handle,
        request_id=request_id,
        lease_until=lease_until,
        deadline=_deadline() if deadline is None else deadline,
    )


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


def _with_type(
    handler: Callable[[AnyInput, JobContext], Any], name: str = "t", **kwargs: Any
) -> Fakes:
    return build_fake_service(build_registry([job_type_of(name, handler)]), **kwargs)


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
    "status",
    [
        JobStatus.SUCCEEDED,
        JobStatus.FAILED,
        JobStatus.DEAD_LETTERED,
        JobStatus.REJECTED,
    ],
)
def test_cancel_a_finished_job_is_an_invalid_state(
    fakes: Fakes, status: JobStatus
) -> None:
    service, repo, _ = fakes
    # Given a job that has finished
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
    service, repo, queue = build_fake_service(clock=clock, retention=timedelta(days=30))
    job = service.submit(ANN, _echo({"x": 1})).job

    # When the worker runs its message
    outcome = service.run(_delivery(job, request_id="req-1"))

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
        started_at=START + timedelta(seconds=1),
        finished_at=START + timedelta(seconds=2),
        error=None,
        request_id="req-1",
        duration_ms=entry.duration_ms,
    )
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

    service, repo, _ = _with_type(handler)
    repo_box.append(repo)
    job = service.submit(ANN, SubmitRequest(type="t", delay_seconds=30)).job
    assert job.run_after == START + timedelta(seconds=30)
    lease = START + timedelta(minutes=5)

    # When an invocation with that deadline runs it
    service.run(_delivery(job, lease_until=lease, request_id="req-7"))

    # Then while running, the job carried the invocation's lease and request id, no run_after
    [running] = seen
    assert running is not None
    assert (running.status, running.attempts) == (JobStatus.RUNNING, 1)
    assert (running.lease_until, running.attempt_request_id) == (lease, "req-7")
    assert running.run_after is None


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
    service.run(_delivery(job, deadline=deadline))

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
    service, repo, queue = _with_handler(handler)
    job = service.submit(ANN, SubmitRequest(type="count")).job
    stored = job.model_copy(update={"status": status, "attempts": 1})
    repo.put(stored)

    # When a (duplicate) message for it arrives
    outcome = service.run(_delivery(job))

    # Then it is acknowledged, the handler never ran and the job is unchanged
    assert outcome is RunOutcome.DONE
    assert handler.calls == 0
    assert repo.jobs == [stored]
    assert queue.visibility == []


def test_a_duplicate_message_after_success_runs_nothing() -> None:
    handler = CountingHandler(result={"v": 1})
    service, repo, _ = _with_handler(handler)
    job = service.submit(ANN, SubmitRequest(type="count")).job
    assert service.run(_delivery(job)) is RunOutcome.DONE
    done = repo.jobs

    # When the same message is delivered again
    outcome = service.run(_delivery(job))

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
    outcome = service.run(_delivery(queue.sent[0].message))

    # Then it stays cancelled and never ran
    assert outcome is RunOutcome.DONE
    assert handler.calls == 0
    assert [(j.status, j.attempts) for j in repo.jobs] == [(JobStatus.CANCELLED, 0)]


def test_a_message_with_another_owner_is_not_found() -> None:
    handler = CountingHandler()
    service, repo, _ = _with_handler(handler)
    job = service.submit(ANN, SubmitRequest(type="count")).job

    with pytest.raises(JobNotFound):
        service.run(_delivery(job, owner=BOB))
    assert handler.calls == 0
    assert [(j.status, j.attempts) for j in repo.jobs] == [(JobStatus.QUEUED, 0)]


def test_a_message_for_an_unknown_job_is_not_found(fakes: Fakes) -> None:
    service, _, _ = fakes
    with pytest.raises(JobNotFound):
        service.run(
            _delivery(JobMessage(job_id=UNKNOWN_ID, owner=ANN, job_type="echo"))
        )


def test_a_failing_attempt_with_attempts_left_is_retried_after_a_backoff() -> None:
    # Given a job whose handler fails, with 3 attempts allowed, and the default backoff
    handler = failing_handler("boom")
    service, repo, queue = _with_handler(handler)
    job = service.submit(ANN, SubmitRequest(type="count", max_attempts=3)).job

    # When its first attempt runs
    outcome = service.run(_delivery(job, receipt_handle="handle-a"))

    # Then the message is returned, hidden for the backoff of attempt 1 ...
    delay = Backoff().delay(1, random.Random(SEED))
    assert outcome is RunOutcome.RETRY
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
    service, repo, queue = _with_handler(handler)
    job = service.submit(ANN, SubmitRequest(type="count", max_attempts=2)).job

    # When both attempts run
    outcomes = [service.run(_delivery(job)) for _ in range(2)]

    # Then the first is retried, the second fails the job for good and is acknowledged
    assert outcomes == [RunOutcome.RETRY, RunOutcome.DONE]
    [failed] = repo.jobs
    assert (failed.status, failed.attempts, handler.calls) == (JobStatus.FAILED, 2, 2)
    assert failed.error == JobError(type="JobHandlerError", message="still broken")
    assert failed.finished_at is not None
    assert failed.expires_at is not None
    assert failed.run_after is None
    # And only the retried attempt's message was hidden for a backoff
    assert [handle for handle, _ in queue.visibility] == ["handle-1"]

    # And a further delivery runs nothing
    assert service.run(_delivery(job)) is RunOutcome.DONE
    assert handler.calls == 2


def test_a_retry_succeeds_and_clears_the_error() -> None:
    class FlakyOnce(CountingHandler):
        def __call__(self, payload: Any, context: JobContext) -> Any:
            if context.attempt == 1:
                raise JobHandlerError("transient")
            return {"attempt": context.attempt}

    service, repo, _ = _with_handler(FlakyOnce())
    job = service.submit(ANN, SubmitRequest(type="count")).job

    outcomes = [service.run(_delivery(job)) for _ in range(2)]

    assert outcomes == [RunOutcome.RETRY, RunOutcome.DONE]
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
    service, repo, queue = _with_handler(handler)
    job = service.submit(ANN, SubmitRequest(type="count", max_attempts=5)).job

    # When it runs
    outcome = service.run(_delivery(job))

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
    service, repo, _ = _with_handler(handler)
    job = service.submit(ANN, SubmitRequest(type="count", max_attempts=2)).job

    outcome = service.run(_delivery(job))

    assert outcome is RunOutcome.RETRY
    [queued] = repo.jobs
    assert (queued.status, queued.error) == (
        JobStatus.QUEUED,
        JobError(type="RuntimeError", message="bug"),
    )


@pytest.mark.parametrize(
    ("result", "error_type"),
    [
        ({"when": object()}, "InvalidResult"),
        ({"x": float("nan")}, "InvalidResult"),
        ({"x": float("-inf")}, "InvalidResult"),
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
    outcome = service.run(_delivery(job))

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

    service.run(_delivery(job))

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
    service, repo, _ = _with_handler(handler)
    handler.repo = repo
    job = service.submit(ANN, SubmitRequest(type="count")).job

    # When the attempt finishes
    outcome = service.run(_delivery(job))

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
    service, repo, queue = _with_handler(handler, backoff=backoff)
    job = service.submit(ANN, SubmitRequest(type="count", max_attempts=5)).job

    # When four attempts run
    outcomes = [service.run(_delivery(job)) for _ in range(4)]

    # Then each message was hidden for exactly the seeded draw of its attempt's backoff
    rng = random.Random(SEED)
    expected = [backoff.delay(attempt, rng) for attempt in (1, 2, 3, 4)]
    assert outcomes == [RunOutcome.RETRY] * 4
    assert queue.visibility == [("handle-1", delay) for delay in expected]
    # And each is at least a second and within its ceiling (10, 20, 40, then capped at 100)
    assert all(
        1 <= delay <= ceiling
        for delay, ceiling in zip(expected, [10, 20, 40, 100], strict=True)
    )
    [queued] = repo.jobs
    assert queued.run_after == START + timedelta(seconds=expected[-1])


def test_a_job_type_can_override_the_backoff() -> None:
    # Given a deployment backoff of at most 1 s, and a job type that waits 4000..5000 s
    own = Backoff(base_s=5000, cap_s=5000, floor_s=4000)
    failing = job_type_of("slow-retry", failing_handler("later"), backoff=own)
    service, _, queue = build_fake_service(
        build_registry([failing]), backoff=Backoff(base_s=1, cap_s=1)
    )
    job = service.submit(ANN, SubmitRequest(type="slow-retry")).job

    # When its attempt fails
    assert service.run(_delivery(job)) is RunOutcome.RETRY

    # Then the message is hidden for the job type's backoff
    delay = own.delay(1, random.Random(SEED))
    assert 4000 <= delay <= 5000
    assert queue.visibility == [("handle-1", delay)]


def test_a_queue_outage_while_hiding_the_message_still_queues_the_job() -> None:
    # Given a failing job and an SQS outage
    service, repo, queue = _with_handler(failing_handler("boom"))
    job = service.submit(ANN, SubmitRequest(type="count")).job
    queue.fail_with = "ServiceUnavailable"

    # When its attempt fails
    with capture_logs() as logs:
        outcome = service.run(_delivery(job))

    # Then the message still goes back (with the queue's own visibility timeout) and the job
    # is queued for the next attempt
    assert outcome is RunOutcome.RETRY
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

    service, repo, _ = _with_handler(FlakyOnce(), clock=clock)
    job = service.submit(ANN, SubmitRequest(type="count")).job

    # When two invocations run it
    service.run(_delivery(job, request_id="req-a"))
    service.run(_delivery(job, request_id="req-b"))

    # Then the history has one entry per attempt: times, error, request id and duration
    [done] = repo.jobs
    at = [START + timedelta(seconds=s) for s in range(5)]
    first, second = done.history
    assert first == Attempt(
        attempt=1,
        started_at=at[1],
        finished_at=at[2],
        error=JobError(type="JobHandlerError", message="transient"),
        request_id="req-a",
        duration_ms=first.duration_ms,
    )
    assert second == Attempt(
        attempt=2,
        started_at=at[3],
        finished_at=at[4],
        error=None,
        request_id="req-b",
        duration_ms=second.duration_ms,
    )
    assert all(
        isinstance(entry.duration_ms, int) and entry.duration_ms >= 0
        for entry in done.history
    )


# --------------------------------------------------------------------------- leases


def _running(
    service: JobService,
    repo: InMemoryJobRepository,
    *,
    lease_until: datetime | None,
    attempts: int = 1,
    max_attempts: int = 3,
    **fields: Any,
) -> Job:
    """A job some invocation claimed (attempt `attempts`, request `req-other`) and holds."""
    job = service.submit(
        ANN, SubmitRequest(type="count", max_attempts=max_attempts)
    ).job
    running = job.model_copy(
        update={
            "status": JobStatus.RUNNING,
            "attempts": attempts,
            "started_at": START - timedelta(minutes=10),
            "lease_until": lease_until,
            "attempt_request_id": "req-other",
            "run_after": None,
            **fields,
        }
    )
    repo.put(running)
    return running


def test_a_delivery_while_another_invocation_holds_the_lease_comes_back_later() -> None:
    # Given a job another invocation is running, its lease live for 30 more seconds
    handler = CountingHandler()
    service, repo, queue = _with_handler(handler)
    held = _running(service, repo, lease_until=START + timedelta(seconds=30))

    # When a duplicate delivery of its message arrives
    outcome = service.run(_delivery(held, receipt_handle="handle-dup"))

    # Then it never runs and never fails the job: the message comes back once the lease ends
    assert outcome is RunOutcome.RETRY
    assert handler.calls == 0
    assert repo.jobs == [held]
    assert queue.visibility == [("handle-dup", 31)]


def test_a_delivery_after_the_lease_ended_reclaims_and_runs_the_job() -> None:
    # Given a job whose worker died: running, its lease ended a second ago
    handler = CountingHandler(result={"second": "try"})
    service, repo, _ = _with_handler(handler)
    lost = _running(service, repo, lease_until=START - timedelta(seconds=1))

    # When the next delivery arrives
    outcome = service.run(_delivery(lost, request_id="req-new"))

    # Then the job runs again as attempt 2 and succeeds
    assert outcome is RunOutcome.DONE
    assert handler.calls == 1
    [done] = repo.jobs
    assert (done.status, done.attempts, done.result) == (
        JobStatus.SUCCEEDED,
        2,
        {"second": "try"},
    )
    # And the history shows the lost attempt, then the one that ran
    worker_lost, ran = done.history
    assert worker_lost == Attempt(
        attempt=1,
        started_at=START - timedelta(minutes=10),
        finished_at=None,
        error=JobError(
            type="WorkerLost",
            message="the worker stopped (crash, timeout or out of memory) before "
            "recording an outcome",
        ),
        request_id="req-other",
        duration_ms=None,
    )
    assert (ran.attempt, ran.error, ran.request_id) == (2, None, "req-new")


def test_a_running_job_without_a_lease_is_reclaimed() -> None:
    # Given a running job with no lease at all (claimed by a worker before leases existed)
    handler = CountingHandler()
    service, repo, _ = _with_handler(handler)
    old = _running(service, repo, lease_until=None)

    # When its message is delivered, then it runs again
    assert service.run(_delivery(old)) is RunOutcome.DONE
    assert handler.calls == 1
    assert [(j.status, j.attempts) for j in repo.jobs] == [(JobStatus.SUCCEEDED, 2)]


def test_a_job_whose_attempts_were_used_up_by_dead_workers_fails() -> None:
    # Given a job on its last attempt (3 of 3) whose worker died
    handler = CountingHandler()
    clock = FakeClock()
    service, repo, queue = _with_handler(handler, clock=clock)
    lost = _running(
        service,
        repo,
        lease_until=START - timedelta(seconds=1),
        attempts=3,
        max_attempts=3,
    )

    # When the next delivery arrives
    outcome = service.run(_delivery(lost))

    # Then the handler does not run again and the job fails with WorkerLost
    assert outcome is RunOutcome.DONE
    assert handler.calls == 0
    [failed] = repo.jobs
    assert (failed.status, failed.attempts) == (JobStatus.FAILED, 3)
    assert failed.error == JobError(
        type="WorkerLost",
        message="attempt 3 of 3 ended without an outcome (crash, timeout or out of "
        "memory) and no attempts are left",
    )
    assert (failed.finished_at, failed.lease_until) == (START, None)
    assert failed.expires_at == int((START + timedelta(days=30)).timestamp())
    assert [(e.attempt, e.error and e.error.type) for e in failed.history] == [
        (3, "WorkerLost")
    ]
    assert queue.visibility == []


class WorkerCrash(BaseException):
    """Not an Exception: what a killed worker looks like from inside the process."""


def test_every_attempt_lost_to_a_crash_is_in_the_history() -> None:
    # Given a job with 2 attempts whose handler takes the whole worker down, every time
    clock = FakeClock()
    handler = CountingHandler(error=None)

    def crash(payload: AnyInput, context: JobContext) -> Any:
        handler(payload, context)
        raise WorkerCrash()

    service, repo, _ = build_fake_service(
        build_registry([job_type_of("crash", crash)]), clock=clock
    )
    job = service.submit(ANN, SubmitRequest(type="crash", max_attempts=2)).job

    # When two invocations die mid-job, each after its lease, and a third delivery arrives
    for request_id in ("req-1", "req-2"):
        with pytest.raises(WorkerCrash):
            service.run(
                _delivery(
                    job,
                    request_id=request_id,
                    lease_until=clock.now + timedelta(seconds=10),
                )
            )
        clock.advance(timedelta(seconds=11))
    outcome = service.run(_delivery(job, request_id="req-3"))

    # Then the job failed, and each lost attempt has its entry
    assert outcome is RunOutcome.DONE
    assert handler.calls == 2
    [failed] = repo.jobs
    assert (failed.status, failed.attempts) == (JobStatus.FAILED, 2)
    assert [
        (e.attempt, e.request_id, e.error and e.error.type) for e in failed.history
    ] == [(1, "req-1", "WorkerLost"), (2, "req-2", "WorkerLost")]


# ------------------------------------------------------------------------- deadline


class Blocking:
    """A handler that blocks until released, then reports progress and returns."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.returned = threading.Event()
        self.contexts: list[JobContext] = []

    def __call__(self, payload: AnyInput, context: JobContext) -> Any:
        self.contexts.append(context)
        try:
            self.release.wait(WAIT_S)
            context.report_progress(99.0, "too late")
            return {"late": True}
        finally:
            self.returned.set()


def test_a_handler_still_running_at_the_deadline_is_stopped_and_retried() -> None:
    # Given a job whose handler blocks past the attempt's deadline (0.2 s away)
    handler = Blocking()
    service, repo, queue = build_fake_service(
        build_registry([job_type_of("block", handler)]), progress_interval_s=0
    )
    job = service.submit(ANN, SubmitRequest(type="block", max_attempts=2)).job

    try:
        # When it runs
        outcome = service.run(_delivery(job, deadline=time.monotonic() + 0.2))

        # Then the attempt is recorded as timed out and retried after a backoff
        assert outcome is RunOutcome.RETRY
        [queued] = repo.jobs
        error = JobError(
            type="DeadlineExceeded",
            message="the attempt was stopped before the Lambda deadline",
        )
        assert (queued.status, queued.attempts, queued.error) == (
            JobStatus.QUEUED,
            1,
            error,
        )
        assert [entry.error for entry in queued.history] == [error]
        delay = Backoff().delay(1, random.Random(SEED))
        assert queue.visibility == [("handle-1", delay)]
        # And the handler was told to stop
        [context] = handler.contexts
        assert context.stop_event.is_set()
        assert context.cancel_requested() is True
        writes = len(repo.writes)
    finally:
        handler.release.set()

    # When the abandoned handler finally reports progress and returns
    assert handler.returned.wait(WAIT_S)

    # Then nothing it did reached the job
    assert repo.jobs == [queued]
    assert len(repo.writes) == writes


def test_a_timed_out_last_attempt_fails_the_job() -> None:
    handler = Blocking()
    service, repo, queue = build_fake_service(
        build_registry([job_type_of("block", handler)])
    )
    job = service.submit(ANN, SubmitRequest(type="block", max_attempts=1)).job
    try:
        outcome = service.run(_delivery(job, deadline=time.monotonic() + 0.1))
    finally:
        handler.release.set()
    assert handler.returned.wait(WAIT_S)

    assert outcome is RunOutcome.DONE
    [failed] = repo.jobs
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert failed.error.type == "DeadlineExceeded"
    assert queue.visibility == []


# ------------------------------------------------------------------------- progress


def test_progress_writes_are_throttled_and_the_latest_report_is_kept() -> None:
    # Given a handler that reports progress 1000 times in a tight loop, and one write per hour
    def chatty(payload: AnyInput, context: JobContext) -> Any:
        for step in range(1000):
            context.report_progress(step / 10, f"step {step}")
        return {"steps": 1000}

    service, repo, _ = build_fake_service(
        build_registry([job_type_of("chatty", chatty)]), progress_interval_s=3600
    )
    job = service.submit(ANN, SubmitRequest(type="chatty")).job

    # When it runs
    assert service.run(_delivery(job)) is RunOutcome.DONE

    # Then one progress write happened (the first report), besides the claim and the outcome
    progress_writes = [
        change.values["progress"]
        for _, change in repo.writes
        if set(change.values) == {"progress"}
    ]
    assert progress_writes == [
        Progress(percent=0.0, message="step 0", updated_at=START)
    ]
    assert len(repo.writes) == 3
    # And the outcome write carried the latest report
    [done] = repo.jobs
    assert done.status is JobStatus.SUCCEEDED
    assert done.progress == Progress(percent=99.9, message="step 999", updated_at=START)


def test_progress_of_a_failed_attempt_is_kept_and_cleared_by_the_next_claim() -> None:
    # Given a handler that reports half way, then fails once
    def half_then_fail(payload: AnyInput, context: JobContext) -> Any:
        if context.attempt == 1:
            context.report_progress(50, "half")
            raise JobHandlerError("lost the connection")
        return {}

    service, repo, _ = build_fake_service(
        build_registry([job_type_of("half", half_then_fail)])
    )
    job = service.submit(ANN, SubmitRequest(type="half")).job

    # When the first attempt fails, then the queued job shows how far it got
    assert service.run(_delivery(job)) is RunOutcome.RETRY
    [queued] = repo.jobs
    assert queued.progress == Progress(percent=50, message="half", updated_at=START)

    # When the second attempt succeeds without reporting, then no stale progress is left
    assert service.run(_delivery(job)) is RunOutcome.DONE
    [done] = repo.jobs
    assert (done.status, done.progress) == (JobStatus.SUCCEEDED, None)


def test_cancellation_reads_are_throttled() -> None:
    # Given a handler that asks 1000 times whether it was cancelled, and one read per hour
    answers: list[bool] = []

    def curious(payload: AnyInput, context: JobContext) -> Any:
        answers.extend(context.cancel_requested() for _ in range(1000))
        return {}

    service, repo, _ = build_fake_service(
        build_registry([job_type_of("curious", curious)]), progress_interval_s=3600
    )
    job = service.submit(ANN, SubmitRequest(type="curious")).job
    reads = repo.reads

    # When it runs
    service.run(_delivery(job))

    # Then the job was read once, and never seen cancelled
    assert repo.reads - reads == 1
    assert answers == [False] * 1000


# --------------------------------------------------------------------------- cancel


def test_cancel_of_a_running_job_records_the_request() -> None:
    # Given a running job
    clock = FakeClock(step=timedelta(seconds=1))
    service, repo, _ = _with_handler(CountingHandler(), clock=clock)
    running = _running(service, repo, lease_until=START + timedelta(minutes=5))

    # When ann cancels it
    requested = service.cancel(ANN, running.id)

    # Then it keeps running with the request recorded (the API answers 202)
    now = START + timedelta(seconds=1)
    assert requested == running.model_copy(
        update={"cancel_requested_at": now, "updated_at": now}
    )
    assert repo.jobs == [requested]


def test_a_handler_that_sees_the_cancel_request_ends_the_job_cancelled() -> None:
    # Given a handler that, half way, is cancelled through the service (as by the API), then
    # reaches a checkpoint
    world: dict[str, Any] = {}

    def cooperative(payload: AnyInput, context: JobContext) -> Any:
        context.report_progress(10, "started")
        requested = world["service"].cancel(ANN, context.job_id)
        world["requested"] = requested
        context.report_progress(50, "half")
        context.raise_if_cancelled()
        return {"finished": True}

    service, repo, queue = build_fake_service(
        build_registry([job_type_of("t", cooperative)]), progress_interval_s=0
    )
    world["service"] = service
    job = service.submit(ANN, SubmitRequest(type="t", max_attempts=3)).job

    # When it runs
    outcome = service.run(_delivery(job))

    # Then the cancel was accepted while running, with the request recorded ...
    assert world["requested"].status is JobStatus.RUNNING
    assert world["requested"].cancel_requested_at == START
    # ... and the job ended cancelled at the checkpoint, keeping its last progress
    assert outcome is RunOutcome.DONE
    [cancelled] = repo.jobs
    assert (cancelled.status, cancelled.result, cancelled.attempts) == (
        JobStatus.CANCELLED,
        None,
        1,
    )
    assert cancelled.error == JobError(
        type="JobCancelled", message=f"job {job.id} was cancelled"
    )
    assert cancelled.progress == Progress(percent=50, message="half", updated_at=START)
    assert cancelled.cancel_requested_at == START
    assert (cancelled.finished_at, cancelled.lease_until) == (START, None)
    assert cancelled.expires_at == int((START + timedelta(days=30)).timestamp())
    assert [entry.error for entry in cancelled.history] == [cancelled.error]
    assert queue.visibility == []


def test_a_progress_write_answers_the_cancellation_check() -> None:
    # Given a handler cancelled half way that reports progress, then checks
    world: dict[str, Any] = {}

    def cooperative(payload: AnyInput, context: JobContext) -> Any:
        world["service"].cancel(ANN, context.job_id)
        reads = world["repo"].reads
        context.report_progress(50, "half")
        world["seen"] = context.cancel_requested()
        world["reads"] = world["repo"].reads - reads
        if world["seen"]:
            raise JobCancelled("stopping")
        return {}

    service, repo, _ = build_fake_service(
        build_registry([job_type_of("t", cooperative)]), progress_interval_s=0
    )
    world.update(service=service, repo=repo)
    job = service.submit(ANN, SubmitRequest(type="t")).job

    # When it runs
    service.run(_delivery(job))

    # Then the check was answered by the progress write, without a read of its own
    assert (world["seen"], world["reads"]) == (True, 0)
    [cancelled] = repo.jobs
    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.error == JobError(type="JobCancelled", message="stopping")


def test_a_cancel_requested_before_a_reclaim_ends_the_job_without_running_it() -> None:
    # Given a running job whose cancel was requested, then whose worker died
    handler = CountingHandler()
    service, repo, queue = _with_handler(handler)
    lost = _running(service, repo, lease_until=START + timedelta(seconds=30))
    service.cancel(ANN, lost.id)
    dead = repo.jobs[0].model_copy(update={"lease_until": START - timedelta(seconds=1)})
    repo.put(dead)

    # When the next delivery reclaims it
    outcome = service.run(_delivery(lost, request_id="req-new"))

    # Then it ends cancelled without the handler running again
    assert outcome is RunOutcome.DONE
    assert handler.calls == 0
    [cancelled] = repo.jobs
    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.error == JobError(
        type="JobCancelled",
        message="cancellation was requested before the attempt started",
    )
    assert [
        (e.attempt, e.request_id, e.error and e.error.type) for e in cancelled.history
    ] == [(1, "req-other", "WorkerLost"), (2, "req-new", "JobCancelled")]
    assert queue.visibility == []


def test_a_cancel_requested_during_a_failing_attempt_stops_the_retry() -> None:
    # Given a handler that is cancelled while running but fails without checking
    world: dict[str, Any] = {}
    handler = CountingHandler()

    def oblivious(payload: AnyInput, context: JobContext) -> Any:
        handler(payload, context)
        world["service"].cancel(ANN, context.job_id)
        raise JobHandlerError("timeout talking to the database")

    service, repo, _ = build_fake_service(build_registry([job_type_of("t", oblivious)]))
    world["service"] = service
    job = service.submit(ANN, SubmitRequest(type="t", max_attempts=3)).job

    # When the attempt fails, the job is queued for a retry with the request kept
    assert service.run(_delivery(job)) is RunOutcome.RETRY
    assert repo.jobs[0].cancel_requested_at == START

    # When the retry is delivered, then it ends cancelled without running again
    assert service.run(_delivery(job)) is RunOutcome.DONE
    assert handler.calls == 1
    assert [(j.status, j.attempts) for j in repo.jobs] == [(JobStatus.CANCELLED, 2)]


# ---------------------------------------------------------------------------- retry


def _finished(
    service: JobService, repo: InMemoryJobRepository, status: JobStatus
) -> Job:
    """A job of ann (type `count`, one attempt allowed) that ended `status`: failed by its
    handler, dead-lettered before running, or cancelled while queued."""
    job = service.submit(ANN, SubmitRequest(type="count", max_attempts=1)).job
    if status is JobStatus.CANCELLED:
        return service.cancel(ANN, job.id)
    if status is JobStatus.DEAD_LETTERED:
        dead = service.dead_letter(_message(job), receive_count=25)
        assert dead is not None
        return dead
    assert service.run(_delivery(job)) is RunOutcome.DONE
    failed = service.get(ANN, job.id)
    assert failed.status is JobStatus.FAILED
    return failed


@pytest.mark.parametrize(
    "status", [JobStatus.FAILED, JobStatus.DEAD_LETTERED, JobStatus.CANCELLED]
)
def test_retry_requeues_with_a_fresh_budget_and_keeps_the_history(
    status: JobStatus,
) -> None:
    # Given a job that ended failed, dead-lettered or cancelled
    clock = FakeClock(step=timedelta(seconds=1))
    handler = failing_handler("broken", retryable=False)
    service, repo, queue = _with_handler(handler, clock=clock)
    finished = _finished(service, repo, status)
    sent = len(queue.sent)

    # When ann retries it
    retried = service.retry(ANN, finished.id)

    # Then it is queued again with no attempts, error, result or end, and its history kept
    now = clock.now - timedelta(seconds=1)
    assert retried == finished.model_copy(
        update={
            "status": JobStatus.QUEUED,
            "attempts": 0,
            "error": None,
            "result": None,
            "progress": None,
            "finished_at": None,
            "expires_at": None,
            "cancel_requested_at": None,
            "lease_until": None,
            "run_after": now,
            "updated_at": now,
        }
    )
    assert repo.jobs == [retried]
    # And a new message for it was sent
    assert [(s.message, s.delay_seconds) for s in queue.sent[sent:]] == [
        (JobMessage(job_id=finished.id, owner=ANN, job_type="count"), 0)
    ]

    # When that message is delivered and the handler now works
    handler.error = None
    assert service.run(_delivery(retried, request_id="req-retry")) is RunOutcome.DONE

    # Then the job succeeds on attempt 1 of its fresh budget, after the old attempts
    [done] = repo.jobs
    assert (done.status, done.attempts) == (JobStatus.SUCCEEDED, 1)
    assert done.history == (
        *finished.history,
        done.history[-1],
    )
    assert (done.history[-1].attempt, done.history[-1].request_id) == (1, "req-retry")


@pytest.mark.parametrize(
    "status",
    [JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SUCCEEDED, JobStatus.REJECTED],
)
def test_retry_of_a_job_in_any_other_state_is_an_invalid_state(
    status: JobStatus,
) -> None:
    # Given a job that is queued, running, succeeded or rejected
    service, repo, queue = _with_handler(CountingHandler())
    job = service.submit(ANN, SubmitRequest(type="count")).job
    stored = job.model_copy(update={"status": status})
    repo.put(stored)

    # When ann retries it, then it is refused and nothing changes
    with pytest.raises(InvalidJobState) as caught:
        service.retry(ANN, job.id)
    assert (caught.value.status, caught.value.action) == (status.value, "retry")
    assert repo.jobs == [stored]
    assert len(queue.sent) == 1


@pytest.mark.parametrize("job_id", [UNKNOWN_ID, "nope"])
def test_retry_of_an_unknown_job_is_not_found(fakes: Fakes, job_id: str) -> None:
    service, _, _ = fakes
    with pytest.raises(JobNotFound):
        service.retry(ANN, job_id)


def test_retry_of_another_owners_job_is_not_found(fakes: Fakes) -> None:
    service, repo, _ = fakes
    job = service.cancel(BOB, service.submit(BOB, _echo()).job.id)
    with pytest.raises(JobNotFound):
        service.retry(ANN, job.id)
    assert repo.jobs == [job]


def test_retry_after_the_history_limit_is_refused(fakes: Fakes) -> None:
    # Given a failed job that already made MAX_HISTORY attempts
    service, repo, _ = fakes
    job = service.submit(ANN, _echo()).job
    entry = Attempt(attempt=1, started_at=START, finished_at=START)
    failed = job.model_copy(
        update={"status": JobStatus.FAILED, "history": (entry,) * MAX_HISTORY}
    )
    repo.put(failed)

    # When ann retries it, then it is refused
    with pytest.raises(InvalidJobState):
        service.retry(ANN, job.id)
    assert repo.jobs == [failed]


@pytest.mark.parametrize(
    "status", [JobStatus.FAILED, JobStatus.DEAD_LETTERED, JobStatus.CANCELLED]
)
def test_a_retry_whose_message_cannot_be_sent_restores_the_job(
    status: JobStatus,
) -> None:
    # Given a finished job, and an SQS outage
    clock = FakeClock(step=timedelta(seconds=1))
    service, repo, queue = _with_handler(
        failing_handler("no", retryable=False), clock=clock
    )
    finished = _finished(service, repo, status)
    queue.fail_with = "ServiceUnavailable"

    # When ann retries it
    with pytest.raises(QueueUnavailable):
        service.retry(ANN, finished.id)

    # Then the job is back as it was (only updated_at moved), not queued without a message
    [restored] = repo.jobs
    assert restored == finished.model_copy(update={"updated_at": restored.updated_at})


def test_a_retry_of_a_job_cancelled_while_running_restores_the_request_too() -> None:
    # Given a job that ended cancelled after its cancel was requested while running
    handler = CountingHandler()
    service, repo, queue = _with_handler(handler)
    lost = _running(service, repo, lease_until=START + timedelta(seconds=30))
    service.cancel(ANN, lost.id)
    repo.put(
        repo.jobs[0].model_copy(update={"lease_until": START - timedelta(seconds=1)})
    )
    service.run(_delivery(lost, request_id="req-new"))
    [cancelled] = repo.jobs
    assert cancelled.cancel_requested_at is not None
    queue.fail_with = "ServiceUnavailable"

    # When its retry cannot be enqueued
    with pytest.raises(QueueUnavailable):
        service.retry(ANN, cancelled.id)

    # Then it is restored exactly, the request included
    assert repo.jobs == [cancelled]


# ------------------------------------------------------------------------ run_after


@pytest.mark.parametrize("delay", [0, 30, 900])
def test_run_after_is_when_the_first_delivery_is_due(fakes: Fakes, delay: int) -> None:
    service, _, queue = fakes
    job = service.submit(ANN, _echo(delay_seconds=delay)).job
    assert (job.status, job.run_after) == (
        JobStatus.QUEUED,
        START + timedelta(seconds=delay),
    )
    assert queue.sent[0].delay_seconds == delay


def test_the_fake_repository_refuses_writes_whose_expectation_fails(
    fakes: Fakes,
) -> None:
    # The fake keeps the adapter's contract: a lost condition reports the current item
    service, repo, _ = fakes
    job = service.submit(ANN, _echo()).job
    wrong_owner = Precondition(owner=BOB, status_in=frozenset({JobStatus.QUEUED}))
    wrong_attempts = Precondition(
        owner=ANN, status_in=frozenset({JobStatus.QUEUED}), attempts=3
    )

    for expect in (wrong_owner, wrong_attempts):
        with pytest.raises(ConditionFailed) as caught:
            repo.update(job.id, JobUpdate(status=JobStatus.RUNNING), expect)
        assert caught.value.current == job
    with pytest.raises(ConditionFailed) as missing:
        repo.delete(UNKNOWN_ID, wrong_owner)
    assert missing.value.current is None
