"""A local SQS event source mapping: long-poll a queue, invoke a handler, delete what succeeded.

It follows what Lambda does for an SQS trigger:
- ReceiveMessage with up to `BatchSize` messages (at most 10 per call), every attribute;
- the handler gets a Lambda-shaped SQS event and a Lambda-like context, in this process;
- if the handler raises (or returns something that is not JSON), nothing is deleted: the whole
  batch comes back after the queue's visibility timeout;
- with `ReportBatchItemFailures`, everything except the `batchItemFailures` is deleted; a
  malformed response (not an object, an item without a valid `itemIdentifier`, an id not in the
  batch) fails the whole batch; no response, `{}` or an empty/null list succeeds the whole batch;
- without it, a returning handler succeeds the whole batch;
- up to `concurrency` invocations run at once (each with its own context and request id), never
  more than the event source's `ScalingConfig.MaximumConcurrency`: Lambda scales a queue's
  pollers out while messages are waiting ("five concurrent invocations" at first, then more, up
  to that maximum: docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html). They share
  this process: its clients and the worker's record thread pool, where Lambda would give each
  invocation an execution environment of its own.
"""

from __future__ import annotations

import base64
import importlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from jobline.logging import bind_invocation, get_logger

from jobline_local.mapping import MappingThread
from jobline_local.template import SqsTrigger

log = get_logger(__name__)

LambdaHandler = Callable[[dict[str, Any], Any], Any]
"""A Lambda handler: `(event, context) -> response`."""

MAX_RECEIVE = 10
"""ReceiveMessage returns at most ten messages per call."""
SHORT_POLL_PAUSE_S = 0.1
"""How long a poller without long polling (`wait_time_s` 0) pauses after an empty receive."""


class InvocationKilled(BaseException):
    """The Lambda execution environment running an invocation was killed (out of memory, a
    timeout, the host lost): raised into a handler by tests (`tests/faults.py`) to say so. Not an
    Exception, so no handler code catches it; the poller counts the invocation as failed: nothing
    of its batch is deleted, as when Lambda loses an invocation."""


class InvalidBatchResponse(ValueError):
    """The handler's response cannot be read as a partial batch response: the batch fails."""


def import_handler(spec: str) -> LambdaHandler:
    """The callable named by a template `Handler` string (`package.module.function`)."""
    module_name, _, attribute = spec.rpartition(".")
    if not module_name or not attribute:
        raise ValueError(f"handler {spec!r} is not of the form module.function")
    handler = getattr(importlib.import_module(module_name), attribute)
    if not callable(handler):
        raise TypeError(f"handler {spec!r} is not callable")
    return handler  # type: ignore[no-any-return]


@dataclass
class LambdaContext:
    """The parts of Lambda's context object a Python handler reads."""

    function_name: str
    timeout_s: float
    region: str = "us-east-1"
    account_id: str = "123456789012"
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"local/[{self.function_version}]{self.aws_request_id}"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's timeout, as Lambda counts them."""
        elapsed = time.monotonic() - self.started
        return max(0, int((self.timeout_s - elapsed) * 1000))


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    """An SQS API message attribute in the shape Lambda puts in a record (camelCase, base64)."""

    def b64(data: Any) -> str:
        raw = data if isinstance(data, bytes) else str(data).encode()
        return base64.b64encode(raw).decode()

    attribute: dict[str, Any] = {
        "stringListValues": list(value.get("StringListValues", [])),
        "binaryListValues": [b64(item) for item in value.get("BinaryListValues", [])],
        "dataType": value.get("DataType", "String"),
    }
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = b64(value["BinaryValue"])
    return attribute


def lambda_record(
    message: dict[str, Any], queue_arn: str, region: str
) -> dict[str, Any]:
    """One ReceiveMessage message as a record of Lambda's SQS event."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: _message_attribute(value)
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def batch_item_failures(response: Any, message_ids: Collection[str]) -> set[str]:
    """The message ids a partial batch response returns; raises InvalidBatchResponse as Lambda would."""
    if response is None:
        return set()
    if not isinstance(response, dict):
        raise InvalidBatchResponse(
            f"response is a {type(response).__name__}, not an object"
        )
    items = response.get("batchItemFailures")
    if items is None:
        return set()
    if not isinstance(items, list):
        raise InvalidBatchResponse("batchItemFailures is not a list")
    failed: set[str] = set()
    for item in items:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or not identifier:
            raise InvalidBatchResponse(f"invalid batchItemFailures entry {item!r}")
        if identifier not in message_ids:
            raise InvalidBatchResponse(
                f"itemIdentifier {identifier!r} is not in the batch"
            )
        failed.add(identifier)
    return failed


@dataclass(frozen=True)
class BatchOutcome:
    """What one poll did: the message ids received and the ones deleted."""

    received: list[str]
    deleted: list[str]
    error: str | None = None


def mapping_concurrency(trigger: SqsTrigger, local_limit: int) -> int:
    """How many invocations a local SQS mapping runs at once: the local limit, never more than
    the template's `ScalingConfig.MaximumConcurrency` where the event source declares one."""
    if trigger.maximum_concurrency is None:
        return max(1, local_limit)
    return max(1, min(local_limit, trigger.maximum_concurrency))


