"""Never move backwards (issue 22): each of the six ways a late, repeated or lost-answer write broke
a promise on main b415618, replayed deterministically through the template's functions (the API
app, the worker and dead-letter handlers) on a real (serialized) moto server, with the fault
injected on the functions' own botocore clients (`tests.support.faults`: `Held` holds a write's
answer until the test lets botocore send it again, `Late` applies a write after its caller gave
up, `Hook` places another actor's step exactly between two of the caller's).

1. A stale outcome ends a newer run (ABA on `attempts`).
2. A dead letter ends a job that is running.
3. A dead letter from before a retry kills the retry.
4. Cancel racing a requeue answers 409 for a queued job.
5. Progress goes backwards.
6. Own writes are recognised only while they are the item's last write (a submit answers 503
   for a job it stored; a retry answers 409 for a retry it applied).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jobline import bootstrap
from jobline.aws.items import item_to_job
from jobline.config import Settings
from jobline.errors import JobHandlerError, PermanentJobError
from jobline.models import Job, JobStatus
from jobline.registry import JobContext, JobTypeRegistry
from jobline_api.app import create_app
from jobline_dead_letters.handler import lambda_handler as dead_letter_handler
from jobline_local.poller import lambda_record
from jobline_worker.handler import lambda_handler as worker

from tests.conftest import REGION, FakeLambdaContext, ServerStack, sqs_event
from tests.support.fakes import AnyInput, job_type_of
from tests.support.faults import Call, Held, Hook, Late, item_key

ANN = {"X-Dev-User": "ann"}
WAIT_S = 20.0

Script = Callable[[AnyInput, JobContext], Any]
SCRIPTS: dict[str, Script] = {}
"""What the `scripted` job type does, by the payload's `script`: each test sets its own."""


def scripted(payload: AnyInput, context: JobContext) -> Any:
    return SCRIPTS[payload.root["script"]](payload, context)


@pytest.fixture(autouse=True)
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The deployment's job types plus `scripted` (functions build their service on first use)."""
    default = bootstrap.default_registry

    def with_scripted(settings: Settings | None = None) -> JobTypeRegistry:
        types = default(settings)
        types.register(job_type_of("scripted", scripted))
        return types

    monkeypatch.setattr(bootstrap, "default_registry", with_scripted)
    monkeypatch.setenv("JOBLINE_PROGRESS_INTERVAL_S", "0.1")
    bootstrap.reset()
    yield
    SCRIPTS.clear()


@pytest.fixture
def api(server_stack: ServerStack) -> Iterator[TestClient]:
    with TestClient(create_app(allow_dev_identity=True)) as client:
        yield client


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=4) as executor:
        yield executor


def submit(api: TestClient, script: str, **fields: Any) -> str:
    response = api.post(
        "/jobs",
        json={"type": "scripted", "payload": {"script": script}, **fields},
        headers=ANN,
    )
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def run(stack: ServerStack, messages: list[dict[str, Any]]) -> dict[str, Any]:
    response: dict[str, Any] = worker(
        sqs_event(messages, stack.queue_arn), FakeLambdaContext()
    )
    return response


def job_of(stack: ServerStack, job_id: str) -> Job:
    item = stack.item(job_id)
    assert item is not None
    return item_to_job(item)


def runs_and_attempts(job: Job) -> list[tuple[int, int, str | None]]:
    return [
        (entry.run, entry.attempt, entry.error.type if entry.error else None)
        for entry in job.history
    ]


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def dead_letter(stack: ServerStack, body: str) -> dict[str, Any]:
    """`body` moved to the jobs DLQ (as SQS does after maxReceiveCount), received and handed to
    the dead-letter consumer's handler."""
    stack.sqs.send_message(QueueUrl=stack.dlq_url, MessageBody=body)
    [message] = stack.receive(stack.dlq_url)
    arn = stack.provisioned.queue_arns["JobsDeadLetterQueue"]
    event = {"Records": [lambda_record(message, arn, REGION)]}
    response: dict[str, Any] = dead_letter_handler(
        event, FakeLambdaContext(timeout_s=30)
    )
    return response


