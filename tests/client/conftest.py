"""The real API app over the in-memory fakes, in-process, for the client and CLI tests.

`stack` is the only fixture that knows how the domain is built (`tests.support.services`) and how a job is
moved (the worker's `service.run`, or a state written straight into the fake repository); every
other fixture and test goes through HTTP.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypedDict

import pytest
from fastapi import FastAPI
from jobline.models import Delivery, JobError, JobStatus, Progress
from jobline.registry import JobContext, PermanentJobError
from jobline.service import JobService
from jobline_api.app import attach_environment, create_app
from jobline_client import AsyncClient, Client
from starlette.testclient import TestClient

from tests.client.transports import (
    AppTransport,
    AsyncAppTransport,
    AsyncScriptedTransport,
    ScriptedTransport,
)
from tests.support.bulk import BULK
from tests.support.fakes import (
    START,
    AnyInput,
    FakeClock,
    InMemoryBlobStore,
    InMemoryJobQueue,
    InMemoryJobRepository,
    job_type_of,
)
from tests.support.services import build_fake_service, build_registry

OWNER = "alice"
BASE_URL = "http://testserver"


class Pacing(TypedDict):
    """Client settings that decide how fast a test runs."""

    retries: int
    backoff: float
    poll_interval: float
    max_poll_interval: float


FAST = Pacing(retries=3, backoff=0.0, poll_interval=0.001, max_poll_interval=0.005)
"""Client settings for tests: retries without sleeping, polls a few milliseconds apart."""
FAIL_TYPE = "fail"
"""A job type whose handler always fails permanently (the job ends `failed` on its first run)."""


def _always_fail(payload: AnyInput, context: JobContext) -> Any:
    raise PermanentJobError("it was never going to work")


@dataclass
class Stack:
    """The API app, its service over fakes, and ways to move jobs as a worker would."""

    app: FastAPI
    service: JobService
    repo: InMemoryJobRepository
    queue: InMemoryJobQueue
    blobs: InMemoryBlobStore
    """The data bucket (its presigned URLs answered in-process by the transports)."""
    _ran: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def job_count(self) -> int:
        """How many jobs are stored."""
        return len(self.repo.jobs)

    def job_ids(self) -> list[str]:
        """The ids of the stored jobs, oldest first."""
        return [job.id for job in self.repo.jobs]

    def enqueued(self) -> list[str]:
        """The job id of every message sent to the jobs queue, in order."""
        return [sent.message.job_id for sent in self.queue.sent]

    def run(self, job_id: str) -> None:
        """Deliver the job's latest queue message to the worker entry point (`service.run`)."""
        sent = [s for s in self.queue.sent if s.message.job_id == job_id][-1]
        self.service.run(
            Delivery(
                message=sent.message,
                receipt_handle=f"handle-{sent.message_id}",
                request_id=f"req-{sent.message_id}",
                lease_until=START + timedelta(days=1),
                deadline=time.monotonic() + 60,
            )
        )

    def run_queued(self) -> int:
        """Run every message sent since the last call, in order; how many ran."""
        with self._lock:
            pending = self.queue.sent[self._ran :]
            self._ran += len(pending)
        for sent in pending:
            self.run(sent.message.job_id)
        return len(pending)

    @contextmanager
    def worker(self) -> Iterator[None]:
        """A background thread running queued messages every few milliseconds, as the SQS
        poller would, until the block ends."""
        stop = threading.Event()

        def work() -> None:
            while not stop.wait(0.005):
                self.run_queued()

        thread = threading.Thread(target=work, name="fake-worker", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(5)

    def _update(self, job_id: str, **fields: Any) -> None:
        job = self.repo.get(job_id)
        assert job is not None, job_id
        self.repo.put(job.model_copy(update=fields))

    def start(self, job_id: str) -> None:
        """The job as a worker's claim leaves it: running, one more attempt."""
        job = self.repo.get(job_id)
        assert job is not None, job_id
        self._update(
            job_id,
            status=JobStatus.RUNNING,
            attempts=job.attempts + 1,
            started_at=job.updated_at,
            lease_until=START + timedelta(days=1),
            run_after=None,
        )

    def report(self, job_id: str, percent: float, message: str | None = None) -> None:
        """A progress report of the running handler."""
        self._update(
            job_id,
            progress=Progress(percent=percent, message=message, updated_at=START),
        )

    def finish(
        self,
        job_id: str,
        status: str = "succeeded",
        *,
        result: Any = None,
        error: tuple[str, str] | None = None,
    ) -> None:
        """The job in a final state, written straight into the repository."""
        self._update(
            job_id,
            status=JobStatus(status),
            result=result,
            error=None if error is None else JobError(type=error[0], message=error[1]),
            finished_at=START + timedelta(minutes=1),
            lease_until=None,
        )


@pytest.fixture
def stack() -> Stack:
    """The API app over a fake service with the built-in job types plus `fail` and `bulk`."""
    registry = build_registry([job_type_of(FAIL_TYPE, _always_fail), BULK])
    blobs = InMemoryBlobStore()
    service, repo, queue = build_fake_service(
        registry, clock=FakeClock(step=timedelta(seconds=1)), blobs=blobs
    )
    app = create_app(service_factory=lambda: service, allow_dev_identity=True)
    return Stack(app=app, service=service, repo=repo, queue=queue, blobs=blobs)


@pytest.fixture
def api(stack: Stack) -> Iterator[TestClient]:
    """Raw HTTP into the app (lifespan run), for what the API itself answers."""
    with TestClient(
        stack.app, base_url=BASE_URL, raise_server_exceptions=False
    ) as test_client:
        test_client.headers["X-Dev-User"] = OWNER
        yield test_client


@pytest.fixture
def scripted(api: TestClient, stack: Stack) -> ScriptedTransport:
    """The app (and the data bucket) behind a transport that records requests and can fail the
    first ones."""
    return ScriptedTransport(AppTransport(api, stack.blobs))


@pytest.fixture
def client(scripted: ScriptedTransport) -> Iterator[Client]:
    """A `Client` as alice over `scripted`, retrying without delay, polling fast."""
    with Client(BASE_URL, dev_user=OWNER, transport=scripted, **FAST) as jobline:
        yield jobline


@pytest.fixture
def async_scripted(stack: Stack) -> AsyncScriptedTransport:
    """The app behind httpx's ASGITransport (no lifespan: the environment is attached here), and
    the data bucket."""
    attach_environment(stack.app)
    return AsyncScriptedTransport(AsyncAppTransport(stack.app, stack.blobs))


@pytest.fixture
def new_async_client(
    async_scripted: AsyncScriptedTransport,
) -> Callable[..., AsyncClient]:
    """Makes an `AsyncClient` as alice over `async_scripted` (inside the test's event loop)."""

    def make(**overrides: Any) -> AsyncClient:
        settings: dict[str, Any] = {"dev_user": OWNER, **FAST, **overrides}
        return AsyncClient(BASE_URL, transport=async_scripted, **settings)

    return make
