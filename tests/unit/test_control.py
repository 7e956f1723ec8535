"""Control: cancelling a queued job, retrying a failed, dead-lettered or cancelled one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from jobline.bootstrap import build_service
from jobline.errors import InvalidJobState, JobNotFound
from jobline.limits import MAX_HISTORY
from jobline.models import Attempt, Job, JobMessage, JobStatus, SubmitRequest
from jobline.service import JobService, RunOutcome
from jobline.transition import JobUpdate, Precondition

from tests.support.builders import (
    ANN,
    BOB,
    UNKNOWN_ID,
    Fakes,
    delivery_of,
    echo_request,
    finished_job,
    running_job,
    with_handler,
)
from tests.support.fakes import (
    START,
    CountingHandler,
    FakeClock,
    InMemoryJobQueue,
    InMemoryJobRepository,
    counting_job_type,
    failing_handler,
)
from tests.support.services import build_fake_service, build_registry, fake_options

# ---------------------------------------------------------------------------- cancel


def test_cancel_a_queued_job(clock: FakeClock) -> None:
    # Given a queued job kept 30 days after it finishes
    service, repo, _ = build_fake_service(clock=clock, retention=timedelta(days=30))
    job = service.submit(ANN, echo_request()).job

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
    job = service.submit(ANN, echo_request()).job
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
    job = service.submit(ANN, echo_request()).job
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
    job = service.submit(BOB, echo_request()).job

    with pytest.raises(JobNotFound):
        service.cancel(ANN, job.id)
    assert [j.status for j in repo.jobs] == [JobStatus.QUEUED]


def test_cancel_an_expired_job_is_not_found(clock: FakeClock) -> None:
    service, _, _ = build_fake_service(clock=clock, retention=timedelta(days=1))
    job = service.submit(ANN, echo_request()).job
    service.cancel(ANN, job.id)
    clock.advance(timedelta(days=2))

    with pytest.raises(JobNotFound):
        service.cancel(ANN, job.id)


# ---------------------------------------------------------------------------- retry
@pytest.mark.parametrize(
    "status", [JobStatus.FAILED, JobStatus.DEAD_LETTERED, JobStatus.CANCELLED]
)
def test_retry_requeues_with_a_fresh_budget_and_keeps_the_history(
    status: JobStatus,
) -> None:
    # Given a job that ended failed, dead-lettered or cancelled
    clock = FakeClock(step=timedelta(seconds=1))
    handler = failing_handler("broken", retryable=False)
    service, repo, queue = with_handler(handler, clock=clock)
    finished = finished_job(service, repo, status)
    sent = len(queue.sent)

    # When ann retries it
    retried = service.retry(ANN, finished.id)

    # Then it is queued again with no attempts, error, result or end, and its history kept
    now = clock.now - timedelta(seconds=1)
    [token] = retried.control_tokens[len(finished.control_tokens) :]
    assert retried == finished.model_copy(
        update={
            "status": JobStatus.QUEUED,
            "run": finished.run + 1,
            "control_tokens": (*finished.control_tokens, token),
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
            "dispatch": int(now.timestamp() * 1000),
        }
    )
    assert repo.jobs == [retried]
    # And a new message for it was sent
    assert [(s.message, s.delay_seconds) for s in queue.sent[sent:]] == [
        (JobMessage(job_id=finished.id, owner=ANN, job_type="count", run=2), 0)
    ]

    # When that message is delivered and the handler now works
    handler.error = None
    assert service.run(delivery_of(retried, request_id="req-retry")) is RunOutcome.DONE

    # Then the job succeeds on attempt 1 of its fresh budget, after the old attempts
    [done] = repo.jobs
    assert (done.status, done.attempts) == (JobStatus.SUCCEEDED, 1)
    assert done.history == (
        *finished.history,
        done.history[-1],
    )
    assert (done.history[-1].attempt, done.history[-1].request_id) == (1, "req-retry")
    # And it is numbered as attempt 1 of run 2, after the first run's
    assert [(e.run, e.attempt) for e in finished.history] == [
        (1, n) for n in range(1, len(finished.history) + 1)
    ]
    assert (done.run, done.history[-1].run) == (2, 2)


@pytest.mark.parametrize(
    "status",
    [JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SUCCEEDED, JobStatus.REJECTED],
)
def test_retry_of_a_job_in_any_other_state_is_an_invalid_state(
    status: JobStatus,
) -> None:
    # Given a job that is queued, running, succeeded or rejected
    service, repo, queue = with_handler(CountingHandler())
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
    job = service.cancel(BOB, service.submit(BOB, echo_request()).job.id)
    with pytest.raises(JobNotFound):
        service.retry(ANN, job.id)
    assert repo.jobs == [job]


def test_retry_after_the_history_limit_is_refused(fakes: Fakes) -> None:
    # Given a failed job that already made MAX_HISTORY attempts
    service, repo, _ = fakes
    job = service.submit(ANN, echo_request()).job
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
def test_a_retry_during_a_queue_outage_is_queued_and_its_message_sent_later(
    status: JobStatus,
) -> None:
    # Given a finished job, and an SQS outage
    clock = FakeClock(step=timedelta(seconds=1))
    service, repo, queue = with_handler(
        failing_handler("no", retryable=False), clock=clock
    )
    finished = finished_job(service, repo, status)
    sent = len(queue.sent)
    queue.fail_with = "ServiceUnavailable"

    # When ann retries it, then the one write of the retry succeeds: the job is queued
    retried = service.retry(ANN, finished.id)
    assert retried.status is JobStatus.QUEUED
    assert len(queue.sent) == sent
    assert [job.id for job in repo.stream.undelivered] == [finished.id]

    # When the queue is back and the stream hands the write over again, its message is sent
    queue.fail_with = None
    assert repo.stream.redeliver() == 1
    assert [s.message.job_id for s in queue.sent[sent:]] == [finished.id]


# ------------------------------------------------------- deciding on the state it finds
class _Meanwhile:
    """A repository where `step` happens once, just before the first conditional write:
    another actor's write landing between a control's read and its write."""

    def __init__(self, inner: InMemoryJobRepository, step: Callable[[], None]) -> None:
        self.inner = inner
        self.step: Callable[[], None] | None = step

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def update(
        self,
        job_id: str,
        update: JobUpdate,
        precondition: Precondition,
        *,
        token: str | None = None,
    ) -> Job:
        step, self.step = self.step, None
        if step is not None:
            step()
        return self.inner.update(job_id, update, precondition, token=token)


def _service_over(repo: Any, clock: FakeClock) -> JobService:
    return build_service(
        options=fake_options(),
        repository=repo,
        queue=InMemoryJobQueue(),
        registry=build_registry([counting_job_type("count", CountingHandler())]),
        clock=clock,
    )


def test_a_cancel_that_finds_the_job_requeued_under_it_cancels_the_queued_job(
    clock: FakeClock,
) -> None:
    # Given a running job (as read by the cancel), requeued by its worker just before the
    # cancel's write lands
    fakes = with_handler(CountingHandler(), clock=clock)
    inner = fakes[1]
    running = running_job(fakes[0], inner, lease_until=START + timedelta(minutes=5))
    queued = running.model_copy(
        update={"status": JobStatus.QUEUED, "lease_until": None, "lease_id": None}
    )
    service = _service_over(_Meanwhile(inner, lambda: inner.put(queued)), clock)

    # When ann cancels it
    cancelled = service.cancel(ANN, running.id)

    # Then the cancel decided again on the state it found: the queued job is cancelled
    assert cancelled.status is JobStatus.CANCELLED
    assert inner.jobs == [cancelled]


def test_a_cancel_that_finds_the_job_finished_under_it_names_that_state(
    clock: FakeClock,
) -> None:
    fakes = with_handler(CountingHandler(), clock=clock)
    inner = fakes[1]
    running = running_job(fakes[0], inner, lease_until=START + timedelta(minutes=5))
    done = running.model_copy(update={"status": JobStatus.SUCCEEDED, "lease_id": None})
    service = _service_over(_Meanwhile(inner, lambda: inner.put(done)), clock)

    with pytest.raises(InvalidJobState) as caught:
        service.cancel(ANN, running.id)
    assert caught.value.status == "succeeded"


def test_asking_again_to_cancel_a_running_job_writes_nothing(clock: FakeClock) -> None:
    service, repo, _ = with_handler(CountingHandler(), clock=clock)
    running = running_job(service, repo, lease_until=START + timedelta(minutes=5))
    requested = service.cancel(ANN, running.id)
    writes = len(repo.writes)

    assert service.cancel(ANN, running.id) == requested
    assert len(repo.writes) == writes


def test_a_retry_that_finds_the_job_retried_under_it_names_that_state(
    clock: FakeClock,
) -> None:
    # Given a failed job that another caller retries between this retry's read and write
    handler = failing_handler("broken", retryable=False)
    fakes = with_handler(handler, clock=clock)
    inner = fakes[1]
    failed = finished_job(fakes[0], inner, JobStatus.FAILED)

    def retried_by_someone_else() -> None:
        fakes[0].retry(ANN, failed.id)

    service = _service_over(_Meanwhile(inner, retried_by_someone_else), clock)

    # When ann retries it too, then she is told it is queued (run 2 was not reset again)
    with pytest.raises(InvalidJobState) as caught:
        service.retry(ANN, failed.id)
    assert caught.value.status == "queued"
    [job] = inner.jobs
    assert (job.status, job.run) == (JobStatus.QUEUED, 2)