class SqsPoller(MappingThread):
    """Feeds one queue's batches to one handler, the way an SQS event source mapping does, with
    `concurrency` pollers: each receives a batch and invokes the handler on it on its own, so a
    long batch holds back only its own poller (Lambda scales a queue's pollers out the same way,
    up to the mapping's MaximumConcurrency)."""

    def __init__(
        self,
        trigger: SqsTrigger,
        handler: LambdaHandler,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        *,
        region: str,
        function_name: str | None = None,
        wait_time_s: int = 1,
        concurrency: int = 1,
        stop_event: threading.Event | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        self.trigger = trigger
        self.handler = handler
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.function_name = function_name or trigger.function
        self._sqs = sqs
        self._region = region
        self._wait_time_s = wait_time_s
        self.concurrency = concurrency
        self._stop = stop_event or threading.Event()
        self._receiving = threading.Lock()

    def poll_once(self) -> BatchOutcome:
        """Receive one batch (long polling), invoke the handler, delete what succeeded."""
        messages = self._receive()
        if not messages:
            return BatchOutcome(received=[], deleted=[])
        records = [
            lambda_record(message, self.queue_arn, self._region) for message in messages
        ]
        received = [record["messageId"] for record in records]
        error: str | None = None
        try:
            succeeded = self._invoke(records)
        except InvalidBatchResponse as exc:
            error = f"invalid batch response: {exc}"
            log.error("poller.batch_failed", function=self.function_name, reason=error)
            succeeded = []
        except InvocationKilled:
            error = "the invocation's environment was killed"
            log.warning("poller.invocation_killed", function=self.function_name)
            succeeded = []
        except (
            Exception
        ) as exc:  # the handler's failure is the batch's failure, never ours
            error = f"{type(exc).__name__}: {exc}"
            log.exception(
                "poller.invocation_failed",
                function=self.function_name,
                error_type=type(exc).__name__,
            )
            succeeded = []
        deleted = self._delete(succeeded)
        log.info(
            "poller.batch",
            function=self.function_name,
            received=len(received),
            deleted=len(deleted),
            returned=len(received) - len(deleted),
        )
        structlog.contextvars.clear_contextvars()  # the invocation is over
        return BatchOutcome(received=received, deleted=deleted, error=error)

    def _receive(self) -> list[dict[str, Any]]:
        """One ReceiveMessage, long polling; the mapping's pollers take turns at it (and invoke
        at once). moto marks a message received in separate Python steps, so two concurrent
        receives on one queue could both take the same message, which SQS does not do."""
        with self._receiving:
            if self._stop.is_set():  # stopping: receive nothing more
                return []
            response = self._sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=max(1, min(self.trigger.batch_size, MAX_RECEIVE)),
                WaitTimeSeconds=self._wait_time_s,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages

    def _invoke(self, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run the handler on the batch; the records whose messages may be deleted."""
        context = LambdaContext(
            function_name=self.function_name,
            timeout_s=self.trigger.timeout_s,
            region=self._region,
        )
        bind_invocation(context.aws_request_id, context.function_name)
        result = self.handler({"Records": list(records)}, context)
        # Lambda serialises the response: what is not JSON fails the invocation.
        response = json.loads(json.dumps(result))
        if not self.trigger.report_batch_item_failures:
            return list(records)
        failed = batch_item_failures(
            response, {record["messageId"] for record in records}
        )
        return [record for record in records if record["messageId"] not in failed]

    def _delete(self, records: Sequence[dict[str, Any]]) -> list[str]:
        """Delete the records' messages; the message ids actually deleted."""
        deleted: list[str] = []
        for start in range(0, len(records), MAX_RECEIVE):
            chunk = records[start : start + MAX_RECEIVE]
            response = self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": record["receiptHandle"]}
                    for index, record in enumerate(chunk)
                ],
            )
            for entry in response.get("Successful", []):
                deleted.append(chunk[int(entry["Id"])]["messageId"])
            for entry in response.get("Failed", []):
                log.warning(
                    "poller.delete_failed",
                    function=self.function_name,
                    message_id=chunk[int(entry["Id"])]["messageId"],
                    code=entry.get("Code"),
                )
        return deleted

    def idle_s(self) -> float:
        """After an empty receive: none with long polling (it waited), a pause without it."""
        return 0.0 if self._wait_time_s else SHORT_POLL_PAUSE_S

    def started(self) -> None:
        log.info(
            "poller.started",
            function=self.function_name,
            queue_url=self.queue_url,
            batch_size=self.trigger.batch_size,
            report_batch_item_failures=self.trigger.report_batch_item_failures,
            concurrency=self.concurrency,
        )
