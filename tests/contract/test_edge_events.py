"""Contract: the ingest and dead-letter sample events go through the handlers template.yaml names.

`ingest_*` events are SQS records on the ingest queue carrying the three envelopes (raw JSON, an
SNS notification, an EventBridge event); `dlq_*` events are records on the jobs dead-letter queue.
Each test seeds what its event refers to, under moto, and asserts the exact outcome.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import struct
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from jobline.aws.repository import DynamoJobRepository
from jobline.bootstrap import default_registry
from jobline.models import Job, JobError, JobStatus
from jobline_local.template import function_handler, load_template, resources_of_type

from tests.conftest import FakeLambdaContext, MotoStack
from tests.support.events import event_names, load_event

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

TEMPLATE = load_template()
INGEST_EVENTS = event_names("ingest_")
DLQ_EVENTS = event_names("dlq_")
OWNER = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
"""The owner named in the sample submissions and dead-lettered messages."""
DEFAULT_OWNER = "ingest"
"""The template's IngestDefaultOwner (and the setting's default)."""
DLQ_JOB_ID = "4e5f6a7b8c9d40e1a2b3c4d5e6f7a8b9"
CREATED = datetime(2024, 11, 26, 6, 30, 0, tzinfo=UTC)
STARTED = datetime(2024, 11, 26, 6, 40, 0, tzinfo=UTC)


# ---------------------------------------------------------------------------- helpers
def function_for(event: dict[str, Any]) -> str:
    """The one template function whose SQS event source delivers every record of `event`."""
    matches = set()
    for name, resource in resources_of_type(
        TEMPLATE, "AWS::Serverless::Function"
    ).items():
        for source in resource["Properties"].get("Events", {}).values():
            if source["Type"] != "SQS":
                continue
            queue = source["Properties"]["Queue"]["Fn::GetAtt"][0]
            if all(
                queue in record["eventSourceARN"].rsplit(":", 1)[1].split("-")
                for record in event["Records"]
            ):
                matches.add(name)
    assert len(matches) == 1, f"event matches functions {sorted(matches)}"
    return matches.pop()


def invoke(event: dict[str, Any]) -> dict[str, Any]:
    """Push an event through the handler of the function the template routes it to."""
    function = function_for(event)
    module_name, _, attribute = function_handler(TEMPLATE, function).rpartition(".")
    handler: Handler = getattr(importlib.import_module(module_name), attribute)
    props = TEMPLATE["Resources"][function]["Properties"]
    context = FakeLambdaContext(
        timeout_s=float(props["Timeout"]), function_name=function
    )
    return handler(event, context)


def derived_id(owner: str, key: str) -> str:
    """The job id the service derives from an owner and an idempotency key."""
    return hashlib.sha256(f"{owner}\x00{key}".encode()).hexdigest()[:32]


def stored(stack: MotoStack, job_id: str) -> Job:
    """The job as the table holds it now."""
    job = DynamoJobRepository(stack.dynamodb, stack.table).get(job_id)
    assert job is not None, f"job {job_id} is not stored"
    return job


def queued_bodies(stack: MotoStack) -> list[dict[str, Any]]:
    """The bodies of the messages now on the jobs queue."""
    return [json.loads(message["Body"]) for message in stack.receive()]


def log_lines(output: str) -> list[dict[str, Any]]:
    """The JSON log lines written to stdout."""
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def attributes_md5(attributes: dict[str, Any]) -> str:
    """MD5 of string message attributes, as SQS computes `md5OfMessageAttributes`."""

    def field(text: str) -> bytes:
        data = text.encode()
        return struct.pack(">I", len(data)) + data

    encoded = b"".join(
        field(name)
        + field(attributes[name]["dataType"])
        + b"\x01"
        + field(attributes[name]["stringValue"])
        for name in sorted(attributes)
    )
    return hashlib.md5(encoded).hexdigest()


# ------------------------------------------------------------------- event shapes
@pytest.mark.parametrize("name", INGEST_EVENTS + DLQ_EVENTS)
def test_every_edge_event_is_delivered_to_the_function_its_prefix_names(
    name: str,
) -> None:
    # Given a sample event of the ingest queue or the jobs dead-letter queue
    event = load_event(name)

    # When the template's event sources are matched against it
    function = function_for(event)

    # Then ingest_* events reach the ingest function and dlq_* events the dead-letter consumer
    assert function == (
        "IngestFunction" if name.startswith("ingest_") else "DeadLetterFunction"
    )


@pytest.mark.parametrize("name", INGEST_EVENTS + DLQ_EVENTS)
def test_edge_event_records_are_sqs_records_with_matching_digests(name: str) -> None:
    # Given a sample event
    event = load_event(name)

    # Then each record is an SQS record whose body and attributes match their MD5 digests
    assert event["Records"]
    for record in event["Records"]:
        assert record["eventSource"] == "aws:sqs"
        assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
        if record["messageAttributes"]:
            assert record["md5OfMessageAttributes"] == attributes_md5(
                record["messageAttributes"]
            )
        assert int(record["attributes"]["ApproximateReceiveCount"]) >= 1


def test_the_three_envelopes_are_what_sns_and_eventbridge_deliver() -> None:
    # Given the sample bodies of each envelope
    (raw, rejected) = [
        json.loads(r["body"]) for r in load_event("ingest_raw")["Records"]
    ]
    (sns,) = [json.loads(r["body"]) for r in load_event("ingest_sns")["Records"]]
    (bridge,) = [
        json.loads(r["body"]) for r in load_event("ingest_eventbridge")["Records"]
    ]

    # Then the raw bodies are submissions, SNS's wraps one as a JSON string in "Message",
    # and EventBridge's carries one as "detail"
    assert set(raw) == {"type", "payload", "owner", "idempotency_key", "max_attempts"}
    assert set(rejected) == {"type", "payload", "owner"}
    assert sns["Type"] == "Notification"
    assert {"MessageId", "TopicArn", "Timestamp", "Signature"} <= set(sns)
    assert set(json.loads(sns["Message"])) == {"type", "payload"}
    assert {"version", "id", "detail-type", "source", "time"} <= set(bridge)
    assert set(bridge["detail"]) == {"type", "payload", "owner", "delay_seconds"}


def test_dlq_event_record_is_a_job_message_received_max_receive_count_times() -> None:
    # Given the dead-letter sample event and the jobs queue's redrive policy
    (record,) = load_event("dlq_jobs")["Records"]
    policy = TEMPLATE["Resources"]["JobsQueue"]["Properties"]["RedrivePolicy"]

    # Then its body is a JobMessage and it was received as often as SQS allows before moving it
    assert json.loads(record["body"]) == {
        "job_id": DLQ_JOB_ID,
        "owner": OWNER,
        "job_type": "http.request",
    }
    assert record["attributes"]["ApproximateReceiveCount"] == str(
        policy["maxReceiveCount"]
    )


# ---------------------------------------------------------------------- ingest events
def test_ingest_raw_queues_the_valid_submission_and_rejects_the_unknown_type(
    moto_stack: MotoStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the raw sample event: an echo submission with an idempotency key and a correlation
    # id attribute, and a submission of a type nobody registered
    event = load_event("ingest_raw")
    accepted_id = derived_id(OWNER, "order-4711-invoice")
    rejected_id = derived_id(OWNER, f"rejected:{event['Records'][1]['messageId']}")

    # When the ingest function handles it
    result = invoke(event)

    # Then both records are acknowledged
    assert result == {"batchItemFailures": []}
    # And the echo job is queued exactly as POST /jobs would queue it
    accepted = stored(moto_stack, accepted_id)
    assert (accepted.owner, accepted.type, accepted.status, accepted.attempts) == (
        OWNER,
        "echo",
        JobStatus.QUEUED,
        0,
    )
    assert accepted.payload == {"order": 4711, "action": "invoice"}
    assert accepted.max_attempts == 5
    assert queued_bodies(moto_stack) == [
        {"job_id": accepted_id, "owner": OWNER, "job_type": "echo", "run": 1}
    ]
    # And the unknown type is kept as a rejected job saying what was wrong
    rejected = stored(moto_stack, rejected_id)
    known = ", ".join(job_type.name for job_type in default_registry())
    assert (rejected.owner, rejected.type, rejected.status) == (
        OWNER,
        "resize",
        JobStatus.REJECTED,
    )
    assert rejected.payload == {"key": "photos/1.jpg"}
    assert rejected.error == JobError(
        type="UnknownJobType",
        message=f"unknown job type 'resize'; known types: {known}",
    )
    # And the first record's correlation id is on its log lines, and only on its
    lines = log_lines(capsys.readouterr().out)
    outcomes = {
        line["job_id"]: line
        for line in lines
        if line["event"] in ("ingest.accepted", "ingest.rejected")
    }
    assert outcomes[accepted_id]["correlation_id"] == "req-5b2d9c1e-orders"
    assert outcomes[accepted_id]["envelope"] == "raw"
    assert outcomes[accepted_id]["message_id"] == event["Records"][0]["messageId"]
    assert "correlation_id" not in outcomes[rejected_id]
    assert outcomes[rejected_id]["event"] == "ingest.rejected"


def test_ingest_sns_queues_the_message_for_the_default_owner(
    moto_stack: MotoStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the SNS sample event: a submission naming no owner, in a notification envelope
    event = load_event("ingest_sns")
    envelope = json.loads(event["Records"][0]["body"])
    job_id = derived_id(DEFAULT_OWNER, f"sqs-message:sns:{envelope['MessageId']}")

    # When the ingest function handles it
    result = invoke(event)

    # Then the job is queued for the configured default owner
    assert result == {"batchItemFailures": []}
    job = stored(moto_stack, job_id)
    assert (job.owner, job.type, job.status, job.payload) == (
        DEFAULT_OWNER,
        "echo",
        JobStatus.QUEUED,
        {"order": 4712, "action": "notify"},
    )
    assert queued_bodies(moto_stack) == [
        {"job_id": job_id, "owner": DEFAULT_OWNER, "job_type": "echo", "run": 1}
    ]
    # And the SNS message id and the SNS correlation attribute are on the log line
    (accepted,) = [
        line
        for line in log_lines(capsys.readouterr().out)
        if line["event"] == "ingest.accepted"
    ]
    assert accepted["envelope"] == "sns"
    assert accepted["sns_message_id"] == envelope["MessageId"]
    assert accepted["correlation_id"] == "req-8e4f2a6c-notify"


def test_ingest_eventbridge_queues_the_events_detail(
    moto_stack: MotoStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the EventBridge sample event: the submission is the event's detail
    event = load_event("ingest_eventbridge")
    bridge = json.loads(event["Records"][0]["body"])
    job_id = derived_id(OWNER, f"sqs-message:eventbridge:{bridge['id']}")

    # When the ingest function handles it
    result = invoke(event)

    # Then the detail's job is queued for the owner it names
    assert result == {"batchItemFailures": []}
    job = stored(moto_stack, job_id)
    assert (job.owner, job.type, job.status, job.payload) == (
        OWNER,
        "echo",
        JobStatus.QUEUED,
        {"order": 4713, "action": "archive"},
    )
    assert queued_bodies(moto_stack) == [
        {"job_id": job_id, "owner": OWNER, "job_type": "echo", "run": 1}
    ]
    # And the EventBridge event id is on the log line
    (accepted,) = [
        line
        for line in log_lines(capsys.readouterr().out)
        if line["event"] == "ingest.accepted"
    ]
    assert accepted["envelope"] == "eventbridge"
    assert accepted["eventbridge_id"] == bridge["id"]


@pytest.mark.parametrize("name", INGEST_EVENTS)
def test_ingest_event_delivered_twice_creates_nothing_the_second_time(
    moto_stack: MotoStack, name: str
) -> None:
    # Given an ingest event already handled once
    assert invoke(load_event(name)) == {"batchItemFailures": []}
    first = moto_stack.receive()
    items = moto_stack.dynamodb.scan(TableName=moto_stack.table)["Items"]

    # When SQS delivers it again
    result = invoke(load_event(name))

    # Then it is acknowledged, and no job is added and nothing more is enqueued
    assert result == {"batchItemFailures": []}
    assert moto_stack.dynamodb.scan(TableName=moto_stack.table)["Items"] == items
    assert len(first) == 1
    assert moto_stack.receive() == []


# ------------------------------------------------------------------ dead-letter events
def test_dlq_event_marks_the_job_dead_lettered_with_its_last_error(
    moto_stack: MotoStack,
) -> None:
    # Given the message's job, queued again after a failed attempt
    error = JobError(type="HttpStatusError", message="GET https://example.com -> 503")
    DynamoJobRepository(moto_stack.dynamodb, moto_stack.table).create(
        Job(
            id=DLQ_JOB_ID,
            owner=OWNER,
            type="http.request",
            status=JobStatus.QUEUED,
            payload={"url": "https://example.com"},
            error=error,
            attempts=2,
            max_attempts=3,
            created_at=CREATED,
            updated_at=STARTED,
        ),
        CREATED,
    )

    # When the dead-letter consumer handles the sample event
    result = invoke(load_event("dlq_jobs"))

    # Then the record is acknowledged and the job is dead-lettered with the error it had
    assert result == {"batchItemFailures": []}
    job = stored(moto_stack, DLQ_JOB_ID)
    assert (job.status, job.error, job.attempts, job.history) == (
        JobStatus.DEAD_LETTERED,
        error,
        2,
        (),
    )
    assert job.finished_at is not None
    assert job.finished_at == job.updated_at
    assert job.expires_at is not None


def test_dlq_event_for_an_unknown_job_is_acknowledged(moto_stack: MotoStack) -> None:
    # Given no job with the message's id
    # When the dead-letter consumer handles the sample event
    result = invoke(load_event("dlq_jobs"))

    # Then the record is acknowledged (it would otherwise loop) and nothing is stored
    assert result == {"batchItemFailures": []}
    assert moto_stack.dynamodb.scan(TableName=moto_stack.table)["Items"] == []
