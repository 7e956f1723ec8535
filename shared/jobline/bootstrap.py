"""The composition root: the only place that names concrete adapters and wires the use cases.

Clients are created once per execution environment (cached), never per request. Tests build a
service from fakes with `build_service(options=..., repository=..., queue=..., clock=...)` or point
the defaults at moto.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

from botocore.config import Config
from botocore.loaders import Loader
from botocore.session import Session

from jobline.attempt import AttemptPolicy
from jobline.backoff import Backoff
from jobline.clock import utcnow
from jobline.config import Settings, get_settings, lambda_initialization_type
from jobline.control import Control
from jobline.cursor import CursorCodec, CursorKeys
from jobline.dispatch import Dispatch
from jobline.egress import EgressPolicy
from jobline.execution import Execution
from jobline.ingest import Ingest
from jobline.job_types import BUILTIN_JOB_TYPES, http_request
from jobline.job_types.http_request import HttpRequestOptions
from jobline.logging import configure
from jobline.parameters import load_cursor_keys
from jobline.ports import JobQueue, JobRepository
from jobline.queries import Queries
from jobline.queue import SqsJobQueue
from jobline.recovery import Recovery
from jobline.redaction import Redaction, use_for_logs
from jobline.registry import JobTypeRegistry
from jobline.repository import DynamoJobRepository
from jobline.service import JobService
from jobline.streams import DynamoStreamReader
from jobline.submission import Submission

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodbstreams.client import DynamoDBStreamsClient
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_ssm.client import SSMClient


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


def _create_client(service: str) -> Any:
    """A botocore client for `service` from this environment's session and settings."""
    settings = get_settings()
    with _CREATING:
        return aws_session().create_client(
            service,
            endpoint_url=settings.aws_endpoint_url,
            config=_client_config(settings),
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


def stream_reader() -> DynamoStreamReader:
    """Reads the jobs table's stream (the outbox's recovery)."""
    return DynamoStreamReader(dynamodbstreams_client())


@lru_cache(maxsize=1)
def ssm_client() -> SSMClient:
    """The SSM client of this execution environment (the API's cursor key, read at init)."""
    return cast("SSMClient", _create_client("ssm"))


@lru_cache(maxsize=1)
def cursor_keys() -> CursorKeys:
    """This execution environment's cursor keys, loaded once (`load_cursor_keys`): the API
    function loads them during its init phase, so a weak key stops it before any request."""
    return load_cursor_keys(get_settings(), ssm_client, utcnow)


def default_registry(settings: Settings | None = None) -> JobTypeRegistry:
    """The built-in job types; with `settings`, `http.request` runs under the deployment's
    egress policy and redaction (without, under the defaults: public addresses only, the
    standard secret headers)."""
    if settings is None:
        return JobTypeRegistry(BUILTIN_JOB_TYPES)
    options = HttpRequestOptions(
        egress=EgressPolicy(
            allow=settings.http_allow_networks,
            runtime_api=settings.lambda_runtime_api,
        ),
        redaction=Redaction.of(settings.redact_headers),
    )
    return JobTypeRegistry(
        http_request.job_type(options)
        if job_type.name == http_request.NAME
        else job_type
        for job_type in BUILTIN_JOB_TYPES
    )


@dataclass(frozen=True)
class ServiceOptions:
    """The deployment's limits and policies, as the use cases take them."""

    cursor_secret: bytes | None = None
    """The key that signs list cursors; None: this environment's keys (`cursor_keys`, loaded
    when a cursor is first signed or read)."""
    cursor_previous_secrets: tuple[bytes, ...] = ()
    """Keys still accepted when reading a cursor (with `cursor_secret` only)."""
    retention: timedelta = timedelta(days=30)
    max_payload_bytes: int = 64 * 1024
    max_result_bytes: int = 128 * 1024
    backoff: Backoff = field(default_factory=Backoff)
    progress_interval_s: float = 1.0

    @classmethod
    def of(cls, settings: Settings) -> ServiceOptions:
        """The options a deployment's settings give."""
        return cls(
            retention=timedelta(days=settings.retention_days),
            max_payload_bytes=settings.max_payload_bytes,
            max_result_bytes=settings.max_result_bytes,
            backoff=Backoff(base_s=settings.retry_base_s, cap_s=settings.retry_cap_s),
            progress_interval_s=settings.progress_interval_s,
        )


def build_service(
    settings: Settings | None = None,
    *,
    options: ServiceOptions | None = None,
    repository: JobRepository | None = None,
    queue: JobQueue | None = None,
    registry: JobTypeRegistry | None = None,
    clock: Callable[[], datetime] = utcnow,
    rng: random.Random | None = None,
) -> JobService:
    """Wire the use cases into a JobService. Every part can be swapped; the defaults come from
    the settings (read only when something needs them) and talk to AWS (or AWS_ENDPOINT_URL)."""
    resolved = settings

    def configured() -> Settings:
        nonlocal resolved
        resolved = resolved or get_settings()
        return resolved

    options = options or ServiceOptions.of(configured())
    # The clients are created on first use (once: the factories are cached), so a function
    # builds only the ones it calls: the API never sends (the outbox does), the dispatcher
    # never reads the table, a worker needs SQS only to postpone a retry.
    repository = repository or DynamoJobRepository(
        dynamodb_client, configured().table_name
    )
    queue = queue or SqsJobQueue(sqs_client, configured().queue_url)
    configure(resolved.log_level if resolved is not None else None)
    if resolved is not None:
        use_for_logs(Redaction.of(resolved.redact_headers))
    registry = registry or default_registry(configured())
    submission = Submission(repository, registry, clock, options.max_payload_bytes)
    control = Control(repository, clock, options.retention)
    policy = AttemptPolicy(
        options.retention, options.max_result_bytes, options.progress_interval_s
    )
    return JobService(
        submission=submission,
        queries=Queries(
            repository,
            registry,
            CursorCodec(
                cursor_keys
                if options.cursor_secret is None
                else CursorKeys(options.cursor_secret, options.cursor_previous_secrets)
            ),
            clock,
        ),
        control=control,
        execution=Execution(
            repository,
            queue,
            registry,
            clock,
            policy,
            options.backoff,
            rng or random.Random(),
        ),
        ingestion=Ingest(
            submission, repository, clock, options.max_payload_bytes, options.retention
        ),
        recovery=Recovery(repository, control, clock, options.retention),
        dispatch=Dispatch(queue, clock),
        registry=registry,
    )


@lru_cache(maxsize=1)
def get_service() -> JobService:
    """The service of this execution environment, built once."""
    return build_service()


def build_during_lambda_init(*clients: Callable[[], object]) -> None:
    """On Lambda, build this environment's service (settings, session) and the `clients` the
    function calls on every event (e.g. `dynamodb_client`) now, while the handler module is
    imported: the init phase, before the first event (measured: 74-94 ms of a worker's first
    invoke). Tests and local runs import handlers without it."""
    if lambda_initialization_type() is not None:
        get_service()
        for client in clients:
            client()


def reset() -> None:
    """Forget cached clients (their connections), the session (its credentials), settings,
    cursor keys and service (tests, and SnapStart restore)."""
    get_service.cache_clear()
    cursor_keys.cache_clear()
    dynamodb_client.cache_clear()
    dynamodbstreams_client.cache_clear()
    sqs_client.cache_clear()
    ssm_client.cache_clear()
    aws_session.cache_clear()
    get_settings.cache_clear()
