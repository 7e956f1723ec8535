"""The composition root: the only place that names concrete adapters.

Clients are created once per execution environment (cached), never per request. Tests build a
service from fakes with `build_service(repository=..., queue=...)` or point the defaults at moto.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from jobline.config import Settings, get_settings
from jobline.cursor import CursorCodec
from jobline.job_types import BUILTIN_JOB_TYPES
from jobline.logging import configure
from jobline.ports import JobQueue, JobRepository
from jobline.queue import SqsJobQueue
from jobline.registry import JobTypeRegistry
from jobline.repository import DynamoJobRepository
from jobline.service import JobService

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_sqs.client import SQSClient


def _client_config(settings: Settings) -> Config:
    return Config(
        region_name=settings.aws_region,
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=2,
        read_timeout=10,
        max_pool_connections=max(10, settings.worker_concurrency + 2),
    )


@lru_cache(maxsize=1)
def dynamodb_client() -> DynamoDBClient:
    """The DynamoDB client of this execution environment."""
    settings = get_settings()
    return boto3.client(
        "dynamodb",
        endpoint_url=settings.aws_endpoint_url,
        config=_client_config(settings),
    )


@lru_cache(maxsize=1)
def sqs_client() -> SQSClient:
    """The SQS client of this execution environment."""
    settings = get_settings()
    return boto3.client(
        "sqs", endpoint_url=settings.aws_endpoint_url, config=_client_config(settings)
    )


def default_registry() -> JobTypeRegistry:
    """The built-in job types."""
    return JobTypeRegistry(BUILTIN_JOB_TYPES)


def build_service(
    settings: Settings | None = None,
    *,
    repository: JobRepository | None = None,
    queue: JobQueue | None = None,
    registry: JobTypeRegistry | None = None,
) -> JobService:
    """Wire a JobService; every adapter can be swapped, the defaults talk to AWS (or AWS_ENDPOINT_URL)."""
    settings = settings or get_settings()
    configure(settings.log_level)
    return JobService(
        repository or DynamoJobRepository(dynamodb_client(), settings.table_name),
        queue or SqsJobQueue(sqs_client(), settings.queue_url),
        registry or default_registry(),
        CursorCodec(settings.cursor_secret.get_secret_value().encode()),
        retention=timedelta(days=settings.retention_days),
        max_payload_bytes=settings.max_payload_bytes,
        max_result_bytes=settings.max_result_bytes,
    )


@lru_cache(maxsize=1)
def get_service() -> JobService:
    """The service of this execution environment, built once."""
    return build_service()


def reset() -> None:
    """Forget cached clients, settings and service (tests, and SnapStart restore)."""
    get_service.cache_clear()
    dynamodb_client.cache_clear()
    sqs_client.cache_clear()
    get_settings.cache_clear()
