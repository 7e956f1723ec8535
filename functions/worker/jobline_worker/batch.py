"""One SQS batch -> service calls -> `batchItemFailures`, records run concurrently in threads."""

from __future__ import annotations

import contextvars
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from jobline.errors import JoblineError
from jobline.logging import bind, get_logger
from jobline.models import JobMessage
from jobline.service import JobService, RunOutcome
from pydantic import ValidationError

log = get_logger(__name__)


def _run_record(service: JobService, record: dict[str, Any], deadline: float) -> bool:
    """Run one record; True when its message may be deleted."""
    message_id = record.get("messageId")
    bind(
        message_id=message_id,
        receive_count=record.get("attributes", {}).get("ApproximateReceiveCount"),
    )
    if time.monotonic() >= deadline:
        log.warning("record.not_started", reason="deadline near")
        return False
    try:
        message = JobMessage.model_validate_json(record.get("body", ""))
    except ValidationError as exc:
        log.error(
            "record.malformed",
            errors=exc.errors(include_url=False, include_input=False),
        )
        return False
    try:
        return service.run(message, deadline) is RunOutcome.DONE
    except JoblineError as exc:
        log.error(
            "record.rejected",
            error_type=type(exc).__name__,
            error=exc.message,
            job_id=message.job_id,
        )
        return False
    except (
        Exception
    ) as exc:  # never let one record take the batch down: log it, return it
        log.exception(
            "record.crashed", error_type=type(exc).__name__, job_id=message.job_id
        )
        return False


def process_batch(
    service: JobService,
    records: Sequence[dict[str, Any]],
    deadline: float,
    executor: ThreadPoolExecutor,
) -> list[str]:
    """Run every record (concurrently, bounded by the executor); return the message ids to retry."""
    futures: list[tuple[str, Future[bool]]] = []
    for record in records:
        context = contextvars.copy_context()
        futures.append(
            (
                record.get("messageId", ""),
                executor.submit(context.run, _run_record, service, record, deadline),
            )
        )
    return [message_id for message_id, future in futures if not future.result()]
