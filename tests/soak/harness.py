"""The soak's moving parts: the whole local stack (serialized moto server, outbox stream mapping,
SQS pollers) with its timeouts scaled down, the functions' clients under seeded faults, job
handlers that record every run, callers that behave as a demanding user would (and some that act
the moment the stream shows a job fail or requeue), what they were answered, and the fault
families that are not botocore faults: worker clocks skewed per invocation, copies of running
jobs' messages driven to the jobs DLQ, a dead-letter consumer that lags across a retry, stream
records replayed late to the outbox, duplicate and stale job messages."""

from __future__ import annotations

import http.server
import itertools
import random
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from concurrent.futures import CancelledError, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jobline import bootstrap, clock, sqs_batch
from jobline.aws.items import item_to_job
from jobline.bootstrap import default_registry
from jobline.config import Settings
from jobline.models import Job, JobMessage, JobStatus
from jobline.registry import JobContext, JobType, JobTypeRegistry
from jobline.service import JobService
from jobline_api.app import attach_environment, create_app
from jobline_local.poller import InvocationKilled, LambdaContext
from jobline_local.template import load_template

from tests.soak.invariants import Answer, DeadLetterSeen, Image, Run

Handler = Callable[[dict[str, Any], Any], Any]

WORKER_TIMEOUT_S = 12
"""The worker's (scaled) Lambda timeout: its leases last this long."""
VISIBILITY_S = 14
"""The jobs queue's (scaled) visibility timeout: a lost batch's messages come back after it."""


def scaled_template() -> dict[str, Any]:
    """template.yaml with the worker's timeout and the queues' visibility timeouts scaled down,
    so that what a lost invocation leaves behind comes back within the soak."""
    template = load_template()
    resources = template["Resources"]
    # (both lanes: the lanes' routing still reads the deployed timeouts from the environment, so
    # a type lands on the lane it would deployed, and each attempt runs to its scaled deadline)
    for function in ("WorkerFunction", "LongWorkerFunction"):
        resources[function]["Properties"]["Timeout"] = WORKER_TIMEOUT_S
    for name in (
        "JobsQueue",
        "LongJobsQueue",
        "IngestQueue",
        "JobsDeadLetterQueue",
        "LongJobsDeadLetterQueue",
        "OutboxFailureQueue",
    ):
        resources[name]["Properties"]["VisibilityTimeout"] = VISIBILITY_S
    return template


SOAK_SETTINGS = {
    "JOBLINE_DEADLINE_MARGIN_MS": "6000",
    "JOBLINE_AWS_CONNECT_TIMEOUT_S": "0.5",
    "JOBLINE_AWS_READ_TIMEOUT_S": "1.0",
    "JOBLINE_AWS_MAX_ATTEMPTS": "3",
    "JOBLINE_RETRY_BASE_S": "1",
    "JOBLINE_RETRY_CAP_S": "2",
    "JOBLINE_PROGRESS_INTERVAL_S": "0.2",
    "JOBLINE_HTTP_ALLOW_NETWORKS": "127.0.0.0/8",
}
"""Settings of the functions under the soak: AWS calls that give up within 5 s (the margin),
short backoffs, frequent progress writes, the flaky server on loopback allowed. The read timeout
(1 s) is above what the local moto server takes on a loaded 2-core machine, so that timeouts are
the injected ones: below it, every answer the server was slow to give is a straggler, each lost
answer of the outbox's SendMessageBatch sends ten more messages, which slow the server further."""


def message_body(message: JobMessage) -> str:
    """A job message's body, as the outbox sends it."""
    return message.model_dump_json(exclude_none=True, exclude={"correlation_id"})


def message_of(job: Job, run: int | None = None) -> JobMessage:
    """The message of `job`'s run (default: its current one)."""
    return JobMessage(
        job_id=job.id, owner=job.owner, job_type=job.type, run=run or job.run
    )


