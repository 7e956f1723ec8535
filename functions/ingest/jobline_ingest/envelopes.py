"""What arrives on the ingest queue: find the submission inside an SQS record. Pure, no I/O. (The
envelopes are transport: they live with the ingest function, not in the domain package.)

Other systems reach the ingest queue three ways; the envelope is detected per record:
- **raw**: the body is the submission itself (`SendMessage`, or SNS with raw message delivery);
- **sns**: SNS -> SQS without raw delivery: the body is SNS's notification envelope
  (`"Type": "Notification"`, `"TopicArn"`, `"MessageId"`, `"MessageAttributes"`) and the submission
  is the JSON string in `"Message"`;
- **eventbridge**: an EventBridge rule targeting the queue: the body is the event
  (`"detail-type"`, `"source"`, `"id"`, ...) and the submission is its `"detail"`.
A body that is not a JSON object is **unparseable**: the raw text goes on to the service, which
stores it as a rejected job, so nothing is lost.

Correlation ids found on the way (a `correlation_id`-like SQS or SNS message attribute, the SNS
message id, the EventBridge event id) are returned for the caller to bind to its log lines.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CORRELATION_ATTRIBUTES = frozenset({"correlation_id", "correlationid"})
"""Attribute names (lower case, `-` read as `_`, an `x_` prefix dropped) holding a correlation id:
`correlation_id`, `Correlation-Id`, `X-Correlation-ID`, `correlationId`..."""
MAX_ID_LENGTH = 256
"""Ids longer than this are cut before they reach a log line."""


class EnvelopeKind(enum.StrEnum):
    """How a submission was wrapped."""

    RAW = "raw"
    SNS = "sns"
    EVENTBRIDGE = "eventbridge"
    UNPARSEABLE = "unparseable"
    """The body is not JSON, or JSON but not an object."""


@dataclass(frozen=True)
class Unwrapped:
    """The submission found in one record, how it was wrapped, and ids to bind to its logs."""

    kind: EnvelopeKind
    submission: Any
    """The submission as decoded JSON; the raw text when it could not be decoded."""
    correlation: dict[str, str] = field(default_factory=dict)
    """Log keys -> ids: `correlation_id`, `sns_message_id`, `eventbridge_id` (those found)."""
    dedupe_id: str | None = None
    """The envelope's own message id (`sns:<MessageId>`, `eventbridge:<id>`): SNS and EventBridge
    deliver at least once, and a duplicate reaches SQS as a new message with a new SQS message id."""
    problem: str | None = None
    """Why the submission could not be decoded (it will be rejected), or None."""

    @property
    def correlation_id(self) -> str | None:
        """The id the job carries through its logs: the sender's correlation id, else the
        envelope's own message id (SNS, EventBridge); None when the record has neither."""
        for key in ("correlation_id", "sns_message_id", "eventbridge_id"):
            if key in self.correlation:
                return self.correlation[key]
        return None


def _short(value: str) -> str:
    return value[:MAX_ID_LENGTH]


def _attribute_key(name: str) -> str:
    key = name.strip().lower().replace("-", "_")
    return key.removeprefix("x_")


def _attribute_text(value: Any) -> str | None:
    """The string value of a message attribute in any of its shapes: a Lambda record's
    `{"stringValue", "dataType"}`, the SQS API's `{"StringValue", "DataType"}`, SNS's
    `{"Type", "Value"}`. Binary attributes carry no usable id."""
    if not isinstance(value, Mapping):
        return None
    data_type = value.get("dataType", value.get("DataType", value.get("Type", "")))
    if not isinstance(data_type, str) or data_type.split(".", 1)[0] not in (
        "String",
        "Number",
    ):
        return None
    for key in ("stringValue", "StringValue", "Value"):
        text = value.get(key)
        if isinstance(text, str) and text:
            return text
    return None


def correlation_id(attributes: Any) -> str | None:
    """The first correlation id among message attributes (`{name: attribute}`), or None."""
    if not isinstance(attributes, Mapping):
        return None
    for name in sorted(attributes):
        if isinstance(name, str) and _attribute_key(name) in CORRELATION_ATTRIBUTES:
            text = _attribute_text(attributes[name])
            if text is not None:
                return _short(text)
    return None


def _is_sns_notification(body: Mapping[str, Any]) -> bool:
    return (
        body.get("Type") == "Notification"
        and isinstance(body.get("Message"), str)
        and "TopicArn" in body
    )


def _is_eventbridge_event(body: Mapping[str, Any]) -> bool:
    return "detail-type" in body and "source" in body and "detail" in body


def _decode(text: str) -> tuple[Any, str | None]:
    """The JSON object in `text`, or (text, why not)."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError) as exc:
        return text, f"not JSON: {exc}"
    except RecursionError:
        return text, "not JSON this service reads: nested too deeply"
    if not isinstance(value, dict):
        return value, f"JSON but not an object (a {type(value).__name__})"
    return value, None


def unwrap(record: Mapping[str, Any]) -> Unwrapped:
    """Detect the envelope of one SQS record (Lambda's event shape) and take the submission out."""
    correlation: dict[str, str] = {}
    sqs_correlation = correlation_id(record.get("messageAttributes"))
    if sqs_correlation is not None:
        correlation["correlation_id"] = sqs_correlation

    body_text = record.get("body", "")
    body, problem = _decode(body_text if isinstance(body_text, str) else "")
    if problem is not None:
        return Unwrapped(
            kind=EnvelopeKind.UNPARSEABLE,
            submission=body,
            correlation=correlation,
            problem=f"the message body is {problem}",
        )

    if _is_sns_notification(body):
        sns_id = body.get("MessageId")
        dedupe_id = None
        if isinstance(sns_id, str) and sns_id:
            correlation["sns_message_id"] = _short(sns_id)
            dedupe_id = f"sns:{sns_id}"
        sns_correlation = correlation_id(body.get("MessageAttributes"))
        if sns_correlation is not None:
            correlation.setdefault("correlation_id", sns_correlation)
        submission, problem = _decode(body["Message"])
        return Unwrapped(
            kind=EnvelopeKind.SNS,
            submission=submission,
            correlation=correlation,
            dedupe_id=dedupe_id,
            problem=None if problem is None else f"the SNS Message is {problem}",
        )

    if _is_eventbridge_event(body):
        event_id = body.get("id")
        dedupe_id = None
        if isinstance(event_id, str) and event_id:
            correlation["eventbridge_id"] = _short(event_id)
            dedupe_id = f"eventbridge:{event_id}"
        return Unwrapped(
            kind=EnvelopeKind.EVENTBRIDGE,
            submission=body["detail"],
            correlation=correlation,
            dedupe_id=dedupe_id,
        )

    return Unwrapped(kind=EnvelopeKind.RAW, submission=body, correlation=correlation)
