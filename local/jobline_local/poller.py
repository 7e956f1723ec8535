"""A local SQS event source mapping: long-poll a queue, invoke a handler, delete what succeeded.

It follows what Lambda does for an SQS trigger:
- ReceiveMessage with up to `BatchSize` messages (at most 10 per call), every attribute;
- the handler gets a Lambda-shaped SQS event and a Lambda-like context, in this process;
- if the handler raises (or returns something that is not JSON), nothing is deleted: the whole
  batch comes back after the queue's visibility timeout;
- with `ReportBatchItemFailures`, everything except the `batchItemFailures` is deleted; a
  malformed response (not an object, an item without a valid `itemIdentifier`, an id not in the
  batch) fails the whole batch; no response, `{}` or an empty/null list succeeds the whole batch;
- without it, a returning handler succeeds the whole batch.
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
from botocore.exceptions import BotoCoreError, ClientError
from jobline.logging import bind_invocation, get_logger

from jobline_local.template import SqsTrigger

log = get_logger(__name__)

LambdaHandler = Callable[[dict[str, Any], Any], Any]
"""A Lambda handler: `(event, context) -> response`."""

MAX_RECEIVE = 10
"""ReceiveMessage returns at most ten messages per call."""


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


class MappingThread:
    """An event source mapping's thread: `poll_once` until stopped, pausing after an unreachable
    endpoint (as Lambda retries) or a bug (never silently ending the mapping)."""

    function_name: str
    _stop: threading.Event
    _thread: threading.Thread | None = None

    def poll_once(self) -> object:
        """One round; something falsy when there was nothing to do (the loop pauses)."""
        raise NotImplementedError

    def started(self) -> None:
        """Log the mapping's start."""

    def _lost_endpoint(self) -> None:
        """Forget what a lost endpoint invalidates (a stream's iterator)."""

    def idle_s(self) -> float:
        """How long to pause after a round with nothing to do (0: the round itself waited)."""
        return 0.0

    def run(self) -> None:
        """Poll until the stop event is set."""
        self.started()
        while not self._stop.is_set():
            try:
                if not self.poll_once() and self.idle_s():
                    self._stop.wait(self.idle_s())
            except (
                BotoCoreError,
                ClientError,
            ) as exc:  # endpoint down: retry, as Lambda does
                log.warning(
                    "poller.poll_failed",
                    function=self.function_name,
                    error_type=type(exc).__name__,
                    error=str(exc),
                )
                self._lost_endpoint()
                self._stop.wait(1.0)
            except Exception:  # a bug here must not silently end the mapping
                log.exception("poller.crashed", function=self.function_name)
                self._stop.wait(1.0)
        log.info("poller.stopped", function=self.function_name)

    def start(self) -> None:
        """Run the poller in a daemon thread of its own."""
        self._thread = threading.Thread(
            target=self.run, name=f"poller-{self.function_name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Ask the poller to stop and wait for it; False when a batch is still running."""
        self._stop.set()
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()


class SqsPoller(MappingThread):
    """Feeds one queue's batches to one handler, the way an SQS event source mapping does."""

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
        stop_event: threading.Event | None = None,
    ) -> None:
        self.trigger = trigger
        self.handler = handler
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.function_name = function_name or trigger.function
        self._sqs = sqs
        self._region = region
        self._wait_time_s = wait_time_s
        self._stop = stop_event or threading.Event()

    def poll_once(self) -> BatchOutcome:
        """Receive one batch (long polling), invoke the handler, delete what succeeded."""
        response = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=max(1, min(self.trigger.batch_size, MAX_RECEIVE)),
            WaitTimeSeconds=self._wait_time_s,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
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

    def started(self) -> None:
        log.info(
            "poller.started",
            function=self.function_name,
            queue_url=self.queue_url,
            batch_size=self.trigger.batch_size,
            report_batch_item_failures=self.trigger.report_batch_item_failures,
        )
