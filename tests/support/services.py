"""The service over in-memory fakes, built by the one composition root (`build_service`), and the
worker's batch path over it."""

from __future__ import annotations

import random
from collections.abc import Iterable
from concurrent.futures import Executor
from dataclasses import replace
from datetime import timedelta
from functools import partial
from typing import Any

from jobline.backoff import Backoff
from jobline.bootstrap import ServiceOptions, build_service, default_registry
from jobline.config import Settings
from jobline.cursor import CursorKeys
from jobline.ports import FunctionInvoker
from jobline.registry import JobType, JobTypeRegistry
from jobline.service import JobService
from jobline.sqs_batch import Invocation, run_records
from jobline_worker.record import run_record

from tests.support.fakes import (
    CURSOR_SECRET,
    FakeClock,
    InMemoryBlobStore,
    InMemoryFunctionInvoker,
    InMemoryJobQueue,
    InMemoryJobRepository,
)


def fake_options() -> ServiceOptions:
    """The options of a deployment with default settings, signing cursors with `CURSOR_SECRET`."""
    settings = Settings(table_name="jobline-fake", queue_url="fake://jobs")
    return ServiceOptions.of(settings, cursor_keys=CursorKeys(CURSOR_SECRET))


def build_registry(extra: Iterable[JobType[Any]] = ()) -> JobTypeRegistry:
    """The built-in job types plus `extra`."""
    registry = default_registry()
    for job_type in extra:
        registry.register(job_type)
    return registry


def build_fake_service(
    registry: JobTypeRegistry | None = None,
    *,
    clock: FakeClock | None = None,
    retention: timedelta | None = None,
    max_payload_bytes: int | None = None,
    max_result_bytes: int | None = None,
    backoff: Backoff | None = None,
    progress_interval_s: float | None = None,
    rng: random.Random | None = None,
    invoker: FunctionInvoker | None = None,
    blobs: InMemoryBlobStore | None = None,
) -> tuple[JobService, InMemoryJobRepository, InMemoryJobQueue]:
    """A JobService over in-memory fakes (built-in job types unless `registry` is given), wired by
    the one composition root, `jobline.bootstrap.build_service`, with the settings' defaults
    unless a test overrides one. Target functions (`JobType.target`) are `invoker`'s (default: an
    `InMemoryFunctionInvoker` that knows none). Its data bucket is `blobs` (a test that looks into
    it passes its own), else a fresh `InMemoryBlobStore`."""
    blobs = blobs if blobs is not None else InMemoryBlobStore()
    repo = InMemoryJobRepository()
    queue = InMemoryJobQueue()
    fake_clock = clock or FakeClock()
    defaults = fake_options()
    options = replace(
        defaults,
        retention=defaults.retention if retention is None else retention,
        max_payload_bytes=defaults.max_payload_bytes
        if max_payload_bytes is None
        else max_payload_bytes,
        max_result_bytes=defaults.max_result_bytes
        if max_result_bytes is None
        else max_result_bytes,
        backoff=backoff or defaults.backoff,
        progress_interval_s=defaults.progress_interval_s
        if progress_interval_s is None
        else progress_interval_s,
    )
    registry = registry or default_registry()
    service = build_service(
        options=options,
        repository=repo,
        queue=queue,
        registry=registry,
        clock=fake_clock,
        rng=rng or random.Random(0),
        invoker=invoker or InMemoryFunctionInvoker(),
        blobs=blobs,
    )
    # The outbox's dispatcher is a function of its own, as in AWS: a second service from the same
    # composition root over the same table and queue, whose clock reads the time without moving
    # it, so the use cases' timestamps stay as each test expects them.
    outbox = build_service(
        options=options,
        repository=repo,
        queue=queue,
        registry=registry,
        clock=fake_clock.peek,
        blobs=blobs,
    )
    repo.stream.deliver = outbox.dispatch
    return service, repo, queue


def process_batch(
    service: JobService,
    records: list[dict[str, Any]],
    invocation: Invocation,
    executor: Executor | None = None,
) -> list[str]:
    """The worker's records through the shared batch runner: the message ids to return."""
    return run_records(records, partial(run_record, service), invocation, executor)
