"""DynamoDB Streams adapter: the job a stream record's write left behind (`job_of`, the outbox's
dispatcher), and, for the outbox's recovery, read again the stream records of a batch
the dispatcher gave up on (Lambda's on-failure destination names the shard and the sequence range,
not the records; the stream keeps them 24 hours)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from jobline.aws.items import item_to_job
from jobline.errors import StorageUnavailable, StreamRecordsGone
from jobline.logging import get_logger
from jobline.models import Job

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams.client import DynamoDBStreamsClient

log = get_logger(__name__)

WRITES = frozenset({"INSERT", "MODIFY"})
"""Stream events that leave an item behind (REMOVE is TTL or a delete: nothing to send)."""


def job_of(record: Mapping[str, Any]) -> Job | None:
    """The job a stream record's write left behind; None for a removal or an item that is not a
    job (logged: it is not ours to send)."""
    if record.get("eventName") not in WRITES:
        return None
    image = record.get("dynamodb", {}).get("NewImage")
    if not isinstance(image, Mapping) or not image:
        return None
    try:
        return item_to_job(dict(image))
    except (ValidationError, KeyError, TypeError, ValueError) as exc:
        log.error(
            "outbox.unreadable_record",
            sequence_number=record.get("dynamodb", {}).get("SequenceNumber"),
            error_type=type(exc).__name__,
        )
        return None


_GONE = frozenset({"TrimmedDataAccessException", "ResourceNotFoundException"})
MAX_READS = 30
"""GetRecords calls one range may take: a range is one batch of at most 100 records, which a page
(1 MB) holds unless the jobs are large (payloads up to the submit limit: then up to ~25 pages)."""


class DynamoStreamReader:
    """Reads ranges of a table's stream through a boto3 client created once per environment."""

    def __init__(self, client: DynamoDBStreamsClient) -> None:
        self._client = client

    def read(
        self, stream_arn: str, shard_id: str, first: str, last: str
    ) -> Iterator[dict[str, Any]]:
        """The stream records from sequence number `first` to `last` (both included), in the
        shape Lambda gives them (`eventName`, `dynamodb` with `NewImage`...).

        GetRecords may answer an empty page before the records it has (DynamoDB Streams' API
        reference: "it might take multiple calls to get to a portion of the shard that contains
        stream records"), so an empty page does not end the read; reaching `last` does. A read
        that ends before `last` (the shard closed, or `MAX_READS` calls) is StorageUnavailable:
        the records not reached may be jobs without a message, so the caller must try again."""
        end = int(last)
        try:
            iterator: str | None = self._client.get_shard_iterator(
                StreamArn=stream_arn,
                ShardId=shard_id,
                ShardIteratorType="AT_SEQUENCE_NUMBER",
                SequenceNumber=first,
            )["ShardIterator"]
            for _ in range(MAX_READS):
                if iterator is None:
                    break
                response = self._client.get_records(ShardIterator=iterator, Limit=1000)
                records: list[Any] = response.get("Records", [])
                for record in records:
                    sequence = int(record["dynamodb"]["SequenceNumber"])
                    if sequence > end:
                        return
                    yield record
                    if sequence == end:
                        return
                iterator = response.get("NextShardIterator")
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _GONE:
                raise StreamRecordsGone(shard_id, first) from exc
            raise StorageUnavailable(f"stream: {code}") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(f"stream: {type(exc).__name__}") from exc
        raise StorageUnavailable(
            f"stream: shard {shard_id} read {MAX_READS} pages or closed before {last}"
        )
