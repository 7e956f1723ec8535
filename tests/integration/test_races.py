"""Races under moto: concurrent claims, cancel against claim, duplicate deliveries, idempotent submits.

moto evaluates a write's condition and applies the write in separate Python steps, so two threads can
both pass the condition of one UpdateItem (measured: about a third of two-thread claim races under
moto 5.2). Real DynamoDB serializes the writes to one item. `SerializedDynamoDB` restores that
guarantee around each call, so these tests exercise Jobline's conditions, not moto's thread safety;
which call goes first is still up to the threads.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pytest
from jobline.aws.repository import DynamoJobRepository
from jobline.bootstrap import build_service
from jobline.clock import utcnow
from jobline.errors import ConditionFailed
from jobline.models import (
    Delivery,
    Job,
    JobFilter,
    JobMessage,
    JobStatus,
    SubmitRequest,
)
from jobline.registry import JobContext, JobHandlerError, JobType, JobTypeRegistry
from jobline.service import JobService, RunOutcome
from jobline.transition import JobUpdate, Precondition
from jobline_examples import ECHO
from pydantic import BaseModel, ConfigDict

from tests.conftest import MotoStack

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

WAIT_S = 10.0
"""Upper bound of every wait in this file; a healthy run never comes near it."""
T = TypeVar("T")


class SerializedDynamoDB:
    """A DynamoDB client whose calls run one at a time, as DynamoDB applies writes to one item."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def serialized(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return method(*args, **kwargs)

        return serialized


