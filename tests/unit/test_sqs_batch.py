"""The one SQS batch runner of the worker, ingest and dead-letter functions: exact
batchItemFailures, a log context per record, the deadline, and isolation of a crashing record."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import structlog
from jobline.sqs_batch import Invocation, SqsRecord, run_batch, run_records
from structlog.testing import capture_logs

from tests.conftest import FakeLambdaContext
from tests.support.fakes import START


def _record(
    message_id: str, body: str = "{}", count: str | None = "1"
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "messageId": message_id,
        "receiptHandle": f"handle-{message_id}",
        "body": body,
        "messageAttributes": {},
        "eventSource": "aws:sqs",
    }
    if count is not None:
        record["attributes"] = {"ApproximateReceiveCount": count}
    return record


def _invocation(seconds_left: float = 60) -> Invocation:
    return Invocation(
        request_id="req-1", lease_until=START, deadline=time.monotonic() + seconds_left
    )


class Recorder:
    """A record handler that acknowledges bodies "ok", returns "retry" and raises on "crash"."""

    def __init__(self) -> None:
        self.seen: list[SqsRecord] = []
        self._lock = threading.Lock()

    def __call__(self, record: SqsRecord, invocation: Invocation) -> bool:
        with self._lock:
            self.seen.append(record)
        structlog.get_logger().info("record.handled", body=record.body)
        if record.body == "crash":
            raise RuntimeError("bug")
        return record.body == "ok"


RECORDS = [
    _record("m-1", "ok"),
    _record("m-2", "retry"),
    _record("m-3", "crash"),
    _record("m-4", "ok"),
]


@pytest.mark.parametrize("threads", [0, 3], ids=["in-order", "concurrent"])
def test_failures_are_exactly_the_records_not_acknowledged(threads: int) -> None:
    handler = Recorder()
    with ThreadPoolExecutor(max_workers=threads or 1) as pool:
        failures = run_records(
            RECORDS, handler, _invocation(), pool if threads else None
        )

    assert failures == ["m-2", "m-3"]
    assert sorted(record.message_id for record in handler.seen) == [
        "m-1",
        "m-2",
        "m-3",
        "m-4",
    ]


def test_a_crash_is_logged_with_its_message_id_and_the_context_stays_per_record() -> (
    None
):
    handler = Recorder()
    structlog.contextvars.clear_contextvars()

    with (
        capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs,
        ThreadPoolExecutor(max_workers=4) as pool,
    ):
        run_records(RECORDS, handler, _invocation(), pool)

    [crashed] = [line for line in logs if line["event"] == "record.crashed"]
    assert (crashed["message_id"], crashed["error_type"]) == ("m-3", "RuntimeError")
    assert crashed["log_level"] == "error"
    handled = {line["body"]: line for line in logs if line["event"] == "record.handled"}
    assert handled["retry"]["message_id"] == "m-2"
    assert handled["retry"]["receive_count"] == "1"
    # The caller's own context is untouched
    assert structlog.contextvars.get_contextvars() == {}


def test_records_are_not_started_once_the_deadline_is_near() -> None:
    handler = Recorder()

    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        failures = run_records(RECORDS, handler, _invocation(seconds_left=-1))

    assert failures == ["m-1", "m-2", "m-3", "m-4"]
    assert handler.seen == []
    assert [
        line["message_id"] for line in logs if line["event"] == "record.not_started"
    ] == [
        "m-1",
        "m-2",
        "m-3",
        "m-4",
    ]


def test_run_batch_answers_with_batch_item_failures_and_binds_the_invocation() -> None:
    handler = Recorder()
    context = FakeLambdaContext(timeout_s=30, function_name="jobline-ingest")

    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        response = run_batch({"Records": RECORDS}, context, handler, margin_ms=2000)

    assert response == {
        "batchItemFailures": [{"itemIdentifier": "m-2"}, {"itemIdentifier": "m-3"}]
    }
    [done] = [line for line in logs if line["event"] == "batch.done"]
    assert (done["records"], done["failures"]) == (4, 2)
    assert (done["aws_request_id"], done["function_name"]) == (
        context.aws_request_id,
        "jobline-ingest",
    )


def test_an_empty_event_succeeds() -> None:
    assert run_batch({}, FakeLambdaContext(), Recorder(), margin_ms=0) == {
        "batchItemFailures": []
    }


def test_the_invocation_deadline_is_the_remaining_time_minus_the_margin() -> None:
    context = FakeLambdaContext(timeout_s=10)
    before = time.monotonic()

    invocation = Invocation.of(context, margin_ms=2000)

    assert invocation.request_id == context.aws_request_id
    assert before + 7.5 < invocation.deadline <= time.monotonic() + 8


def test_records_of_any_shape_are_read_without_raising() -> None:
    plain = SqsRecord.of(_record("m-1", "hello", count="4"))
    assert (plain.message_id, plain.body, plain.receive_count) == ("m-1", "hello", 4)
    assert plain.receipt_handle == "handle-m-1"
    odd = SqsRecord.of({"body": 7, "attributes": {"ApproximateReceiveCount": "x"}})
    assert (odd.message_id, odd.body, odd.receive_count, odd.receipt_handle) == (
        "",
        "",
        0,
        None,
    )
    assert SqsRecord.of(_record("m-2", count=None)).receive_count == 0
