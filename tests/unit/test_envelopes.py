"""Envelope detection on the ingest queue: raw, SNS, EventBridge, unparseable; correlation ids."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jobline_ingest.envelopes import EnvelopeKind, Unwrapped, correlation_id, unwrap

SUBMISSION = {"type": "echo", "payload": {"n": 1}, "owner": "ann"}
SNS_ID = "b3c1e0a2-7f4d-5a6b-9c8d-2e1f0a9b8c7d"
EVENT_ID = "6a7e8feb-b491-4cf7-a9f1-bf3703467718"


def record(body: str, attributes: dict[str, Any] | None = None) -> dict[str, Any]:
    """An SQS record of Lambda's event with this body and message attributes."""
    return {
        "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d",
        "body": body,
        "messageAttributes": attributes or {},
    }


def lambda_attribute(value: str, data_type: str = "String") -> dict[str, Any]:
    """A message attribute as Lambda puts it in a record."""
    return {
        "stringValue": value,
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": data_type,
    }


def sns_body(message: str, attributes: dict[str, Any] | None = None) -> str:
    """SNS's notification envelope, as SQS receives it without raw message delivery."""
    envelope: dict[str, Any] = {
        "Type": "Notification",
        "MessageId": SNS_ID,
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:jobs",
        "Message": message,
        "Timestamp": "2024-11-26T06:58:31.204Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
    }
    if attributes is not None:
        envelope["MessageAttributes"] = attributes
    return json.dumps(envelope, indent=2)


def eventbridge_body(detail: Any) -> str:
    """An EventBridge event, as an SQS target receives it."""
    return json.dumps(
        {
            "version": "0",
            "id": EVENT_ID,
            "detail-type": "Job Requested",
            "source": "com.example.orders",
            "account": "123456789012",
            "time": "2024-11-26T06:59:02Z",
            "region": "us-east-1",
            "resources": [],
            "detail": detail,
        }
    )


def test_a_raw_body_is_the_submission() -> None:
    # When a record whose body is a submission is unwrapped
    unwrapped = unwrap(record(json.dumps(SUBMISSION)))

    # Then the submission is the body itself, with nothing to correlate or dedupe by
    assert unwrapped == Unwrapped(kind=EnvelopeKind.RAW, submission=SUBMISSION)


def test_an_sns_notification_carries_the_submission_in_its_message() -> None:
    # Given an SNS notification with a correlation id among its own attributes
    body = sns_body(
        json.dumps(SUBMISSION),
        {"X-Correlation-Id": {"Type": "String", "Value": "req-1"}},
    )

    # When it is unwrapped
    unwrapped = unwrap(record(body))

    # Then the submission is the decoded Message, deduplicated by the SNS message id
    assert unwrapped == Unwrapped(
        kind=EnvelopeKind.SNS,
        submission=SUBMISSION,
        correlation={"sns_message_id": SNS_ID, "correlation_id": "req-1"},
        dedupe_id=f"sns:{SNS_ID}",
    )


def test_an_eventbridge_event_carries_the_submission_as_its_detail() -> None:
    # When an EventBridge event is unwrapped
    unwrapped = unwrap(record(eventbridge_body(SUBMISSION)))

    # Then the submission is the detail, deduplicated by the event id
    assert unwrapped == Unwrapped(
        kind=EnvelopeKind.EVENTBRIDGE,
        submission=SUBMISSION,
        correlation={"eventbridge_id": EVENT_ID},
        dedupe_id=f"eventbridge:{EVENT_ID}",
    )


@pytest.mark.parametrize(
    ("body", "submission", "problem"),
    [
        (
            "type=echo",
            "type=echo",
            "the message body is not JSON: Expecting value: line 1 column 1 (char 0)",
        ),
        ("[1, 2]", [1, 2], "the message body is JSON but not an object (a list)"),
        ('"echo"', "echo", "the message body is JSON but not an object (a str)"),
        (
            "",
            "",
            "the message body is not JSON: Expecting value: line 1 column 1 (char 0)",
        ),
    ],
)
def test_a_body_that_is_not_a_json_object_is_unparseable(
    body: str, submission: Any, problem: str
) -> None:
    # When a record whose body is not a JSON object is unwrapped
    unwrapped = unwrap(record(body))

    # Then it is explicitly unparseable, the body kept for the rejected job
    assert unwrapped == Unwrapped(
        kind=EnvelopeKind.UNPARSEABLE, submission=submission, problem=problem
    )


def test_an_sns_message_that_is_not_json_is_kept_as_text() -> None:
    # When an SNS notification whose Message is plain text is unwrapped
    unwrapped = unwrap(record(sns_body("please run echo")))

    # Then the envelope is SNS, the text is the submission, and the problem is said
    assert unwrapped.kind is EnvelopeKind.SNS
    assert unwrapped.submission == "please run echo"
    assert unwrapped.problem == (
        "the SNS Message is not JSON: Expecting value: line 1 column 1 (char 0)"
    )
    assert unwrapped.dedupe_id == f"sns:{SNS_ID}"


def test_a_submission_with_a_type_key_is_not_taken_for_an_sns_envelope() -> None:
    # Given a raw submission that happens to have SNS-like keys in its payload
    submission = {"type": "echo", "payload": {"Type": "Notification", "Message": "x"}}

    # When it is unwrapped
    unwrapped = unwrap(record(json.dumps(submission)))

    # Then it is raw
    assert unwrapped.kind is EnvelopeKind.RAW
    assert unwrapped.submission == submission


@pytest.mark.parametrize(
    "name",
    [
        "correlation_id",
        "correlation-id",
        "Correlation-Id",
        "x-correlation-id",
        "X-Correlation-ID",
        "correlationId",
    ],
)
def test_sqs_correlation_attributes_are_found_whatever_their_spelling(
    name: str,
) -> None:
    # Given a raw record with a correlation attribute spelled this way, and another attribute
    attributes = {"tenant": lambda_attribute("acme"), name: lambda_attribute("req-9")}

    # When it is unwrapped
    unwrapped = unwrap(record(json.dumps(SUBMISSION), attributes))

    # Then the correlation id is found
    assert unwrapped.correlation == {"correlation_id": "req-9"}


def test_an_sqs_correlation_id_wins_over_the_sns_one() -> None:
    # Given an SNS notification with a correlation id, in an SQS message with its own
    body = sns_body(
        json.dumps(SUBMISSION), {"correlation_id": {"Type": "String", "Value": "sns"}}
    )

    # When it is unwrapped
    unwrapped = unwrap(record(body, {"correlation_id": lambda_attribute("sqs")}))

    # Then the SQS message's own id is kept
    assert unwrapped.correlation["correlation_id"] == "sqs"


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"correlation_id": {"StringValue": "api", "DataType": "String"}}, "api"),
        ({"correlation_id": {"Type": "String", "Value": "sns"}}, "sns"),
        ({"correlation_id": {"stringValue": "42", "dataType": "Number"}}, "42"),
        ({"correlation_id": {"binaryValue": "AAE=", "dataType": "Binary"}}, None),
        ({"correlation_id": {"stringValue": "", "dataType": "String"}}, None),
        ({"correlation_id": "not an attribute"}, None),
        ({"trace": lambda_attribute("t")}, None),
        ({"correlation_id": lambda_attribute("x" * 300)}, "x" * 256),
        (None, None),
    ],
)
def test_correlation_id_reads_every_attribute_shape(
    attributes: Any, expected: str | None
) -> None:
    # Then a string or number attribute in Lambda's, SQS's or SNS's shape is read, cut to 256
    assert correlation_id(attributes) == expected
