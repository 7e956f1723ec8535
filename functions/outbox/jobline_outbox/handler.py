"""Lambda entry point of the outbox dispatcher (template.yaml: `jobline_outbox.handler.lambda_handler`),
triggered by the jobs table's stream with `ReportBatchItemFailures`: a failed record is named by
its sequence number, and Lambda hands the batch over again from the lowest one."""

from __future__ import annotations

from typing import Any

from jobline.bootstrap import build_during_lambda_init, get_service, sqs_client
from jobline.logging import bind_invocation, configure

from jobline_outbox.records import dispatch_records

configure()
build_during_lambda_init(sqs_client)


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Send the message of every job the batch's writes left queued."""
    bind_invocation(
        getattr(context, "aws_request_id", None),
        getattr(context, "function_name", None),
    )
    failed = dispatch_records(get_service(), event.get("Records", []))
    return {"batchItemFailures": [{"itemIdentifier": number} for number in failed]}
