"""A local DynamoDB-stream event source mapping: read a table's stream, invoke a handler with
Lambda-shaped batches, retry, bisect, and hand batches it gives up on to the on-failure queue.

It follows what Lambda does for a stream trigger (one shard at a time, in order):
- GetRecords from the shard's position, up to `BatchSize` records per invocation;
- with `ReportBatchItemFailures`, the batch is done up to the lowest `itemIdentifier` (a sequence
  number) the handler names; the rest is handed over again; a malformed response, an exception or
  a killed invocation fails the whole batch;
- a failing batch is retried (split in halves with `BisectBatchOnFunctionError`) until
  `MaximumRetryAttempts` or `MaximumRecordAgeInSeconds`; then, with an on-failure destination,
  an invocation record naming the batch (`DDBStreamBatchInfo`: stream, shard, first and last
  sequence numbers) is sent there and the mapping moves on.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from jobline.logging import bind_invocation, get_logger

from jobline_local.mapping import MappingThread
from jobline_local.poller import (
    InvalidBatchResponse,
    InvocationKilled,
    LambdaContext,
    LambdaHandler,
)
from jobline_local.template import StreamTrigger

log = get_logger(__name__)

RETRY_PAUSE_S = 0.5
"""How long a failed batch waits before it is handed over again."""


def lambda_stream_record(
    record: dict[str, Any], stream_arn: str, region: str
) -> dict[str, Any]:
    """One GetRecords record as a record of Lambda's DynamoDB stream event."""
    dynamodb = dict(record["dynamodb"])
    created = dynamodb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        dynamodb["ApproximateCreationDateTime"] = created.timestamp()
    return {
        "eventID": record.get("eventID", uuid.uuid4().hex),
        "eventName": record["eventName"],
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": record.get("awsRegion", region),
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }


def failed_sequence_numbers(response: Any, numbers: Sequence[str]) -> list[str]:
    """The sequence numbers a partial batch response names; raises InvalidBatchResponse as
    Lambda would."""
    if response is None or (isinstance(response, dict) and not response):
        return []
    if not isinstance(response, dict):
        raise InvalidBatchResponse(f"response is a {type(response).__name__}")
    items = response.get("batchItemFailures") or []
    if not isinstance(items, list):
        raise InvalidBatchResponse("batchItemFailures is not a list")
    failed = []
    for item in items:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if identifier not in numbers:
            raise InvalidBatchResponse(f"invalid batchItemFailures entry {item!r}")
        failed.append(str(identifier))
    return failed