def sets(attribute: str, value: str) -> Callable[[Call], bool]:
    """An UpdateItem that sets `attribute` to the string `value`."""

    def matches(call: Call) -> bool:
        names = call.params.get("ExpressionAttributeNames", {})
        values = call.params.get("ExpressionAttributeValues", {})
        return call.kind == "dynamodb.UpdateItem" and any(
            name == attribute and values.get(f":v{key[2:]}") == {"S": value}
            for key, name in names.items()
            if key.startswith("#f")
        )

    return matches


def receive_run(
    stack: ServerStack, job_id: str, run_number: int
) -> list[dict[str, Any]]:
    """The message the outbox sent for the job's run `run_number` (others are dropped)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        for message in stack.receive():
            body = json.loads(message["Body"])
            if (body["job_id"], body.get("run")) == (job_id, run_number):
                return [message]
        time.sleep(0.05)
    raise AssertionError(f"no message for run {run_number} of {job_id}")


def progress_percent(stack: ServerStack, job_id: str) -> float | None:
    progress = job_of(stack, job_id).progress
    return None if progress is None else progress.percent


# ---------------------------------------------------------------------------------- 1
def test_a_stale_outcome_never_ends_a_newer_run(
    server_stack: ServerStack, api: TestClient, pool: ThreadPoolExecutor
) -> None:
    # Given a job whose first run fails for good, and whose second run waits for the test
    second_run_started, second_run_may_end = threading.Event(), threading.Event()

    def fails_then_succeeds(payload: AnyInput, context: JobContext) -> Any:
        if context.run == 1:
            raise PermanentJobError("HttpStatusError: 503")
        second_run_started.set()
        second_run_may_end.wait(WAIT_S)
        return {"ok": True}

    SCRIPTS["aba"] = fails_then_succeeds
    job_id = submit(api, "aba", max_attempts=1)
    first_messages = server_stack.receive()
    # And the first run's `failed` write is applied, but its answer is held (botocore will
    # send the same write again once the test lets it)
    held = server_stack.faults.script(
        Held(), "dynamodb.UpdateItem", where=sets("status", JobStatus.FAILED.value)
    )

    # When the first run's worker records the failure (its answer held)...
    first = pool.submit(run, server_stack, first_messages)
    wait_for(lambda: held.fired is not None, "the failed write")
    assert job_of(server_stack, job_id).status is JobStatus.FAILED
    # ...the client retries the failed job, and a worker claims its second run
    retried = api.post(f"/jobs/{job_id}/retry", headers=ANN)
    assert (retried.status_code, retried.json()["run"]) == (200, 2)
    second = pool.submit(run, server_stack, receive_run(server_stack, job_id, 2))
    assert second_run_started.wait(WAIT_S)
    # ...and only then does the first run's write go out again
    assert held.fired is not None and isinstance(held.fired.fault, Held)
    held.fired.fault.release.set()
    assert first.result(WAIT_S) == {"batchItemFailures": []}

    # Then the second run is still running (the stale write did not land on it)...
    running = job_of(server_stack, job_id)
    assert (running.status, running.run, running.attempts) == (JobStatus.RUNNING, 2, 1)
    # ...and its own outcome is the job's: run 1 failed, run 2 succeeded
    second_run_may_end.set()
    assert second.result(WAIT_S) == {"batchItemFailures": []}
    done = job_of(server_stack, job_id)
    assert (done.status, done.run, done.result) == (
        JobStatus.SUCCEEDED,
        2,
        {"ok": True},
    )
    assert runs_and_attempts(done) == [(1, 1, "PermanentJobError"), (2, 1, None)]


# ---------------------------------------------------------------------------------- 2
def test_a_dead_lettered_copy_of_a_running_jobs_message_leaves_it_running(
    server_stack: ServerStack, api: TestClient, pool: ThreadPoolExecutor
) -> None:
    # Given a job running under a live lease
    started, may_end = threading.Event(), threading.Event()

    def waits(payload: AnyInput, context: JobContext) -> Any:
        started.set()
        may_end.wait(WAIT_S)
        return {"done": True}

    SCRIPTS["long"] = waits
    job_id = submit(api, "long")
    [message] = server_stack.receive()
    running = pool.submit(run, server_stack, [message])
    assert started.wait(WAIT_S)

    # When a second copy of its message reaches the DLQ (bounced to maxReceiveCount)
    assert dead_letter(server_stack, message["Body"]) == {"batchItemFailures": []}

    # Then the job is still running, and its handler's result is recorded
    assert job_of(server_stack, job_id).status is JobStatus.RUNNING
    may_end.set()
    assert running.result(WAIT_S) == {"batchItemFailures": []}
    done = job_of(server_stack, job_id)
    assert (done.status, done.result) == (JobStatus.SUCCEEDED, {"done": True})


# ---------------------------------------------------------------------------------- 3
def test_a_dead_letter_from_before_a_retry_leaves_the_retry_alone(
    server_stack: ServerStack, api: TestClient
) -> None:
    # Given a job whose first run failed, and a copy of that run's message SQS dead-lettered
    def first_run_fails(payload: AnyInput, context: JobContext) -> Any:
        if context.run == 1:
            raise PermanentJobError("first run fails")
        return {"ok": True}

    SCRIPTS["fails_once"] = first_run_fails
    job_id = submit(api, "fails_once", max_attempts=1)
    [message] = server_stack.receive()
    assert run(server_stack, [message]) == {"batchItemFailures": []}
    assert job_of(server_stack, job_id).status is JobStatus.FAILED
    assert json.loads(message["Body"])["run"] == 1

    # When the client retries it, and only then does the dead-letter consumer get the old copy
    assert api.post(f"/jobs/{job_id}/retry", headers=ANN).status_code == 200
    assert dead_letter(server_stack, message["Body"]) == {"batchItemFailures": []}

    # Then the retry's run is still queued, and it runs
    queued = job_of(server_stack, job_id)
    assert (queued.status, queued.run) == (JobStatus.QUEUED, 2)
    assert run(server_stack, receive_run(server_stack, job_id, 2)) == {
        "batchItemFailures": []
    }
    assert job_of(server_stack, job_id).status is JobStatus.SUCCEEDED


# ---------------------------------------------------------------------------------- 4
def test_cancel_racing_a_requeue_cancels_the_queued_job(
    server_stack: ServerStack, api: TestClient, pool: ThreadPoolExecutor
) -> None:
    # Given a running attempt that will fail retryably when the test lets it
    started, may_fail = threading.Event(), threading.Event()

    def fails_when_told(payload: AnyInput, context: JobContext) -> Any:
        started.set()
        may_fail.wait(WAIT_S)
        raise JobHandlerError("transient")

    SCRIPTS["requeued"] = fails_when_told
    job_id = submit(api, "requeued", max_attempts=3)
    attempt: Future[dict[str, Any]] = pool.submit(
        run, server_stack, server_stack.receive()
    )
    assert started.wait(WAIT_S)

    # And the requeue lands exactly between the cancel's read and its write
    def requeue() -> None:
        may_fail.set()
        attempt.result(WAIT_S)
        assert job_of(server_stack, job_id).status is JobStatus.QUEUED

    server_stack.faults.script(
        Hook(requeue),
        "dynamodb.UpdateItem",
        where=lambda call: (
            item_key(job_id)(call)
            and "cancel_requested_at"
            in call.params.get("ExpressionAttributeNames", {}).values()
        ),
    )

    # When the client cancels it
    response = api.post(f"/jobs/{job_id}/cancel", headers=ANN)

    # Then the queued job is cancelled (200), not refused with 409 "it is queued"
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert job_of(server_stack, job_id).status is JobStatus.CANCELLED


# ---------------------------------------------------------------------------------- 5
def test_progress_never_goes_backwards(
    server_stack: ServerStack, api: TestClient, pool: ThreadPoolExecutor
) -> None:
    # Given a handler that reports 12.6 %, then 47.5 %, then waits
    reported, may_end = threading.Event(), threading.Event()

    def reports(payload: AnyInput, context: JobContext) -> Any:
        context.report_progress(12.6, "early")
        time.sleep(0.25)  # past the progress interval (0.1 s)
        context.report_progress(47.5, "later")
        reported.set()
        may_end.wait(WAIT_S)
        return {}

    SCRIPTS["progress"] = reports
    job_id = submit(api, "progress")
    # And the first progress write is a straggler: its first try goes out only later
    late = server_stack.faults.script(
        Late(), "dynamodb.UpdateItem", where=lambda c: b"early" in c.body
    )
    attempt = pool.submit(run, server_stack, server_stack.receive())
    assert reported.wait(WAIT_S)
    assert progress_percent(server_stack, job_id) == 47.5

    # When the straggler reaches DynamoDB after the newer report
    assert late.fired is not None and isinstance(late.fired.fault, Late)
    late.fired.fault.release.set()
    assert late.fired.fault.sent.wait(WAIT_S)

    # Then it was refused, and the job still shows the newer report
    assert late.fired.fault.status == [400]
    assert progress_percent(server_stack, job_id) == 47.5
    may_end.set()
    assert attempt.result(WAIT_S) == {"batchItemFailures": []}
    assert progress_percent(server_stack, job_id) == 47.5


# ---------------------------------------------------------------------------------- 6
def test_a_submit_recognises_its_job_after_a_worker_wrote_to_it(
    server_stack: ServerStack, api: TestClient, pool: ThreadPoolExecutor
) -> None:
    # Given a submit whose PutItem is applied but whose answer is held
    SCRIPTS["quick"] = lambda payload, context: {"ok": True}
    held = server_stack.faults.script(Held(), "dynamodb.PutItem")
    answer = pool.submit(
        api.post,
        "/jobs",
        json={"type": "scripted", "payload": {"script": "quick"}},
        headers=ANN,
    )
    wait_for(lambda: held.fired is not None, "the PutItem")

    # When, meanwhile, the outbox sends its message and a worker runs it (writing the item)
    [message] = server_stack.receive()
    assert run(server_stack, [message]) == {"batchItemFailures": []}
    job_id = json.loads(message["Body"])["job_id"]
    assert job_of(server_stack, job_id).status is JobStatus.SUCCEEDED
    # ...and only then botocore sends the PutItem again
    assert held.fired is not None and isinstance(held.fired.fault, Held)
    held.fired.fault.release.set()

    # Then the submit answers as for the job it stored (202), not 503; there is one job
    response = answer.result(WAIT_S)
    assert response.status_code == 202, response.text
    assert response.json()["id"] == job_id
    assert server_stack.receive() == []


def test_a_retry_recognises_its_write_after_a_worker_claimed_the_job(
    server_stack: ServerStack, api: TestClient, pool: ThreadPoolExecutor
) -> None:
    # Given a cancelled job, and a retry whose write is applied but whose answer is held
    started, may_end = threading.Event(), threading.Event()

    def waits(payload: AnyInput, context: JobContext) -> Any:
        started.set()
        may_end.wait(WAIT_S)
        return {}

    SCRIPTS["retried"] = waits
    job_id = submit(api, "retried")
    assert api.post(f"/jobs/{job_id}/cancel", headers=ANN).status_code == 200
    server_stack.receive()  # the first run's message: its job is cancelled
    server_stack.sqs.purge_queue(QueueUrl=server_stack.queue_url)
    held = server_stack.faults.script(
        Held(), "dynamodb.UpdateItem", where=sets("status", JobStatus.QUEUED.value)
    )
    answer = pool.submit(api.post, f"/jobs/{job_id}/retry", headers=ANN)
    wait_for(lambda: held.fired is not None, "the retry's write")

    # When, meanwhile, a worker claims the retried run (its claim is the item's last write)
    second_run = receive_run(server_stack, job_id, 2)
    attempt = pool.submit(run, server_stack, second_run)
    assert started.wait(WAIT_S)
    assert held.fired is not None and isinstance(held.fired.fault, Held)
    held.fired.fault.release.set()

    # Then the retry answers 200 with its job (not 409 "it is running")
    response = answer.result(WAIT_S)
    assert response.status_code == 200, response.text
    assert response.json()["run"] == 2
    may_end.set()
    assert attempt.result(WAIT_S) == {"batchItemFailures": []}
    assert job_of(server_stack, job_id).status is JobStatus.SUCCEEDED
