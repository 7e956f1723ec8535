"""Lambda entry point of the ingest function (template.yaml: `jobline_ingest.handler.lambda_handler`)."""

from __future__ import annotations

from functools import partial
from typing import Any

from jobline.bootstrap import build_during_lambda_init, dynamodb_client, get_service
from jobline.config import get_settings
from jobline.logging import configure
from jobline.sqs_batch import run_batch

from jobline_ingest.record import ingest_record

configure()
build_during_lambda_init(dynamodb_client)


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Submit every record's job; answer with the records SQS must deliver again."""
    settings = get_settings()
    process = partial(ingest_record, get_service(), settings.ingest_default_owner)
    return run_batch(event, context, process, margin_ms=settings.deadline_margin_ms)
