"""Stream records -> jobs -> `service.dispatch` -> the records to hand over again."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from jobline.items import item_to_job
from jobline.logging import get_logger
from jobline.models import Job
from jobline.service import JobService
from pydantic import ValidationError

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


def dispatch_records(
    service: JobService, records: Sequence[Mapping[str, Any]]
) -> list[str]:
    """Dispatch every record's job; the sequence numbers whose message could not be sent."""
    jobs = [(record, job_of(record)) for record in records]
    written = [(record, job) for record, job in jobs if job is not None]
    done = service.dispatch([job for _, job in written])
    failed = [
        str(record["dynamodb"]["SequenceNumber"])
        for (record, _), ok in zip(written, done, strict=True)
        if not ok
    ]
    log.info(
        "outbox.batch_done",
        records=len(records),
        jobs=len(written),
        failures=len(failed),
    )
    return failed
