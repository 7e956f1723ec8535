"""Where an ops command runs: `make run`'s moto server (`--local`) or the AWS account the standard
`AWS_*` variables and Jobline's `JOBLINE_*` settings name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from jobline.config import Settings, get_settings
from jobline_local.endpoint import local_client
from jobline_local.settings import LocalSettings
from jobline_local.template import bucket_name
from pydantic import ValidationError


@dataclass(frozen=True)
class Environment:
    """Clients and settings the command runs with."""

    sqs: Any
    settings: Settings | None
    dynamodb: Any
    s3: Any = None


def local_environment(local: LocalSettings) -> Environment:
    """`make run`'s moto server and the resources it created."""
    client_host = local.moto_client_host
    host = f"[{client_host}]" if ":" in client_host else client_host
    endpoint = f"http://{host}:{local.moto_port}"
    sqs = local_client("sqs", endpoint, local.aws_region)
    dynamodb = local_client("dynamodb", endpoint, local.aws_region)
    s3 = local_client("s3", endpoint, local.aws_region)
    jobs_queue = sqs.get_queue_url(QueueName=f"{local.prefix}-JobsQueue")["QueueUrl"]
    settings = Settings.model_validate(
        {
            "table_name": f"{local.prefix}-JobsTable",
            "queue_url": jobs_queue,
            "data_bucket": bucket_name(local.prefix, "JobDataBucket"),
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_REGION": local.aws_region,
        }
    )
    return Environment(sqs=sqs, settings=settings, dynamodb=dynamodb, s3=s3)


def aws_environment() -> Environment:
    """The `JOBLINE_*` settings when they are set, and clients from the standard AWS variables."""
    try:
        settings: Settings | None = get_settings()
    except ValidationError:
        settings = None  # fine for a redrive given both queues, with no job to re-queue
    return Environment(
        sqs=boto3.client("sqs"),
        settings=settings,
        dynamodb=boto3.client("dynamodb"),
        s3=boto3.client("s3"),
    )
