"""The composition root: the only place that names concrete adapters.

Clients are created once per execution environment (cached), never per request. Tests build a
service from fakes with `build_service(repository=..., queue=...)` or point the defaults at moto.
"""

from __future__ import annotations

import os
from datetime import timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, cast

from botocore.config import Config
from botocore.loaders import Loader
from botocore.session import Session

from jobline.backoff import Backoff
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


class ModelLoader(Loader):
    """botocore's loader of its bundled API models, without one directory scan: before loading a
    service's model the stock loader checks each of ~400 service folders for that kind of model
    (once per kind: ~25 ms of a cold start). Here the services are the folders' names, so a
    service without the model fails when it is loaded rather than before."""

    def list_available_services(self, type_name: str) -> list[str]:
        """Every service folder on the search path."""
        names: set[str] = set()
        for path in self.search_paths:
            if os.path.isdir(path):
                names.update(os.listdir(path))
        return sorted(names)


@lru_cache(maxsize=1)
def _api_models() -> Loader:
    """botocore's API models (endpoints, service and rule-set JSON), parsed once per process:
    they are the same files in every environment, so `reset()` keeps them."""
    return ModelLoader()


@lru_cache(maxsize=1)
def aws_session() -> Session:
    """The botocore session of this execution environment: one credential chain for every
    client. (botocore directly: boto3 adds only import time here; see docs/benchmarks.md.)"""
    session = Session()
    session.register_component("data_loader", _api_models())
    return session


@lru_cache(maxsize=1)
def dynamodb_client() -> DynamoDBClient:
    """The DynamoDB client of this execution environment."""
    settings = get_settings()
    client = aws_session().create_client(
        "dynamodb",
        endpoint_url=settings.aws_endpoint_url,
        config=_client_config(settings),
    )
    return cast("DynamoDBClient", client)


@lru_cache(maxsize=1)
def sqs_client() -> SQSClient:
    """The SQS client of this execution environment."""
    settings = get_settings()
    client = aws_session().create_client(
        "sqs", endpoint_url=settings.aws_endpoint_url, config=_client_config(settings)
    )
    return cast("SQSClient", client)


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
        backoff=Backoff(base_s=settings.retry_base_s, cap_s=settings.retry_cap_s),
        progress_interval_s=settings.progress_interval_s,
    )


@lru_cache(maxsize=1)
def get_service() -> JobService:
    """The service of this execution environment, built once."""
    return build_service()


def reset() -> None:
    """Forget cached clients (their connections), the session (its credentials), settings and
    service (tests, and SnapStart restore)."""
    get_service.cache_clear()
    dynamodb_client.cache_clear()
    sqs_client.cache_clear()
    aws_session.cache_clear()
    get_settings.cache_clear()
