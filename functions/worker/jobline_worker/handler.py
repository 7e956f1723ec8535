"""Lambda entry point of the worker (template.yaml: `jobline_worker.handler.lambda_handler`)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import lru_cache
from typing import Any

from jobline.bootstrap import get_service
from jobline.clock import utcnow
from jobline.config import get_settings
from jobline.logging import bind_invocation, configure, get_logger

from jobline_worker.batch import Invocation, process_batch

configure()
log = get_logger(__name__)


@lru_cache(maxsize=1)
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(
        max_workers=get_settings().worker_concurrency, thread_name_prefix="job"
    )


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Run the batch; answer with the records SQS must deliver again."""
    bind_invocation(
        getattr(context, "aws_request_id", None),
        getattr(context, "function_name", None),
    )
    remaining_s = context.get_remaining_time_in_millis() / 1000
    invocation = Invocation(
        request_id=getattr(context, "aws_request_id", None),
        lease_until=utcnow() + timedelta(seconds=remaining_s),
        deadline=time.monotonic()
        + remaining_s
        - get_settings().deadline_margin_ms / 1000,
    )
    records = event.get("Records", [])
    failures = process_batch(get_service(), records, invocation, _executor())
    log.info("batch.done", records=len(records), failures=len(failures))
    return {
        "batchItemFailures": [{"itemIdentifier": message_id} for message_id in failures]
    }
