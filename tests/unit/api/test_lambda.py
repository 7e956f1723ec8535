"""The API through its Lambda handler (Mangum), as API Gateway invokes it, named stages included."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import structlog
from jobline.errors import StorageUnavailable
from jobline.models import Job
from jobline_api.dependencies import get_job_service
from jobline_api.handler import app as handler_app
from jobline_api.handler import lambda_handler

from tests.conftest import FakeLambdaContext
from tests.support.events import http_api_event
from tests.unit.api.calls import (
    Fakes,
)

# ------------------------------------------------------------ Lambda handler path


@pytest.fixture
def lambda_service(fakes: Fakes, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fakes]:
    """The Lambda handler's own app, its service swapped for the fake, as deployed (no dev header)."""
    monkeypatch.setenv("JOBLINE_ALLOW_DEV_IDENTITY", "false")
    handler_app.dependency_overrides[get_job_service] = lambda: fakes[0]
    try:
        yield fakes
    finally:
        handler_app.dependency_overrides.pop(get_job_service, None)
        structlog.contextvars.clear_contextvars()  # the handler bound its invocation here


def _invoke_raw(event: dict[str, Any]) -> tuple[int, dict[str, str], str]:
    response = lambda_handler(event, FakeLambdaContext())
    return response["statusCode"], response["headers"], response.get("body", "")


def _invoke(event: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    status, headers, body = _invoke_raw(event)
    return status, headers, json.loads(body)


def test_the_jwt_subject_owns_the_job(lambda_service: Fakes) -> None:
    _, repo, _ = lambda_service
    # When a caller with a JWT submits through the Lambda handler
    status, headers, job = _invoke(
        http_api_event("POST", "/jobs", body='{"type": "echo"}', sub="user-123")
    )

    # Then the job belongs to the token's subject, and only they can read it
    assert status == 202
    assert headers["location"] == f"/jobs/{job['id']}"
    assert [(j.id, j.owner) for j in repo.jobs] == [(job["id"], "user-123")]
    assert (
        _invoke(http_api_event("GET", f"/jobs/{job['id']}", sub="user-123"))[0] == 200
    )
    assert _invoke(http_api_event("GET", f"/jobs/{job['id']}", sub="other"))[0] == 404


def test_without_claims_the_handler_answers_401(lambda_service: Fakes) -> None:
    # The deployed app does not accept the development header (the setting is off)
    status, headers, body = _invoke(
        http_api_event(
            "POST", "/jobs", body='{"type": "echo"}', headers={"X-Dev-User": "ann"}
        )
    )
    assert (status, body) == (401, {"detail": "authentication required"})
    assert headers["www-authenticate"] == "Bearer"
    assert lambda_service[1].jobs == []


def test_a_token_subject_that_is_no_identity_is_401(lambda_service: Fakes) -> None:
    # Given a JWT (any issuer's) whose `sub` is longer than any identity may be
    status, _, body = _invoke(
        http_api_event("POST", "/jobs", body='{"type": "echo"}', sub="s" * 300)
    )

    # Then it is refused, not stored under it or a cut of it
    assert (status, body) == (
        401,
        {
            "detail": "authentication required: the token's subject is longer than "
            "256 characters"
        },
    )
    assert lambda_service[1].jobs == []


def test_behind_a_named_stage_routes_and_locations_carry_the_stage(
    lambda_service: Fakes,
) -> None:
    status, headers, job = _invoke(
        http_api_event(
            "POST", "/jobs", body='{"type": "echo"}', sub="user-123", stage="v1"
        )
    )
    assert status == 202
    assert headers["location"] == f"/v1/jobs/{job['id']}"

    listing = _invoke(
        http_api_event("GET", "/jobs", sub="user-123", stage="v1", query="limit=5")
    )
    assert listing[0] == 200
    assert [item["id"] for item in listing[2]["items"]] == [job["id"]]


def test_behind_a_named_stage_a_trailing_slash_redirect_keeps_the_stage(
    lambda_service: Fakes,
) -> None:
    # When a caller asks for /prod/jobs/ (trailing slash)
    status, headers, _ = _invoke_raw(
        http_api_event("GET", "/jobs/", sub="user-123", stage="prod")
    )

    # Then the redirect goes to /prod/jobs, not to /jobs outside the stage
    assert status == 307
    assert headers["location"] == (
        "https://api1234567.execute-api.us-east-1.amazonaws.com/prod/jobs"
    )


def test_behind_a_named_stage_an_unanswered_submit_names_the_job_under_the_stage(
    lambda_service: Fakes,
) -> None:
    def lost_create(job: Job, now: datetime, *, token: str | None = None) -> None:
        raise StorageUnavailable("create: ReadTimeoutError")

    lambda_service[1].create = lost_create  # type: ignore[method-assign]

    status, headers, body = _invoke(
        http_api_event(
            "POST", "/jobs", body='{"type": "echo"}', sub="user-123", stage="prod"
        )
    )

    assert status == 503
    assert headers["location"] == f"/prod/jobs/{body['job_id']}"
    assert headers["retry-after"] == "1"


def test_behind_a_named_stage_the_docs_load_the_spec_from_the_stage(
    lambda_service: Fakes,
) -> None:
    status, _, page = _invoke_raw(http_api_event("GET", "/docs", stage="prod"))

    assert status == 200
    assert "'/prod/openapi.json'" in page or '"/prod/openapi.json"' in page
    status, _, spec = _invoke_raw(http_api_event("GET", "/openapi.json", stage="prod"))
    assert status == 200
    assert json.loads(spec)["servers"] == [{"url": "/prod"}]


def test_behind_a_named_stage_the_stage_root_and_other_prefixes_do_not_route(
    lambda_service: Fakes,
) -> None:
    # A path outside the stage (API Gateway never sends one) and the bare stage route nowhere
    for event in (
        http_api_event("GET", "/health", stage="prod") | {"rawPath": "/prod10/health"},
        http_api_event("GET", "", stage="prod"),
    ):
        event["requestContext"]["http"]["path"] = event["rawPath"]
        assert _invoke_raw(event)[0] == 404
    assert _invoke_raw(http_api_event("GET", "/health", stage="prod"))[0] == 200


def test_on_the_default_stage_nothing_is_prefixed(lambda_service: Fakes) -> None:
    status, headers, _ = _invoke_raw(http_api_event("GET", "/jobs/", sub="user-123"))

    assert status == 307
    assert headers["location"].endswith(".amazonaws.com/jobs")
