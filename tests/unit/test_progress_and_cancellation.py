"""Progress reports and cancellation of running jobs, both throttled."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from jobline.models import JobError, JobStatus, Progress, SubmitRequest
from jobline.registry import JobCancelled, JobContext, JobHandlerError
from jobline.service import RunOutcome

from tests.support.builders import (
    ANN,
    after_backoff,
    delivery_of,
    running_job,
    with_handler,
)
from tests.support.fakes import START, AnyInput, CountingHandler, FakeClock, job_type_of
from tests.support.services import build_fake_service, build_registry

pytestmark = pytest.mark.usefixtures("handler_kind")
"""Every test here runs with a plain handler and with an `async def` one (tests.support.handlers)."""

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
    assert service.run(delivery_of(job)) is RunOutcome.DONE

    # Then one progress write happened (the first report), besides the claim and the outcome
    progress_writes = [
        change.values["progress"]
        for _, change in repo.writes
        if set(change.values) == {"progress"}
    ]
    assert progress_writes == [
        Progress(percent=0.0, message="step 0", updated_at=START, seq=1)
    ]
    assert len(repo.writes) == 3
    # And the outcome write carried the latest report
    [done] = repo.jobs
    assert done.status is JobStatus.SUCCEEDED
    assert done.progress == Progress(
        percent=99.9, message="step 999", updated_at=START, seq=1000
    )


def test_progress_of_a_failed_attempt_is_kept_and_cleared_by_the_next_claim() -> None:
    # Given a handler that reports half way, then fails once
    def half_then_fail(payload: AnyInput, context: JobContext) -> Any:
        if context.attempt == 1:
            context.report_progress(50, "half")
            raise JobHandlerError("lost the connection")
        return {}

    clock = FakeClock()
    service, repo, queue = build_fake_service(
        build_registry([job_type_of("half", half_then_fail)]), clock=clock
    )
    job = service.submit(ANN, SubmitRequest(type="half")).job

    # When the first attempt fails, then the queued job shows how far it got
    assert service.run(delivery_of(job)) is RunOutcome.REDELIVER
    [queued] = repo.jobs
    assert queued.progress == Progress(
        percent=50, message="half", updated_at=START, seq=1
    )

    # When the second attempt succeeds without reporting, then no stale progress is left
    after_backoff(clock, queue)
    assert service.run(delivery_of(job)) is RunOutcome.DONE
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
    service.run(delivery_of(job))

    # Then the job was read once, and never seen cancelled
    assert repo.reads - reads == 1
    assert answers == [False] * 1000


# --------------------------------------------------------------------------- cancel


def test_cancel_of_a_running_job_records_the_request() -> None:
    # Given a running job
    clock = FakeClock(step=timedelta(seconds=1))
    service, repo, _ = with_handler(CountingHandler(), clock=clock)
    running = running_job(service, repo, lease_until=START + timedelta(minutes=5))

    # When ann cancels it
    requested = service.cancel(ANN, running.id)

    # Then it keeps running with the request recorded (the API answers 202)
    now = START + timedelta(seconds=1)
    [token] = requested.control_tokens[len(running.control_tokens) :]
    assert requested == running.model_copy(
        update={
            "cancel_requested_at": now,
            "updated_at": now,
            "control_tokens": (*running.control_tokens, token),
        }
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
    outcome = service.run(delivery_of(job))

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
    assert cancelled.progress is not None and cancelled.progress.seq is not None
    assert cancelled.progress == Progress(
        percent=50, message="half", updated_at=START, seq=cancelled.progress.seq
    )
    assert cancelled.progress.seq >= 1
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
    service.run(delivery_of(job))

    # Then the check was answered by the progress write, without a read of its own
    assert (world["seen"], world["reads"]) == (True, 0)
    [cancelled] = repo.jobs
    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.error == JobError(type="JobCancelled", message="stopping")


def test_a_cancel_requested_before_a_reclaim_ends_the_job_without_running_it() -> None:
    # Given a running job whose cancel was requested, then whose worker died
    handler = CountingHandler()
    service, repo, queue = with_handler(handler)
    lost = running_job(service, repo, lease_until=START + timedelta(seconds=30))
    service.cancel(ANN, lost.id)
    dead = repo.jobs[0].model_copy(update={"lease_until": START - timedelta(seconds=1)})
    repo.put(dead)

    # When the next delivery reclaims it
    outcome = service.run(delivery_of(lost, request_id="req-new"))

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

    clock = FakeClock()
    service, repo, queue = build_fake_service(
        build_registry([job_type_of("t", oblivious)]), clock=clock
    )
    world["service"] = service
    job = service.submit(ANN, SubmitRequest(type="t", max_attempts=3)).job

    # When the attempt fails, the job is queued for a retry with the request kept
    assert service.run(delivery_of(job)) is RunOutcome.REDELIVER
    assert repo.jobs[0].cancel_requested_at == START

    # When the retry is delivered, then it ends cancelled without running again
    after_backoff(clock, queue)
    assert service.run(delivery_of(job)) is RunOutcome.DONE
    assert handler.calls == 1
    assert [(j.status, j.attempts) for j in repo.jobs] == [(JobStatus.CANCELLED, 2)]
