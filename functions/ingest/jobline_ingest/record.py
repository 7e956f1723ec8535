"""One ingest-queue record -> unwrap its envelope -> one `service.ingest` call. An invalid
submission is stored as a `rejected` job and acknowledged; only a failure to store or enqueue
returns the record."""

from __future__ import annotations

from jobline.errors import JoblineError
from jobline.logging import bind, get_logger
from jobline.models import JobStatus
from jobline.service import JobService
from jobline.sqs_batch import Invocation, SqsRecord

from jobline_ingest.envelopes import unwrap

log = get_logger(__name__)


def ingest_record(
    service: JobService, default_owner: str, record: SqsRecord, invocation: Invocation
) -> bool:
    """Submit one record's job; True when its message may be deleted."""
    unwrapped = unwrap(record.raw)
    bind(envelope=unwrapped.kind.value, **unwrapped.correlation)
    if unwrapped.problem is not None:
        log.warning("ingest.undecodable", reason=unwrapped.problem)
    try:
        submitted = service.ingest(
            unwrapped.submission,
            message_id=unwrapped.dedupe_id or record.message_id,
            default_owner=default_owner,
            correlation_id=unwrapped.correlation_id or record.message_id,
        )
    except JoblineError as exc:  # storage or queue unavailable: SQS delivers it again
        log.error("ingest.failed", error_type=type(exc).__name__, error=exc.message)
        return False
    job = submitted.job
    if job.status is JobStatus.REJECTED:
        log.warning(
            "ingest.rejected",
            job_id=job.id,
            job_type=job.type,
            created=submitted.created,
            error_type=job.error.type if job.error else None,
            error=job.error.message if job.error else None,
        )
    else:
        log.info(
            "ingest.accepted",
            job_id=job.id,
            job_type=job.type,
            created=submitted.created,
        )
    return True
