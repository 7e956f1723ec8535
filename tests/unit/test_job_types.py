"""The built-in job types: echo, sleep, and http.request against a loopback server (allow-listed:
by default http.request reaches public addresses only, see test_egress.py)."""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jobline_examples
import pytest
from jobline.bootstrap import default_registry
from jobline.egress import EgressPolicy
from jobline.errors import InvalidPayload
from jobline.registry import DeadlineExceeded, JobCancelled, JobContext, JobType
from jobline_examples import http_request
from jobline_examples.http_request import (
    HttpNetworkError,
    HttpRequestOptions,
    HttpStatusError,
)
from jobline_examples.limits import MAX_BODY_BYTES

LOOPBACK = EgressPolicy(allow=(ipaddress.ip_network("127.0.0.0/8"),))
"""The egress policy of a deployment that allow-lists loopback (the test servers)."""


def _job_type(name: str) -> JobType[Any]:
    if name == http_request.NAME:
        return http_request.job_type(HttpRequestOptions(egress=LOOPBACK))
    return default_registry().get(name)


def _context(seconds_left: float = 30.0) -> JobContext:
    return JobContext(
        job_id="0" * 32,
        job_type="test",
        attempt=1,
        max_attempts=3,
        deadline=time.monotonic() + seconds_left,
    )


def _error_locs(exc: InvalidPayload) -> list[list[Any]]:
    return [error["loc"] for error in exc.errors]


def test_the_examples_are_discovered_like_any_package_of_types() -> None:
    # Given the example package's declarations (job_types/jobline_examples)
    examples = list(jobline_examples.JOB_TYPES)

    # Then the deployment's registry (discovery: entry points) holds each of them, as declared
    registry = default_registry()
    assert [registry.get(job_type.name) for job_type in examples] == examples


# -------------------------------------------------------------------------- echo


def test_echo_returns_its_payload() -> None:
    payload = {"message": "hi", "n": [1, 2.5, None], "nested": {"ok": True}}
    assert _job_type("echo").run(payload, _context()) == payload


@pytest.mark.parametrize("payload", [[1], "text", 3, None])
def test_echo_wants_a_json_object(payload: Any) -> None:
    with pytest.raises(InvalidPayload) as caught:
        _job_type("echo").parse(payload)
    assert _error_locs(caught.value) == [["payload"]]


# ------------------------------------------------------------------------- sleep


def test_sleep_sleeps_and_reports_it() -> None:
    assert _job_type("sleep").run({"seconds": 0.01}, _context()) == {"slept": 0.01}


@pytest.mark.parametrize("seconds", [0, 600])
def test_sleep_accepts_its_bounds(seconds: float) -> None:
    assert _job_type("sleep").parse({"seconds": seconds}).model_dump() == {
        "seconds": seconds
    }


@pytest.mark.parametrize(
    "payload",
    [
        {"seconds": -0.1},
        {"seconds": 600.5},
        {"seconds": float("nan")},
        {"seconds": float("inf")},
        {"seconds": "soon"},
        {},
        {"seconds": 1, "extra": True},
    ],
    ids=["negative", "too-long", "nan", "infinity", "text", "missing", "extra-field"],
)
def test_sleep_rejects_invalid_durations(payload: dict[str, Any]) -> None:
    with pytest.raises(InvalidPayload) as caught:
        _job_type("sleep").parse(payload)
    assert caught.value.job_type == "sleep"
    assert all(loc[0] == "payload" for loc in _error_locs(caught.value))


def test_a_sleep_that_cannot_end_before_the_deadline_fails_at_once() -> None:
    # Given an attempt with 30 s left
    context = _context(seconds_left=30)

    # When asked to sleep 5 minutes, then it gives up at once (not at the deadline), retryably
    with pytest.raises(
        DeadlineExceeded, match=r"sleep of 300\.0s does not fit"
    ) as caught:
        _job_type("sleep").run({"seconds": 300}, context)
    assert caught.value.retryable is True
    assert context.remaining_seconds() > 20


@dataclass
class Recorder:
    """A progress sink and cancellation probe that record their calls."""

    reports: list[tuple[float, str | None]] = field(default_factory=list)
    checks: int = 0
    cancel_after_checks: int | None = None

    def report(self, percent: float, message: str | None) -> None:
        self.reports.append((percent, message))

    def cancelled(self) -> bool:
        self.checks += 1
        return (
            self.cancel_after_checks is not None
            and self.checks > self.cancel_after_checks
        )

    def context(self, seconds_left: float = 30.0) -> JobContext:
        return JobContext(
            job_id="0" * 32,
            job_type="sleep",
            attempt=1,
            max_attempts=3,
            deadline=time.monotonic() + seconds_left,
            progress_sink=self.report,
            cancel_probe=self.cancelled,
        )


def test_sleep_reports_progress_and_checks_for_cancellation_every_second() -> None:
    # Given a context that records progress and cancellation checks
    recorder = Recorder()

    # When sleep runs for 1.2 s
    result = _job_type("sleep").run({"seconds": 1.2}, recorder.context())

    # Then it checked and reported once per second slice (1 s, then 0.2 s), ending at 100 %
    assert result == {"slept": 1.2}
    assert recorder.checks == 2
    assert [(message or "")[:6] for _, message in recorder.reports] == ["slept "] * 2
    first, last = (percent for percent, _ in recorder.reports)
    assert 0 < first < 100
    assert last == 100.0


