"""The botocore clients of this execution environment: one session (one credential chain), each
client created once, on first use, with timeouts and tries that fit the function's timeout."""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

from botocore.config import Config
from botocore.loaders import Loader
from botocore.session import Session

from jobline.aws.blobs import S3Client
from jobline.config import Settings, get_settings
from jobline.limits import FUNCTION_READ_TIMEOUT_S

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodbstreams.client import DynamoDBStreamsClient
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_ssm.client import SSMClient

    from jobline.aws.functions import LambdaClient


def _client_config(settings: Settings) -> Config:
    """Timeouts and tries that fit in the function's timeout (`Settings.aws_call_budget_s`);
    account-id endpoints off (DynamoDB Streams has none, and emulators route by service)."""
    return Config(
        region_name=settings.aws_region,
        # `total_max_attempts`: every try (botocore reads "max_attempts" as retries after the first).
        retries={"mode": "standard", "total_max_attempts": settings.aws_max_attempts},
        connect_timeout=settings.aws_connect_timeout_s,
        read_timeout=settings.aws_read_timeout_s,
        max_pool_connections=max(10, settings.worker_concurrency + 2),
        account_id_endpoint_mode="disabled",
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


_CREATING = threading.RLock()
"""Held while a client is created: clients are made on first use, which can be two of a batch's
worker threads at once, and botocore's session must not create clients concurrently."""


def _create_client(
    service: str, *, config: Config | None = None, endpoint_url: str | None = None
) -> Any:
    """A botocore client for `service` from this environment's session and settings (`config`
    merged over them; `endpoint_url` before AWS_ENDPOINT_URL)."""
    settings = get_settings()
    merged = _client_config(settings)
    if config is not None:
        merged = merged.merge(config)
    with _CREATING:
        return aws_session().create_client(
            service,
            endpoint_url=endpoint_url or settings.aws_endpoint_url,
            config=merged,
        )


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
    return cast("DynamoDBClient", _create_client("dynamodb"))


@lru_cache(maxsize=1)
def sqs_client() -> SQSClient:
    """The SQS client of this execution environment."""
    return cast("SQSClient", _create_client("sqs"))


@lru_cache(maxsize=1)
def dynamodbstreams_client() -> DynamoDBStreamsClient:
    """The DynamoDB Streams client of this execution environment (the outbox's recovery)."""
    return cast("DynamoDBStreamsClient", _create_client("dynamodbstreams"))


@lru_cache(maxsize=1)
def ssm_client() -> SSMClient:
    """The SSM client of this execution environment (the API's cursor key, read when first
    needed)."""
    return cast("SSMClient", _create_client("ssm"))


@lru_cache(maxsize=1)
def lambda_client() -> LambdaClient:
    """The Lambda client of this execution environment (job types' target functions), at
    JOBLINE_LAMBDA_ENDPOINT_URL when set (a local stand-in). Its read timeout is Lambda's longest
    run, not the AWS calls' second and a half: an invocation answers when the function returns
    (the attempt's deadline stops the wait sooner). botocore tries each call once: a resend after
    a read timeout would run the function again; `jobline.aws.functions` decides what is tried
    again. TCP keepalive holds the connection open through a long silent wait."""
    settings = get_settings()
    config = Config(
        read_timeout=FUNCTION_READ_TIMEOUT_S,
        retries={"mode": "standard", "total_max_attempts": 1},
        tcp_keepalive=True,
    )
    return cast(
        "LambdaClient",
        _create_client(
            "lambda", config=config, endpoint_url=settings.lambda_endpoint_url
        ),
    )


@lru_cache(maxsize=1)
def s3_client() -> S3Client:
    """The S3 client of this execution environment (the data bucket: large payloads and
    results), created when large data is first stored, read or linked. Presigned URLs are SigV4
    (the only signature S3 accepts in every region); an emulator (AWS_ENDPOINT_URL) is addressed
    by path, having no per-bucket host names."""
    emulated = get_settings().aws_endpoint_url is not None
    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path" if emulated else "auto"},
    )
    return cast("S3Client", _create_client("s3", config=config))


FACTORIES = (
    dynamodb_client,
    dynamodbstreams_client,
    sqs_client,
    ssm_client,
    lambda_client,
    s3_client,
)
"""Every client factory of this module (`close_connections` and `reset` go through them all)."""


def close_connections() -> None:
    """Close the pooled HTTP connections of every client created so far, and keep the clients:
    each opens new connections on its next call (botocore's `close` empties its connection
    pools). After a SnapStart restore the pooled connections are the snapshot's: dead, and the
    same in every environment restored from it."""
    for factory in FACTORIES:
        if factory.cache_info().currsize:
            factory().close()


def reset() -> None:
    """Forget the clients (their connections) and the session (its credentials)."""
    for factory in FACTORIES:
        factory.cache_clear()
    aws_session.cache_clear()
