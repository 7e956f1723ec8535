"""Execution under leases and deadlines: duplicates, reclaims after dead workers, handlers stopped at the deadline."""

from __future__ import annotations

import random
import time
from datetime import timedelta
from typing import Any

import pytest
from jobline.backoff import Backoff
from jobline.models import Attempt, JobError, JobStatus, SubmitRequest
from jobline.registry import JobContext
from jobline.service import RunOutcome

from tests.support.builders import (
    ANN,
    SEED,
    WAIT_S,
    Blocking,
    WorkerCrash,
    delivery_of,
    running_job,
    with_handler,
)
from tests.support.fakes import START, AnyInput, CountingHandler, FakeClock, job_type_of
from tests.support.services import build_fake_service, build_registry

pytestmark = pytest.mark.usefixtures("handler_kind")
"""Every test here runs with a plain handler and with an `async def` one (tests.support.handlers)."""

# --------------------------------------------------------------------------- leases


def test_a_delivery_while_another_invocation_holds_the_lease_comes_back_later() -> None:
    # Given a job another invocation is running, its lease live for 30 more seconds
    handler = CountingHandler()
    service, repo, queue = with_handler(handler)
    held = running_job(service, repo, lease_until=START + timedelta(seconds=30))

    # When a duplicate delivery of its message arrives
    outcome = service.run(delivery_of(held, receipt_handle="handle-dup"))

    # Then it never runs and never fails the job: the message comes back once the lease ends
    assert outcome is RunOutcome.REDELIVER
    assert handler.calls == 0
    assert repo.jobs == [held]
    assert queue.visibility == [("handle-dup", 31)]


def test_a_delivery_after_the_lease_ended_reclaims_and_runs_the_job() -> None:
    # Given a job whose worker died: running, its lease ended a second ago
    handler = CountingHandler(result={"second": "try"})
    service, repo, _ = with_handler(handler)
    lost = running_job(service, repo, lease_until=START - timedelta(seconds=1))

    # When the next delivery arrives
    outcome = service.run(delivery_of(lost, request_id="req-new"))

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
    service, repo, _ = with_handler(handler)
    old = running_job(service, repo, lease_until=None)

    # When its message is delivered, then it runs again
    assert service.run(delivery_of(old)) is RunOutcome.DONE
    assert handler.calls == 1
    assert [(j.status, j.attempts) for j in repo.jobs] == [(JobStatus.SUCCEEDED, 2)]


def test_a_job_whose_attempts_were_used_up_by_dead_workers_fails() -> None:
    # Given a job on its last attempt (3 of 3) whose worker died
    handler = CountingHandler()
    clock = FakeClock()
    service, repo, queue = with_handler(handler, clock=clock)
    lost = running_job(
        service,
        repo,
        lease_until=START - timedelta(seconds=1),
        attempts=3,
        max_attempts=3,
    )

    # When the next delivery arrives
    outcome = service.run(delivery_of(lost))

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
                delivery_of(
                    job,
                    request_id=request_id,
                    lease_until=clock.now + timedelta(seconds=10),
                )
            )
        clock.advance(timedelta(seconds=11))
    outcome = service.run(delivery_of(job, request_id="req-3"))

    # Then the job failed, and each lost attempt has its entry
    assert outcome is RunOutcome.DONE
    assert handler.calls == 2
    [failed] = repo.jobs
    assert (failed.status, failed.attempts) == (JobStatus.FAILED, 2)
    assert [
        (e.attempt, e.request_id, e.error and e.error.type) for e in failed.history
    ] == [(1, "req-1", "WorkerLost"), (2, "req-2", "WorkerLost")]


# ------------------------------------------------------------------------- deadline


def test_a_handler_still_running_at_the_deadline_is_stopped_and_retried() -> None:
    # Given a job whose handler blocks past the attempt's deadline (0.2 s away)
    handler = Blocking()
    service, repo, queue = build_fake_service(
        build_registry([job_type_of("block", handler)]), progress_interval_s=0
    )
    job = service.submit(ANN, SubmitRequest(type="block", max_attempts=2)).job

    try:
        # When it runs
        outcome = service.run(delivery_of(job, deadline=time.monotonic() + 0.2))

        # Then the attempt is recorded as timed out and retried after a backoff
        assert outcome is RunOutcome.REDELIVER
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
        outcome = service.run(delivery_of(job, deadline=time.monotonic() + 0.1))
    finally:
        handler.release.set()
    assert handler.returned.wait(WAIT_S)

    assert outcome is RunOutcome.DONE
    [failed] = repo.jobs
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert failed.error.type == "DeadlineExceeded"
    assert queue.visibility == []
