"""Stream records -> jobs -> `service.dispatch` -> the records to hand over again."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from jobline.aws.streams import job_of
from jobline.logging import get_logger
from jobline.service import JobService

log = get_logger(__name__)


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