# -------------------------------------------------------------------------- handler runs
class RunLog:
    """Every handler run of the soak (wall clock seconds)."""

    def __init__(self) -> None:
        self.runs: list[Run] = []
        self._lock = threading.Lock()

    def wrap(self, job_type: JobType[Any]) -> JobType[Any]:
        """`job_type` with a handler that records its runs (of the same kind: plain or async)."""
        inner = job_type.resolve()

        def record(
            context: JobContext, started: float, deadline: float, succeeded: bool
        ) -> None:
            run = Run(
                context.job_id,
                context.run,
                context.attempt,
                started,
                time.time(),
                deadline,
                succeeded,
            )
            with self._lock:
                self.runs.append(run)

        def recorded(payload: Any, context: JobContext) -> Any:
            started = time.time()
            deadline = started + context.remaining_seconds()
            succeeded = False
            try:
                result = inner(payload, context)
                succeeded = True
                return result
            finally:
                record(context, started, deadline, succeeded)

        async def recorded_async(payload: Any, context: JobContext) -> Any:
            started = time.time()
            deadline = started + context.remaining_seconds()
            succeeded = False
            try:
                result = await inner(payload, context)
                succeeded = True
                return result
            finally:
                record(context, started, deadline, succeeded)

        handler = recorded_async if job_type.is_async else recorded
        return replace(job_type, handler=handler)

    def registry(self, settings: Settings | None = None) -> JobTypeRegistry:
        """The deployment's built-in job types (`bootstrap.default_registry`), recorded."""
        return JobTypeRegistry(
            self.wrap(job_type) for job_type in default_registry(settings)
        )

    def of(self, job_id: str) -> list[Run]:
        with self._lock:
            return [run for run in self.runs if run.job_id == job_id]


# ------------------------------------------------------------------------ stream images
Listener = Callable[[Job | None, Job], None]
"""Told of each new image the outbox is handed: the job's previous image (None: its first) and
the new one. Called on the outbox's thread: it must not block."""


class Images:
    """The live view of the table's stream, as the outbox dispatcher was handed it: the latest
    image of each job, the records (for late replays), and listeners told of each new image. (The
    invariants read the whole stream itself at the end: `stream_images`.)"""

    def __init__(self) -> None:
        self._latest: dict[str, tuple[int, Job]] = {}
        self._sequences: set[int] = set()
        self.records: list[tuple[float, dict[str, Any]]] = []
        self.listeners: list[Listener] = []
        self.handed_over = 0
        """Records the outbox was done with (its progress, even when no job changes)."""
        self._lock = threading.Lock()

    def tap(self, handler: Handler) -> Handler:
        def tapped(event: dict[str, Any], context: Any) -> Any:
            fresh: list[tuple[Job | None, Job]] = []
            with self._lock:
                for record in event.get("Records", []):
                    stream = record.get("dynamodb", {})
                    number = int(stream.get("SequenceNumber", 0))
                    if "NewImage" not in stream or number in self._sequences:
                        continue
                    self._sequences.add(number)
                    self.records.append((time.time(), record))
                    job = item_to_job(stream["NewImage"])
                    before = self._latest.get(job.id)
                    if before is None or before[0] < number:
                        self._latest[job.id] = (number, job)
                        fresh.append((before[1] if before else None, job))
            for before_job, job in fresh:
                for listener in self.listeners:
                    listener(before_job, job)
            response = handler(event, context)
            failed = len((response or {}).get("batchItemFailures") or [])
            with self._lock:
                self.handed_over += len(event.get("Records", [])) - failed
            return response

        return tapped

    @property
    def last_sequence(self) -> int:
        """The highest sequence number handed over so far (0: none)."""
        with self._lock:
            return max(self._sequences, default=0)

    def latest(self, job_id: str) -> Job | None:
        with self._lock:
            found = self._latest.get(job_id)
        return found[1] if found else None

    def jobs(self, status: JobStatus | None = None) -> list[Job]:
        """The latest image of every job (in `status`)."""
        with self._lock:
            jobs = [job for _, job in self._latest.values()]
        return [job for job in jobs if status is None or job.status is status]

    def older_than(self, seconds: float) -> list[dict[str, Any]]:
        """The records handed over at least `seconds` ago."""
        cutoff = time.time() - seconds
        with self._lock:
            return [record for at, record in self.records if at <= cutoff]


