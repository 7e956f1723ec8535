"""The jobs dead-letter queue under moto: the consumer marks dead-lettered jobs with their last
error, acknowledges what names no job, and POST /jobs/{id}/retry brings a job back to life.

SQS moving a message to the dead-letter queue is played by deleting it from the jobs queue and
sending its body to the DLQ; the DLQ's messages are then received as Lambda's event source mapping
receives them and handed to the consumer's handler.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jobline.aws.repository import DynamoJobRepository
from jobline.clock import utcnow
from jobline.models import Attempt, Job, JobError, JobStatus
from jobline_api.app import create_app
from jobline_dead_letters.handler import lambda_handler
from jobline_local.poller import lambda_record
from jobline_worker.handler import lambda_handler as worker_handler

from tests.conftest import REGION, FakeLambdaContext, MotoStack, sqs_event

ANN = {"X-Dev-User": "ann"}
JOB_ID = "5d41402abc4b2a76b9719d911017c592"
FIRST_ERROR = JobError(type="HttpStatusError", message="GET https://example.com -> 503")


# ---------------------------------------------------------------------------- helpers
@pytest.fixture
def api(moto_stack: MotoStack) -> Iterator[TestClient]:
    """The HTTP API on the same stack, with the development identity."""
    with TestClient(create_app(allow_dev_identity=True)) as client:
        yield client


def repository(stack: MotoStack) -> DynamoJobRepository:
    return DynamoJobRepository(stack.dynamodb, stack.table)


def stored(stack: MotoStack, job_id: str = JOB_ID) -> Job:
    job = repository(stack).get(job_id)
    assert job is not None, f"job {job_id} is not stored"
    return job


def seed_running_job_whose_worker_died(stack: MotoStack) -> Job:
    """An echo job on its second attempt, the first failed, the second's worker gone (lease over)."""
    now = utcnow()
    first_started = now - timedelta(minutes=30)
    job = Job(
        id=JOB_ID,
        owner="ann",
        type="echo",
        status=JobStatus.RUNNING,
        payload={"n": 1},
        error=FIRST_ERROR,
        attempts=2,
        max_attempts=3,
        created_at=first_started,
        updated_at=now - timedelta(minutes=20),
        started_at=now - timedelta(minutes=20),
        lease_until=now - timedelta(minutes=18),
        attempt_request_id="req-attempt-2",
        history=(
            Attempt(
                attempt=1,
                started_at=first_started,
                finished_at=first_started + timedelta(seconds=2),
                error=FIRST_ERROR,
                request_id="req-attempt-1",
                duration_ms=2000,
            ),
        ),
    )
    repository(stack).create(job, first_started)
    return job


def job_message(job: Job) -> str:
    """The body of the job's message on the jobs queue."""
    return json.dumps({"job_id": job.id, "owner": job.owner, "job_type": job.type})


def dead_letter_bodies(stack: MotoStack, *bodies: str) -> dict[str, Any]:
    """Put the bodies on the jobs DLQ (as SQS moves them there) and receive them as the
    consumer's Lambda event."""
    for body in bodies:
        stack.sqs.send_message(QueueUrl=stack.dlq_url, MessageBody=body)
    messages = stack.receive(stack.dlq_url)
    assert len(messages) == len(bodies)
    arn = stack.provisioned.queue_arns["JobsDeadLetterQueue"]
    return {"Records": [lambda_record(message, arn, REGION) for message in messages]}


def consume(event: dict[str, Any]) -> Any:
    """The dead-letter consumer's handler, with its template timeout."""
    return lambda_handler(event, FakeLambdaContext(timeout_s=30))


def log_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


