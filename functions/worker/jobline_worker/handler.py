"""Lambda entry point of the worker (template.yaml: `jobline_worker.handler.lambda_handler`)."""

from __future__ import annotations

import gc

# As in the API handler: no collection while init allocates what lives as long as the
# execution environment; what init built is frozen out of later collections (bottom).
gc.disable()

from functools import partial
from typing import Any

from jobline.bootstrap import (
    build_during_lambda_init,
    dynamodb_client,
    get_service,
    load_handlers,
)
from jobline.config import get_settings
from jobline.logging import configure
from jobline.sqs_batch import run_batch, thread_pool

from jobline_worker.record import run_record

configure()
load_handlers()  # a job type whose handler cannot work stops the worker here, not its jobs
build_during_lambda_init(dynamodb_client)


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Run the batch's jobs concurrently; answer with the records SQS must deliver again."""
    settings = get_settings()
    return run_batch(
        event,
        context,
        partial(run_record, get_service()),
        margin_ms=settings.deadline_margin_ms,
        executor=thread_pool(settings.worker_concurrency),
    )


gc.freeze()
gc.enable()
