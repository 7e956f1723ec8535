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
    assert {
        key: submitted[key]
        for key in ("aws_request_id", "function_name", "job_id", "job_type", "level")
    } == {
        "aws_request_id": "req-42",
        "function_name": "jobline-api",
        "job_id": job.id,
        "job_type": "echo",
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
            "job_type",
        )
    } == {
        "aws_request_id": "req-worker-7",
        "function_name": "jobline-worker",
        "message_id": "m-1",
        "receive_count": "2",
        "job_id": job.id,
        "job_type": "echo",
    }
