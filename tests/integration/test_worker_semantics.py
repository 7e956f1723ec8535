"""Worker semantics under moto, through the real handlers: duplicate deliveries under a lease, a
worker killed mid-job, the deadline, backoff through SQS visibility, progress and cancellation of a
running job, retry, and delayed jobs.

The API runs as `create_app(allow_dev_identity=True)` and the worker as its Lambda handler, both on
the cached service the environment builds. Where a test needs a job type of its own (a handler that
crashes, spins or always fails), it runs the worker's batch loop (`process_batch`, what
`lambda_handler` calls) on a service built by `build_service(registry=...)` over the same moto
table and queue.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import pytest
from fastapi.testclient import TestClient
from jobline.aws.repository import DynamoJobRepository
from jobline.backoff import Backoff
from jobline.bootstrap import build_service
from jobline.clock import utcnow
from jobline.config import get_settings
from jobline.models import Job, JobMessage, JobStatus, SubmitRequest
from jobline.registry import JobContext, JobHandlerError, JobType, JobTypeRegistry
from jobline.service import JobService
from jobline.sqs_batch import Invocation
from jobline.transition import JobUpdate, Precondition
from jobline_api.app import create_app
from jobline_worker.handler import lambda_handler

from tests.conftest import FakeLambdaContext, MotoStack, sqs_event
from tests.integration.test_races import Gate, GateInput, SerializedDynamoDB
from tests.support.fakes import AnyInput, job_type_of
from tests.support.services import process_batch

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

OWNER = "ann"
AS_ANN = {"X-Dev-User": OWNER}
WAIT_S = 10.0
"""Upper bound of every wait in this file; a healthy run never comes near it."""
WORKER_LOST = "WorkerLost"


# ---------------------------------------------------------------------------- helpers
@pytest.fixture
def api(moto_stack: MotoStack) -> Iterator[TestClient]:
    with TestClient(create_app(allow_dev_identity=True)) as client:
        yield client


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="invocation") as executor:
        yield executor


def submit(api: TestClient, **body: Any) -> dict[str, Any]:
    response = api.post("/jobs", json=body, headers=AS_ANN)
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


def get(api: TestClient, job_id: str) -> dict[str, Any]:
    response = api.get(f"/jobs/{job_id}", headers=AS_ANN)
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


def repository(stack: MotoStack) -> DynamoJobRepository:
    return DynamoJobRepository(stack.dynamodb, stack.table)


def stored(stack: MotoStack, job_id: str) -> Job:
    job = repository(stack).get(job_id)
    assert job is not None
    return job


def receive_one(stack: MotoStack) -> dict[str, Any]:
    [message] = stack.receive()
    return message


def event_of(stack: MotoStack, *messages: dict[str, Any]) -> dict[str, Any]:
    return sqs_event(list(messages), stack.provisioned.queue_arns["JobsQueue"])


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll `condition` until it holds; fail after WAIT_S."""
    end = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.02)


def queue_counts(stack: MotoStack) -> tuple[str, str, str]:
    """(visible, in flight, delayed) messages on the jobs queue."""
    attributes = stack.sqs.get_queue_attributes(
        QueueUrl=stack.queue_url, AttributeNames=["All"]
    )["Attributes"]
    return (
        attributes["ApproximateNumberOfMessages"],
        attributes["ApproximateNumberOfMessagesNotVisible"],
        attributes["ApproximateNumberOfMessagesDelayed"],
    )


def history_of(job: dict[str, Any]) -> list[tuple[int, str | None, str | None]]:
    """(attempt, error type, request id) of each history entry of a job as the API shows it."""
    return [
        (
            entry["attempt"],
            entry["error"]["type"] if entry["error"] else None,
            entry["request_id"],
        )
        for entry in job["history"]
    ]


def invocation(
    request_id: str, *, lease_s: float = 120.0, deadline_s: float = WAIT_S
) -> Invocation:
    """A worker invocation whose Lambda deadline (the lease) is `lease_s` away."""
    return Invocation(
        request_id=request_id,
        lease_until=utcnow() + timedelta(seconds=lease_s),
        deadline=time.monotonic() + deadline_s,
    )


