"""The ingest queue under moto: submissions from other systems, in three envelopes, become jobs
exactly as POST /jobs makes them; redeliveries create nothing; invalid submissions are kept as
`rejected` jobs their owner can read; correlation ids reach the log lines.

Messages really go through the template's ingest queue: sent, received as Lambda's event source
mapping receives them, shaped into Lambda's SQS event, handed to the function's handler.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jobline import bootstrap
from jobline.bootstrap import default_registry
from jobline_api.app import create_app
from jobline_ingest.handler import lambda_handler
from jobline_local.poller import lambda_record

from tests.conftest import REGION, FakeLambdaContext, MotoStack
from tests.support.jobfields import TIMELESS_FIELDS

ANN = {"X-Dev-User": "ann"}
SNS_MESSAGE_ID = "b3c1e0a2-7f4d-5a6b-9c8d-2e1f0a9b8c7d"
EVENT_ID = "6a7e8feb-b491-4cf7-a9f1-bf3703467718"
COMPARED = TIMELESS_FIELDS

Envelope = Callable[[Any], str]


def raw(submission: Any) -> str:
    """The submission as the message body (SendMessage, or SNS with raw delivery)."""
    return json.dumps(submission)


def sns(submission: Any, message_id: str = SNS_MESSAGE_ID) -> str:
    """SNS's notification envelope around the submission (SNS -> SQS, raw delivery off)."""
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": message_id,
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:job-requests",
            "Message": json.dumps(submission),
            "Timestamp": "2024-11-26T06:58:31.204Z",
            "SignatureVersion": "1",
            "Signature": "EXAMPLE",
            "SigningCertURL": "https://sns.us-east-1.amazonaws.com/cert.pem",
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
        },
        indent=2,
    )


def eventbridge(submission: Any) -> str:
    """An EventBridge event whose detail is the submission (a rule targeting the queue)."""
    return json.dumps(
        {
            "version": "0",
            "id": EVENT_ID,
            "detail-type": "Job Requested",
            "source": "com.example.orders",
            "account": "123456789012",
            "time": "2024-11-26T06:59:02Z",
            "region": REGION,
            "resources": [],
            "detail": submission,
        }
    )


ENVELOPES: dict[str, Envelope] = {"raw": raw, "sns": sns, "eventbridge": eventbridge}


# ---------------------------------------------------------------------------- helpers
@pytest.fixture
def api(moto_stack: MotoStack) -> Iterator[TestClient]:
    """The HTTP API on the same stack, with the development identity."""
    with TestClient(create_app(allow_dev_identity=True)) as client:
        yield client


def send(stack: MotoStack, body: str, attributes: dict[str, str] | None = None) -> None:
    """Put a message on the ingest queue, as another system would."""
    request: dict[str, Any] = {
        "QueueUrl": stack.provisioned.queue_urls["IngestQueue"],
        "MessageBody": body,
    }
    if attributes:
        request["MessageAttributes"] = {
            name: {"DataType": "String", "StringValue": value}
            for name, value in attributes.items()
        }
    stack.sqs.send_message(**request)


def receive_event(stack: MotoStack) -> dict[str, Any]:
    """The ingest queue's visible messages as the Lambda SQS event the function gets."""
    messages = stack.receive(stack.provisioned.queue_urls["IngestQueue"])
    assert messages, "nothing to receive on the ingest queue"
    arn = stack.provisioned.queue_arns["IngestQueue"]
    return {"Records": [lambda_record(message, arn, REGION) for message in messages]}


def ingest(event: dict[str, Any]) -> Any:
    """The ingest function's handler, with its template timeout."""
    return lambda_handler(event, FakeLambdaContext(timeout_s=30))


def make_visible_again(stack: MotoStack, event: dict[str, Any]) -> None:
    """Return the event's messages to the queue unacknowledged (an invocation that died)."""
    for record in event["Records"]:
        stack.sqs.change_message_visibility(
            QueueUrl=stack.provisioned.queue_urls["IngestQueue"],
            ReceiptHandle=record["receiptHandle"],
            VisibilityTimeout=0,
        )


def derived_id(owner: str, key: str) -> str:
    """The job id the service derives from an owner and an idempotency key."""
    return hashlib.sha256(f"{owner}\x00{key}".encode()).hexdigest()[:32]


