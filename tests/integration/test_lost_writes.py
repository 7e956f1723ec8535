"""Never lose a job: each way jobs were lost or promises broken, with exactly one scripted fault, on
a real (serialized) moto server: a write applied whose answer was lost (botocore retries it and
the retry meets its own earlier success), an environment killed between two steps, a duplicate
delivery inside a retry's backoff."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jobline.aws.items import item_to_job, job_to_item
from jobline.clock import utcnow
from jobline.models import JobStatus
from jobline_api.app import attach_environment, create_app
from jobline_local.poller import InvocationKilled
from jobline_worker.handler import lambda_handler as worker

from tests.conftest import FakeLambdaContext, ServerStack, sqs_event
from tests.support.faults import (
    Call,
    Kill,
    LostResponse,
    Predicate,
    expression_value,
    item_key,
)

ANN = {"X-Dev-User": "ann"}


@pytest.fixture
def api(server_stack: ServerStack) -> Iterator[TestClient]:
    with TestClient(create_app(allow_dev_identity=True)) as client:
        yield client


def killed_api() -> TestClient:
    """An API environment of its own for a request whose environment is killed: no lifespan
    (a portal per request, which the kill takes down with it), the service attached by hand."""
    app = create_app(allow_dev_identity=True)
    attach_environment(app)
    return TestClient(app)


def sets_status(status: JobStatus) -> Predicate:
    """Matches an UpdateItem that sets the job's status to `status`."""

    def matches(call: Call) -> bool:
        names = call.params.get("ExpressionAttributeNames", {})
        values = call.params.get("ExpressionAttributeValues", {})
        return any(
            attribute == "status" and values.get(f":v{name[2:]}") == {"S": status.value}
            for name, attribute in names.items()
            if name.startswith("#f")
        )

    return matches


def submit(api: TestClient, body: dict[str, Any], **headers: str) -> Any:
    return api.post("/jobs", json=body, headers={**ANN, **headers})


def run(stack: ServerStack, messages: list[dict[str, Any]]) -> dict[str, Any]:
    response: dict[str, Any] = worker(
        sqs_event(messages, stack.queue_arn), FakeLambdaContext()
    )
    return response


def job_of(stack: ServerStack, job_id: str) -> Any:
    item = stack.item(job_id)
    assert item is not None
    return item_to_job(item)


@pytest.mark.parametrize("as_timeout", [False, True], ids=["500", "timeout"])
@pytest.mark.parametrize("key", [None, "order-1"], ids=["no-key", "key"])
def test_a_submit_whose_put_was_applied_but_whose_answer_was_lost_is_created(
    server_stack: ServerStack, api: TestClient, key: str | None, as_timeout: bool
) -> None:
    # Given a PutItem that DynamoDB applies but whose answer is lost (botocore retries it)
    lost = server_stack.faults.script(
        LostResponse(as_timeout=as_timeout), "dynamodb.PutItem"
    )

    # When a job is submitted (with or without an idempotency key)
    response = submit(
        api, {"type": "echo"}, **({"Idempotency-Key": key} if key else {})
    )

    # Then it is created (202), neither a replay (200) nor a 503 for a job that is stored
    assert lost.fired is not None and lost.fired.server_status == 200
    assert response.status_code == 202, response.text
    assert server_stack.server.requests["dynamodb.PutItem"] == 2
    # And the outbox sends its one message
    [message] = server_stack.receive()
    assert json.loads(message["Body"])["job_id"] == response.json()["id"]


def test_an_api_killed_after_the_write_leaves_a_job_that_runs(
    server_stack: ServerStack, api: TestClient
) -> None:
    # Given an API environment that dies once the PutItem has reached DynamoDB
    server_stack.faults.script(
        Kill(InvocationKilled, after_send=True), "dynamodb.PutItem"
    )

    # When a job is submitted with a key, the caller gets no answer
    with pytest.raises(InvocationKilled):
        submit(
            killed_api(),
            {"type": "echo", "payload": {"n": 1}},
            **{"Idempotency-Key": "k-1"},
        )

    # Then the stored job is dispatched anyway and runs to success
    messages = server_stack.receive()
    assert len(messages) == 1
    assert run(server_stack, messages) == {"batchItemFailures": []}
    # And the caller's retry with its key finds it (200), sending nothing more
    again = submit(
        api, {"type": "echo", "payload": {"n": 1}}, **{"Idempotency-Key": "k-1"}
    )
    assert (again.status_code, again.json()["status"]) == (200, "succeeded")
    assert server_stack.receive() == []


def test_a_claim_whose_answer_was_lost_runs_the_handler(
    server_stack: ServerStack, api: TestClient
) -> None:
    # Given a job with one attempt, and a claim that is applied but whose answer is lost
    job_id = submit(api, {"type": "echo", "max_attempts": 1}).json()["id"]
    messages = server_stack.receive()
    server_stack.faults.script(
        LostResponse(),
        "dynamodb.UpdateItem",
        where=expression_value(":expect_status0", JobStatus.QUEUED.value),
    )

    # When the worker runs it
    result = run(server_stack, messages)

    # Then the retry recognised its own claim: the handler ran, the job succeeded on attempt 1
    job = job_of(server_stack, job_id)
    assert result == {"batchItemFailures": []}
    assert (job.status, job.attempts, job.result) == (JobStatus.SUCCEEDED, 1, {})
    assert [entry.error for entry in job.history] == [None]