def service_with(*job_types: JobType[Any], repository: Any = None) -> JobService:
    """The environment's service (moto table and queue) with these job types."""
    return build_service(registry=JobTypeRegistry(job_types), repository=repository)


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


# ---------------------------------------------------------------- duplicate deliveries
def test_a_duplicate_delivery_while_the_job_runs_never_runs_it_twice(
    moto_stack: MotoStack, api: TestClient, pool: ThreadPoolExecutor
) -> None:
    # Given a sleep job whose message a first worker invocation is running
    job = submit(api, type="sleep", payload={"seconds": 1.0})
    event = event_of(moto_stack, receive_one(moto_stack))
    first = pool.submit(
        lambda_handler, event, FakeLambdaContext(aws_request_id="req-first")
    )
    wait_until(
        lambda: stored(moto_stack, job["id"]).status is JobStatus.RUNNING,
        "the first invocation claimed the job",
    )

    # When SQS delivers the same message to a second invocation meanwhile
    second = lambda_handler(event, FakeLambdaContext(aws_request_id="req-second"))

    # Then the second returns the message without running or failing the job
    assert second == {
        "batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]
    }
    held = stored(moto_stack, job["id"])
    assert (held.status, held.attempts, held.attempt_request_id) == (
        JobStatus.RUNNING,
        1,
        "req-first",
    )

    # And the first completes the job: one attempt, by the first invocation
    assert first.result(WAIT_S) == {"batchItemFailures": []}
    done = get(api, job["id"])
    assert (done["status"], done["attempts"], done["result"]) == (
        "succeeded",
        1,
        {"slept": 1.0},
    )
    assert history_of(done) == [(1, None, "req-first")]


def test_two_invocations_claiming_one_message_at_once_run_it_once(
    moto_stack: MotoStack, pool: ThreadPoolExecutor
) -> None:
    # Given a job whose handler holds until released, on a table that applies one write at a
    # time (as DynamoDB does to one item; moto does not, see test_races)
    gate = Gate()
    gated = JobType(
        name="gated",
        description="holds until released",
        input_model=GateInput,
        handler=gate.handle,
    )
    client = cast("DynamoDBClient", SerializedDynamoDB(moto_stack.dynamodb))
    service = service_with(
        gated, repository=DynamoJobRepository(client, moto_stack.table)
    )
    job = service.submit(OWNER, SubmitRequest(type="gated")).job
    record = event_of(moto_stack, receive_one(moto_stack))["Records"]
    message_id = record[0]["messageId"]

    with ThreadPoolExecutor(max_workers=4) as records_pool:
        barrier = threading.Barrier(2)

        def invoke(request_id: str) -> list[str]:
            barrier.wait(WAIT_S)
            return process_batch(service, record, invocation(request_id), records_pool)

        # When two invocations receive the same message at the same moment
        futures = {
            pool.submit(invoke, "req-a"): "req-a",
            pool.submit(invoke, "req-b"): "req-b",
        }
        try:
            # Then one runs the handler while the other hands the message back
            assert gate.wait_entered(job.id)
            done, running = wait(futures, timeout=WAIT_S, return_when=FIRST_COMPLETED)
            assert (len(done), len(running)) == (1, 1)
            [loser] = done
            assert loser.result() == [message_id]
        finally:
            gate.release(job.id)
        [winner] = running
        assert winner.result(WAIT_S) == []

    # And the job succeeded once, by the winner
    final = stored(moto_stack, job.id)
    assert gate.runs[job.id] == 1
    assert (final.status, final.attempts) == (JobStatus.SUCCEEDED, 1)
    assert [entry.request_id for entry in final.history] == [futures[winner]]