class GateInput(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Gate:
    """The handler of the `gated` job type: counts runs per job and holds each run until released."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.runs: Counter[str] = Counter()
        self._entered: dict[str, threading.Event] = {}
        self._released: dict[str, threading.Event] = {}

    def _events(self, job_id: str) -> tuple[threading.Event, threading.Event]:
        with self._lock:
            entered = self._entered.setdefault(job_id, threading.Event())
            released = self._released.setdefault(job_id, threading.Event())
        return entered, released

    def wait_entered(self, job_id: str) -> bool:
        """True once a run of the job is inside the handler."""
        return self._events(job_id)[0].wait(WAIT_S)

    def release(self, job_id: str) -> None:
        """Let runs of the job return (now and later)."""
        self._events(job_id)[1].set()

    def handle(self, payload: GateInput, context: JobContext) -> dict[str, bool]:
        with self._lock:
            self.runs[context.job_id] += 1
        entered, released = self._events(context.job_id)
        entered.set()
        if not released.wait(WAIT_S):
            raise JobHandlerError("the test never released the gate", retryable=False)
        return {"ran": True}


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def repo(moto_stack: MotoStack) -> DynamoJobRepository:
    client = cast("DynamoDBClient", SerializedDynamoDB(moto_stack.dynamodb))
    return DynamoJobRepository(client, moto_stack.table)


@pytest.fixture
def service(moto_stack: MotoStack, repo: DynamoJobRepository, gate: Gate) -> JobService:
    gated = JobType(
        name="gated",
        description="Counts its runs and waits for the test to release it.",
        input_model=GateInput,
        handler=gate.handle,
    )
    return build_service(repository=repo, registry=JobTypeRegistry([ECHO, gated]))


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=16, thread_name_prefix="race") as executor:
        yield executor


def after_barrier(barrier: threading.Barrier, call: Callable[[], T]) -> Callable[[], T]:
    """`call`, started only once every party of `barrier` is ready."""

    def started_together() -> T:
        barrier.wait(WAIT_S)
        return call()

    return started_together


def at_once(pool: ThreadPoolExecutor, calls: list[Callable[[], T]]) -> list[Future[T]]:
    """Start every call in its own thread, all released together by a barrier."""
    barrier = threading.Barrier(len(calls))
    return [pool.submit(after_barrier(barrier, call)) for call in calls]


def submit_gated(service: JobService) -> tuple[Job, JobMessage]:
    job = service.submit("ann", SubmitRequest(type="gated")).job
    return job, JobMessage(job_id=job.id, owner="ann", job_type="gated")


def delivery(message: JobMessage, request_id: str = "req-race") -> Delivery:
    """A delivery of `message` to an invocation whose lease outlasts every wait here."""
    return Delivery(
        message=message,
        request_id=request_id,
        lease_until=utcnow() + timedelta(seconds=WAIT_S * 6),
        deadline=time.monotonic() + WAIT_S,
    )


def deliver(service: JobService, message: JobMessage) -> Callable[[], RunOutcome]:
    return lambda: service.run(delivery(message))


def test_concurrent_conditional_claims_let_exactly_one_win(
    repo: DynamoJobRepository, pool: ThreadPoolExecutor
) -> None:
    # Given a queued job
    job = Job.model_validate(
        {
            "id": "0" * 32,
            "owner": "ann",
            "type": "echo",
            "status": JobStatus.QUEUED,
            "payload": {},
            "created_at": "2030-01-01T00:00:00Z",
            "updated_at": "2030-01-01T00:00:00Z",
        }
    )
    repo.create(job, job.created_at)
    claim = JobUpdate(status=JobStatus.RUNNING, increment_attempts=True)
    expect = Precondition(owner="ann", status_in=frozenset({JobStatus.QUEUED}))

    def try_claim() -> Job | ConditionFailed:
        try:
            return repo.update(job.id, claim, expect)
        except ConditionFailed as lost:
            return lost

    # When eight threads claim it at once
    outcomes = [f.result(WAIT_S) for f in at_once(pool, [try_claim] * 8)]

    # Then exactly one claim wins; every other sees the job the winner left
    won = [o for o in outcomes if isinstance(o, Job)]
    lost = [o for o in outcomes if isinstance(o, ConditionFailed)]
    assert len(won) == 1
    assert (won[0].status, won[0].attempts) == (JobStatus.RUNNING, 1)
    assert len(lost) == 7
    assert all(o.current == won[0] for o in lost)
    assert repo.get(job.id) == won[0]


def test_two_deliveries_of_one_job_run_its_handler_once(
    service: JobService,
    repo: DynamoJobRepository,
    gate: Gate,
    pool: ThreadPoolExecutor,
) -> None:
    # Given a queued job whose handler holds until released
    job, message = submit_gated(service)

    try:
        # When two deliveries of its message run at once
        futures = at_once(pool, [deliver(service, message)] * 2)

        # Then one claims the job and stays inside the handler ...
        assert gate.wait_entered(job.id)
        done, running = wait(futures, timeout=WAIT_S, return_when=FIRST_COMPLETED)
        assert (len(done), len(running)) == (1, 1)
        # ... while the other found it held under a live lease: its message comes back later
        assert done.pop().result() is RunOutcome.REDELIVER
        claimed = repo.get(job.id)
        assert claimed is not None
        assert (claimed.status, claimed.attempts) == (JobStatus.RUNNING, 1)
    finally:
        gate.release(job.id)

    # And the winner completes the job: one attempt, one run
    assert running.pop().result(WAIT_S) is RunOutcome.DONE
    assert gate.runs[job.id] == 1
    final = repo.get(job.id)
    assert final is not None
    assert (final.status, final.attempts, final.result) == (
        JobStatus.SUCCEEDED,
        1,
        {"ran": True},
    )


def test_cancel_racing_a_claim_never_lets_a_job_both_run_and_be_cancelled(
    service: JobService,
    repo: DynamoJobRepository,
    gate: Gate,
    pool: ThreadPoolExecutor,
) -> None:
    winners: Counter[str] = Counter()
    for round_ in range(8):
        # Given a queued job whose handler holds until released
        job, message = submit_gated(service)

        def cancel(job_id: str = job.id) -> Job:
            return service.cancel("ann", job_id)

        # When a cancel and a delivery race (the thread reaching the barrier last tends to go
        # first, so the order of starting them alternates between rounds)
        barrier = threading.Barrier(2)
        try:
            if round_ % 2:
                ran = pool.submit(after_barrier(barrier, deliver(service, message)))
                cancelled = pool.submit(after_barrier(barrier, cancel))
            else:
                cancelled = pool.submit(after_barrier(barrier, cancel))
                ran = pool.submit(after_barrier(barrier, deliver(service, message)))
            cancel_outcome = cancelled.result(WAIT_S)
        finally:
            gate.release(job.id)
        assert ran.result(WAIT_S) is RunOutcome.DONE
        final = repo.get(job.id)
        assert final is not None

        # Then either the cancel came first and the job never ran, or the claim came first and
        # the cancel was recorded as a request (the gated handler never checks it, so it ends)
        if cancel_outcome.status is JobStatus.CANCELLED:
            winners["cancel"] += 1
            assert gate.runs[job.id] == 0
            assert final == cancel_outcome
            assert (final.attempts, final.started_at) == (0, None)
        else:
            winners["claim"] += 1
            assert cancel_outcome.status is JobStatus.RUNNING
            assert cancel_outcome.cancel_requested_at is not None
            assert gate.runs[job.id] == 1
            assert (final.status, final.attempts) == (JobStatus.SUCCEEDED, 1)
            assert final.cancel_requested_at == cancel_outcome.cancel_requested_at
    assert sum(winners.values()) == 8


def test_a_duplicate_delivery_after_success_runs_nothing(
    service: JobService, repo: DynamoJobRepository, gate: Gate
) -> None:
    # Given a job that ran and succeeded
    job, message = submit_gated(service)
    gate.release(job.id)
    assert service.run(delivery(message)) is RunOutcome.DONE
    succeeded = repo.get(job.id)
    assert succeeded is not None
    assert succeeded.status is JobStatus.SUCCEEDED

    # When the same message is delivered again
    outcome = service.run(delivery(message))

    # Then it is acknowledged without a second run, and the job is untouched
    assert outcome is RunOutcome.DONE
    assert gate.runs[job.id] == 1
    assert repo.get(job.id) == succeeded


def test_concurrent_idempotent_submits_make_one_job_and_one_message(
    moto_stack: MotoStack,
    service: JobService,
    repo: DynamoJobRepository,
    pool: ThreadPoolExecutor,
) -> None:
    # Given one request and one idempotency key
    request = SubmitRequest(type="echo", payload={"x": 0.1})

    def submit() -> tuple[str, bool]:
        submitted = service.submit("ann", request, idempotency_key="same-key")
        return submitted.job.id, submitted.created

    # When twelve threads submit it at once
    results = [f.result(WAIT_S) for f in at_once(pool, [submit] * 12)]

    # Then they all got the same job, and exactly one of them created it
    job_ids = {job_id for job_id, _ in results}
    assert len(job_ids) == 1
    assert sorted(created for _, created in results) == [False] * 11 + [True]
    (job_id,) = job_ids
    stored, _ = repo.query("ann", JobFilter(), 100, None, utcnow())
    assert [job.id for job in stored] == [job_id]

    # And the queue holds exactly one message, for that job
    messages = moto_stack.receive()
    assert [JobMessage.model_validate_json(m["Body"]).job_id for m in messages] == [
        job_id
    ]
    assert moto_stack.receive() == []
