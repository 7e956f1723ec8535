"""Lambda entry point of the dead-letter consumer (template.yaml:
`jobline_dead_letters.handler.lambda_handler`), triggered by the jobs queue's dead-letter queue."""

from __future__ import annotations

from functools import partial
from typing import Any

from jobline.bootstrap import build_during_lambda_init, dynamodb_client, get_service
from jobline.config import get_settings
from jobline.logging import configure
from jobline.sqs_batch import run_batch

from jobline_dead_letters.record import dead_letter_record

configure()
build_during_lambda_init(dynamodb_client)


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Record every dead-lettered job; answer with the records SQS must deliver again."""
    process = partial(dead_letter_record, get_service())
    return run_batch(
        event, context, process, margin_ms=get_settings().deadline_margin_ms
    )
