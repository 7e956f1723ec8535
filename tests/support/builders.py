"""Builders shared by the use-case tests: requests, messages, deliveries, jobs in a given state,
and handlers that block or crash."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from jobline.models import (
    Delivery,
    Job,
    JobMessage,
    JobStatus,
    SubmitRequest,
)
from jobline.registry import (
    JobContext,
)
from jobline.service import JobService, RunOutcome

from tests.support.fakes import (
    START,
    AnyInput,
    CountingHandler,
    FakeClock,
    InMemoryJobQueue,
    InMemoryJobRepository,
    counting_job_type,
    job_type_of,
)
from tests.support.services import build_fake_service, build_registry

ANN = "ann"
BOB = "bob"
UNKNOWN_ID = "0" * 32


def echo_request(payload: dict[str, Any] | None = None, **fields: Any) -> SubmitRequest:
    return SubmitRequest(type="echo", payload=payload or {"n": 1}, **fields)


def message_of(job: Job, owner: str | None = None) -> JobMessage:
    """The message the outbox sends for `job` as it is (its run)."""
    return JobMessage(
        job_id=job.id, owner=owner or job.owner, job_type=job.type, run=job.run
    )


def in_a_minute() -> float:
    return time.monotonic() + 60


LEASE = START + timedelta(hours=1)
"""The default lease of a delivery: an invocation's deadline well after the fake clock."""
SEED = 0
"""`build_fake_service` draws backoff delays from `random.Random(SEED)`."""
WAIT_S = 10.0
"""Upper bound of every wait on a thread in this file; a healthy run never comes near it."""


def delivery_of(
    job: Job | JobMessage,
    *,
    owner: str | None = None,
    lease_until: datetime = LEASE,
    deadline: float | None = None,
    request_id: str = "req-1",
    receipt_handle: str = "handle-1",
) -> Delivery:
    """A delivery of the job's message to a worker invocation."""
    message = job if isinstance(job, JobMessage) else message_of(job, owner)
    return Delivery(
        message=message,
        receipt_handle=receipt_handle,
        request_id=request_id,
        lease_until=lease_until,
        deadline=in_a_minute() if deadline is None else deadline,
    )


Fakes = tuple[JobService, InMemoryJobRepository, InMemoryJobQueue]


def with_handler(
    handler: CountingHandler, clock: FakeClock | None = None, **kwargs: Any
) -> Fakes:
    registry = build_registry([counting_job_type("count", handler)])
    return build_fake_service(registry, clock=clock or FakeClock(), **kwargs)


def with_type(
    handler: Callable[[AnyInput, JobContext], Any], name: str = "t", **kwargs: Any
) -> Fakes:
    return build_fake_service(build_registry([job_type_of(name, handler)]), **kwargs)


def running_job(
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


def finished_job(
    service: JobService, repo: InMemoryJobRepository, status: JobStatus
) -> Job:
    """A job of ann (type `count`, one attempt allowed) that ended `status`: failed by its
    handler, dead-lettered before running, or cancelled while queued."""
    job = service.submit(ANN, SubmitRequest(type="count", max_attempts=1)).job
    if status is JobStatus.CANCELLED:
        return service.cancel(ANN, job.id)
    if status is JobStatus.DEAD_LETTERED:
        dead = service.dead_letter(message_of(job), receive_count=25)
        assert dead is not None
        return dead
    assert service.run(delivery_of(job)) is RunOutcome.DONE
    failed = service.get(ANN, job.id)
    assert failed.status is JobStatus.FAILED
    return failed


class WorkerCrash(BaseException):
    """Not an Exception: what a killed worker looks like from inside the process."""


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


def after_backoff(clock: FakeClock, queue: InMemoryJobQueue) -> None:
    """Move the clock past the backoff the last failed attempt hid its message for: SQS delivers
    it no sooner, and the claim of a job that is not yet due comes back later."""
    clock.advance(timedelta(seconds=queue.visibility[-1][1]))
