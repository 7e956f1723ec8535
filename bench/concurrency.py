"""Concurrency inside a batch: ten `http.request` jobs against a loopback server that answers in
0.5 s, run by one worker invocation; eight succeed, two get a 500 and must come back as exactly
their records in `batchItemFailures`, their jobs queued again after one attempt."""

from __future__ import annotations

import http.server
import json
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from bench.inprocess import Context, Functions, attribute, quiet

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
