"""The one SQS batch runner of the queue-triggered functions (the worker, ingest, the dead-letter
consumer and the outbox's recovery): Lambda's SQS event in,
one callable per record, the exact `batchItemFailures` out (the template turns on
`ReportBatchItemFailures` for every SQS trigger).

Per record it binds `message_id` and `receive_count` to the log context (in a context of the
record's own, so records running concurrently never mix their keys), does not start a record once
the invocation's deadline is near (it is returned, as Lambda would return the whole batch on a
timeout), and turns an unexpected exception into a logged, returned record: one bad record never
takes the batch down.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from jobline.clock import utcnow
from jobline.logging import bind, bind_invocation, get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class Invocation:
    """The Lambda invocation running a batch."""

    request_id: str | None
    lease_until: datetime
    """The invocation's Lambda deadline (wall clock): a claim's lease ends here."""
    deadline: float
    """`time.monotonic()` by which records must be done (the Lambda deadline minus a margin)."""

    @classmethod
    def of(cls, context: Any, margin_ms: int) -> Invocation:
        """The invocation behind a Lambda context object."""
        remaining_s = context.get_remaining_time_in_millis() / 1000
        return cls(
            request_id=getattr(context, "aws_request_id", None),
            lease_until=utcnow() + timedelta(seconds=remaining_s),
            deadline=time.monotonic() + remaining_s - margin_ms / 1000,
        )


@dataclass(frozen=True)
class SqsRecord:
    """One record of Lambda's SQS event, in the names the functions use."""

    message_id: str
    body: str
    receive_count: int
    """`ApproximateReceiveCount` (0 when the record does not say)."""
    receipt_handle: str | None
    message_attributes: Mapping[str, Any]
    raw: Mapping[str, Any]

    @property
    def source_queue(self) -> str | None:
        """The name of the queue the record came from (the last part of `eventSourceARN`)."""
        arn = self.raw.get("eventSourceARN")
        return arn.rsplit(":", 1)[-1] if isinstance(arn, str) and ":" in arn else None

    def string_attribute(self, name: str) -> str | None:
        """The value of a String message attribute (Lambda's `stringValue`), or None."""
        attribute = self.message_attributes.get(name)
        value = attribute.get("stringValue") if isinstance(attribute, Mapping) else None
        return value if isinstance(value, str) else None

    @classmethod
    def of(cls, record: Mapping[str, Any]) -> SqsRecord:
        """Read a record as Lambda delivers it (camelCase keys)."""
        attributes = record.get("attributes")
        count = (
            attributes.get("ApproximateReceiveCount")
            if isinstance(attributes, Mapping)
            else None
        )
        try:
            receive_count = int(count) if count is not None else 0
        except (TypeError, ValueError):
            receive_count = 0
        body = record.get("body")
        handle = record.get("receiptHandle")
        message_attributes = record.get("messageAttributes")
        return cls(
            message_id=str(record.get("messageId", "")),
            body=body if isinstance(body, str) else "",
            receive_count=receive_count,
            receipt_handle=handle if isinstance(handle, str) else None,
            message_attributes=message_attributes
            if isinstance(message_attributes, Mapping)
            else {},
            raw=record,
        )


RecordProcessor = Callable[[SqsRecord, Invocation], bool]
"""Handles one record; True when its message may be deleted, False to have it delivered again."""


def _run_one(
    process: RecordProcessor, raw: Mapping[str, Any], invocation: Invocation
) -> bool:
    record = SqsRecord.of(raw)
    attributes = raw.get("attributes")
    bind(
        message_id=record.message_id,
        receive_count=attributes.get("ApproximateReceiveCount")
        if isinstance(attributes, Mapping)
        else None,
    )
    if time.monotonic() >= invocation.deadline:
        log.warning("record.not_started", reason="deadline near")
        return False
    try:
        return process(record, invocation)
    except (
        Exception
    ) as exc:  # never let one record take the batch down: log it, return it
        log.exception("record.crashed", error_type=type(exc).__name__)
        return False


def run_records(
    records: Sequence[Mapping[str, Any]],
    process: RecordProcessor,
    invocation: Invocation,
    executor: Executor | None = None,
) -> list[str]:
    """Handle every record (concurrently when an executor is given); the message ids to return."""
    runs = [
        (str(raw.get("messageId", "")), contextvars.copy_context(), raw)
        for raw in records
    ]
    if executor is None:
        done = [ctx.run(_run_one, process, raw, invocation) for _, ctx, raw in runs]
    else:
        futures = [
            executor.submit(ctx.run, _run_one, process, raw, invocation)
            for _, ctx, raw in runs
        ]
        done = [future.result() for future in futures]
    return [
        message_id for (message_id, _, _), ok in zip(runs, done, strict=True) if not ok
    ]


@lru_cache(maxsize=4)
def thread_pool(max_workers: int) -> ThreadPoolExecutor:
    """The record threads of this execution environment (created once)."""
    return ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="record")


def run_batch(
    event: Mapping[str, Any],
    context: Any,
    process: RecordProcessor,
    *,
    margin_ms: int,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """A Lambda handler's whole body: bind the invocation, run the records, answer SQS."""
    bind_invocation(
        getattr(context, "aws_request_id", None),
        getattr(context, "function_name", None),
    )
    records = event.get("Records", [])
    failures = run_records(
        records, process, Invocation.of(context, margin_ms), executor
    )
    log.info("batch.done", records=len(records), failures=len(failures))
    return {
        "batchItemFailures": [{"itemIdentifier": message_id} for message_id in failures]
    }
