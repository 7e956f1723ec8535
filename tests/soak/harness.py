"""The soak's moving parts: the whole local stack (serialized moto server, outbox stream mapping,
SQS pollers) with its timeouts scaled down, the functions' clients under seeded faults, job
handlers that record every run, callers that behave as a demanding user would, and what they
were answered."""

from __future__ import annotations

import http.server
import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from fastapi.testclient import TestClient
from jobline.bootstrap import default_registry
from jobline.config import Settings
from jobline.flow import Concurrency
from jobline.registry import JobContext, JobType, JobTypeRegistry
from jobline_api.app import attach_environment, create_app
from jobline_local.poller import InvocationKilled
from jobline_local.template import load_template
from pydantic import BaseModel, ConfigDict, Field

Handler = Callable[[dict[str, Any], Any], Any]

WORKER_TIMEOUT_S = 12
"""The worker's (scaled) Lambda timeout: its leases last this long."""
VISIBILITY_S = 14
"""The jobs queue's (scaled) visibility timeout: a lost batch's messages come back after it."""
SWEEP_S = 5
"""The flow sweep's (scaled) schedule: a wake lost to a fault is found within it."""
SLOT_LIMIT = 1
"""The `limited` type's concurrency limit per (owner, slot)."""


def scaled_template() -> dict[str, Any]:
    """template.yaml with the workers' timeouts and the queues' visibility timeouts scaled
    down, so that what a lost invocation leaves behind comes back within the soak."""
    template = load_template()
    resources = template["Resources"]
    # The long lane too: `sleep` and `http.request` declare timeouts that put them there
    # (their timeout_s), and a lost long-lane batch must come back within the soak as well
    for function in ("WorkerFunction", "LongWorkerFunction"):
        resources[function]["Properties"]["Timeout"] = WORKER_TIMEOUT_S
    for name in (
        "JobsQueue",
        "HighJobsQueue",
        "LowJobsQueue",
        "LongJobsQueue",
        "IngestQueue",
        "JobsDeadLetterQueue",
        "LongJobsDeadLetterQueue",
        "OutboxFailureQueue",
    ):
        resources[name]["Properties"]["VisibilityTimeout"] = VISIBILITY_S
    sweep = resources["WorkerFunction"]["Properties"]["Events"]["FlowSweep"]
    sweep["Properties"]["Schedule"] = f"rate({SWEEP_S} seconds)"
    return template


SOAK_SETTINGS = {
    "JOBLINE_DEADLINE_MARGIN_MS": "6000",
    "JOBLINE_AWS_CONNECT_TIMEOUT_S": "0.5",
    "JOBLINE_AWS_READ_TIMEOUT_S": "0.5",
    "JOBLINE_AWS_MAX_ATTEMPTS": "3",
    "JOBLINE_RETRY_BASE_S": "1",
    "JOBLINE_RETRY_CAP_S": "2",
    "JOBLINE_PROGRESS_INTERVAL_S": "0.2",
    "JOBLINE_HTTP_ALLOW_NETWORKS": "127.0.0.0/8",
}
"""Settings of the functions under the soak: AWS calls that give up within 5 s (the margin),
short backoffs, frequent progress writes, the flaky server on loopback allowed."""


# -------------------------------------------------------------------------- handler runs
@dataclass(frozen=True)
class Run:
    """One run of a job's handler, as the handler saw it."""

    job_id: str
    attempt: int
    started: float
    ended: float
    succeeded: bool


class RunLog:
    """Every handler run of the soak (wall clock seconds)."""

    def __init__(self) -> None:
        self.runs: list[Run] = []
        self._lock = threading.Lock()

    def wrap(self, job_type: JobType[Any]) -> JobType[Any]:
        """`job_type` with a handler that records its runs (of the same kind: plain or async)."""
        inner = job_type.resolve()

        def record(context: JobContext, started: float, succeeded: bool) -> None:
            with self._lock:
                self.runs.append(
                    Run(
                        context.job_id, context.attempt, started, time.time(), succeeded
                    )
                )

        def recorded(payload: Any, context: JobContext) -> Any:
            started, succeeded = time.time(), False
            try:
                result = inner(payload, context)
                succeeded = True
                return result
            finally:
                record(context, started, succeeded)

        async def recorded_async(payload: Any, context: JobContext) -> Any:
            started, succeeded = time.time(), False
            try:
                result = await inner(payload, context)
                succeeded = True
                return result
            finally:
                record(context, started, succeeded)

        handler = recorded_async if job_type.is_async else recorded
        return replace(job_type, handler=handler)

    def registry(self, settings: Settings | None = None) -> JobTypeRegistry:
        """The deployment's built-in job types (`bootstrap.default_registry`) and the soak's
        `limited` type (flow control), recorded."""
        job_types = [*default_registry(settings), LIMITED]
        return JobTypeRegistry(self.wrap(job_type) for job_type in job_types)

    def of(self, job_id: str) -> list[Run]:
        with self._lock:
            return [run for run in self.runs if run.job_id == job_id]


class SlotInput(BaseModel):
    """A `limited` job: the slot it takes a permit of, and how long it holds it."""

    model_config = ConfigDict(extra="forbid")

    slot: str = Field(min_length=1, max_length=8)
    seconds: float = Field(ge=0, le=5)


def hold_slot(payload: SlotInput, context: JobContext) -> dict[str, str]:
    """Hold the slot's permit for `seconds` (less when the attempt is stopped)."""
    context.stop_event.wait(payload.seconds)
    context.raise_if_cancelled()
    return {"slot": payload.slot}