def stream_images(streams: Any, stream_arn: str) -> dict[str, list[Image]]:
    """Every image the table's stream carries, per job, in stream order (one per write)."""
    shards = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"][
        "Shards"
    ]
    images: dict[str, list[Image]] = {}
    for shard in shards:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn,
            ShardId=shard["ShardId"],
            ShardIteratorType="TRIM_HORIZON",
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            for record in page.get("Records", []):
                if "NewImage" in record["dynamodb"]:
                    job = item_to_job(record["dynamodb"]["NewImage"])
                    images.setdefault(job.id, []).append(Image.of(record, job))
            if not page.get("Records"):
                break
            iterator = page.get("NextShardIterator")
    for sequence in images.values():
        sequence.sort(key=lambda image: image.sequence)
    return images


class StreamReplays:
    """Stream records handed to the outbox again, late: now and then a few records it was handed
    at least `age_s` ago, in one invocation of its handler (a shard's batch handed over again
    after a partial failure, the recovery reading the stream again: at least once, late)."""

    def __init__(self, images: Images, rng: random.Random, age_s: float = 2.0) -> None:
        self._images = images
        self._rng = rng
        self._age_s = age_s
        self.handler: Handler | None = None
        self.replayed = 0
        self.dispatching = 0
        """Replayed records whose write asked for a message (which the outbox sent again)."""

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self._rng.uniform(0.8, 2.0)):
            records = self._images.older_than(self._age_s)
            if not records or self.handler is None:
                continue
            picked = self._rng.sample(
                records, min(len(records), self._rng.randint(1, 3))
            )
            picked.sort(key=lambda r: int(r["dynamodb"]["SequenceNumber"]))
            context = LambdaContext(function_name="soak-outbox-replay", timeout_s=30)
            try:
                self.handler({"Records": picked}, context)
            except InvocationKilled:
                # A fault killed the replaying invocation, as it would Lambda's: its records
                # are simply not replayed.
                continue
            self.replayed += len(picked)
            self.dispatching += sum(
                "dispatch" in r["dynamodb"]["NewImage"] for r in picked
            )


# ------------------------------------------------------------------------ worker clocks
SKEW: ContextVar[float] = ContextVar("soak_worker_skew", default=0.0)
"""The clock offset of the worker invocation running in this thread (0: a true clock)."""


class SkewedClocks:
    """Worker invocations whose clocks are off by up to `max_s` either way (seeded, per
    invocation: each stands for an execution environment of its own).

    How: a worker reads the time in two places, the service's clock (claims, due times, outcomes,
    progress, the lease checks) and `jobline.sqs_batch`'s wall clock (the end of the invocation's
    lease). The wrapper around the worker's handler draws the invocation's offset into a context
    variable; the worker's entry point gets its service from `service()`, which the composition
    root builds for that invocation with a clock that keeps that offset (`build_service(clock=)`,
    the seam tests are meant to use: every thread of the invocation, the handler's own included,
    reads the same skewed clock); `sqs_batch.utcnow` reads the offset of the thread's context (the
    invocation's: Lambda's context is read on the invocation's thread). Every line of the worker
    runs as in production; the API, the outbox and the dead-letter consumer keep true clocks."""

    def __init__(self, rng: random.Random, max_s: float = 2.0) -> None:
        self._rng = rng
        self._max_s = max_s
        self._lock = threading.Lock()
        self.offsets: dict[str, float] = {}
        """Each invocation's offset, by its request id (a history entry's `request_id`)."""

    @staticmethod
    def now() -> datetime:
        """The current invocation's clock (`sqs_batch.utcnow`)."""
        return clock.utcnow() + timedelta(seconds=SKEW.get())

    @staticmethod
    def service() -> JobService:
        """The current invocation's service: the composition root's, on its skewed clock."""
        offset = timedelta(seconds=SKEW.get())
        return bootstrap.build_service(clock=lambda: clock.utcnow() + offset)

    def true_time(self, at: datetime, request_id: str | None) -> float:
        """Wall-clock seconds of `at`, as read by the invocation `request_id` on its clock."""
        with self._lock:
            offset = self.offsets.get(request_id or "", 0.0)
        return at.timestamp() - offset

    def install(self, monkeypatch: pytest.MonkeyPatch, worker: Any) -> None:
        """Point the worker's entry point (`worker`: its handler module) and sqs_batch's wall
        clock at the invocation's skewed clock."""
        monkeypatch.setattr(sqs_batch, "utcnow", self.now)
        monkeypatch.setattr(worker, "get_service", self.service)

    def wrap(self, handler: Handler) -> Handler:
        def skewed(event: dict[str, Any], context: Any) -> Any:
            with self._lock:
                offset = self._rng.uniform(-self._max_s, self._max_s)
                self.offsets[str(getattr(context, "aws_request_id", ""))] = offset
            token = SKEW.set(offset)
            try:
                return handler(event, context)
            finally:
                SKEW.reset(token)

        return skewed


