"""Lambda entry point of the dead-letter consumer (template.yaml:
`jobline_dead_letters.handler.lambda_handler`), triggered by the jobs queue's dead-letter queue.

Per record: one `service.dead_letter` call. A record that names no job (malformed, unknown or
someone else's job) is logged and acknowledged, so the consumer never loops; only a storage
failure returns the record.
"""

from __future__ import annotations

import contextvars
from typing import Any

from jobline.bootstrap import get_service
from jobline.errors import JoblineError, JobNotFound
from jobline.logging import bind, bind_invocation, configure, get_logger
from jobline.models import JobMessage
from jobline.service import JobService
from pydantic import ValidationError

configure()
log = get_logger(__name__)


def _receive_count(record: dict[str, Any]) -> int:
    count = record.get("attributes", {}).get("ApproximateReceiveCount")
    try:
        return int(count)
    except (TypeError, ValueError):
        return 0


def dead_letter_record(service: JobService, record: dict[str, Any]) -> bool:
    """Record one dead-lettered message; True when it may be deleted."""
    receive_count = _receive_count(record)
    bind(message_id=str(record.get("messageId", "")), receive_count=receive_count)
    try:
        message = JobMessage.model_validate_json(record.get("body", ""))
    except ValidationError as exc:
        log.error(
            "dead_letter.malformed",
            errors=exc.errors(include_url=False, include_input=False),
        )
        return True
    bind(job_id=message.job_id, job_type=message.job_type)
    try:
        job = service.dead_letter(message, receive_count)
    except JobNotFound:
        log.error("dead_letter.unknown_job")
        return True
    except JoblineError as exc:  # storage unavailable: SQS delivers it again
        log.error(
            "dead_letter.failed", error_type=type(exc).__name__, error=exc.message
        )
        return False
    except Exception as exc:  # never let one record take the batch down
        log.exception("dead_letter.crashed", error_type=type(exc).__name__)
        return False
    if job is None:
        log.info("dead_letter.ignored", reason="the job had already finished")
    else:
        log.info("dead_letter.recorded", status=job.status.value)
    return True


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Record every dead-lettered job; answer with the records SQS must deliver again."""
    bind_invocation(
        getattr(context, "aws_request_id", None),
        getattr(context, "function_name", None),
    )
    service = get_service()
    records = event.get("Records", [])
    failures = [
        str(record.get("messageId", ""))
        for record in records
        if not contextvars.copy_context().run(dead_letter_record, service, record)
    ]
    log.info("batch.done", records=len(records), failures=len(failures))
    return {
        "batchItemFailures": [{"itemIdentifier": message_id} for message_id in failures]
    }