LIMITED = JobType(
    name="limited",
    description="Holds a permit of its owner's slot for a while (the soak's flow control).",
    input_model=SlotInput,
    handler=hold_slot,
    concurrency=(
        Concurrency(name="slot", key="{owner}:{payload.slot}", limit=SLOT_LIMIT),
    ),
)


# ------------------------------------------------------------------------ stream images
class Images:
    """Every job image the outbox dispatcher was handed, in stream order (the table's history)."""

    def __init__(self) -> None:
        self.by_job: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def tap(self, handler: Handler) -> Handler:
        def tapped(event: dict[str, Any], context: Any) -> Any:
            with self._lock:
                for record in event.get("Records", []):
                    image = record.get("dynamodb", {}).get("NewImage")
                    if image:
                        self.by_job.setdefault(image["id"]["S"], []).append(
                            {
                                "status": image["status"]["S"],
                                "attempts": int(
                                    image.get("attempts", {}).get("N", "0")
                                ),
                                "blocked": "blocked_on" in image,
                                "sequence": int(record["dynamodb"]["SequenceNumber"]),
                            }
                        )
            return handler(event, context)

        return tapped

    def sequence(self, job_id: str) -> list[dict[str, Any]]:
        """The job's images, each write once (the stream may hand a batch over twice)."""
        with self._lock:
            seen: dict[int, dict[str, Any]] = {}
            for image in self.by_job.get(job_id, []):
                seen.setdefault(image["sequence"], image)
            return [seen[number] for number in sorted(seen)]


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


# ---------------------------------------------------------------------- a flaky server
class _Flaky(http.server.BaseHTTPRequestHandler):
    rng = random.Random(0)
    lock = threading.Lock()

    def do_GET(self) -> None:
        with self.lock:
            fails, pause = self.rng.random() < 0.3, self.rng.uniform(0, 0.2)
        time.sleep(pause)
        body = b'{"ok": false}' if fails else b'{"ok": true}'
        self.send_response(503 if fails else 200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@contextmanager
def flaky_server(seed: int) -> Iterator[str]:
    """A loopback HTTP server answering 503 three times in ten, after up to 0.2 s."""
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
@dataclass
class Answer:
    """One API call of a caller and what it got (status None: no answer, the API was killed)."""

    action: str
    job_id: str | None
    status: int | None
    at: float
    body: dict[str, Any] = field(default_factory=dict)
    key: str | None = None
    request: dict[str, Any] = field(default_factory=dict)


class Api:
    """Callers' access to the API app, in process: one request per portal, so that a request
    whose environment is killed takes only itself down."""

    def __init__(self) -> None:
        self.app = create_app(allow_dev_identity=True)
        attach_environment(self.app)
        self.answers: list[Answer] = []
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
        headers = {"X-Dev-User": owner}
        if key:
            headers["Idempotency-Key"] = key
        at = time.time()
        try:
            response = TestClient(self.app).request(
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
        answer = Answer(action, found, status, at, body, key, json_body or {})
        with self._lock:
            self.answers.append(answer)
        return answer

    def of(self, action: str) -> list[Answer]:
        with self._lock:
            return [answer for answer in self.answers if answer.action == action]


def caller(api: Api, rng: random.Random, owner: str, flaky_url: str, ops: int) -> None:
    """A demanding user: mixed submits (keyed ones retried through failures, replayed after
    success), cancels while queued and while running, retries of failed jobs, delays."""
    for n in range(ops):
        choice = rng.random()
        key = f"{owner}-{n}" if rng.random() < 0.6 else None
        if choice < 0.35:
            body: dict[str, Any] = {"type": "echo", "payload": {"n": n, "owner": owner}}
        elif choice < 0.6:
            body = {
                "type": "sleep",
                "payload": {"seconds": round(rng.uniform(0.1, 1.5), 2)},
            }
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
        if (
            rng.random() < 0.2
        ):  # flow control: one at a time per slot, some with a head start
            body = {
                "type": "limited",
                "payload": {
                    "slot": rng.choice(["a", "b"]),
                    "seconds": round(rng.uniform(0.3, 1.5), 2),
                },
                "priority_s": rng.choice([0, 0, 0, 60]),
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
        if body["type"] in ("sleep", "limited") and rng.random() < 0.4:
            time.sleep(rng.choice([0.0, 0.0, 0.5, 1.0]))
            api.call("POST", f"/jobs/{job_id}/cancel", "cancel", owner, job_id=job_id)
        if body["type"] == "http.request" and rng.random() < 0.3:
            time.sleep(1.0)
            got = api.call("GET", f"/jobs/{job_id}", "get", owner, job_id=job_id)
            if got.body.get("status") == "failed":
                api.call("POST", f"/jobs/{job_id}/retry", "retry", owner, job_id=job_id)
        time.sleep(rng.uniform(0.0, 0.15))


def duplicator(
    send: Callable[[str], None], known: Callable[[], list[tuple[str, str, str]]],
    rng: random.Random, stop: threading.Event,
) -> None:  # fmt: skip
    """SQS delivers at least once, late and twice at a time: now and then send copies of a known
    job's message (finished jobs' included) straight to the jobs queue."""
    while not stop.wait(rng.uniform(0.2, 0.6)):
        jobs = known()
        if not jobs:
            continue
        job_id, owner, job_type = rng.choice(jobs)
        body = json.dumps({"job_id": job_id, "owner": owner, "job_type": job_type})
        for _ in range(rng.choice([1, 2])):
            send(body)
