"""The straightforward worker, kept as the cold-start reference (issue 4).

boto3 + structlog + pydantic-settings with two clients created at import; each record claims its
job and records the echo result with two conditional UpdateItem calls, one record after another.
Nothing here is tuned; `bench.coldstart` measures it next to the real worker in the same run.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import boto3
import structlog
from botocore.exceptions import ClientError
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JOBLINE_", extra="ignore")

    table_name: str
    queue_url: str


settings = Settings()  # type: ignore[call-arg]
structlog.configure(
    processors=[
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.JSONRenderer(),
    ],
    wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
)
log = structlog.get_logger()
dynamodb = boto3.client("dynamodb")
sqs = boto3.client("sqs")


def run(job_id: str) -> None:
    now = datetime.now(UTC).isoformat()
    claimed = dynamodb.update_item(
        TableName=settings.table_name,
        Key={"id": {"S": job_id}},
        UpdateExpression="SET #s = :running, started_at = :now ADD attempts :one",
        ConditionExpression="#s = :queued",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={
            ":running": {"S": "running"},
            ":queued": {"S": "queued"},
            ":now": {"S": now},
            ":one": {"N": "1"},
        },
        ReturnValues="ALL_NEW",
    )["Attributes"]
    result = json.loads(claimed["payload"]["S"])
    dynamodb.update_item(
        TableName=settings.table_name,
        Key={"id": {"S": job_id}},
        UpdateExpression="SET #s = :succeeded, #r = :result, finished_at = :now",
        ConditionExpression="#s = :running",
        ExpressionAttributeNames={"#s": "status", "#r": "result"},
        ExpressionAttributeValues={
            ":succeeded": {"S": "succeeded"},
            ":running": {"S": "running"},
            ":result": {"S": json.dumps(result)},
            ":now": {"S": now},
        },
    )
    log.info("job.succeeded", job_id=job_id)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    failures = []
    for record in event["Records"]:
        try:
            run(json.loads(record["body"])["job_id"])
        except ClientError:
            log.exception("job.failed")
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