def job_count(stack: MotoStack) -> int:
    """Jobs in the table."""
    count: int = stack.dynamodb.scan(TableName=stack.table, Select="COUNT")["Count"]
    return count


def jobs_queue_bodies(stack: MotoStack) -> list[dict[str, Any]]:
    """The bodies of the messages now visible on the jobs queue."""
    return [json.loads(message["Body"]) for message in stack.receive()]


def log_lines(output: str) -> list[dict[str, Any]]:
    """The JSON log lines written to stdout."""
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def only_job_id(stack: MotoStack) -> str:
    """The id of the one job in the table."""
    (item,) = stack.dynamodb.scan(TableName=stack.table)["Items"]
    job_id: str = item["id"]["S"]
    return job_id


# -------------------------------------------------------------------------- envelopes
@pytest.mark.parametrize("envelope", sorted(ENVELOPES))
def test_each_envelope_queues_the_job_exactly_like_post_jobs(
    moto_stack: MotoStack, api: TestClient, envelope: str
) -> None:
    # Given a job submitted over HTTP by ann
    request = {"type": "echo", "payload": {"n": 7}, "max_attempts": 4}
    submitted = api.post("/jobs", json=request, headers=ANN)
    assert submitted.status_code == 202, submitted.text
    over_http = submitted.json()
    assert jobs_queue_bodies(moto_stack) == [
        {"job_id": over_http["id"], "owner": "ann", "job_type": "echo", "run": 1}
    ]

    # When the same submission, naming ann as its owner, arrives on the ingest queue
    send(moto_stack, ENVELOPES[envelope]({**request, "owner": "ann"}))
    result = ingest(receive_event(moto_stack))

    # Then the record is acknowledged and ann sees a second job just like the first
    assert result == {"batchItemFailures": []}
    listed = api.get("/jobs", headers=ANN).json()["items"]
    assert len(listed) == 2
    [ingested_id] = [job["id"] for job in listed if job["id"] != over_http["id"]]
    ingested = api.get(f"/jobs/{ingested_id}", headers=ANN).json()
    assert {name: ingested[name] for name in COMPARED} == {
        name: over_http[name] for name in COMPARED
    }
    assert ingested["status"] == "queued"
    # And it is enqueued with the same kind of message
    assert jobs_queue_bodies(moto_stack) == [
        {"job_id": ingested["id"], "owner": "ann", "job_type": "echo", "run": 1}
    ]


@pytest.mark.parametrize("envelope", sorted(ENVELOPES))
def test_redelivery_of_the_same_message_creates_no_second_job(
    moto_stack: MotoStack, envelope: str
) -> None:
    # Given a submission without an idempotency key, ingested once
    send(moto_stack, ENVELOPES[envelope]({"type": "echo", "payload": {}}))
    event = receive_event(moto_stack)
    assert ingest(event) == {"batchItemFailures": []}
    assert len(jobs_queue_bodies(moto_stack)) == 1

    # When SQS delivers the same message again (the first invocation died before deleting it)
    make_visible_again(moto_stack, event)
    redelivered = receive_event(moto_stack)
    assert redelivered["Records"][0]["messageId"] == event["Records"][0]["messageId"]
    assert redelivered["Records"][0]["attributes"]["ApproximateReceiveCount"] == "2"
    result = ingest(redelivered)

    # Then it is acknowledged, and there is still one job and nothing more is enqueued
    assert result == {"batchItemFailures": []}
    assert job_count(moto_stack) == 1
    assert jobs_queue_bodies(moto_stack) == []


@pytest.mark.parametrize("envelope", ["sns", "eventbridge"])
def test_a_duplicate_from_sns_or_eventbridge_creates_no_second_job(
    moto_stack: MotoStack, envelope: str
) -> None:
    # Given a notification ingested once
    body = ENVELOPES[envelope]({"type": "echo", "payload": {}})
    send(moto_stack, body)
    assert ingest(receive_event(moto_stack)) == {"batchItemFailures": []}
    assert len(jobs_queue_bodies(moto_stack)) == 1

    # When SNS or EventBridge delivers it again: a new SQS message, the same envelope id
    send(moto_stack, body)
    result = ingest(receive_event(moto_stack))

    # Then there is still one job and nothing more is enqueued
    assert result == {"batchItemFailures": []}
    assert job_count(moto_stack) == 1
    assert jobs_queue_bodies(moto_stack) == []


