"""Logs as data: context bound at each entry point reaches the route's and the service's lines."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
import structlog
from jobline.logging import bind_invocation, configure
from jobline.models import SubmitRequest
from jobline.sqs_batch import Invocation
from jobline_api.dependencies import get_job_service
from jobline_api.handler import app, lambda_handler

from tests.conftest import FakeLambdaContext
from tests.support.events import http_api_event
from tests.support.fakes import START, InMemoryJobRepository
from tests.support.services import build_fake_service, process_batch


@pytest.fixture(autouse=True)
def fresh_log_context() -> Iterator[None]:
    """Entry points bind context in this thread; leave none behind for other tests."""
    yield
    structlog.contextvars.clear_contextvars()


def _lines(captured: str) -> list[dict[str, Any]]:
    """Every stdout line must be one JSON object."""
    return [json.loads(line) for line in captured.splitlines() if line.strip()]


@pytest.fixture
def fake_api_service() -> Iterator[InMemoryJobRepository]:
    service, repo, _ = build_fake_service()
    app.dependency_overrides[get_job_service] = lambda: service
    try:
        yield repo
    finally:
        app.dependency_overrides.pop(get_job_service, None)


def test_invocation_context_reaches_route_and_service_lines(
    fake_api_service: InMemoryJobRepository, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a Lambda invocation of the API with a JWT caller
    context = FakeLambdaContext(function_name="jobline-api", aws_request_id="req-42")
    event = http_api_event(
        "POST", "/jobs", body='{"type": "echo", "payload": {"n": 1}}', sub="user-1"
    )
    capsys.readouterr()

    # When a job is submitted through the handler
    response = lambda_handler(event, context)

    # Then the service's line is one JSON object carrying the invocation and the job
    assert response["statusCode"] == 202
    [job] = fake_api_service.jobs
    lines = _lines(capsys.readouterr().out)
    [submitted] = [line for line in lines if line["event"] == "job.submitted"]
    # (the line carries its metrics too: the job's type is their JobType dimension)
    assert {
        key: submitted[key]
        for key in ("aws_request_id", "function_name", "job_id", "JobType", "level")
    } == {
        "aws_request_id": "req-42",
        "function_name": "jobline-api",
        "job_id": job.id,
        "JobType": "echo",
        "level": "info",
    }
    assert submitted["timestamp"].endswith("Z")

    # And the route's error lines carry the invocation too
    missing = http_api_event("GET", "/jobs/" + "0" * 32, sub="user-1")
    assert lambda_handler(missing, context)["statusCode"] == 404
    [domain_error] = [
        line
        for line in _lines(capsys.readouterr().out)
        if line["event"] == "http.domain_error"
    ]
    assert (domain_error["aws_request_id"], domain_error["status_code"]) == (
        "req-42",
        404,
    )


def test_worker_invocation_context_reaches_the_service_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a queued job and a worker invocation whose context is bound
    configure()
    service, _, queue = build_fake_service()
    job = service.submit("ann", SubmitRequest(type="echo", payload={"n": 1})).job
    bind_invocation("req-worker-7", "jobline-worker")
    invocation = Invocation(
        request_id="req-worker-7",
        lease_until=START + timedelta(minutes=15),
        deadline=time.monotonic() + 30,
    )
    record = {
        "messageId": "m-1",
        "body": queue.sent[0].message.model_dump_json(),
        "attributes": {"ApproximateReceiveCount": "2"},
    }
    capsys.readouterr()

    # When the batch runs in the executor's threads
    with ThreadPoolExecutor(max_workers=2) as executor:
        failures = process_batch(service, [record], invocation, executor)

    # Then the service's lines carry the invocation, the record and the job
    assert failures == []
    lines = _lines(capsys.readouterr().out)
    [succeeded] = [line for line in lines if line["event"] == "job.succeeded"]
    assert {
        key: succeeded[key]
        for key in (
            "aws_request_id",
            "function_name",
            "message_id",
            "receive_count",
            "job_id",
            "JobType",
        )
    } == {
        "aws_request_id": "req-worker-7",
        "function_name": "jobline-worker",
        "message_id": "m-1",
        "receive_count": "2",
        "job_id": job.id,
        "JobType": "echo",
    }


class _Broken:
    """A service whose every read fails with a bug carrying a secret in its message."""

    def __getattr__(self, name: str) -> Any:
        def broken(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError(
                "boom calling https://admin:hunter2@internal.example/x?token=s3cr3t"
            )

        return broken


def test_an_unexpected_exception_is_one_redacted_json_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Lambda writes whatever a function prints as a record of its own: a traceback the standard
    library's root logger writes (as Mangum does for an exception the app raises) would be a
    multi-line text record past the redaction. Every record must be one redacted JSON object,
    and a bug logged once (AWS, "Using Lambda advanced logging controls with Python":
    https://docs.aws.amazon.com/lambda/latest/dg/python-logging.html)."""
    # Given the API whose service has a bug
    app.dependency_overrides[get_job_service] = lambda: _Broken()
    context = FakeLambdaContext(function_name="jobline-api", aws_request_id="req-9")
    event = http_api_event("GET", "/jobs/" + "a" * 32, sub="user-1")
    capsys.readouterr()
    try:
        # When a request meets it
        response = lambda_handler(event, context)
    finally:
        app.dependency_overrides.pop(get_job_service, None)

    # Then the caller gets a 500 without internals
    assert (response["statusCode"], json.loads(response["body"])) == (
        500,
        {"detail": "internal error"},
    )
    # And every line written is one JSON object; the bug is one line, with its traceback,
    # and nothing secret reached it
    out = capsys.readouterr().out
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    bugs = [line for line in lines if "RuntimeError" in json.dumps(line)]
    assert [bug["event"] for bug in bugs] == ["http.unhandled_error"]
    assert "Traceback" in bugs[0]["exception"]
    assert "hunter2" not in out and "s3cr3t" not in out


def test_the_standard_librarys_records_are_json_lines_through_the_same_processors(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given the functions' logging (configured at import) and a library logging on its own
    import logging

    capsys.readouterr()
    # When a library warns, with credentials in a URL of its message
    logging.getLogger("somelib").warning(
        "retrying %s", "https://bot:abc.def@api.example/v1?key=abc.def"
    )
    # Then the record is one JSON line, with level, time and logger, redacted
    [line] = [json.loads(raw) for raw in capsys.readouterr().out.splitlines()]
    assert (line["level"], line["logger"]) == ("warning", "somelib")
    assert line["timestamp"].endswith("Z")
    assert "abc.def" not in json.dumps(line)