def test_sleep_stops_at_its_next_checkpoint_once_cancelled() -> None:
    # Given a context whose cancellation is requested before the first check
    recorder = Recorder(cancel_after_checks=0)

    # When sleep runs for 10 minutes, then it stops at once, cancelled
    with pytest.raises(JobCancelled):
        _job_type("sleep").run({"seconds": 600}, recorder.context(seconds_left=900))
    assert (recorder.checks, recorder.reports) == (1, [])


def test_sleep_stops_when_the_attempt_is_abandoned() -> None:
    # Given an attempt the service abandoned (deadline reached): its stop event is set
    recorder = Recorder()
    context = recorder.context()
    context.stop_event.set()

    # When sleep reaches a checkpoint, then it stops as out of time
    with pytest.raises(DeadlineExceeded):
        _job_type("sleep").run({"seconds": 5}, context)
    assert recorder.reports == []


# ------------------------------------------------------------------ http.request


class _Handler(BaseHTTPRequestHandler):
    """Loopback test server: /ok answers with what it got, /big sends 70 KiB, /fail a 503."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        received = self.rfile.read(length).decode() if length else None
        if self.path == "/fail":
            body = b"service down for maintenance"
            self.send_response(503)
        elif self.path == "/big":
            body = b"a" * (70 * 1024)
            self.send_response(200)
        else:
            body = json.dumps(
                {
                    "method": self.command,
                    "path": self.path,
                    "body": received,
                    "x_test": self.headers.get("X-Test"),
                }
            ).encode()
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Server", "loopback")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


@pytest.fixture
def server_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    # Loopback only: no proxy from the environment may take the request elsewhere
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_http_request_returns_status_headers_and_body(server_url: str) -> None:
    # When a POST with a header and a body is made
    result = _job_type("http.request").run(
        {
            "url": f"{server_url}/ok",
            "method": "POST",
            "headers": {"X-Test": "yes"},
            "body": "hello",
            "timeout_s": 5,
        },
        _context(),
    )

    # Then the result holds the answer, and the server got what was asked
    assert result["status"] == 200
    assert result["headers"]["X-Server"] == "loopback"
    assert result["headers"]["Content-Type"] == "application/json"
    assert result["truncated"] is False
    assert json.loads(result["body"]) == {
        "method": "POST",
        "path": "/ok",
        "body": "hello",
        "x_test": "yes",
    }
    assert json.dumps(result)  # the result is storable JSON


def test_http_request_defaults_to_get(server_url: str) -> None:
    result = _job_type("http.request").run({"url": f"{server_url}/ok"}, _context())
    assert json.loads(result["body"])["method"] == "GET"


def test_http_request_cuts_the_body_at_64_kib(server_url: str) -> None:
    result = _job_type("http.request").run({"url": f"{server_url}/big"}, _context())

    assert MAX_BODY_BYTES == 64 * 1024
    assert result["body"] == "a" * MAX_BODY_BYTES
    assert result["truncated"] is True


def test_http_request_non_2xx_is_a_retryable_failure(server_url: str) -> None:
    with pytest.raises(HttpStatusError) as caught:
        _job_type("http.request").run({"url": f"{server_url}/fail"}, _context())

    assert caught.value.retryable is True
    assert "503" in str(caught.value)
    assert "service down" not in str(caught.value)  # the remote body is never quoted


def test_http_request_connection_refused_is_a_network_error() -> None:
    # Given a loopback port nobody listens on
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(HttpNetworkError) as caught:
        _job_type("http.request").run(
            {"url": f"http://127.0.0.1:{port}/", "timeout_s": 2}, _context()
        )
    assert caught.value.retryable is True


def test_http_request_with_no_time_left_does_not_start() -> None:
    with pytest.raises(DeadlineExceeded):
        _job_type("http.request").run(
            {"url": "http://127.0.0.1:9/"}, _context(seconds_left=-1)
        )


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"url": "ftp://127.0.0.1/file"}, "url"),
        ({"url": "file:///etc/passwd"}, "url"),
        ({"url": "not a url"}, "url"),
        ({}, "url"),
        ({"url": "http://127.0.0.1/", "method": "TRACE"}, "method"),
        ({"url": "http://127.0.0.1/", "method": "get"}, "method"),
        ({"url": "http://127.0.0.1/", "timeout_s": 0}, "timeout_s"),
        ({"url": "http://127.0.0.1/", "timeout_s": 601}, "timeout_s"),
        ({"url": "http://127.0.0.1/", "headers": {"X": 1}}, "headers"),
        ({"url": "http://127.0.0.1/", "verbose": True}, "verbose"),
    ],
    ids=[
        "ftp",
        "file",
        "not-a-url",
        "missing-url",
        "unknown-method",
        "lowercase-method",
        "zero-timeout",
        "long-timeout",
        "non-string-header",
        "extra-field",
    ],
)
def test_http_request_rejects_invalid_input(
    payload: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidPayload) as caught:
        _job_type("http.request").parse(payload)
    assert {loc[1] for loc in _error_locs(caught.value)} == {field}
