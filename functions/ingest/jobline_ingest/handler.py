"""Lambda entry point of the ingest function (template.yaml: `jobline_ingest.handler.lambda_handler`).

Per record: unwrap the envelope, one `service.ingest` call. An invalid submission is stored as a
`rejected` job and acknowledged; only a failure to store or enqueue returns the record.
"""

from __future__ import annotations

import contextvars
from typing import Any

from jobline.bootstrap import get_service
from jobline.config import get_settings
from jobline.envelopes import unwrap
from jobline.errors import JoblineError
from jobline.logging import bind, bind_invocation, configure, get_logger
from jobline.models import JobStatus
from jobline.service import JobService

configure()
log = get_logger(__name__)


def ingest_record(
    service: JobService, record: dict[str, Any], default_owner: str
) -> bool:
    """Submit one record's job; True when its message may be deleted."""
    message_id = str(record.get("messageId", ""))
    unwrapped = unwrap(record)
    bind(message_id=message_id, envelope=unwrapped.kind.value, **unwrapped.correlation)
    if unwrapped.problem is not None:
        log.warning("ingest.undecodable", reason=unwrapped.problem)
    try:
        submitted = service.ingest(
            unwrapped.submission,
            message_id=unwrapped.dedupe_id or message_id,
            default_owner=default_owner,
        )
    except JoblineError as exc:  # storage or queue unavailable: SQS delivers it again
        log.error("ingest.failed", error_type=type(exc).__name__, error=exc.message)
        return False
    except Exception as exc:  # never let one record take the batch down
        log.exception("ingest.crashed", error_type=type(exc).__name__)
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


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Submit every record's job; answer with the records SQS must deliver again."""
    bind_invocation(
        getattr(context, "aws_request_id", None),
        getattr(context, "function_name", None),
    )
    service = get_service()
    default_owner = get_settings().ingest_default_owner
    records = event.get("Records", [])
    failures = [
        str(record.get("messageId", ""))
        for record in records
        if not contextvars.copy_context().run(
            ingest_record, service, record, default_owner
        )
    ]
    log.info("batch.done", records=len(records), failures=len(failures))
    return {
        "batchItemFailures": [{"itemIdentifier": message_id} for message_id in failures]
    }
