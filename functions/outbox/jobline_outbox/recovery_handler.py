"""Lambda entry point of the outbox recovery (template.yaml: `jobline_outbox.recovery_handler.lambda_handler`),
triggered by the queue Lambda sends the dispatcher's exhausted batches to."""

from __future__ import annotations

from functools import partial
from typing import Any

from jobline.bootstrap import (
    build_during_lambda_init,
    dynamodbstreams_client,
    get_service,
    sqs_client,
    stream_reader,
)
from jobline.config import get_settings
from jobline.logging import configure
from jobline.sqs_batch import run_batch

from jobline_outbox.recovery_record import recover_record

configure()
build_during_lambda_init(dynamodbstreams_client, sqs_client)


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Dispatch every batch the records name; answer with the records to deliver again."""
    process = partial(recover_record, get_service(), stream_reader())
    return run_batch(
        event, context, process, margin_ms=get_settings().deadline_margin_ms
    )
