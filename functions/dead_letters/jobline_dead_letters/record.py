"""One jobs-DLQ record -> one `service.dead_letter` call. A record that names no job (malformed,
unknown or someone else's job) is logged and acknowledged, so the consumer never loops; only a
storage failure returns the record."""

from __future__ import annotations

from jobline.errors import JoblineError, JobNotFound
from jobline.logging import bind, get_logger
from jobline.messages import parse_job_message
from jobline.service import JobService
from jobline.sqs_batch import Invocation, SqsRecord

log = get_logger(__name__)


def dead_letter_record(
    service: JobService, record: SqsRecord, invocation: Invocation
) -> bool:
    """Record one dead-lettered message; True when it may be deleted."""
    message = parse_job_message(record, "dead_letter.malformed")
    if message is None:
        return True
    bind(job_id=message.job_id, job_type=message.job_type)
    try:
        job = service.dead_letter(message, record.receive_count)
    except JobNotFound:
        log.error("dead_letter.unknown_job")
        return True
    except JoblineError as exc:  # storage unavailable: SQS delivers it again
        log.error(
            "dead_letter.failed", error_type=type(exc).__name__, error=exc.message
        )
        return False
    if job is None:
        log.info("dead_letter.ignored", reason="the job had already finished")
    else:
        log.info("dead_letter.recorded", status=job.status.value)
    return True
