"""Concurrency, two ways.

Inside a batch: ten `http.request` jobs against a loopback server that answers in 0.5 s, run by
one worker invocation; eight succeed, two get a 500 and must come back as exactly their records
in `batchItemFailures`, their jobs queued again after one attempt.

Across invocations (`measure_local`): the same mix of jobs (echo jobs, every tenth one a 2 s
`steps` job, on the same lane) submitted to the whole local stack (`make run`'s) and drained by the worker's event source
mapping with N pollers, then with one, in one run; the rate of each comes from the jobs' own
records (first `created_at` to last `finished_at`). One poller waits for each batch's longest job
before it receives again; N pollers overlap the batches, as Lambda's concurrent invocations do."""

from __future__ import annotations

import http.server
import json
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any

from jobline_local.settings import LocalSettings
from jobline_local.stack import LocalStack

from bench.inprocess import Context, Functions, attribute, quiet
from bench.latency import call_api

DELAY_S = 0.5
OK, FAILING = 8, 2


class _SlowHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        time.sleep(DELAY_S)
        status = 500 if self.path.startswith("/fail") else 200
        body = json.dumps({"path": self.path}).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class SlowServer:
    """A loopback HTTP server that answers every request after DELAY_S (on /fail with a 500)."""

    def __enter__(self) -> SlowServer:
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowHandler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass(frozen=True)
class BatchRun:
    seconds: float
    records: int
    exact: bool
    detail: str


def measure(functions: Functions) -> BatchRun:
    with SlowServer() as server, quiet():
        jobs = {}
        for n in range(OK + FAILING):
            path = f"/fail/{n}" if n >= OK else f"/ok/{n}"
            job = functions.submit(
                {"type": "http.request", "payload": {"url": server.url + path}}
            )
            jobs[job["id"]] = path
        functions.dispatch()
        messages = functions.receive(OK + FAILING)
        started = time.perf_counter()
        response = functions.worker(
            functions.sqs_event(messages), Context("WorkerFunction", 120)
        )
        seconds = time.perf_counter() - started
        functions.delete(messages)  # returned ones too: the bench checks them below
    by_job = {json.loads(m["Body"])["job_id"]: m["MessageId"] for m in messages}
    expected = sorted(by_job[j] for j, path in jobs.items() if path.startswith("/fail"))
    returned = sorted(item["itemIdentifier"] for item in response["batchItemFailures"])
    problems = [] if returned == expected else [f"batchItemFailures {returned}"]
    for job_id, path in jobs.items():
        item = functions.job(job_id)
        status = attribute(item, "status")
        if path.startswith("/ok"):
            result = attribute(item, "result") or {}
            if status != "succeeded" or result.get("status") != 200:
                problems.append(f"{path}: {status} {result!r}")
        else:
            error = item.get("error", {}).get("M", {}).get("type", {}).get("S")
            attempts = attribute(item, "attempts")
            if (status, attempts, error) != ("queued", "1", "HttpStatusError"):
                problems.append(f"{path}: {status} attempts={attempts} error={error}")
    return BatchRun(
        seconds=seconds,
        records=len(messages),
        exact=not problems,
        detail="; ".join(problems) or f"{OK} succeeded, {FAILING} returned for retry",
    )


DRAIN_JOBS = 40
SLEEP_EVERY = 10
SLEEP_S = 2.0
STEPS = 4
"""A slow job of the drain is a `steps` job of STEPS steps lasting SLEEP_S in all: a type on the
default lane, the echo jobs' (a `sleep` job runs on the long lane, its own queue and poller, and
would hold back no echo job even with one poller)."""
FINAL = {"succeeded", "failed", "cancelled"}


@dataclass(frozen=True)
class Drain:
    """Jobs per second through the local stack, by pollers per SQS mapping."""

    jobs: int
    rates: dict[int, float]

    @property
    def ratio(self) -> float:
        """The most pollers' rate over one poller's."""
        return self.rates[max(self.rates)] / self.rates[1]


def _wait_finished(api_url: str, job_ids: list[str]) -> list[dict[str, Any]]:
    jobs: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 120
    while len(jobs) < len(job_ids):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(job_ids) - len(jobs)} jobs did not finish")
        for job_id in job_ids:
            if job_id not in jobs:
                job = call_api(f"{api_url}/jobs/{job_id}")
                if job["status"] in FINAL:
                    jobs[job_id] = job
        time.sleep(0.05)
    return list(jobs.values())


def drain_rate(pollers: int, jobs: int = DRAIN_JOBS) -> float:
    """Jobs per second of the mix through a local stack whose SQS mappings run `pollers`
    invocations at once (after one echo job has warmed the functions)."""
    settings = LocalSettings(
        api_port=0,
        moto_port=0,
        prefix=f"bench-drain-{uuid.uuid4().hex[:6]}",
        log_level="ERROR",
        sqs_concurrency=pollers,
        state_file=None,
    )
    with quiet(), LocalStack(settings) as stack:
        jobs_url = f"{stack.api_url}/jobs"
        _wait_finished(stack.api_url, [call_api(jobs_url, {"type": "echo"})["id"]])
        ids = [
            call_api(
                jobs_url,
                {
                    "type": "steps",
                    "payload": {"steps": STEPS, "step_seconds": SLEEP_S / STEPS},
                }
                if n % SLEEP_EVERY == 0
                else {"type": "echo", "payload": {"n": n}},
            )["id"]
            for n in range(jobs)
        ]
        finished = _wait_finished(stack.api_url, ids)
    if {job["status"] for job in finished} != {"succeeded"}:
        raise RuntimeError("a job of the drain did not succeed")
    first = min(datetime.fromisoformat(job["created_at"]) for job in finished)
    last = max(datetime.fromisoformat(job["finished_at"]) for job in finished)
    return jobs / (last - first).total_seconds()


def measure_local(pollers: int | None = None) -> Drain:
    """The drain with `pollers` (default: the local stack's default) and with one."""
    many = pollers or LocalSettings.model_fields["sqs_concurrency"].default
    rates = {many: drain_rate(many), 1: drain_rate(1)}
    return Drain(jobs=DRAIN_JOBS, rates=rates)