def test_an_idempotency_key_makes_separate_messages_one_job(
    moto_stack: MotoStack,
) -> None:
    # Given a submission with an idempotency key, ingested once
    submission = {
        "type": "echo",
        "payload": {"order": 42},
        "owner": "ann",
        "idempotency_key": "order-42",
    }
    send(moto_stack, raw(submission))
    assert ingest(receive_event(moto_stack)) == {"batchItemFailures": []}
    job_id = derived_id("ann", "order-42")
    assert jobs_queue_bodies(moto_stack) == [
        {"job_id": job_id, "owner": "ann", "job_type": "echo", "run": 1}
    ]

    # When the same submission is sent again as another message
    send(moto_stack, raw(submission))
    result = ingest(receive_event(moto_stack))

    # Then it is acknowledged as a replay of the same job: nothing added, nothing enqueued
    assert result == {"batchItemFailures": []}
    assert only_job_id(moto_stack) == job_id
    assert jobs_queue_bodies(moto_stack) == []


def test_an_idempotency_key_reused_with_another_submission_is_rejected(
    moto_stack: MotoStack, api: TestClient
) -> None:
    # Given a job ingested with the key order-42
    first = {"type": "echo", "payload": {"order": 42}, "owner": "ann"}
    send(moto_stack, raw({**first, "idempotency_key": "order-42"}))
    assert ingest(receive_event(moto_stack)) == {"batchItemFailures": []}
    assert len(jobs_queue_bodies(moto_stack)) == 1

    # When another submission arrives with the same key
    second = {**first, "payload": {"order": 43}, "idempotency_key": "order-42"}
    send(moto_stack, raw(second))
    event = receive_event(moto_stack)
    result = ingest(event)

    # Then it is acknowledged and kept as a rejected job saying why; nothing is enqueued
    assert result == {"batchItemFailures": []}
    rejected_id = derived_id("ann", f"rejected:{event['Records'][0]['messageId']}")
    job = api.get(f"/jobs/{rejected_id}", headers=ANN).json()
    assert (job["status"], job["error"]) == (
        "rejected",
        {
            "type": "IdempotencyConflict",
            "message": "idempotency key 'order-42' was already used with a different request",
        },
    )
    assert job["payload"] == {"order": 43}
    assert jobs_queue_bodies(moto_stack) == []


# ------------------------------------------------------------------------------ owner
@pytest.mark.parametrize(
    ("submission", "owner"),
    [
        ({"type": "echo", "payload": {}, "owner": "ann"}, "ann"),
        ({"type": "echo", "payload": {}}, "ingest"),
    ],
)
def test_the_owner_is_the_messages_or_the_default(
    moto_stack: MotoStack, submission: dict[str, Any], owner: str
) -> None:
    # Given a submission naming an owner, or none
    send(moto_stack, raw(submission))

    # When it is ingested
    assert ingest(receive_event(moto_stack)) == {"batchItemFailures": []}

    # Then the job belongs to the named owner, else to the default owner
    (message,) = jobs_queue_bodies(moto_stack)
    assert message["owner"] == owner


