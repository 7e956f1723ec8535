"""A job message out of a queue record: the worker's and the dead-letter consumer's first step."""

from __future__ import annotations

from pydantic import ValidationError

from jobline.logging import get_logger
from jobline.models import JobMessage
from jobline.sqs_batch import SqsRecord

log = get_logger(__name__)


def parse_job_message(record: SqsRecord, malformed_event: str) -> JobMessage | None:
    """The job message in the record's body; None, logged as `malformed_event` with pydantic's
    errors (never the body), when it is not one."""
    try:
        return JobMessage.model_validate_json(record.body)
    except ValidationError as exc:
        log.error(
            malformed_event, errors=exc.errors(include_url=False, include_input=False)
        )
        return None