def test_a_requeue_whose_answer_was_lost_returns_the_message_for_the_retry(
    loopback_targets: None, server_stack: ServerStack, api: TestClient
) -> None:
    # Given a job whose attempt fails retryably (a closed port), and whose requeue write is
    # applied but answered with a 500
    url = "http://127.0.0.1:9/"
    job_id = submit(api, {"type": "http.request", "payload": {"url": url}}).json()["id"]
    messages = server_stack.receive()
    lost = server_stack.faults.script(
        LostResponse(),
        "dynamodb.UpdateItem",
        where=sets_status(JobStatus.QUEUED),
    )

    # When the worker runs it
    result = run(server_stack, messages)

    # Then the message goes back for the next attempt (not acknowledged as "changed
    # elsewhere"), and the job is queued with one history entry
    assert lost.fired is not None
    assert result == {
        "batchItemFailures": [{"itemIdentifier": messages[0]["MessageId"]}]
    }
    job = job_of(server_stack, job_id)
    assert (job.status, job.attempts, len(job.history)) == (JobStatus.QUEUED, 1, 1)


def test_a_reclaim_whose_answer_was_lost_records_the_lost_attempt_once(
    server_stack: ServerStack, api: TestClient
) -> None:
    # Given a job a dead worker left running (its lease ended), and a reclaim applied but
    # answered with a timeout
    job_id = submit(api, {"type": "echo"}).json()["id"]
    messages = server_stack.receive()
    stored = job_of(server_stack, job_id)
    dead = stored.model_copy(
        update={
            "status": JobStatus.RUNNING,
            "attempts": 1,
            "started_at": utcnow() - timedelta(minutes=5),
            "lease_until": utcnow() - timedelta(seconds=1),
            "attempt_request_id": "req-dead",
            "dispatch": None,
        }
    )
    server_stack.dynamodb.put_item(TableName=server_stack.table, Item=job_to_item(dead))
    server_stack.faults.script(
        LostResponse(as_timeout=True),
        "dynamodb.UpdateItem",
        where=lambda call: (
            "list_append" in call.params.get("UpdateExpression", "")
            and "#attempts = #attempts + :one"
            in call.params.get("UpdateExpression", "")
        ),
    )

    # When the message is delivered again
    assert run(server_stack, messages) == {"batchItemFailures": []}

    # Then the job ran once more, and its history has one WorkerLost entry, not two
    job = job_of(server_stack, job_id)
    assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 2)
    assert [
        (entry.attempt, entry.error.type if entry.error else None)
        for entry in job.history
    ] == [(1, "WorkerLost"), (2, None)]


def test_an_outcome_whose_answer_was_lost_is_recorded_once(
    server_stack: ServerStack, api: TestClient
) -> None:
    # Given a job whose success write is applied but answered with a 500
    job_id = submit(api, {"type": "echo"}).json()["id"]
    messages = server_stack.receive()
    server_stack.faults.script(
        LostResponse(),
        "dynamodb.UpdateItem",
        where=expression_value(":expect_status0", JobStatus.RUNNING.value),
    )

    # When the worker runs it
    assert run(server_stack, messages) == {"batchItemFailures": []}

    # Then it succeeded with one history entry (the retry met its own write)
    job = job_of(server_stack, job_id)
    assert (job.status, len(job.history)) == (JobStatus.SUCCEEDED, 1)


def test_a_duplicate_delivery_inside_the_backoff_does_not_start_an_attempt(
    loopback_targets: None, server_stack: ServerStack, api: TestClient
) -> None:
    # Given a job whose first attempt failed retryably (queued, due after its backoff)
    url = "http://127.0.0.1:9/"
    job_id = submit(api, {"type": "http.request", "payload": {"url": url}}).json()["id"]
    messages = server_stack.receive()
    run(server_stack, messages)
    queued = job_of(server_stack, job_id)
    assert queued.status is JobStatus.QUEUED and queued.run_after > utcnow()

    # When a duplicate of its message arrives at once (SQS delivers at least once)
    duplicate = run(server_stack, messages)

    # Then no attempt starts early: the message comes back, the job is as it was
    assert duplicate == {
        "batchItemFailures": [{"itemIdentifier": messages[0]["MessageId"]}]
    }
    assert job_of(server_stack, job_id).attempts == 1


def test_a_retry_killed_after_its_write_is_still_dispatched(
    server_stack: ServerStack, api: TestClient
) -> None:
    # Given a cancelled job, and an API environment that dies once its retry write is applied
    job_id = submit(api, {"type": "echo"}).json()["id"]
    assert api.post(f"/jobs/{job_id}/cancel", headers=ANN).status_code == 200
    server_stack.receive()  # the submit's message (its job is cancelled: a no-op)
    server_stack.sqs.purge_queue(QueueUrl=server_stack.queue_url)
    server_stack.faults.script(
        Kill(InvocationKilled, after_send=True),
        "dynamodb.UpdateItem",
        where=item_key(job_id),
    )

    # When its owner retries it and gets no answer
    with pytest.raises(InvocationKilled):
        killed_api().post(f"/jobs/{job_id}/retry", headers=ANN)

    # Then the queued job gets its message from the outbox and runs
    messages = server_stack.receive()
    assert [json.loads(m["Body"])["job_id"] for m in messages] == [job_id]
    assert run(server_stack, messages) == {"batchItemFailures": []}
    assert job_of(server_stack, job_id).status is JobStatus.SUCCEEDED