class StreamPoller(MappingThread):
    """Feeds one table's stream to one handler, the way a stream event source mapping does."""

    def __init__(
        self,
        trigger: StreamTrigger,
        handler: LambdaHandler,
        streams: Any,
        stream_arn: str,
        *,
        region: str,
        send_failure: Callable[[dict[str, Any]], None] | None = None,
        function_name: str | None = None,
        poll_interval_s: float = 0.1,
        stop_event: threading.Event | None = None,
    ) -> None:
        self.trigger = trigger
        self.handler = handler
        self.stream_arn = stream_arn
        self.function_name = function_name or trigger.function
        self._streams = streams
        self._region = region
        self._send_failure = send_failure
        self._poll_interval_s = poll_interval_s
        self._stop = stop_event or threading.Event()
        self._shard_id = ""
        self._iterator: str | None = None
        self._last_read: str | None = None
        self._buffer: list[dict[str, Any]] = []
        self._attempts = 0
        self._size = trigger.batch_size

    # ------------------------------------------------------------------ reading
    def _open(self) -> None:
        shards = self._streams.describe_stream(StreamArn=self.stream_arn)[
            "StreamDescription"
        ]["Shards"]
        self._shard_id = shards[0]["ShardId"]
        position: dict[str, str] = {"ShardIteratorType": "TRIM_HORIZON"}
        if (
            self._last_read is not None
        ):  # reopened after an error: carry on where it was
            position = {
                "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                "SequenceNumber": self._last_read,
            }
        self._iterator = self._streams.get_shard_iterator(
            StreamArn=self.stream_arn, ShardId=self._shard_id, **position
        )["ShardIterator"]

    def _fill(self) -> None:
        if self._iterator is None:
            self._open()
        if len(self._buffer) >= self.trigger.batch_size:
            return
        response = self._streams.get_records(ShardIterator=self._iterator, Limit=1000)
        self._iterator = response.get("NextShardIterator") or self._iterator
        records = response.get("Records", [])
        self._buffer.extend(
            lambda_stream_record(record, self.stream_arn, self._region)
            for record in records
        )
        if records:
            self._last_read = str(records[-1]["dynamodb"]["SequenceNumber"])

    # --------------------------------------------------------------- invoking
    def poll_once(self) -> int:
        """Read what is new, hand one batch to the handler; how many records were done with."""
        self._fill()
        if not self._buffer:
            return 0
        batch = self._buffer[: self._size]
        numbers = [str(record["dynamodb"]["SequenceNumber"]) for record in batch]
        try:
            failed = self._invoke(batch, numbers)
        except InvalidBatchResponse as exc:
            log.error(
                "poller.batch_failed", function=self.function_name, reason=str(exc)
            )
            failed = numbers[:1]
        except InvocationKilled:
            log.warning("poller.invocation_killed", function=self.function_name)
            failed = numbers[:1]
        except Exception as exc:  # the handler's failure is the batch's, never ours
            log.exception(
                "poller.invocation_failed",
                function=self.function_name,
                error_type=type(exc).__name__,
            )
            failed = numbers[:1]
        if not failed:
            return self._done(len(batch))
        # Done up to the lowest failed record; the rest is handed over again (in halves when
        # the whole batch failed and bisecting is on) until retries or record age run out.
        first = min(numbers.index(number) for number in failed)
        done = self._done(first)
        self._attempts += 1
        if first == 0 and self.trigger.bisect_on_error and len(batch) > 1:
            self._size = max(1, len(batch) // 2)
        if self._exhausted(batch[first:]):
            self._give_up(batch[first:])
            return done + len(batch) - first
        self._stop.wait(RETRY_PAUSE_S)
        return done

    def _done(self, count: int) -> int:
        del self._buffer[:count]
        if count:
            self._attempts = 0
            self._size = self.trigger.batch_size
        return count

    def _exhausted(self, records: Sequence[dict[str, Any]]) -> bool:
        limit = self.trigger.max_retry_attempts
        if limit >= 0 and self._attempts > limit:
            return True
        age = self.trigger.max_record_age_s
        created = records[0]["dynamodb"].get("ApproximateCreationDateTime")
        return age >= 0 and created is not None and time.time() - float(created) > age

    def _give_up(self, records: Sequence[dict[str, Any]]) -> None:
        first = records[0]["dynamodb"]["SequenceNumber"]
        last = records[-1]["dynamodb"]["SequenceNumber"]
        log.error(
            "poller.batch_given_up",
            function=self.function_name,
            first_sequence=first,
            last_sequence=last,
            attempts=self._attempts,
        )
        del self._buffer[: len(records)]
        self._attempts, self._size = 0, self.trigger.batch_size
        if self._send_failure is None:
            return
        now = datetime.now(UTC).isoformat()
        self._send_failure(
            {
                "requestContext": {
                    "requestId": str(uuid.uuid4()),
                    "functionArn": f"arn:aws:lambda:{self._region}:123456789012:function:"
                    f"{self.function_name}",
                    "condition": "RetryAttemptsExhausted",
                    "approximateInvokeCount": self.trigger.max_retry_attempts + 1,
                },
                "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
                "version": "1.0",
                "timestamp": now,
                "DDBStreamBatchInfo": {
                    "shardId": self._shard_id,
                    "startSequenceNumber": first,
                    "endSequenceNumber": last,
                    "approximateArrivalOfFirstRecord": now,
                    "approximateArrivalOfLastRecord": now,
                    "batchSize": len(records),
                    "streamArn": self.stream_arn,
                },
            }
        )

    def _invoke(self, batch: list[dict[str, Any]], numbers: list[str]) -> list[str]:
        context = LambdaContext(
            function_name=self.function_name,
            timeout_s=self.trigger.timeout_s,
            region=self._region,
        )
        bind_invocation(context.aws_request_id, context.function_name)
        result = self.handler({"Records": batch}, context)
        response = json.loads(json.dumps(result))
        if not self.trigger.report_batch_item_failures:
            return []
        return failed_sequence_numbers(response, numbers)

    # ---------------------------------------------------------------- threads
    def started(self) -> None:
        log.info(
            "poller.started",
            function=self.function_name,
            stream_arn=self.stream_arn,
            batch_size=self.trigger.batch_size,
        )

    def idle_s(self) -> float:
        return self._poll_interval_s

    def _lost_endpoint(self) -> None:
        self._iterator = None