# ------------------------------------------------------------------- dead workers
def test_a_job_whose_worker_died_is_reclaimed_after_its_lease(
    moto_stack: MotoStack, api: TestClient
) -> None:
    # Given an echo job claimed by an invocation that died: running, its lease over
    job = submit(api, type="echo", payload={"n": 1})
    message = receive_one(moto_stack)
    started = utcnow() - timedelta(minutes=3)
    repository(moto_stack).update(
        job["id"],
        JobUpdate(
            status=JobStatus.RUNNING,
            started_at=started,
            updated_at=started,
            lease_until=utcnow() - timedelta(seconds=1),
            attempt_request_id="req-dead",
            run_after=None,
            increment_attempts=True,
        ),
        Precondition(owner=OWNER, status_in=frozenset({JobStatus.QUEUED})),
    )

    # When the message is delivered again
    result = lambda_handler(
        event_of(moto_stack, message), FakeLambdaContext(aws_request_id="req-new")
    )

    # Then the job runs again as attempt 2 and succeeds; the history shows the lost attempt
    assert result == {"batchItemFailures": []}
    done = get(api, job["id"])
    assert (done["status"], done["attempts"], done["result"]) == (
        "succeeded",
        2,
        {"n": 1},
    )
    assert history_of(done) == [(1, WORKER_LOST, "req-dead"), (2, None, "req-new")]
    lost = done["history"][0]
    assert (parse(lost["started_at"]), lost["finished_at"], lost["duration_ms"]) == (
        started,
        None,
        None,
    )


class WorkerCrash(BaseException):
    """Not an Exception: escapes the batch loop the way a killed worker's attempt ends."""


def test_a_worker_killed_mid_job_is_replaced_once_its_lease_ends(
    moto_stack: MotoStack,
) -> None:
    # Given a job type whose first attempt takes the worker down
    def fragile(payload: AnyInput, context: JobContext) -> dict[str, int]:
        if context.attempt == 1:
            raise WorkerCrash()
        return {"attempt": context.attempt}

    service = service_with(job_type_of("fragile", fragile))
    job = service.submit(OWNER, SubmitRequest(type="fragile")).job
    records = event_of(moto_stack, receive_one(moto_stack))["Records"]
    message_id = records[0]["messageId"]

    with ThreadPoolExecutor(max_workers=2) as records_pool:
        # When an invocation whose Lambda deadline is 0.5 s away dies running it
        short = invocation("req-killed", lease_s=0.5)
        with pytest.raises(WorkerCrash):
            process_batch(service, records, short, records_pool)
        killed = stored(moto_stack, job.id)
        assert (killed.status, killed.attempts) == (JobStatus.RUNNING, 1)

        # Then a delivery before the lease ends hands the message back, leaving the job alone
        assert process_batch(
            service, records, invocation("req-early"), records_pool
        ) == [message_id]
        assert stored(moto_stack, job.id) == killed

        # And the first delivery after the lease ends reclaims the job and runs it
        wait_until(lambda: utcnow() > short.lease_until, "the lease ended")
        assert (
            process_batch(service, records, invocation("req-late"), records_pool) == []
        )

    final = stored(moto_stack, job.id)
    assert (final.status, final.attempts, final.result) == (
        JobStatus.SUCCEEDED,
        2,
        {"attempt": 2},
    )
    assert [
        (entry.attempt, entry.error and entry.error.type, entry.request_id)
        for entry in final.history
    ] == [(1, WORKER_LOST, "req-killed"), (2, None, "req-late")]


