"""`async def` handlers, natively: the records of a batch await theirs concurrently on one event
loop (the handler loop), an attempt's deadline cancels the task, and the runner hands back what the
coroutine raised without stopping the loop. The semantics they share with plain handlers are the
parametrized tests of test_execution.py, test_progress_and_cancellation.py and
test_leases_and_deadlines.py."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from jobline.handler_loop import handler_loop
from jobline.models import JobError, JobStatus, SubmitRequest
from jobline.registry import JobCancelled, JobContext
from jobline.service import RunOutcome
from jobline.sqs_batch import Invocation
from jobline.usecases.checkpoints import await_until_deadline

from tests.support.builders import ANN, WAIT_S, delivery_of, with_type
from tests.support.fakes import START, AnyInput, job_type_of
from tests.support.handlers import HandlerKind
from tests.support.services import build_fake_service, build_registry, process_batch


def _context(seconds_left: float = 30.0) -> JobContext:
    return JobContext(
        job_id="0" * 32,
        job_type="t",
        attempt=1,
        max_attempts=3,
        deadline=time.monotonic() + seconds_left,
    )


def _record(job_id: str, job_type: str) -> dict[str, Any]:
    body = f'{{"job_id": "{job_id}", "owner": "{ANN}", "job_type": "{job_type}"}}'
    return {
        "messageId": f"m-{job_id[:6]}",
        "receiptHandle": f"handle-{job_id[:6]}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
    }


def test_each_kind_runs_natively(handler_kind: HandlerKind) -> None:
    # Given a handler that notes where it runs
    seen: dict[str, Any] = {}

    def where(payload: AnyInput, context: JobContext) -> Any:
        seen["thread"] = threading.current_thread().name
        try:
            seen["loop"] = asyncio.get_running_loop()
        except RuntimeError:
            seen["loop"] = None
        return {}

    service, _, _ = with_type(where)
    job = service.submit(ANN, SubmitRequest(type="t")).job

    # When it runs
    assert service.run(delivery_of(job)) is RunOutcome.DONE

    # Then a plain handler ran in a thread of its own, an async one on the handler loop
    if handler_kind == "async":
        assert seen["thread"] == "handler-loop"
        assert seen["loop"] is not None and seen["loop"].is_running()
    else:
        assert seen == {"thread": f"job-{job.id[:8]}", "loop": None}


def test_the_async_handlers_of_a_batch_run_concurrently_on_one_loop() -> None:
    # Given two jobs whose handlers each wait until both have started: a rendezvous that only
    # handlers running at the same time, on one loop, can pass
    started: list[asyncio.AbstractEventLoop] = []
    events: dict[str, asyncio.Event] = {}

    async def rendezvous(payload: AnyInput, context: JobContext) -> Any:
        started.append(asyncio.get_running_loop())
        both = events.setdefault(
            "both", asyncio.Event()
        )  # bound to the first one's loop
        if len(started) == 2:
            both.set()
        await both.wait()
        return {"loops": len({id(loop) for loop in started})}

    service, repo, _ = build_fake_service(
        build_registry([job_type_of("meet", rendezvous)])
    )
    jobs = [service.submit(ANN, SubmitRequest(type="meet")).job for _ in range(2)]

    # When one batch holds both records, run by the worker's record threads
    invocation = Invocation(
        request_id="req-batch",
        lease_until=START + timedelta(minutes=15),
        deadline=time.monotonic() + WAIT_S,
    )
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="record") as pool:
        failures = process_batch(
            service, [_record(job.id, "meet") for job in jobs], invocation, pool
        )

    # Then both met, on the same loop, and succeeded
    assert failures == []
    assert [(job.status, job.result) for job in repo.jobs] == [
        (JobStatus.SUCCEEDED, {"loops": 1})
    ] * 2
    assert started[0] is started[1] is handler_loop()._loop


def test_the_deadline_cancels_an_awaiting_handler() -> None:
    # Given an async handler awaiting something that never comes
    cancelled = threading.Event()

    async def forever(payload: AnyInput, context: JobContext) -> Any:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return {}

    service, repo, _ = with_type(forever)
    job = service.submit(ANN, SubmitRequest(type="t", max_attempts=2)).job

    # When its attempt reaches the deadline (0.2 s away)
    outcome = service.run(delivery_of(job, deadline=time.monotonic() + 0.2))

    # Then the attempt timed out (retryable), and the task was cancelled at its await
    assert outcome is RunOutcome.REDELIVER
    [queued] = repo.jobs
    assert queued.error == JobError(
        type="DeadlineExceeded",
        message="the attempt was stopped before the Lambda deadline",
    )
    assert cancelled.wait(WAIT_S)


def test_an_async_handler_sees_the_cancel_request_at_a_checkpoint() -> None:
    # Given an async handler cancelled (as by the API) while it runs
    world: dict[str, Any] = {}

    async def cooperative(payload: AnyInput, context: JobContext) -> Any:
        world["service"].cancel(ANN, context.job_id)
        await asyncio.sleep(0)
        context.raise_if_cancelled()
        return {"finished": True}

    service, repo, _ = with_type(cooperative, progress_interval_s=0)
    world["service"] = service
    job = service.submit(ANN, SubmitRequest(type="t")).job

    # Then it ends cancelled, not failed
    assert service.run(delivery_of(job)) is RunOutcome.DONE
    [cancelled] = repo.jobs
    assert cancelled.status is JobStatus.CANCELLED


# ------------------------------------------------------------------------ the runner


def test_the_async_runner_returns_the_handlers_result() -> None:
    async def value() -> dict[str, int]:
        await asyncio.sleep(0)
        return {"ok": 1}

    context = _context()
    outcome = await_until_deadline(value, context, context.deadline)
    assert (outcome.result, outcome.error, outcome.timed_out) == (
        {"ok": 1},
        None,
        False,
    )
    assert context.stop_event.is_set() is False


@pytest.mark.parametrize(
    "error",
    [ValueError("bad"), JobCancelled("stop"), KeyboardInterrupt(), SystemExit(3)],
    ids=["error", "cancelled", "interrupt", "exit"],
)
def test_the_async_runner_hands_back_what_the_handler_raised(
    error: BaseException,
) -> None:
    async def raising() -> None:
        raise error

    context = _context()
    outcome = await_until_deadline(raising, context, context.deadline)
    assert (outcome.error, outcome.timed_out) == (error, False)

    # And the loop still runs the next handler
    async def after() -> str:
        return "still running"

    assert await_until_deadline(after, context, context.deadline).result == (
        "still running"
    )


def test_a_handler_cancelling_its_own_task_is_a_retryable_failure() -> None:
    async def self_cancelling() -> None:
        raise asyncio.CancelledError

    context = _context()
    outcome = await_until_deadline(self_cancelling, context, context.deadline)
    assert outcome.timed_out is False
    assert outcome.error is not None
    assert str(outcome.error) == "the handler's task was cancelled"


def test_at_the_deadline_the_async_runner_stops_waiting_and_tells_the_handler() -> None:
    # Given a handler awaiting what never comes, and a deadline 0.1 s away
    context = _context()
    cancelled = threading.Event()

    async def waiting() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "late"

    outcome = await_until_deadline(waiting, context, time.monotonic() + 0.1)

    # Then it reports a timeout without a result, tells the handler and cancels its task
    assert (outcome.result, outcome.error, outcome.timed_out) == (None, None, True)
    assert context.stop_event.is_set()
    assert context.cancel_requested() is True
    assert cancelled.wait(WAIT_S)
