"""The stream reader the outbox recovery uses, on a scripted DynamoDB Streams client: it reads a
sequence range across pages (empty ones included, as GetRecords may answer them), stops at the
range's last record, and says when the records are gone or the range could not be reached; the
recovery acknowledges a range past the stream's retention loudly and retries an unreached one."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from jobline.aws.streams import MAX_READS, DynamoStreamReader
from jobline.errors import StorageUnavailable, StreamRecordsGone
from jobline.sqs_batch import Invocation, SqsRecord
from jobline_outbox.recovery_record import recover_record
from structlog.testing import capture_logs

ARN = (
    "arn:aws:dynamodb:us-east-1:123456789012:table/jobs/stream/2026-12-01T00:00:00.000"
)
SHARD = "shardId-00000001"


def record(sequence: int) -> dict[str, Any]:
    return {"eventName": "MODIFY", "dynamodb": {"SequenceNumber": str(sequence)}}


class ScriptedStreams:
    """GetShardIterator and GetRecords answering the pages given (a page: records, or an error);
    after the last page the shard is closed (no NextShardIterator) or stays open (empty pages)."""

    def __init__(
        self, pages: list[list[int] | Exception], *, open_: bool = False
    ) -> None:
        self._pages = pages
        self._open = open_
        self.iterator_requests: list[dict[str, Any]] = []
        self.reads = 0

    def get_shard_iterator(self, **request: Any) -> dict[str, Any]:
        self.iterator_requests.append(request)
        return {"ShardIterator": "it-0"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        index = int(ShardIterator.removeprefix("it-"))
        self.reads += 1
        if index >= len(self._pages):
            assert self._open, "read past a closed shard"
            return {"Records": [], "NextShardIterator": f"it-{index + 1}"}
        page = self._pages[index]
        if isinstance(page, Exception):
            raise page
        response: dict[str, Any] = {"Records": [record(n) for n in page]}
        if self._open or index + 1 < len(self._pages):
            response["NextShardIterator"] = f"it-{index + 1}"
        return response


def reader_of(streams: ScriptedStreams) -> DynamoStreamReader:
    streams_client: Any = streams
    return DynamoStreamReader(streams_client)


NO_SERVICE: Any = None
"""The recovery reaches the service only with records to dispatch."""


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "x"}}, "GetRecords")


def sequences(reader: DynamoStreamReader, first: int, last: int) -> list[int]:
    return [
        int(r["dynamodb"]["SequenceNumber"])
        for r in reader.read(ARN, SHARD, str(first), str(last))
    ]


def test_it_reads_the_range_across_pages_from_its_first_record() -> None:
    streams = ScriptedStreams([[10, 11], [12, 13], [14, 15]], open_=True)

    assert sequences(reader_of(streams), 10, 14) == [10, 11, 12, 13, 14]
    assert streams.iterator_requests == [
        {
            "StreamArn": ARN,
            "ShardId": SHARD,
            "ShardIteratorType": "AT_SEQUENCE_NUMBER",
            "SequenceNumber": "10",
        }
    ]
    assert streams.reads == 3  # it stopped at 14, without reading on


def test_empty_pages_before_the_records_do_not_end_the_read() -> None:
    streams = ScriptedStreams([[], [], [10], [], [11, 12]], open_=True)

    assert sequences(reader_of(streams), 10, 12) == [10, 11, 12]


def test_a_record_past_the_range_ends_it() -> None:
    # (the range's last record is never missing in a live stream; a later one ends it all the same)
    streams = ScriptedStreams([[10, 11, 20]], open_=True)

    assert sequences(reader_of(streams), 10, 15) == [10, 11]


@pytest.mark.parametrize(
    "streams",
    [
        ScriptedStreams([[10, 11]]),  # the shard closed before the range's end
        ScriptedStreams([[10]], open_=True),  # an open shard that never gets there
    ],
    ids=["closed", "open"],
)
def test_a_range_it_cannot_reach_is_storage_unavailable(
    streams: ScriptedStreams,
) -> None:
    reader = reader_of(streams)

    with pytest.raises(StorageUnavailable):
        sequences(reader, 10, 12)
    assert streams.reads <= MAX_READS


@pytest.mark.parametrize(
    "code", ["TrimmedDataAccessException", "ResourceNotFoundException"]
)
def test_records_past_retention_are_gone(code: str) -> None:
    reader = reader_of(ScriptedStreams([client_error(code)]))

    with pytest.raises(StreamRecordsGone):
        sequences(reader, 10, 12)


@pytest.mark.parametrize(
    "error",
    [client_error("LimitExceededException"), ReadTimeoutError(endpoint_url="x")],
    ids=["throttled", "timeout"],
)
def test_other_failures_are_storage_unavailable(error: Exception) -> None:
    reader = reader_of(ScriptedStreams([[10], error]))

    with pytest.raises(StorageUnavailable):
        sequences(reader, 10, 12)


# ------------------------------------------------------------------------- the recovery
def failure_record(first: int, last: int) -> SqsRecord:
    body = {
        "DDBStreamBatchInfo": {
            "streamArn": ARN,
            "shardId": SHARD,
            "startSequenceNumber": str(first),
            "endSequenceNumber": str(last),
        }
    }
    return SqsRecord(
        message_id="m-1",
        body=json.dumps(body),
        receive_count=1,
        receipt_handle=None,
        message_attributes={},
        raw={},
    )


INVOCATION = Invocation(
    request_id="r-1", lease_until=datetime(2026, 12, 1, tzinfo=UTC), deadline=1e12
)


def test_the_recovery_acknowledges_a_range_past_retention_and_says_so() -> None:
    reader = reader_of(ScriptedStreams([client_error("TrimmedDataAccessException")]))

    with capture_logs() as logs:
        done = recover_record(NO_SERVICE, reader, failure_record(10, 12), INVOCATION)

    assert done is True
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [
        "outbox.records_gone"
    ]


def test_the_recovery_returns_a_range_it_could_not_reach() -> None:
    reader = reader_of(ScriptedStreams([[10]]))

    with capture_logs() as logs:
        done = recover_record(NO_SERVICE, reader, failure_record(10, 12), INVOCATION)

    assert done is False
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [
        "outbox.recovery_failed"
    ]