def test_the_default_owner_is_a_setting(
    moto_stack: MotoStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a configured default owner for ingest submissions
    monkeypatch.setenv("JOBLINE_INGEST_DEFAULT_OWNER", "orders-service")
    bootstrap.reset()

    # When a submission naming no owner is ingested
    send(moto_stack, raw({"type": "echo", "payload": {}}))
    assert ingest(receive_event(moto_stack)) == {"batchItemFailures": []}

    # Then its job belongs to the configured owner
    (message,) = jobs_queue_bodies(moto_stack)
    assert message["owner"] == "orders-service"


# -------------------------------------------------------------------------- rejected
KNOWN = ", ".join(job_type.name for job_type in default_registry())
DEEP: Any = {}
for _ in range(300):
    DEEP = {"a": DEEP}
INVALID = {
    "unknown type": (
        raw({"type": "resize", "payload": {"key": "a.jpg"}, "owner": "ann"}),
        "ann",
        None,
        "resize",
        {"key": "a.jpg"},
        {
            "type": "UnknownJobType",
            "message": f"unknown job type 'resize'; known types: {KNOWN}",
        },
    ),
    "invalid payload": (
        raw({"type": "sleep", "payload": {"seconds": -1}, "owner": "ann"}),
        "ann",
        None,
        "sleep",
        {"seconds": -1},
        {
            "type": "InvalidPayload",
            "message": "invalid payload for job type 'sleep': payload.seconds: "
            "Input should be greater than or equal to 0",
        },
    ),
    "not JSON": (
        "type=echo&payload=1",
        "ingest",
        None,
        "unknown",
        {"body": "type=echo&payload=1"},
        {
            "type": "InvalidSubmission",
            "message": "submission: Input should be a valid dictionary or instance of "
            "IngestSubmission",
        },
    ),
    "missing type": (
        sns({"payload": {"n": 1}, "owner": "ann"}),
        "ann",
        f"sns:{SNS_MESSAGE_ID}",
        "unknown",
        {"n": 1},
        {"type": "InvalidSubmission", "message": "type: Field required"},
    ),
    "extra field": (
        eventbridge({"type": "echo", "payload": {}, "owner": "ann", "priority": 5}),
        "ann",
        f"eventbridge:{EVENT_ID}",
        "echo",
        {},
        {
            "type": "InvalidSubmission",
            "message": "priority: Extra inputs are not permitted",
        },
    ),
    "payload nested too deep": (
        raw({"type": "echo", "payload": DEEP, "owner": "ann"}),
        "ann",
        None,
        "echo",
        None,
        {
            "type": "InvalidSubmission",
            "message": "payload: Value error, the payload nests arrays and objects "
            "deeper than 64 levels (payload not kept: it nests arrays and objects "
            "deeper than 64 levels)",
        },
    ),
    "lone surrogate in the payload": (
        raw({"type": "echo", "payload": {"note": "\ud800"}, "owner": "ann"}),
        "ann",
        None,
        "echo",
        None,
        {
            "type": "InvalidSubmission",
            "message": "payload: Value error, the payload contains a string that is "
            "not valid Unicode (a lone surrogate) (payload not kept: it contains a "
            "string that is not valid Unicode (a lone surrogate))",
        },
    ),
    "lone surrogate in the owner": (
        raw({"type": "echo", "payload": {}, "owner": "ann\ud800"}),
        "ingest",
        None,
        "echo",
        {},
        {
            "type": "InvalidSubmission",
            "message": "owner: Input should be a valid string, unable to parse raw data "
            "as a unicode string",
        },
    ),
    "body nested too deep to parse": (
        "[" * 100_000 + "]" * 100_000,
        "ingest",
        None,
        "unknown",
        None,
        {
            "type": "InvalidSubmission",
            "message": "submission: Input should be a valid dictionary or instance of "
            "IngestSubmission (payload not kept: over 65536 bytes)",
        },
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_an_invalid_submission_is_kept_as_rejected_and_acknowledged(
    moto_stack: MotoStack, api: TestClient, case: str
) -> None:
    # Given an invalid submission on the ingest queue
    body, owner, envelope_id, job_type, payload, error = INVALID[case]
    send(moto_stack, body)
    event = receive_event(moto_stack)

    # When it is ingested
    result = ingest(event)

    # Then the record is acknowledged (it would only loop) and nothing is enqueued
    assert result == {"batchItemFailures": []}
    assert jobs_queue_bodies(moto_stack) == []
    # And its owner sees a rejected job saying what was wrong (its id derived from the SQS
    # message id, or the SNS / EventBridge id when it came in such an envelope)
    message_id = envelope_id or event["Records"][0]["messageId"]
    job_id = derived_id(owner, f"rejected:{message_id}")
    assert only_job_id(moto_stack) == job_id
    response = api.get(f"/jobs/{job_id}", headers={"X-Dev-User": owner})
    assert response.status_code == 200
    job = response.json()
    assert (job["status"], job["type"], job["payload"], job["error"]) == (
        "rejected",
        job_type,
        payload,
        error,
    )
    assert (job["attempts"], job["max_attempts"]) == (0, 1)
    assert job["finished_at"] == job["created_at"]
    # And listing rejected jobs finds it
    listed = api.get("/jobs?status=rejected", headers={"X-Dev-User": owner}).json()
    assert [item["id"] for item in listed["items"]] == [job_id]


def test_a_redelivered_invalid_submission_is_rejected_once(
    moto_stack: MotoStack,
) -> None:
    # Given an invalid submission, rejected once
    send(moto_stack, raw({"type": "resize", "payload": {}}))
    event = receive_event(moto_stack)
    assert ingest(event) == {"batchItemFailures": []}

    # When its message is delivered again
    make_visible_again(moto_stack, event)
    result = ingest(receive_event(moto_stack))

    # Then it is acknowledged and there is still one rejected job
    assert result == {"batchItemFailures": []}
    assert job_count(moto_stack) == 1


# --------------------------------------------------------------------------- failures
def test_a_job_ingested_while_the_jobs_queue_is_gone_is_stored_and_acknowledged(
    moto_stack: MotoStack,
) -> None:
    # Given a batch with an invalid submission and a valid one, and a jobs queue that is gone
    send(moto_stack, raw({"type": "resize", "payload": {}}))
    send(moto_stack, raw({"type": "echo", "payload": {}}))
    event = receive_event(moto_stack)
    assert len(event["Records"]) == 2
    moto_stack.sqs.delete_queue(QueueUrl=moto_stack.queue_url)

    # When the batch is ingested
    result = ingest(event)

    # Then both records are acknowledged: ingest's one write is the job's row (the outbox,
    # not ingest, sends the message, and retries until the queue is back)
    assert result == {"batchItemFailures": []}
    items = moto_stack.dynamodb.scan(TableName=moto_stack.table)["Items"]
    assert sorted(item["status"]["S"] for item in items) == ["queued", "rejected"]


def test_every_record_is_returned_when_the_table_is_gone(
    moto_stack: MotoStack,
) -> None:
    # Given two submissions and a table that is gone
    send(moto_stack, raw({"type": "echo", "payload": {}}))
    send(moto_stack, raw({"type": "resize", "payload": {}}))
    event = receive_event(moto_stack)
    moto_stack.dynamodb.delete_table(TableName=moto_stack.table)

    # When the batch is ingested
    result = ingest(event)

    # Then both records are returned for redelivery, in order
    assert result == {
        "batchItemFailures": [
            {"itemIdentifier": record["messageId"]} for record in event["Records"]
        ]
    }


# ------------------------------------------------------------------------------- logs
def test_correlation_ids_reach_every_log_line_of_their_record(
    moto_stack: MotoStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given two messages, one with an X-Correlation-Id attribute, and an SNS notification
    send(
        moto_stack,
        raw({"type": "echo", "payload": {}, "owner": "ann"}),
        {"X-Correlation-Id": "req-1"},
    )
    send(moto_stack, raw({"type": "resize", "payload": {}, "owner": "ann"}))
    send(moto_stack, sns({"type": "echo", "payload": {}, "owner": "bob"}))
    event = receive_event(moto_stack)
    assert len(event["Records"]) == 3
    capsys.readouterr()

    # When the batch is ingested
    assert ingest(event) == {"batchItemFailures": []}

    # Then every line logged for a record carries its message id, envelope and correlation ids,
    # and no line carries another record's
    lines = log_lines(capsys.readouterr().out)
    per_record = [line for line in lines if "message_id" in line]
    ids = {record["messageId"]: record for record in event["Records"]}
    seen: dict[str, set[tuple[str, ...]]] = {}
    for line in per_record:
        record = ids[line["message_id"]]
        context = (
            line["envelope"],
            line.get("correlation_id", "-"),
            line.get("sns_message_id", "-"),
        )
        seen.setdefault(record["body"], set()).add(context)
    assert sorted(map(sorted, seen.values())) == sorted(
        [
            [("raw", "req-1", "-")],
            [("raw", "-", "-")],
            [("sns", "-", SNS_MESSAGE_ID)],
        ]
    )
    # And each record has its service line and its outcome line (besides its metric lines)
    events = sorted(line["event"] for line in per_record if line["event"] != "metric")
    assert events == sorted(
        ["job.submitted", "ingest.accepted"] * 2 + ["job.rejected", "ingest.rejected"]
    )
    # And the batch line carries none of them
    (done,) = [line for line in lines if line["event"] == "batch.done"]
    assert {"message_id", "correlation_id", "sns_message_id"} & set(done) == set()
    assert (done["records"], done["failures"]) == (3, 0)
