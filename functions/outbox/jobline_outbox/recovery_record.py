"""One record of the outbox's failure queue -> the stream batch it names, read again -> dispatched.

Lambda's on-failure destination for a stream gets no records, only where they are
(`DDBStreamBatchInfo`: stream, shard, first and last sequence number); the stream keeps them 24 h.
"""

from __future__ import annotations

import json
from typing import Any

from jobline.aws.streams import DynamoStreamReader
from jobline.errors import StorageUnavailable, StreamRecordsGone
from jobline.logging import bind, get_logger
from jobline.service import JobService
from jobline.sqs_batch import Invocation, SqsRecord

from jobline_outbox.records import dispatch_records

log = get_logger(__name__)


def _batch_info(body: str) -> dict[str, Any] | None:
    try:
        info = json.loads(body).get("DDBStreamBatchInfo")
    except (ValueError, AttributeError):
        return None
    keys = ("streamArn", "shardId", "startSequenceNumber", "endSequenceNumber")
    if not isinstance(info, dict) or not all(
        isinstance(info.get(k), str) for k in keys
    ):
        return None
    return info


def recover_record(
    service: JobService,
    reader: DynamoStreamReader,
    record: SqsRecord,
    invocation: Invocation,
) -> bool:
    """Dispatch the batch the record names; True when done (or when there is nothing to do)."""
    info = _batch_info(record.body)
    if info is None:
        log.error("outbox.recovery_malformed")
        return True
    first, last = info["startSequenceNumber"], info["endSequenceNumber"]
    bind(shard_id=info["shardId"], first_sequence=first, last_sequence=last)
    try:
        records = list(reader.read(info["streamArn"], info["shardId"], first, last))
        failed = dispatch_records(service, records)
    except StreamRecordsGone:
        # Past the stream's retention: the jobs of this range may be queued without a message.
        # Loud on purpose (the recovery DLQ's alarm tells an operator); `make sweep` sends them.
        log.error("outbox.records_gone")
        return True
    except StorageUnavailable as exc:
        log.error("outbox.recovery_failed", error=exc.message)
        return False
    if failed:
        log.warning("outbox.recovery_incomplete", failures=len(failed))
        return False
    log.info("outbox.recovered", records=len(records))
    return True
