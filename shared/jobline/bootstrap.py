"""The composition root: the only place that names concrete adapters and wires the use cases.

Clients are created once per execution environment (cached), never per request. Tests build a
service from fakes with `build_service(options=..., repository=..., queue=..., clock=...)` or point
the defaults at moto.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from jobline.aws import clients
from jobline.aws.blobs import S3BlobStore
from jobline.aws.clients import (
    dynamodb_client,
    dynamodbstreams_client,
    lambda_client,
    s3_client,
    sqs_client,
    ssm_client,
)
from jobline.aws.functions import LambdaFunctionInvoker
from jobline.aws.parameters import load_cursor_keys
from jobline.aws.queue import SqsJobQueue
from jobline.aws.repository import DynamoJobRepository
from jobline.aws.streams import DynamoStreamReader
from jobline.backoff import Backoff
from jobline.clock import utcnow
from jobline.config import (
    JobTypeSettings,
    Settings,
    get_settings,
    job_type_settings,
    lambda_initialization_type,
    on_lambda,
)
from jobline.cursor import CursorCodec, CursorKeys
from jobline.discovery import discover
from jobline.lanes import Lane, Lanes, refuse_unfit
from jobline.limits import INLINE_DATA_BYTES
from jobline.ports import BlobStore, FunctionInvoker, JobQueue, JobRepository
from jobline.registry import JobTypeRegistry
from jobline.service import JobService
from jobline.usecases.attempt import AttemptPolicy
from jobline.usecases.claim_check import ClaimCheck
from jobline.usecases.control import Control
from jobline.usecases.dead_letters import DeadLetters
from jobline.usecases.dispatch import Dispatch
from jobline.usecases.execution import Execution
from jobline.usecases.ingest import Ingest
from jobline.usecases.queries import Queries
from jobline.usecases.submission import Submission

__all__ = [
    "ServiceOptions",
    "build_during_lambda_init",
    "build_service",
    "cursor_keys",
    "default_registry",
    "dynamodb_client",
    "dynamodbstreams_client",
    "get_service",
    "lambda_client",
    "load_handlers",
    "renew_after_restore",
    "reset",
    "s3_client",
    "sqs_client",
    "ssm_client",
    "stream_reader",
]


def stream_reader() -> DynamoStreamReader:
    """Reads the jobs table's stream (the outbox's recovery)."""
    return DynamoStreamReader(dynamodbstreams_client())


@lru_cache(maxsize=1)
def cursor_keys() -> CursorKeys:
    """This execution environment's cursor keys (`load_cursor_keys`), loaded once, when a cursor
    is first signed or read: a request that lists nothing never waits for SSM. A weak key is
    a ConfigurationError then (the API answers 503 and logs why), and nothing is cached: the
    next listing tries again."""
    return load_cursor_keys(get_settings(), ssm_client, utcnow)


_RANDOM = random.Random()
"""The default random source of the services built here (retry jitter), reseeded by
`renew_after_restore`."""


def default_registry(
    settings: Settings | JobTypeSettings | None = None,
) -> JobTypeRegistry:
    """This deployment's job types (`jobline.discovery`): the installed `jobline.job_types` entry
    points' and those of the modules `settings.job_type_modules` names (default: the
    environment's JOBLINE_JOB_TYPE_MODULES). Their handlers are not imported here (the API
    builds this registry too): the worker resolves them (`load_handlers`)."""
    types = job_type_settings()
    modules = (settings or types).job_type_modules
    registry = JobTypeRegistry(found.job_type for found in discover(modules))
    refuse_unfit(registry, types.lanes)
    return registry


@dataclass(frozen=True, kw_only=True)
class ServiceOptions:
    """The deployment's limits and policies, as the use cases take them: built from settings
    (`of`), the one place their defaults come from."""

    cursor_keys: CursorKeys | None
    """The keys that sign and read list cursors; None: this environment's (`cursor_keys`,
    loaded when a cursor is first signed or read)."""
    retention: timedelta
    max_payload_bytes: int
    max_result_bytes: int
    backoff: Backoff
    progress_interval_s: float
    lanes: Lanes
    data_bucket: str | None = None
    """The data bucket (large payloads and results); None: the deployment has none, and data
    over `limits.INLINE_DATA_BYTES` is refused."""

    @classmethod
    def of(
        cls, settings: Settings, *, cursor_keys: CursorKeys | None = None
    ) -> ServiceOptions:
        """The options a deployment's settings give."""
        return cls(
            lanes=job_type_settings().lanes,
            cursor_keys=cursor_keys,
            retention=timedelta(days=settings.retention_days),
            max_payload_bytes=settings.max_payload_bytes,
            max_result_bytes=settings.max_result_bytes,
            backoff=Backoff(base_s=settings.retry_base_s, cap_s=settings.retry_cap_s),
            progress_interval_s=settings.progress_interval_s,
            data_bucket=settings.data_bucket,
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
    invoker: FunctionInvoker | None = None,
    blobs: BlobStore | None = None,
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
    if queue is None:
        urls = configured()
        queue = SqsJobQueue(
            sqs_client,
            urls.queue_url,
            {Lane.LONG.value: urls.long_queue_url or urls.queue_url},
        )
    registry = registry or default_registry(configured())
    # Job types' target functions: the Lambda client is created on the first invocation.
    invoker = invoker or LambdaFunctionInvoker(lambda_client)
    if blobs is None and options.data_bucket is not None:
        blobs = S3BlobStore(s3_client, options.data_bucket)
    claim_check = ClaimCheck(blobs, clock, options.max_payload_bytes)
    submission = Submission(
        repository,
        registry,
        clock,
        options.max_payload_bytes,
        options.lanes,
        claim_check,
    )
    control = Control(repository, clock, options.retention, claim_check)
    policy = AttemptPolicy(
        options.retention,
        options.max_result_bytes,
        options.progress_interval_s,
        claim_check,
    )
    return JobService(
        submission=submission,
        queries=Queries(
            repository,
            registry,
            CursorCodec(options.cursor_keys or cursor_keys),
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
            rng or _RANDOM,
            invoker,
        ),
        # A rejected submission keeps its payload only if the item can hold it.
        ingest=Ingest(
            submission,
            repository,
            clock,
            min(options.max_payload_bytes, INLINE_DATA_BYTES),
            options.retention,
        ),
        dead_letters=DeadLetters(repository, control, clock, options.retention),
        dispatch=Dispatch(queue, clock),
        claim_check=claim_check,
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


def load_handlers() -> None:
    """The worker's init: import every job type's handler now, so one that cannot work
    (unimportable, not callable, not `(payload, context)`) stops the function at its start
    (`InvalidJobTypeDeclaration`, naming the type), never fails its jobs at run time. On Lambda a
    type whose target is a local callable (`local:`, for make run) stops it too."""
    default_registry().resolve_all(local_targets=not on_lambda())


def renew_after_restore() -> None:
    """A SnapStart restore: renew what the environments restored from one snapshot must not
    share. `random` and the services' random source are reseeded (each would otherwise draw
    the snapshot's sequence: the same retry jitter everywhere), and the clients' pooled
    connections are closed (the snapshot's are dead). Kept: settings, session (its
    credentials refresh themselves), clients, service and cursor keys."""
    random.seed()
    _RANDOM.seed()
    clients.close_connections()


def reset() -> None:
    """Forget cached clients (their connections), the session (its credentials), settings,
    cursor keys and service (tests)."""
    get_service.cache_clear()
    cursor_keys.cache_clear()
    clients.reset()
    get_settings.cache_clear()
