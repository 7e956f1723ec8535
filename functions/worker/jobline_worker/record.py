"""One jobs-queue record -> one `service.run` call; True when its message may be deleted."""

from __future__ import annotations

from jobline.errors import JoblineError
from jobline.logging import bind, get_logger
from jobline.messages import parse_job_message
from jobline.models import Delivery, RunOutcome
from jobline.service import JobService
from jobline.sqs_batch import Invocation, SqsRecord

log = get_logger(__name__)


def run_record(service: JobService, record: SqsRecord, invocation: Invocation) -> bool:
    """Run the job the record names. A malformed message or one the service cannot handle now
    (storage down, unknown job) is returned, so SQS dead-letters it after `maxReceiveCount`."""
    message = parse_job_message(record, "record.malformed")
    if message is None:
        return False
    bind(
        job_id=message.job_id, correlation_id=record.string_attribute("correlation_id")
    )
    delivery = Delivery(
        message=message,
        receipt_handle=record.receipt_handle,
        queue=record.source_queue,
        request_id=invocation.request_id,
        lease_until=invocation.lease_until,
        deadline=invocation.deadline,
    )
    try:
        return service.run(delivery) is RunOutcome.DONE
    except JoblineError as exc:
        log.error("record.rejected", error_type=type(exc).__name__, error=exc.message)
        return False
