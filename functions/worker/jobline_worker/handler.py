"""Lambda entry point of the worker (template.yaml: `jobline_worker.handler.lambda_handler`)."""

from __future__ import annotations

from functools import partial
from typing import Any

from jobline.bootstrap import build_during_lambda_init, get_service
from jobline.config import get_settings
from jobline.logging import configure
from jobline.sqs_batch import run_batch, thread_pool

from jobline_worker.record import run_record

configure()
build_during_lambda_init()


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
