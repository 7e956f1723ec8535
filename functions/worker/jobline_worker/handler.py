"""Lambda entry point of the worker (template.yaml: `jobline_worker.handler.lambda_handler`)."""

from __future__ import annotations

import gc

# As in the API handler: no collection while init allocates what lives as long as the
# execution environment; what init built is frozen out of later collections (bottom).
gc.disable()

from functools import partial  # noqa: E402
from typing import Any  # noqa: E402

from jobline.bootstrap import build_during_lambda_init, dynamodb_client, get_service  # noqa: E402
from jobline.config import get_settings  # noqa: E402
from jobline.logging import configure  # noqa: E402
from jobline.sqs_batch import run_batch, thread_pool  # noqa: E402

from jobline_worker.record import run_record  # noqa: E402

configure()
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
