"""Find jobs the outbox never dispatched (`make sweep`): a bounded Scan of the jobs table for queued
jobs whose dispatch mark is older than a cutoff. A scan reads the whole table, so only an operator
runs it, after an outage longer than the stream's 24 h (docs/operations.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from jobline.aws.items import item_to_job
from jobline.lifecycle import needs_message
from jobline.models import Job, JobStatus

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

STRANDED = "#status = :queued AND attribute_exists(#dispatch) AND #dispatch < :cutoff"


def build_scan_stranded(table: str, cutoff: int, page_items: int) -> dict[str, Any]:
    """The Scan request for queued jobs whose dispatch mark (epoch ms) is older than `cutoff`."""
    return {
        "TableName": table,
        "FilterExpression": STRANDED,
        "ExpressionAttributeNames": {"#status": "status", "#dispatch": "dispatch"},
        "ExpressionAttributeValues": {
            ":queued": {"S": JobStatus.QUEUED.value},
            ":cutoff": {"N": str(cutoff)},
        },
        "Limit": page_items,
    }


def scan_stranded(
    client: DynamoDBClient,
    table: str,
    cutoff: int,
    page_items: int,
    scanned: Callable[[int], None],
) -> Iterator[Job]:
    """The stranded jobs, page by page; `scanned(n)` hears how many items each page read."""
    request = build_scan_stranded(table, cutoff, page_items)
    while True:
        page = client.scan(**request)
        scanned(int(page.get("ScannedCount", 0)))
        for item in page.get("Items", []):
            job = item_to_job(item)
            if needs_message(job):
                yield job
        if "LastEvaluatedKey" not in page:
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