class ShortInvocations:
    """Worker invocations with little time left, now and then (seeded)."""

    def __init__(self, rng: random.Random, share: float) -> None:
        self._rng = rng
        self._share = share
        self._lock = threading.Lock()
        self.count = 0

    def wrap(self, handler: Handler) -> Handler:
        def maybe_short(event: dict[str, Any], context: Any) -> Any:
            with self._lock:
                short = self._rng.random() < self._share
                seconds = self._rng.uniform(6.2, 8.0)
                if short:
                    self.count += 1
            if short:
                context.timeout_s = seconds
            return handler(event, context)

        return maybe_short


# ------------------------------------------------------------------ the dead-letter queue
LAG_CYCLE_S = 3
"""How soon a copy the dead-letter consumer holds back is received again."""
LAG_ATTRIBUTE = "soak_lagging"
"""The message attribute of a copy the dead-letter consumer is to hold back."""


class DeadLetterConsumer:
    """The jobs DLQ and its consumer, as the soak drives them: copies of messages sent there
    (`send_copy`), every record the consumer is handed (`seen`), and a consumer that lags: a copy
    sent with `lag` (a message attribute says so) is returned to the queue each time it is
    received, visible again `LAG_CYCLE_S` later, until its job has been retried (the stream
    shows a later run) or `max_lag_s` has passed since it was first received."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        images: Images,
        max_lag_s: float = 20.0,
        urls_by_arn: dict[str, str] | None = None,
    ) -> None:
        self._sqs = sqs
        self._url = queue_url
        self._urls_by_arn = dict(urls_by_arn or {})
        """Every DLQ the consumer reads (both lanes'), by ARN: a held record goes back to its own."""
        self._images = images
        self._max_lag_s = max_lag_s
        self._lock = threading.Lock()
        self._lagging: dict[str, float] = {}
        """When each lagging copy was first received, by message id."""
        self._released: set[str] = set()
        self._unreleased = 0
        self.seen: list[DeadLetterSeen] = []
        self.counts: Counter[str] = Counter()

    def send_copy(self, message: JobMessage, *, lag: bool) -> None:
        """A copy of a job's message, to the DLQ (held back if `lag`)."""
        attributes = {LAG_ATTRIBUTE: {"DataType": "String", "StringValue": "yes"}}
        self._sqs.send_message(
            QueueUrl=self._url,
            MessageBody=message_body(message),
            MessageAttributes=attributes if lag else {},
        )
        with self._lock:
            self.counts["lagging copies" if lag else "copies"] += 1
            self._unreleased += lag

    def lagging(self) -> int:
        """Lagging copies not released yet."""
        with self._lock:
            return self._unreleased

    def _held_back(self, record: dict[str, Any], message: JobMessage) -> bool:
        if LAG_ATTRIBUTE not in record.get("messageAttributes", {}):
            return False
        message_id = record["messageId"]
        with self._lock:
            if message_id in self._released:
                return False
            since = self._lagging.setdefault(message_id, time.time())
        job_id, run = message.job_id, message.run or 1
        latest = self._images.latest(job_id)
        if latest is not None and latest.run > run:
            outcome = "released after a retry"
        elif time.time() - since > self._max_lag_s:
            outcome = "released unretried"
        else:
            with self._lock:
                self.counts["receives held back"] += 1
            return True
        with self._lock:
            self._released.add(message_id)
            self._unreleased -= 1
            self.counts[outcome] += 1
        return False

    def wrap(self, handler: Handler) -> Handler:
        def consumer(event: dict[str, Any], context: Any) -> Any:
            handed, held = [], []
            for record in event.get("Records", []):
                try:
                    message = JobMessage.model_validate_json(record["body"])
                except ValueError:
                    handed.append(record)
                    continue
                if self._held_back(record, message):
                    held.append(record)
                    continue
                handed.append(record)
                with self._lock:
                    self.seen.append(
                        DeadLetterSeen(message.job_id, message.run, time.time())
                    )
            for record in held:
                self._sqs.change_message_visibility(
                    QueueUrl=self._urls_by_arn.get(
                        record.get("eventSourceARN", ""), self._url
                    ),
                    ReceiptHandle=record["receiptHandle"],
                    VisibilityTimeout=LAG_CYCLE_S,
                )
            response = handler({"Records": handed}, context) if handed else {}
            failures = list((response or {}).get("batchItemFailures") or [])
            failures += [{"itemIdentifier": r["messageId"]} for r in held]
            return {"batchItemFailures": failures}

        return consumer


def dead_letter_copies(
    consumer: DeadLetterConsumer, images: Images, rng: random.Random,
    stop: threading.Event,
) -> None:  # fmt: skip
    """A running job's duplicate message driven to the DLQ: now and then a copy of a running
    job's message is sent to the jobs DLQ while it runs, for the dead-letter consumer."""
    while not stop.wait(rng.uniform(0.5, 1.2)):
        running = images.jobs(JobStatus.RUNNING)
        if running:
            consumer.send_copy(message_of(rng.choice(running)), lag=False)


# ---------------------------------------------------------------------- a flaky server
class _Flaky(http.server.BaseHTTPRequestHandler):
    rng = random.Random(0)
    lock = threading.Lock()

    def do_GET(self) -> None:
        slow = self.path.startswith("/fail")
        with self.lock:
            fails = self.rng.random() < 0.3 or slow
            pause = self.rng.uniform(0.5, 1.8) if slow else self.rng.uniform(0, 0.2)
        time.sleep(pause)
        body = b'{"ok": false}' if fails else b'{"ok": true}'
        try:
            self.send_response(503 if fails else 200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            return  # the job gave up on it (its deadline, a cancel): as a server would

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@contextmanager
def flaky_server(seed: int) -> Iterator[str]:
    """A loopback HTTP server answering 503 three times in ten after up to 0.2 s, and always
    under /fail, after 0.5 to 1.8 s (a job that fails slowly: the next run a retry starts
    stays running a while, for a stale write of the run before to meet)."""
    _Flaky.rng = random.Random(seed)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------- callers
CALL: ContextVar[str | None] = ContextVar("soak_api_call", default=None)
"""The soak's id of the API call being served in this context (see tests/soak/invariants.py)."""
CALL_HEADER = "x-soak-call"

Scope = MutableMapping[str, Any]
Asgi = Callable[
    [Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


class TagCalls:
    """Test-only ASGI middleware around the API app: the request's `X-Soak-Call` in `CALL` while
    it is served (`asyncio.to_thread` copies it into the thread that runs the use case, where the
    fault injector reads it for each AWS request the call makes)."""

    def __init__(self, app: Asgi) -> None:
        self.app = app

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        headers = dict(scope.get("headers", []))
        call = headers.get(CALL_HEADER.encode(), b"").decode() or None
        token = CALL.set(call)
        try:
            await self.app(scope, receive, send)
        finally:
            CALL.reset(token)


class Api:
    """Callers' access to the API app, in process: one request per portal, so that a request
    whose environment is killed takes only itself down. Each call has an id of its own, sent as
    `X-Soak-Call` and as its correlation id (a submit stores it on its job)."""

    def __init__(self) -> None:
        self.app = create_app(allow_dev_identity=True)
        attach_environment(self.app)
        self._tagged = TagCalls(self.app)
        self.answers: list[Answer] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def call(
        self,
        method: str,
        path: str,
        action: str,
        owner: str,
        *,
        json_body: dict[str, Any] | None = None,
        key: str | None = None,
        job_id: str | None = None,
    ) -> Answer:
        with self._lock:
            call_id = f"soak-call-{next(self._ids)}"
        headers = {
            "X-Dev-User": owner,
            "X-Correlation-Id": call_id,
            CALL_HEADER: call_id,
        }
        if key:
            headers["Idempotency-Key"] = key
        at = time.time()
        try:
            response = TestClient(self._tagged).request(
                method, path, json=json_body, headers=headers
            )
            body = response.json() if response.content else {}
            status: int | None = response.status_code
        except InvocationKilled:
            body, status = {}, None
        except CancelledError:  # the kill took the request's event loop down with it
            body, status = {}, None
        except RuntimeError as exc:  # ... or the portal it ran in
            if "portal" not in str(exc):
                raise
            body, status = {}, None
        found = body.get("id") or body.get("job_id") or job_id
        answer = Answer(
            action, found, status, at, body, key, json_body or {}, call_id, time.time(), owner
        )  # fmt: skip
        with self._lock:
            self.answers.append(answer)
        return answer

    def of(self, action: str) -> list[Answer]:
        with self._lock:
            return [answer for answer in self.answers if answer.action == action]


def caller(
    api: Api, rng: random.Random, owner: str, flaky_url: str, ops: int, name: str
) -> None:
    """A demanding user: mixed submits (keyed ones retried through failures, replayed after
    success; a few keys shared with the other callers of `owner`, at the same time), cancels
    while queued and while running, retries of failed jobs, delays."""
    for n in range(ops):
        choice = rng.random()
        keyed, shared = rng.random() < 0.6, rng.random() < 0.1
        key = (f"{owner}-{n}" if shared else f"{name}-{n}") if keyed else None
        if choice < 0.35:
            body: dict[str, Any] = {"type": "echo", "payload": {"n": n, "owner": owner}}
        elif choice < 0.6:
            # a few long enough to report progress several times (and meet their deadline
            # in a short invocation)
            seconds = (
                rng.uniform(2.5, 4.5) if rng.random() < 0.2 else rng.uniform(0.1, 1.5)
            )
            body = {"type": "sleep", "payload": {"seconds": round(seconds, 2)}}
        elif choice < 0.85:
            body = {
                "type": "http.request",
                "payload": {"url": flaky_url, "timeout_s": 2},
                "max_attempts": rng.choice([1, 2, 3]),
            }
        else:
            body = {
                "type": "echo",
                "payload": {"late": n},
                "delay_seconds": rng.choice([1, 2]),
            }
        answer = api.call("POST", "/jobs", "submit", owner, json_body=body, key=key)
        for _ in range(3):  # a keyed submit without a good answer is repeated
            if key is None or (answer.status is not None and answer.status < 500):
                break
            time.sleep(0.2)
            answer = api.call("POST", "/jobs", "submit", owner, json_body=body, key=key)
        job_id = answer.job_id if answer.status in (200, 202) else None
        if job_id is None:
            continue
        if key is not None and rng.random() < 0.3:
            api.call("POST", "/jobs", "replay", owner, json_body=body, key=key)
        if body["type"] == "sleep" and rng.random() < 0.4:
            time.sleep(rng.choice([0.0, 0.0, 0.5, 1.0]))
            api.call("POST", f"/jobs/{job_id}/cancel", "cancel", owner, job_id=job_id)
        if body["type"] == "http.request" and rng.random() < 0.3:
            time.sleep(1.0)
            got = api.call("GET", f"/jobs/{job_id}", "get", owner, job_id=job_id)
            if got.body.get("status") == "failed":
                api.call("POST", f"/jobs/{job_id}/retry", "retry", owner, job_id=job_id)
        time.sleep(rng.uniform(0.1, 0.4))


def racer(
    api: Api, rng: random.Random, owner: str, flaky_url: str, ops: int,
    dead_letters: DeadLetterConsumer,
) -> None:  # fmt: skip
    """A user whose jobs fail often (under /fail the flaky server always answers 503), and who
    retries them the moment they fail (`Reactions`); most messages of the first runs of jobs
    that will fail also reach the DLQ, where the consumer lags until the job was retried."""
    for n in range(ops):
        fails = rng.random() < 0.6
        body = {
            "type": "http.request",
            "payload": {
                "url": f"{flaky_url}{'fail' if fails else ''}?n={n}",
                "timeout_s": 2,
            },
            "max_attempts": rng.choice([1, 1, 2]),
        }
        answer = api.call("POST", "/jobs", "submit", owner, json_body=body)
        if answer.status == 202 and answer.job_id and fails and rng.random() < 0.7:
            message = JobMessage(
                job_id=answer.job_id, owner=owner, job_type="http.request", run=1
            )
            dead_letters.send_copy(message, lag=True)
        time.sleep(rng.uniform(0.1, 0.5))


class Reactions:
    """Callers that act the moment the stream shows them something (seeded): retry a job the
    moment it fails (at most `max_retries` times a job), cancel a job the moment an attempt of it
    fails and it is queued again (racing the next claim), cancel a job a random instant after an
    attempt starts (racing its outcome, or its requeue). They act on a pool of their own, never
    on the outbox's thread."""

    def __init__(
        self,
        api: Api,
        rng: random.Random,
        *,
        retry_share: float = 0.7,
        max_retries: int = 2,
        cancel_requeued_share: float = 0.4,
        cancel_running_share: float = 0.1,
    ) -> None:
        self._api = api
        self._rng = rng
        self._retry_share = retry_share
        self._max_retries = max_retries
        self._cancel_requeued_share = cancel_requeued_share
        self._cancel_running_share = cancel_running_share
        self._retries: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="reaction")
        self._open = True
        self.counts: Counter[str] = Counter()

    def on_image(self, before: Job | None, after: Job) -> None:
        """A `Listener`: decide, and hand the call to the pool."""
        if before is None or (before.status, before.run) == (after.status, after.run):
            return
        step = (before.status, after.status)
        with self._lock:
            if not self._open:
                return
            draw, pause = self._rng.random(), self._rng.uniform(0.0, 0.6)
            if after.status is JobStatus.FAILED:
                if (
                    draw >= self._retry_share
                    or self._retries[after.id] >= self._max_retries
                ):
                    return
                self._retries[after.id] += 1
                action, wait, what = "retry", 0.0, "retries the moment a job failed"
            elif step == (JobStatus.RUNNING, JobStatus.QUEUED):
                if draw >= self._cancel_requeued_share:
                    return
                action, wait, what = (
                    "cancel",
                    0.0,
                    "cancels the moment a job was requeued",
                )
            elif step == (JobStatus.QUEUED, JobStatus.RUNNING):
                if draw >= self._cancel_running_share:
                    return
                action, wait, what = (
                    "cancel",
                    pause,
                    "cancels at a random instant of a run",
                )
            else:
                return
            self.counts[what] += 1
            self._pool.submit(self._act, action, after, wait)

    def _act(self, action: str, job: Job, wait: float) -> None:
        time.sleep(wait)
        path = f"/jobs/{job.id}/{action}"
        answer = self._api.call("POST", path, action, job.owner, job_id=job.id)
        with self._lock:
            self.counts[f"{action} answered {answer.status}"] += 1

    def close(self) -> None:
        """No new reactions; wait for the ones under way."""
        with self._lock:
            self._open = False
        self._pool.shutdown(wait=True)


def duplicator(
    send: Callable[[str], None], images: Images, rng: random.Random,
    stop: threading.Event,
) -> None:  # fmt: skip
    """SQS delivers at least once, late and twice at a time: now and then send copies of a known
    job's message (of its current run, or now and then of an earlier one; finished jobs'
    included) straight to the jobs queue."""
    while not stop.wait(rng.uniform(0.4, 1.2)):
        jobs = images.jobs()
        if not jobs:
            continue
        job = rng.choice(jobs)
        run = rng.randint(1, job.run) if rng.random() < 0.3 else job.run
        for _ in range(rng.choice([1, 2])):
            send(message_body(message_of(job, run)))