# --------------------------------------------------------------------------- queued
def test_a_queued_job_keeps_its_last_error_when_dead_lettered(
    loopback_targets: None,
    moto_stack: MotoStack,
    api: TestClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given an http.request job whose first attempt failed against a closed loopback port
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(name, "*")
    submitted = api.post(
        "/jobs",
        json={
            "type": "http.request",
            "payload": {"url": "http://127.0.0.1:9/", "timeout_s": 1},
        },
        headers=ANN,
    )
    job_id = submitted.json()["id"]
    (message,) = moto_stack.receive()
    event = sqs_event([message], moto_stack.provisioned.queue_arns["JobsQueue"])
    assert worker_handler(event, FakeLambdaContext()) == {
        "batchItemFailures": [{"itemIdentifier": message["MessageId"]}]
    }
    failed_once = api.get(f"/jobs/{job_id}", headers=ANN).json()
    assert (failed_once["status"], failed_once["attempts"]) == ("queued", 1)
    assert failed_once["error"] is not None
    # And SQS has given up on its message: it left the jobs queue for the DLQ
    moto_stack.sqs.delete_message(
        QueueUrl=moto_stack.queue_url, ReceiptHandle=message["ReceiptHandle"]
    )
    dlq_event = dead_letter_bodies(moto_stack, message["Body"])

    # When the dead-letter consumer handles it
    result = consume(dlq_event)

    # Then the record is acknowledged and the job is dead-lettered with the error it had
    assert result == {"batchItemFailures": []}
    job = api.get(f"/jobs/{job_id}", headers=ANN).json()
    assert job["status"] == "dead_lettered"
    assert job["error"] == failed_once["error"]
    assert job["attempts"] == 1
    assert job["history"] == failed_once["history"]
    assert job["finished_at"] == job["updated_at"]


def test_a_job_that_never_failed_is_dead_lettered_with_the_receive_count(
    moto_stack: MotoStack,
) -> None:
    # Given a queued job without an error
    now = utcnow()
    job = Job(
        id=JOB_ID,
        owner="ann",
        type="echo",
        status=JobStatus.QUEUED,
        payload={},
        created_at=now,
        updated_at=now,
    )
    repository(moto_stack).create(job, now)
    event = dead_letter_bodies(moto_stack, job_message(job))
    receives = event["Records"][0]["attributes"]["ApproximateReceiveCount"]

    # When the consumer handles its dead-lettered message
    assert consume(event) == {"batchItemFailures": []}

    # Then the job's error says SQS gave up on its message
    assert stored(moto_stack).error == JobError(
        type="DeadLettered",
        message=f"the message was dead-lettered after {receives} receives",
    )
    assert stored(moto_stack).status is JobStatus.DEAD_LETTERED


# -------------------------------------------------------------------------- running
def test_a_running_job_whose_worker_died_is_dead_lettered_then_retried(
    moto_stack: MotoStack, api: TestClient
) -> None:
    # Given a running job whose worker died, and its message in the DLQ
    seeded = seed_running_job_whose_worker_died(moto_stack)
    event = dead_letter_bodies(moto_stack, job_message(seeded))

    # When the consumer handles it
    assert consume(event) == {"batchItemFailures": []}

    # Then the job is dead-lettered with its last error, the lost attempt added to its history
    job = stored(moto_stack)
    assert (job.status, job.error, job.attempts, job.lease_until) == (
        JobStatus.DEAD_LETTERED,
        FIRST_ERROR,
        2,
        None,
    )
    assert job.history == (
        seeded.history[0],
        Attempt(
            attempt=2,
            started_at=seeded.started_at or seeded.updated_at,
            finished_at=None,
            error=JobError(
                type="WorkerLost",
                message="the worker stopped (crash, timeout or out of memory) before "
                "recording an outcome",
            ),
            request_id="req-attempt-2",
        ),
    )
    assert moto_stack.receive() == []

    # When its owner retries it
    retried = api.post(f"/jobs/{JOB_ID}/retry", headers=ANN)

    # Then it is queued again with a fresh budget, its history kept, and a new message
    assert retried.status_code == 200, retried.text
    body = retried.json()
    assert (body["status"], body["attempts"], body["error"]) == ("queued", 0, None)
    assert len(body["history"]) == 2
    (message,) = moto_stack.receive()
    assert json.loads(message["Body"]) == {
        "job_id": JOB_ID,
        "owner": "ann",
        "job_type": "echo",
        "run": 2,
    }
    assert body["run"] == 2
    # And retrying it again while queued is refused
    assert api.post(f"/jobs/{JOB_ID}/retry", headers=ANN).status_code == 409

    # When the worker handles the new message
    worker_event = sqs_event([message], moto_stack.provisioned.queue_arns["JobsQueue"])
    assert worker_handler(worker_event, FakeLambdaContext()) == {
        "batchItemFailures": []
    }

    # Then the job succeeds on the first attempt of its new budget, all three attempts kept
    done = api.get(f"/jobs/{JOB_ID}", headers=ANN).json()
    assert (done["status"], done["attempts"], done["result"]) == (
        "succeeded",
        1,
        {"n": 1},
    )
    assert [entry["attempt"] for entry in done["history"]] == [1, 2, 1]
    assert done["history"][-1]["error"] is None


# ------------------------------------------------------------------------- finished
@pytest.mark.parametrize(
    "status", [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED]
)
def test_a_finished_job_is_left_alone(moto_stack: MotoStack, status: JobStatus) -> None:
    # Given a finished job whose (duplicate) message was dead-lettered
    now = utcnow()
    job = Job(
        id=JOB_ID,
        owner="ann",
        type="echo",
        status=status,
        payload={},
        attempts=1,
        created_at=now,
        updated_at=now,
        finished_at=now,
        expires_at=int(now.timestamp()) + 3600,
    )
    repository(moto_stack).create(job, now)

    # When the consumer handles the message
    result = consume(dead_letter_bodies(moto_stack, job_message(job)))

    # Then it is acknowledged and the job is exactly as it was
    assert result == {"batchItemFailures": []}
    assert stored(moto_stack) == job


# ----------------------------------------------------------------- no job to mark
def test_records_that_name_no_job_are_logged_and_acknowledged(
    moto_stack: MotoStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a job of bob's, and dead-lettered messages: not JSON, no owner, an unknown job,
    # and bob's job claimed for ann
    now = utcnow()
    bobs = Job(
        id=JOB_ID,
        owner="bob",
        type="echo",
        status=JobStatus.QUEUED,
        payload={},
        created_at=now,
        updated_at=now,
    )
    repository(moto_stack).create(bobs, now)
    event = dead_letter_bodies(
        moto_stack,
        "not json",
        json.dumps({"job_id": JOB_ID}),
        json.dumps({"job_id": "0" * 32, "owner": "ann"}),
        json.dumps({"job_id": JOB_ID, "owner": "ann"}),
    )
    capsys.readouterr()

    # When the consumer handles them
    result = consume(event)

    # Then all are acknowledged (they would only loop), and bob's job is untouched
    assert result == {"batchItemFailures": []}
    assert stored(moto_stack) == bobs
    # And each is logged as an error with its message id
    lines = log_lines(capsys.readouterr().out)
    logged = {
        line["message_id"]: line["event"] for line in lines if line["level"] == "error"
    }
    by_body = {record["body"]: record["messageId"] for record in event["Records"]}
    assert logged == {
        by_body["not json"]: "dead_letter.malformed",
        by_body[json.dumps({"job_id": JOB_ID})]: "dead_letter.malformed",
        by_body[json.dumps({"job_id": "0" * 32, "owner": "ann"})]: (
            "dead_letter.unknown_job"
        ),
        by_body[json.dumps({"job_id": JOB_ID, "owner": "ann"})]: (
            "dead_letter.unknown_job"
        ),
    }


def test_a_storage_failure_returns_the_records(moto_stack: MotoStack) -> None:
    # Given dead-lettered messages and a table that is gone
    seeded = seed_running_job_whose_worker_died(moto_stack)
    event = dead_letter_bodies(moto_stack, job_message(seeded), "not json")
    moto_stack.dynamodb.delete_table(TableName=moto_stack.table)

    # When the consumer handles them
    result = consume(event)

    # Then the job's record is returned for redelivery; the malformed one is acknowledged
    (job_record,) = [r for r in event["Records"] if r["body"] != "not json"]
    assert result == {
        "batchItemFailures": [{"itemIdentifier": job_record["messageId"]}]
    }