# ------------------------------------------------------------------------ deadline
def test_a_sleep_that_cannot_end_before_the_deadline_fails_retryably(
    moto_stack: MotoStack, api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a 5 s sleep job, and an invocation with 4 s left (2 s of them the safety margin)
    monkeypatch.setenv("JOBLINE_DEADLINE_MARGIN_MS", "2000")
    get_settings.cache_clear()
    job = submit(api, type="sleep", payload={"seconds": 5}, max_attempts=3)
    message = receive_one(moto_stack)

    # When the worker handles it
    result = lambda_handler(
        event_of(moto_stack, message),
        FakeLambdaContext(timeout_s=4, aws_request_id="req-short"),
    )

    # Then the record goes back, and the job waits for its next attempt
    assert result == {"batchItemFailures": [{"itemIdentifier": message["MessageId"]}]}
    queued = get(api, job["id"])
    assert (queued["status"], queued["attempts"], queued["error"]["type"]) == (
        "queued",
        1,
        "DeadlineExceeded",
    )
    assert queued["error"]["message"].startswith("sleep of 5.0s does not fit in the ")
    assert history_of(queued) == [(1, "DeadlineExceeded", "req-short")]
    assert parse(queued["run_after"]) > parse(queued["updated_at"])


def test_a_handler_running_at_the_deadline_is_stopped_and_unstarted_records_return(
    moto_stack: MotoStack,
) -> None:
    # Given a job whose handler runs until told to stop, then an echo job behind it
    stopped = threading.Event()

    def spin(payload: AnyInput, context: JobContext) -> dict[str, bool]:
        try:
            end = time.monotonic() + WAIT_S
            while time.monotonic() < end:
                context.raise_if_cancelled()
                time.sleep(0.02)
            return {"spun": True}
        finally:
            stopped.set()

    echo = build_service().registry.get("echo")
    service = service_with(job_type_of("spin", spin), echo)
    spinning = service.submit(OWNER, SubmitRequest(type="spin")).job
    waiting = service.submit(OWNER, SubmitRequest(type="echo")).job
    messages = moto_stack.receive()
    by_job = {JobMessage.model_validate_json(m["Body"]).job_id: m for m in messages}
    records = event_of(moto_stack, by_job[spinning.id], by_job[waiting.id])["Records"]

    # When one worker thread runs the batch with 1.5 s left before the deadline
    with ThreadPoolExecutor(max_workers=1) as one_at_a_time:
        failures = process_batch(
            service,
            records,
            invocation("req-deadline", lease_s=6.0, deadline_s=1.5),
            one_at_a_time,
        )

    # Then both records go back: the running one stopped at the deadline, the other unstarted
    assert failures == [
        by_job[spinning.id]["MessageId"],
        by_job[waiting.id]["MessageId"],
    ]
    timed_out = stored(moto_stack, spinning.id)
    assert (timed_out.status, timed_out.attempts) == (JobStatus.QUEUED, 1)
    assert timed_out.error is not None
    # (whichever sees the deadline first words it: the runner stopping the handler, or the
    # handler's own checkpoint finding no time left)
    assert timed_out.error.type == "DeadlineExceeded"
    assert timed_out.error.message in {
        "the attempt was stopped before the Lambda deadline",
        "the attempt reached its deadline",
    }
    assert [entry.error for entry in timed_out.history] == [timed_out.error]
    untouched = stored(moto_stack, waiting.id)
    assert (untouched.status, untouched.attempts) == (JobStatus.QUEUED, 0)
    # And the handler saw the stop and returned
    assert stopped.wait(WAIT_S)


# ------------------------------------------------------------------------- backoff
def test_a_failed_attempt_hides_its_message_for_the_backoff(
    moto_stack: MotoStack,
) -> None:
    # Given a job type that always fails and backs off 300..600 s
    def flaky(payload: AnyInput, context: JobContext) -> None:
        raise JobHandlerError("upstream unavailable")

    backoff = Backoff(base_s=600, cap_s=600, floor_s=300)
    service = service_with(job_type_of("flaky", flaky, backoff=backoff))
    job = service.submit(OWNER, SubmitRequest(type="flaky")).job
    message = receive_one(moto_stack)

    # When its attempt fails
    with ThreadPoolExecutor(max_workers=1) as records_pool:
        failures = process_batch(
            service,
            event_of(moto_stack, message)["Records"],
            invocation("req-1"),
            records_pool,
        )

    # Then the record goes back, but SQS keeps it hidden: not receivable, one in flight
    assert failures == [message["MessageId"]]
    assert moto_stack.receive() == []
    assert queue_counts(moto_stack) == ("0", "1", "0")
    queued = stored(moto_stack, job.id)
    assert queued.status is JobStatus.QUEUED
    assert queued.run_after is not None
    assert queued.run_after >= queued.updated_at + timedelta(seconds=300)

    # When the hidden time is over (here: made visible by hand)
    moto_stack.sqs.change_message_visibility(
        QueueUrl=moto_stack.queue_url,
        ReceiptHandle=message["ReceiptHandle"],
        VisibilityTimeout=0,
    )

    # Then the same message is delivered again
    again = receive_one(moto_stack)
    assert again["MessageId"] == message["MessageId"]
    assert again["Attributes"]["ApproximateReceiveCount"] == "2"


# ------------------------------------------------------- progress and cancellation
def test_a_running_job_shows_progress_and_stops_when_cancelled(
    moto_stack: MotoStack, api: TestClient, pool: ThreadPoolExecutor
) -> None:
    # Given a 10 s sleep job running in a worker
    job = submit(api, type="sleep", payload={"seconds": 10})
    message = receive_one(moto_stack)
    worker = pool.submit(
        lambda_handler,
        event_of(moto_stack, message),
        FakeLambdaContext(aws_request_id="req-sleep"),
    )

    # When its owner polls it, then its progress shows while it runs
    wait_until(
        lambda: get(api, job["id"])["progress"] is not None, "progress was reported"
    )
    running = get(api, job["id"])
    assert running["status"] == "running"
    assert 0 < running["progress"]["percent"] < 100
    assert running["progress"]["message"].startswith("slept ")

    # When she cancels it
    response = api.post(f"/jobs/{job['id']}/cancel", headers=AS_ANN)

    # Then the request is accepted while the job still runs
    assert response.status_code == 202
    assert response.json()["status"] == "running"
    assert response.json()["cancel_requested_at"] is not None

    # And the worker stops at its next checkpoint (a sleep that ran its 10 s would have
    # succeeded): the job is cancelled and its message acknowledged
    assert worker.result(2 * WAIT_S) == {"batchItemFailures": []}
    cancelled = get(api, job["id"])
    assert (cancelled["status"], cancelled["attempts"], cancelled["result"]) == (
        "cancelled",
        1,
        None,
    )
    assert cancelled["error"] == {
        "type": "JobCancelled",
        "message": f"job {job['id']} was cancelled",
    }
    assert cancelled["finished_at"] is not None
    assert history_of(cancelled) == [(1, "JobCancelled", "req-sleep")]


# --------------------------------------------------------------------------- retry
def test_retry_requeues_a_failed_job_which_then_succeeds(
    moto_stack: MotoStack, api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a half-second sleep job with one attempt, failed by an invocation without time
    # (2.3 s left, 2 s of them the safety margin)
    monkeypatch.setenv("JOBLINE_DEADLINE_MARGIN_MS", "2000")
    get_settings.cache_clear()
    job = submit(api, type="sleep", payload={"seconds": 0.5}, max_attempts=1)
    first = receive_one(moto_stack)
    lambda_handler(
        event_of(moto_stack, first),
        FakeLambdaContext(timeout_s=2.3, aws_request_id="req-short"),
    )
    failed = get(api, job["id"])
    assert (failed["status"], failed["error"]["type"]) == ("failed", "DeadlineExceeded")

    # When its owner retries it
    response = api.post(f"/jobs/{job['id']}/retry", headers=AS_ANN)

    # Then it is queued again with a fresh budget and its history, and a new message is sent
    assert response.status_code == 200
    retried = response.json()
    assert (retried["status"], retried["attempts"], retried["error"]) == (
        "queued",
        0,
        None,
    )
    assert retried["history"] == failed["history"]
    second = receive_one(moto_stack)
    assert second["MessageId"] != first["MessageId"]

    # When a worker with enough time runs the new message
    result = lambda_handler(
        event_of(moto_stack, second), FakeLambdaContext(aws_request_id="req-retry")
    )

    # Then the job succeeds on attempt 1 of its new budget, after the old attempt
    assert result == {"batchItemFailures": []}
    done = get(api, job["id"])
    assert (done["status"], done["attempts"], done["result"]) == (
        "succeeded",
        1,
        {"slept": 0.5},
    )
    assert history_of(done) == [
        (1, "DeadlineExceeded", "req-short"),
        (1, None, "req-retry"),
    ]

    # And a succeeded job cannot be retried
    assert api.post(f"/jobs/{job['id']}/retry", headers=AS_ANN).status_code == 409


# --------------------------------------------------------------------- delayed jobs
def test_a_delayed_job_is_queued_with_its_run_after_until_sqs_delivers_it(
    moto_stack: MotoStack, api: TestClient
) -> None:
    # When a job is submitted with a one-minute delay
    job = submit(api, type="echo", payload={}, delay_seconds=60)

    # Then it shows queued with the time its first delivery is due
    shown = get(api, job["id"])
    assert shown["status"] == "queued"
    assert parse(shown["run_after"]) == parse(shown["created_at"]) + timedelta(
        seconds=60
    )
    # And SQS holds its message back
    assert moto_stack.receive() == []
    assert queue_counts(moto_stack) == ("0", "0", "1")
