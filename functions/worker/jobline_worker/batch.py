"""One SQS batch -> service calls -> `batchItemFailures`, records run concurrently in threads."""

from __future__ import annotations

import contextvars
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jobline.errors import JoblineError
from jobline.logging import bind, get_logger
from jobline.models import Delivery, JobMessage
from jobline.service import JobService, RunOutcome
from pydantic import ValidationError

log = get_logger(__name__)


@dataclass(frozen=True)
class Invocation:
    """The Lambda invocation running a batch."""

    request_id: str | None
    lease_until: datetime
    """The invocation's Lambda deadline: a claim's lease ends here."""
    deadline: float
    """`time.monotonic()` by which handlers must have returned (deadline minus a margin)."""


def _run_record(
    service: JobService, record: dict[str, Any], invocation: Invocation
) -> bool:
    """Run one record; True when its message may be deleted."""
    message_id = str(record.get("messageId", ""))
    receive_count = record.get("attributes", {}).get("ApproximateReceiveCount")
    bind(message_id=message_id, receive_count=receive_count)
    if time.monotonic() >= invocation.deadline:
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
    delivery = Delivery(
        message=message,
        message_id=message_id,
        receipt_handle=record.get("receiptHandle"),
        receive_count=int(receive_count or 1),
        request_id=invocation.request_id,
        lease_until=invocation.lease_until,
        deadline=invocation.deadline,
    )
    try:
        return service.run(delivery) is RunOutcome.DONE
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
    invocation: Invocation,
    executor: ThreadPoolExecutor,
) -> list[str]:
    """Run every record (concurrently, bounded by the executor); return the message ids to retry.
    Records that cannot start before the deadline are returned unstarted."""
    futures: list[tuple[str, Future[bool]]] = []
    for record in records:
        context = contextvars.copy_context()
        futures.append(
            (
                str(record.get("messageId", "")),
                executor.submit(context.run, _run_record, service, record, invocation),
            )
        )
    return [message_id for message_id, future in futures if not future.result()]
